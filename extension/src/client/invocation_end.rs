//! The end of a Lambda invocation, as the sessions see it.
//!
//! A handler that returns (or fails) with a transaction still open on a connection it never
//! closed has leaked it: nothing in that invocation will commit it, and psycopg's default leaves
//! every connection in a transaction after its first query. In transaction mode that client
//! keeps one of the environment's few server connections for as long as the environment lives,
//! and two such leaks stop a pool of 2 for good. When pgwarm learns that an invocation has
//! ended (its `platform.runtimeDone`, or at the latest the next INVOKE), every client idle
//! inside a transaction since before then is ended: the transaction is rolled back, the server
//! connection goes back to the pool, and the client, should its handler come back to it, reads
//! a FATAL that says why.

use crate::counter::Counter;
use crate::protocol::{sqlstate, PgError};
use tokio::sync::watch;
use tokio::time::Instant;

/// Tells the sessions when the latest invocation ended.
#[derive(Debug)]
pub(crate) struct InvocationEnds {
    latest: watch::Sender<Option<Instant>>,
    /// Transactions ended because their invocation had.
    pub(crate) leaked: Counter,
}

impl Default for InvocationEnds {
    fn default() -> InvocationEnds {
        InvocationEnds {
            latest: watch::channel(None).0,
            leaked: Counter::default(),
        }
    }
}

impl InvocationEnds {
    /// The invocations before `at` have ended: a transaction idle since before `at` was left
    /// open by one of them.
    pub(crate) fn ended(&self, at: Instant) {
        self.latest.send_replace(Some(at));
    }

    pub(crate) fn watch(&self) -> EndWatch {
        EndWatch {
            ends: self.latest.subscribe(),
            idle_since: None,
        }
    }
}

/// One session's view: whether the transaction it sits idle in has outlived its invocation.
#[derive(Debug)]
pub(crate) struct EndWatch {
    ends: watch::Receiver<Option<Instant>>,
    /// Since when the client has sat idle inside a transaction.
    idle_since: Option<Instant>,
}

impl EndWatch {
    /// The client is, or is not, idle inside a transaction now.
    pub(crate) fn idle_in_transaction(&mut self, idle: bool) {
        match (idle, self.idle_since) {
            (true, None) => self.idle_since = Some(Instant::now()),
            (false, _) => self.idle_since = None,
            (true, Some(_)) => {}
        }
    }

    /// Completes when an invocation ends after the client went idle in its transaction: the
    /// transaction was leaked. Pending while the client is not idle in a transaction, and
    /// forever outside Lambda.
    pub(crate) async fn leaked(&mut self) {
        loop {
            let Some(since) = self.idle_since else {
                return std::future::pending().await;
            };
            if self.ends.borrow_and_update().is_some_and(|end| end > since) {
                return;
            }
            if self.ends.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// What the client of a leaked transaction reads when it comes back.
pub(crate) fn leaked_error() -> PgError {
    PgError::fatal(
        sqlstate::IDLE_IN_TRANSACTION_TIMEOUT,
        "terminating connection: its transaction was left open by a Lambda invocation that has \
         ended; pgwarm rolled it back and gave its server connection to others",
    )
    .with_hint(
        "Commit or roll back before the handler returns, and close connections when done (a \
         `with` block, or `finally`).",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_transaction_idle_since_before_an_end_is_leaked_and_one_begun_after_is_not() {
        let ends = InvocationEnds::default();
        let mut watch = ends.watch();
        watch.idle_in_transaction(true);
        tokio::time::sleep(Duration::from_millis(2)).await;
        ends.ended(Instant::now());
        let leaked = tokio::time::timeout(Duration::from_secs(1), watch.leaked()).await;
        assert!(leaked.is_ok(), "idle since before the end");

        let mut later = ends.watch();
        later.idle_in_transaction(true);
        let leaked = tokio::time::timeout(Duration::from_millis(50), later.leaked()).await;
        assert!(leaked.is_err(), "idle since after the end: not leaked");
        later.idle_in_transaction(false);
        ends.ended(Instant::now());
        let leaked = tokio::time::timeout(Duration::from_millis(50), later.leaked()).await;
        assert!(leaked.is_err(), "not idle in a transaction: nothing to end");
    }
}
