//! The database's topology as the admin console shows it: the pools (the main port's and the
//! reader port's) and the hosts each one logs in to, with what the last login there found.

use super::table::{timestamp, Table};
use super::Console;
use crate::client::Port;
use crate::pool::Pool;
use std::sync::Arc;

/// Each pool with the port whose clients it serves: the main one, then the reader port's.
pub(super) fn pools_of(console: &Console) -> Vec<(Port, &Arc<Pool>)> {
    let shared = &console.shared;
    let reader = shared.reader.as_ref().map(|pool| (Port::Reader, pool));
    std::iter::once((Port::Writer, &shared.pool))
        .chain(reader)
        .collect()
}

/// The name a pool goes by in the admin console: the database's, and for the reader port's
/// pool the same with ` (reader)`.
pub(super) fn pool_name(database: &str, port: Port) -> String {
    match port {
        Port::Writer => database.to_owned(),
        Port::Reader => format!("{database} (reader)"),
    }
}

/// `SHOW HOSTS`: the database hosts pgwarm knows (`PGWARM_DB_HOST`, or the secret's one, then
/// the reader port's replicas), what the last login there found (`primary`, `standby`,
/// `read-only primary`, `unreachable`), when, which one logins go to first, and whether the
/// database named it (`aurora_replica_status()`) rather than a setting.
pub(super) async fn hosts(console: &Console) -> Table {
    let mut t = Table::new(
        &[
            "pool",
            "host",
            "port",
            "found",
            "checked",
            "current",
            "target_session_attrs",
            "discovered",
        ],
        &["port", "current", "discovered"],
    );
    let Some(login) = super::show::target(console).await else {
        return t;
    };
    let shared = &console.shared;
    let writer = (
        &shared.pool,
        "writer",
        shared.settings.target_session_attrs.as_str(),
    );
    let reader = shared.reader.as_ref().map(|pool| (pool, "reader", "any"));
    for (pool, name, attrs) in std::iter::once(writer).chain(reader) {
        for h in pool.hosts(&login) {
            t.row(vec![
                name.into(),
                h.host.into(),
                h.port.into(),
                h.found.as_str().into(),
                h.checked.map(timestamp).into(),
                u64::from(h.current).into(),
                attrs.into(),
                u64::from(h.discovered).into(),
            ]);
        }
    }
    t
}
