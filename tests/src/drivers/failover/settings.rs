//! The failover comparison's settings from `BENCH_*` variables, a bad one named: how many rounds
//! and clients, how long the load goes on after the promotion, the direct clients' back-off,
//! which ways run, and the pgwarm measured with the caller's `PGWARM_*` variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ways::Way;
use super::PGWARM_SETTINGS;
use crate::drivers::bench::settings::passthrough;
use crate::drivers::vars;
use crate::harness::find_pgwarm_bin;

#[derive(Debug)]
pub(super) struct FailoverSettings {
    /// `BENCH_ROUNDS`: each round runs every way once, on a fresh primary and standby.
    pub(super) rounds: usize,
    /// `BENCH_CLIENTS`: client threads; every fourth runs transactions.
    pub(super) clients: u32,
    /// `BENCH_WINDOW`: seconds the load goes on after the promotion was asked for; a way that
    /// has not written again by then shows none.
    pub(super) window: Duration,
    /// `BENCH_BACKOFF_MS`: a client's pause before each connect that follows an error.
    pub(super) backoff_ms: u32,
    /// `BENCH_WAYS`: the ways compared, in the order of the first round.
    pub(super) ways: Vec<Way>,
    /// `PGWARM_BIN`, or the workspace's debug build.
    pub(super) pgwarm_bin: PathBuf,
    /// The caller's `PGWARM_*` variables that reach pgwarm.
    pub(super) passthrough: Vec<(String, String)>,
}

impl FailoverSettings {
    pub(super) fn from_env() -> Result<FailoverSettings, String> {
        let names: Vec<&str> = Way::ALL.iter().map(|w| w.name()).collect();
        let mut ways = Vec::new();
        for word in vars::words("BENCH_WAYS", &names.join(" "))? {
            let way = Way::parse(&word).ok_or_else(|| {
                format!(
                    "BENCH_WAYS: '{word}' is not a way (ways: {})",
                    names.join(" ")
                )
            })?;
            if ways.contains(&way) {
                return Err(format!("BENCH_WAYS: {word} is there twice"));
            }
            ways.push(way);
        }
        Ok(FailoverSettings {
            rounds: vars::number("BENCH_ROUNDS", 3, 1)? as usize,
            clients: vars::number("BENCH_CLIENTS", 50, 1)?,
            window: Duration::from_secs(vars::number("BENCH_WINDOW", 10, 1)?.into()),
            backoff_ms: vars::number("BENCH_BACKOFF_MS", 10, 0)?,
            ways,
            pgwarm_bin: find_pgwarm_bin(std::env::var_os("PGWARM_BIN").as_deref().map(Path::new))?,
            passthrough: passthrough(&PGWARM_SETTINGS),
        })
    }

    /// "none within 10 s": what a time shows when nothing came back within the window.
    pub(super) fn none_within(&self) -> String {
        format!("none within {} s", self.window.as_secs())
    }
}
