//! The frame both benchmarks run in: the role and database `bench` on the tests' cluster, filled
//! by `pgbench -i`; pgwarm with the caller's `PGWARM_*` variables; whether the servers are still
//! running at the end; and how a benchmark's outcome becomes its exit status.

use std::process::ExitCode;
use std::time::Duration;

use super::out_dirs::OutDirs;
use super::pgbench::{Client, Exit, SslMode};
use super::stop::{self, Halt};
use crate::drivers::pgwarm_env::show_env;
use crate::harness::process_state;
use crate::harness::{cluster, Target};
use crate::harness::{pgwarm_bin, Pgwarm};

/// The role `bench`'s password. A client of pgwarm logs in with it too, so that
/// `PGWARM_CLIENT_PASSWORD=password` makes pgwarm's clients run SCRAM.
pub(crate) const PASSWORD: &str = "password";

/// The role and database `bench` (owned by it) on the tests' cluster, filled by
/// `pgbench -i -s scale`, as a target for a client.
pub(crate) fn database(program: &str, scale: u32) -> Result<Target, Halt> {
    let pg = cluster();
    stop::check()?;
    let db = pg.create_target_with("bench", PASSWORD);
    eprintln!("{program}: pgbench -i -s {scale}");
    // About 10 s per 10 of scale factor on a small machine.
    let timeout = Duration::from_secs(600 + 60 * u64::from(scale));
    let init = Client::new(db.clone(), SslMode::Disable)
        .pgbench(&["-i", "-q", "-s", &scale.to_string()], timeout);
    stop::check()?;
    match init.exit {
        Exit::Code(0) => Ok(db),
        _ => Err(Halt::Failed(format!(
            "pgbench -i failed ({:?}):\n{}",
            init.exit,
            init.output()
        ))),
    }
}

/// pgwarm (`$PGWARM_BIN`) against `db` with the caller's variables `passthrough` (see
/// [`super::settings::Settings`]), then the benchmark's own `settings`; said on stderr.
pub(crate) fn pgwarm(
    program: &str,
    db: &Target,
    passthrough: &[(String, String)],
    settings: &[(&str, &str)],
) -> Pgwarm {
    let pgwarm = Pgwarm::builder(db)
        .envs(passthrough.iter().cloned())
        .envs(settings.iter().copied())
        .spawn();
    eprintln!(
        "{program}: pgwarm ({}) on 127.0.0.1:{} (extra env: {})",
        pgwarm_bin().display(),
        pgwarm.port,
        show_env(passthrough)
    );
    pgwarm
}

/// The names of the servers, given as (name, pid), that are no longer running.
pub(crate) fn gone<'a>(servers: &[(&'a str, u32)]) -> Vec<&'a str> {
    servers
        .iter()
        .filter(|(_, pid)| process_state(*pid).is_none_or(|state| state == 'Z'))
        .map(|(name, _)| *name)
        .collect()
}

/// A benchmark's frame: its output folders (named with `prefix`), Ctrl-C and SIGTERM watched,
/// `body` run, the cluster's log saved whichever way it ended (the cluster itself goes with its
/// reaper once this process has exited), and the exit status ([`exit_status`]; `failed` says
/// what an `Ok(false)` means).
pub(crate) fn run(
    program: &'static str,
    prefix: &str,
    failed: &str,
    body: impl FnOnce(&OutDirs) -> Result<bool, Halt>,
) -> ExitCode {
    let out = match OutDirs::create(prefix) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("{program}: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = stop::watch(program) {
        eprintln!("{program}: {e}");
        return ExitCode::FAILURE;
    }
    let outcome = body(&out);
    out.save_log("postgres.log", &cluster().log());
    exit_status(program, outcome, &out, failed)
}

/// The exit status of a benchmark that ended with `outcome` (`Ok(false)`: a run that should
/// count failed, which `failed` describes), saying so on stderr: 0; 1 for failed runs or a
/// failed step; 128 + the signal when stopped.
pub(crate) fn exit_status(
    program: &str,
    outcome: Result<bool, Halt>,
    out: &OutDirs,
    failed: &str,
) -> ExitCode {
    let where_ = format!(
        "each run's output in {}, server logs in {}",
        out.runs.display(),
        out.logs.display()
    );
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("{program}: {failed} ({where_})");
            ExitCode::FAILURE
        }
        Err(Halt::Stopped(s)) => {
            eprintln!("{program}: stopped by {}; {where_}", s.name());
            ExitCode::from(s.exit_code())
        }
        Err(Halt::Failed(e)) => {
            eprintln!("{program}: {e}");
            eprintln!("{program}: FAILED; {where_}");
            ExitCode::FAILURE
        }
    }
}
