//! Which host a login goes to. `PGWARM_DB_HOST` may list several; each login tries them in turn,
//! starting from the one whose server last would do, and keeps the first server that
//! `PGWARM_TARGET_SESSION_ATTRS` accepts. Names are resolved again on every try (nothing here
//! caches an address), so after a failover the new writer is found as soon as it takes logins,
//! whatever a DNS record still says.

use crate::config::{HostAddr, SessionAttrs};
use crate::credentials::Credentials;
use crate::server::Role;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// What the last login to a host found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// No login went there yet.
    Unknown,
    /// The login failed: down, refusing, or too slow.
    Unreachable,
    /// A server, whose role was read unless `PGWARM_TARGET_SESSION_ATTRS=any`.
    Server(Option<Role>),
}

impl Found {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Found::Unknown => "unknown",
            Found::Unreachable => "unreachable",
            Found::Server(Some(role)) => role.as_str(),
            Found::Server(None) => "up",
        }
    }
}

/// One host as the admin console shows it.
#[derive(Debug, Clone)]
pub(crate) struct HostRow {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) found: Found,
    /// When a login last went there.
    pub(crate) checked: Option<SystemTime>,
    /// Logins go here first: the server last found to do.
    pub(crate) current: bool,
}

pub(super) struct Hosts {
    /// The hosts `PGWARM_DB_HOST` lists, when it lists more than one; else empty, and the
    /// login's own host is the only one.
    list: Vec<HostAddr>,
    attrs: SessionAttrs,
    /// The host whose server last would do: tried first.
    preferred: AtomicUsize,
    /// What the last login to each host found, in list order (one entry for the login's own).
    seen: Mutex<Vec<(Found, Option<SystemTime>)>>,
}

/// One host to try, as the login to make there.
pub(super) struct Candidate {
    /// Its place in the list, to prefer it next time.
    pub(super) index: usize,
    pub(super) creds: Credentials,
}

impl Hosts {
    pub(super) fn new(list: &[HostAddr], attrs: SessionAttrs) -> Hosts {
        let list = match list.len() {
            0 | 1 => Vec::new(),
            _ => list.to_vec(),
        };
        Hosts {
            seen: Mutex::new(vec![(Found::Unknown, None); list.len().max(1)]),
            list,
            attrs,
            preferred: AtomicUsize::new(0),
        }
    }

    /// Whether the login's own host is the only one.
    pub(super) fn single(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn attrs(&self) -> SessionAttrs {
        self.attrs
    }

    /// The logins to try, in order: `creds` made for each host, the preferred one first, then
    /// the others in the order listed. A host without its own port takes the login's.
    pub(super) fn candidates(&self, creds: &Credentials) -> Vec<Candidate> {
        if self.list.is_empty() {
            return vec![Candidate {
                index: 0,
                creds: creds.clone(),
            }];
        }
        let first = self.preferred.load(Ordering::Relaxed) % self.list.len();
        let order = std::iter::once(first).chain((0..self.list.len()).filter(|&i| i != first));
        order
            .filter_map(|index| {
                let host = self.list.get(index)?;
                let mut creds = creds.clone();
                creds.host.clone_from(&host.host);
                creds.port = host.port.unwrap_or(creds.port);
                Some(Candidate { index, creds })
            })
            .collect()
    }

    /// The server at `index` would do: it is tried first from now on. Whether it changed.
    pub(super) fn found(&self, index: usize) -> bool {
        self.preferred.swap(index, Ordering::Relaxed) != index
    }

    /// What a login to the host at `index` found.
    pub(super) fn saw(&self, index: usize, found: Found) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = seen.get_mut(index) {
            *entry = (found, Some(SystemTime::now()));
        }
    }

    /// Every host in list order, with what was last found there; `creds` names the login's own
    /// host when there is no list.
    pub(super) fn rows(&self, creds: &Credentials) -> Vec<HostRow> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let current = self.preferred.load(Ordering::Relaxed);
        let addrs: Vec<(String, u16)> = match self.list.is_empty() {
            true => vec![(creds.host.clone(), creds.port)],
            false => self
                .list
                .iter()
                .map(|h| (h.host.clone(), h.port.unwrap_or(creds.port)))
                .collect(),
        };
        addrs
            .into_iter()
            .zip(seen)
            .enumerate()
            .map(|(i, ((host, port), (found, checked)))| HostRow {
                host,
                port,
                found,
                checked,
                current: i == current,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Credentials {
        Credentials {
            host: "secret-host".into(),
            port: 5432,
            dbname: "d".into(),
            user: "u".into(),
            password: None,
        }
    }

    fn hosts(list: &[(&str, Option<u16>)]) -> Hosts {
        let list: Vec<HostAddr> = list
            .iter()
            .map(|(host, port)| HostAddr {
                host: host.to_string(),
                port: *port,
            })
            .collect();
        Hosts::new(&list, SessionAttrs::ReadWrite)
    }

    fn order(hosts: &Hosts) -> Vec<String> {
        let candidates = hosts.candidates(&login());
        candidates
            .iter()
            .map(|c| format!("{}:{}", c.creds.host, c.creds.port))
            .collect()
    }

    #[test]
    fn one_host_is_the_logins_own() {
        assert_eq!(order(&hosts(&[])), ["secret-host:5432"]);
        assert_eq!(order(&hosts(&[("a", Some(6432))])), ["secret-host:5432"]);
    }

    #[test]
    fn the_host_that_last_would_do_goes_first() {
        let hosts = hosts(&[("a", None), ("b", Some(5433)), ("c", None)]);
        assert_eq!(order(&hosts), ["a:5432", "b:5433", "c:5432"]);
        assert!(hosts.found(1));
        assert_eq!(order(&hosts), ["b:5433", "a:5432", "c:5432"]);
        assert!(!hosts.found(1), "no change");
        hosts.saw(0, Found::Unreachable);
        let rows = hosts.rows(&login());
        let shown: Vec<(&str, &str, bool)> = rows
            .iter()
            .map(|r| (r.host.as_str(), r.found.as_str(), r.current))
            .collect();
        assert_eq!(
            shown,
            [
                ("a", "unreachable", false),
                ("b", "unknown", true),
                ("c", "unknown", false)
            ]
        );
    }
}
