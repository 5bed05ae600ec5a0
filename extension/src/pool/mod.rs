//! The pool of server connections: at most `PGWARM_POOL_SIZE` of them, handed to clients one
//! transaction (or session) at a time.
//!
//! Waiting clients queue in the order their checkouts began (`queue.rs`). A returning connection
//! goes straight to the longest waiter; a connection that is lost hands its *slot* to the longest
//! waiter that can use one, who then opens a new one. Idle connections are kept LIFO so the busiest stay warm and the rest can age out. Every
//! connection leaves the pool inside a [`Checkout`], whose drop returns the slot even when a
//! client task fails half-way, so the count can never leak.

mod headroom;
mod login;
mod outage;
mod pause;
mod queue;
mod stats;
mod wait;

pub(crate) use outage::OutageView;
pub(crate) use stats::PoolCounters;
pub(crate) use stats::ServerState;
pub(crate) use wait::{Bound, InvocationDeadline};

use crate::config::{PoolMode, Settings, Upstream};
use crate::credentials::CredentialSource;
use crate::protocol::backend::TxStatus;
use crate::server::{ServerConn, ServerError, TlsSetup};
use headroom::Headroom;
use outage::{Backoff, Outage};
use queue::{Queue, Wants};
use stats::{Lent, Work};
use std::collections::HashMap;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use wait::Wait;

/// The settings the pool acts on, copied out of [`Settings`].
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) size: usize,
    pub(crate) query_wait_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) server_check_delay: Duration,
    pub(crate) server_lifetime: Duration,
    /// Asked of the database at each login (transaction mode only: in session mode a client
    /// owns its connection, and the database must not close it under an idle client; and not
    /// with a pooler upstream, whose own server connections it would not reach).
    pub(crate) idle_session_timeout: Option<Duration>,
    /// Whether to read the database's connection use, and ask for a short
    /// `idle_session_timeout` while it is tight (`headroom.rs`): in an on-demand Lambda
    /// environment, which is frozen between invocations, logging in to the database itself.
    pub(crate) watch_headroom: bool,
}

impl From<&Settings> for PoolSettings {
    fn from(s: &Settings) -> PoolSettings {
        PoolSettings {
            size: s.pool_size,
            query_wait_timeout: s.query_wait_timeout,
            connect_timeout: s.connect_timeout,
            server_check_delay: s.server_check_delay,
            server_lifetime: s.server_lifetime,
            idle_session_timeout: s.idle_session_timeout.filter(|_| {
                s.pool_mode == PoolMode::Transaction && s.upstream == Upstream::Database
            }),
            watch_headroom: s.frozen_between_invocations && s.upstream == Upstream::Database,
        }
    }
}

#[derive(Debug, Error)]
pub(crate) enum PoolError {
    #[error("waited {waited:?} for a server connection ({bound}); all {size} are busy")]
    WaitTimeout {
        waited: Duration,
        bound: Bound,
        size: usize,
    },
    /// The client's wait ran out while the database refused or did not answer logins.
    #[error("waited {waited:?} for the database to take a login ({bound}); {}", .outage.describe(*.max_connections))]
    Unavailable {
        waited: Duration,
        bound: Bound,
        outage: OutageView,
        /// The database's `max_connections`, when it is full and pgwarm could read it.
        max_connections: Option<u32>,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("pgwarm is shutting down")]
    Closed,
}

/// ParameterStatus name/value pairs as a server sent them at login.
pub(crate) type ServerParams = Arc<Vec<(String, String)>>;

/// What a waiter is given. Moved once through a oneshot, so its size does not matter more than
/// a box per hand-off would.
#[allow(clippy::large_enum_variant)]
enum Grant {
    Conn(ServerConn),
    /// Permission to open a connection in a slot someone gave up.
    Slot,
}

struct State {
    idle: Vec<ServerConn>,
    /// Connections that exist or are being opened: idle + checked out + connecting.
    open: usize,
    waiters: Queue,
    closed: bool,
    /// `PAUSE`: new transactions wait, those under way finish.
    paused: bool,
    /// Connections lent to clients, by id, for the admin console.
    lent: HashMap<u64, Lent>,
    /// Logins and health checks under way.
    logging_in: usize,
    testing: usize,
    /// The Lambda invocation under way, whose deadline bounds waits.
    invocation: Option<InvocationDeadline>,
}

pub(crate) struct Pool {
    state: Mutex<State>,
    settings: PoolSettings,
    credentials: Arc<dyn CredentialSource>,
    /// How server connections are secured (`PGWARM_SSLMODE`).
    tls: Arc<TlsSetup>,
    next_id: AtomicU64,
    /// The ParameterStatus set of the newest login, shown to clients at their own login.
    server_params: Mutex<Option<ServerParams>>,
    /// Failed logins worth waiting out, as one episode.
    outage: Outage,
    /// The database's `max_connections` (0 until read), named when it is full.
    max_connections: AtomicU32,
    /// Whether logins still ask for `idle_session_timeout`: a database older than PostgreSQL 14,
    /// or a pooler in front of it, refuses the option, and then it is left out.
    idle_timeout_accepted: AtomicBool,
    counters: PoolCounters,
    /// Woken when the last lent connection comes back.
    drained: Notify,
    /// The database's connection use, when `watch_headroom`.
    headroom: Headroom,
    /// Whether the connection use can be read (PostgreSQL 10 or later; not through a proxy
    /// that refuses the catalog query).
    headroom_readable: AtomicBool,
}

/// The pool's counts, for its unit tests (the admin console reads [`Pool::view`]).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolStats {
    pub(crate) idle: usize,
    pub(crate) open: usize,
    pub(crate) waiting: usize,
}

impl Pool {
    pub(crate) fn new(
        settings: PoolSettings,
        credentials: Arc<dyn CredentialSource>,
        tls: Arc<TlsSetup>,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(State {
                idle: Vec::with_capacity(settings.size),
                open: 0,
                waiters: Queue::default(),
                closed: false,
                paused: false,
                lent: HashMap::new(),
                logging_in: 0,
                testing: 0,
                invocation: None,
            }),
            settings,
            credentials,
            tls,
            next_id: AtomicU64::new(1),
            server_params: Mutex::new(None),
            outage: Outage::default(),
            max_connections: AtomicU32::new(0),
            idle_timeout_accepted: AtomicBool::new(true),
            counters: PoolCounters::default(),
            drained: Notify::new(),
            headroom: Headroom::default(),
            headroom_readable: AtomicBool::new(true),
        })
    }

    /// What the pool did since it started.
    pub(crate) fn counters(&self) -> &PoolCounters {
        &self.counters
    }

    /// How server connections (and cancels sent to them) are secured.
    pub(crate) fn tls(&self) -> &TlsSetup {
        &self.tls
    }

    pub(crate) fn credentials(&self) -> &Arc<dyn CredentialSource> {
        &self.credentials
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.lock();
        PoolStats {
            idle: state.idle.len(),
            open: state.open,
            waiting: state.waiters.len(),
        }
    }

    /// A working server connection, waiting at most `PGWARM_QUERY_WAIT_TIMEOUT` for one: for a
    /// busy pool, for logins and their retries while the database is down or full, for health
    /// checks, all under the one deadline.
    pub(crate) async fn checkout(self: &Arc<Pool>) -> Result<Checkout, PoolError> {
        let since = Instant::now();
        let (now_or_later, wait) = {
            let mut state = self.lock();
            if state.closed {
                return Err(PoolError::Closed);
            }
            let wait = Wait::new(since, self.settings.query_wait_timeout, state.invocation);
            let now_or_later = if state.paused {
                Err(state.waiters.push(Wants::Either, since))
            } else if let Some(conn) = state.idle.pop() {
                Ok(Grant::Conn(conn))
            } else if state.open < self.settings.size {
                state.open += 1;
                Ok(Grant::Slot)
            } else {
                Err(state.waiters.push(Wants::Either, since))
            };
            (now_or_later, wait)
        };
        let grant = match now_or_later {
            Ok(grant) => grant,
            Err(rx) => self.wait(rx, &wait).await?,
        };
        let slot = Checkout {
            conn: None,
            pool: Arc::clone(self),
            released: false,
        };
        let lent = match grant {
            Grant::Conn(conn) => self.validate(slot, conn, &wait).await,
            Grant::Slot => self.fill(slot, &wait).await,
        }?;
        self.lock().lent.insert(lent.id(), Lent::of(&lent));
        Ok(lent)
    }

    /// Opening a connection is the cold path and its future is large (a whole login); boxing it
    /// keeps every client task's checkout state small.
    fn fill(
        &self,
        slot: Checkout,
        wait: &Wait,
    ) -> Pin<Box<dyn Future<Output = Result<Checkout, PoolError>> + Send + '_>> {
        Box::pin(self.open_into(slot, *wait))
    }

    /// The ParameterStatus values a client should see at login; opens a first server connection
    /// if none was ever opened, as a client cannot be told the server version otherwise.
    pub(crate) async fn server_params(self: &Arc<Pool>) -> Result<ServerParams, PoolError> {
        if let Some(params) = self.known_params() {
            return Ok(params);
        }
        let conn = self.checkout().await?;
        conn.release();
        self.known_params()
            .ok_or(PoolError::Server(ServerError::Closed))
    }

    /// Opens up to `n` server connections at once and leaves them idle, so the first clients
    /// find them ready (`PGWARM_MIN_POOL_SIZE`, during Lambda Init). Returns how many it opened.
    pub(crate) async fn prefill(self: &Arc<Pool>, n: usize) -> usize {
        let mut opens = tokio::task::JoinSet::new();
        for _ in 0..n.min(self.settings.size) {
            let pool = Arc::clone(self);
            opens.spawn(async move { pool.checkout().await });
        }
        // Held until all are open, so each checkout opens a connection of its own.
        let mut opened = Vec::new();
        while let Some(done) = opens.join_next().await {
            match done {
                Ok(Ok(conn)) => opened.push(conn),
                Ok(Err(e)) => {
                    warn!(error = %e, "could not open a server connection ahead of clients")
                }
                Err(e) => warn!(error = %e, "opening a server connection ahead of clients failed"),
            }
        }
        let n = opened.len();
        for conn in opened {
            conn.release();
        }
        n
    }

    /// Validates, all at once, the idle connections that sat longer than
    /// `PGWARM_SERVER_CHECK_DELAY`, replacing the dead ones. Run when Lambda thaws the environment, so that the handler's first query, which
    /// starts at the same moment, meets a live connection instead of paying for the check or the
    /// replacement itself. Returns how many were checked.
    pub(crate) async fn check_idle(self: &Arc<Pool>) -> usize {
        let stale: Vec<ServerConn> = {
            let mut state = self.lock();
            let delay = self.settings.server_check_delay;
            let (stale, fresh) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|conn: &ServerConn| conn.idle_for() >= delay);
            state.idle = fresh;
            stale
        };
        let checked = stale.len();
        self.counters.thaw_checks.add(checked as u64);
        let mut checks = tokio::task::JoinSet::new();
        for conn in stale {
            let pool = Arc::clone(self);
            let id = conn.id();
            checks.spawn(async move {
                let slot = Checkout {
                    conn: None,
                    pool: Arc::clone(&pool),
                    released: false,
                };
                let wait = Wait::new(Instant::now(), pool.settings.query_wait_timeout, None);
                match pool.validate(slot, conn, &wait).await {
                    Ok(checked) => {
                        if checked.id() != id {
                            pool.counters.thaw_replaced.add(1);
                        }
                        checked.release()
                    }
                    Err(e) => {
                        info!(error = %e, "could not replace a server connection after the thaw")
                    }
                }
            });
        }
        while checks.join_next().await.is_some() {}
        checked
    }

    /// A Lambda invocation began: until its deadline, waits end a margin before it.
    pub(crate) fn invocation_began(&self, invocation: InvocationDeadline) {
        self.lock().invocation = Some(invocation);
    }

    /// The invocation's runtime is done: its deadline bounds no wait of the next one, which
    /// may begin before pgwarm reads the next INVOKE.
    pub(crate) fn invocation_ended(&self) {
        self.lock().invocation = None;
    }

    /// Takes every idle connection out of the pool, its slot freed, for the caller to close.
    fn take_idle(&self) -> Vec<ServerConn> {
        let mut state = self.lock();
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len();
        idle
    }

    /// Closes idle connections with Terminate and refuses new checkouts. Checked-out connections
    /// are closed when their clients finish.
    pub(crate) fn close(&self) {
        {
            let mut state = self.lock();
            state.closed = true;
            state.waiters.clear();
        }
        let idle = self.take_idle();
        let n = idle.len();
        for conn in idle {
            conn.close();
        }
        info!(closed = n, "closed idle server connections");
    }

    /// The ParameterStatus set of the newest login, if any login was made; opens nothing.
    pub(crate) fn known_params(&self) -> Option<ServerParams> {
        self.server_params
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn wait(
        self: &Arc<Pool>,
        rx: oneshot::Receiver<Grant>,
        wait: &Wait,
    ) -> Result<Grant, PoolError> {
        let mut waiter = Waiter::new(self, rx);
        match tokio::time::timeout_at(wait.until, waiter.granted()).await {
            Ok(Some(grant)) => Ok(grant),
            // The sender was dropped: the pool closed.
            Ok(None) => Err(PoolError::Closed),
            // The slots were busy retrying logins, not serving clients: say so.
            Err(_) => Err(match self.outage.current() {
                Some(outage) => self.unavailable(outage, wait),
                None => PoolError::WaitTimeout {
                    waited: wait.waited(),
                    bound: wait.bound,
                    size: self.settings.size,
                },
            }),
        }
    }

    /// Checks a connection that sat idle; replaces it in the same slot if it is dead or too old.
    async fn validate(
        &self,
        mut slot: Checkout,
        mut conn: ServerConn,
        wait: &Wait,
    ) -> Result<Checkout, PoolError> {
        if conn.age() >= self.settings.server_lifetime {
            debug!(
                server = conn.id(),
                "server connection reached PGWARM_SERVER_LIFETIME"
            );
            conn.close();
            return self.fill(slot, wait).await;
        }
        if !conn.is_quiet() {
            info!(
                server = conn.id(),
                "idle server connection was closed by the database; replacing it"
            );
            self.counters.reconnects.add(1);
            return self.fill(slot, wait).await;
        }
        if conn.idle_for() >= self.settings.server_check_delay {
            self.counters.health_checks.add(1);
            // Boxed: a cold path whose future would otherwise sit in every checkout's state.
            let check = tokio::time::timeout(
                self.attempt_timeout(wait.until),
                Box::pin(self.health_check(&mut conn)),
            );
            let checked = {
                let _testing = self.under_way(Work::Testing);
                check.await
            };
            if !matches!(checked, Ok(Ok(TxStatus::Idle))) {
                self.counters.reconnects.add(1);
            }
            match checked {
                Ok(Ok(TxStatus::Idle)) => {}
                Ok(Ok(status)) => {
                    warn!(server = conn.id(), %status, "server connection was not idle; replacing it");
                    conn.close();
                    return self.fill(slot, wait).await;
                }
                Ok(Err(e)) => {
                    info!(server = conn.id(), error = %e, "server connection failed its health check; replacing it");
                    return self.fill(slot, wait).await;
                }
                Err(_) => {
                    info!(
                        server = conn.id(),
                        "server connection health check timed out; replacing it"
                    );
                    return self.fill(slot, wait).await;
                }
            }
        }
        slot.conn = Some(conn);
        Ok(slot)
    }

    /// Opens a new connection into a slot already counted in `open`. On failure the slot is
    /// given back by the Checkout's drop. A login the database may get over by itself (it is
    /// restarting, failing over, or full) is retried with a backoff until the wait ends; other
    /// failures are the client's at once. While it retries, the client also queues (in the
    /// place its checkout began) for a connection another client gives back: when the
    /// database is full of pgwarm's own connections, that is the one that frees first.
    async fn open_into(&self, mut slot: Checkout, wait: Wait) -> Result<Checkout, PoolError> {
        let deadline = wait.until;
        let mut backoff = Backoff::new();
        let mut given_back: Option<Waiter<'_>> = None;
        loop {
            let began = Instant::now();
            let login = self.login(deadline);
            // Once queued, the login races a connection given back: whichever comes first.
            let login = match &mut given_back {
                None => login.await,
                Some(waiter) => tokio::select! {
                    login = login => login,
                    grant = waiter.granted() => match grant {
                        Some(Grant::Conn(conn)) => return self.instead_of_login(slot, conn, &wait).await,
                        Some(Grant::Slot) => {
                            self.give_back(Grant::Slot);
                            given_back = None;
                            continue;
                        }
                        None => return Err(PoolError::Closed),
                    },
                },
            };
            let error = match login {
                Ok(conn) => {
                    self.outage.recovered();
                    slot.conn = Some(conn);
                    return Ok(slot);
                }
                Err(e) if outage::is_transient(&e) => e,
                Err(e) => return Err(e.into()),
            };
            if Instant::now() >= deadline {
                // The attempt was cut short by the client's deadline: what it met is news about
                // the database only if nothing else is known.
                if self.outage.current().is_none() {
                    self.outage.failed(&error, began);
                }
                return Err(self.gave_up(&error, &wait));
            }
            if self.outage.failed(&error, began) {
                self.episode_started(&error).await;
            }
            self.counters.logins_retried.add(1);
            let waiter = match &mut given_back {
                Some(waiter) => waiter,
                None => {
                    // A connection given back during the login went idle, as nobody was queued
                    // for it then: it is this client's now.
                    let idle_or_queued = {
                        let mut state = self.lock();
                        match (!state.paused).then(|| state.idle.pop()).flatten() {
                            Some(conn) => Ok(conn),
                            None => Err(state.waiters.push(Wants::Connection, wait.since)),
                        }
                    };
                    match idle_or_queued {
                        Ok(conn) => return self.instead_of_login(slot, conn, &wait).await,
                        Err(rx) => given_back.insert(Waiter::new(self, rx)),
                    }
                }
            };
            // The client waits all of its time: the database may come back in the last bit.
            let pause =
                tokio::time::sleep_until((Instant::now() + backoff.next_pause()).min(deadline));
            tokio::select! {
                () = pause => {}
                grant = waiter.granted() => match grant {
                    Some(Grant::Conn(conn)) => return self.instead_of_login(slot, conn, &wait).await,
                    Some(Grant::Slot) => {
                        // Never handed to a client that holds a slot; queued again if ever.
                        self.give_back(Grant::Slot);
                        given_back = None;
                    }
                    None => return Err(PoolError::Closed),
                },
            }
            if Instant::now() >= deadline {
                return Err(self.gave_up(&error, &wait));
            }
        }
    }

    /// A connection another client gave back, taken by a client whose slot could not log in:
    /// the slot is given up (to a waiter, or freed) and the connection checked as any idle one.
    async fn instead_of_login(
        &self,
        slot: Checkout,
        conn: ServerConn,
        wait: &Wait,
    ) -> Result<Checkout, PoolError> {
        debug!(
            server = conn.id(),
            "a login was being retried; took a connection given back instead"
        );
        let instead = Checkout {
            conn: None,
            pool: Arc::clone(&slot.pool),
            released: false,
        };
        drop(slot);
        self.validate(instead, conn, wait).await
    }

    /// Runs `sql` on an idle connection, if one is idle now (none is opened or waited for, and
    /// none is taken while paused), and returns its first row. A connection that fails or does
    /// not answer within `PGWARM_CONNECT_TIMEOUT` is closed.
    pub(crate) async fn query_idle(
        &self,
        what: &'static str,
        sql: &str,
    ) -> Option<Vec<Option<String>>> {
        let mut conn = {
            let mut state = self.lock();
            if state.paused || state.closed {
                return None;
            }
            state.idle.pop()?
        };
        let mut first = None;
        let read = conn.query(what, sql, |row| {
            first.get_or_insert(row);
        });
        match tokio::time::timeout(self.settings.connect_timeout, read).await {
            Ok(Ok(TxStatus::Idle)) => {
                self.checkin(conn);
                first
            }
            _ => {
                debug!(server = conn.id(), "{what} failed; closing the connection");
                conn.close();
                self.release_slot(None);
                None
            }
        }
    }

    /// Puts a clean connection back, or hands it to the longest waiter.
    fn checkin(&self, mut conn: ServerConn) {
        conn.touch();
        let retire = if conn.cancel_in_flight() {
            Some("a cancel is on its way to it")
        } else if conn.age() >= self.settings.server_lifetime {
            Some("it is past PGWARM_SERVER_LIFETIME")
        } else {
            None
        };
        if let Some(why) = retire {
            debug!(server = conn.id(), "closing server connection: {why}");
            let id = conn.id();
            conn.close();
            self.release_slot(Some(id));
            return;
        }
        let mut state = self.lock();
        self.unlend(&mut state, conn.id());
        if state.closed {
            state.open -= 1;
            drop(state);
            conn.close();
            return;
        }
        if state.paused {
            state.idle.push(conn);
            return;
        }
        if let Some(conn) = state.waiters.hand_conn(conn) {
            state.idle.push(conn);
        }
    }

    /// A connection is gone (`lent`: the id it was lent under): its slot goes to the longest
    /// waiter, or is freed.
    fn release_slot(&self, lent: Option<u64>) {
        let mut state = self.lock();
        if let Some(id) = lent {
            self.unlend(&mut state, id);
        }
        if state.paused || state.waiters.hand(Grant::Slot).is_some() {
            state.open -= 1;
        }
    }

    fn give_back(&self, grant: Grant) {
        match grant {
            Grant::Conn(conn) => self.checkin(conn),
            Grant::Slot => self.release_slot(None),
        }
    }

    /// Forgets a lent connection; the last one back lets `PAUSE` and `give_back` go on.
    fn unlend(&self, state: &mut State, id: u64) {
        if state.lent.remove(&id).is_some() && state.lent.is_empty() {
            self.drained.notify_waiters();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; recover the state rather than propagate.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A queued waiter; if it gives up after being granted something, the grant goes back.
struct Waiter<'a> {
    rx: Option<oneshot::Receiver<Grant>>,
    pool: &'a Pool,
}

impl<'a> Waiter<'a> {
    fn new(pool: &'a Pool, rx: oneshot::Receiver<Grant>) -> Waiter<'a> {
        Waiter { rx: Some(rx), pool }
    }

    /// What the waiter was handed; `None` when the pool closed. Waits forever once it has
    /// answered.
    async fn granted(&mut self) -> Option<Grant> {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        let grant = rx.await.ok();
        self.rx = None;
        grant
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if let Ok(grant) = rx.try_recv() {
                self.pool.give_back(grant);
            }
        }
    }
}

/// A server connection lent to one client. [`Checkout::release`] returns it clean; dropping it
/// any other way closes the connection and frees its slot.
pub(crate) struct Checkout {
    /// `None` only while a slot is being filled, or after `release`.
    conn: Option<ServerConn>,
    pool: Arc<Pool>,
    released: bool,
}

impl Checkout {
    /// Returns a connection that is idle (ReadyForQuery 'I', nothing in flight) to the pool.
    pub(crate) fn release(mut self) {
        self.released = true;
        if let Some(conn) = self.conn.take() {
            self.pool.checkin(conn);
        }
    }
}

impl Deref for Checkout {
    type Target = ServerConn;
    #[allow(
        clippy::expect_used,
        reason = "a Checkout is handed out only once it holds one"
    )]
    fn deref(&self) -> &ServerConn {
        self.conn
            .as_ref()
            .expect("a Checkout handed to a client holds its connection")
    }
}

impl DerefMut for Checkout {
    #[allow(
        clippy::expect_used,
        reason = "a Checkout is handed out only once it holds one"
    )]
    fn deref_mut(&mut self) -> &mut ServerConn {
        self.conn
            .as_mut()
            .expect("a Checkout handed to a client holds its connection")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let id = self.conn.take().map(|conn| {
            debug!(server = conn.id(), "closing server connection");
            let id = conn.id();
            conn.close();
            id
        });
        self.pool.release_slot(id);
    }
}

#[cfg(test)]
mod tests;
