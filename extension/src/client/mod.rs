//! Client sessions: everything between a driver's socket and the pool — the login
//! ([`handshake`], with [`tls`] when the client asks for it), the relay of bytes and transaction
//! tracking ([`relay`]), the per-client event loop ([`session`]) and what stops it from outside
//! ([`stop`]), and cancel-key mapping ([`cancel`]); and what they tell the admin console
//! ([`clients`], [`traffic`]). What every session shares is one [`SessionContext`].

pub(crate) mod cancel;
pub(crate) mod clients;
mod context;
pub(crate) mod handshake;
pub(crate) mod invocation_end;
pub(crate) mod login_settings;
pub(crate) mod relay;
pub(crate) mod session;
pub(crate) mod session_sql;
pub(crate) mod statements;
mod stop;
pub(crate) mod tls;
pub(crate) mod traffic;

pub(crate) use context::{Port, SessionContext};

use crate::stream::Stream;
use clients::ClientIdentity;
use handshake::Opened;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tracing::debug;

/// A client that has not finished logging in by then, besides waiting for the pool, is dropped,
/// so idle sockets cannot hold client slots (PostgreSQL's authentication_timeout is 60 s; Lambda
/// handlers are quicker).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);

/// A client that logged in to the admin console, for the admin module to serve.
pub(crate) struct AdminClient {
    pub stream: Stream,
    pub user: String,
}

/// Serves one client connection from login to close; a client of the admin console is handed
/// back once it has logged in.
pub(crate) async fn serve(
    shared: Arc<SessionContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    over_limit: bool,
    port: Port,
) -> Option<AdminClient> {
    let _ = tcp.set_nodelay(true);
    // A login may wait for the pool (the server parameters, a startup setting to check, the
    // session-mode connection), bounded by PGWARM_QUERY_WAIT_TIMEOUT on its own.
    let limit = LOGIN_TIMEOUT + shared.settings.query_wait_timeout;
    let opening = tokio::time::timeout(limit, handshake::open(tcp, &shared, over_limit, port));
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
            port,
        },
        &shared.shutdown,
    );
    let pool = Arc::clone(shared.pool_for(port));
    session::Session::new(&shared, pool, stream, login.key, login.settings, listed)
        .run(login.server)
        .await;
    debug!(client = pid, "session ends");
    None
}
