//! Where the database login comes from: `PGWARM_AUTH`, `PGWARM_SECRET_ID` and the `PGWARM_DB_*`
//! variables, which are the whole login in `password` mode and override single fields of the
//! secret in `secret` mode.

use super::{defaults, invalid, ConfigError, Env, Secret};
use std::time::Duration;

/// Where the database is and who pgwarm logs in as: one complete login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSettings {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: Option<Secret>,
}

/// `PGWARM_DB_*` as given; in secret mode each one set replaces the secret's field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbOverrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// A Secrets Manager secret holding the login in the JSON form RDS writes.
#[derive(Debug, Clone)]
pub struct SecretSettings {
    /// Name or ARN (`PGWARM_SECRET_ID`).
    pub secret_id: String,
    pub overrides: DbOverrides,
    /// Re-read after this long (`PGWARM_SECRET_TTL`).
    pub ttl: Duration,
    /// Bound on every AWS call (`PGWARM_SECRETS_TIMEOUT`).
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum CredentialSettings {
    /// `PGWARM_AUTH=password`: the login is `PGWARM_DB_*`.
    Static(TargetSettings),
    /// `PGWARM_AUTH=secret`: the login is read from Secrets Manager.
    Secret(SecretSettings),
}

impl CredentialSettings {
    /// The database host when it is known before any secret is read.
    pub fn known_host(&self) -> Option<&str> {
        match self {
            CredentialSettings::Static(target) => Some(&target.host),
            CredentialSettings::Secret(secret) => secret.overrides.host.as_deref(),
        }
    }

    /// For the start-up log line: where the login comes from, without any secret value.
    pub fn describe(&self) -> String {
        match self {
            CredentialSettings::Static(t) => format!("{}:{}/{}", t.host, t.port, t.dbname),
            CredentialSettings::Secret(s) => format!("secret {}", s.secret_id),
        }
    }
}

pub(super) fn parse(env: &Env<'_>) -> Result<CredentialSettings, ConfigError> {
    let overrides = DbOverrides {
        host: env.get("PGWARM_DB_HOST").filter(|h| !h.trim().is_empty()),
        port: match env.get("PGWARM_DB_PORT") {
            None => None,
            Some(_) => Some(env.parse_or("PGWARM_DB_PORT", 5432u16, "expected a TCP port")?),
        },
        dbname: env.get("PGWARM_DB_NAME").filter(|d| !d.is_empty()),
        user: env.get("PGWARM_DB_USER").filter(|u| !u.trim().is_empty()),
        password: env.get("PGWARM_DB_PASSWORD").map(Secret),
    };
    let secret_id = env.get("PGWARM_SECRET_ID").filter(|s| !s.trim().is_empty());
    let auth = env.get("PGWARM_AUTH");
    match (auth.as_deref(), secret_id) {
        (None | Some("secret"), Some(secret_id)) => {
            Ok(CredentialSettings::Secret(SecretSettings {
                secret_id,
                overrides,
                ttl: env.nonzero_duration("PGWARM_SECRET_TTL", defaults::SECRET_TTL)?,
                timeout: env
                    .nonzero_duration("PGWARM_SECRETS_TIMEOUT", defaults::SECRETS_TIMEOUT)?,
            }))
        }
        (Some("secret"), None) => Err(ConfigError::Missing {
            variable: "PGWARM_SECRET_ID",
            reason: "PGWARM_AUTH=secret reads the login from a Secrets Manager secret",
        }),
        (None | Some("password"), _) => {
            let missing = |variable, reason| ConfigError::Missing { variable, reason };
            let host = overrides.host.clone().ok_or(missing(
                "PGWARM_DB_HOST",
                "pgwarm needs the database host, or PGWARM_SECRET_ID",
            ))?;
            let user = overrides.user.clone().ok_or(missing(
                "PGWARM_DB_USER",
                "pgwarm needs the database user, or PGWARM_SECRET_ID",
            ))?;
            Ok(CredentialSettings::Static(TargetSettings {
                host,
                port: overrides.port.unwrap_or(5432),
                dbname: overrides.dbname.clone().unwrap_or_else(|| user.clone()),
                user,
                password: overrides.password,
            }))
        }
        (Some("iam"), _) => Err(ConfigError::Unsupported {
            variable: "PGWARM_AUTH",
            reason: "IAM authentication is not built yet; use `secret` or `password`",
        }),
        (Some(other), _) => Err(invalid(
            "PGWARM_AUTH",
            other,
            "expected secret, password or iam",
        )),
    }
}
