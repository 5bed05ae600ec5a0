//! What can go wrong with a server connection, and how each failure is told to a client.

use crate::credentials::CredentialError;
use crate::protocol::PgError;
use std::io;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub(crate) enum ServerError {
    #[error("could not connect to the database at {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// Limited by `PGWARM_CONNECT_TIMEOUT`, or by what was left of the client's wait.
    #[error("the database did not finish the login within {0:?}")]
    Timeout(Duration),
    #[error("the database refused the login: {message} (SQLSTATE {code})")]
    Rejected { code: String, message: String },
    #[error("the database asked for a password but PGWARM_DB_PASSWORD is not set")]
    NoPassword,
    #[error("the database asked for an authentication method pgwarm does not support ({0})")]
    UnsupportedAuth(String),
    #[error("the server connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the server connection closed unexpectedly")]
    Closed,
    #[error("unexpected message from the database: {0}")]
    Protocol(String),
    #[error("the database answered {message} (SQLSTATE {code}) to {what}")]
    Query {
        what: &'static str,
        code: String,
        message: String,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// No host had a server that will do: a failover under way, a list of hosts without the
    /// server `PGWARM_TARGET_SESSION_ATTRS` asks for, or no replica up for the reader port.
    #[error("{wanted}: {found}")]
    NoServerFits {
        /// What was looked for, naming the setting that asks for it.
        wanted: String,
        /// What each host was, or why it could not be asked.
        found: String,
    },
}

impl ServerError {
    /// The FATAL a waiting client gets when no server connection could be had for it. A login the
    /// database refused keeps the database's own SQLSTATE, so drivers classify it correctly.
    pub(crate) fn to_client(&self) -> PgError {
        match self {
            ServerError::Rejected { code, message } => PgError::fatal(
                code,
                format!("pgwarm could not log in to the database: {message}"),
            ),
            other => {
                PgError::connection_failure(format!("pgwarm could not reach the database: {other}"))
            }
        }
    }
}
