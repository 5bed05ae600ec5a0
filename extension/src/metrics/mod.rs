//! CloudWatch metrics with no agent: one line of Embedded Metric Format JSON on stdout (an
//! extension's stdout goes to the function's log group, where CloudWatch turns it into metrics)
//! at most every `PGWARM_METRICS_INTERVAL` while there is traffic, and one at the end.
//!
//! A line carries what happened since the previous one (transactions, queries, logins and their
//! time, reconnects, errors by cause), the clients now, the most that waited at once and the
//! longest wait, and, when it was read, the database's connection use: client backends over
//! `max_connections`, read on an idle server connection at most once a minute, so never while
//! the environment is frozen and never at a client's expense. That is the number to alarm on
//! before `too many connections` happens. The dimension is the function's name.

mod emf;

use crate::admin::Lifecycle;
use crate::client::traffic::ErrorCause;
use crate::client::SessionContext;
use crate::config::{MetricsSettings, Pinning, PoolMode};
use crate::counter::Counter;
use emf::{Line, Unit};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::debug;

/// The database's connection use is read at most this often.
const DATABASE_READ_EVERY: Duration = Duration::from_secs(60);

/// Client backends and `max_connections`, in one round trip.
const DATABASE_USE_SQL: &str = "select count(*) filter (where backend_type = 'client backend'), \
     current_setting('max_connections') from pg_stat_activity";

/// The counters at the previous line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    xacts: u64,
    queries: u64,
    logins: u64,
    login_us: u64,
    reconnects: u64,
    causes: [u64; ErrorCause::ALL.len()],
    /// Transactions ended because their invocation had, and server connections given back
    /// before a freeze because the database was tight.
    leaked: u64,
    given_back: u64,
    /// Logins that went first to another host than before (a failover found), and reader-port
    /// logins that went to the writer.
    host_changes: u64,
    reader_fallbacks: u64,
    /// Clients pinned to their server connection by session state.
    pins: u64,
}

impl Counts {
    fn of(shared: &SessionContext, lifecycle: &Lifecycle) -> Counts {
        let t = &shared.traffic;
        let p = shared.pool.counters();
        Counts {
            leaked: shared.invocation_ends.leaked.get(),
            given_back: lifecycle.given_back.get(),
            xacts: t.xacts.get(),
            queries: t.queries.get(),
            logins: p.logins.get(),
            login_us: p.login_us.get(),
            reconnects: p.reconnects.get(),
            host_changes: p.host_changes.get(),
            reader_fallbacks: shared
                .reader
                .as_ref()
                .map_or(0, |r| r.counters().reader_fallbacks.get()),
            causes: std::array::from_fn(|i| t.causes.get(i).map_or(0, Counter::get)),
            pins: t.pins.get(),
        }
    }
}

/// The database's connections at one reading.
#[derive(Debug, Clone, Copy)]
struct DatabaseUse {
    used: u64,
    max: u64,
}

pub(crate) struct Metrics {
    settings: MetricsSettings,
    function: String,
    shared: Arc<SessionContext>,
    lifecycle: Arc<Lifecycle>,
    last: Mutex<Counts>,
    /// When the database was last read (or tried).
    read_at: Mutex<Option<Instant>>,
}

impl Metrics {
    pub(crate) fn new(
        settings: MetricsSettings,
        shared: Arc<SessionContext>,
        lifecycle: Arc<Lifecycle>,
    ) -> Arc<Metrics> {
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "standalone".to_owned());
        Arc::new(Metrics {
            settings,
            function,
            last: Mutex::new(Counts::of(&shared, &lifecycle)),
            shared,
            lifecycle,
            read_at: Mutex::new(None),
        })
    }

    /// Writes a line every interval in which something happened, until pgwarm stops. A frozen
    /// environment's timer does not run, so lines come only while invocations do.
    pub(crate) fn start(self: &Arc<Metrics>) {
        let metrics = Arc::clone(self);
        tokio::spawn(async move {
            let every = metrics.settings.interval;
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => metrics.emit(false).await,
                    () = metrics.shared.shutdown.cancelled() => return,
                }
            }
        });
    }

    /// The last line, when pgwarm stops: whatever the counters say since the previous one.
    pub(crate) async fn finish(&self) {
        self.emit(true).await;
    }

    async fn emit(&self, last: bool) {
        let now = Counts::of(&self.shared, &self.lifecycle);
        let before = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        let rows = self.shared.clients.rows();
        let clients = rows.len() as u64;
        let traffic = &self.shared.traffic;
        let busy = now != before || clients > 0;
        if !busy && !last {
            return;
        }
        // Only when queries ran: a client that merely stays connected must not keep a server
        // connection busy (and out of reach of the database's idle_session_timeout).
        let queried = now.queries != before.queries || now.xacts != before.xacts;
        let database = match queried {
            true => self.read_database().await,
            false => None,
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = now;
        let waiting_now = traffic.waiting_now.load(Ordering::Relaxed);
        let waiting = traffic.waiting_peak.swap(waiting_now, Ordering::Relaxed);
        let wait_us = traffic.wait_peak_us.swap(0, Ordering::Relaxed);
        let current_wait = rows.iter().map(|c| c.waited).max().unwrap_or_default();
        let max_wait_us = wait_us.max(u64::try_from(current_wait.as_micros()).unwrap_or(0));

        let mut line = Line::new(&self.settings.namespace, &self.function);
        line.metric("ClientConnections", Unit::Count, clients as f64);
        line.metric("WaitingClients", Unit::Count, waiting as f64);
        line.metric("MaxWaitMs", Unit::Milliseconds, max_wait_us as f64 / 1000.0);
        line.metric(
            "Transactions",
            Unit::Count,
            (now.xacts - before.xacts) as f64,
        );
        line.metric(
            "Queries",
            Unit::Count,
            (now.queries - before.queries) as f64,
        );
        let logins = now.logins - before.logins;
        line.metric("ServerLogins", Unit::Count, logins as f64);
        if logins > 0 {
            let us = (now.login_us - before.login_us) as f64 / logins as f64;
            line.metric("ServerLoginMs", Unit::Milliseconds, us / 1000.0);
        }
        line.metric(
            "Reconnects",
            Unit::Count,
            (now.reconnects - before.reconnects) as f64,
        );
        let mut errors = 0;
        for cause in ErrorCause::ALL {
            let i = cause as usize;
            let n = now
                .causes
                .get(i)
                .zip(before.causes.get(i))
                .map_or(0, |(a, b)| a - b);
            errors += n;
            line.metric(&format!("Errors{}", cause.name()), Unit::Count, n as f64);
        }
        line.metric("Errors", Unit::Count, errors as f64);
        if self.shared.settings.hosts.len() > 1 {
            line.metric(
                "HostChanges",
                Unit::Count,
                (now.host_changes - before.host_changes) as f64,
            );
        }
        if self.shared.reader.is_some() {
            line.metric(
                "ReaderFallbacks",
                Unit::Count,
                (now.reader_fallbacks - before.reader_fallbacks) as f64,
            );
        }
        if self.shared.settings.pinning != Pinning::Off
            && self.shared.settings.pool_mode == PoolMode::Transaction
        {
            line.metric("Pins", Unit::Count, (now.pins - before.pins) as f64);
            let pinned: usize = self.shared.pools().map(|pool| pool.pinned()).sum();
            line.metric("PinnedConnections", Unit::Count, pinned as f64);
        }
        line.metric(
            "LeakedTransactions",
            Unit::Count,
            (now.leaked - before.leaked) as f64,
        );
        if self.lifecycle.mode == "lambda" {
            let tight = self.shared.pool.is_tight();
            line.metric("DatabaseTight", Unit::Count, f64::from(u8::from(tight)));
            line.metric(
                "GivenBackBeforeFreeze",
                Unit::Count,
                (now.given_back - before.given_back) as f64,
            );
        }
        if let Some(db) = database {
            line.metric("DatabaseConnections", Unit::Count, db.used as f64);
            line.metric("DatabaseMaxConnections", Unit::Count, db.max as f64);
            let percent = 100.0 * db.used as f64 / db.max.max(1) as f64;
            line.metric("DatabaseConnectionUse", Unit::Percent, percent);
        }
        if let Some(request) = self.lifecycle.request_id() {
            line.property("requestId", &request);
        }
        write_line(&line.to_json());
    }

    /// The database's connection use, if a minute has passed since the last reading and a
    /// server connection is idle to ask on.
    async fn read_database(&self) -> Option<DatabaseUse> {
        {
            let mut read_at = self.read_at.lock().unwrap_or_else(|p| p.into_inner());
            if read_at.is_some_and(|at| at.elapsed() < DATABASE_READ_EVERY) {
                return None;
            }
            *read_at = Some(Instant::now());
        }
        let row = self
            .shared
            .pool
            .query_idle("reading the database's connection use", DATABASE_USE_SQL)
            .await?;
        let number = |i: usize| row.get(i)?.as_deref()?.parse::<u64>().ok();
        let found = number(0).zip(number(1));
        if found.is_none() {
            debug!("the database's connection use could not be read");
        }
        found.map(|(used, max)| DatabaseUse { used, max })
    }
}

/// One whole line, so that CloudWatch never sees half of one.
fn write_line(json: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{json}");
    let _ = out.flush();
}
