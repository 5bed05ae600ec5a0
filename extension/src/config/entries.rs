//! The settings as the admin console's `SHOW CONFIG` lists them: each `PGWARM_*` variable with
//! the value in effect and its default. Secrets show as `***` when set, never their value.

use super::table::{self, Setting};
use super::{ClientTlsMode, CredentialSettings, LogFormat, PoolMode, Settings, Upstream};
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
        let mut add = |setting: &Setting, value: String| {
            out.push(ConfigEntry {
                key: setting.name,
                value,
                default: setting.unset.text().to_owned(),
            })
        };
        let hidden = |set: bool| if set { "***" } else { "" }.to_owned();
        add(&table::LISTEN, self.listen.to_string());
        match &self.credentials {
            CredentialSettings::Static(t) => {
                add(&table::AUTH, "password".into());
                add(&table::DB_HOST, t.host.clone());
                add(&table::DB_PORT, t.port.to_string());
                add(&table::DB_NAME, t.dbname.clone());
                add(&table::DB_USER, t.user.clone());
                add(&table::DB_PASSWORD, hidden(t.password.is_some()));
            }
            CredentialSettings::Iam { target: t, timeout } => {
                add(&table::AUTH, "iam".into());
                add(&table::DB_HOST, t.host.clone());
                add(&table::DB_PORT, t.port.to_string());
                add(&table::DB_NAME, t.dbname.clone());
                add(&table::DB_USER, t.user.clone());
                add(&table::SECRETS_TIMEOUT, duration(*timeout));
            }
            CredentialSettings::Secret(s) => {
                let o = &s.overrides;
                add(&table::AUTH, "secret".into());
                add(&table::SECRET_ID, s.secret_id.clone());
                add(&table::SECRET_TTL, duration(s.ttl));
                add(&table::SECRETS_TIMEOUT, duration(s.timeout));
                add(&table::DB_HOST, o.host.clone().unwrap_or_default());
                let port = o.port.map(|p| p.to_string()).unwrap_or_default();
                add(&table::DB_PORT, port);
                add(&table::DB_NAME, o.dbname.clone().unwrap_or_default());
                add(&table::DB_USER, o.user.clone().unwrap_or_default());
                add(&table::DB_PASSWORD, hidden(o.password.is_some()));
            }
        }
        add(&table::SSLMODE, self.sslmode.as_str().into());
        let root = self.ssl_root_cert.as_ref();
        let root = root.map(|p| p.display().to_string()).unwrap_or_default();
        add(&table::SSLROOTCERT, root);
        let mode = match self.pool_mode {
            PoolMode::Transaction => "transaction",
            PoolMode::Session => "session",
        };
        add(&table::POOL_MODE, mode.into());
        let upstream = match self.upstream {
            Upstream::Database => "off",
            Upstream::Pooler => "on",
        };
        add(&table::UPSTREAM_POOLER, upstream.into());
        add(&table::POOL_SIZE, self.pool_size.to_string());
        add(&table::MIN_POOL_SIZE, self.min_pool_size.to_string());
        add(&table::MAX_CLIENT_CONN, self.max_client_conn.to_string());
        add(
            &table::SERVER_CHECK_DELAY,
            duration(self.server_check_delay),
        );
        add(
            &table::QUERY_WAIT_TIMEOUT,
            duration(self.query_wait_timeout),
        );
        add(&table::CONNECT_TIMEOUT, duration(self.connect_timeout));
        add(
            &table::IDLE_TRANSACTION_TIMEOUT,
            self.idle_transaction_timeout.map_or("0".into(), duration),
        );
        add(
            &table::IDLE_SESSION_TIMEOUT,
            self.idle_session_timeout.map_or("0".into(), duration),
        );
        add(&table::SERVER_LIFETIME, duration(self.server_lifetime));
        add(&table::SERVER_RESET_QUERY, self.server_reset_query.clone());
        add(
            &table::CLIENT_PASSWORD,
            hidden(self.client_password.is_some()),
        );
        let tls = match self.client_tls.mode {
            ClientTlsMode::Off => "off",
            ClientTlsMode::On => "on",
            ClientTlsMode::Require => "require",
        };
        add(&table::CLIENT_TLS, tls.into());
        add(&table::MAX_MESSAGE_SIZE, self.max_message_size.to_string());
        add(
            &table::MAX_PREPARED_STATEMENTS,
            self.max_prepared_statements.to_string(),
        );
        add(&table::WORKER_THREADS, self.worker_threads.to_string());
        add(&table::LOG_LEVEL, self.log_level.clone());
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        add(&table::LOG_FORMAT, format.into());
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
