//! RDS IAM database authentication (`PGWARM_AUTH=iam`): the password is an auth token, a SigV4
//! presigned `rds-db:connect` URL made locally from the function's AWS credentials, valid for
//! 15 minutes. RDS accepts it over TLS only (the settings refuse a mode without TLS).
//!
//! Signed with `aws-sigv4`, which the SDK already brings, rather than `aws-sdk-rds`'s token
//! generator: that crate is one of the SDK's largest and would add minutes to the build and
//! megabytes to the layer for one function. A token is kept for 10 minutes, so it is replaced
//! well before it expires, and made anew at once when the database refuses one.

use super::{CredentialError, CredentialFuture, CredentialSource, Credentials};
use crate::config::{Secret, TargetSettings};
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::OnceCell;
use tracing::debug;

/// How long RDS accepts a token (its maximum).
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// A token is replaced after this long, 5 minutes before it would expire.
const TOKEN_REFRESH: Duration = Duration::from_secs(600);

/// The AWS keys a token is signed with.
pub struct SigningKeys<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// The auth token for `user` at `host:port` in `region`, signed at `time`: the presigned URL
/// without its scheme, as RDS expects it in the password field.
pub fn auth_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    keys: &SigningKeys<'_>,
    time: SystemTime,
) -> Result<String, String> {
    let credentials = aws_credential_types::Credentials::new(
        keys.access_key_id,
        keys.secret_access_key,
        keys.session_token.map(str::to_owned),
        None,
        "pgwarm",
    );
    let identity: Identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.expires_in = Some(TOKEN_LIFETIME);
    settings.signature_location = SignatureLocation::QueryParams;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?;
    let base = format!(
        "{host}:{port}/?Action=connect&DBUser={}",
        percent_encode(user)
    );
    let url = format!("https://{base}");
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::empty())
        .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(request, &params.into())
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut token = base;
    for (name, value) in instructions.params() {
        token.push('&');
        token.push_str(name);
        token.push('=');
        token.push_str(&percent_encode(value));
    }
    Ok(token)
}

/// RFC 3986 encoding: everything but unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Logins with a fresh auth token as the password.
pub struct IamCredentials {
    target: TargetSettings,
    timeout: Duration,
    sdk: OnceCell<aws_types::SdkConfig>,
    kept: Mutex<Option<(Credentials, Instant)>>,
}

impl IamCredentials {
    /// `target` without a password; `timeout` bounds getting the AWS credentials.
    pub fn new(target: TargetSettings, timeout: Duration) -> IamCredentials {
        IamCredentials {
            target,
            timeout,
            sdk: OnceCell::new(),
            kept: Mutex::new(None),
        }
    }

    async fn login(&self, fresh: bool) -> Result<Credentials, CredentialError> {
        if !fresh {
            let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some((login, _)) = kept.filter(|(_, made)| made.elapsed() < TOKEN_REFRESH) {
                return Ok(login);
            }
        }
        let sdk = self.sdk.get_or_init(super::secret::sdk_config).await;
        let unavailable = |why: String| CredentialError::Unavailable(why);
        let region = sdk
            .region()
            .ok_or_else(|| {
                unavailable("IAM authentication needs the AWS region (AWS_REGION)".into())
            })?
            .to_string();
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| unavailable("IAM authentication found no AWS credentials".into()))?;
        let keys = tokio::time::timeout(self.timeout, provider.provide_credentials())
            .await
            .map_err(|_| {
                unavailable(format!(
                    "getting AWS credentials took longer than {:?} (PGWARM_SECRETS_TIMEOUT)",
                    self.timeout
                ))
            })?
            .map_err(|e| unavailable(format!("no AWS credentials for IAM authentication: {e}")))?;
        let t = &self.target;
        let token = auth_token(
            &t.host,
            t.port,
            &t.user,
            &region,
            &SigningKeys {
                access_key_id: keys.access_key_id(),
                secret_access_key: keys.secret_access_key(),
                session_token: keys.session_token(),
            },
            SystemTime::now(),
        )
        .map_err(|e| unavailable(format!("could not sign an RDS auth token: {e}")))?;
        debug!(user = %t.user, host = %t.host, "made an RDS auth token");
        let login = Credentials {
            password: Some(Secret::new(token)),
            ..t.clone()
        };
        *self.kept.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((login.clone(), Instant::now()));
        Ok(login)
    }
}

impl CredentialSource for IamCredentials {
    fn credentials(&self) -> CredentialFuture<'_> {
        Box::pin(self.login(false))
    }

    fn after_rejection<'a>(
        &'a self,
        rejected: &'a Credentials,
    ) -> CredentialFuture<'a, Vec<Credentials>> {
        Box::pin(async move {
            // The function's role may have new keys since: sign again, once.
            let fresh = self.login(true).await?;
            Ok(if fresh != *rejected {
                vec![fresh]
            } else {
                Vec::new()
            })
        })
    }

    fn reload(&self) -> CredentialFuture<'_, String> {
        Box::pin(async {
            self.login(true).await?;
            Ok("signed a new IAM auth token".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// The test vector of AWS's own Rust SDK (smithy-rs, `rds_auth_token.rs`): fixed keys,
    /// region, endpoint, user and time, and the token its generator must produce.
    #[test]
    fn matches_the_aws_sdk_test_vector() {
        let token = auth_token(
            "prod-instance.us-east-1.rds.amazonaws.com",
            3306,
            "peccy",
            "us-east-1",
            &SigningKeys {
                access_key_id: "akid",
                secret_access_key: "secret",
                session_token: None,
            },
            UNIX_EPOCH + Duration::from_secs(1_724_709_600),
        )
        .unwrap();
        assert_eq!(
            token,
            "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request\
             &X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
        );
    }

    #[test]
    fn a_session_token_is_signed_and_encoded() {
        let token = auth_token(
            "db.example.com",
            5432,
            "app",
            "eu-west-1",
            &SigningKeys {
                access_key_id: "AKID",
                secret_access_key: "secret",
                session_token: Some("tok+en/with=chars"),
            },
            UNIX_EPOCH + Duration::from_secs(1_724_709_600),
        )
        .unwrap();
        assert!(
            token.contains("&X-Amz-Security-Token=tok%2Ben%2Fwith%3Dchars"),
            "{token}"
        );
        assert!(token.starts_with("db.example.com:5432/?Action=connect&DBUser=app&"));
    }
}
