//! Log output through `tracing`: text for people, JSON for CloudWatch (`PGWARM_LOG_FORMAT`),
//! filtered by `PGWARM_LOG_LEVEL`. Nothing logs a password: settings print secrets as `***`, and
//! no code path formats a credential.

use crate::config::{ConfigError, LogFormat, Settings};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; errors name `PGWARM_LOG_LEVEL`.
pub fn init(settings: &Settings) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(&settings.log_level).map_err(|e| ConfigError::Invalid {
        variable: "PGWARM_LOG_LEVEL",
        value: settings.log_level.clone(),
        reason: format!("not a tracing filter such as info or pgwarm=debug ({e})"),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}
