//! The pool's state under its lock, and the hand-off between clients: idle connections, the
//! count of open slots, the queue of waiters and the lent connections. A connection that comes
//! back goes straight to the longest waiter; a lost one hands its slot on.

use super::queue::Queue;
use super::stats::Lent;
use super::wait::{InvocationDeadline, Wait};
use super::{Pool, PoolError};
use crate::server::ServerConn;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::{Arc, MutexGuard};
use tokio::sync::oneshot;
use tokio::time::Sleep;
use tracing::debug;

/// What a waiter is given, through a oneshot.
pub(super) enum Grant {
    Conn(Box<ServerConn>),
    /// Permission to open a connection in a slot someone gave up.
    Slot,
}

pub(super) struct State {
    /// Boxed, as everywhere in the pool: a connection changes hands at every transaction (idle
    /// list, grant, checkout, client), and a pointer moves where its few hundred bytes would be
    /// copied at each step.
    #[allow(
        clippy::vec_box,
        reason = "connections move out of the list, not only in it"
    )]
    pub(super) idle: Vec<Box<ServerConn>>,
    /// Connections that exist or are being opened: idle + checked out + connecting.
    pub(super) open: usize,
    pub(super) waiters: Queue,
    pub(super) closed: bool,
    /// `PAUSE`: new transactions wait, those under way finish.
    pub(super) paused: bool,
    /// Connections lent to clients, by id, for the admin console.
    pub(super) lent: LentMap,
    /// Logins and health checks under way.
    pub(super) logging_in: usize,
    pub(super) testing: usize,
    /// The Lambda invocation under way, whose deadline bounds waits.
    pub(super) invocation: Option<InvocationDeadline>,
}

/// The lent connections by id: an entry goes in and out at every transaction.
pub(super) type LentMap = HashMap<u64, Lent, BuildHasherDefault<IdHasher>>;

/// Hashes pgwarm's own connection ids, numbered in order, which no client chooses: a multiply
/// spreads them where SipHash's defence against chosen keys would cost more than the lookup.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the golden ratio's multiple moves the id's bits up to the ones the
        // table reads.
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Pool {
    /// Waits in the queue until `wait` ends, on `timer`.
    pub(super) async fn wait(
        self: &Arc<Pool>,
        rx: oneshot::Receiver<Grant>,
        wait: &Wait,
        mut timer: Pin<&mut Sleep>,
    ) -> Result<Grant, PoolError> {
        let mut waiter = Waiter::new(self, rx);
        timer.as_mut().reset(wait.until);
        let granted = tokio::select! {
            biased;
            grant = waiter.granted() => Some(grant),
            () = timer => None,
        };
        match granted {
            Some(Some(grant)) => Ok(grant),
            // The sender was dropped: the pool closed.
            Some(None) => Err(PoolError::Closed),
            // The slots were busy retrying logins, not serving clients: say so.
            None => Err(match self.outage.current() {
                Some(outage) => self.unavailable(outage, wait),
                None => PoolError::WaitTimeout {
                    waited: wait.waited(),
                    bound: wait.bound,
                    size: self.settings.size,
                },
            }),
        }
    }
    /// Takes every idle connection out of the pool, its slot freed, for the caller to close.
    #[allow(clippy::vec_box, reason = "each is closed or checked on its own")]
    pub(super) fn take_idle(&self) -> Vec<Box<ServerConn>> {
        let mut state = self.lock();
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len();
        idle
    }
    /// Puts a clean connection back, or hands it to the longest waiter.
    pub(super) fn checkin(&self, mut conn: Box<ServerConn>) {
        let now = std::time::Instant::now();
        conn.touch(now);
        let retire = if conn.cancel_in_flight() {
            Some("a cancel is on its way to it")
        } else if conn.age(now) >= self.settings.server_lifetime {
            Some("it is past PGWARM_SERVER_LIFETIME")
        } else if conn.is_fallback() && conn.age(now) >= self.settings.server_check_delay {
            Some("it went to the writer for the reader port, whose replicas are tried again")
        } else {
            None
        };
        if let Some(why) = retire {
            debug!(server = conn.id(), "closing server connection: {why}");
            let id = conn.id();
            conn.close();
            self.release_slot(Some(id));
            return;
        }
        let mut state = self.lock();
        self.unlend(&mut state, conn.id());
        if state.closed {
            state.open -= 1;
            drop(state);
            conn.close();
            return;
        }
        if state.paused {
            state.idle.push(conn);
            return;
        }
        if let Some(conn) = state.waiters.hand_conn(conn) {
            state.idle.push(conn);
        }
    }
    /// A connection is gone (`lent`: the id it was lent under): its slot goes to the longest
    /// waiter, or is freed.
    pub(super) fn release_slot(&self, lent: Option<u64>) {
        let mut state = self.lock();
        if let Some(id) = lent {
            self.unlend(&mut state, id);
        }
        if state.paused || state.waiters.hand(Grant::Slot).is_some() {
            state.open -= 1;
        }
    }
    pub(super) fn give_back(&self, grant: Grant) {
        match grant {
            Grant::Conn(conn) => self.checkin(conn),
            Grant::Slot => self.release_slot(None),
        }
    }
    /// Forgets a lent connection; the last one back lets `PAUSE` go on, and the last one not
    /// pinned lets the hold before a freeze go on.
    pub(super) fn unlend(&self, state: &mut State, id: u64) {
        let Some(lent) = state.lent.remove(&id) else {
            return;
        };
        if state.all_lent_pinned() {
            self.drained.notify_waiters();
        }
        if lent.pinned {
            self.pins_freed.notify_waiters();
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; recover the state rather than propagate.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A queued waiter; if it gives up after being granted something, the grant goes back.
pub(super) struct Waiter<'a> {
    rx: Option<oneshot::Receiver<Grant>>,
    pool: &'a Pool,
}

impl<'a> Waiter<'a> {
    pub(super) fn new(pool: &'a Pool, rx: oneshot::Receiver<Grant>) -> Waiter<'a> {
        Waiter { rx: Some(rx), pool }
    }

    /// What the waiter was handed; `None` when the pool closed. Waits forever once it has
    /// answered.
    pub(super) async fn granted(&mut self) -> Option<Grant> {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        let grant = rx.await.ok();
        self.rx = None;
        grant
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if let Ok(grant) = rx.try_recv() {
                self.pool.give_back(grant);
            }
        }
    }
}
