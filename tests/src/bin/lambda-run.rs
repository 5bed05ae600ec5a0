//! `lambda-run`: one Lambda-like run, for people and scripts. lambda-simulator plays Lambda
//! (freeze mode by default), pgwarm is the extension (or there is none, for a handler that
//! connects straight to PostgreSQL), and handler-example is the function's runtime. It uses the
//! tests' harness ([`pgwarm_tests::Lambda`], [`pgwarm_tests::drivers::lifecycle`], as the `demo`
//! binary does), so it runs the lifecycle code the tests check, with the binaries and settings it
//! is given instead of the tests' own.
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
//! and the handler are killed (see [`supervise`]).

use pgwarm_tests::drivers::children::{end_on_signal, supervise};
use pgwarm_tests::drivers::lifecycle::{self, invoke, shutdown, thaw_check, Invocation};
use pgwarm_tests::drivers::pgwarm_env::pgwarm_passthrough;
use pgwarm_tests::{Lambda, Pgwarm, PgwarmBuilder};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: lambda-run --handler PATH [--pgwarm PATH] [--invocations N] \
                     [--freeze on|off] [--thaw-check] [--pgwarm-log PATH]\n       \
                     lambda-run --startup-runs N --pgwarm PATH";

/// What to do, from the command line.
#[derive(Debug)]
enum Task {
    /// `--startup-runs N --pgwarm PATH`: start pgwarm N times and time it.
    Startup { pgwarm: PathBuf, runs: u32 },
    /// `--handler PATH ...`: the invocations.
    Invocations(Run),
}

/// The invocations' settings.
#[derive(Debug)]
struct Run {
    handler: PathBuf,
    /// The extension; none for a handler that connects straight to PostgreSQL.
    pgwarm: Option<PathBuf>,
    invocations: u32,
    freeze: bool,
    /// Needs pgwarm and freezing (checked when parsed).
    thaw_check: bool,
    pgwarm_log: Option<PathBuf>,
}

impl Task {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Task, String> {
        let (mut handler, mut pgwarm, mut startup_runs) = (None, None, None);
        let mut run = Run {
            handler: PathBuf::new(),
            pgwarm: None,
            invocations: 10,
            freeze: true,
            thaw_check: false,
            pgwarm_log: None,
        };
        while let Some(flag) = args.next() {
            if flag == "--thaw-check" {
                run.thaw_check = true;
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
                "--handler" => handler = Some(path()?),
                "--pgwarm" => pgwarm = Some(path()?),
                "--invocations" => run.invocations = count()?,
                "--startup-runs" => startup_runs = Some(count()?),
                "--pgwarm-log" => run.pgwarm_log = Some(PathBuf::from(&value)),
                "--freeze" => {
                    run.freeze = match value.as_str() {
                        "on" => true,
                        "off" => false,
                        _ => return Err(format!("--freeze is on or off, got {value:?}")),
                    }
                }
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        match (startup_runs, handler, pgwarm) {
            (Some(runs), _, Some(pgwarm)) => Ok(Task::Startup { pgwarm, runs }),
            (Some(_), _, None) => Err("--startup-runs needs --pgwarm".into()),
            (None, None, _) => Err("--handler is required".into()),
            (None, Some(handler), pgwarm) => {
                if run.thaw_check && (pgwarm.is_none() || !run.freeze) {
                    return Err("--thaw-check needs --pgwarm and --freeze on".into());
                }
                Ok(Task::Invocations(Run {
                    handler,
                    pgwarm,
                    ..run
                }))
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    supervise();
    end_on_signal(&tokio::runtime::Handle::current(), "lambda-run");
    let task = match Task::parse(std::env::args().skip(1)) {
        Ok(task) => task,
        Err(e) => {
            eprintln!("lambda-run: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match &task {
        Task::Startup { pgwarm, runs } => startup(pgwarm, *runs).await,
        Task::Invocations(run) => invocations(run).await,
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

/// pgwarm at `bin` with every `PGWARM_*` setting of this process's environment.
fn pgwarm_from_env(bin: &Path) -> PgwarmBuilder {
    Pgwarm::builder_for(bin).envs(pgwarm_passthrough(std::env::vars(), &[]))
}

/// A required variable of this process's environment.
fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} must be set"))
}

/// The invocations, the thaw check and SHUTDOWN; `Ok(false)` when any of them failed.
async fn invocations(args: &Run) -> Result<bool, String> {
    let database_url = env("DATABASE_URL")?;
    let superuser = match args.thaw_check {
        true => {
            let (client, connection) =
                tokio_postgres::connect(&env("SUPERUSER_URL")?, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("SUPERUSER_URL: {e}"))?;
            tokio::spawn(connection);
            Some((client, env("THAW_ROLE")?))
        }
        false => None,
    };
    let handler = &args.handler;
    let pgwarm = args.pgwarm.as_deref().map(pgwarm_from_env);
    let mut lambda = Lambda::start_with(pgwarm, args.freeze).await;
    lambda.start_handler_bin(handler, &database_url);

    let mut ok = true;
    for n in 1..=args.invocations {
        ok &= print_invocation("invocation", n, &invoke(&lambda, "lambda-run").await);
    }
    if let Some((client, role)) = superuser {
        match thaw_check(&lambda, &client, &role).await {
            Ok(check) => {
                if check.terminated == 0 {
                    eprintln!("lambda-run: thaw check: {role} had no backend to terminate");
                }
                ok &= print_invocation("thaw_check", check.terminated, &check.invocation)
                    && check.passed();
            }
            Err(e) => {
                eprintln!("lambda-run: thaw check: {e}");
                ok = false;
            }
        }
    }
    if !ok {
        eprintln!("--- handler log ---\n{}", lambda.handler_log());
    }
    if args.pgwarm.is_none() {
        lambda.shutdown().await;
        return Ok(ok);
    }
    let shutdown = shutdown(lambda).await;
    println!(
        "shutdown\t{}\t{}",
        shutdown
            .exit_ms
            .map_or("-".to_string(), |t| format!("{t:.3}")),
        shutdown.status_text()
    );
    if let Some(path) = &args.pgwarm_log {
        if let Err(e) = std::fs::copy(shutdown.pgwarm.log_path(), path) {
            eprintln!(
                "lambda-run: copying pgwarm's log to {}: {e}",
                path.display()
            );
        }
    }
    Ok(shutdown.clean() && ok)
}

/// One invocation as a `KIND FIRST ok|failed WALL_MS DB_MS VISITS` line; whether it succeeded.
fn print_invocation(kind: &str, first: impl std::fmt::Display, i: &Invocation) -> bool {
    match &i.outcome {
        Ok(a) => {
            println!(
                "{kind}\t{first}\tok\t{:.3}\t{:.3}\t{}",
                i.wall_ms, a.db_ms, a.visits
            );
            true
        }
        Err(e) => {
            println!("{kind}\t{first}\tfailed\t{:.3}\t-\t-", i.wall_ms);
            eprintln!("lambda-run: {kind} {first} failed: {e}");
            false
        }
    }
}

/// `runs` starts of pgwarm, each printed as `startup RUN LISTENING_MS REGISTERED_MS`.
async fn startup(bin: &Path, runs: u32) -> Result<bool, String> {
    for run in 1..=runs {
        match lifecycle::startup(pgwarm_from_env(bin)).await {
            Ok(s) => println!(
                "startup\t{run}\t{:.3}\t{:.3}",
                s.listening_ms, s.registered_ms
            ),
            Err(e) => {
                eprintln!("lambda-run: start {run}: {e}");
                return Ok(false);
            }
        }
    }
    Ok(true)
}
