//! The settings as the admin console's `SHOW CONFIG` lists them: each row of the settings table
//! with the value in effect and its default. Secrets show as `***` when set, never their value.
//! The helpers here read a value back out of [`Settings`] for the table's rows.

use super::table::SETTINGS;
use super::{CredentialSettings, DbOverrides, HostAddr, SecretSettings, Settings};
use std::path::Path;
use std::time::Duration;

/// One line of `SHOW CONFIG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigEntry {
    pub key: &'static str,
    pub value: String,
    pub default: String,
}

impl Settings {
    /// Every row of the settings table, in its order.
    pub(crate) fn entries(&self) -> Vec<ConfigEntry> {
        SETTINGS
            .iter()
            .map(|row| ConfigEntry {
                key: row.name,
                value: row.shown.value(self),
                default: row.unset.text().to_owned(),
            })
            .collect()
    }
}

/// `PGWARM_DB_*` in effect: the whole login with `password` and `iam`, only the fields set with
/// `secret` (the others come from the secret).
pub(super) fn login(settings: &Settings) -> DbOverrides {
    match &settings.credentials {
        CredentialSettings::Static(t) | CredentialSettings::Iam { target: t, .. } => DbOverrides {
            host: Some(t.host.clone()),
            port: Some(t.port),
            dbname: Some(t.dbname.clone()),
            user: Some(t.user.clone()),
            password: t.password.clone(),
        },
        CredentialSettings::Secret(s) => s.overrides.clone(),
    }
}

pub(super) fn secret(settings: &Settings) -> Option<&SecretSettings> {
    match &settings.credentials {
        CredentialSettings::Secret(s) => Some(s),
        CredentialSettings::Static(_) | CredentialSettings::Iam { .. } => None,
    }
}

/// `PGWARM_SECRETS_TIMEOUT`, which bounds AWS calls: there are none with a static login.
pub(super) fn aws_timeout(settings: &Settings) -> Option<Duration> {
    match &settings.credentials {
        CredentialSettings::Secret(s) => Some(s.timeout),
        CredentialSettings::Iam { timeout, .. } => Some(*timeout),
        CredentialSettings::Static(_) => None,
    }
}

pub(super) fn path(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

/// A duration as the variables take it: whole seconds as `10s`, anything else in `ms`.
/// A list of hosts as `PGWARM_DB_HOST` spells it.
pub(super) fn host_list(hosts: &[HostAddr]) -> String {
    let names: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
    names.join(",")
}

/// Their ports as `PGWARM_DB_PORT` spells them; a host without one shows empty.
pub(super) fn port_list(hosts: &[HostAddr]) -> String {
    let ports: Vec<String> = hosts
        .iter()
        .map(|h| h.port.map_or(String::new(), |p| p.to_string()))
        .collect();
    ports.join(",")
}

pub(super) fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_show_as_set_never_as_themselves() {
        let settings = Settings::from_lookup(|name| match name {
            "PGWARM_DB_HOST" => Some("db.example".into()),
            "PGWARM_DB_USER" => Some("app".into()),
            "PGWARM_DB_NAME" => Some("app".into()),
            "PGWARM_DB_PASSWORD" => Some("hunter2-db".into()),
            "PGWARM_CLIENT_PASSWORD" => Some("hunter2-client".into()),
            _ => None,
        })
        .unwrap();
        let entries = settings.entries();
        let get = |k: &str| entries.iter().find(|e| e.key == k).unwrap().value.clone();
        assert_eq!(get("PGWARM_DB_PASSWORD"), "***");
        assert_eq!(get("PGWARM_CLIENT_PASSWORD"), "***");
        assert_eq!(get("PGWARM_QUERY_WAIT_TIMEOUT"), "30s");
        assert!(entries
            .iter()
            .all(|e| !e.value.contains("hunter2") && !e.default.contains("hunter2")));
    }

    fn shown(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let settings = Settings::from_lookup(|name| {
            let pair = pairs.iter().find(|(k, _)| *k == name);
            pair.map(|(_, v)| v.to_string())
        })
        .unwrap();
        let entries = settings.entries();
        entries
            .into_iter()
            .map(|e| (e.key.into(), e.value))
            .collect()
    }

    fn value<'a>(shown: &'a [(String, String)], key: &str) -> &'a str {
        &shown.iter().find(|(k, _)| k == key).unwrap().1
    }

    #[test]
    fn every_row_of_the_table_is_listed_in_order() {
        let keys: Vec<String> = shown(&[("PGWARM_DB_HOST", "h"), ("PGWARM_DB_USER", "u")])
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let rows: Vec<&str> = SETTINGS.iter().map(|row| row.name).collect();
        assert_eq!(keys, rows);
        for once_missing in [
            "PGWARM_STATS_PERIOD",
            "PGWARM_METRICS",
            "PGWARM_METRICS_INTERVAL",
            "PGWARM_METRICS_NAMESPACE",
            "PGWARM_CLIENT_TLS_CERT",
            "PGWARM_CLIENT_TLS_KEY",
        ] {
            assert!(keys.iter().any(|k| k == once_missing), "{once_missing}");
        }
    }

    #[test]
    fn values_are_what_was_parsed() {
        let s = shown(&[
            ("PGWARM_DB_HOST", "127.0.0.1"),
            ("PGWARM_DB_USER", "app"),
            ("PGWARM_QUERY_WAIT_TIMEOUT", " 2m "),
            ("PGWARM_IDLE_SESSION_TIMEOUT", "0"),
            ("PGWARM_CLIENT_TLS_CERT", "/c.pem"),
            ("PGWARM_CLIENT_TLS_KEY", "/k.pem"),
            ("PGWARM_METRICS", "off"),
            ("PGWARM_STATS_PERIOD", "1500ms"),
            ("PGWARM_SECRET_TTL", "10s"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
        ]);
        for (key, expected) in [
            ("PGWARM_AUTH", "password"),
            ("PGWARM_DB_PORT", "5432"),
            ("PGWARM_DB_NAME", "app"),
            ("PGWARM_DB_PASSWORD", ""),
            ("PGWARM_SSLMODE", "prefer"),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "120s"),
            ("PGWARM_IDLE_SESSION_TIMEOUT", "0"),
            ("PGWARM_POOL_SIZE", "8"),
            ("PGWARM_LOG_FORMAT", "json"),
            ("PGWARM_CLIENT_TLS", "on"),
            ("PGWARM_CLIENT_TLS_CERT", "/c.pem"),
            ("PGWARM_CLIENT_TLS_KEY", "/k.pem"),
            ("PGWARM_STATS_PERIOD", "1500ms"),
            ("PGWARM_METRICS", "off"),
            // Not in effect: no metrics, no secret.
            ("PGWARM_METRICS_NAMESPACE", ""),
            ("PGWARM_METRICS_INTERVAL", ""),
            ("PGWARM_SECRET_TTL", ""),
            ("PGWARM_SECRETS_TIMEOUT", ""),
        ] {
            assert_eq!(value(&s, key), expected, "{key}");
        }
        let secret = shown(&[
            ("PGWARM_SECRET_ID", "prod/db"),
            ("PGWARM_DB_PASSWORD", "hunter2"),
        ]);
        for (key, expected) in [
            ("PGWARM_AUTH", "secret"),
            ("PGWARM_SECRET_ID", "prod/db"),
            ("PGWARM_SECRET_TTL", "300s"),
            ("PGWARM_SECRETS_TIMEOUT", "5s"),
            ("PGWARM_DB_HOST", ""),
            ("PGWARM_DB_PORT", ""),
            ("PGWARM_DB_PASSWORD", "***"),
            ("PGWARM_SSLMODE", "verify-full"),
            ("PGWARM_METRICS_NAMESPACE", "pgwarm"),
            ("PGWARM_METRICS_INTERVAL", "60s"),
        ] {
            assert_eq!(value(&secret, key), expected, "{key}");
        }
    }

    #[test]
    fn durations_print_as_they_are_written() {
        assert_eq!(duration(Duration::from_secs(10)), "10s");
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::ZERO), "0ms");
    }
}
