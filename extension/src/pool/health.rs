//! Whether an idle connection may be lent: too old, closed by the database while idle, or idle
//! long enough to need a health check; all of them at once after a Lambda thaw. Also the
//! questions pgwarm asks on a connection that happens to be idle (the database's connection
//! use, for the metrics).

use super::checkout::Checkout;
use super::stats::Work;
use super::wait::Wait;
use super::{Pool, PoolError};
use crate::config::SessionAttrs;
use crate::protocol::backend::TxStatus;
use crate::server::ServerConn;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

impl Pool {
    /// Checks a connection that sat idle; replaces it in the same slot if it is dead or too old.
    pub(super) async fn validate(
        &self,
        mut slot: Checkout,
        mut conn: Box<ServerConn>,
        wait: &Wait,
    ) -> Result<Checkout, PoolError> {
        let now = std::time::Instant::now();
        if conn.age(now) >= self.settings.server_lifetime {
            debug!(
                server = conn.id(),
                "server connection reached PGWARM_SERVER_LIFETIME"
            );
            conn.close();
            return self.fill(slot, wait).await;
        }
        if !conn.is_quiet() {
            info!(
                server = conn.id(),
                "idle server connection was closed by the database; replacing it"
            );
            self.counters.reconnects.add(1);
            return self.fill(slot, wait).await;
        }
        if conn.idle_for(now) >= self.settings.server_check_delay {
            self.counters.health_checks.add(1);
            // Boxed: a cold path whose future would otherwise sit in every checkout's state.
            let check = tokio::time::timeout(
                self.attempt_timeout(wait.until),
                Box::pin(self.health_check(&mut conn)),
            );
            let checked = {
                let _testing = self.under_way(Work::Testing);
                check.await
            };
            if !matches!(checked, Ok(Ok(TxStatus::Idle))) {
                self.counters.reconnects.add(1);
            }
            match checked {
                Ok(Ok(TxStatus::Idle)) => {}
                Ok(Ok(status)) => {
                    warn!(server = conn.id(), %status, "server connection was not idle; replacing it");
                    conn.close();
                    return self.fill(slot, wait).await;
                }
                Ok(Err(e)) => {
                    info!(server = conn.id(), error = %e, "server connection failed its health check; replacing it");
                    return self.fill(slot, wait).await;
                }
                Err(_) => {
                    info!(
                        server = conn.id(),
                        "server connection health check timed out; replacing it"
                    );
                    return self.fill(slot, wait).await;
                }
            }
        }
        slot.conn = Some(conn);
        Ok(slot)
    }
    /// Validates, all at once, the idle connections that sat longer than
    /// `PGWARM_SERVER_CHECK_DELAY`, replacing the dead ones. Run when Lambda thaws the environment, so that the handler's first query, which
    /// starts at the same moment, meets a live connection instead of paying for the check or the
    /// replacement itself. Returns how many were checked.
    pub(crate) async fn check_idle(self: &Arc<Pool>) -> usize {
        let stale: Vec<Box<ServerConn>> = {
            let mut state = self.lock();
            let delay = self.settings.server_check_delay;
            let now = std::time::Instant::now();
            let (stale, fresh) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|conn| conn.idle_for(now) >= delay);
            state.idle = fresh;
            stale
        };
        let checked = stale.len();
        self.counters.thaw_checks.add(checked as u64);
        let mut checks = tokio::task::JoinSet::new();
        for conn in stale {
            let pool = Arc::clone(self);
            let id = conn.id();
            checks.spawn(async move {
                let slot = Checkout::empty(&pool);
                let wait = Wait::new(Instant::now(), pool.settings.query_wait_timeout, None);
                match pool.validate(slot, conn, &wait).await {
                    Ok(checked) => {
                        if checked.id() != id {
                            pool.counters.thaw_replaced.add(1);
                        }
                        checked.release()
                    }
                    Err(e) => {
                        info!(error = %e, "could not replace a server connection after the thaw")
                    }
                }
            });
        }
        while checks.join_next().await.is_some() {}
        checked
    }
    /// Runs `sql` on an idle connection, if one is idle now (none is opened or waited for, and
    /// none is taken while paused), and returns its first row. A connection that fails or does
    /// not answer within `PGWARM_CONNECT_TIMEOUT` is closed.
    pub(crate) async fn query_idle(
        &self,
        what: &'static str,
        sql: &str,
    ) -> Option<Vec<Option<String>>> {
        let mut conn = {
            let mut state = self.lock();
            if state.paused || state.closed {
                return None;
            }
            state.idle.pop()?
        };
        let mut first = None;
        let read = conn.query(what, sql, |row| {
            first.get_or_insert(row);
        });
        match tokio::time::timeout(self.settings.connect_timeout, read).await {
            Ok(Ok(TxStatus::Idle)) => {
                self.checkin(conn);
                first
            }
            _ => {
                debug!(server = conn.id(), "{what} failed; closing the connection");
                conn.close();
                self.release_slot(None);
                None
            }
        }
    }

    /// After the server refused a write as read-only (25006): whether it is still a server
    /// `PGWARM_TARGET_SESSION_ATTRS` accepts. A writer that turned read-only (demoted, or
    /// `default_transaction_read_only` set for everyone) is not: its idle connections are
    /// closed, and the next logins look for the writer on every host. A client's own `SET
    /// TRANSACTION READ ONLY` leaves it as it was.
    pub(crate) async fn still_fits(&self, conn: &mut Checkout) -> bool {
        // Only targets that refuse read-only servers care: under `read-only` or `standby` a
        // 25006 is the normal answer, and prefer-standby takes a primary as a second best.
        let attrs = self.settings.target_session_attrs;
        if !matches!(attrs, SessionAttrs::ReadWrite | SessionAttrs::Primary) {
            return true;
        }
        let reread = tokio::time::timeout(self.settings.connect_timeout, conn.reread_role()).await;
        let role = match reread {
            Ok(Ok(role)) => role,
            Ok(Err(e)) => {
                info!(server = conn.id(), error = %e, "could not read a server's role after it refused a write; closing it");
                return false;
            }
            Err(_) => {
                info!(
                    server = conn.id(),
                    "no answer on a server's role after it refused a write; closing it"
                );
                return false;
            }
        };
        if role.satisfies(attrs, false) {
            return true;
        }
        let idle = self.take_idle();
        warn!(
            server = conn.id(),
            host = %conn.host(),
            role = role.as_str(),
            closed = idle.len(),
            "a server refused a write and is now read-only; closing its connections and looking for the writer"
        );
        self.counters.demoted.add(1);
        for conn in idle {
            conn.close();
        }
        false
    }
}
