//! What the pool can say about itself: counters of what it did (logins, checks, replacements),
//! a row per server connection as it is now, and the logins and checks under way. The admin
//! console and the metrics read these; nothing here decides anything.

use super::slots::State;
use super::Pool;
use crate::counter::Counter;
use crate::server::{CancelTarget, PreparedCounters, Role, ServerConn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use std::time::{Duration, SystemTime};

/// Totals since pgwarm started. Each is bumped where the event happens, with a relaxed add.
#[derive(Debug, Default)]
pub(crate) struct PoolCounters {
    /// Server connections opened.
    pub logins: Counter,
    /// Their login time, summed, in microseconds.
    pub login_us: Counter,
    /// Login attempts that failed.
    pub login_failures: Counter,
    /// Attempts made again after a failure worth waiting out (restart, failover, full database).
    pub logins_retried: Counter,
    /// Connections found dead, or failing their check, and replaced: what a client would
    /// otherwise have met as "server closed the connection unexpectedly".
    pub reconnects: Counter,
    /// Health checks run on connections idle longer than `PGWARM_SERVER_CHECK_DELAY`.
    pub health_checks: Counter,
    /// Of those, the ones run all at once because Lambda thawed the environment.
    pub thaw_checks: Counter,
    /// Connections a thaw check replaced.
    pub thaw_replaced: Counter,
    /// Logins that went first to another host than before: a failover found.
    pub host_changes: Counter,
    /// Servers found read-only after they refused a write (a writer demoted under pgwarm).
    pub demoted: Counter,
    /// Reader-port logins that went to the writer because no replica answered.
    pub reader_fallbacks: Counter,
}

/// What a server connection is doing, in PgBouncer's words (`SHOW SERVERS`' state and `SHOW
/// POOLS`' `sv_*` columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerState {
    /// Lent to a client.
    Active,
    /// Idle, ready to lend.
    Idle,
    /// Idle longer than `PGWARM_SERVER_CHECK_DELAY`: it is checked before it is lent.
    Used,
}

impl ServerState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ServerState::Active => "active",
            ServerState::Idle => "idle",
            ServerState::Used => "used",
        }
    }
}

/// One server connection as the admin console shows it.
#[derive(Debug, Clone)]
pub(crate) struct ServerRow {
    pub(crate) id: u64,
    pub(crate) pid: i32,
    pub(crate) tls: bool,
    /// The database's address, and pgwarm's end.
    pub(crate) peer: SocketAddr,
    pub(crate) local: Option<SocketAddr>,
    /// A cancel is on its way to its backend.
    pub(crate) being_canceled: bool,
    pub(crate) state: ServerState,
    /// When it logged in.
    pub(crate) connected: SystemTime,
    /// When it was last given back to the pool (PgBouncer's `request_time`, roughly: the
    /// request that took it came after).
    pub(crate) since: SystemTime,
    pub(crate) prepared: Arc<PreparedCounters>,
    /// The host it was opened to, and what the server is when that was checked.
    pub(crate) host: Arc<str>,
    pub(crate) role: Option<Role>,
}

/// A lent connection, remembered while a client holds it.
#[derive(Debug)]
pub(super) struct Lent {
    cancel: CancelTarget,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    tls: bool,
    created: Instant,
    /// When it was last given back: lending reads no clock.
    returned: Instant,
    prepared: Arc<PreparedCounters>,
    host: Arc<str>,
    role: Option<Role>,
    /// Its client keeps it between transactions for the session state it holds.
    pub(super) pinned: bool,
}

impl Lent {
    pub(super) fn of(conn: &ServerConn) -> Lent {
        let (peer, local) = conn.addrs();
        let (created, returned) = conn.times();
        Lent {
            cancel: conn.cancel_target(),
            peer,
            local,
            tls: conn.is_tls(),
            created,
            returned,
            prepared: Arc::clone(conn.prepared_counters()),
            host: Arc::clone(conn.host()),
            role: conn.role(),
            pinned: false,
        }
    }

    pub(super) fn row(&self, id: u64) -> ServerRow {
        ServerRow {
            id,
            pid: self.cancel.pid,
            tls: self.tls,
            peer: self.peer,
            local: self.local,
            being_canceled: self.cancel.in_flight_count() > 0,
            state: ServerState::Active,
            connected: wall_clock(self.created.elapsed()),
            since: wall_clock(self.returned.elapsed()),
            prepared: Arc::clone(&self.prepared),
            host: Arc::clone(&self.host),
            role: self.role,
        }
    }
}

/// The row of an idle connection.
fn idle_row(conn: &ServerConn, check_delay: Duration, now: Instant) -> ServerRow {
    let idle_for = conn.idle_for(now);
    let (peer, local) = conn.addrs();
    ServerRow {
        id: conn.id(),
        pid: conn.cancel_target().pid,
        tls: conn.is_tls(),
        peer,
        local,
        being_canceled: conn.cancel_in_flight(),
        state: if idle_for >= check_delay {
            ServerState::Used
        } else {
            ServerState::Idle
        },
        connected: wall_clock(conn.age(now)),
        since: wall_clock(idle_for),
        prepared: Arc::clone(conn.prepared_counters()),
        host: Arc::clone(conn.host()),
        role: conn.role(),
    }
}

/// The wall-clock time `ago` before now.
fn wall_clock(ago: Duration) -> SystemTime {
    SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The pool at one moment.
#[derive(Debug, Clone)]
pub(crate) struct PoolView {
    /// `PGWARM_POOL_SIZE`.
    pub(crate) size: usize,
    /// Connections that exist or are being opened.
    pub(crate) open: usize,
    /// Logins under way (`sv_login`).
    pub(crate) logging_in: usize,
    /// Health checks under way (`sv_tested`).
    pub(crate) testing: usize,
    /// `PAUSE` is in effect.
    pub(crate) paused: bool,
    /// Lent and idle connections, by id.
    pub(crate) servers: Vec<ServerRow>,
}

impl PoolView {
    pub(crate) fn count(&self, state: ServerState) -> usize {
        self.servers.iter().filter(|s| s.state == state).count()
    }
}

impl Pool {
    /// Every server connection and what it is doing now.
    pub(crate) fn view(&self) -> PoolView {
        let state = self.lock();
        let delay = self.settings.server_check_delay;
        let now = Instant::now();
        let mut servers: Vec<ServerRow> = state
            .lent
            .iter()
            .map(|(id, lent)| lent.row(*id))
            .chain(state.idle.iter().map(|c| idle_row(c, delay, now)))
            .collect();
        servers.sort_by_key(|s| s.id);
        PoolView {
            size: self.settings.size,
            open: state.open,
            logging_in: state.logging_in,
            testing: state.testing,
            paused: state.paused,
            servers,
        }
    }

    /// Counts `work` as under way (`sv_login`, `sv_tested`) until the guard drops, however the
    /// future holding it ends.
    pub(super) fn under_way(&self, work: Work) -> UnderWay<'_> {
        *work.count(&mut self.lock()) += 1;
        UnderWay(self, work)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Work {
    LoggingIn,
    Testing,
}

impl Work {
    fn count(self, state: &mut State) -> &mut usize {
        match self {
            Work::LoggingIn => &mut state.logging_in,
            Work::Testing => &mut state.testing,
        }
    }
}

pub(super) struct UnderWay<'a>(&'a Pool, Work);

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        let count = self.1.count(&mut state);
        *count = count.saturating_sub(1);
    }
}
