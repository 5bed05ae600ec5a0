//! `lambda-run`: one Lambda-like run, for `scripts/demo.sh` and for people. lambda-simulator
//! plays Lambda (freeze mode by default), pgwarm is the extension (or there is none, for a
//! handler that connects straight to PostgreSQL), and handler-example is the function's runtime.
//! It uses the tests' harness ([`pgwarm_tests::Lambda`]), so the demo runs the same lifecycle
//! code the tests check, with the binaries and settings it is given instead of the tests' own.
//!
//! ```text
//! lambda-run --handler PATH [--pgwarm PATH] [--invocations N] [--freeze on|off]
//!            [--thaw-check] [--pgwarm-log PATH]
//! lambda-run --startup-runs N --pgwarm PATH
//! ```
//! - `--handler PATH`: the function's runtime. It gets `DATABASE_URL` from this process's
//!   environment (required) and the simulator's `AWS_*` variables.
//! - `--pgwarm PATH`: the extension. It gets every `PGWARM_*` variable of this process's
//!   environment and the simulator's `AWS_*` variables, and must register before the handler
//!   starts. Without `--pgwarm` the handler runs alone.
//! - `--invocations N` (default 10): events `{"source": "lambda-run"}`, one after the other, each
//!   timed from enqueueing it (which thaws the environment) to its result.
//! - `--freeze on|off` (default on): SIGSTOP every process between invocations, SIGCONT before
//!   the next, as Lambda does.
//! - `--thaw-check`: after the invocations, while the environment is frozen, terminate every
//!   backend of the role `THAW_ROLE` through `SUPERUSER_URL` (both from the environment; a
//!   superuser's connection string), wait until they are gone, then invoke once more. Needs
//!   `--pgwarm` and freezing.
//! - `--pgwarm-log PATH`: copy pgwarm's log there once it has exited.
//! - `--startup-runs N`: only start pgwarm N times, each under a fresh simulator, and time exec
//!   to listening (the first TCP connect to `PGWARM_LISTEN` that succeeds, tried every 0.1 ms;
//!   pgwarm sees that probe as a client that leaves at once) and exec to registered (the
//!   simulator's own registration timestamp), then SHUTDOWN. /proc/net/tcp, which the harness
//!   reads to wait for a listener, takes milliseconds to read on some machines: too coarse here.
//!
//! On stdout, tab-separated lines whose first field says what they are (times in ms):
//! ```text
//! invocation  N           ok|failed  WALL_MS  DB_MS  VISITS    (DB_MS, VISITS "-" when failed)
//! thaw_check  TERMINATED  ok|failed  WALL_MS  DB_MS  VISITS
//! shutdown    EXIT_MS|-   CODE|signalN|running                 (with --pgwarm; "-": not in 2 s)
//! startup     RUN         LISTENING_MS  REGISTERED_MS
//! ```
//! Progress and failures go to stderr. The exit status is 0 when every invocation and check
//! succeeded and pgwarm exited cleanly on SHUTDOWN, 1 otherwise, 2 for bad usage. The harness
//! panics when a step hangs or a process dies; then the status is that of the panic, and pgwarm
//! and the handler are killed (see [`kill_children_on_panic`]).

use pgwarm_tests::{in_lambda, process_state, simulator, Lambda, Pgwarm, PgwarmBuilder};
use serde_json::json;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: lambda-run --handler PATH [--pgwarm PATH] [--invocations N] \
                     [--freeze on|off] [--thaw-check] [--pgwarm-log PATH]\n       \
                     lambda-run --startup-runs N --pgwarm PATH";

/// Lambda's SHUTDOWN budget for extensions: pgwarm must be gone within it.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(2);

/// How long a step without a deadline of its own may take (terminated backends to go away,
/// pgwarm to listen or register).
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug)]
struct Args {
    handler: Option<PathBuf>,
    pgwarm: Option<PathBuf>,
    invocations: u32,
    freeze: bool,
    thaw_check: bool,
    pgwarm_log: Option<PathBuf>,
    startup_runs: Option<u32>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            handler: None,
            pgwarm: None,
            invocations: 10,
            freeze: true,
            thaw_check: false,
            pgwarm_log: None,
            startup_runs: None,
        };
        while let Some(flag) = args.next() {
            if flag == "--thaw-check" {
                parsed.thaw_check = true;
                continue;
            }
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let count = || match value.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag} needs a positive integer, got {value:?}")),
            };
            // Absolute, as the harness starts pgwarm in a directory of its own.
            let path = || std::path::absolute(&value).map_err(|e| format!("{flag} {value:?}: {e}"));
            match flag.as_str() {
                "--handler" => parsed.handler = Some(path()?),
                "--pgwarm" => parsed.pgwarm = Some(path()?),
                "--invocations" => parsed.invocations = count()?,
                "--startup-runs" => parsed.startup_runs = Some(count()?),
                "--pgwarm-log" => parsed.pgwarm_log = Some(PathBuf::from(&value)),
                "--freeze" => {
                    parsed.freeze = match value.as_str() {
                        "on" => true,
                        "off" => false,
                        _ => return Err(format!("--freeze is on or off, got {value:?}")),
                    }
                }
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        if parsed.startup_runs.is_some() && parsed.pgwarm.is_none() {
            return Err("--startup-runs needs --pgwarm".into());
        }
        if parsed.startup_runs.is_none() && parsed.handler.is_none() {
            return Err("--handler is required".into());
        }
        if parsed.thaw_check && (parsed.pgwarm.is_none() || !parsed.freeze) {
            return Err("--thaw-check needs --pgwarm and --freeze on".into());
        }
        Ok(parsed)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    kill_children_on_panic();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("lambda-run: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.startup_runs {
        Some(runs) => startup(&args, runs).await,
        None => run(&args).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lambda-run: {e}");
            ExitCode::from(2)
        }
    }
}

/// The release profile aborts on panic, so no drop runs then: this hook kills what the drops
/// would have killed, pgwarm and the handler (SIGKILL also ends a stopped process), found as this
/// process's children in /proc. Their temporary directories stay (demo.sh points TMPDIR into its
/// own work directory).
fn kill_children_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let me = std::process::id().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // After the command name (in parentheses): the state, then the parent's pid.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, f)| f.split_whitespace().nth(1));
            if parent == Some(me.as_str()) {
                let _ = std::process::Command::new("kill")
                    .arg("-KILL")
                    .arg(entry.file_name())
                    .status();
            }
        }
    }));
}

/// A required variable of this process's environment.
fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} must be set"))
}

/// pgwarm at `bin` with every `PGWARM_*` variable of this process.
fn pgwarm_builder(bin: &Path) -> PgwarmBuilder {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("PGWARM_"))
        .fold(Pgwarm::builder_for(bin), |b, (k, v)| b.env(&k, &v))
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// The invocations, the thaw check and SHUTDOWN; `Ok(false)` when any of them failed.
async fn run(args: &Args) -> Result<bool, String> {
    let database_url = env("DATABASE_URL")?;
    let thaw_check = if args.thaw_check {
        Some((env("SUPERUSER_URL")?, env("THAW_ROLE")?))
    } else {
        None
    };
    let handler = args.handler.as_deref().expect("checked by Args::parse");
    let mut lambda =
        Lambda::start_with(args.pgwarm.as_deref().map(pgwarm_builder), args.freeze).await;
    lambda.start_handler_bin(handler, &database_url);

    let mut ok = true;
    for n in 1..=args.invocations {
        ok &= invoke(&lambda, "invocation", &n.to_string()).await;
    }
    if let Some((superuser_url, role)) = thaw_check {
        ok &= thaw_after_terminate(&lambda, &superuser_url, &role).await?;
    }
    if !ok {
        eprintln!("--- handler log ---\n{}", lambda.handler_log());
    }
    if args.pgwarm.is_none() {
        lambda.shutdown().await;
        return Ok(ok);
    }
    Ok(shutdown(lambda, args.pgwarm_log.as_deref()).await && ok)
}

/// One invocation, printed as a `KIND FIRST ok|failed WALL_MS DB_MS VISITS` line.
async fn invoke(lambda: &Lambda, kind: &str, first: &str) -> bool {
    let (state, wall) = lambda.invoke_timed(json!({ "source": "lambda-run" })).await;
    let payload = state.response.as_ref().map(|r| &r.payload);
    let visits = payload.and_then(|p| p["visits"].as_i64());
    let db_ms = payload.and_then(|p| p["db_ms"].as_f64());
    match (&state.error, visits, db_ms) {
        (None, Some(visits), Some(db_ms)) => {
            println!("{kind}\t{first}\tok\t{}\t{db_ms:.3}\t{visits}", ms(wall));
            true
        }
        (error, ..) => {
            println!("{kind}\t{first}\tfailed\t{}\t-\t-", ms(wall));
            eprintln!(
                "lambda-run: {kind} {first} failed: {:?}",
                error
                    .as_ref()
                    .map_or(json!(payload), |e| json!(format!("{e:?}")))
            );
            false
        }
    }
}

/// Frozen, the database ends every backend of `role`; the next invocation must not notice.
async fn thaw_after_terminate(
    lambda: &Lambda,
    superuser_url: &str,
    role: &str,
) -> Result<bool, String> {
    let (client, connection) = tokio_postgres::connect(superuser_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("SUPERUSER_URL: {e}"))?;
    tokio::spawn(connection);
    let sql_error = |e: tokio_postgres::Error| format!("as superuser: {e}");
    let backends = "FROM pg_stat_activity WHERE usename = $1 \
                    AND backend_type = 'client backend' AND pid <> pg_backend_pid()";
    let terminated: i64 = client
        .query_one(
            &format!("SELECT count(pg_terminate_backend(pid)) {backends}"),
            &[&role],
        )
        .await
        .map_err(sql_error)?
        .get(0);
    let asked = Instant::now();
    loop {
        let left: i64 = client
            .query_one(&format!("SELECT count(*) {backends}"), &[&role])
            .await
            .map_err(sql_error)?
            .get(0);
        if left == 0 {
            break;
        }
        if asked.elapsed() > STEP_TIMEOUT {
            return Err(format!(
                "{left} backends of {role} still there after termination"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    if terminated == 0 {
        eprintln!("lambda-run: thaw check: {role} had no backend to terminate");
    }
    Ok(invoke(lambda, "thaw_check", &terminated.to_string()).await && terminated > 0)
}

/// SHUTDOWN, timed to pgwarm's exit; `false` unless pgwarm exited with status 0 within the
/// budget.
async fn shutdown(lambda: Lambda, log_copy: Option<&Path>) -> bool {
    let pid = lambda.pgwarm().pid();
    let sent = Instant::now();
    // Polled from its own thread, so the time does not depend on the shutdown steps below.
    let exited = tokio::task::spawn_blocking(move || {
        while sent.elapsed() < SHUTDOWN_BUDGET {
            if matches!(process_state(pid), None | Some('Z' | 'X')) {
                return Some(sent.elapsed());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        None
    });
    let mut pgwarm = lambda.shutdown().await.expect("started with pgwarm");
    let exited = exited.await.expect("exit watcher");
    let status = pgwarm.wait_exit(Duration::from_millis(100));
    let status_text = match status {
        None => "running".to_string(),
        Some(s) => s.code().map_or_else(
            || format!("signal{}", s.signal().unwrap_or_default()),
            |c| c.to_string(),
        ),
    };
    println!(
        "shutdown\t{}\t{status_text}",
        exited.map_or("-".to_string(), ms)
    );
    if let Some(path) = log_copy {
        if let Err(e) = std::fs::copy(pgwarm.log_path(), path) {
            eprintln!(
                "lambda-run: copying pgwarm's log to {}: {e}",
                path.display()
            );
        }
    }
    exited.is_some() && status.is_some_and(|s| s.success())
}

/// `runs` starts of pgwarm, each printed as `startup RUN LISTENING_MS REGISTERED_MS`.
async fn startup(args: &Args, runs: u32) -> Result<bool, String> {
    let bin = args.pgwarm.as_deref().expect("checked by Args::parse");
    for run in 1..=runs {
        let sim = simulator(false).await;
        let mut pgwarm = in_lambda(pgwarm_builder(bin), &sim).spawn_nowait();
        let (pid, addr, started) = (pgwarm.pid(), pgwarm.addr(), pgwarm.started());
        // The simulator stamps registrations with the wall clock: the spawn on that clock.
        let spawned_at = SystemTime::now() - started.elapsed();
        let listening = tokio::task::spawn_blocking(move || {
            while started.elapsed() < STEP_TIMEOUT {
                // Refused at once until pgwarm listens.
                if std::net::TcpStream::connect_timeout(&addr, STEP_TIMEOUT).is_ok() {
                    return Some(started.elapsed());
                }
                if matches!(process_state(pid), None | Some('Z' | 'X')) {
                    return None;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            None
        });
        let registered = sim
            .wait_for(|| async { sim.extension_count().await == 1 }, STEP_TIMEOUT)
            .await;
        let listening = listening.await.expect("listener watcher");
        let (Some(listening), Ok(())) = (listening, registered) else {
            eprintln!("--- pgwarm log ---\n{}", pgwarm.log());
            return Err(format!("start {run}: pgwarm did not listen and register"));
        };
        let registered_at = sim.get_registered_extensions().await[0].registered_at;
        let spawned_us = spawned_at
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_micros() as i64;
        let registered_ms = (registered_at.timestamp_micros() - spawned_us) as f64 / 1000.0;
        println!("startup\t{run}\t{}\t{registered_ms:.3}", ms(listening));
        sim.graceful_shutdown(lambda_simulator::ShutdownReason::Spindown)
            .await;
        if !pgwarm
            .wait_exit(SHUTDOWN_BUDGET)
            .is_some_and(|s| s.success())
        {
            eprintln!("--- pgwarm log ---\n{}", pgwarm.log());
            return Ok(false);
        }
    }
    Ok(true)
}
