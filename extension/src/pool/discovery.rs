//! Finding an Aurora cluster's writer by asking the cluster, not DNS. Each instance of a cluster
//! answers `aurora_replica_status()` with every instance's id and which one writes, and each
//! instance has a name of its own that a failover does not move
//! (`PGWARM_INSTANCE_HOST_PATTERN`). So the writer pool asks once, with the first writer it
//! finds, to know the instances before a failover makes the writer endpoint unreachable, and
//! again whenever a host turns out not to be the writer (the old writer back as a reader, through
//! DNS that has not caught up): the instance named as the writer is tried next. A database
//! without the function (not Aurora) is asked once.

use super::hosts::Candidate;
use super::Pool;
use crate::config::{instance_host, InstanceHosts, SessionAttrs};
use crate::credentials::Credentials;
use crate::protocol::sqlstate;
use crate::server::{ServerConn, ServerError};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::time::Instant;
use tracing::{debug, info};

/// What the pool knows about asking for the topology.
pub(super) struct Discovery {
    instance_hosts: InstanceHosts,
    /// Whether the instances were asked for since start.
    asked: AtomicBool,
    /// The database has no `aurora_replica_status()`: never asked again.
    not_offered: AtomicBool,
}

impl Discovery {
    /// For a pool that looks for the writer; `Off` otherwise (the reader port balances over the
    /// replicas it is given).
    pub(super) fn new(instance_hosts: InstanceHosts, attrs: SessionAttrs) -> Discovery {
        let wants_writer = matches!(attrs, SessionAttrs::ReadWrite | SessionAttrs::Primary);
        Discovery {
            instance_hosts: match wants_writer {
                true => instance_hosts,
                false => InstanceHosts::Off,
            },
            asked: AtomicBool::new(false),
            not_offered: AtomicBool::new(false),
        }
    }
}

/// Why the topology was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Occasion {
    /// The first writer the pool found: to know the instances ahead of a failover.
    FirstWriter,
    /// A host that is not the writer: a failover may be under way.
    NotTheWriter,
}

impl Pool {
    /// Asks the server just logged in to at `candidate` for the cluster's instances, when the
    /// occasion calls for it and a pattern names them. The instances become hosts to try; the
    /// index of the one named as the writer is returned. Only an error that leaves `conn`
    /// unusable (it timed out or closed) is returned; a refused query is logged.
    pub(super) async fn discover(
        &self,
        source: &Credentials,
        candidate: &Candidate,
        conn: &mut ServerConn,
        occasion: Occasion,
        deadline: Instant,
    ) -> Result<Option<usize>, ServerError> {
        let discovery = &self.discovery;
        if discovery.not_offered.load(Ordering::Relaxed)
            || (occasion == Occasion::FirstWriter && discovery.asked.load(Ordering::Relaxed))
        {
            return Ok(None);
        }
        let Some(pattern) = self.instance_pattern(source) else {
            return Ok(None);
        };
        discovery.asked.store(true, Ordering::Relaxed);
        let limit = self.attempt_timeout(deadline);
        let instances = match tokio::time::timeout(limit, conn.read_topology()).await {
            Err(_) => return Err(ServerError::Timeout(limit)),
            Ok(Err(ServerError::Query { code, message, .. })) => {
                if code == sqlstate::UNDEFINED_FUNCTION {
                    discovery.not_offered.store(true, Ordering::Relaxed);
                    info!(host = %conn.host(), "the database has no aurora_replica_status(), so PGWARM_INSTANCE_HOST_PATTERN finds no instances (`off` stops asking)");
                } else {
                    debug!(%code, %message, "could not read the cluster's topology");
                }
                return Ok(None);
            }
            Ok(read) => read?,
        };
        let hosts: Vec<(String, bool)> = instances
            .iter()
            .filter_map(|i| Some((instance_host(&pattern, &i.id)?, i.writer)))
            .collect();
        let names: Vec<String> = hosts.iter().map(|(h, _)| h.clone()).collect();
        let writer = hosts.iter().find(|(_, w)| *w).map(|(h, _)| h.as_str());
        let port = candidate.creds.port;
        let index = self.hosts.learn(&names, writer, port, source);
        match occasion {
            Occasion::NotTheWriter => {
                info!(host = %conn.host(), writer = writer.unwrap_or("none"), "this server is not the writer; aurora_replica_status() names the writer's instance, tried next");
            }
            Occasion::FirstWriter => {
                info!(instances = %names.join(","), "aurora_replica_status() named the cluster's instances, tried when the writer's host is not the writer");
            }
        }
        Ok(index)
    }

    /// How instances are named: the pattern set, or one made from an Aurora cluster endpoint
    /// among the hosts the login goes to.
    fn instance_pattern(&self, source: &Credentials) -> Option<String> {
        let listed = self.hosts.listed_hosts().iter().map(|h| h.host.as_str());
        std::iter::once(source.host.as_str())
            .chain(listed)
            .find_map(|host| self.discovery.instance_hosts.pattern_for(host))
    }
}
