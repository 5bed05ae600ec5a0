//! Which host a login goes to. `PGWARM_DB_HOST` may list several; each login tries them in turn,
//! starting from the one whose server last would do, and keeps the first server that
//! `PGWARM_TARGET_SESSION_ATTRS` accepts. Names are resolved again on every try (nothing here
//! caches an address), so after a failover the new writer is found as soon as it takes logins,
//! whatever a DNS record still says.
//!
//! An Aurora cluster can add hosts of its own: the instances `aurora_replica_status()` names
//! (`discovery.rs`) are tried after the listed hosts, and the writer it names first of all.
//!
//! The reader port's pool balances instead: each login starts one replica further along
//! `PGWARM_READER_HOST`, takes whatever server answers, and, with none up, falls back to the
//! writer's hosts when `PGWARM_READER_FALLBACK` allows.

use crate::config::{HostAddr, SessionAttrs};
use crate::credentials::Credentials;
use crate::server::Role;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// Named by the database (`aurora_replica_status()`), not by a setting.
    pub(crate) discovered: bool,
}

/// How a pool picks among its hosts.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// The writer's pool: `PGWARM_DB_HOST`, the host that last would do first.
    Writer,
    /// The reader port's pool: the replicas in turn, then, when `Some`, the writer's hosts
    /// (`PGWARM_DB_HOST`'s, or the login's own when it lists fewer than two).
    Reader { fallback: Option<Vec<HostAddr>> },
}

pub(super) struct Hosts {
    /// The hosts to try: `PGWARM_DB_HOST`'s when it lists more than one (else empty, and the
    /// login's own host is the only one), or the replicas.
    list: Vec<HostAddr>,
    plan: Plan,
    /// Instances the database named, after `list` in the order learned; never removed (an
    /// instance's name does not move), so the indexes into `seen` stay put.
    discovered: Mutex<Vec<HostAddr>>,
    /// The replica the next reader login starts from.
    next: AtomicUsize,
    /// The reader port's logins go to the writer: no replica answered the last one.
    falling_back: AtomicBool,
    attrs: SessionAttrs,
    /// The host whose server last would do: tried first.
    preferred: AtomicUsize,
    /// What the last login to each host found, in list order (one entry for the login's own),
    /// then the discovered instances'.
    seen: Mutex<Vec<(Found, Option<SystemTime>)>>,
}

/// One host to try, as the login to make there.
pub(super) struct Candidate {
    /// Its place in the list, to prefer it next time; `None` for a writer's host the reader
    /// port falls back to, or the login's own host.
    pub(super) index: Option<usize>,
    pub(super) creds: Credentials,
    /// A writer's host tried for the reader port because no replica answered.
    pub(super) fallback: bool,
}

impl Hosts {
    pub(super) fn new(list: &[HostAddr], attrs: SessionAttrs, plan: Plan) -> Hosts {
        let list = match (&plan, list.len()) {
            (Plan::Writer, 0 | 1) => Vec::new(),
            _ => list.to_vec(),
        };
        Hosts {
            seen: Mutex::new(vec![(Found::Unknown, None); list.len().max(1)]),
            list,
            discovered: Mutex::new(Vec::new()),
            plan,
            next: AtomicUsize::new(0),
            falling_back: AtomicBool::new(false),
            attrs,
            preferred: AtomicUsize::new(0),
        }
    }

    /// For the reader port, whether it falls back to the writer; `None` for the writer's pool.
    pub(super) fn fallback_to_writer(&self) -> Option<bool> {
        match &self.plan {
            Plan::Writer => None,
            Plan::Reader { fallback } => Some(fallback.is_some()),
        }
    }

    /// Whether the hosts are replicas, balanced.
    pub(super) fn balanced(&self) -> bool {
        matches!(self.plan, Plan::Reader { .. })
    }

    /// Whether the login's own host is the only one.
    pub(super) fn single(&self) -> bool {
        self.list.is_empty() && self.discovered().is_empty()
    }

    fn discovered(&self) -> std::sync::MutexGuard<'_, Vec<HostAddr>> {
        self.discovered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the discovered instances' indexes start: after the list, or the login's own host.
    fn listed(&self) -> usize {
        self.list.len().max(1)
    }

    /// The listed hosts the login's own host stands in for when there is no list.
    pub(super) fn listed_hosts(&self) -> &[HostAddr] {
        &self.list
    }

    /// The instances the database named (`hosts`, the writer's `writer`), on `port`: new ones
    /// are added after the others. The writer's index, to try it next. `creds` is the login's
    /// own host, when there is no list.
    pub(super) fn learn(
        &self,
        hosts: &[String],
        writer: Option<&str>,
        port: u16,
        creds: &Credentials,
    ) -> Option<usize> {
        let listed = self.listed();
        let own = HostAddr {
            host: creds.host.clone(),
            port: Some(creds.port),
        };
        let own = self.list.is_empty().then_some(&own);
        let mut discovered = self.discovered();
        let mut added = 0;
        for host in hosts {
            let known = (self.list.iter().chain(own))
                .chain(discovered.iter())
                .any(|h| h.host.eq_ignore_ascii_case(host) && h.port.unwrap_or(port) == port);
            if !known {
                discovered.push(HostAddr {
                    host: host.clone(),
                    port: Some(port),
                });
                added += 1;
            }
        }
        let is_writer = |h: &HostAddr| {
            writer.is_some_and(|w| h.host.eq_ignore_ascii_case(w) && h.port.unwrap_or(port) == port)
        };
        let writer = match own {
            Some(own) => is_writer(own).then_some(0),
            None => self.list.iter().position(is_writer),
        };
        let writer = writer.or_else(|| {
            let at = discovered.iter().position(is_writer);
            at.map(|i| listed + i)
        });
        drop(discovered);
        if added > 0 {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.extend(std::iter::repeat_n((Found::Unknown, None), added));
        }
        writer
    }

    /// The login to the host at `index`, when there is one.
    pub(super) fn candidate(&self, index: usize, creds: &Credentials) -> Option<Candidate> {
        let host = match index.checked_sub(self.listed()) {
            Some(i) => self.discovered().get(i).cloned()?,
            None if self.list.is_empty() => {
                return Some(Candidate {
                    index: Some(index),
                    creds: creds.clone(),
                    fallback: false,
                })
            }
            None => self.list.get(index)?.clone(),
        };
        Some(made_for(creds, &host, Some(index), false))
    }

    pub(super) fn attrs(&self) -> SessionAttrs {
        self.attrs
    }

    /// The logins to try, in order: `creds` made for each host, the preferred one first, then
    /// the others in the order listed (the reader port: from the next replica on, then the
    /// writer's hosts if it may fall back). A host without its own port takes the login's.
    pub(super) fn candidates(&self, creds: &Credentials) -> Vec<Candidate> {
        let own = |index: Option<usize>, fallback: bool| Candidate {
            index,
            creds: creds.clone(),
            fallback,
        };
        let n = match self.plan {
            Plan::Writer => self.listed() + self.discovered().len(),
            Plan::Reader { .. } => self.list.len(),
        };
        let first = match self.plan {
            _ if n == 0 => return vec![own(Some(0), false)],
            Plan::Writer => self.preferred.load(Ordering::Relaxed) % n,
            Plan::Reader { .. } => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        let order = std::iter::once(first).chain((0..n).filter(|&i| i != first));
        let mut candidates: Vec<Candidate> = order
            .filter_map(|index| self.candidate(index, creds))
            .collect();
        if let Plan::Reader {
            fallback: Some(writers),
        } = &self.plan
        {
            match writers.len() {
                0 | 1 => candidates.push(own(None, true)),
                _ => candidates.extend(writers.iter().map(|w| made_for(creds, w, None, true))),
            }
        }
        candidates
    }

    /// The server at `index` would do: it is tried first from now on. Whether it changed.
    pub(super) fn found(&self, index: Option<usize>) -> bool {
        index.is_some_and(|index| self.preferred.swap(index, Ordering::Relaxed) != index)
    }

    /// A reader login went to the writer (`true`) or to a replica: whether that changed.
    pub(super) fn fell_back(&self, to_writer: bool) -> bool {
        self.falling_back.swap(to_writer, Ordering::Relaxed) != to_writer
    }

    /// What a login to the host at `index` found.
    pub(super) fn saw(&self, index: Option<usize>, found: Found) {
        let Some(index) = index else {
            return;
        };
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
        let own = HostAddr {
            host: creds.host.clone(),
            port: Some(creds.port),
        };
        let listed = match self.list.is_empty() {
            true => vec![own],
            false => self.list.clone(),
        };
        let discovered = self.discovered().clone();
        let listed_len = listed.len();
        listed
            .into_iter()
            .chain(discovered)
            .zip(seen)
            .enumerate()
            .map(|(i, (h, (found, checked)))| HostRow {
                host: h.host,
                port: h.port.unwrap_or(creds.port),
                found,
                checked,
                // The reader port has no first host: it balances.
                current: i == current && !self.balanced(),
                discovered: i >= listed_len,
            })
            .collect()
    }
}

/// `creds` made for `host`; a host without its own port takes the login's.
fn made_for(
    creds: &Credentials,
    host: &HostAddr,
    index: Option<usize>,
    fallback: bool,
) -> Candidate {
    let mut creds = creds.clone();
    creds.host.clone_from(&host.host);
    creds.port = host.port.unwrap_or(creds.port);
    Candidate {
        index,
        creds,
        fallback,
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
        Hosts::new(&list, SessionAttrs::ReadWrite, Plan::Writer)
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
    fn the_reader_port_balances_then_falls_back_to_the_writer() {
        let replicas = [("r1", None), ("r2", Some(6000))].map(|(h, p)| HostAddr {
            host: h.to_string(),
            port: p,
        });
        let writer = vec![HostAddr {
            host: "w".into(),
            port: None,
        }];
        let plan = Plan::Reader {
            fallback: Some(writer),
        };
        let hosts = Hosts::new(&replicas, SessionAttrs::Any, plan);
        assert_eq!(order(&hosts), ["r1:5432", "r2:6000", "secret-host:5432"]);
        assert_eq!(order(&hosts), ["r2:6000", "r1:5432", "secret-host:5432"]);
        let last = hosts.candidates(&login()).pop().map(|c| c.fallback);
        assert_eq!(last, Some(true), "the writer comes last, as a fallback");
        let alone = Hosts::new(
            &replicas[..1],
            SessionAttrs::Any,
            Plan::Reader { fallback: None },
        );
        assert_eq!(order(&alone), ["r1:5432"], "one replica, no fallback");
    }

    #[test]
    fn the_host_that_last_would_do_goes_first() {
        let hosts = hosts(&[("a", None), ("b", Some(5433)), ("c", None)]);
        assert_eq!(order(&hosts), ["a:5432", "b:5433", "c:5432"]);
        assert!(hosts.found(Some(1)));
        assert_eq!(order(&hosts), ["b:5433", "a:5432", "c:5432"]);
        assert!(!hosts.found(Some(1)), "no change");
        hosts.saw(Some(0), Found::Unreachable);
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

    #[test]
    fn instances_the_database_names_come_after_the_listed_hosts() {
        let one = hosts(&[]);
        let ids = ["i-1.x".to_string(), "i-2.x".to_string()];
        assert_eq!(one.learn(&ids, Some("i-2.x"), 5433, &login()), Some(2));
        assert!(
            !one.single(),
            "the login's own host is no longer the only one"
        );
        assert_eq!(
            order(&one),
            ["secret-host:5432", "i-1.x:5433", "i-2.x:5433"]
        );
        let own = ["secret-host".to_string()];
        let learned = one.learn(&own, Some("secret-host"), 5432, &login());
        assert_eq!(learned, Some(0), "the login's own host is known");
        assert_eq!(
            one.learn(&ids[1..], Some("i-2.x"), 5433, &login()),
            Some(2),
            "known"
        );
        assert!(one.found(Some(2)));
        assert_eq!(
            order(&one),
            ["i-2.x:5433", "secret-host:5432", "i-1.x:5433"]
        );
        let rows = one.rows(&login());
        let shown: Vec<(&str, bool, bool)> = rows
            .iter()
            .map(|r| (r.host.as_str(), r.discovered, r.current))
            .collect();
        assert_eq!(
            shown,
            [
                ("secret-host", false, false),
                ("i-1.x", true, false),
                ("i-2.x", true, true)
            ]
        );
        let listed = hosts(&[("a", None), ("i-1.x", Some(5433))]);
        let learned = listed.learn(&ids, Some("i-1.x"), 5433, &login());
        assert_eq!(learned, Some(1), "listed already");
        assert_eq!(order(&listed), ["a:5432", "i-1.x:5433", "i-2.x:5433"]);
    }
}
