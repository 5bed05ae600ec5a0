//! Several database hosts and which of them will do, with libpq's conventions so that what a
//! user knows carries over: `PGWARM_DB_HOST` may list hosts separated by commas,
//! `PGWARM_DB_PORT` gives one port for all or one per host, and `PGWARM_TARGET_SESSION_ATTRS`
//! says which servers pgwarm may lend (libpq's `target_session_attrs`).

use super::env::{pick, Env};
use super::{invalid, table, ConfigError, Upstream};

/// libpq's `target_session_attrs`: which servers a connection may be made to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionAttrs {
    Any,
    /// Sessions that accept writes: never a standby, nor a server whose
    /// `default_transaction_read_only` is on (Aurora's old writer comes back as a reader).
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    /// A standby if any host is one, else any server.
    PreferStandby,
}

/// The spellings of each value, for reading the variable and for showing it.
pub(super) const SESSION_ATTRS: [(&str, SessionAttrs); 6] = [
    ("any", SessionAttrs::Any),
    ("read-write", SessionAttrs::ReadWrite),
    ("read-only", SessionAttrs::ReadOnly),
    ("primary", SessionAttrs::Primary),
    ("standby", SessionAttrs::Standby),
    ("prefer-standby", SessionAttrs::PreferStandby),
];

impl SessionAttrs {
    /// Whether a server's role must be known before it is lent.
    pub(crate) fn needs_role(self) -> bool {
        self != SessionAttrs::Any
    }

    pub(crate) fn as_str(self) -> &'static str {
        SESSION_ATTRS
            .iter()
            .find(|(_, attrs)| *attrs == self)
            .map_or("", |(spelling, _)| spelling)
    }
}

/// One host of `PGWARM_DB_HOST`, with its port when `PGWARM_DB_PORT` gives one (else the
/// login's port: the secret's, or 5432).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostAddr {
    pub host: String,
    pub port: Option<u16>,
}

/// How instance host names are made from the ids `aurora_replica_status()` gives
/// (`PGWARM_INSTANCE_HOST_PATTERN`): Aurora's cluster endpoint follows the writer by DNS, which
/// lags a failover, while each instance's own name never moves, so pgwarm can reach the new
/// writer by its instance name as soon as any instance says which one it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InstanceHosts {
    /// Made from the host a login went to, when it is an Aurora cluster endpoint.
    Auto,
    Off,
    /// A host name with one `?` where the instance id goes.
    Pattern(String),
}

impl InstanceHosts {
    /// The pattern for instances found through `host`, if any.
    pub(crate) fn pattern_for(&self, host: &str) -> Option<String> {
        match self {
            InstanceHosts::Auto => aurora_instance_pattern(host),
            InstanceHosts::Off => None,
            InstanceHosts::Pattern(pattern) => Some(pattern.clone()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            InstanceHosts::Auto => "auto",
            InstanceHosts::Off => "off",
            InstanceHosts::Pattern(pattern) => pattern,
        }
    }
}

/// `PGWARM_INSTANCE_HOST_PATTERN`: `auto`, `off`, or a host name with one `?`.
fn parse_instance_hosts(variable: &'static str, raw: &str) -> Result<InstanceHosts, ConfigError> {
    let raw = raw.trim();
    match raw {
        "auto" => Ok(InstanceHosts::Auto),
        "off" => Ok(InstanceHosts::Off),
        _ if raw.matches('?').count() == 1
            && !raw.contains([',', ':', '/', ' '])
            && raw.len() > 1 =>
        {
            Ok(InstanceHosts::Pattern(raw.to_owned()))
        }
        _ => Err(invalid(
            variable,
            raw,
            "expected auto, off, or a host name with one ? where the instance id goes \
             (?.abc123.us-east-1.rds.amazonaws.com)",
        )),
    }
}

/// The instance names of an Aurora cluster, from its cluster endpoint (writer, reader or
/// custom): `app.cluster-abc123.us-east-1.rds.amazonaws.com` gives
/// `?.abc123.us-east-1.rds.amazonaws.com`, as Aurora names instance endpoints.
fn aurora_instance_pattern(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if !(host.ends_with(".rds.amazonaws.com") || host.ends_with(".rds.amazonaws.com.cn")) {
        return None;
    }
    let mut labels = host.splitn(3, '.');
    let (_name, cluster, rest) = (labels.next()?, labels.next()?, labels.next()?);
    let id = ["cluster-ro-", "cluster-custom-", "cluster-"]
        .iter()
        .find_map(|prefix| cluster.strip_prefix(prefix))
        .filter(|id| !id.is_empty())?;
    Some(format!("?.{id}.{rest}"))
}

/// An instance's host name from `pattern`, if `id` is one Aurora could give (an RDS instance
/// identifier: letters, digits and hyphens), so an odd answer never becomes a host to dial.
pub(crate) fn instance_host(pattern: &str, id: &str) -> Option<String> {
    let fits = !id.is_empty()
        && id.len() <= 63
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    fits.then(|| pattern.replacen('?', id, 1))
}

/// The reader port (`PGWARM_READER_LISTEN`): a second listener whose server connections go to
/// the replicas, balanced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReaderSettings {
    pub(crate) listen: std::net::SocketAddr,
    /// `PGWARM_READER_HOST` and `PGWARM_READER_PORT`; a host without a port takes the login's.
    pub(crate) hosts: Vec<HostAddr>,
    /// With no replica up, reads go to the writer (`PGWARM_READER_FALLBACK=on`), or fail.
    pub(crate) fallback: bool,
}

/// `PGWARM_DB_HOST` and `PGWARM_DB_PORT` read as lists. A single host gives a list of one.
pub(super) fn parse_hosts(
    host_variable: &'static str,
    hosts_raw: &str,
    port_variable: &'static str,
    ports_raw: Option<&str>,
) -> Result<Vec<HostAddr>, ConfigError> {
    let hosts: Vec<&str> = hosts_raw.split(',').map(str::trim).collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err(invalid(
            host_variable,
            hosts_raw,
            "expected host names separated by commas, none of them empty",
        ));
    }
    let ports = match ports_raw {
        None => vec![None; hosts.len()],
        Some(raw) => {
            let ports = raw
                .split(',')
                .map(|p| p.trim().parse::<u16>().ok().filter(|p| *p > 0).map(Some))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    invalid(port_variable, raw, "expected a TCP port, or one per host")
                })?;
            match ports.as_slice() {
                [only] => vec![*only; hosts.len()],
                _ if ports.len() == hosts.len() => ports,
                _ => {
                    return Err(invalid(
                        port_variable,
                        raw,
                        &format!(
                            "{} ports for {} hosts in {host_variable}: give one port, or one per \
                             host",
                            ports.len(),
                            hosts.len()
                        ),
                    ))
                }
            }
        }
    };
    Ok(hosts
        .into_iter()
        .zip(ports)
        .map(|(host, port)| HostAddr {
            host: host.to_owned(),
            port,
        })
        .collect())
}

/// `PGWARM_TARGET_SESSION_ATTRS`. Behind a shared pooler the default is `any`: which server a
/// pooled connection reaches is the pooler's to decide, and may change from one transaction to
/// the next.
pub(super) fn read_session_attrs(
    env: &Env<'_>,
    upstream: Upstream,
) -> Result<SessionAttrs, ConfigError> {
    let Some(raw) = env.get(&table::TARGET_SESSION_ATTRS) else {
        return Ok(match upstream {
            Upstream::Pooler => SessionAttrs::Any,
            Upstream::Database => SessionAttrs::ReadWrite,
        });
    };
    pick(
        &table::TARGET_SESSION_ATTRS,
        &raw,
        &SESSION_ATTRS,
        "expected any, read-write, read-only, primary, standby or prefer-standby",
    )
}

/// `PGWARM_INSTANCE_HOST_PATTERN`. With `PGWARM_AUTH=iam` `auto` finds nothing: the token is
/// signed for one host, which an instance's name is not.
pub(super) fn read_instance_hosts(env: &Env<'_>) -> Result<InstanceHosts, ConfigError> {
    let setting = &table::INSTANCE_HOST_PATTERN;
    let raw = env.text(setting);
    let parsed = parse_instance_hosts(setting.name, &raw)?;
    let iam = env.get(&table::AUTH).as_deref() == Some("iam");
    match parsed {
        InstanceHosts::Pattern(_) if iam => Err(invalid(
            setting.name,
            &raw,
            "PGWARM_AUTH=iam signs its token for one host, which an instance's name is not",
        )),
        InstanceHosts::Auto if iam => Ok(InstanceHosts::Off),
        parsed => Ok(parsed),
    }
}

/// `PGWARM_DB_HOST` as a list of hosts with their ports; empty when it is not set.
pub(super) fn read_hosts(env: &Env<'_>) -> Result<Vec<HostAddr>, ConfigError> {
    match env.get(&table::DB_HOST).filter(|h| !h.trim().is_empty()) {
        None => Ok(Vec::new()),
        Some(raw) => parse_hosts(
            table::DB_HOST.name,
            &raw,
            table::DB_PORT.name,
            env.get(&table::DB_PORT).as_deref(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(hosts: &str, ports: Option<&str>) -> Result<Vec<(String, Option<u16>)>, String> {
        parse_hosts("H", hosts, "P", ports)
            .map(|list| list.into_iter().map(|h| (h.host, h.port)).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn one_port_for_all_or_one_per_host() {
        assert_eq!(hosts("a", None), Ok(vec![("a".into(), None)]));
        assert_eq!(
            hosts("a, b", Some("6432")),
            Ok(vec![("a".into(), Some(6432)), ("b".into(), Some(6432))])
        );
        assert_eq!(
            hosts("a,b", Some("5432, 5433")),
            Ok(vec![("a".into(), Some(5432)), ("b".into(), Some(5433))])
        );
    }

    #[test]
    fn bad_lists_name_the_variable() {
        let error = hosts("a,,b", None).unwrap_err();
        assert!(error.contains("H") && error.contains("empty"), "{error}");
        let error = hosts("a,b,c", Some("1,2")).unwrap_err();
        assert!(
            error.contains("P") && error.contains("2 ports for 3 hosts"),
            "{error}"
        );
        let error = hosts("a", Some("x")).unwrap_err();
        assert!(error.contains("P") && error.contains("TCP port"), "{error}");
        assert!(hosts("a", Some("0")).is_err());
    }

    #[test]
    fn each_value_reads_back_as_spelled() {
        for (spelling, attrs) in SESSION_ATTRS {
            assert_eq!(attrs.as_str(), spelling);
        }
    }

    #[test]
    fn aurora_instance_names_come_from_the_cluster_endpoint() {
        let auto = InstanceHosts::Auto;
        for endpoint in [
            "app.cluster-abc123.us-east-1.rds.amazonaws.com",
            "app.cluster-ro-abc123.us-east-1.rds.amazonaws.com",
            "App.cluster-custom-abc123.us-east-1.rds.amazonaws.com.",
        ] {
            assert_eq!(
                auto.pattern_for(endpoint).as_deref(),
                Some("?.abc123.us-east-1.rds.amazonaws.com"),
                "{endpoint}"
            );
        }
        assert_eq!(
            auto.pattern_for("app.cluster-x.cn-north-1.rds.amazonaws.com.cn")
                .as_deref(),
            Some("?.x.cn-north-1.rds.amazonaws.com.cn")
        );
        for other in [
            "i-1.abc123.us-east-1.rds.amazonaws.com",
            "db.example.com",
            "127.0.0.1",
            "app.cluster-.us-east-1.rds.amazonaws.com",
        ] {
            assert_eq!(auto.pattern_for(other), None, "{other}");
        }
        assert_eq!(
            InstanceHosts::Off.pattern_for("app.cluster-a.r.rds.amazonaws.com"),
            None
        );
        assert_eq!(instance_host("?.a.b", "db-2").as_deref(), Some("db-2.a.b"));
        assert_eq!(instance_host("?.a.b", "x.evil.com"), None);
        assert_eq!(instance_host("?.a.b", ""), None);
    }

    #[test]
    fn an_instance_pattern_has_one_place_for_the_id() {
        let read = |raw| parse_instance_hosts("V", raw).map_err(|e| e.to_string());
        assert_eq!(read("auto"), Ok(InstanceHosts::Auto));
        assert_eq!(read(" off "), Ok(InstanceHosts::Off));
        assert_eq!(
            read("?.a.example"),
            Ok(InstanceHosts::Pattern("?.a.example".into()))
        );
        for bad in ["a.example", "?.?.example", "?", "?.a:5432", "?.a,?.b"] {
            let error = read(bad).unwrap_err();
            assert!(
                error.contains('V') && error.contains("one ?"),
                "{bad}: {error}"
            );
        }
    }
}
