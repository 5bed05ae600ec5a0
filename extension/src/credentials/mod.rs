//! Where the database login comes from.
//!
//! The pool asks a [`CredentialSource`] every time it opens a server connection, never caching a
//! password itself, so sources that rotate (Secrets Manager) or expire (IAM tokens) plug in
//! behind the same small interface: the static source built from `PGWARM_DB_*`,
//! [`SecretCredentials`], which reads an RDS secret, and [`IamCredentials`], which signs RDS auth
//! tokens.

mod iam;
mod rds_secret;
mod secret;

pub use iam::{auth_token, IamCredentials, SigningKeys};
pub use secret::SecretCredentials;

use crate::config::TargetSettings;
use std::future::Future;
use std::pin::Pin;
use thiserror::Error;

/// Everything needed to open one server connection: the same shape as a static target, because
/// a source (a secret, a token) yields exactly that, possibly different each time.
pub type Credentials = TargetSettings;

#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("credentials are unavailable: {0}")]
    Unavailable(String),
}

pub type CredentialFuture<'a, T = Credentials> =
    Pin<Box<dyn Future<Output = Result<T, CredentialError>> + Send + 'a>>;

/// A source of database logins.
pub trait CredentialSource: Send + Sync + 'static {
    /// The login to use for the next server connection.
    fn credentials(&self) -> CredentialFuture<'_>;

    /// The database refused `rejected` (28P01, 28000): other logins worth one more try, best
    /// first, or none. A rotating source looks again at once, so that a password rotated under
    /// a running pool costs no failed client.
    fn after_rejection<'a>(
        &'a self,
        rejected: &'a Credentials,
    ) -> CredentialFuture<'a, Vec<Credentials>> {
        let _ = rejected;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// `RELOAD` from the admin console: read the source again now rather than when its copy
    /// ages out. Says what was done.
    fn reload(&self) -> CredentialFuture<'_, String> {
        Box::pin(async { Ok("the login is fixed (PGWARM_DB_*): nothing to read again".into()) })
    }

    /// Reads of an outside store (Secrets Manager calls) so far.
    fn reads(&self) -> u64 {
        0
    }
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
