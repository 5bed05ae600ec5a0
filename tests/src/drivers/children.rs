//! What a driver binary (`demo`, `fleet`, `lambda-run`, the benchmarks) does so that nothing it
//! started outlives it. Its children are pgwarm, handlers, PgBouncer, HAProxy, pgbench and
//! moto_server, often frozen with SIGSTOP: a frozen process never acts on a gentle signal, and
//! the release profile aborts on panic, so no `Drop` runs then. Both ways out therefore end
//! every child with SIGKILL. The throwaway
//! cluster is not a child (its reaper was adopted by init) and goes once this process is gone.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::harness::proc_stat;
use crate::harness::process_groups::give_own_groups;

/// The exit status once a signal is ending the driver, 0 before: what fails after that (a
/// connection to a killed child, say) is a consequence, not news. Its panic is not printed and
/// the process exits with this status rather than abort.
static ENDING: AtomicI32 = AtomicI32::new(0);

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
            // SAFETY: kill only sends a signal. A child that has exited and been reaped since
            // /proc was read makes it fail, or, were its pid reused that fast, reach a process
            // that is no child of ours: a risk drivers take at their exit only.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }
}

/// SIGKILL to every child of this process.
pub fn kill_children() {
    signal_children(None, libc::SIGKILL);
}

/// Makes this process a driver: its children from now on run in process groups of their own,
/// and a panic kills every child once its message is printed (once a signal is ending the
/// driver, see [`ENDING`], it exits quietly instead).
pub fn supervise() {
    give_own_groups();
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let ending = ENDING.load(Ordering::SeqCst);
        if ending == 0 {
            report(info);
        }
        kill_children();
        if ending != 0 {
            std::process::exit(ending);
        }
    }));
}

/// From now on, Ctrl-C (SIGINT) or SIGTERM kills every child and exits with 128 + the signal.
/// The handlers are in place when it returns, before the driver starts anything; the wait runs
/// on `runtime`. Abort the returned task to handle the signals some other way from then on.
pub fn end_on_signal(
    runtime: &tokio::runtime::Handle,
    program: &'static str,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let _entered = runtime.enter();
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    runtime.spawn(async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = (interrupt, terminate) else {
            eprintln!("{program}: cannot watch SIGINT and SIGTERM; Ctrl-C may leave children");
            return;
        };
        let status = tokio::select! {
            _ = interrupt.recv() => 130,
            _ = terminate.recv() => 143,
        };
        eprintln!("{program}: stopped; ending everything it started");
        ENDING.store(status, Ordering::SeqCst);
        kill_children();
        std::process::exit(status);
    })
}
