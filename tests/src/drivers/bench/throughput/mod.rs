//! The throughput benchmark, the `bench` binary (`src/bin/bench.rs`, whose doc says what it
//! measures and how): pgbench -S in each mode and client count against PostgreSQL, pgwarm,
//! PgBouncer and HAProxy, TPS and each relay's CPU per transaction, over rotating rounds.
//!
//! Its own parts: the settings (`settings.rs`), the query modes and PgBouncer's prepared-statement
//! rule (`mode.rs`), its runs table (`runs.rs`), the runs themselves (`measure.rs`), the report
//! (`report.rs`) and the chart data (`charts.rs`).

mod charts;
mod measure;
mod mode;
mod report;
mod runs;
mod settings;

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use super::out_dirs::OutDirs;
use super::setup;
use super::stop::Halt;
use settings::ThroughputSettings;

const PROGRAM: &str = "bench";
/// pgwarm's and PgBouncer's pool.
const POOL_SIZE: &str = "4";
/// The tests' cluster allows 300 connections, 3 of them for superusers: pgbench's clients (one
/// backend each, direct or through HAProxy), the two pools and the checks' own must fit.
const MAX_CLIENTS: u32 = 280;
/// The settings pgwarm gets from the benchmark, whatever the caller's environment says (and its
/// connection to the database, which the harness sets).
const PGWARM_SETTINGS: [(&str, &str); 2] = [
    ("PGWARM_POOL_SIZE", POOL_SIZE),
    ("PGWARM_LOG_LEVEL", "warn"),
];

fn say(text: impl AsRef<str>) {
    super::say(PROGRAM, text);
}

/// The `bench` binary: the benchmark, or with `--summarize RUNS_TSV [OUT_DIR]` only the chart
/// data of a runs table.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => run(),
        [flag, runs] if flag == "--summarize" => charts::summarize(Path::new(runs), None),
        [flag, runs, out] if flag == "--summarize" => {
            charts::summarize(Path::new(runs), Some(Path::new(out)))
        }
        _ => {
            eprintln!("usage: bench (settings in BENCH_* variables)\n       bench --summarize RUNS_TSV [OUT_DIR]");
            ExitCode::from(2)
        }
    }
}

fn run() -> ExitCode {
    let settings = match ThroughputSettings::from_env() {
        Ok(s) => s,
        Err(e) => {
            say(e);
            return ExitCode::from(2);
        }
    };
    setup::run(PROGRAM, "", "some runs FAILED", |out| {
        // charts.tsv is this run's or none: scripts/bench.sh draws the charts when it is there.
        let _ = fs::remove_file(out.root.join("charts.tsv"));
        on_database(&settings, out)
    })
}

/// The database, the relays, the runs, then the report and the chart data; whether every run
/// that should count did.
fn on_database(s: &ThroughputSettings, out: &OutDirs) -> Result<bool, Halt> {
    let db = setup::database(PROGRAM, s.scale)?;
    let relays = measure::start_relays(s, &db);
    let (results, finished) =
        relays.measure(out, |relays| measure::measure(s, out, relays, &db))?;
    out.publish(PROGRAM, &report::report(s, &results, &finished))?;
    let charted = charts::write(&results, &out.root) == ExitCode::SUCCESS;
    Ok(finished.all_counted && charted)
}
