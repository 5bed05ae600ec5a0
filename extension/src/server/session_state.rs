//! The state a backend keeps for its session beyond a transaction, which a client in transaction
//! mode would lose (or leave behind for the next client) if its server connection went back to
//! the pool: session advisory locks, `LISTEN`, temporary tables, cursors `WITH HOLD` and SQL
//! `PREPARE`. One query asks for all of them; the relay only says when it is worth asking.

use super::{ServerConn, ServerError};
use crate::protocol::backend::TxStatus;

/// Asked at the end of a transaction that may have made session state: what of it is there.
const HELD_SQL: &str = "SELECT pg_catalog.concat_ws(', ', \
     CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_locks \
         WHERE pid = pg_catalog.pg_backend_pid() AND locktype = 'advisory') \
         THEN 'advisory lock' END, \
     CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_listening_channels()) THEN 'LISTEN' END, \
     CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_class \
         WHERE relnamespace = pg_catalog.pg_my_temp_schema()) THEN 'temporary table' END, \
     CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_cursors WHERE is_holdable) \
         THEN 'cursor WITH HOLD' END, \
     CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE from_sql) \
         THEN 'SQL PREPARE' END)";

impl ServerConn {
    /// What session state the backend holds now, as a list for people (`advisory lock,
    /// LISTEN`); empty when none. Run only at rest, outside a transaction. Notifications and
    /// notices the server sends meanwhile are kept for the client ([`ServerConn::take_unread`]).
    pub(crate) async fn session_state(&mut self) -> Result<String, ServerError> {
        let mut held = None;
        self.keep_async = true;
        let asked = self
            .query("asking for session state", HELD_SQL, |row| {
                held = row.into_iter().next().flatten();
            })
            .await;
        self.keep_async = false;
        match (held, asked?) {
            (Some(held), TxStatus::Idle) => Ok(held),
            (_, status) => Err(ServerError::Protocol(format!(
                "no answer on session state (transaction status {status})"
            ))),
        }
    }
}
