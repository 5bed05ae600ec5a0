//! When the database does not take logins for a while (a restart, a Multi-AZ or Aurora failover,
//! `max_connections` reached), clients wait as they would for a busy pool while pgwarm retries
//! the login with a capped, jittered backoff. This module holds the pieces: which failures are
//! worth waiting out, the backoff, and the episode, which is logged once when it starts and once
//! when it ends, never once per attempt; and the pool's side of an episode: what a client whose
//! wait ran out is told, and what the first failure does to the idle connections.

use super::wait::{Bound, Wait};
use super::{Pool, PoolError};
use crate::protocol::sqlstate;
use crate::server::ServerError;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// The first pause between two login attempts.
const FIRST_PAUSE: Duration = Duration::from_millis(8);
/// The longest pause while an outage is young: a restart or a failover that ends within a
/// couple of seconds is found within about this long.
const MAX_PAUSE: Duration = Duration::from_millis(64);
/// Attempts at [`MAX_PAUSE`] or less (about two seconds' worth) before the pause grows to
/// [`LONG_PAUSE`]: a database that stays full pays a backend fork for every attempt, and a fleet
/// of environments retrying 15 times a second each would add to its trouble.
const SHORT_ATTEMPTS: u32 = 32;
const LONG_PAUSE: Duration = Duration::from_millis(512);

/// Whether a failed login is one the database may get over by itself soon: it is down,
/// restarting or full. Refused credentials, a database that does not exist, or a certificate
/// that does not verify are not: waiting would only delay the error.
pub(crate) fn is_transient(error: &ServerError) -> bool {
    match error {
        ServerError::Connect { .. }
        | ServerError::Timeout(_)
        | ServerError::Io(_)
        | ServerError::Closed
        | ServerError::NoServerFits { .. } => true,
        // 57P0x: shutting down, starting up, in recovery; 53xxx: too many connections,
        // remaining slots reserved, out of memory; 08xxx: connection failures.
        ServerError::Rejected { code, .. } => {
            code.starts_with(sqlstate::GROUP_SERVER_GOING_AWAY)
                || code.starts_with(sqlstate::CLASS_INSUFFICIENT_RESOURCES)
                || code.starts_with(sqlstate::CLASS_CONNECTION_EXCEPTION)
        }
        _ => false,
    }
}

/// Whether the failure says the database is full rather than gone: its existing connections
/// are alive and should be kept.
pub(crate) fn is_full(error: &ServerError) -> bool {
    matches!(error, ServerError::Rejected { code, .. } if code == sqlstate::TOO_MANY_CONNECTIONS)
}

/// Pauses that double from [`FIRST_PAUSE`] to [`MAX_PAUSE`], then to [`LONG_PAUSE`] once the
/// outage is a few seconds old, each drawn between half and all of its nominal length, so the
/// slots of many environments do not retry in step.
#[derive(Debug)]
pub(crate) struct Backoff {
    nominal: Duration,
    attempts: u32,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            nominal: FIRST_PAUSE,
            attempts: 0,
        }
    }

    pub(crate) fn next_pause(&mut self) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        let cap = if self.attempts <= SHORT_ATTEMPTS {
            MAX_PAUSE
        } else {
            LONG_PAUSE
        };
        let nominal = self.nominal.min(cap);
        self.nominal = (nominal * 2).min(cap);
        let half = nominal / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// The current episode of failed logins, if any, and when the last one ended.
#[derive(Debug, Default)]
pub(crate) struct Outage(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    episode: Option<Episode>,
    ended: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Episode {
    since: Instant,
    failures: u64,
    /// The newest failure, as said to clients whose wait runs out, and its SQLSTATE when the
    /// database refused the login.
    last: String,
    code: Option<String>,
    full: bool,
}

/// What an episode looked like, for the error a waiting client gets.
#[derive(Debug, Clone)]
pub(crate) struct OutageView {
    pub(crate) last: String,
    pub(crate) code: Option<String>,
    pub(crate) full: bool,
}

impl OutageView {
    pub(crate) fn of(error: &ServerError) -> OutageView {
        OutageView {
            last: error.to_string(),
            code: match error {
                ServerError::Rejected { code, .. } => Some(code.clone()),
                _ => None,
            },
            full: is_full(error),
        }
    }

    /// What the database said, for the error: whether it is full, and its `max_connections`
    /// when pgwarm could read it.
    pub(crate) fn describe(&self, max_connections: Option<u32>) -> String {
        match (self.full, max_connections) {
            (true, Some(n)) => format!(
                "it has no connection slot for pgwarm: {}; its max_connections is {n}",
                self.last
            ),
            (true, None) => format!("it has no connection slot for pgwarm: {}", self.last),
            (false, _) => format!("the last attempt: {}", self.last),
        }
    }
}

impl Outage {
    /// A login that began at `began` failed in a way worth waiting out. Returns true when this
    /// starts an episode. An attempt that began before the last episode ended is a straggler
    /// of that one (another slot's login got through first), not a new episode.
    pub(crate) fn failed(&self, error: &ServerError, began: Instant) -> bool {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if state.episode.is_none() && state.ended.is_some_and(|ended| began < ended) {
            return false;
        }
        let view = OutageView::of(error);
        let episode = &mut state.episode;
        match episode.as_mut() {
            Some(e) => {
                e.failures += 1;
                e.last = view.last;
                e.code = view.code;
                e.full = view.full;
                false
            }
            None => {
                warn!(%error, "the database is not taking logins; clients wait (up to PGWARM_QUERY_WAIT_TIMEOUT) while pgwarm retries");
                *episode = Some(Episode {
                    since: Instant::now(),
                    failures: 1,
                    last: view.last,
                    code: view.code,
                    full: view.full,
                });
                true
            }
        }
    }

    /// A login succeeded: the episode, if there was one, is over.
    pub(crate) fn recovered(&self) {
        let ended = {
            let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let ended = state.episode.take();
            if ended.is_some() {
                state.ended = Some(Instant::now());
            }
            ended
        };
        if let Some(e) = ended {
            info!(
                after_ms = e.since.elapsed().as_millis() as u64,
                failed_logins = e.failures,
                "the database takes logins again"
            );
        }
    }

    pub(crate) fn current(&self) -> Option<OutageView> {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        state.episode.as_ref().map(|e| OutageView {
            last: e.last.clone(),
            code: e.code.clone(),
            full: e.full,
        })
    }
}

/// The pool's side of an episode: what a client whose wait ran out is told, and what the
/// first failure of an episode does to the idle connections.
impl Pool {
    pub(super) fn unavailable(&self, outage: OutageView, wait: &Wait) -> PoolError {
        let known = self.max_connections.load(Ordering::Relaxed);
        PoolError::Unavailable {
            waited: match wait.bound {
                Bound::QueryWait => self.settings.query_wait_timeout,
                Bound::Invocation { .. } => wait.waited(),
            },
            bound: wait.bound,
            max_connections: (outage.full && known > 0).then_some(known),
            outage,
        }
    }

    /// The client's deadline passed while logins failed: it is told the episode's last failure,
    /// or `last`, its own slot's, when no episode is recorded (a straggler of one that ended).
    pub(super) fn gave_up(&self, last: &ServerError, wait: &Wait) -> PoolError {
        let outage = self
            .outage
            .current()
            .unwrap_or_else(|| OutageView::of(last));
        self.unavailable(outage, wait)
    }

    /// The first failed login of an episode. A database that went away took its connections
    /// with it (or they lead to the old primary after a failover): the idle ones are closed,
    /// not lent. A full database keeps them, and its `max_connections` is read from one, to be
    /// named to clients whose wait runs out.
    pub(super) async fn episode_started(&self, error: &ServerError) {
        if !is_full(error) {
            for conn in self.take_idle() {
                conn.close();
            }
            return;
        }
        if self.max_connections.load(Ordering::Relaxed) > 0 {
            return;
        }
        let row = self
            .query_idle("reading max_connections", "show max_connections")
            .await;
        let value = row.and_then(|r| r.into_iter().next().flatten());
        if let Some(n) = value.and_then(|v| v.parse().ok()) {
            self.max_connections.store(n, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new();
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.next_pause()).collect();
        assert!(pauses[0] >= FIRST_PAUSE / 2 && pauses[0] <= FIRST_PAUSE);
        assert!(pauses.iter().all(|p| *p <= MAX_PAUSE));
        assert!(pauses[9] >= MAX_PAUSE / 2);
        let later: Vec<Duration> = (0..40).map(|_| backoff.next_pause()).collect();
        assert!(later.iter().all(|p| *p <= LONG_PAUSE));
        assert!(
            later[39] >= LONG_PAUSE / 2,
            "a long outage is retried less often"
        );
    }

    #[test]
    fn what_is_worth_waiting_out() {
        let rejected = |code: &str| ServerError::Rejected {
            code: code.into(),
            message: "m".into(),
        };
        assert!(is_transient(&rejected("57P03")));
        assert!(is_transient(&rejected("53300")));
        assert!(is_transient(&ServerError::Closed));
        assert!(is_transient(&ServerError::Timeout(Duration::from_secs(1))));
        assert!(!is_transient(&rejected("28P01")));
        assert!(!is_transient(&rejected("3D000")));
        assert!(!is_transient(&ServerError::Tls("bad certificate".into())));
        assert!(is_full(&rejected("53300")) && !is_full(&rejected("57P03")));
    }

    #[test]
    fn an_episode_starts_once_and_ends_at_the_first_success() {
        let outage = Outage::default();
        let before = Instant::now();
        assert!(outage.failed(&ServerError::Closed, before));
        assert!(!outage.failed(
            &ServerError::Rejected {
                code: "53300".into(),
                message: "sorry, too many clients already".into()
            },
            Instant::now()
        ));
        let view = outage.current().expect("an episode");
        assert!(view.full && view.last.contains("too many clients"));
        assert_eq!(view.code.as_deref(), Some("53300"));
        outage.recovered();
        assert!(outage.current().is_none());
        assert!(
            !outage.failed(&ServerError::Closed, before),
            "an attempt from before the recovery is a straggler"
        );
        assert!(outage.current().is_none());
        assert!(
            outage.failed(&ServerError::Closed, Instant::now()),
            "a new episode"
        );
    }
}
