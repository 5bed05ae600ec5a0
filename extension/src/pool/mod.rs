//! The pool of server connections: at most `PGWARM_POOL_SIZE` of them, handed to clients one
//! transaction (or session) at a time.
//!
//! Waiting clients queue in the order their checkouts began (`queue.rs`). A returning connection
//! goes straight to the longest waiter; a connection that is lost hands its *slot* to the longest
//! waiter that can use one, who then opens a new one. Idle connections are kept LIFO so the
//! busiest stay warm and the rest can age out. Every connection leaves the pool inside a
//! [`Checkout`], whose drop returns the slot even when a client task fails half-way, so the count
//! can never leak.
//!
//! This file is the pool's face: checkout, the server parameters, the Lambda invocation, close.
//! Each other job has a file: the state under the lock and the hand-off (`slots.rs`), the guard
//! (`checkout.rs`), opening connections with retries (`open.rs`) and one login (`login.rs`),
//! validating idle ones (`health.rs`), what a failed checkout tells the client (`error.rs`), the
//! queue, the wait's bound, outages, headroom, `PAUSE` and the counters.

mod checkout;
mod discovery;
mod error;
mod headroom;
mod health;
mod hosts;
mod login;
mod open;
mod outage;
mod pause;
mod pins;
mod queue;
mod slots;
mod stats;
mod wait;

pub(crate) use checkout::Checkout;
pub(crate) use error::PoolError;
pub(crate) use hosts::{HostRow, Plan};
pub(crate) use stats::PoolCounters;
pub(crate) use stats::ServerState;
pub(crate) use wait::InvocationDeadline;

use crate::config::{
    HostAddr, InstanceHosts, PoolMode, ReaderSettings, SessionAttrs, Settings, Upstream,
};
use crate::credentials::{CredentialSource, Credentials};
use crate::server::{ServerError, TlsSetup};
use discovery::Discovery;
use headroom::Headroom;
use hosts::Hosts;
use outage::Outage;
use queue::{Queue, Wants};
use slots::{Grant, LentMap, State};
use stats::Lent;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tracing::info;
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
    /// `PGWARM_DB_HOST`'s hosts (the replicas, for the reader port), which servers will do,
    /// and how the pool picks among the hosts.
    pub(crate) hosts: Vec<HostAddr>,
    pub(crate) target_session_attrs: SessionAttrs,
    pub(crate) plan: Plan,
    /// How the writer's instances are named, to try those the database names.
    pub(crate) instance_hosts: InstanceHosts,
    /// How many connections clients may keep for their session state (`PGWARM_MAX_PINNED`).
    pub(crate) max_pinned: usize,
}

impl PoolSettings {
    /// The reader port's pool: the replicas, balanced, whatever server each is, then the
    /// writer's hosts when it may fall back. Nothing else differs from the writer's pool.
    pub(crate) fn reader(settings: &Settings, reader: &ReaderSettings) -> PoolSettings {
        PoolSettings {
            hosts: reader.hosts.clone(),
            target_session_attrs: SessionAttrs::Any,
            plan: Plan::Reader {
                fallback: reader.fallback.then(|| settings.hosts.clone()),
            },
            instance_hosts: InstanceHosts::Off,
            ..PoolSettings::from(settings)
        }
    }
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
            hosts: s.hosts.clone(),
            target_session_attrs: s.target_session_attrs,
            plan: Plan::Writer,
            instance_hosts: s.instance_hosts.clone(),
            max_pinned: s.max_pinned,
        }
    }
}

/// ParameterStatus name/value pairs as a server sent them at login.
pub(crate) type ServerParams = Arc<Vec<(String, String)>>;

pub(crate) struct Pool {
    state: Mutex<State>,
    settings: PoolSettings,
    credentials: Arc<dyn CredentialSource>,
    /// How server connections are secured (`PGWARM_SSLMODE`).
    tls: Arc<TlsSetup>,
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
    /// Woken when the last lent connection comes back, or the last one not pinned.
    drained: Notify,
    /// Woken when a pinned connection is let go (unpinned, or closed with its client).
    pins_freed: Notify,
    /// The database's connection use, when `watch_headroom`.
    headroom: Headroom,
    /// Where logins go, and which servers will do.
    hosts: Hosts,
    /// Whether and how the database is asked for its instances.
    discovery: Discovery,
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
        let hosts = Hosts::new(
            &settings.hosts,
            settings.target_session_attrs,
            settings.plan.clone(),
        );
        let discovery = Discovery::new(
            settings.instance_hosts.clone(),
            settings.target_session_attrs,
        );
        Arc::new(Pool {
            discovery,
            state: Mutex::new(State {
                idle: Vec::with_capacity(settings.size),
                open: 0,
                waiters: Queue::default(),
                closed: false,
                paused: false,
                lent: LentMap::default(),
                logging_in: 0,
                testing: 0,
                invocation: None,
            }),
            settings,
            credentials,
            tls,
            server_params: Mutex::new(None),
            outage: Outage::default(),
            max_connections: AtomicU32::new(0),
            idle_timeout_accepted: AtomicBool::new(true),
            counters: PoolCounters::default(),
            drained: Notify::new(),
            pins_freed: Notify::new(),
            headroom: Headroom::default(),
            headroom_readable: AtomicBool::new(true),
            hosts,
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
        let timer = std::pin::pin!(tokio::time::sleep_until(Instant::now()));
        self.checkout_with(timer).await
    }

    /// [`Pool::checkout`], with the caller's timer for the wait. A session keeps one for all of
    /// its waits: a timer moved to a later deadline costs one compare-and-swap, where a new one is
    /// added to the runtime's timer wheel and taken out of it again at every wait.
    pub(crate) async fn checkout_with(
        self: &Arc<Pool>,
        timer: Pin<&mut Sleep>,
    ) -> Result<Checkout, PoolError> {
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
            Err(rx) => self.wait(rx, &wait, timer).await?,
        };
        let slot = Checkout::empty(self);
        let lent = match grant {
            Grant::Conn(conn) => self.validate(slot, conn, &wait).await,
            Grant::Slot => self.fill(slot, &wait).await,
        }?;
        self.lock().lent.insert(lent.id(), Lent::of(&lent));
        Ok(lent)
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

    /// A Lambda invocation began: until its deadline, waits end a margin before it.
    pub(crate) fn invocation_began(&self, invocation: InvocationDeadline) {
        self.lock().invocation = Some(invocation);
    }

    /// The invocation's runtime is done: its deadline bounds no wait of the next one, which
    /// may begin before pgwarm reads the next INVOKE.
    pub(crate) fn invocation_ended(&self) {
        self.lock().invocation = None;
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

    /// Every database host, with what the last login there found; `creds` is the login the
    /// credential source gives now (its host is the one host when `PGWARM_DB_HOST` lists none).
    pub(crate) fn hosts(&self, creds: &Credentials) -> Vec<HostRow> {
        self.hosts.rows(creds)
    }

    /// The ParameterStatus set of the newest login, if any login was made; opens nothing.
    pub(crate) fn known_params(&self) -> Option<ServerParams> {
        self.server_params
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests;
