//! Ctrl-C and SIGTERM during a benchmark. The signal ends the pgbench run in progress at once;
//! the benchmark sees [`check`] fail at its next step, saves the servers' logs and returns, and
//! the servers are killed as their handles drop (the throwaway cluster goes with its reaper once
//! this process has exited). Should it not be gone [`GRACE`] later, every child is killed and the
//! process exits all the same. A panic kills every child too: the release profile aborts on
//! panic, so no `Drop` would.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::drivers::children::{kill_children, signal_children, supervise};

/// The signal received, 0 for none yet.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// How long the benchmark has to wind down after the signal before everything is killed.
pub(crate) const GRACE: Duration = Duration::from_secs(30);

/// The benchmark was told to stop by a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stopped(pub(crate) i32);

impl Stopped {
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            libc::SIGINT => "SIGINT",
            libc::SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }

    /// 128 + the signal, as a shell reports a process ended by it.
    pub(crate) fn exit_code(self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(1)
    }
}

/// `Err` once a signal has come: a benchmark calls it between steps.
pub(crate) fn check() -> Result<(), Stopped> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => Ok(()),
        signal => Err(Stopped(signal)),
    }
}

/// Watches for SIGINT and SIGTERM from now on (and makes this process a driver: see
/// [`supervise`]). Call it before
/// starting anything: the handlers are in place when it returns, so the children spawned later
/// get the default actions back, even when this process was started with SIGINT ignored (as a
/// shell's background job is).
pub(crate) fn watch(program: &'static str) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    supervise();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("a runtime for the signal handlers: {e}"))?;
    let (mut interrupt, mut terminate) = {
        let _entered = runtime.enter();
        let interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
        let terminate = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
        (interrupt, terminate)
    };
    std::thread::Builder::new()
        .name("bench-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let signal = tokio::select! {
                    _ = interrupt.recv() => libc::SIGINT,
                    _ = terminate.recv() => libc::SIGTERM,
                };
                SIGNAL.store(signal, Ordering::SeqCst);
                let stopped = Stopped(signal);
                eprintln!("{program}: {}: stopping", stopped.name());
                // Every second: a pgbench the benchmark started just as the signal came.
                let began = tokio::time::Instant::now();
                while began.elapsed() < GRACE {
                    signal_children(Some("pgbench"), libc::SIGTERM);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                eprintln!(
                    "{program}: still running {}s after {}: killing everything it started",
                    GRACE.as_secs(),
                    stopped.name()
                );
                kill_children();
                std::process::exit(stopped.exit_code().into());
            })
        })
        .map_err(|e| format!("the signal thread: {e}"))?;
    Ok(())
}

/// Why a benchmark ends before its report: a signal, or a step that failed (with what to say).
#[derive(Debug)]
pub(crate) enum Halt {
    Stopped(Stopped),
    Failed(String),
}

impl From<Stopped> for Halt {
    fn from(stopped: Stopped) -> Halt {
        Halt::Stopped(stopped)
    }
}

impl From<String> for Halt {
    fn from(message: String) -> Halt {
        Halt::Failed(message)
    }
}
