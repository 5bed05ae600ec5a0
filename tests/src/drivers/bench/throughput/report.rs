//! The throughput benchmark's report: what was measured with what (commit, versions, settings,
//! load), how to read it, then per mode a table of TPS and ratios, one of the relays' CPU per
//! transaction, and the runs that failed with pgbench's own lines.

use std::fmt::Write as _;

use super::mode::{expected_failure, skipped};
use super::runs::{cpu_us, tps, Results, Slot};
use super::settings::ThroughputSettings;
use super::POOL_SIZE;
use crate::drivers::bench::run::{Failed, Outcome};
use crate::drivers::bench::runner::Finished;
use crate::drivers::bench::way::Way;
use crate::drivers::facts;
use crate::drivers::figures::{ratio_cell, round_order, Cell};
use crate::drivers::pgwarm_env::show_env;
use crate::harness::{cluster, first_line_of, Haproxy};

/// The report: the facts of the run, then a table per mode with the failed runs below it.
pub(super) fn report(s: &ThroughputSettings, results: &Results, finished: &Finished) -> String {
    let mut r = String::new();
    let (bytes, _) = facts::file_digest(&s.common.pgwarm_bin).unwrap_or((0, "?".into()));
    let postgres = first_line_of(&cluster().bindir.join("postgres"), "--version");
    let modes: Vec<&str> = s.modes.iter().map(|m| m.as_str()).collect();
    let first_order: Vec<&str> = round_order(&Way::ALL, 1, 1)
        .iter()
        .map(|w| w.name())
        .collect();
    let _ = writeln!(r, "pgwarm benchmark, {}", facts::utc_now());
    let _ = writeln!(
        r,
        "commit: {}   nproc: {}   pgwarm binary: {bytes} bytes ({:.1} MiB)",
        facts::commit(),
        facts::nproc(),
        bytes as f64 / 1_048_576.0
    );
    let _ = writeln!(
        r,
        "pgbench -n -S -M MODE -T {} -c C -j min(C,2), scale {}; modes: {}",
        s.common.duration,
        s.scale,
        modes.join(" ")
    );
    let _ = writeln!(
        r,
        "{postgres}; {}; {}, one thread, mode tcp",
        s.pgbouncer_version,
        Haproxy::version()
    );
    let _ = writeln!(
        r,
        "pool size {POOL_SIZE} (pgwarm and PgBouncer, transaction mode); pgwarm extra env: {}",
        show_env(&s.common.passthrough)
    );
    let _ = writeln!(
        r,
        "{} rounds; in each, per mode and client count, the targets back to back in an order",
        s.common.rounds
    );
    let _ = writeln!(
        r,
        "rotating each round ({} first); {} runs took {}s",
        first_order.join(","),
        results.runs.len(),
        finished.seconds
    );
    let _ = writeln!(r, "{}", finished.load_line());
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "TPS: median over the {} rounds. Ratios: of those medians, (min-max of the per-round ratios).",
        s.common.rounds
    );
    let _ = writeln!(
        r,
        "us/txn: the process's CPU time per transaction in µs (utime+stime from /proc/PID/stat around"
    );
    let _ = writeln!(
        r,
        "each run, CLK_TCK {}, / transactions processed), median over the rounds. CPU ratios below 1:",
        finished.ticks_per_second
    );
    let _ = writeln!(
        r,
        "pgwarm spends less. HAProxy only copies bytes (no pooling): the floor for a relay's CPU."
    );
    let _ = writeln!(
        r,
        "FAILED k/N: k of the N runs failed; ratios then show -. Each failed run is listed below its"
    );
    let _ = writeln!(
        r,
        "table with pgbench's first error line (and its first client abort line, if another)."
    );
    for &mode in &s.modes {
        let _ = writeln!(r);
        let note = match skipped(Way::Pgbouncer, mode, &s.modes, s.pgbouncer_prepares) {
            true => " (PgBouncer: its -M extended figures; before 1.21 it cannot run prepared statements in transaction mode)",
            false => "",
        };
        let _ = writeln!(r, "-M {}{note}", mode.as_str());
        let _ = writeln!(
            r,
            "{:>7} {:>10} {:>10} {:>10} {:>10}  {:<17} {:<17} {:<17}",
            "clients",
            "direct",
            "pgwarm",
            "pgbouncer",
            "haproxy",
            "pgwarm/direct",
            "pgwarm/pgbouncer",
            "pgwarm/haproxy"
        );
        for &c in &s.clients {
            let tps = |way| results.per_round(tps, mode, c, way);
            let show = |way| Cell::of(&tps(way)).show(0);
            let _ = writeln!(
                r,
                "{c:>7} {:>10} {:>10} {:>10} {:>10}  {:<17} {:<17} {:<17}",
                show(Way::Direct),
                show(Way::Pgwarm),
                show(Way::Pgbouncer),
                show(Way::Haproxy),
                ratio_cell(&tps(Way::Pgwarm), &tps(Way::Direct)),
                ratio_cell(&tps(Way::Pgwarm), &tps(Way::Pgbouncer)),
                ratio_cell(&tps(Way::Pgwarm), &tps(Way::Haproxy)),
            );
        }
        let _ = writeln!(
            r,
            "{:>7} {:>10} {:>10} {:>10}  {:<21} {:<21}",
            "us/txn",
            "pgwarm",
            "pgbouncer",
            "haproxy",
            "CPU pgwarm/pgbouncer",
            "CPU pgwarm/haproxy"
        );
        for &c in &s.clients {
            let cpu = |way| results.per_round(cpu_us, mode, c, way);
            let show = |way| Cell::of(&cpu(way)).show(2);
            let _ = writeln!(
                r,
                "{:>7} {:>10} {:>10} {:>10}  {:<21} {:<21}",
                format!("c={c}"),
                show(Way::Pgwarm),
                show(Way::Pgbouncer),
                show(Way::Haproxy),
                ratio_cell(&cpu(Way::Pgwarm), &cpu(Way::Pgbouncer)),
                ratio_cell(&cpu(Way::Pgwarm), &cpu(Way::Haproxy)),
            );
        }
        // The failed runs of this mode, each with why and pgbench's first error line.
        for &c in &s.clients {
            for way in Way::ALL {
                let slot = Slot {
                    mode,
                    clients: c,
                    way,
                };
                for run in results.runs.iter().filter(|r| r.slot == slot) {
                    if let Outcome::Failed(Failed {
                        why, error, abort, ..
                    }) = &run.outcome
                    {
                        let _ = writeln!(
                            r,
                            "  FAILED c={c} {} round {}: {why}",
                            way.name(),
                            run.round
                        );
                        let _ = writeln!(r, "      {error}");
                        if let Some(abort) = abort {
                            let _ = writeln!(r, "      {abort}");
                        }
                    }
                }
            }
        }
    }
    let expected = results
        .runs
        .iter()
        .filter(|r| {
            matches!(r.outcome, Outcome::Failed(_))
                && expected_failure(r.slot.way, r.slot.mode, s.pgbouncer_prepares)
        })
        .count();
    if expected > 0 {
        let _ = writeln!(r);
        let _ = writeln!(
            r,
            "{expected} runs failed as expected: PgBouncer before 1.21 (max_prepared_statements) cannot"
        );
        let _ = writeln!(
            r,
            "run -M prepared in transaction mode (a client's PREPARE fails with \"already exists\" where"
        );
        let _ = writeln!(
            r,
            "another client's statement of that name sits on the server connection, or its EXECUTE with"
        );
        let _ = writeln!(r, "\"does not exist\" where none does).");
    }
    r
}
