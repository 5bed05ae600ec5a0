//! The settings as the admin console's `SHOW CONFIG` lists them: each `PGWARM_*` variable with
//! the value in effect and its default. Secrets show as `***` when set, never their value.

use super::{defaults, ClientTlsMode, CredentialSettings, LogFormat, PoolMode, Settings, Upstream};
use std::time::Duration;

/// One line of `SHOW CONFIG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigEntry {
    pub key: &'static str,
    pub value: String,
    pub default: String,
}

impl Settings {
    pub(crate) fn entries(&self) -> Vec<ConfigEntry> {
        let mut out = Vec::new();
        let mut add = |key: &'static str, value: String, default: &str| {
            out.push(ConfigEntry {
                key,
                value,
                default: default.to_owned(),
            })
        };
        let hidden = |set: bool| if set { "***" } else { "" }.to_owned();
        add("PGWARM_LISTEN", self.listen.to_string(), defaults::LISTEN);
        match &self.credentials {
            CredentialSettings::Static(t) => {
                add("PGWARM_AUTH", "password".into(), "");
                add("PGWARM_DB_HOST", t.host.clone(), "");
                add("PGWARM_DB_PORT", t.port.to_string(), "5432");
                add("PGWARM_DB_NAME", t.dbname.clone(), "");
                add("PGWARM_DB_USER", t.user.clone(), "");
                add("PGWARM_DB_PASSWORD", hidden(t.password.is_some()), "");
            }
            CredentialSettings::Iam { target: t, timeout } => {
                add("PGWARM_AUTH", "iam".into(), "");
                add("PGWARM_DB_HOST", t.host.clone(), "");
                add("PGWARM_DB_PORT", t.port.to_string(), "5432");
                add("PGWARM_DB_NAME", t.dbname.clone(), "");
                add("PGWARM_DB_USER", t.user.clone(), "");
                add(
                    "PGWARM_SECRETS_TIMEOUT",
                    duration(*timeout),
                    defaults::SECRETS_TIMEOUT,
                );
            }
            CredentialSettings::Secret(s) => {
                let o = &s.overrides;
                add("PGWARM_AUTH", "secret".into(), "");
                add("PGWARM_SECRET_ID", s.secret_id.clone(), "");
                add("PGWARM_SECRET_TTL", duration(s.ttl), defaults::SECRET_TTL);
                add(
                    "PGWARM_SECRETS_TIMEOUT",
                    duration(s.timeout),
                    defaults::SECRETS_TIMEOUT,
                );
                add("PGWARM_DB_HOST", o.host.clone().unwrap_or_default(), "");
                let port = o.port.map(|p| p.to_string()).unwrap_or_default();
                add("PGWARM_DB_PORT", port, "");
                add("PGWARM_DB_NAME", o.dbname.clone().unwrap_or_default(), "");
                add("PGWARM_DB_USER", o.user.clone().unwrap_or_default(), "");
                add("PGWARM_DB_PASSWORD", hidden(o.password.is_some()), "");
            }
        }
        add(
            "PGWARM_SSLMODE",
            self.sslmode.as_str().into(),
            "verify-full",
        );
        let root = self.ssl_root_cert.as_ref();
        let root = root.map(|p| p.display().to_string()).unwrap_or_default();
        add("PGWARM_SSLROOTCERT", root, "");
        let mode = match self.pool_mode {
            PoolMode::Transaction => "transaction",
            PoolMode::Session => "session",
        };
        add("PGWARM_POOL_MODE", mode.into(), "transaction");
        let upstream = match self.upstream {
            Upstream::Database => "off",
            Upstream::Pooler => "on",
        };
        add("PGWARM_UPSTREAM_POOLER", upstream.into(), "off");
        let size = defaults::POOL_SIZE.to_string();
        add("PGWARM_POOL_SIZE", self.pool_size.to_string(), &size);
        add("PGWARM_MIN_POOL_SIZE", self.min_pool_size.to_string(), "0");
        let max_clients = defaults::MAX_CLIENT_CONN.to_string();
        add(
            "PGWARM_MAX_CLIENT_CONN",
            self.max_client_conn.to_string(),
            &max_clients,
        );
        add(
            "PGWARM_SERVER_CHECK_DELAY",
            duration(self.server_check_delay),
            defaults::SERVER_CHECK_DELAY,
        );
        add(
            "PGWARM_QUERY_WAIT_TIMEOUT",
            duration(self.query_wait_timeout),
            defaults::QUERY_WAIT_TIMEOUT,
        );
        add(
            "PGWARM_CONNECT_TIMEOUT",
            duration(self.connect_timeout),
            defaults::CONNECT_TIMEOUT,
        );
        add(
            "PGWARM_IDLE_TRANSACTION_TIMEOUT",
            self.idle_transaction_timeout.map_or("0".into(), duration),
            defaults::IDLE_TRANSACTION_TIMEOUT,
        );
        add(
            "PGWARM_IDLE_SESSION_TIMEOUT",
            self.idle_session_timeout.map_or("0".into(), duration),
            defaults::IDLE_SESSION_TIMEOUT,
        );
        add(
            "PGWARM_SERVER_LIFETIME",
            duration(self.server_lifetime),
            defaults::SERVER_LIFETIME,
        );
        add(
            "PGWARM_SERVER_RESET_QUERY",
            self.server_reset_query.clone(),
            defaults::SERVER_RESET_QUERY,
        );
        add(
            "PGWARM_CLIENT_PASSWORD",
            hidden(self.client_password.is_some()),
            "",
        );
        let tls = match self.client_tls.mode {
            ClientTlsMode::Off => "off",
            ClientTlsMode::On => "on",
            ClientTlsMode::Require => "require",
        };
        add("PGWARM_CLIENT_TLS", tls.into(), "on");
        let max_message = defaults::MAX_MESSAGE_SIZE.to_string();
        add(
            "PGWARM_MAX_MESSAGE_SIZE",
            self.max_message_size.to_string(),
            &max_message,
        );
        let prepared = defaults::MAX_PREPARED_STATEMENTS.to_string();
        add(
            "PGWARM_MAX_PREPARED_STATEMENTS",
            self.max_prepared_statements.to_string(),
            &prepared,
        );
        let threads = defaults::WORKER_THREADS.to_string();
        add(
            "PGWARM_WORKER_THREADS",
            self.worker_threads.to_string(),
            &threads,
        );
        add("PGWARM_LOG_LEVEL", self.log_level.clone(), "info");
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        add(
            "PGWARM_LOG_FORMAT",
            format.into(),
            "json in Lambda, text outside",
        );
        out
    }
}

/// A duration as the variables take it: whole seconds as `10s`, anything else in `ms`.
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

    #[test]
    fn durations_print_as_they_are_written() {
        assert_eq!(duration(Duration::from_secs(10)), "10s");
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::ZERO), "0ms");
    }
}
