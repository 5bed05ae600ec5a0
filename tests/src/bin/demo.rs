//! `demo`: the demo behind `scripts/demo.sh`, on the tests' harness. A real PostgreSQL,
//! lambda-simulator playing Lambda, pgwarm as the extension and `handler-example` as the
//! function, then the fleet; a report a person reads in a minute.
//!
//! ```text
//! demo [--keep] [--out DIR]
//! ```
//! 1. A throwaway PostgreSQL cluster on a free port on 127.0.0.1 (SCRAM), with role `app` (a
//!    random password) and database `app`, and moto_server (the Secrets Manager emulator pgwarm's
//!    real AWS SDK reaches through `AWS_ENDPOINT_URL`) with the secret `demo/app-db` holding
//!    that login in RDS's JSON. The handler never sees the database password.
//! 2. pgwarm's start-up as an extension, `DEMO_STARTUP_RUNS` times, each under a fresh
//!    simulator: exec to listening and exec to registered.
//! 3. The handler through pgwarm (pool size 2): `DEMO_INVOCATIONS` invocations, each on a fresh
//!    connection (connect, record a visit, count, close), each timed from the event to the
//!    result. The environment is frozen (SIGSTOP) between invocations and thawed for the next.
//! 4. The thaw check: while the environment is frozen, the database terminates every backend of
//!    `app`; the invocation after the thaw must not notice.
//! 5. SHUTDOWN: pgwarm must exit within Lambda's 2 s and leave no backend behind.
//! 6. The same handler without pgwarm, straight to PostgreSQL (a SCRAM login each time).
//! 7. The fleet ([`pgwarm_tests::drivers::fleet`]): `DEMO_FLEET_ENVIRONMENTS` environments, each under
//!    lambda-simulator and frozen between its invocations, against a role limited to
//!    `DEMO_FLEET_SLOTS` connections, invoked `DEMO_FLEET_BURST` at a time, `DEMO_FLEET_BURSTS`
//!    times, with a 6 s function timeout; the handler connects, queries inside a transaction,
//!    commits and closes every time, and one invocation in ten leaks its connection inside the
//!    transaction. Directly, through pgwarm with its defaults, and through pgwarm (defaults,
//!    `PGWARM_UPSTREAM_POOLER=on`) chained to a central PgBouncer (pool 10). Its table goes into
//!    the report, its files and chart (`fleet-connections.svg`) into DIR (default `target/demo`).
//!
//! `--keep`: after the report, one environment stays up (pgwarm registered, the handler
//! running, not frozen) with the psql lines to reach it; Enter invokes the function once,
//! Ctrl-C sends SHUTDOWN and cleans up.
//!
//! Environment (each checked; a bad value is named, exit status 2):
//! ```text
//! DEMO_INVOCATIONS         invocations through pgwarm                  (default 50)
//! DEMO_DIRECT_INVOCATIONS  invocations straight to PostgreSQL          (default 50)
//! DEMO_FREEZE              on|off: freeze between invocations; off skips the thaw check (on)
//! DEMO_STARTUP_RUNS        pgwarm starts timed in step 2; 0 skips them  (default 10)
//! DEMO_FLEET_ENVIRONMENTS  environments in the fleet                   (default 60)
//! DEMO_FLEET_SLOTS         the fleet's role's connection limit         (default 20)
//! DEMO_FLEET_BURST         environments invoked at once                (default 30)
//! DEMO_FLEET_BURSTS        bursts                                      (default 12)
//! PGWARM_BIN, HANDLER_BIN  the binaries (default: the workspace's debug builds)
//! PGWARM_*                 passed through to pgwarm, except the ones the demo fixes: LISTEN,
//!                          SECRET_ID, SSLMODE (prefer), POOL_SIZE (2), LOG_LEVEL (info, and
//!                          debug for client logins). PGWARM_LOG_FORMAT defaults to text.
//! ```
//! Exit status 0 when every check passed, 1 when one failed (the report marks it FAILED), 2 for
//! bad usage, 130 when interrupted. Everything it started ends with it, on Ctrl-C too
//! ([`pgwarm_tests::drivers::children`]).

use pgwarm_tests::drivers::children::{end_on_signal, supervise};
use pgwarm_tests::drivers::facts::utc_now;
use pgwarm_tests::drivers::figures::{median, median_ratio, min_max, quantile};
use pgwarm_tests::drivers::fleet::{self, Shape, Way};
use pgwarm_tests::drivers::lifecycle::{self, invoke, thaw_check, Invocation, SHUTDOWN_BUDGET};
use pgwarm_tests::drivers::pgwarm_env::{pgwarm_passthrough, show_env};
use pgwarm_tests::drivers::vars::{self, number};
use pgwarm_tests::{
    cluster, find_workspace_bin, free_port, Lambda, Moto, Pgwarm, PgwarmBuilder, Target,
};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::signal::unix::Signal;

const POOL_SIZE: usize = 2;
const SECRET_ID: &str = "demo/app-db";

/// What the demo runs, from its arguments and environment.
struct Settings {
    invocations: usize,
    direct_invocations: usize,
    freeze: bool,
    startup_runs: usize,
    fleet: Shape,
    keep: bool,
    out: PathBuf,
    pgwarm: PathBuf,
    handler: PathBuf,
}

impl Settings {
    fn read() -> Result<Settings, String> {
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
        Ok(Settings {
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

/// The report: lines, and the checks that failed.
#[derive(Default)]
struct Report {
    text: String,
    failed: Vec<String>,
}

impl Report {
    fn line(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.text, "{}", text.as_ref());
    }

    fn row(&mut self, label: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.text, "  {label:<46} {}", value.as_ref());
    }

    fn check(&mut self, label: &str, value: impl AsRef<str>, passed: bool) {
        let mark = if passed { "ok" } else { "FAILED" };
        let _ = writeln!(self.text, "  {label:<46} {:<40} {mark}", value.as_ref());
        if !passed {
            self.failed.push(label.to_owned());
        }
    }
}

fn main() -> ExitCode {
    supervise();
    let settings = match Settings::read() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let on_signal = end_on_signal(runtime.handle(), "demo");
    let began = Instant::now();
    let (report, kept) = runtime.block_on(demo(&settings));
    println!("\n{}", report.text);
    let status = match report.failed.as_slice() {
        [] => {
            eprintln!(
                "demo: all checks passed in {:.1} s",
                began.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        failed => {
            eprintln!(
                "demo: {} check(s) FAILED: {}",
                failed.len(),
                failed.join("; ")
            );
            ExitCode::FAILURE
        }
    };
    if let Some(kept) = kept {
        // keep's own handlers first, so that no signal falls between the two.
        let signals = {
            use tokio::signal::unix::{signal, SignalKind};
            let _entered = runtime.enter();
            (
                signal(SignalKind::interrupt()).expect("a SIGINT handler"),
                signal(SignalKind::terminate()).expect("a SIGTERM handler"),
            )
        };
        on_signal.abort();
        runtime.block_on(keep(kept, signals));
    }
    status
}

/// What stays up with `--keep`.
struct Kept {
    lambda: Lambda,
    app: Target,
    _moto: Moto,
}

async fn demo(s: &Settings) -> (Report, Option<Kept>) {
    let mut r = Report::default();
    eprintln!("demo: starting PostgreSQL (a throwaway cluster) and moto_server");
    let db = cluster().create_target("app");
    let moto = Moto::start();
    moto.create_secret(SECRET_ID, &Moto::rds_secret_json(&db));
    let pgwarm_port = free_port();
    let (listen, pool_size) = (format!("127.0.0.1:{pgwarm_port}"), POOL_SIZE.to_string());
    // What the demo fixes for pgwarm; every other `PGWARM_*` of the caller reaches it.
    let settings = [
        ("PGWARM_LISTEN", listen.as_str()),
        ("PGWARM_SECRET_ID", SECRET_ID),
        // The secret's host is this machine, whose cluster has no certificate.
        ("PGWARM_SSLMODE", "prefer"),
        ("PGWARM_POOL_SIZE", pool_size.as_str()),
        // Client logins are logged at debug level: they are what the report counts.
        ("PGWARM_LOG_LEVEL", "info,pgwarm::client::handshake=debug"),
    ];
    let fixed: Vec<&str> = settings.iter().map(|(k, _)| *k).collect();
    let passthrough = pgwarm_passthrough(std::env::vars(), &fixed);
    let pgwarm = Pgwarm::builder_for(&s.pgwarm)
        .envs(moto.aws_env())
        .envs(passthrough.iter().cloned())
        .envs(settings)
        .env_default("PGWARM_LOG_FORMAT", "text");
    let superuser = cluster().superuser().connect().await;

    r.line(format!("pgwarm demo, {}", utc_now()));
    r.line(format!(
        "PostgreSQL {} on 127.0.0.1:{} (throwaway cluster)",
        cluster().version,
        cluster().port
    ));
    r.line(match s.freeze {
        true => "lambda-simulator 0.2 plays Lambda, freezing the environment between invocations (SIGSTOP, then SIGCONT with the next event)",
        false => "lambda-simulator 0.2 plays Lambda, without freezing (DEMO_FREEZE=off)",
    });
    r.line(format!(
        "pgwarm as the extension on 127.0.0.1:{pgwarm_port}, PGWARM_POOL_SIZE={POOL_SIZE}; other settings from the environment: {}",
        show_env(&passthrough)
    ));
    r.line(format!(
        "its login: the secret {SECRET_ID}, read from moto_server (Secrets Manager emulator) on 127.0.0.1:{}",
        moto.port
    ));

    if s.startup_runs > 0 {
        eprintln!("demo: starting pgwarm {} times as an extension, timing exec to listening and to registered", s.startup_runs);
        startup(&mut r, pgwarm.clone(), s.startup_runs).await;
    }

    eprintln!(
        "demo: pgwarm as the extension, handler-example as the function, {} invocations",
        s.invocations
    );
    let pooled_url = format!("postgres://app@127.0.0.1:{pgwarm_port}/app");
    let pooled = through_pgwarm(&mut r, s, pgwarm.clone(), &pooled_url, &superuser).await;

    eprintln!(
        "demo: handler-example alone, straight to PostgreSQL, {} invocations",
        s.direct_invocations
    );
    let direct_url = format!("postgres://app:{}@127.0.0.1:{}/app", db.password, db.port);
    direct(&mut r, s, &direct_url, &pooled).await;
    let visits = Target {
        dbname: "app".into(),
        ..cluster().superuser()
    }
    .connect()
    .await
    .query_one("SELECT count(*) FROM visits", &[])
    .await
    .map_or(-1, |row| row.get::<_, i64>(0));
    let expected = pooled.clients + s.direct_invocations as i64;
    r.check(
        "visits in the table (both runs)",
        format!("{visits} (expected {expected})"),
        visits == expected,
    );

    eprintln!(
        "demo: fleet: {} environments, {} connection slots; direct, through pgwarm, through pgwarm + PgBouncer",
        s.fleet.environments, s.fleet.db_slots
    );
    the_fleet(&mut r, s).await;

    let kept = match s.keep {
        false => None,
        true => {
            let mut lambda = Lambda::start_with(Some(pgwarm), false).await;
            lambda.start_handler_bin(&s.handler, &pooled_url);
            Some(Kept {
                lambda,
                app: Target {
                    port: pgwarm_port,
                    password: String::new(),
                    ..db
                },
                _moto: moto,
            })
        }
    };
    (r, kept)
}

/// Step 2: start-up as an extension.
async fn startup(r: &mut Report, pgwarm: PgwarmBuilder, runs: usize) {
    let (mut listening, mut registered) = (Vec::new(), Vec::new());
    let mut failure = None;
    for _ in 0..runs {
        match lifecycle::startup(pgwarm.clone()).await {
            Ok(one) => {
                listening.push(one.listening_ms);
                registered.push(one.registered_ms);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    r.line("");
    r.line(format!(
        "pgwarm start-up as an extension ({runs} starts, each under a fresh simulator)"
    ));
    if let Some(e) = &failure {
        eprintln!("demo: start-up: {e}");
    }
    r.check(
        "starts that listened, registered and exited",
        format!("{} of {runs}", listening.len()),
        failure.is_none(),
    );
    r.row("exec to listening", spread(&listening));
    r.row("exec to registered", spread(&registered));
}

/// What the run through pgwarm leaves for the comparison with the direct one.
struct Pooled {
    /// Client connections pgwarm saw: one per invocation, the thaw check's included.
    clients: i64,
    times: Times,
}

/// The times of invocations 2 and later (the first pays for the empty pool or the first login).
struct Times {
    db_ms: Vec<f64>,
    wall_ms: Vec<f64>,
}

impl Times {
    /// Their medians and p95s in the report.
    fn rows(&self, r: &mut Report, invocations: usize) {
        r.row(
            &format!("db_ms, invocations 2..{invocations}"),
            median_p95(&self.db_ms),
        );
        r.row(
            &format!("invocation wall time, 2..{invocations}"),
            median_p95(&self.wall_ms),
        );
    }

    fn of(invocations: &[Invocation]) -> Times {
        let later = || {
            invocations
                .iter()
                .skip(1)
                .filter_map(|i| Some((i.answer()?, i.wall_ms)))
        };
        Times {
            db_ms: later().map(|(a, _)| a.db_ms).collect(),
            wall_ms: later().map(|(_, wall)| wall).collect(),
        }
    }
}

/// Steps 3 to 5: invocations through pgwarm, the thaw check, SHUTDOWN, each with its part of
/// the report.
async fn through_pgwarm(
    r: &mut Report,
    s: &Settings,
    pgwarm: PgwarmBuilder,
    url: &str,
    superuser: &tokio_postgres::Client,
) -> Pooled {
    let began = Instant::now();
    let mut lambda = Lambda::start_with(Some(pgwarm), s.freeze).await;
    lambda.start_handler_bin(&s.handler, url);
    let mut invocations = Vec::new();
    for _ in 0..s.invocations {
        invocations.push(invoke(&lambda, "demo").await);
    }
    let thaw = match s.freeze {
        true => Some(thaw_check(&lambda, superuser, "app").await),
        false => None,
    };
    let took = began.elapsed();
    let failed: Vec<&Invocation> = invocations.iter().filter(|i| i.outcome.is_err()).collect();
    if !failed.is_empty() {
        eprintln!(
            "demo: invocations through pgwarm failed, e.g. {:?}\n--- handler log ---\n{}",
            failed[0].outcome,
            lambda.handler_log()
        );
    }
    let shutdown = lifecycle::shutdown(lambda).await;
    // pgwarm sent Terminate on its server connections before exiting; the backends go just after.
    let gone = Instant::now();
    let backends_after = cluster().wait_for_backends("app", 0, Duration::from_secs(2));
    let gone_ms = gone.elapsed().as_millis();

    let log = shutdown.pgwarm.log();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    let (opened, replaced) = (
        count("opened server connection"),
        count("closed by the database; replacing it"),
    );
    let (logins, secret_reads) = (count("client logged in"), count("read the secret"));
    let clients = (s.invocations + usize::from(thaw.is_some())) as i64;

    let ok: Vec<_> = invocations.iter().filter_map(Invocation::answer).collect();
    let last_visits = ok.last().map(|a| a.visits);
    let times = Times::of(&invocations);
    r.line("");
    r.line(format!(
        "The example handler through pgwarm ({} invocations, a fresh connection each; {} ms in all)",
        s.invocations,
        took.as_millis()
    ));
    r.check(
        "invocations succeeded",
        format!(
            "{} of {} ({} failed)",
            ok.len(),
            s.invocations,
            failed.len()
        ),
        failed.is_empty(),
    );
    r.check(
        "visits counted by the last invocation",
        last_visits.map_or("none".into(), |v| v.to_string()),
        last_visits == Some(s.invocations as i64),
    );
    let kept_open = opened.saturating_sub(replaced);
    r.check(
        "server connections pgwarm opened",
        format!("{opened} for {logins} client connections"),
        (1..=POOL_SIZE).contains(&kept_open) && logins as i64 == clients,
    );
    r.check(
        "reads of the secret (Secrets Manager)",
        format!("{secret_reads} for {logins} client connections"),
        secret_reads == 1,
    );
    let first = invocations.first();
    r.row(
        "first invocation (pool still empty)",
        format!(
            "db_ms {}, wall {} ms",
            first
                .and_then(Invocation::answer)
                .map_or("-".into(), |a| format!("{:.2}", a.db_ms)),
            first.map_or("-".into(), |i| format!("{:.2}", i.wall_ms))
        ),
    );
    times.rows(r, s.invocations);

    if let Some(thaw) = thaw {
        r.line("");
        r.line("Frozen, the database terminates every backend of app; then thaw and invoke");
        match thaw {
            Ok(check) => {
                r.check(
                    "backends terminated while frozen",
                    check.terminated.to_string(),
                    check.terminated >= 1,
                );
                let i = &check.invocation;
                r.check(
                    "the invocation after the thaw",
                    match i.answer() {
                        Some(a) => format!("ok, db_ms {:.2}, wall {:.2} ms", a.db_ms, i.wall_ms),
                        None => "failed".into(),
                    },
                    i.outcome.is_ok(),
                );
            }
            Err(e) => r.check("the thaw check", e, false),
        }
        r.row(
            "dead server connections pgwarm replaced",
            format!("{replaced} (among the {opened} it opened)"),
        );
    }

    r.line("");
    r.line("SHUTDOWN");
    r.check(
        &format!(
            "pgwarm exited, within Lambda's {} ms",
            SHUTDOWN_BUDGET.as_millis()
        ),
        format!(
            "status {} after {} ms",
            shutdown.status_text(),
            shutdown.exit_ms.map_or("-".into(), |t| format!("{t:.1}"))
        ),
        shutdown.clean(),
    );
    r.check(
        "backends of role app afterwards",
        format!("{backends_after} (seen within {gone_ms} ms)"),
        backends_after == 0,
    );
    Pooled { clients, times }
}

/// Step 6: the same handler, straight to PostgreSQL.
async fn direct(r: &mut Report, s: &Settings, url: &str, pooled: &Pooled) {
    let mut lambda = Lambda::start_with(None, s.freeze).await;
    lambda.start_handler_bin(&s.handler, url);
    let mut invocations = Vec::new();
    for _ in 0..s.direct_invocations {
        invocations.push(invoke(&lambda, "demo").await);
    }
    if let Some(e) = invocations.iter().find_map(|i| i.outcome.as_ref().err()) {
        eprintln!(
            "demo: an invocation straight to PostgreSQL failed: {e}\n--- handler log ---\n{}",
            lambda.handler_log()
        );
    }
    lambda.shutdown().await;
    let ok = invocations.iter().filter(|i| i.outcome.is_ok()).count();
    let times = Times::of(&invocations);
    r.line("");
    r.line(format!(
        "The same handler straight to PostgreSQL ({} invocations, a SCRAM login each)",
        s.direct_invocations
    ));
    r.check(
        "invocations succeeded",
        format!("{ok} of {}", s.direct_invocations),
        ok == s.direct_invocations,
    );
    times.rows(r, s.direct_invocations);
    r.row(
        "direct / pgwarm, medians",
        format!(
            "db_ms {}, wall {}",
            median_ratio(&times.db_ms, &pooled.times.db_ms, 1),
            median_ratio(&times.wall_ms, &pooled.times.wall_ms, 1)
        ),
    );
}

/// Step 7: the fleet, three ways.
async fn the_fleet(r: &mut Report, s: &Settings) {
    let mut outcomes = Vec::new();
    for way in Way::ALL {
        eprintln!("demo: fleet, {}", way.name());
        outcomes.push(fleet::run(way, &s.fleet).await);
    }
    r.line("");
    r.line(format!(
        "The fleet: {} environments, each frozen between its invocations, against a role with {} connection slots",
        s.fleet.environments, s.fleet.db_slots
    ));
    for line in fleet::table(&s.fleet, &outcomes).lines() {
        r.line(match line.is_empty() {
            true => String::new(),
            false => format!("  {line}"),
        });
    }
    let failed: usize = outcomes
        .iter()
        .filter(|o| o.way != Way::Direct)
        .map(fleet::Outcome::failed)
        .sum();
    r.check(
        "no invocation through pgwarm (its defaults) failed or timed out",
        format!("{failed} failed"),
        failed == 0,
    );
    match fleet::write_files(&s.out, &s.fleet, &outcomes) {
        Ok(chart) => r.row(
            "chart of the database's connections",
            chart.display().to_string(),
        ),
        Err(e) => r.check("chart of the database's connections", e, false),
    }
}

/// `--keep`: one environment stays up until Ctrl-C (or SIGTERM); Enter invokes the function.
async fn keep(kept: Kept, (mut interrupt, mut terminate): (Signal, Signal)) {
    let Kept { lambda, app, _moto } = kept;
    println!(
        "One environment stays up: pgwarm registered as the extension, handler-example as the function.\n\
         \n  psql \"host=127.0.0.1 port={port} user={user} dbname={db} sslmode=disable\"     the database, through pgwarm\n\
         \x20 psql \"host=127.0.0.1 port={port} user={user} dbname=pgwarm sslmode=disable\"  its admin console: SHOW POOLS; SHOW STATS; SHOW LAMBDA;\n\
         \nEnter invokes the function once; Ctrl-C sends SHUTDOWN and removes everything.",
        port = app.port,
        user = app.user,
        db = app.dbname
    );
    // Lines of stdin, read on a thread of their own: the channel closes with stdin.
    let (line_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if line.is_err() || line_tx.send(()).is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            line = lines.recv(), if stdin_open => match line {
                Some(()) => {
                    let i = invoke(&lambda, "demo --keep").await;
                    match i.outcome {
                        Ok(a) => println!("invocation: {} visits, db_ms {:.2}, wall {:.2} ms", a.visits, a.db_ms, i.wall_ms),
                        Err(e) => println!("invocation failed: {e}"),
                    }
                }
                None => stdin_open = false,
            },
        }
    }
    let shutdown = lifecycle::shutdown(lambda).await;
    println!(
        "\nSHUTDOWN: pgwarm exited with status {} after {} ms",
        shutdown.status_text(),
        shutdown.exit_ms.map_or("-".into(), |t| format!("{t:.1}"))
    );
}

/// "median M ms (min A, max B)" of `v`, or "-".
fn spread(v: &[f64]) -> String {
    match (median(v), min_max(v)) {
        (Some(m), Some((lo, hi))) => format!("median {m:.1} ms (min {lo:.1}, max {hi:.1})"),
        _ => "-".into(),
    }
}

/// "median M ms, p95 P ms" of `v`, or "-".
fn median_p95(v: &[f64]) -> String {
    match (median(v), quantile(v, 0.95)) {
        (Some(m), Some(p)) => format!("median {m:.2} ms, p95 {p:.2} ms"),
        _ => "-".into(),
    }
}
