//! What a driver binary (`demo`, `fleet`, `lambda-run`, the benchmarks) does so that nothing it
//! started outlives it. Its children are pgwarm, handlers, PgBouncer, HAProxy, pgbench and
//! moto_server, often frozen with SIGSTOP: a frozen process never acts on a gentle signal, and
//! the release profile aborts on panic, so no `Drop` runs then. Both ways out therefore end
//! every child with SIGKILL. The throwaway
//! cluster is not a child (its reaper was adopted by init) and goes once this process is gone.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::tools::proc_stat;

/// Set by [`supervise`]: this process is a driver binary.
static SUPERVISED: AtomicBool = AtomicBool::new(false);

/// Set once a signal is ending the driver: what fails after that (a connection to a killed
/// child, say) is a consequence, not news, and its panic is not printed.
static ENDING: AtomicBool = AtomicBool::new(false);

/// `signal` to every process whose parent is this one and, when `name` is given, whose command
/// name is `name` (found in /proc).
pub fn signal_children(name: Option<&str>, signal: libc::c_int) {
    let me = std::process::id();
    let pids = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok());
    for pid in pids {
        let Some(stat) = proc_stat(pid) else { continue };
        if stat.ppid == me && name.is_none_or(|n| stat.comm == n) {
            // SAFETY: kill only sends a signal; a pid that has exited meanwhile makes it fail,
            // and it cannot have been reused by another process: it is our unreaped child.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }
}

/// SIGKILL to every child of this process.
pub fn kill_children() {
    signal_children(None, libc::SIGKILL);
}

/// Makes this process a driver: its children from now on run in process groups of their own,
/// and a panic kills every child once its message is printed (not printed once a signal is
/// ending the driver, see [`ENDING`]).
pub fn supervise() {
    SUPERVISED.store(true, Ordering::SeqCst);
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !ENDING.load(Ordering::SeqCst) {
            report(info);
        }
        kill_children();
    }));
}

/// Puts `cmd`'s process in a process group of its own when this process is a driver.
pub(crate) fn own_group(cmd: &mut Command) {
    if SUPERVISED.load(Ordering::SeqCst) {
        cmd.process_group(0);
    }
}

/// Waits for Ctrl-C or SIGTERM, then kills every child and exits with 130. Spawn it on the
/// driver's runtime.
pub async fn end_on_signal(program: &'static str) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("{program}: stopped; ending everything it started");
    ENDING.store(true, Ordering::SeqCst);
    kill_children();
    std::process::exit(130);
}
