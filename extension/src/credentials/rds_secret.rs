//! The JSON Amazon RDS (and its rotation functions) keep in a Secrets Manager secret:
//! `{"username", "password", "host", "port", "dbname", "engine", ...}`. Other fields
//! (`dbInstanceIdentifier`, `dbClusterIdentifier`, ...) are ignored.
//!
//! Errors name the secret and the field, never a value: the message reaches logs and, in
//! Lambda, the function's Init error.

use crate::config::{DbOverrides, Secret, TargetSettings};
use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum SecretFormatError {
    #[error("secret {secret} is not the JSON object RDS writes (username, password, host, port, dbname): {reason}")]
    NotJson { secret: String, reason: String },
    #[error("secret {secret} has no {field:?} field, and {variable} does not give one")]
    Missing {
        secret: String,
        field: &'static str,
        variable: &'static str,
    },
    #[error("secret {secret} has a {field:?} field that is not {expected}")]
    Invalid {
        secret: String,
        field: &'static str,
        expected: &'static str,
    },
}

/// The fields pgwarm reads. `port` may be a number or a string (both are seen in the wild).
#[derive(Deserialize)]
struct RdsSecret {
    username: Option<String>,
    password: Option<String>,
    host: Option<String>,
    port: Option<serde_json::Value>,
    dbname: Option<String>,
}

/// The login in `secret_string`, with the fields `overrides` sets replaced.
pub(crate) fn parse(
    secret_id: &str,
    secret_string: &str,
    overrides: &DbOverrides,
) -> Result<TargetSettings, SecretFormatError> {
    let secret = || secret_id.to_owned();
    // serde_json's messages quote no input for these errors, only positions and types.
    let parsed: RdsSecret =
        serde_json::from_str(secret_string).map_err(|e| SecretFormatError::NotJson {
            secret: secret(),
            reason: format!("{} at line {} column {}", kind(&e), e.line(), e.column()),
        })?;
    // PostgreSQL's protocol carries these as C strings: one with a NUL inside cannot be sent.
    let fields = [
        ("username", &parsed.username),
        ("password", &parsed.password),
        ("host", &parsed.host),
        ("dbname", &parsed.dbname),
    ];
    if let Some((field, _)) = fields
        .iter()
        .find(|(_, value)| value.as_ref().is_some_and(|v| v.contains('\0')))
    {
        return Err(SecretFormatError::Invalid {
            secret: secret(),
            field,
            expected: "text without a NUL character",
        });
    }
    let missing = |field, variable| SecretFormatError::Missing {
        secret: secret(),
        field,
        variable,
    };
    let port = match (&overrides.port, parsed.port) {
        (Some(port), _) => *port,
        (None, None) => 5432,
        (None, Some(value)) => port_of(&value).ok_or(SecretFormatError::Invalid {
            secret: secret(),
            field: "port",
            expected: "a TCP port",
        })?,
    };
    let user = overrides
        .user
        .clone()
        .or(parsed.username)
        .ok_or(missing("username", "PGWARM_DB_USER"))?;
    Ok(TargetSettings {
        host: overrides
            .host
            .clone()
            .or(parsed.host)
            .ok_or(missing("host", "PGWARM_DB_HOST"))?,
        port,
        // RDS secrets often have no dbname; PostgreSQL's default is the user's name.
        dbname: overrides
            .dbname
            .clone()
            .or(parsed.dbname)
            .unwrap_or_else(|| user.clone()),
        password: Some(
            overrides
                .password
                .clone()
                .or(parsed.password.map(Secret::new))
                .ok_or(missing("password", "PGWARM_DB_PASSWORD"))?,
        ),
        user,
    })
}

fn port_of(value: &serde_json::Value) -> Option<u16> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not JSON",
        serde_json::error::Category::Data => "a field has the wrong type",
        serde_json::error::Category::Io => "unreadable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RDS: &str = r#"{"username":"app","password":"pa\"ss","engine":"postgres",
        "host":"db.cluster-x.eu-west-1.rds.amazonaws.com","port":5432,"dbname":"shop",
        "dbInstanceIdentifier":"db-1"}"#;

    #[test]
    fn reads_what_rds_writes_and_ignores_the_rest() {
        let t = parse("s", RDS, &DbOverrides::default()).unwrap();
        assert_eq!(t.host, "db.cluster-x.eu-west-1.rds.amazonaws.com");
        assert_eq!(
            (t.port, t.dbname.as_str(), t.user.as_str()),
            (5432, "shop", "app")
        );
        assert_eq!(t.password.unwrap().expose(), "pa\"ss");
    }

    #[test]
    fn overrides_replace_single_fields() {
        let overrides = DbOverrides {
            host: Some("proxy.local".into()),
            port: Some(6432),
            ..DbOverrides::default()
        };
        let t = parse("s", RDS, &overrides).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("proxy.local", 6432));
        assert_eq!(t.user, "app");
    }

    #[test]
    fn a_nul_inside_a_field_is_refused_by_name() {
        let e = parse(
            "prod/db",
            r#"{"username":"u","password":"p\u0000q","host":"h"}"#,
            &DbOverrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            SecretFormatError::Invalid {
                secret: "prod/db".into(),
                field: "password",
                expected: "text without a NUL character",
            }
        );
        assert!(!e.to_string().contains('q'), "{e}");
    }

    #[test]
    fn a_string_port_and_a_missing_dbname_are_accepted() {
        let t = parse(
            "s",
            r#"{"username":"u","password":"p","host":"h","port":"5433"}"#,
            &DbOverrides::default(),
        )
        .unwrap();
        assert_eq!((t.port, t.dbname.as_str()), (5433, "u"));
    }

    #[test]
    fn errors_name_the_secret_and_field_but_never_a_value() {
        let err = parse(
            "prod/db",
            r#"{"username":"u","host":"h"}"#,
            &DbOverrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            SecretFormatError::Missing {
                secret: "prod/db".into(),
                field: "password",
                variable: "PGWARM_DB_PASSWORD"
            }
        );
        let text = parse(
            "prod/db",
            "hunter2 is the password",
            &DbOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("prod/db") && text.contains("not JSON"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let text = parse(
            "prod/db",
            r#"{"username":"u","password":"sekrit","host":"h","port":"many"}"#,
            &DbOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("\"port\"") && !text.contains("sekrit"),
            "{text}"
        );
        let text = parse("prod/db", r#"{"username": 7}"#, &DbOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(text.contains("wrong type"), "{text}");
    }
}
