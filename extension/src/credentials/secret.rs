//! The database login from an AWS Secrets Manager secret (`PGWARM_SECRET_ID`), through
//! `aws-config` and `aws-sdk-secretsmanager`: region and AWS credentials come from the function's
//! usual environment, `AWS_ENDPOINT_URL` redirects the calls (the tests' moto_server).
//!
//! The secret is read when a login is first needed, kept, and read again after
//! `PGWARM_SECRET_TTL`. A failed read while a copy is kept keeps serving that copy (with a
//! warning): the database may still accept it, and a Secrets Manager outage should not become a
//! pgwarm outage. When the database refuses the login, the secret is read again at once, and
//! during a rotation its `AWSPENDING` version is tried too; callers racing on the same refused
//! password share one read. Every AWS call is bounded by `PGWARM_SECRETS_TIMEOUT`.

use super::{rds_secret, CredentialError, CredentialFuture, CredentialSource, Credentials};
use crate::config::SecretSettings;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::Client;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use tracing::{info, warn};

/// After a failed read with a kept copy, the next attempt waits this long rather than every
/// connection trying (and waiting out the timeout) again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

pub struct SecretCredentials {
    settings: SecretSettings,
    client: OnceCell<Client>,
    cache: Mutex<Option<Cached>>,
    /// Held while reading the secret: concurrent callers wait for that read instead of making
    /// their own.
    reading: tokio::sync::Mutex<()>,
    /// GetSecretValue calls made, for logs and tests.
    calls: AtomicU64,
}

#[derive(Clone)]
struct Cached {
    login: Credentials,
    /// When to read the secret again.
    refresh_at: Instant,
}

impl SecretCredentials {
    pub fn new(settings: SecretSettings) -> SecretCredentials {
        SecretCredentials {
            settings,
            client: OnceCell::new(),
            cache: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
            calls: AtomicU64::new(0),
        }
    }

    /// GetSecretValue calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Option<Cached> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn keep(&self, login: Credentials, fresh_for: Duration) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            login,
            refresh_at: Instant::now() + fresh_for,
        });
    }

    /// The kept login if it is fresh; otherwise one read (shared with concurrent callers).
    async fn current(&self) -> Result<Credentials, CredentialError> {
        if let Some(cached) = self.cached().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(cached.login);
        }
        let _reading = self.reading.lock().await;
        let kept = self.cached();
        if let Some(cached) = kept.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(cached.login.clone());
        }
        match self.read("AWSCURRENT").await {
            Ok(Some(login)) => {
                self.keep(login.clone(), self.settings.ttl);
                Ok(login)
            }
            Ok(None) => Err(CredentialError::Unavailable(format!(
                "secret {} has no AWSCURRENT version",
                self.settings.secret_id
            ))),
            Err(e) => match kept {
                Some(cached) => {
                    warn!(error = %e, "could not read the secret again; using the copy pgwarm has");
                    self.keep(cached.login.clone(), RETRY_AFTER_FAILURE);
                    Ok(cached.login)
                }
                None => Err(e),
            },
        }
    }

    /// Logins to try after `rejected` was refused: the secret as it is now, if it changed, else
    /// its pending version during a rotation (RDS's rotation sets the new password in the
    /// database before it makes that version current).
    async fn after_refusal(
        &self,
        rejected: &Credentials,
    ) -> Result<Vec<Credentials>, CredentialError> {
        let _reading = self.reading.lock().await;
        if let Some(cached) = self.cached().filter(|c| c.login != *rejected) {
            // Someone else read it again while this caller waited.
            return Ok(vec![cached.login]);
        }
        if let Some(now) = self.read("AWSCURRENT").await?.filter(|l| l != rejected) {
            info!(secret = %self.settings.secret_id, "the secret changed; retrying the login with it");
            self.keep(now.clone(), self.settings.ttl);
            return Ok(vec![now]);
        }
        match self.read("AWSPENDING").await {
            Ok(Some(pending)) if pending != *rejected => {
                info!(secret = %self.settings.secret_id, "retrying the login with the secret's pending version (rotation under way)");
                // Until the rotation makes it current, keep it only briefly.
                self.keep(pending.clone(), RETRY_AFTER_FAILURE.min(self.settings.ttl));
                Ok(vec![pending])
            }
            // No pending version (read() says None) is the usual case outside a rotation.
            Ok(_) => Ok(Vec::new()),
            Err(e) => {
                warn!(error = %e, "could not look for a pending version of the secret");
                Ok(Vec::new())
            }
        }
    }

    /// One GetSecretValue of `stage`; `Ok(None)` when the secret has no such version.
    async fn read(&self, stage: &str) -> Result<Option<Credentials>, CredentialError> {
        let id = &self.settings.secret_id;
        let timeout = self.settings.timeout;
        let call = async {
            let client = self.client.get_or_init(new_client).await;
            self.calls.fetch_add(1, Ordering::Relaxed);
            client
                .get_secret_value()
                .secret_id(id)
                .version_stage(stage)
                .send()
                .await
        };
        let started = Instant::now();
        let output = match tokio::time::timeout(timeout, call).await {
            Err(_) => {
                return Err(CredentialError::Unavailable(format!(
                    "reading secret {id} took longer than {timeout:?} (PGWARM_SECRETS_TIMEOUT)"
                )))
            }
            Ok(Err(e)) => {
                let not_found = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception());
                if not_found && stage != "AWSCURRENT" {
                    return Ok(None);
                }
                return Err(CredentialError::Unavailable(format!(
                    "could not read secret {id} ({stage}): {}",
                    DisplayErrorContext(&e)
                )));
            }
            Ok(Ok(output)) => output,
        };
        info!(secret = %id, stage, elapsed_ms = started.elapsed().as_millis() as u64, "read the secret");
        let Some(text) = output.secret_string() else {
            return Err(CredentialError::Unavailable(format!(
                "secret {id} holds binary data, not the JSON RDS writes"
            )));
        };
        rds_secret::parse(id, text, &self.settings.overrides)
            .map(Some)
            .map_err(|e| CredentialError::Unavailable(e.to_string()))
    }
}

impl CredentialSource for SecretCredentials {
    fn credentials(&self) -> CredentialFuture<'_> {
        Box::pin(self.current())
    }

    fn after_rejection<'a>(
        &'a self,
        rejected: &'a Credentials,
    ) -> CredentialFuture<'a, Vec<Credentials>> {
        Box::pin(self.after_refusal(rejected))
    }

    fn reload(&self) -> CredentialFuture<'_, String> {
        Box::pin(async {
            let _reading = self.reading.lock().await;
            let login = self.read("AWSCURRENT").await?.ok_or_else(|| {
                CredentialError::Unavailable(format!(
                    "secret {} has no AWSCURRENT version",
                    self.settings.secret_id
                ))
            })?;
            self.keep(login, self.settings.ttl);
            Ok(format!("read secret {} again", self.settings.secret_id))
        })
    }

    fn reads(&self) -> u64 {
        self.calls()
    }
}

/// The AWS SDK's configuration, on rustls with ring (the TLS stack pgwarm already carries), read
/// from the environment like any AWS SDK's: AWS_REGION, the function's credentials,
/// AWS_ENDPOINT_URL.
pub(super) async fn sdk_config() -> aws_types::SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}

async fn new_client() -> Client {
    Client::new(&sdk_config().await)
}
