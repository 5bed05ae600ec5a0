//! Connections their client keeps between transactions for the session state it holds
//! (`PGWARM_PINNING`). A pinned connection is lent like any other, so the others wait for it as
//! for a busy pool; `PGWARM_MAX_PINNED` caps how many may be, so that clients holding state
//! cannot take every connection from those that hold none; a client that would pin one more
//! waits, as for a busy pool, for another to let its state go (two migration runners taking
//! turns at one lock unpin and pin at nearly the same moment). The hold before a Lambda freeze
//! waits for lent connections to come back, but not for pinned ones, which come back only when
//! their client lets its state go.

use super::slots::State;
use super::Pool;
use crate::protocol::{sqlstate, PgError};
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// A client's state would pin one connection more than `PGWARM_MAX_PINNED` allows.
#[derive(Debug, Error)]
#[error("{pinned} clients already keep their server connection (PGWARM_MAX_PINNED={limit})")]
pub(crate) struct PinLimit {
    pub(crate) pinned: usize,
    pub(crate) limit: usize,
}

impl PinLimit {
    /// What the client is told before it is closed: its state cannot be kept, and goes with the
    /// server connection.
    pub(crate) fn to_client(&self, state: &str) -> PgError {
        PgError::fatal(
            sqlstate::CONFIGURATION_LIMIT_EXCEEDED,
            format!(
                "too many clients hold session state: {self}; this client's ({state}) is \
                 dropped with its server connection"
            ),
        )
        .with_hint(
            "Raise PGWARM_MAX_PINNED (and PGWARM_POOL_SIZE), or end the state in the \
             transaction that makes it (pg_advisory_unlock_all(), UNLISTEN *, DISCARD TEMP).",
        )
    }
}

impl State {
    /// Whether every connection still lent is pinned (none at all counts).
    pub(super) fn all_lent_pinned(&self) -> bool {
        self.lent.values().all(|lent| lent.pinned)
    }

    fn pinned(&self) -> usize {
        self.lent.values().filter(|lent| lent.pinned).count()
    }
}

impl Pool {
    /// The lent connection `id` stays with its client between transactions, once the limit
    /// allows one more, waiting up to `within` for that.
    pub(crate) async fn pin(&self, id: u64, within: Duration) -> Result<(), PinLimit> {
        let until = Instant::now() + within;
        loop {
            let freed = self.pins_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.try_pin(id) {
                Err(limit) if Instant::now() < until => {
                    if tokio::time::timeout_at(until, freed).await.is_err() {
                        return Err(limit);
                    }
                }
                result => return result,
            }
        }
    }

    fn try_pin(&self, id: u64) -> Result<(), PinLimit> {
        let mut state = self.lock();
        let pinned = state.pinned();
        let limit = self.settings.max_pinned;
        let Some(lent) = state.lent.get_mut(&id) else {
            return Ok(());
        };
        if !lent.pinned && pinned >= limit {
            return Err(PinLimit { pinned, limit });
        }
        lent.pinned = true;
        if state.all_lent_pinned() {
            self.drained.notify_waiters();
        }
        Ok(())
    }

    /// The lent connection `id` is shared again at the end of its client's transaction.
    pub(crate) fn unpin(&self, id: u64) {
        if let Some(lent) = self.lock().lent.get_mut(&id) {
            lent.pinned = false;
        }
        self.pins_freed.notify_waiters();
    }

    /// How many connections are pinned now.
    pub(crate) fn pinned(&self) -> usize {
        self.lock().pinned()
    }
}
