//! `fleet`: many Lambda execution environments against a database with few connection slots,
//! run directly, through pgwarm, and through pgwarm chained to a central PgBouncer; for
//! `scripts/demo.sh` and for people. The scenario is [`pgwarm_tests::fleet`], on the tests'
//! harness (a throwaway cluster; pgwarm is `$PGWARM_BIN` or the workspace's debug build).
//!
//! ```text
//! fleet [--environments N] [--db-slots N] [--bursts N] [--burst-size N] [--pause-ms N]
//!       [--leak-every N] [--pgbouncer-pool N] [--out DIR]
//! ```
//! Prints a table, one row per way, and writes to DIR (default `target/fleet`) `fleet.txt` (the
//! table) and, per way, `connections-<way>.tsv` (the database's connections over time: seconds,
//! count), from which `scripts/demo.sh` draws its chart. Exit status 0 when pgwarm's ways failed no
//! invocation, 1 otherwise, 2 for bad usage.

use pgwarm_tests::fleet::{run, Outcome, Shape, Way};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut shape = Shape {
        environments: 60,
        db_slots: 20,
        bursts: 20,
        burst_size: 30,
        pause: Duration::from_millis(300),
        leak_every: 10,
        pgbouncer_pool: 10,
    };
    let mut out = std::path::PathBuf::from("target/fleet");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let number = || value.parse::<usize>().ok().filter(|n| *n > 0);
        let ok = match args[i].as_str() {
            "--environments" => number().map(|n| shape.environments = n),
            "--db-slots" => number().map(|n| shape.db_slots = n),
            "--bursts" => number().map(|n| shape.bursts = n),
            "--burst-size" => number().map(|n| shape.burst_size = n),
            "--pause-ms" => number().map(|n| shape.pause = Duration::from_millis(n as u64)),
            "--leak-every" => number().map(|n| shape.leak_every = n),
            "--pgbouncer-pool" => number().map(|n| shape.pgbouncer_pool = n),
            "--out" => {
                out = value.clone().into();
                Some(())
            }
            _ => None,
        };
        if ok.is_none() {
            eprintln!(
                "fleet: bad option {} {value:?} (see the doc comment of tests/src/bin/fleet.rs)",
                args[i]
            );
            return ExitCode::from(2);
        }
        i += 2;
    }
    if shape.burst_size > shape.environments {
        eprintln!("fleet: --burst-size is larger than --environments");
        return ExitCode::from(2);
    }

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.spawn(end_on_signal());
    let mut outcomes = Vec::new();
    for way in Way::ALL {
        eprintln!("fleet: {} environments, {}", shape.environments, way.name());
        outcomes.push(runtime.block_on(run(way, &shape)));
    }

    std::fs::create_dir_all(&out).expect("the output folder");
    let table = table(&shape, &outcomes);
    print!("{table}");
    std::fs::write(out.join("fleet.txt"), &table).expect("fleet.txt");
    for o in &outcomes {
        let mut series = String::from("seconds\tconnections\n");
        for (ms, n) in &o.samples {
            let _ = writeln!(series, "{:.2}\t{n}", *ms as f64 / 1000.0);
        }
        let file = out.join(format!("connections-{}.tsv", o.way.slug()));
        std::fs::write(&file, series).expect("a connections file");
    }
    let pgwarm_failed: usize = outcomes
        .iter()
        .filter(|o| o.way != Way::Direct)
        .map(Outcome::failed)
        .sum();
    match pgwarm_failed {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// Ctrl-C or SIGTERM: the environments' pgwarm and PgBouncer processes are killed (a frozen one
/// would never act on a gentler signal), then the process exits; the harness's reaper removes
/// the throwaway cluster once it has.
async fn end_on_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("fleet: stopped; killing every environment");
    let me = std::process::id().to_string();
    for name in ["pgwarm", "pgbouncer"] {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-P", &me, "-x", name])
            .status();
    }
    std::process::exit(130);
}

/// The table a person reads in ten seconds.
fn table(shape: &Shape, outcomes: &[Outcome]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} environments, bursts of {} at once ({} bursts), a database role limited to {} connections;",
        shape.environments, shape.burst_size, shape.bursts, shape.db_slots
    );
    let _ = writeln!(
        t,
        "the handler connects, queries and closes on every invocation, and every {}th leaks its connection.\n",
        shape.leak_every
    );
    let _ = writeln!(
        t,
        "{:<20} {:>11} {:>8}  {:<32} {:>14} {:>9} {:>9}",
        "way", "invocations", "failed", "failures by SQLSTATE", "db peak conns", "p50 ms", "p99 ms"
    );
    for o in outcomes {
        let failures = match o.failures.is_empty() {
            true => "-".to_owned(),
            false => o
                .failures
                .iter()
                .map(|(code, n)| format!("{code} x{n}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            t,
            "{:<20} {:>11} {:>8}  {:<32} {:>14} {:>9.1} {:>9.1}",
            o.way.name(),
            o.invocations,
            o.failed(),
            failures,
            o.peak_connections,
            o.latency_ms(0.5),
            o.latency_ms(0.99)
        );
    }
    let _ = writeln!(
        t,
        "\n53300: too many connections for role (what RDS answers at max_connections: 53300 too)."
    );
    for o in outcomes {
        if let Some(pools) = &o.pools {
            let _ = writeln!(
                t,
                "SHOW POOLS of one environment, {}: {pools}",
                o.way.name()
            );
        }
    }
    t
}
