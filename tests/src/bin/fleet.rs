//! `fleet`: many Lambda execution environments against a database with few connection slots,
//! run directly, through pgwarm, and through pgwarm chained to a central PgBouncer; for
//! `scripts/demo.sh` and for people. The scenario is [`pgwarm_tests::drivers::fleet`], on the
//! tests' harness (a throwaway cluster; pgwarm is `$PGWARM_BIN` or the workspace's debug build).
//!
//! ```text
//! fleet [--environments N] [--db-slots N] [--bursts N] [--burst-size N] [--pause-ms N]
//!       [--leak-every N] [--pgbouncer-pool N] [--out DIR]
//! ```
//! Prints a table, one row per way, and writes to DIR (default `target/fleet`) `fleet.txt` (the
//! table), per way `connections-<way>.tsv` (the database's connections over time: seconds,
//! count), and `fleet-connections.svg`, their chart (gnuplot). Exit status 0 when pgwarm's ways failed no
//! invocation, 1 otherwise, 2 for bad usage.

use pgwarm_tests::drivers::children::{end_on_signal, supervise};
use pgwarm_tests::drivers::fleet::{failed_through_pgwarm, run, table, write_files, Shape, Way};
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
        function_timeout: Duration::from_secs(6),
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

    supervise();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    end_on_signal(runtime.handle(), "fleet");
    let mut outcomes = Vec::new();
    for way in Way::ALL {
        eprintln!("fleet: {} environments, {}", shape.environments, way.name());
        outcomes.push(runtime.block_on(run(way, &shape)));
    }

    print!("{}", table(&shape, &outcomes));
    match write_files(&out, &shape, &outcomes) {
        Ok(chart) => eprintln!("fleet: chart in {}", chart.display()),
        Err(e) => {
            eprintln!("fleet: {e}");
            return ExitCode::FAILURE;
        }
    }
    match failed_through_pgwarm(&outcomes) {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
