//! The throughput benchmark's settings: the shared ones, the pgbench load (modes, client counts,
//! scale) and the PgBouncer it compares with.

use std::path::PathBuf;

use super::mode::Mode;
use super::{MAX_CLIENTS, PGWARM_SETTINGS};
use crate::drivers::bench::settings::Settings;
use crate::drivers::vars;
use crate::harness::{tool, Pgbouncer};

#[derive(Debug)]
pub(super) struct ThroughputSettings {
    pub(super) common: Settings,
    pub(super) clients: Vec<u32>,
    pub(super) modes: Vec<Mode>,
    /// pgbench -i's scale factor.
    pub(super) scale: u32,
    /// `BENCH_PGBOUNCER_BIN`, or Debian's; its `--version` line, and whether it keeps prepared
    /// statements in transaction mode (1.21 and later).
    pub(super) pgbouncer_bin: PathBuf,
    pub(super) pgbouncer_version: String,
    pub(super) pgbouncer_prepares: bool,
}

impl ThroughputSettings {
    pub(super) fn from_env() -> Result<ThroughputSettings, String> {
        let common = Settings::from_env(10, &PGWARM_SETTINGS)?;
        let scale = vars::number("BENCH_SCALE", 10, 1)?;
        // At most what the cluster's connections allow.
        let clients = vars::numbers("BENCH_CLIENTS", "1 16 64", 1, MAX_CLIENTS)?;
        let modes = vars::words("BENCH_MODES", "simple extended prepared")?
            .iter()
            .map(|m| Mode::parse(m).ok_or(format!("BENCH_MODES: unknown pgbench mode '{m}'")))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(twice) = modes
            .iter()
            .find(|m| modes.iter().filter(|n| n == m).count() > 1)
        {
            return Err(format!("BENCH_MODES: {} is there twice", twice.as_str()));
        }
        let pgbouncer_bin = vars::file("BENCH_PGBOUNCER_BIN")?.unwrap_or_else(|| tool("pgbouncer"));
        let pgbouncer_version = Pgbouncer::version_of(&pgbouncer_bin);
        let pgbouncer_prepares = Pgbouncer::keeps_prepared_statements(&pgbouncer_version);
        Ok(ThroughputSettings {
            common,
            clients,
            modes,
            scale,
            pgbouncer_bin,
            pgbouncer_version,
            pgbouncer_prepares,
        })
    }
}
