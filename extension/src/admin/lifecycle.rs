//! What pgwarm knows of its Lambda life, for `SHOW LAMBDA`, the metrics and the logs: how it
//! runs, its registration, the invocations it saw (and the newest one's id), the freezes it
//! slept through, what it gave back before them while the database was tight, and why it was
//! shut down. The `lambda` module writes it; readers take copies.

use crate::counter::Counter;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Default)]
pub(crate) struct Registration {
    pub function_name: String,
    pub function_version: String,
    pub events: Vec<&'static str>,
    pub at: Option<SystemTime>,
    /// From pgwarm's start to the registration's answer.
    pub took: Duration,
}

#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// `standalone`, `lambda` or `lambda-managed-instances`.
    pub mode: &'static str,
    started: Instant,
    registration: Mutex<Option<Registration>>,
    /// INVOKE events seen.
    pub invocations: Counter,
    /// Freezes noticed (the process stood still longer than a tick allows), and their length.
    pub freezes: Counter,
    pub frozen_us: Counter,
    /// Whether `platform.runtimeDone` can be heard (the Telemetry API subscription worked).
    pub telemetry: std::sync::atomic::AtomicBool,
    /// Invocations after which pgwarm waited for their runtimeDone before asking for its next
    /// event (the database was tight), and its own time from that event to the ask.
    pub holds: Counter,
    pub held_us: Counter,
    /// runtimeDone events that did not come before the invocation's deadline.
    pub runtime_done_missed: Counter,
    /// Server connections closed before a freeze because the database was tight.
    pub given_back: Counter,
    shutdown_reason: Mutex<Option<String>>,
}

impl Lifecycle {
    pub(crate) fn new(mode: &'static str) -> Lifecycle {
        Lifecycle {
            mode,
            started: Instant::now(),
            registration: Mutex::default(),
            invocations: Counter::default(),
            freezes: Counter::default(),
            frozen_us: Counter::default(),
            telemetry: std::sync::atomic::AtomicBool::new(false),
            holds: Counter::default(),
            held_us: Counter::default(),
            runtime_done_missed: Counter::default(),
            given_back: Counter::default(),
            shutdown_reason: Mutex::default(),
        }
    }

    pub(crate) fn registered(&self, mut registration: Registration) {
        registration.at = Some(SystemTime::now());
        registration.took = self.started.elapsed();
        *lock(&self.registration) = Some(registration);
    }

    pub(crate) fn registration(&self) -> Option<Registration> {
        lock(&self.registration).clone()
    }

    /// An INVOKE: log lines carry its request id from now on (see `logging`).
    pub(crate) fn invoked(&self, request_id: &str) {
        self.invocations.add(1);
        crate::logging::set_request_id(Some(request_id));
    }

    /// The newest INVOKE's request id: an extension is not told when an invocation ends.
    pub(crate) fn request_id(&self) -> Option<String> {
        crate::logging::request_id().map(|id| id.to_string())
    }

    pub(crate) fn froze(&self, for_: Duration) {
        self.freezes.add(1);
        let us = u64::try_from(for_.as_micros()).unwrap_or(u64::MAX);
        self.frozen_us.add(us);
    }

    /// SHUTDOWN: no invocation runs any more, and log lines say so.
    pub(crate) fn shut_down(&self, reason: &str) {
        *lock(&self.shutdown_reason) = Some(reason.to_owned());
        crate::logging::set_request_id(None);
    }

    pub(crate) fn shutdown_reason(&self) -> Option<String> {
        lock(&self.shutdown_reason).clone()
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
