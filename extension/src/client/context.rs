//! What every session shares, made once at start-up: the settings, the pool, the cancel keys,
//! the statements known to parse, the startup settings the database accepted, the list of clients
//! and their traffic. The admin console, the metrics and the Lambda loop read the same value.

use super::cancel::CancelRegistry;
use super::clients::ClientList;
use super::invocation_end::InvocationEnds;
use super::login_settings::CheckedSettings;
use super::statements::KnownStatements;
use super::tls::ClientTls;
use super::traffic::Traffic;
use crate::config::{Settings, Upstream};
use crate::pool::Pool;
use crate::protocol::scram::ScramVerifier;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Which listener a client came in on: its server connections come from that port's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    /// `PGWARM_LISTEN`: the writer's pool.
    Writer,
    /// `PGWARM_READER_LISTEN`: the replicas' pool.
    Reader,
}

/// What every session shares.
pub(crate) struct SessionContext {
    pub settings: Settings,
    /// The writer's pool, and the reader port's when there is one.
    pub pool: Arc<Pool>,
    pub(crate) reader: Option<Arc<Pool>>,
    pub(crate) cancels: Arc<CancelRegistry>,
    /// Present when `PGWARM_CLIENT_PASSWORD` is set.
    pub(crate) verifier: Option<ScramVerifier>,
    /// Statements some server connection parsed successfully.
    pub(crate) known_statements: Arc<KnownStatements>,
    /// Startup settings the database accepted, in its spelling.
    pub(crate) checked_settings: CheckedSettings,
    /// pgwarm statements found missing or already there on a server connection.
    statement_repairs: AtomicU64,
    /// None when `PGWARM_CLIENT_TLS=off`.
    pub(crate) client_tls: Option<ClientTls>,
    /// Cancelled when pgwarm stops: every session closes its client and server connection.
    pub(crate) shutdown: CancellationToken,
    /// The logged-in clients, for the admin console.
    pub(crate) clients: Arc<ClientList>,
    /// What they did.
    pub traffic: Arc<Traffic>,
    /// Client connections open now, logged in or not (the listener counts them).
    pub(crate) connections: Arc<AtomicUsize>,
    /// When the latest Lambda invocation ended: what its transactions left open are ended.
    pub(crate) invocation_ends: InvocationEnds,
}

impl SessionContext {
    pub(crate) fn new(
        settings: Settings,
        pool: Arc<Pool>,
        reader: Option<Arc<Pool>>,
        client_tls: Option<ClientTls>,
    ) -> SessionContext {
        let verifier = settings
            .client_password
            .as_ref()
            .map(|p| ScramVerifier::new(p.expose()));
        SessionContext {
            settings,
            pool,
            reader,
            cancels: CancelRegistry::new(),
            verifier,
            known_statements: Arc::default(),
            checked_settings: CheckedSettings::default(),
            statement_repairs: AtomicU64::new(0),
            client_tls,
            shutdown: CancellationToken::new(),
            clients: Arc::default(),
            traffic: Arc::default(),
            connections: Arc::default(),
            invocation_ends: InvocationEnds::default(),
        }
    }
}

impl SessionContext {
    /// The pool of the port a client came in on.
    pub(crate) fn pool_for(&self, port: Port) -> &Arc<Pool> {
        match (port, &self.reader) {
            (Port::Reader, Some(reader)) => reader,
            _ => &self.pool,
        }
    }

    /// Every pool: what the Lambda lifecycle and the stop do, they do to each.
    pub(crate) fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        std::iter::once(&self.pool).chain(&self.reader)
    }

    /// The Lambda invocation's deadline bounds no pool's waits any more: its runtime is done, or
    /// pgwarm is about to ask for the next event, which may reach the handler first.
    pub(crate) fn invocation_deadline_over(&self) {
        for pool in self.pools() {
            pool.invocation_ended();
        }
    }

    /// Client connections open now, logged in or not.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// A pgwarm statement was missing on its server connection, or there when pgwarm was
    /// creating it, and was repaired. Now and then is someone's DEALLOCATE ALL; often means a
    /// transaction pooler between pgwarm and the database, which should be said once.
    pub(crate) fn statement_repaired(&self) {
        const OFTEN: u64 = 3;
        let n = self.statement_repairs.fetch_add(1, Ordering::Relaxed) + 1;
        if n == OFTEN && self.settings.upstream == Upstream::Database {
            warn!(
                repairs = n,
                "pgwarm's prepared statements keep disappearing from its server connections; if a \
                 transaction pooler (PgBouncer, RDS Proxy) is between pgwarm and the database, set \
                 PGWARM_UPSTREAM_POOLER=on"
            );
        }
    }
}
