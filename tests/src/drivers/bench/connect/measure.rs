//! The connect benchmark's runs: the relays started (PgBouncer with TLS towards clients and the
//! server), the checks, then every round's six cases, one `pgbench -C` run each, in an order
//! that rotates by one target from round to round.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::cases::{Case, CASES};
use super::checks::{self, Tls};
use super::runs::{ms_per_connection, tsv_line, Connection, Run, RUNS_HEADER};
use super::settings::ConnectSettings;
use super::{say, PGWARM_SETTINGS, POOL_SIZE, PROGRAM};
use crate::drivers::bench::out_dirs::OutDirs;
use crate::drivers::bench::pgbench::{Client, Figure};
use crate::drivers::bench::relays::Relays;
use crate::drivers::bench::run::{Failed, Measured, Outcome};
use crate::drivers::bench::runner::{Finished, Runner};
use crate::drivers::bench::setup;
use crate::drivers::bench::stop::Halt;
use crate::drivers::figures::round_order;
use crate::harness::{chown_postgres, tool, Pgbouncer, Target, TestCerts};

/// pgwarm, and PgBouncer with `pgbouncer_secret` in its auth_file and a certificate of its own
/// for TLS clients, started against `db`.
pub(super) fn start_relays(
    s: &ConnectSettings,
    db: &Target,
    pgbouncer_secret: &str,
) -> Result<Relays, String> {
    // The harness runs $PGWARM_BIN (Pgwarm::builder), which Settings checked: pgwarm_bin.
    let pgwarm = setup::pgwarm(PROGRAM, db, &s.common.passthrough, &PGWARM_SETTINGS);
    let certs = TestCerts::new(&["localhost", "127.0.0.1"]);
    // PgBouncer runs as `postgres` when we are root: its key must be that user's.
    fs::set_permissions(&certs.server_key_file, fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod 600 {}: {e}", certs.server_key_file.display()))?;
    chown_postgres(&certs.server_key_file);
    chown_postgres(&certs.server_cert_file);
    let key = certs.server_key_file.display().to_string();
    let cert = certs.server_cert_file.display().to_string();
    let pgbouncer = Pgbouncer::start_with_auth(
        db,
        pgbouncer_secret,
        &[
            ("default_pool_size", POOL_SIZE),
            ("max_client_conn", "200"),
            ("ignore_startup_parameters", "extra_float_digits"),
            ("server_tls_sslmode", "require"),
            ("client_tls_sslmode", "allow"),
            ("client_tls_key_file", &key),
            ("client_tls_cert_file", &cert),
            ("log_connections", "0"),
            ("log_disconnections", "0"),
        ],
    );
    say(format!(
        "{} on 127.0.0.1:{}",
        Pgbouncer::version(),
        pgbouncer.port
    ));
    Ok(Relays {
        pgwarm,
        pgwarm_bin: s.common.pgwarm_bin.clone(),
        pgbouncer,
        // start_with_auth runs Debian's.
        pgbouncer_bin: tool("pgbouncer"),
        haproxy: None,
        _pgbouncer_certs: Some(certs),
    })
}

/// The checks, then every run; the runs, the TLS the checks saw, and how the runs went as a
/// whole.
pub(super) fn measure(
    s: &ConnectSettings,
    out: &OutDirs,
    relays: &Relays,
    db: &Target,
) -> Result<(Vec<Run>, Tls, Finished), Halt> {
    let tls = checks::check(relays, db)?;
    let mut runner = Runner::start(PROGRAM, &relays.processes(), out.table.clone(), RUNS_HEADER)?;
    let total_runs = s.common.rounds * CASES.len();
    say(format!(
        "running {total_runs} pgbench -C runs of {}s each, {} rounds (load average before: {})",
        s.common.duration,
        s.common.rounds,
        runner.load_before()
    ));
    let mut runs: Vec<Run> = Vec::new();
    for round in 1..=s.common.rounds {
        for (i, case) in round_order(&CASES, round, 2).into_iter().enumerate() {
            let label = format!(
                "[{}/{total_runs}] round {round}/{} {} (sslmode={})",
                runs.len() + 1,
                s.common.rounds,
                case.name(),
                case.sslmode.as_str()
            );
            let file = out.runs.join(format!("{}-r{round}.txt", case.name()));
            let client = checks::client(relays, db, case);
            let (outcome, counted) = one_run(s, &runner, &client, case, &file, &label)?;
            let run = Run {
                round,
                position: i + 1,
                slot: case,
                outcome,
            };
            runner.record(&tsv_line(&run), counted)?;
            runs.push(run);
        }
    }
    let finished = runner.finish(&out.logs);
    Ok((runs, tls, finished))
}

/// One `pgbench -C` run of `case`, its output saved to `file`, said on stderr as `label`; its
/// outcome, and whether it counts.
fn one_run(
    s: &ConnectSettings,
    runner: &Runner,
    client: &Client,
    case: Case,
    file: &Path,
    label: &str,
) -> Result<(Outcome<Connection>, bool), Halt> {
    let duration = s.common.duration.to_string();
    let args = ["-n", "-C", "-S", "-c", "1", "-j", "1", "-T", &duration];
    let timed = runner.pgbench(client, &args, s.common.duration, case.way.relay(), file)?;
    let sm = &timed.pgbench.summary;
    if let Some(failure) = timed
        .pgbench
        .failure(&[Figure::LatencyAverage, Figure::ConnectionTime])
    {
        let why = failure.why();
        let failed = Failed::new(failure, sm, why);
        failed.say(PROGRAM, label, file);
        return Ok((Outcome::Failed(failed), false));
    }
    let figure = |f: Option<f64>| f.expect("a run that counts has its figures");
    let transactions = sm.processed;
    let pgbench_cpu_us = timed.pgbench.cpu.as_secs_f64() * 1e6 / transactions as f64;
    let (note, cpu_read) = timed.cpu_note("conn");
    let m = Measured {
        tps: figure(sm.tps),
        transactions,
        cpu: timed.cpu,
        more: Connection {
            latency_ms: figure(sm.latency_ms),
            connection_ms: figure(sm.connection_ms),
            pgbench_cpu_us,
        },
    };
    say(format!(
        "{label}: {:.3} ms/conn ({} conn/s), connect {} ms, \
         pgbench CPU {pgbench_cpu_us:.1} us/conn{note}",
        ms_per_connection(&m),
        m.tps,
        m.more.connection_ms
    ));
    Ok((Outcome::Measured(m), cpu_read))
}
