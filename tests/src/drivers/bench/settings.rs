//! What both benchmarks take from the environment alike: how many rounds, how long a run, which
//! pgwarm to measure, and the caller's `PGWARM_*` variables for it. Each benchmark adds its own
//! settings beside these (the throughput benchmark's modes and client counts, the connect
//! benchmark's PgBouncer secret).

use std::path::{Path, PathBuf};

use crate::drivers::pgwarm_env::pgwarm_passthrough;
use crate::drivers::vars;
use crate::harness::find_pgwarm_bin;

/// The settings both benchmarks have.
#[derive(Debug)]
pub(crate) struct Settings {
    /// `BENCH_ROUNDS`: each round runs every case once.
    pub(crate) rounds: usize,
    /// `BENCH_DURATION`: seconds per pgbench run.
    pub(crate) duration: u32,
    /// `PGWARM_BIN`, or the workspace's debug build: the pgwarm measured.
    pub(crate) pgwarm_bin: PathBuf,
    /// The caller's `PGWARM_*` variables that reach pgwarm.
    pub(crate) passthrough: Vec<(String, String)>,
}

impl Settings {
    /// `BENCH_ROUNDS` (default 3), `BENCH_DURATION` (default `default_duration`), `PGWARM_BIN`,
    /// and the caller's `PGWARM_*` variables but the benchmark's own `pgwarm_settings`, which it
    /// sets itself; a bad one named.
    pub(crate) fn from_env(
        default_duration: u32,
        pgwarm_settings: &[(&str, &str)],
    ) -> Result<Settings, String> {
        Ok(Settings {
            rounds: vars::number("BENCH_ROUNDS", 3, 1)? as usize,
            duration: vars::number("BENCH_DURATION", default_duration, 1)?,
            pgwarm_bin: find_pgwarm_bin(std::env::var_os("PGWARM_BIN").as_deref().map(Path::new))?,
            passthrough: passthrough(pgwarm_settings),
        })
    }
}

/// What the harness sets for pgwarm's listener and its login to the benchmark's database
/// ([`crate::harness::Pgwarm::builder`]): never the caller's.
const CONNECTION: [&str; 6] = [
    "PGWARM_LISTEN",
    "PGWARM_DB_HOST",
    "PGWARM_DB_PORT",
    "PGWARM_DB_NAME",
    "PGWARM_DB_USER",
    "PGWARM_DB_PASSWORD",
];

/// The caller's `PGWARM_*` variables that reach pgwarm: all but the connection's and the
/// benchmark's own `settings`, which it fixes.
pub(crate) fn passthrough(settings: &[(&str, &str)]) -> Vec<(String, String)> {
    let fixed: Vec<&str> = CONNECTION
        .into_iter()
        .chain(settings.iter().map(|(k, _)| *k))
        .collect();
    pgwarm_passthrough(std::env::vars(), &fixed)
}
