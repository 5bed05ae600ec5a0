//! Why a checkout failed, and what the waiting client is told: the SQLSTATE and a hint that names
//! the setting to change. A server's own refusal keeps the database's words (`ServerError`).

use super::outage::OutageView;
use super::wait::Bound;
use crate::protocol::{sqlstate, PgError};
use crate::server::ServerError;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub(crate) enum PoolError {
    #[error("waited {waited:?} for a server connection ({bound}); all {size} are busy")]
    WaitTimeout {
        waited: Duration,
        bound: Bound,
        size: usize,
    },
    /// The client's wait ran out while the database refused or did not answer logins.
    #[error("waited {waited:?} for the database to take a login ({bound}); {}", .outage.describe(*.max_connections))]
    Unavailable {
        waited: Duration,
        bound: Bound,
        outage: OutageView,
        /// The database's `max_connections`, when it is full and pgwarm could read it.
        max_connections: Option<u32>,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("pgwarm is shutting down")]
    Closed,
}

impl PoolError {
    /// What a client whose checkout failed is told.
    pub(crate) fn to_client(&self) -> PgError {
        match self {
            PoolError::WaitTimeout { bound, .. } => PgError::fatal(
                sqlstate::QUERY_CANCELED,
                self.to_string(),
            )
            .with_hint(match bound {
                Bound::QueryWait => {
                    "Raise PGWARM_POOL_SIZE or PGWARM_QUERY_WAIT_TIMEOUT, or shorten transactions."
                }
                Bound::Invocation { .. } => {
                    "The function's timeout came first: raise PGWARM_POOL_SIZE or the \
                         function's timeout, or shorten transactions (one left open holds a \
                         connection)."
                }
            }),
            PoolError::Unavailable { outage, bound, .. } => {
                let code = outage
                    .code
                    .clone()
                    .unwrap_or_else(|| sqlstate::CONNECTION_FAILURE.to_owned());
                PgError::fatal(&code, self.to_string()).with_hint(match bound {
                    Bound::QueryWait => {
                        "The database did not take logins in time; raise \
                         PGWARM_QUERY_WAIT_TIMEOUT to wait longer."
                    }
                    Bound::Invocation { .. } => {
                        "The database did not take logins before the function's timeout; raise \
                         the function's timeout to wait longer."
                    }
                })
            }
            PoolError::Server(server) => server.to_client(),
            PoolError::Closed => PgError::admin_shutdown(self.to_string()),
        }
    }
}
