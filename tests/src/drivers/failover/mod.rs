//! The failover comparison, the `failover` binary (`src/bin/failover.rs`, whose doc says what it
//! measures and how): one failover under the same psycopg client load, through pgwarm, directly
//! with libpq's host list and `target_session_attrs=read-write`, and through PgBouncer, round
//! after round on fresh servers. README's failover claims were measured through pgwarm alone;
//! this puts the two things an application would otherwise use beside it, in the same run.
//!
//! Its parts: the settings (`settings.rs`), the ways and what each run starts (`ways.rs`), one
//! run's load and fault (`load.rs`, around `tests/py/failover.py`) and the report
//! (`report.rs`). It shares the benchmarks' output folders, exit status and signal handling
//! (`drivers/bench/`).

mod load;
mod report;
mod settings;
mod ways;

use std::fs::File;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use crate::drivers::bench::out_dirs::OutDirs;
use crate::drivers::bench::setup::exit_status;
use crate::drivers::bench::stop::{self, Halt};
use crate::drivers::facts;
use crate::drivers::figures::round_order;
use crate::harness::{require_psycopg, Pgbouncer};
use report::{Facts, Record};
use settings::FailoverSettings;
use ways::Servers;

const PROGRAM: &str = "failover";

/// What pgwarm gets from the driver besides its database (the two hosts, set per run),
/// whatever the caller's environment says: the pool PgBouncer has (its `default_pool_size`
/// in the harness), a wait long enough to outlast the failover, and pgwarm's default log level
/// (the harness's is debug).
const PGWARM_SETTINGS: [(&str, &str); 3] = [
    ("PGWARM_POOL_SIZE", "4"),
    ("PGWARM_QUERY_WAIT_TIMEOUT", "20s"),
    ("PGWARM_LOG_LEVEL", "info"),
];

fn say(text: impl AsRef<str>) {
    eprintln!("{PROGRAM}: {}", text.as_ref());
}

/// The `failover` binary: the comparison, its settings from the environment.
pub fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!("usage: failover (settings in BENCH_* variables)");
        return ExitCode::from(2);
    }
    let settings = match FailoverSettings::from_env() {
        Ok(s) => s,
        Err(e) => {
            say(e);
            return ExitCode::from(2);
        }
    };
    let out = match OutDirs::create("failover-") {
        Ok(out) => out,
        Err(e) => {
            say(e);
            return ExitCode::from(2);
        }
    };
    if let Err(e) = stop::watch(PROGRAM) {
        say(e);
        return ExitCode::FAILURE;
    }
    let outcome = compare(&settings, &out);
    exit_status(PROGRAM, outcome, &out, "some runs FAILED (see the report)")
}

/// Every round's runs, the report; whether every run gave its figures and no answer was wrong.
fn compare(s: &FailoverSettings, out: &OutDirs) -> Result<bool, Halt> {
    require_psycopg();
    let table_path = &out.table;
    let mut table =
        File::create(table_path).map_err(|e| format!("{}: {e}", table_path.display()))?;
    let mut write = |line: &str| {
        writeln!(table, "{line}")
            .map_err(|e| Halt::Failed(format!("{}: {e}", table_path.display())))
    };
    write(report::TSV_HEADER)?;
    let started = Instant::now();
    let load_before = facts::load_average();
    let mut postgres = String::new();
    let mut records = Vec::new();
    for round in 1..=s.rounds {
        for (i, way) in round_order(&s.ways, round, 1).into_iter().enumerate() {
            stop::check()?;
            let label = format!("round {round}/{}, {}", s.rounds, way.name());
            say(format!(
                "{label}: a primary, a standby and {} clients",
                s.clients
            ));
            let servers = Servers::start(way, s);
            postgres.clone_from(&servers.primary.version);
            let name = format!("r{round}-{}", way.name());
            let run = load::run(&servers, s, &out.runs.join(format!("{name}.out")));
            servers.stop(run.fault.is_some());
            for (file, text) in [
                ("primary.log", servers.primary.log()),
                ("standby.log", servers.standby.log()),
            ]
            .into_iter()
            .chain(servers.relay_log())
            {
                out.save_log(&format!("{name}-{file}"), &text);
            }
            let record = Record {
                round,
                position: i + 1,
                way,
                run,
            };
            say(format!("{label}: {}", summary(&record, s)));
            write(&report::tsv_line(&record))?;
            records.push(record);
        }
    }
    let facts = Facts {
        date: facts::utc_now(),
        commit: facts::commit(),
        pgwarm: pgwarm_fact(s),
        postgres,
        pgbouncer: Pgbouncer::version(),
        seconds: started.elapsed().as_secs(),
        load_before,
        load_after: facts::load_average(),
    };
    out.publish(PROGRAM, &report::report(s, &facts, &records))?;
    Ok(records
        .iter()
        .all(|r| r.seen().is_some_and(|seen| seen.wrong_count == 0)))
}

/// The progress line of one run.
fn summary(r: &Record, s: &FailoverSettings) -> String {
    let none = s.none_within();
    match &r.run.seen {
        Ok(seen) => format!(
            "{} operations, {} errors outside a transaction, {} inside, {} lost, {} doubled; \
             writes again after {}",
            seen.ops,
            seen.errors_outside(),
            seen.errors_inside(),
            seen.rows.lost,
            seen.rows.doubled,
            seen.first_write_ms
                .map(|ms| format!("{ms:.1} ms"))
                .unwrap_or(none)
        ),
        Err(e) => format!("FAILED: {e}"),
    }
}

/// The pgwarm measured: its path, size and digest.
fn pgwarm_fact(s: &FailoverSettings) -> String {
    let path = s.pgwarm_bin.display();
    match facts::file_digest(&s.pgwarm_bin) {
        Ok((bytes, digest)) => format!("{path} ({bytes} bytes, sha256 {digest})"),
        Err(e) => format!("{path} ({e})"),
    }
}
