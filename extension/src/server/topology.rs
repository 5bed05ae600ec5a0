//! What an Aurora cluster says about itself: each instance's id, and which one is the writer.
//! Every instance answers `aurora_replica_status()` from the cluster's shared storage, so an old
//! writer that came back as a reader, reached through a writer endpoint whose DNS has not caught
//! up, still names the new writer. The pool turns the ids into instance host names
//! (`PGWARM_INSTANCE_HOST_PATTERN`) and logs in there instead of waiting for DNS.

use super::{ServerConn, ServerError};
use crate::protocol::backend::TxStatus;

/// The instances Aurora knows, without those it stopped hearing from (deleted or long gone);
/// the instance asked reports no update time for itself since Aurora PostgreSQL 13.9.
const TOPOLOGY_SQL: &str = "SELECT server_id, session_id = 'MASTER_SESSION_ID' \
     FROM aurora_replica_status() \
     WHERE session_id = 'MASTER_SESSION_ID' OR last_update_timestamp IS NULL \
        OR last_update_timestamp > pg_catalog.now() - interval '5 minutes'";

/// One instance of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instance {
    pub(crate) id: String,
    pub(crate) writer: bool,
}

impl ServerConn {
    /// The cluster's instances, the writer first. Run right after a login, outside a
    /// transaction. A server that is not Aurora answers 42883 (no such function).
    pub(crate) async fn read_topology(&mut self) -> Result<Vec<Instance>, ServerError> {
        let mut instances = Vec::new();
        let status = self
            .query("reading the cluster's topology", TOPOLOGY_SQL, |row| {
                if let [Some(id), Some(writer)] = &row[..] {
                    instances.push(Instance {
                        id: id.clone(),
                        writer: writer == "t",
                    });
                }
            })
            .await?;
        if status != TxStatus::Idle {
            return Err(ServerError::Protocol(
                "the topology query left a transaction open".into(),
            ));
        }
        instances.sort_by_key(|i| !i.writer);
        Ok(instances)
    }
}
