//! Where the database login comes from: `PGWARM_AUTH`, `PGWARM_SECRET_ID` and the `PGWARM_DB_*`
//! variables, which are the whole login in `password` mode and override single fields of the
//! secret in `secret` mode.

use super::hosts::HostAddr;
use super::table;
use super::{invalid, ConfigError, Env, Secret};
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

    /// The `PGWARM_AUTH` value that names this source.
    pub(crate) fn auth(&self) -> &'static str {
        match self {
            CredentialSettings::Static(_) => "password",
            CredentialSettings::Secret(_) => "secret",
            CredentialSettings::Iam { .. } => "iam",
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

/// `hosts`: `PGWARM_DB_HOST` and `PGWARM_DB_PORT` read as a list; the login names its first.
pub(super) fn parse(env: &Env<'_>, hosts: &[HostAddr]) -> Result<CredentialSettings, ConfigError> {
    let overrides = overrides(env, hosts)?;
    let secret_id = env.get(&table::SECRET_ID).filter(|s| !s.trim().is_empty());
    let auth = env.get(&table::AUTH);
    match (auth.as_deref(), secret_id) {
        (None | Some("secret"), Some(secret_id)) => {
            Ok(CredentialSettings::Secret(SecretSettings {
                secret_id,
                overrides,
                ttl: env.nonzero_duration(&table::SECRET_TTL)?,
                timeout: env.nonzero_duration(&table::SECRETS_TIMEOUT)?,
            }))
        }
        (Some("secret"), None) => Err(ConfigError::Missing {
            variable: table::SECRET_ID.name,
            reason: "PGWARM_AUTH=secret reads the login from a Secrets Manager secret",
        }),
        (None | Some("password"), _) => {
            Ok(CredentialSettings::Static(whole_login(env, overrides)?))
        }
        (Some("iam"), _) => {
            if overrides.password.is_some() {
                return Err(invalid(
                    table::DB_PASSWORD.name,
                    "(set)",
                    "PGWARM_AUTH=iam logs in with an RDS auth token, not a password; unset it",
                ));
            }
            if hosts.len() > 1 {
                return Err(invalid(
                    table::DB_HOST.name,
                    &env.text(&table::DB_HOST),
                    "PGWARM_AUTH=iam signs its token for one host: name one endpoint (Aurora's \
                     cluster endpoint finds the writer)",
                ));
            }
            Ok(CredentialSettings::Iam {
                target: whole_login(env, overrides)?,
                timeout: env.nonzero_duration(&table::SECRETS_TIMEOUT)?,
            })
        }
        (Some(other), _) => Err(invalid(
            table::AUTH.name,
            other,
            "expected secret, password or iam",
        )),
    }
}

/// `PGWARM_DB_*` as set; blank host, name and user count as unset. With several hosts, the
/// first host and its port.
fn overrides(env: &Env<'_>, hosts: &[HostAddr]) -> Result<DbOverrides, ConfigError> {
    let port = match (hosts.first(), env.get(&table::DB_PORT)) {
        (Some(first), _) => first.port,
        (None, None) => None,
        (None, Some(_)) => Some(env.parse(&table::DB_PORT, PORT_REASON)?),
    };
    Ok(DbOverrides {
        host: hosts.first().map(|first| first.host.clone()),
        port,
        dbname: env.get(&table::DB_NAME).filter(|d| !d.is_empty()),
        user: env.get(&table::DB_USER).filter(|u| !u.trim().is_empty()),
        password: env.get(&table::DB_PASSWORD).map(Secret),
    })
}

const PORT_REASON: &str = "expected a TCP port";

/// The login `PGWARM_DB_*` give on their own: host and user are required.
fn whole_login(env: &Env<'_>, overrides: DbOverrides) -> Result<TargetSettings, ConfigError> {
    let missing = |variable, reason| ConfigError::Missing { variable, reason };
    let host = overrides.host.ok_or(missing(
        table::DB_HOST.name,
        "pgwarm needs the database host, or PGWARM_SECRET_ID",
    ))?;
    let user = overrides.user.ok_or(missing(
        table::DB_USER.name,
        "pgwarm needs the database user, or PGWARM_SECRET_ID",
    ))?;
    let port = match overrides.port {
        Some(port) => port,
        None => env.parse(&table::DB_PORT, PORT_REASON)?,
    };
    Ok(TargetSettings {
        host,
        port,
        dbname: overrides.dbname.unwrap_or_else(|| user.clone()),
        user,
        password: overrides.password,
    })
}
