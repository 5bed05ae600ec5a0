//! Configuration: `PGWARM_*` environment variables turned into validated settings.
//!
//! Every error names the variable and the offending value (never the value of a secret), because
//! in Lambda the message ends up in the function's Init log and nowhere else.

mod credentials;
mod entries;

pub(crate) use credentials::{CredentialSettings, DbOverrides, SecretSettings, TargetSettings};

use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// A value that must never reach a log line; `Debug` prints asterisks.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolMode {
    /// A server connection is held from a transaction's first message to its end.
    Transaction,
    /// A server connection is held for the client's whole session.
    Session,
}

/// What is between pgwarm and the database (`PGWARM_UPSTREAM_POOLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// The database itself: a server connection keeps what pgwarm leaves on it.
    Database,
    /// Another transaction pooler (PgBouncer, RDS Proxy, PgDog): each transaction may run on
    /// another backend, so pgwarm leaves nothing on a server connection beyond a transaction.
    Pooler,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The value as PGWARM_SSLMODE spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Whether clients may (or must) talk TLS to pgwarm (`PGWARM_CLIENT_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientTlsMode {
    /// SSLRequest is answered 'N'.
    Off,
    /// TLS for clients that ask for it, plain text for the others.
    On,
    /// Plain-text logins are refused, as a `hostssl`-only pg_hba.conf would.
    Require,
}

/// The certificate pgwarm presents to its clients.
#[derive(Debug, Clone)]
pub(crate) struct ClientTlsSettings {
    pub mode: ClientTlsMode,
    /// `PGWARM_CLIENT_TLS_CERT` and `PGWARM_CLIENT_TLS_KEY`; both or neither. Neither means a
    /// self-signed certificate made at start-up, enough for `sslmode=require`.
    pub cert_and_key: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Everything pgwarm needs to run, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub listen: SocketAddr,
    /// Where the database login comes from.
    pub credentials: CredentialSettings,
    /// TLS to the database (`PGWARM_SSLMODE`).
    pub sslmode: SslMode,
    pub pool_mode: PoolMode,
    pub upstream: Upstream,
    /// An on-demand Lambda environment (`AWS_LAMBDA_RUNTIME_API` set, not Managed Instances):
    /// frozen between invocations, and told when each starts.
    pub frozen_between_invocations: bool,
    pub pool_size: usize,
    /// Server connections opened during Lambda Init (or at start-up standalone), before the
    /// first client asks; 0 opens none until then.
    pub min_pool_size: usize,
    pub max_client_conn: usize,
    pub server_check_delay: Duration,
    pub query_wait_timeout: Duration,
    pub connect_timeout: Duration,
    /// `None` when set to 0: a client may stay idle inside a transaction indefinitely.
    pub idle_transaction_timeout: Option<Duration>,
    /// The database's `idle_session_timeout` for pgwarm's server connections in transaction
    /// mode, so a frozen environment's connections are closed by the database; `None` when 0.
    pub idle_session_timeout: Option<Duration>,
    pub server_lifetime: Duration,
    /// Run when a session-mode client leaves; empty means none.
    pub server_reset_query: String,
    pub client_password: Option<Secret>,
    pub max_message_size: usize,
    /// CA certificates (PEM) that replace the embedded Amazon RDS bundle.
    pub ssl_root_cert: Option<std::path::PathBuf>,
    pub client_tls: ClientTlsSettings,
    /// Named prepared statements kept per server connection in transaction mode; 0 turns the
    /// renaming off (statement names then reach the server as the client sent them).
    pub max_prepared_statements: usize,
    /// Runtime threads: 1 runs everything on one thread, like PgBouncer, which is the cheapest
    /// per message when the function and the database share few vCPUs.
    pub worker_threads: usize,
    pub log_level: String,
    pub log_format: LogFormat,
    /// The period of `SHOW STATS`' averages (PgBouncer's `stats_period`).
    pub stats_period: Duration,
    /// CloudWatch metrics in Embedded Metric Format on stdout; `None` when `PGWARM_METRICS=off`.
    pub metrics: Option<MetricsSettings>,
}

/// `PGWARM_METRICS_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetricsSettings {
    pub namespace: String,
    /// At most one line per this long while invocations run.
    pub interval: Duration,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum ConfigError {
    #[error("{variable}={value:?} is invalid: {reason}")]
    Invalid {
        variable: &'static str,
        value: String,
        reason: String,
    },
    #[error("{variable} is not set: {reason}")]
    Missing {
        variable: &'static str,
        reason: &'static str,
    },
}

/// Defaults, documented in README's configuration table.
pub(crate) mod defaults {
    pub(crate) const LISTEN: &str = "127.0.0.1:5432";
    pub(crate) const POOL_SIZE: usize = 2;
    pub(crate) const MAX_CLIENT_CONN: usize = 1000;
    pub(crate) const SERVER_CHECK_DELAY: &str = "10s";
    pub(crate) const QUERY_WAIT_TIMEOUT: &str = "30s";
    pub(crate) const CONNECT_TIMEOUT: &str = "5s";
    pub(crate) const IDLE_TRANSACTION_TIMEOUT: &str = "0";
    /// An environment idle (frozen) this long gives its database slots back; the next
    /// invocation after such a pause pays one login.
    pub(crate) const IDLE_SESSION_TIMEOUT: &str = "60s";
    pub(crate) const SERVER_LIFETIME: &str = "1h";
    pub(crate) const SERVER_RESET_QUERY: &str = "DISCARD ALL";
    /// PostgreSQL's own limit for one message (PQ_LARGE_MESSAGE_LIMIT is 1 GiB - 1).
    pub(crate) const MAX_MESSAGE_SIZE: usize = (1 << 30) - 1;
    pub(crate) const WORKER_THREADS: usize = 1;
    pub(crate) const MAX_PREPARED_STATEMENTS: usize = 200;
    pub(crate) const SECRET_TTL: &str = "300s";
    pub(crate) const SECRETS_TIMEOUT: &str = "5s";
    /// The most server connections the Managed Instances default gives one environment.
    pub(crate) const MANAGED_INSTANCES_MAX_POOL_SIZE: usize = 20;
    pub(crate) const STATS_PERIOD: &str = "60s";
    pub(crate) const METRICS_NAMESPACE: &str = "pgwarm";
    pub(crate) const METRICS_INTERVAL: &str = "60s";
}

impl Settings {
    /// Reads the process environment.
    pub(crate) fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let env = Env(&lookup);
        let in_lambda = env.get("AWS_LAMBDA_RUNTIME_API").is_some();

        let credentials = credentials::parse(&env)?;
        let mut sslmode = parse_sslmode(&env, credentials.known_host())?;
        if matches!(credentials, CredentialSettings::Iam { .. })
            && matches!(sslmode, SslMode::Disable | SslMode::Prefer)
        {
            // RDS takes an auth token over TLS only: a mode that may send it in clear is refused,
            // and the loopback default becomes require.
            match env.get("PGWARM_SSLMODE") {
                Some(raw) => {
                    return Err(invalid(
                        "PGWARM_SSLMODE",
                        &raw,
                        "PGWARM_AUTH=iam sends an auth token, which RDS accepts over TLS only: \
                         use require, verify-ca or verify-full",
                    ))
                }
                None => sslmode = SslMode::Require,
            }
        }

        let listen_raw = env.get("PGWARM_LISTEN").unwrap_or(defaults::LISTEN.into());
        let listen = listen_raw.parse().map_err(|_| {
            invalid(
                "PGWARM_LISTEN",
                &listen_raw,
                "expected an address like 127.0.0.1:5432",
            )
        })?;

        let pool_mode = match env.get("PGWARM_POOL_MODE").as_deref() {
            None | Some("transaction") => PoolMode::Transaction,
            Some("session") => PoolMode::Session,
            Some(other) => {
                return Err(invalid(
                    "PGWARM_POOL_MODE",
                    other,
                    "expected transaction or session",
                ))
            }
        };
        let upstream =
            match env.get("PGWARM_UPSTREAM_POOLER").as_deref() {
                None | Some("off") => Upstream::Database,
                Some("on") => Upstream::Pooler,
                Some(other) => return Err(invalid(
                    "PGWARM_UPSTREAM_POOLER",
                    other,
                    "expected on (a transaction pooler is between pgwarm and the database) or off",
                )),
            };
        let managed_instances = in_lambda
            && env.get("AWS_LAMBDA_INITIALIZATION_TYPE").as_deref()
                == Some("lambda-managed-instances");
        let pool_size_default = match env.get("AWS_LAMBDA_MAX_CONCURRENCY") {
            Some(raw) if managed_instances => managed_instances_pool_size(&raw)?,
            _ => defaults::POOL_SIZE,
        };
        let pool_size = env.positive("PGWARM_POOL_SIZE", pool_size_default)?;
        let min_pool_size = env.parse_or(
            "PGWARM_MIN_POOL_SIZE",
            0,
            "expected a whole number (0 opens no connection before a client needs one)",
        )?;
        if min_pool_size > pool_size {
            return Err(invalid(
                "PGWARM_MIN_POOL_SIZE",
                &min_pool_size.to_string(),
                &format!("cannot exceed PGWARM_POOL_SIZE ({pool_size})"),
            ));
        }
        let max_client_conn = env.positive("PGWARM_MAX_CLIENT_CONN", defaults::MAX_CLIENT_CONN)?;
        let max_message_size =
            env.positive("PGWARM_MAX_MESSAGE_SIZE", defaults::MAX_MESSAGE_SIZE)?;
        if max_message_size > defaults::MAX_MESSAGE_SIZE {
            return Err(invalid(
                "PGWARM_MAX_MESSAGE_SIZE",
                &max_message_size.to_string(),
                "PostgreSQL itself accepts at most 1073741823 bytes",
            ));
        }

        let idle_transaction_timeout = env.duration(
            "PGWARM_IDLE_TRANSACTION_TIMEOUT",
            defaults::IDLE_TRANSACTION_TIMEOUT,
        )?;
        let idle_session_timeout = env.duration(
            "PGWARM_IDLE_SESSION_TIMEOUT",
            defaults::IDLE_SESSION_TIMEOUT,
        )?;
        if idle_session_timeout.as_millis() > i32::MAX as u128 {
            return Err(invalid(
                "PGWARM_IDLE_SESSION_TIMEOUT",
                &format!("{idle_session_timeout:?}"),
                "PostgreSQL takes at most 2147483647ms (about 24 days)",
            ));
        }
        let settings = Settings {
            listen,
            credentials,
            sslmode,
            pool_mode,
            upstream,
            frozen_between_invocations: in_lambda && !managed_instances,
            pool_size,
            min_pool_size,
            max_client_conn,
            server_check_delay: env
                .duration("PGWARM_SERVER_CHECK_DELAY", defaults::SERVER_CHECK_DELAY)?,
            query_wait_timeout: env
                .nonzero_duration("PGWARM_QUERY_WAIT_TIMEOUT", defaults::QUERY_WAIT_TIMEOUT)?,
            connect_timeout: env
                .nonzero_duration("PGWARM_CONNECT_TIMEOUT", defaults::CONNECT_TIMEOUT)?,
            idle_transaction_timeout: (!idle_transaction_timeout.is_zero())
                .then_some(idle_transaction_timeout),
            idle_session_timeout: (!idle_session_timeout.is_zero()).then_some(idle_session_timeout),
            server_lifetime: env
                .nonzero_duration("PGWARM_SERVER_LIFETIME", defaults::SERVER_LIFETIME)?,
            server_reset_query: env
                .get("PGWARM_SERVER_RESET_QUERY")
                .unwrap_or(defaults::SERVER_RESET_QUERY.into()),
            client_password: env
                .get("PGWARM_CLIENT_PASSWORD")
                .filter(|p| !p.is_empty())
                .map(Secret),
            max_message_size,
            ssl_root_cert: env
                .get("PGWARM_SSLROOTCERT")
                .filter(|p| !p.is_empty())
                .map(std::path::PathBuf::from),
            client_tls: parse_client_tls(&env)?,
            max_prepared_statements: env.parse_or(
                "PGWARM_MAX_PREPARED_STATEMENTS",
                defaults::MAX_PREPARED_STATEMENTS,
                "expected a whole number (0 turns prepared statement tracking off)",
            )?,
            worker_threads: env.positive("PGWARM_WORKER_THREADS", defaults::WORKER_THREADS)?,
            stats_period: env.nonzero_duration("PGWARM_STATS_PERIOD", defaults::STATS_PERIOD)?,
            metrics: parse_metrics(&env)?,
            log_level: env.get("PGWARM_LOG_LEVEL").unwrap_or("info".into()),
            log_format: match env.get("PGWARM_LOG_FORMAT").as_deref() {
                None => {
                    if in_lambda {
                        LogFormat::Json
                    } else {
                        LogFormat::Text
                    }
                }
                Some("json") => LogFormat::Json,
                Some("text") => LogFormat::Text,
                Some(other) => {
                    return Err(invalid("PGWARM_LOG_FORMAT", other, "expected json or text"))
                }
            },
        };
        Ok(settings)
    }
}

/// libpq's sslmode values; the default is verify-full, except prefer for a database on this
/// machine (a local test cluster rarely has a certificate). A host known only from a secret
/// gets verify-full.
fn parse_sslmode(env: &Env<'_>, host: Option<&str>) -> Result<SslMode, ConfigError> {
    let raw = env.get("PGWARM_SSLMODE");
    Ok(match raw.as_deref() {
        None if host.is_some_and(is_loopback) => SslMode::Prefer,
        None => SslMode::VerifyFull,
        Some("disable") => SslMode::Disable,
        Some("prefer") => SslMode::Prefer,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => {
            return Err(invalid(
                "PGWARM_SSLMODE",
                other,
                "expected disable, prefer, require, verify-ca or verify-full",
            ))
        }
    })
}

/// On Lambda Managed Instances one environment serves up to `AWS_LAMBDA_MAX_CONCURRENCY`
/// requests at once. In transaction mode a connection is held only during a transaction, so that
/// many is an upper bound; it is capped like PgBouncer's `default_pool_size` (20) so that many
/// environments cannot exhaust the database's `max_connections`.
fn managed_instances_pool_size(raw: &str) -> Result<usize, ConfigError> {
    let concurrency: usize = raw.trim().parse().map_err(|_| {
        invalid(
            "AWS_LAMBDA_MAX_CONCURRENCY",
            raw,
            "expected a whole number (set PGWARM_POOL_SIZE to override)",
        )
    })?;
    Ok(concurrency.clamp(
        defaults::POOL_SIZE,
        defaults::MANAGED_INSTANCES_MAX_POOL_SIZE,
    ))
}

fn parse_client_tls(env: &Env<'_>) -> Result<ClientTlsSettings, ConfigError> {
    let mode = match env.get("PGWARM_CLIENT_TLS").as_deref() {
        None | Some("on") => ClientTlsMode::On,
        Some("off") => ClientTlsMode::Off,
        Some("require") => ClientTlsMode::Require,
        Some(other) => {
            return Err(invalid(
                "PGWARM_CLIENT_TLS",
                other,
                "expected on, off or require",
            ))
        }
    };
    let path = |name| {
        env.get(name)
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
    };
    let cert_and_key = match (
        path("PGWARM_CLIENT_TLS_CERT"),
        path("PGWARM_CLIENT_TLS_KEY"),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                variable: "PGWARM_CLIENT_TLS_KEY",
                reason: "PGWARM_CLIENT_TLS_CERT is set, so pgwarm needs its private key too",
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                variable: "PGWARM_CLIENT_TLS_CERT",
                reason: "PGWARM_CLIENT_TLS_KEY is set, so pgwarm needs its certificate too",
            })
        }
    };
    Ok(ClientTlsSettings { mode, cert_and_key })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn invalid(variable: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        variable,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Parses `500ms`, `10s`, `5m`, `1h`, or a bare number of seconds.
fn parse_metrics(env: &Env<'_>) -> Result<Option<MetricsSettings>, ConfigError> {
    match env.get("PGWARM_METRICS").as_deref() {
        None | Some("on") => {}
        Some("off") => return Ok(None),
        Some(other) => return Err(invalid("PGWARM_METRICS", other, "expected on or off")),
    }
    let namespace = env
        .get("PGWARM_METRICS_NAMESPACE")
        .unwrap_or(defaults::METRICS_NAMESPACE.into());
    // CloudWatch's rule for a namespace: 1 to 255 characters of this set.
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#:".contains(c);
    if namespace.is_empty() || namespace.len() > 255 || !namespace.chars().all(allowed) {
        return Err(invalid(
            "PGWARM_METRICS_NAMESPACE",
            &namespace,
            "expected 1 to 255 letters, digits or . - _ / # :",
        ));
    }
    let interval = env.nonzero_duration("PGWARM_METRICS_INTERVAL", defaults::METRICS_INTERVAL)?;
    Ok(Some(MetricsSettings {
        namespace,
        interval,
    }))
}

pub(crate) fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).map(Duration::from_millis)
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    fn parse_or<T: std::str::FromStr>(
        &self,
        variable: &'static str,
        default: T,
        reason: &str,
    ) -> Result<T, ConfigError> {
        match self.get(variable) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| invalid(variable, &raw, reason)),
        }
    }

    fn positive(&self, variable: &'static str, default: usize) -> Result<usize, ConfigError> {
        let n: usize = self.parse_or(variable, default, "expected a whole number of at least 1")?;
        if n == 0 {
            return Err(invalid(
                variable,
                "0",
                "expected a whole number of at least 1",
            ));
        }
        Ok(n)
    }

    fn duration(&self, variable: &'static str, default: &str) -> Result<Duration, ConfigError> {
        let raw = self.get(variable).unwrap_or(default.into());
        parse_duration(&raw).ok_or_else(|| {
            invalid(
                variable,
                &raw,
                "expected a duration such as 500ms, 10s, 5m or 1h",
            )
        })
    }

    fn nonzero_duration(
        &self,
        variable: &'static str,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(variable, default)?;
        if d.is_zero() {
            return Err(invalid(variable, "0", "must be longer than zero"));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests;
