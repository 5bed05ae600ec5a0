//! The throughput benchmark's runs: the relays started, a query through each target, then every
//! round, mode, client count and target, one pgbench run each, in an order that rotates from
//! round to round.

use std::fmt::Write as _;
use std::path::Path;

use super::mode::{expected_failure, skipped};
use super::runs::{tsv_line, Results, Run, Slot, RUNS_HEADER};
use super::settings::ThroughputSettings;
use super::{say, MAX_CLIENTS, PGWARM_SETTINGS, POOL_SIZE, PROGRAM};
use crate::drivers::bench::out_dirs::OutDirs;
use crate::drivers::bench::pgbench::{Client, SslMode};
use crate::drivers::bench::relays::Relays;
use crate::drivers::bench::run::{Failed, Measured, Outcome};
use crate::drivers::bench::runner::{Finished, Runner};
use crate::drivers::bench::setup;
use crate::drivers::bench::stop::Halt;
use crate::drivers::bench::way::Way;
use crate::drivers::figures::round_order;
use crate::harness::{Haproxy, Pgbouncer, Target};

/// pgwarm, PgBouncer (the one the settings name, with `max_prepared_statements` when it has it)
/// and HAProxy, started against `db`.
pub(super) fn start_relays(s: &ThroughputSettings, db: &Target) -> Relays {
    // The harness runs $PGWARM_BIN (Pgwarm::builder), which Settings checked: pgwarm_bin.
    let pgwarm = setup::pgwarm(PROGRAM, db, &s.common.passthrough, &PGWARM_SETTINGS);
    let max_clients = (MAX_CLIENTS + 10).to_string();
    let mut settings = vec![
        ("default_pool_size", POOL_SIZE),
        ("max_client_conn", max_clients.as_str()),
        ("ignore_startup_parameters", "extra_float_digits"),
    ];
    if s.pgbouncer_prepares {
        // 1.24's default, set for 1.21 to 1.23 too: the same for every version that has it.
        settings.push(("max_prepared_statements", "200"));
    }
    let pgbouncer = Pgbouncer::start_bin(&s.pgbouncer_bin, db, &db.password, &settings);
    say(format!(
        "{} ({}) on 127.0.0.1:{}",
        s.pgbouncer_version,
        s.pgbouncer_bin.display(),
        pgbouncer.port
    ));
    let haproxy = Haproxy::start(db);
    say(format!(
        "{} on 127.0.0.1:{}",
        Haproxy::version(),
        haproxy.port
    ));
    Relays {
        pgwarm,
        pgwarm_bin: s.common.pgwarm_bin.clone(),
        pgbouncer,
        pgbouncer_bin: s.pgbouncer_bin.clone(),
        haproxy: Some(haproxy),
        _pgbouncer_certs: None,
    }
}

/// The sanity checks, then every run; the runs, and how they went as a whole.
pub(super) fn measure(
    s: &ThroughputSettings,
    out: &OutDirs,
    relays: &Relays,
    db: &Target,
) -> Result<(Results, Finished), Halt> {
    let client = |way: Way| Client::new(relays.target(way, db), SslMode::Disable);
    // One query through each target before measuring: a broken path fails here, clearly.
    for way in Way::ALL {
        if let Err(answer) = client(way).check_branches(s.scale) {
            return Err(Halt::Failed(format!(
                "sanity query through {} (port {}) failed: {answer}",
                way.name(),
                relays.target(way, db).port
            )));
        }
    }
    let mut runner = Runner::start(PROGRAM, &relays.processes(), out.table.clone(), RUNS_HEADER)?;
    let total_runs: usize = s
        .modes
        .iter()
        .flat_map(|m| Way::ALL.map(|w| (w, *m)))
        .filter(|(w, m)| !skipped(*w, *m, &s.modes, s.pgbouncer_prepares))
        .count()
        * s.common.rounds
        * s.clients.len();
    say(format!(
        "running {total_runs} pgbench runs of {}s each, {} rounds (load average before: {})",
        s.common.duration,
        s.common.rounds,
        runner.load_before()
    ));
    let mut runs = Vec::new();
    for round in 1..=s.common.rounds {
        let order = round_order(&Way::ALL, round, 1);
        for &mode in &s.modes {
            for &clients in &s.clients {
                let ways = order
                    .iter()
                    .filter(|w| !skipped(**w, mode, &s.modes, s.pgbouncer_prepares));
                for (i, &way) in ways.enumerate() {
                    let label = format!(
                        "[{}/{total_runs}] round {round}/{} {} c={clients} {}",
                        runs.len() + 1,
                        s.common.rounds,
                        mode.as_str(),
                        way.name()
                    );
                    let file = out.runs.join(format!(
                        "{}-c{clients}-{}-r{round}.txt",
                        mode.as_str(),
                        way.name()
                    ));
                    let slot = Slot { mode, clients, way };
                    let (outcome, counted) =
                        one_run(s, &runner, &client(way), slot, &file, &label)?;
                    let run = Run {
                        round,
                        position: i + 1,
                        slot,
                        outcome,
                    };
                    runner.record(&tsv_line(&run), counted)?;
                    runs.push(run);
                }
            }
        }
    }
    let finished = runner.finish(&out.logs);
    let results = Results {
        rounds: s.common.rounds,
        modes: s.modes.clone(),
        clients: s.clients.clone(),
        runs,
    };
    Ok((results, finished))
}

/// One pgbench run, its output saved to `file`, said on stderr as `label`; its outcome, and
/// whether it counts as it should (a known limitation does not fail the benchmark).
fn one_run(
    s: &ThroughputSettings,
    runner: &Runner,
    client: &Client,
    Slot { mode, clients, way }: Slot,
    file: &Path,
    label: &str,
) -> Result<(Outcome<()>, bool), Halt> {
    let args = [
        "-n".to_owned(),
        "-S".into(),
        "-M".into(),
        mode.as_str().into(),
        "-T".into(),
        s.common.duration.to_string(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        clients.min(2).to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let timed = runner.pgbench(client, &args, s.common.duration, way.relay(), file)?;
    let summary = &timed.pgbench.summary;
    let Some(failure) = timed.pgbench.failure(&[]) else {
        let tps = summary.tps.expect("a run that counts has a TPS");
        let (note, cpu_read) = timed.cpu_note("txn");
        say(format!("{label}: {tps} tps{note}"));
        let outcome = Outcome::Measured(Measured {
            tps,
            transactions: summary.processed,
            cpu: timed.cpu,
            more: (),
        });
        return Ok((outcome, cpu_read));
    };
    let mut why = failure.why();
    // A known limitation is reported like any failure but does not fail the benchmark: the
    // other targets' figures are what it is for.
    let expected = expected_failure(way, mode, s.pgbouncer_prepares);
    if expected {
        why.push_str("; expected");
    }
    // Its TPS, if pgbench printed one, is shown but counts nowhere.
    if let Some(tps) = summary.tps {
        let _ = write!(why, "; pgbench's tps {tps:.1}, not counted");
    }
    let failed = Failed::new(failure, summary, why);
    failed.say(PROGRAM, label, file);
    Ok((Outcome::Failed(failed), expected))
}
