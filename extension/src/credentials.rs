//! Where the database login comes from.
//!
//! The pool asks a [`CredentialSource`] every time it opens a server connection, never caching a
//! password itself, so sources that rotate (Secrets Manager) or expire (IAM tokens) can plug in
//! behind the same small interface. Today there is the static source built from `PGWARM_DB_*`.

use crate::config::TargetSettings;
use std::future::Future;
use std::pin::Pin;
use thiserror::Error;

/// Everything needed to open one server connection: the same shape as the configured target,
/// because a source (a secret, a token) yields exactly that, possibly different each time.
pub type Credentials = TargetSettings;

#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("credentials are unavailable: {0}")]
    Unavailable(String),
}

pub type CredentialFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, CredentialError>> + Send + 'a>>;

/// A source of database logins.
pub trait CredentialSource: Send + Sync + 'static {
    /// The login to use for the next server connection.
    fn credentials(&self) -> CredentialFuture<'_>;

    /// Called when the database rejected the last login, so a caching source can refetch.
    fn invalidate(&self) {}
}

/// Credentials fixed at start-up from `PGWARM_DB_*`.
pub struct StaticCredentials(Credentials);

impl StaticCredentials {
    pub fn new(target: &TargetSettings) -> StaticCredentials {
        StaticCredentials(target.clone())
    }
}

impl CredentialSource for StaticCredentials {
    fn credentials(&self) -> CredentialFuture<'_> {
        let creds = self.0.clone();
        Box::pin(async move { Ok(creds) })
    }
}
