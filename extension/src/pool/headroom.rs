//! Whether the database has room for the connections pgwarm keeps between invocations.
//!
//! A Lambda environment is frozen between invocations, and a frozen environment's connections
//! stay open: warm for its next invocation, but taken from every other environment. With room
//! to spare that is the point of pgwarm; when the fleet wants more connections than the database
//! has, every connection a frozen environment keeps is one an invocation elsewhere waits for.
//! So the pool reads the database's connection use at each login (one small query, as logins
//! are rare once the pool is warm) and at each health check, and takes a refused login (53300,
//! "remaining connection slots are reserved") as the plainest sign. The database is *tight*
//! while its fullest limit (the server's `max_connections` less the reserved slots, the
//! database's or the role's `CONNECTION LIMIT`) is at least half used; the Lambda side then gives
//! the connections back before each freeze (`lambda`), and logins made meanwhile ask the
//! database to close them after a short idle time, in case a freeze comes first.

use super::Pool;
use crate::protocol::backend::TxStatus;
use crate::server::{ServerConn, ServerError};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tracing::info;

/// A limit used to this share or more makes the database tight.
const TIGHT_SHARE: f64 = 0.5;

/// What a server connection asked for while the database is tight: a connection left behind by
/// a freeze is closed by the database about this long after its last use.
pub(crate) const TIGHT_IDLE_SESSION_TIMEOUT: Duration = Duration::from_secs(1);

/// The connections in use against each limit that applies to pgwarm's logins, in one row:
/// client backends and the server's slots for non-superusers, then the database's and the
/// role's own (a `CONNECTION LIMIT` of -1 is none). PostgreSQL 10 or later.
pub(crate) const QUERY: &str = "SELECT \
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
    current_setting('max_connections')::int \
      - current_setting('superuser_reserved_connections')::int, \
    (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()), \
    (SELECT datconnlimit FROM pg_database WHERE datname = current_database()), \
    (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user), \
    (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user)";

/// One limit and its use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Use {
    pub(crate) limit: Limit,
    pub(crate) used: u32,
    pub(crate) of: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Server,
    Database,
    Role,
    /// A login was refused for want of a slot.
    Refused,
}

impl Use {
    fn share(&self) -> f64 {
        f64::from(self.used) / f64::from(self.of.max(1))
    }

    fn tight(&self) -> bool {
        self.limit == Limit::Refused || self.share() >= TIGHT_SHARE
    }

    /// The fullest limit in a row of [`QUERY`]; `None` if the row is not one.
    pub(crate) fn fullest(row: &[Option<String>]) -> Option<Use> {
        let number = |i: usize| -> Option<i64> { row.get(i)?.as_deref()?.parse().ok() };
        let limits = [
            (Limit::Server, number(0)?, number(1)?),
            (Limit::Database, number(2)?, number(3)?),
            (Limit::Role, number(4)?, number(5)?),
        ];
        limits
            .into_iter()
            .filter(|&(_, _, of)| of > 0)
            .filter_map(|(limit, used, of)| {
                Some(Use {
                    limit,
                    used: u32::try_from(used).ok()?,
                    of: u32::try_from(of).ok()?,
                })
            })
            .max_by(|a, b| a.share().total_cmp(&b.share()))
    }
}

impl fmt::Display for Use {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Limit::Server => write!(f, "{} of the server's {} connections", self.used, self.of),
            Limit::Database => write!(
                f,
                "{} of the database's CONNECTION LIMIT {}",
                self.used, self.of
            ),
            Limit::Role => write!(
                f,
                "{} of the role's CONNECTION LIMIT {}",
                self.used, self.of
            ),
            Limit::Refused => f.write_str("a login was refused for want of a connection slot"),
        }
    }
}

/// The newest reading, and whether the database is tight by it.
#[derive(Debug, Default)]
pub(crate) struct Headroom(Mutex<Option<Reading>>);

#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub(crate) fullest: Use,
    pub(crate) tight: bool,
}

impl Headroom {
    /// Records what was read; logs once when the database turns tight, and once when it has
    /// room again.
    pub(crate) fn read(&self, fullest: Use) {
        let tight = fullest.tight();
        let was = {
            let mut reading = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let was = reading.is_some_and(|r| r.tight);
            *reading = Some(Reading { fullest, tight });
            was
        };
        match (was, tight) {
            (false, true) => info!(
                fullest = %fullest,
                "the database is tight: pgwarm gives its connections back before each freeze"
            ),
            (true, false) => info!(
                fullest = %fullest,
                "the database has room again: pgwarm keeps its connections between invocations"
            ),
            _ => {}
        }
    }

    /// A login was refused for want of a slot.
    pub(crate) fn refused(&self) {
        self.read(Use {
            limit: Limit::Refused,
            used: 0,
            of: 0,
        });
    }

    pub(crate) fn is_tight(&self) -> bool {
        self.latest().is_some_and(|r| r.tight)
    }

    pub(crate) fn latest(&self) -> Option<Reading> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Pool {
    /// The query that shows a connection is alive: an empty one, or the connection use when the
    /// headroom is watched (one answer, two uses).
    pub(super) async fn health_check(
        &self,
        conn: &mut ServerConn,
    ) -> Result<TxStatus, ServerError> {
        if !self.reads_headroom() {
            return conn.run("health check", ";").await;
        }
        let mut fullest = None;
        let status = conn
            .query("health check", QUERY, |row| fullest = Use::fullest(&row))
            .await?;
        if let Some(fullest) = fullest {
            self.headroom.read(fullest);
        }
        Ok(status)
    }

    /// Reads the connection use on a connection just opened. A database that cannot answer
    /// the query is not asked again; a connection that fails meanwhile is the login's failure.
    /// `asked`: the `idle_session_timeout` the login asked for; a connection that finds the
    /// database tight asks for the short one instead, since a freeze may come before the end
    /// of the invocation is heard.
    pub(super) async fn read_headroom(
        &self,
        conn: &mut ServerConn,
        asked: Option<Duration>,
        deadline: Instant,
    ) -> Result<(), ServerError> {
        // Within what is left of the client's wait, as the login itself.
        let timeout = self.attempt_timeout(deadline);
        let mut fullest = None;
        let read = conn.query("reading the connection use", QUERY, |row| {
            fullest = Use::fullest(&row)
        });
        match tokio::time::timeout(timeout, read).await {
            Ok(Ok(TxStatus::Idle)) => {
                if let Some(fullest) = fullest {
                    self.headroom.read(fullest);
                }
                match asked {
                    Some(asked) if asked > TIGHT_IDLE_SESSION_TIMEOUT && self.is_tight() => {
                        let sql = format!(
                            "SET idle_session_timeout = {}",
                            TIGHT_IDLE_SESSION_TIMEOUT.as_millis()
                        );
                        let set = conn.run("a short idle_session_timeout", &sql);
                        match tokio::time::timeout(timeout, set).await {
                            Ok(Ok(TxStatus::Idle)) => Ok(()),
                            Ok(Ok(status)) => Err(ServerError::Protocol(format!(
                                "SET idle_session_timeout left the connection in status {status}"
                            ))),
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err(ServerError::Timeout(timeout)),
                        }
                    }
                    _ => Ok(()),
                }
            }
            Ok(Err(ServerError::Query { code, message, .. })) => {
                info!(%code, %message, "the database's connection use cannot be read; pgwarm keeps its connections between invocations");
                self.headroom_readable.store(false, Ordering::Relaxed);
                Ok(())
            }
            Ok(Ok(status)) => Err(ServerError::Protocol(format!(
                "reading the connection use left the connection in status {status}"
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ServerError::Timeout(timeout)),
        }
    }

    pub(super) fn reads_headroom(&self) -> bool {
        self.settings.watch_headroom && self.headroom_readable.load(Ordering::Relaxed)
    }

    /// Whether the database is tight now (`headroom.rs`); never outside on-demand Lambda.
    pub(crate) fn is_tight(&self) -> bool {
        self.settings.watch_headroom && self.headroom.is_tight()
    }

    /// Whether the database's connection use is still to be read (no login or health check
    /// has read it yet) where it is watched.
    pub(crate) fn headroom_unknown(&self) -> bool {
        self.reads_headroom() && self.headroom.latest().is_none()
    }

    /// The newest reading of the database's connection use, if one was made.
    pub(crate) fn headroom(&self) -> Option<Reading> {
        self.headroom.latest()
    }

    /// Waits up to `within` for every lent connection to come back (a leaked transaction being
    /// rolled back), so that what follows a freeze finds them idle. Pinned ones are not waited
    /// for: they come back when their client lets its session state go.
    pub(crate) async fn lent_back(&self, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.lock().all_lent_pinned() || Instant::now() >= until {
                return;
            }
            if tokio::time::timeout_at(until, drained).await.is_err() {
                return;
            }
        }
    }

    /// Gives the idle server connections back to the database (Terminate) before a freeze;
    /// returns how many.
    pub(crate) fn close_idle(&self) -> usize {
        let idle = self.take_idle();
        let n = idle.len();
        for conn in idle {
            conn.close();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: [&str; 6]) -> Vec<Option<String>> {
        values.iter().map(|v| Some((*v).to_owned())).collect()
    }

    #[test]
    fn the_fullest_limit_decides() {
        let fullest = Use::fullest(&row(["30", "97", "12", "-1", "18", "20"])).unwrap();
        assert_eq!(
            fullest,
            Use {
                limit: Limit::Role,
                used: 18,
                of: 20
            }
        );
        assert!(fullest.tight());
        assert_eq!(fullest.to_string(), "18 of the role's CONNECTION LIMIT 20");
        let roomy = Use::fullest(&row(["30", "97", "12", "-1", "3", "-1"])).unwrap();
        assert_eq!(roomy.limit, Limit::Server);
        assert!(!roomy.tight());
    }

    #[test]
    fn half_used_is_tight_and_a_refusal_always_is() {
        let half = Use::fullest(&row(["10", "20", "0", "-1", "0", "-1"])).unwrap();
        assert!(half.tight());
        let headroom = Headroom::default();
        assert!(!headroom.is_tight(), "unknown is not tight");
        headroom.refused();
        assert!(headroom.is_tight());
        headroom.read(Use::fullest(&row(["1", "20", "0", "-1", "0", "-1"])).unwrap());
        assert!(!headroom.is_tight());
    }

    #[test]
    fn a_row_that_is_not_one_reads_as_nothing() {
        assert_eq!(Use::fullest(&[Some("x".into())]), None);
        assert_eq!(Use::fullest(&[]), None);
        let mut nulls = row(["1", "20", "0", "-1", "0", "-1"]);
        nulls[3] = None;
        assert_eq!(Use::fullest(&nulls), None);
    }
}
