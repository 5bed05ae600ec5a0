//! What the demo runs, from its arguments (`--keep`, `--out DIR`) and its `DEMO_*` variables,
//! each checked: a bad one is named, and the demo exits with status 2.

use std::path::PathBuf;
use std::time::Duration;

use crate::drivers::fleet::Shape;
use crate::drivers::vars::{self, number};
use crate::harness::find_workspace_bin;

/// What the demo runs, from its arguments and environment.
pub(super) struct DemoSettings {
    pub(super) invocations: usize,
    pub(super) direct_invocations: usize,
    pub(super) freeze: bool,
    pub(super) startup_runs: usize,
    pub(super) fleet: Shape,
    pub(super) keep: bool,
    pub(super) out: PathBuf,
    pub(super) pgwarm: PathBuf,
    pub(super) handler: PathBuf,
}

impl DemoSettings {
    pub(super) fn read() -> Result<DemoSettings, String> {
        let (mut keep, mut out) = (false, PathBuf::from("target/demo"));
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--keep" => keep = true,
                "--out" => out = args.next().ok_or("--out needs a folder")?.into(),
                other => {
                    return Err(format!(
                        "unknown argument {other:?} (demo [--keep] [--out DIR])"
                    ))
                }
            }
        }
        let fleet = Shape {
            environments: number("DEMO_FLEET_ENVIRONMENTS", 60, 1)? as usize,
            db_slots: number("DEMO_FLEET_SLOTS", 20, 1)? as usize,
            burst_size: number("DEMO_FLEET_BURST", 30, 1)? as usize,
            bursts: number("DEMO_FLEET_BURSTS", 12, 1)? as usize,
            pause: Duration::from_millis(300),
            leak_every: 10,
            pgbouncer_pool: 10,
            function_timeout: Duration::from_secs(6),
        };
        // The central PgBouncer's pool must fit in the role's slots.
        let fleet = Shape {
            pgbouncer_pool: fleet.pgbouncer_pool.min(fleet.db_slots),
            ..fleet
        };
        if fleet.burst_size > fleet.environments {
            return Err("DEMO_FLEET_BURST is larger than DEMO_FLEET_ENVIRONMENTS".into());
        }
        let freeze = vars::choice("DEMO_FREEZE", "on", &["on", "off"])? == "on";
        let binary = |var: &str, name: &str| match vars::file(var)? {
            Some(path) => Ok(path),
            None => find_workspace_bin(name),
        };
        Ok(DemoSettings {
            invocations: number("DEMO_INVOCATIONS", 50, 1)? as usize,
            direct_invocations: number("DEMO_DIRECT_INVOCATIONS", 50, 1)? as usize,
            freeze,
            startup_runs: number("DEMO_STARTUP_RUNS", 10, 0)? as usize,
            fleet,
            keep,
            out,
            pgwarm: binary("PGWARM_BIN", "pgwarm")?,
            handler: binary("HANDLER_BIN", "handler-example")?,
        })
    }
}
