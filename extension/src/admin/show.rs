//! One function per `SHOW` (`SHOW HOSTS` and the pools' names in `topology.rs`): each reads what
//! the pool, the client sessions and the Lambda lifecycle count and lays it out in PgBouncer
//! 1.18's columns (pgwarm's own come after them).
//! Where a PgBouncer column names a state pgwarm never has (a cancel waiting in a queue, a DNS
//! cache), it is there, at zero, so that tools reading it by name keep working.

use super::averages::Totals;
use super::command::{Show, OTHERS};
use super::table::{addr_port, timestamp, Cell, Table};
use super::topology::{pool_name, pools_of};
use super::Console;
use crate::client::clients::ClientState;
use crate::config::PoolMode;
use crate::credentials::Credentials;
use crate::pool::ServerState;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) async fn table(console: &Console, what: Show) -> Table {
    match what {
        Show::Help => help(),
        Show::Pools => pools(console).await,
        Show::Stats => stats(console, true, true).await,
        Show::StatsTotals => stats(console, true, false).await,
        Show::StatsAverages => stats(console, false, true).await,
        Show::Servers => servers(console).await,
        Show::Clients => clients(console),
        Show::Config => config(console),
        Show::Databases => databases(console).await,
        Show::Lists => lists(console),
        Show::Version => version(),
        Show::Prepared => prepared(console),
        Show::Lambda => lambda(console),
        Show::Hosts => super::topology::hosts(console).await,
    }
}

/// The database login pgwarm uses now, when it can be had (the secret may not be readable).
pub(super) async fn target(console: &Console) -> Option<Credentials> {
    console.shared.pool.credentials().credentials().await.ok()
}

pub(super) async fn database_name(console: &Console) -> Option<String> {
    target(console).await.map(|t| t.dbname)
}

fn pool_mode(console: &Console) -> &'static str {
    match console.shared.settings.pool_mode {
        PoolMode::Transaction => "transaction",
        PoolMode::Session => "session",
    }
}

fn help() -> Table {
    let mut t = Table::new(&["command", "description"], &[]);
    for (name, _, about) in Show::ALL {
        t.row(vec![format!("SHOW {name}").into(), about.into()]);
    }
    for (name, about) in OTHERS.iter().take(OTHERS.len() - 1) {
        t.row(vec![(*name).into(), (*about).into()]);
    }
    t
}

/// `SHOW POOLS`: PgBouncer's columns, then pgwarm's own: `sv_pinned`, the server connections
/// clients keep between transactions for their session state.
async fn pools(console: &Console) -> Table {
    const COLUMNS: [&str; 17] = [
        "database",
        "user",
        "cl_active",
        "cl_waiting",
        "cl_active_cancel_req",
        "cl_waiting_cancel_req",
        "sv_active",
        "sv_active_cancel",
        "sv_being_canceled",
        "sv_idle",
        "sv_used",
        "sv_tested",
        "sv_login",
        "maxwait",
        "maxwait_us",
        "pool_mode",
        "sv_pinned",
    ];
    let numeric: Vec<&str> = COLUMNS[2..15]
        .iter()
        .chain(&["sv_pinned"])
        .copied()
        .collect();
    let mut t = Table::new(&COLUMNS, &numeric);
    let target = target(console).await;
    let shared = &console.shared;
    for (port, pool) in pools_of(console) {
        let view = pool.view();
        let clients: Vec<_> = shared
            .clients
            .rows()
            .into_iter()
            .filter(|c| c.who.port == port)
            .collect();
        let waiting = clients.iter().filter(|c| c.state == ClientState::Waiting);
        let maxwait = waiting
            .clone()
            .map(|c| c.waited)
            .max()
            .unwrap_or(Duration::ZERO);
        let cl_waiting = waiting.count();
        let being_canceled = view
            .servers
            .iter()
            .filter(|s| s.state == ServerState::Active && s.being_canceled)
            .count();
        t.row(vec![
            target.as_ref().map(|t| pool_name(&t.dbname, port)).into(),
            target.as_ref().map(|t| t.user.clone()).into(),
            (clients.len() - cl_waiting).into(),
            cl_waiting.into(),
            shared.traffic.cancels_now.load(Ordering::Relaxed).into(),
            // pgwarm forwards a cancel at once; none ever waits for a connection to send it on.
            0u64.into(),
            view.count(ServerState::Active).into(),
            // Nor does it open pooled connections for cancels.
            0u64.into(),
            being_canceled.into(),
            view.count(ServerState::Idle).into(),
            view.count(ServerState::Used).into(),
            view.testing.into(),
            view.logging_in.into(),
            maxwait.as_secs().into(),
            maxwait.subsec_micros().into(),
            pool_mode(console).into(),
            pool.pinned().into(),
        ]);
    }
    t
}

async fn stats(console: &Console, totals: bool, averages: bool) -> Table {
    const TOTALS: [&str; 7] = [
        "total_xact_count",
        "total_query_count",
        "total_received",
        "total_sent",
        "total_xact_time",
        "total_query_time",
        "total_wait_time",
    ];
    const AVERAGES: [&str; 7] = [
        "avg_xact_count",
        "avg_query_count",
        "avg_recv",
        "avg_sent",
        "avg_xact_time",
        "avg_query_time",
        "avg_wait_time",
    ];
    /// pgwarm's own, after PgBouncer's. `total_requests` is PgBouncer 1.7's name for
    /// `total_query_count`, still read by Debian's prometheus-pgbouncer-exporter.
    const OWN: [&str; 13] = [
        "total_requests",
        "total_server_logins",
        "total_server_login_time",
        "total_server_login_failures",
        "total_logins_retried",
        "total_reconnects",
        "total_health_checks",
        "total_thaw_checks",
        "total_reprepares",
        "total_secret_reads",
        "total_clients_refused",
        "total_client_errors",
        "total_pins",
    ];
    let mut columns = vec!["database"];
    if totals {
        columns.extend(TOTALS);
    }
    if averages {
        columns.extend(AVERAGES);
    }
    if totals && averages {
        columns.extend(OWN);
    }
    let mut t = Table::new(&columns, &columns[1..]);
    let shared = &console.shared;
    let now = Totals::of(&shared.traffic);
    let mut row: Vec<Cell> = vec![database_name(console).await.into()];
    if totals {
        row.extend(
            [
                now.xacts,
                now.queries,
                now.received,
                now.sent,
                now.xact_us,
                now.query_us,
                now.wait_us,
            ]
            .map(Cell::from),
        );
    }
    if averages {
        let a = console.averages.last();
        row.extend(
            [
                a.xact_count,
                a.query_count,
                a.recv,
                a.sent,
                a.xact_time,
                a.query_time,
                a.wait_time,
            ]
            .map(Cell::from),
        );
    }
    if totals && averages {
        let p = shared.pool.counters();
        let traffic = &shared.traffic;
        row.extend(
            [
                now.queries,
                p.logins.get(),
                p.login_us.get(),
                p.login_failures.get(),
                p.logins_retried.get(),
                p.reconnects.get(),
                p.health_checks.get(),
                p.thaw_checks.get(),
                traffic.reprepares.get(),
                shared.pool.credentials().reads(),
                traffic.refused.get(),
                traffic.errors.get(),
                traffic.pins.get(),
            ]
            .map(Cell::from),
        );
    }
    t.row(row);
    t
}

const CONNECTION_COLUMNS: [&str; 19] = [
    "type",
    "user",
    "database",
    "state",
    "addr",
    "port",
    "local_addr",
    "local_port",
    "connect_time",
    "request_time",
    "wait",
    "wait_us",
    "close_needed",
    "ptr",
    "link",
    "remote_pid",
    "tls",
    "application_name",
    "id",
];
const CONNECTION_INTS: [&str; 7] = [
    "port",
    "local_port",
    "wait",
    "wait_us",
    "close_needed",
    "remote_pid",
    "id",
];

/// `SHOW SERVERS`: PgBouncer's columns, then the host each was opened to and what the server is.
async fn servers(console: &Console) -> Table {
    let columns: Vec<&str> = CONNECTION_COLUMNS
        .iter()
        .chain(&["host", "role"])
        .copied()
        .collect();
    let mut t = Table::new(&columns, &CONNECTION_INTS);
    let target = target(console).await;
    let shared = &console.shared;
    let clients = shared.clients.rows();
    let servers = pools_of(console)
        .into_iter()
        .flat_map(|(port, pool)| pool.view().servers.into_iter().map(move |s| (port, s)));
    for (pool_port, s) in servers {
        let (addr, port) = addr_port(Some(s.peer));
        let (local_addr, local_port) = addr_port(s.local);
        let client = clients.iter().find(|c| c.server == Some(s.id));
        t.row(vec![
            "S".into(),
            target.as_ref().map(|t| t.user.clone()).into(),
            target
                .as_ref()
                .map(|t| pool_name(&t.dbname, pool_port))
                .into(),
            s.state.as_str().into(),
            addr,
            port,
            local_addr,
            local_port,
            timestamp(s.connected).into(),
            timestamp(s.since).into(),
            0u64.into(),
            0u64.into(),
            0u64.into(),
            s.id.to_string().into(),
            client.map(|c| c.who.id.to_string()).into(),
            s.pid.into(),
            tls_column(s.tls).into(),
            "pgwarm".into(),
            s.id.into(),
            s.host.as_ref().into(),
            s.role.map(|r| r.as_str()).into(),
        ]);
    }
    t
}

/// `SHOW CLIENTS`: PgBouncer's columns, then what pins a client to its server connection.
fn clients(console: &Console) -> Table {
    let columns: Vec<&str> = CONNECTION_COLUMNS
        .iter()
        .chain(&["pinned"])
        .copied()
        .collect();
    let mut t = Table::new(&columns, &CONNECTION_INTS);
    let listen = console.shared.settings.listen;
    for c in console.shared.clients.rows() {
        let (addr, port) = addr_port(Some(c.who.addr));
        let (local_addr, local_port) = addr_port(Some(listen));
        t.row(vec![
            "C".into(),
            c.who.user.clone().into(),
            c.who.database.clone().into(),
            c.state.as_str().into(),
            addr,
            port,
            local_addr,
            local_port,
            timestamp(c.connected).into(),
            timestamp(c.since).into(),
            c.waited.as_secs().into(),
            c.waited.subsec_micros().into(),
            0u64.into(),
            c.who.id.to_string().into(),
            c.server.map(|s| s.to_string()).into(),
            0u64.into(),
            tls_column(c.who.tls).into(),
            c.who.application_name.clone().into(),
            c.who.id.into(),
            c.pinned.clone().into(),
        ]);
    }
    t
}

fn tls_column(tls: bool) -> &'static str {
    if tls {
        "TLS"
    } else {
        ""
    }
}

fn config(console: &Console) -> Table {
    let mut t = Table::new(&["key", "value", "default", "changeable"], &[]);
    for e in console.shared.settings.entries() {
        t.row(vec![
            e.key.into(),
            e.value.into(),
            e.default.into(),
            "no".into(),
        ]);
    }
    t
}

async fn databases(console: &Console) -> Table {
    const COLUMNS: [&str; 13] = [
        "name",
        "host",
        "port",
        "database",
        "force_user",
        "pool_size",
        "min_pool_size",
        "reserve_pool",
        "pool_mode",
        "max_connections",
        "current_connections",
        "paused",
        "disabled",
    ];
    let ints = [
        "port",
        "pool_size",
        "min_pool_size",
        "reserve_pool",
        "max_connections",
        "current_connections",
        "paused",
        "disabled",
    ];
    let mut t = Table::new(&COLUMNS, &ints);
    let target = target(console).await;
    let settings = &console.shared.settings;
    let view = console.shared.pool.view();
    let t_ = target.as_ref();
    // With several hosts, the one logins go to first: where the writer was last found.
    let first = t_.and_then(|t| {
        let hosts = console.shared.pool.hosts(t);
        hosts.into_iter().find(|h| h.current)
    });
    t.row(vec![
        t_.map(|t| t.dbname.clone()).into(),
        first.as_ref().map(|h| h.host.clone()).into(),
        first.as_ref().map(|h| h.port).into(),
        t_.map(|t| t.dbname.clone()).into(),
        t_.map(|t| t.user.clone()).into(),
        settings.pool_size.into(),
        settings.min_pool_size.into(),
        0u64.into(),
        pool_mode(console).into(),
        settings.pool_size.into(),
        view.open.into(),
        view.paused.into(),
        0u64.into(),
    ]);
    t
}

fn lists(console: &Console) -> Table {
    let mut t = Table::new(&["list", "items"], &["items"]);
    let shared = &console.shared;
    let view = shared.pool.view();
    let used_clients = shared.clients.rows().len();
    let connections = shared.connections();
    let admin = console.sessions.load(std::sync::atomic::Ordering::Relaxed);
    let login_clients = connections.saturating_sub(used_clients + admin);
    let rows: [(&str, usize); 12] = [
        ("databases", 1),
        ("users", 1),
        ("pools", 1),
        (
            "free_clients",
            shared.settings.max_client_conn.saturating_sub(connections),
        ),
        ("used_clients", used_clients),
        ("login_clients", login_clients),
        ("free_servers", view.size.saturating_sub(view.open)),
        ("used_servers", view.open),
        // Host names are resolved by the system at each login; pgwarm keeps no DNS cache.
        ("dns_names", 0),
        ("dns_zones", 0),
        ("dns_queries", 0),
        ("dns_pending", 0),
    ];
    for (name, n) in rows {
        t.row(vec![name.into(), n.into()]);
    }
    t
}

fn version() -> Table {
    let mut t = Table::new(&["version"], &[]);
    t.row(vec![format!("pgwarm {}", env!("CARGO_PKG_VERSION")).into()]);
    t
}

fn prepared(console: &Console) -> Table {
    const COLUMNS: [&str; 8] = [
        "server",
        "remote_pid",
        "state",
        "statements",
        "hits",
        "prepares",
        "reprepares",
        "evictions",
    ];
    let mut t = Table::new(
        &COLUMNS,
        &[
            "server",
            "remote_pid",
            "statements",
            "hits",
            "prepares",
            "reprepares",
            "evictions",
        ],
    );
    for s in console.shared.pool.view().servers {
        let p = &s.prepared;
        t.row(vec![
            s.id.into(),
            s.pid.into(),
            s.state.as_str().into(),
            p.statements.load(Ordering::Relaxed).into(),
            p.hits.get().into(),
            p.prepares.get().into(),
            p.reprepares.get().into(),
            p.evictions.get().into(),
        ]);
    }
    t
}

fn lambda(console: &Console) -> Table {
    let mut t = Table::new(&["key", "value"], &[]);
    let life = &console.lifecycle;
    let counters = console.shared.pool.counters();
    let registration = life.registration();
    let reg = registration.as_ref();
    let rows: Vec<(&str, Option<String>)> = vec![
        ("mode", Some(life.mode.to_owned())),
        ("function_name", reg.map(|r| r.function_name.clone())),
        ("function_version", reg.map(|r| r.function_version.clone())),
        ("events", reg.map(|r| r.events.join(","))),
        ("registered_at", reg.and_then(|r| r.at).map(timestamp)),
        (
            "registered_after_ms",
            reg.map(|r| r.took.as_millis().to_string()),
        ),
        ("uptime_s", Some(life.uptime().as_secs().to_string())),
        ("invocations", Some(life.invocations.get().to_string())),
        ("last_request_id", life.request_id()),
        ("freezes", Some(life.freezes.get().to_string())),
        ("frozen_ms", Some((life.frozen_us.get() / 1000).to_string())),
        ("thaw_checks", Some(counters.thaw_checks.get().to_string())),
        (
            "thaw_replaced",
            Some(counters.thaw_replaced.get().to_string()),
        ),
        (
            "telemetry",
            Some(yes_no(life.telemetry.load(Ordering::Relaxed)).to_owned()),
        ),
        (
            "database_tight",
            Some(yes_no(console.shared.pool.is_tight()).to_owned()),
        ),
        (
            "database_use",
            console
                .shared
                .pool
                .headroom()
                .map(|r| r.fullest.to_string()),
        ),
        ("holds", Some(life.holds.get().to_string())),
        ("held_ms", Some((life.held_us.get() / 1000).to_string())),
        ("given_back", Some(life.given_back.get().to_string())),
        (
            "runtime_done_missed",
            Some(life.runtime_done_missed.get().to_string()),
        ),
        (
            "leaked_transactions",
            Some(console.shared.invocation_ends.leaked.get().to_string()),
        ),
        ("shutdown_reason", life.shutdown_reason()),
    ];
    for (key, value) in rows {
        t.row(vec![key.into(), value.into()]);
    }
    t
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
