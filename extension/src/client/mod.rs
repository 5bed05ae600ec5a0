//! Client sessions: everything between a driver's socket and the pool — the login
//! ([`handshake`], with [`tls`] when the client asks for it), the relay of bytes and transaction
//! tracking ([`relay`]), the per-client event loop ([`session`]) and cancel-key mapping
//! ([`cancel`]); and what they tell the admin console ([`clients`], [`traffic`]).

pub(crate) mod cancel;
pub(crate) mod clients;
pub(crate) mod handshake;
pub(crate) mod invocation_end;
pub(crate) mod login_settings;
pub(crate) mod relay;
pub(crate) mod session;
pub(crate) mod statements;
pub(crate) mod tls;
pub(crate) mod traffic;

use crate::config::{Settings, Upstream};
use crate::pool::Pool;
use crate::protocol::scram::ScramVerifier;
use crate::stream::Stream;
use cancel::CancelRegistry;
use clients::{ClientIdentity, ClientList};
use handshake::Opened;
use invocation_end::InvocationEnds;
use login_settings::CheckedSettings;
use statements::KnownStatements;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tls::ClientTls;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use traffic::Traffic;

/// A client that has not finished logging in by then, besides waiting for the pool, is dropped,
/// so idle sockets cannot hold client slots (PostgreSQL's authentication_timeout is 60 s; Lambda
/// handlers are quicker).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);

/// What every session shares.
pub(crate) struct Shared {
    pub settings: Settings,
    pub pool: Arc<Pool>,
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

impl Shared {
    pub(crate) fn new(
        settings: Settings,
        pool: Arc<Pool>,
        client_tls: Option<ClientTls>,
    ) -> Shared {
        let verifier = settings
            .client_password
            .as_ref()
            .map(|p| ScramVerifier::new(p.expose()));
        Shared {
            settings,
            pool,
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

impl Shared {
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

/// A client that logged in to the admin console, for the admin module to serve.
pub(crate) struct AdminClient {
    pub stream: Stream,
    pub user: String,
}

/// Serves one client connection from login to close; a client of the admin console is handed
/// back once it has logged in.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    over_limit: bool,
) -> Option<AdminClient> {
    let _ = tcp.set_nodelay(true);
    // A login may wait for the pool (the server parameters, a startup setting to check, the
    // session-mode connection), bounded by PGWARM_QUERY_WAIT_TIMEOUT on its own.
    let limit = LOGIN_TIMEOUT + shared.settings.query_wait_timeout;
    let opening = tokio::time::timeout(limit, handshake::open(tcp, &shared, over_limit));
    let login = tokio::select! {
        login = opening => login,
        () = shared.shutdown.cancelled() => return None,
    };
    let (stream, login) = match login {
        Ok(Ok(Some((stream, Opened::Pool(login))))) => (stream, login),
        Ok(Ok(Some((stream, Opened::Admin { user })))) => {
            return Some(AdminClient { stream, user })
        }
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "client left during login");
            return None;
        }
        Err(_) => {
            debug!(%peer, "client did not finish logging in within {limit:?}");
            return None;
        }
    };
    let pid = login.key.pid();
    debug!(%peer, client = pid, user = %login.user, "session starts");
    let listed = shared.clients.register(
        ClientIdentity {
            id: pid,
            user: login.user,
            database: login.database,
            addr: peer,
            tls: stream.is_tls(),
            application_name: login.application_name,
        },
        &shared.shutdown,
    );
    session::Session::new(&shared, stream, login.key, login.settings, listed)
        .run(login.server)
        .await;
    debug!(client = pid, "session ends");
    None
}
