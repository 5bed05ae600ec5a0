//! Making a server connection fit for its next client when one gives it back: ROLLBACK of a
//! transaction the client left open, the reset query in session mode, and the session settings
//! read back when the client changed them. It is bounded by a timeout of its own: a backend
//! that cannot answer that quickly is closed rather than lent, and a leaving client's clean-up
//! never waits as long as a login may.

use super::{ServerConn, ServerError, SessionSettings};
use crate::protocol::backend::TxStatus;
use std::time::Duration;
use thiserror::Error;
use tracing::debug;

/// A healthy backend answers ROLLBACK, DISCARD ALL or the settings query in milliseconds.
pub(crate) const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a returning connection needs before it is lent again.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cleanup<'a> {
    /// The client left a transaction open (status T or E).
    pub(crate) rollback: bool,
    /// Session mode's `PGWARM_SERVER_RESET_QUERY`, if there is one.
    pub(crate) reset_query: Option<&'a str>,
    /// Session settings may have changed: they are read back, for the next client to compare
    /// its own with.
    pub(crate) read_settings: bool,
}

/// Why a returning connection is closed instead of lent again.
#[derive(Debug, Error)]
pub(crate) enum CleanupError {
    #[error("{what} left it in transaction status {status}")]
    NotIdle {
        what: &'static str,
        status: TxStatus,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("the clean-up took longer than {0:?}")]
    TimedOut(Duration),
}

impl ServerConn {
    /// Does `work`, within [`CLEANUP_TIMEOUT`]. An error means the connection must be closed.
    pub(crate) async fn clean_up(&mut self, work: Cleanup<'_>) -> Result<(), CleanupError> {
        within(self.clean_up_now(work)).await?
    }

    /// The session settings read back after a transaction changed them, within
    /// [`CLEANUP_TIMEOUT`]; they become the connection's own.
    pub(crate) async fn settings_after_change(&mut self) -> Result<SessionSettings, CleanupError> {
        Ok(within(self.read_session_settings()).await??)
    }

    async fn clean_up_now(&mut self, work: Cleanup<'_>) -> Result<(), CleanupError> {
        if work.rollback {
            debug!(
                server = self.id(),
                "rolling back the transaction the client left open"
            );
            self.expect_idle("ROLLBACK", "ROLLBACK").await?;
        }
        if let Some(query) = work.reset_query {
            self.expect_idle("PGWARM_SERVER_RESET_QUERY", query).await?;
        }
        if work.read_settings || work.reset_query.is_some() {
            self.read_session_settings().await?;
        }
        Ok(())
    }

    async fn expect_idle(&mut self, what: &'static str, sql: &str) -> Result<(), CleanupError> {
        match self.run(what, sql).await? {
            TxStatus::Idle => Ok(()),
            status => Err(CleanupError::NotIdle { what, status }),
        }
    }
}

async fn within<T>(work: impl std::future::Future<Output = T>) -> Result<T, CleanupError> {
    tokio::time::timeout(CLEANUP_TIMEOUT, work)
        .await
        .map_err(|_| CleanupError::TimedOut(CLEANUP_TIMEOUT))
}
