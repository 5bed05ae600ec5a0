//! Opening server connections into slots: a new connection for a checkout that found no idle
//! one (retrying a login the database may get over, while also queueing for a connection
//! another client gives back), and the connections `PGWARM_MIN_POOL_SIZE` opens ahead of
//! clients.

use super::checkout::Checkout;
use super::outage::{self, Backoff};
use super::queue::Wants;
use super::slots::{Grant, Waiter};
use super::wait::Wait;
use super::{Pool, PoolError};
use crate::server::ServerConn;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{debug, warn};

impl Pool {
    /// Opening a connection is the cold path and its future is large (a whole login); boxing it
    /// keeps every client task's checkout state small.
    pub(super) fn fill(
        &self,
        slot: Checkout,
        wait: &Wait,
    ) -> Pin<Box<dyn Future<Output = Result<Checkout, PoolError>> + Send + '_>> {
        Box::pin(self.open_into(slot, *wait))
    }
    /// Opens a new connection into a slot already counted in `open`. On failure the slot is
    /// given back by the Checkout's drop. A login the database may get over by itself (it is
    /// restarting, failing over, or full) is retried with a backoff until the wait ends; other
    /// failures are the client's at once. While it retries, the client also queues (in the
    /// place its checkout began) for a connection another client gives back: when the
    /// database is full of pgwarm's own connections, that is the one that frees first.
    pub(super) async fn open_into(
        &self,
        mut slot: Checkout,
        wait: Wait,
    ) -> Result<Checkout, PoolError> {
        let deadline = wait.until;
        let mut backoff = Backoff::new();
        let mut given_back: Option<Waiter<'_>> = None;
        loop {
            let began = Instant::now();
            let login = self.login(deadline);
            // Once queued, the login races a connection given back: whichever comes first.
            let login = match &mut given_back {
                None => login.await,
                Some(waiter) => tokio::select! {
                    login = login => login,
                    grant = waiter.granted() => match grant {
                        Some(Grant::Conn(conn)) => return self.instead_of_login(slot, conn, &wait).await,
                        Some(Grant::Slot) => {
                            self.give_back(Grant::Slot);
                            given_back = None;
                            continue;
                        }
                        None => return Err(PoolError::Closed),
                    },
                },
            };
            let error = match login {
                Ok(conn) => {
                    self.outage.recovered();
                    slot.conn = Some(Box::new(conn));
                    return Ok(slot);
                }
                Err(e) if outage::is_transient(&e) => e,
                Err(e) => return Err(e.into()),
            };
            if Instant::now() >= deadline {
                // The attempt was cut short by the client's deadline: what it met is news about
                // the database only if nothing else is known.
                if self.outage.current().is_none() {
                    self.outage.failed(&error, began);
                }
                return Err(self.gave_up(&error, &wait));
            }
            if self.outage.failed(&error, began) {
                self.episode_started(&error).await;
            }
            self.counters.logins_retried.add(1);
            let waiter = match &mut given_back {
                Some(waiter) => waiter,
                None => {
                    // A connection given back during the login went idle, as nobody was queued
                    // for it then: it is this client's now.
                    let idle_or_queued = {
                        let mut state = self.lock();
                        match (!state.paused).then(|| state.idle.pop()).flatten() {
                            Some(conn) => Ok(conn),
                            None => Err(state.waiters.push(Wants::Connection, wait.since)),
                        }
                    };
                    match idle_or_queued {
                        Ok(conn) => return self.instead_of_login(slot, conn, &wait).await,
                        Err(rx) => given_back.insert(Waiter::new(self, rx)),
                    }
                }
            };
            // The client waits all of its time: the database may come back in the last bit.
            let pause =
                tokio::time::sleep_until((Instant::now() + backoff.next_pause()).min(deadline));
            tokio::select! {
                () = pause => {}
                grant = waiter.granted() => match grant {
                    Some(Grant::Conn(conn)) => return self.instead_of_login(slot, conn, &wait).await,
                    Some(Grant::Slot) => {
                        // Never handed to a client that holds a slot; queued again if ever.
                        self.give_back(Grant::Slot);
                        given_back = None;
                    }
                    None => return Err(PoolError::Closed),
                },
            }
            if Instant::now() >= deadline {
                return Err(self.gave_up(&error, &wait));
            }
        }
    }
    /// A connection another client gave back, taken by a client whose slot could not log in:
    /// the slot is given up (to a waiter, or freed) and the connection checked as any idle one.
    pub(super) async fn instead_of_login(
        &self,
        slot: Checkout,
        conn: Box<ServerConn>,
        wait: &Wait,
    ) -> Result<Checkout, PoolError> {
        debug!(
            server = conn.id(),
            "a login was being retried; took a connection given back instead"
        );
        let instead = Checkout::empty(&slot.pool);
        drop(slot);
        self.validate(instead, conn, wait).await
    }
    /// Opens up to `n` server connections at once and leaves them idle, so the first clients
    /// find them ready (`PGWARM_MIN_POOL_SIZE`, during Lambda Init). Returns how many it opened.
    pub(crate) async fn prefill(self: &Arc<Pool>, n: usize) -> usize {
        let mut opens = tokio::task::JoinSet::new();
        for _ in 0..n.min(self.settings.size) {
            let pool = Arc::clone(self);
            opens.spawn(async move { pool.checkout().await });
        }
        // Held until all are open, so each checkout opens a connection of its own.
        let mut opened = Vec::new();
        while let Some(done) = opens.join_next().await {
            match done {
                Ok(Ok(conn)) => opened.push(conn),
                Ok(Err(e)) => {
                    warn!(error = %e, "could not open a server connection ahead of clients")
                }
                Err(e) => warn!(error = %e, "opening a server connection ahead of clients failed"),
            }
        }
        let n = opened.len();
        for conn in opened {
            conn.release();
        }
        n
    }
}
