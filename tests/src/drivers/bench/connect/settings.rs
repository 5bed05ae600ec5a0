//! The connect benchmark's settings: the shared ones, and what PgBouncer's auth_file holds.

use super::PGWARM_SETTINGS;
use crate::drivers::bench::settings::Settings;
use crate::drivers::vars;

/// What PgBouncer's auth_file holds (`BENCH_PGBOUNCER_SECRET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Secret {
    /// The role's SCRAM secret from pg_authid: a login costs PgBouncer a few HMACs.
    Verifier,
    /// The password: PgBouncer runs PBKDF2 on every client login.
    Plain,
}

#[derive(Debug)]
pub(super) struct ConnectSettings {
    pub(super) common: Settings,
    pub(super) secret: Secret,
}

impl ConnectSettings {
    pub(super) fn from_env() -> Result<ConnectSettings, String> {
        let secret =
            match vars::choice("BENCH_PGBOUNCER_SECRET", "verifier", &["verifier", "plain"])?
                .as_str()
            {
                "plain" => Secret::Plain,
                _ => Secret::Verifier,
            };
        Ok(ConnectSettings {
            common: Settings::from_env(5, &PGWARM_SETTINGS)?,
            secret,
        })
    }

    /// Whether pgwarm's clients log in (`PGWARM_CLIENT_PASSWORD` passed through).
    pub(super) fn client_password_set(&self) -> bool {
        self.common
            .passthrough
            .iter()
            .any(|(k, _)| k == "PGWARM_CLIENT_PASSWORD")
    }
}
