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
pub(crate) enum CredentialSettings {
    /// `PGWARM_AUTH=password`: the login is `PGWARM_DB_*`.
    Static(TargetSettings),
    /// `PGWARM_AUTH=secret`: the login is read from Secrets Manager.
    Secret(SecretSettings),
    /// `PGWARM_AUTH=iam`: `PGWARM_DB_*` without a password; an RDS auth token is made for each
    /// login. `timeout` bounds getting the AWS credentials (`PGWARM_SECRETS_TIMEOUT`).
    Iam {
        target: TargetSettings,
        timeout: Duration,
    },
}

impl CredentialSettings {
    /// The database host when it is known before any secret is read.
    pub(crate) fn known_host(&self) -> Option<&str> {
        match self {
            CredentialSettings::Static(target) | CredentialSettings::Iam { target, .. } => {
                Some(&target.host)
            }
            CredentialSettings::Secret(secret) => secret.overrides.host.as_deref(),
        }
    }

    /// For the start-up log line: where the login comes from, without any secret value.
    pub(crate) fn describe(&self) -> String {
        match self {
            CredentialSettings::Static(t) => format!("{}:{}/{}", t.host, t.port, t.dbname),
            CredentialSettings::Iam { target: t, .. } => {
                format!("{}:{}/{} (IAM authentication)", t.host, t.port, t.dbname)
            }
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
        (None | Some("password"), _) => Ok(CredentialSettings::Static(whole_login(overrides)?)),
        (Some("iam"), _) => {
            if overrides.password.is_some() {
                return Err(invalid(
                    "PGWARM_DB_PASSWORD",
                    "(set)",
                    "PGWARM_AUTH=iam logs in with an RDS auth token, not a password; unset it",
                ));
            }
            Ok(CredentialSettings::Iam {
                target: whole_login(overrides)?,
                timeout: env
                    .nonzero_duration("PGWARM_SECRETS_TIMEOUT", defaults::SECRETS_TIMEOUT)?,
            })
        }
        (Some(other), _) => Err(invalid(
            "PGWARM_AUTH",
            other,
            "expected secret, password or iam",
        )),
    }
}

/// The login `PGWARM_DB_*` give on their own: host and user are required.
fn whole_login(overrides: DbOverrides) -> Result<TargetSettings, ConfigError> {
    let missing = |variable, reason| ConfigError::Missing { variable, reason };
    let host = overrides.host.ok_or(missing(
        "PGWARM_DB_HOST",
        "pgwarm needs the database host, or PGWARM_SECRET_ID",
    ))?;
    let user = overrides.user.ok_or(missing(
        "PGWARM_DB_USER",
        "pgwarm needs the database user, or PGWARM_SECRET_ID",
    ))?;
    Ok(TargetSettings {
        host,
        port: overrides.port.unwrap_or(5432),
        dbname: overrides.dbname.unwrap_or_else(|| user.clone()),
        user,
        password: overrides.password,
    })
}
