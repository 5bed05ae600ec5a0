//! A client's login: the startup packet (TLS when the client asks for it or opens with a TLS
//! handshake, 'N' to GSSENCRequest, CancelRequest forwarded), the checks PostgreSQL itself would
//! make (user, database), optional SCRAM-SHA-256 against `PGWARM_CLIENT_PASSWORD`, and the
//! welcome: AuthenticationOk, the server's ParameterStatus set, a synthetic BackendKeyData and
//! ReadyForQuery. A login to the admin console's database (`pgwarm`, `pgbouncer`) gets its own,
//! shorter welcome and is handed back for the `admin` module to serve. Every refusal is counted
//! (`Traffic`) and logged as a WARN.
//!
//! Every write is flushed before the next read: over TLS, rustls may still hold it otherwise.
//!
//! No server connection is tied to a client here (but in session mode): the pool lends one per
//! transaction later.

use super::cancel::CancelKey;
use super::tls::starts_direct_tls;
use super::traffic::ErrorCause;
use super::{Port, SessionContext};
use crate::config::{ClientTlsMode, PoolMode, Upstream};
use crate::pool::Checkout;
use crate::protocol::backend::TxStatus;
use crate::protocol::scram::{ScramError, ScramServer};
use crate::protocol::startup::{self, StartupError, StartupPacket};
use crate::protocol::{backend, sqlstate, PgError};
use crate::server::{self, SessionSettings};
use crate::stream::Stream;
use bytes::BytesMut;
use postgres_protocol::authentication::sasl::SCRAM_SHA_256;
use std::io;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

/// The names of the admin console's database: pgwarm's own, and PgBouncer's for the tools and
/// habits made for it (pgbouncer_exporter, `psql -d pgbouncer`).
pub(crate) const ADMIN_DATABASES: [&str; 2] = ["pgwarm", "pgbouncer"];

/// What a client logged in to. Moved once, from the login to its session.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Opened {
    /// The pooled database.
    Pool(Login),
    /// The admin console.
    Admin { user: String },
}

/// A client that logged in to the pool.
pub(crate) struct Login {
    pub(crate) user: String,
    pub(crate) database: String,
    pub(crate) application_name: String,
    pub(crate) key: CancelKey,
    /// What the client's startup packet asked for, in the database's spelling, applied to every
    /// server connection it uses.
    pub(crate) settings: SessionSettings,
    /// Session mode: the client's server connection, taken at login.
    pub(crate) server: Option<Checkout>,
}

/// Why a login did not admit the client.
#[derive(Debug, Error)]
enum LoginError {
    /// The socket failed: nothing more can be said to the client.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The client is refused with this error, counted under this cause.
    #[error("{}", .0.message)]
    Refused(PgError, ErrorCause),
}

impl From<PgError> for LoginError {
    fn from(error: PgError) -> LoginError {
        let cause = ErrorCause::of(&error.code);
        LoginError::Refused(error, cause)
    }
}

/// Runs the login, and returns the client's socket (TLS or not) with what it logged in as.
/// `Ok(None)` means the connection ended as it should (a cancel request, or a refusal already
/// sent to the client).
pub(crate) async fn open(
    tcp: TcpStream,
    shared: &SessionContext,
    over_limit: bool,
    port: Port,
) -> io::Result<Option<(Stream, Opened)>> {
    let loopback = is_loopback(tcp.peer_addr()?.ip());
    let (mut stream, opening) = read_startup(tcp, shared).await?;
    let refused = match opening {
        Opening::Startup { minor, params } => {
            let startup = Startup {
                minor,
                params,
                loopback,
                over_limit,
                port,
            };
            match login(shared, &mut stream, startup).await {
                Ok(opened) => return Ok(Some((stream, opened))),
                Err(LoginError::Io(e)) => return Err(e),
                Err(LoginError::Refused(error, cause)) => (error, cause),
            }
        }
        Opening::Cancel { pid, secret } => {
            forward_cancel(shared, pid, secret).await;
            // A cancel gets no answer, but over TLS the end must be a close_notify, as from the
            // postmaster: OpenSSL 3 reports a bare EOF as an error, and the driver raises.
            stream.shutdown().await?;
            return Ok(None);
        }
        Opening::Refused(error) => {
            let cause = ErrorCause::of(&error.code);
            (error, cause)
        }
    };
    let (error, cause) = refused;
    refuse(shared, &mut stream, &error, cause).await?;
    Ok(None)
}

/// A StartupMessage and what pgwarm knows of its connection.
struct Startup {
    minor: u16,
    params: Vec<(String, String)>,
    loopback: bool,
    /// The connection is over `PGWARM_MAX_CLIENT_CONN`.
    over_limit: bool,
    /// The listener it came in on.
    port: Port,
}

impl Startup {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The checks PostgreSQL would make, in its order, then the welcome: admitted to the pool or
/// to the admin console, or one error for the client.
async fn login(
    shared: &SessionContext,
    stream: &mut Stream,
    startup: Startup,
) -> Result<Opened, LoginError> {
    if shared.settings.client_tls.mode == ClientTlsMode::Require && !stream.is_tls() {
        let error = PgError::invalid_authorization(
            "pgwarm accepts TLS connections only (PGWARM_CLIENT_TLS=require)",
        )
        .with_hint("Connect with sslmode=require.");
        return Err(error.into());
    }
    if startup.over_limit {
        let error = PgError::fatal(
            sqlstate::TOO_MANY_CONNECTIONS,
            format!(
                "sorry, too many clients already (PGWARM_MAX_CLIENT_CONN={})",
                shared.settings.max_client_conn
            ),
        );
        // pgwarm's own limit, not the database's 53300.
        return Err(LoginError::Refused(error, ErrorCause::LoginRefused));
    }
    let mut out = BytesMut::with_capacity(1024);
    let unsupported: Vec<&str> = startup
        .params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("_pq_."))
        .collect();
    if startup.minor > 0 || !unsupported.is_empty() {
        backend::negotiate_protocol_version(&mut out, 0, &unsupported);
    }
    let Some(user) = startup.param("user").filter(|u| !u.is_empty()) else {
        let error =
            PgError::invalid_authorization("no PostgreSQL user name specified in startup packet");
        return Err(error.into());
    };
    let user = user.to_owned();
    if startup
        .param("replication")
        .is_some_and(|r| r != "false" && r != "0" && r != "off")
    {
        return Err(PgError::fatal(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "pgwarm does not pool replication connections; connect to the database directly",
        )
        .into());
    }
    let database = startup
        .param("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&user)
        .to_owned();
    if ADMIN_DATABASES.contains(&database.as_str()) {
        return open_admin(shared, stream, out, startup.loopback, user).await;
    }
    check_database(shared, &database).await?;
    let pool = shared.pool_for(startup.port);
    if let Some(verifier) = &shared.verifier {
        authenticate(stream, &mut out, verifier, &user).await?;
    }
    let server_params = pool.server_params().await.map_err(|e| e.to_client())?;
    // Behind another pooler pgwarm carries no session settings (see session.rs), so the
    // client is told the server's values rather than promised its own.
    let wanted = match shared.settings.upstream {
        Upstream::Database => startup::session_settings(&startup.params),
        Upstream::Pooler => Vec::new(),
    };
    let settings = shared.checked_settings.check(pool, wanted).await?;
    // In session mode the client owns one backend for its life: it is taken now, so the pid
    // the client is told is that backend's (pg_backend_pid(), pg_terminate_backend(), a
    // notification's sender all agree). The cancel secret stays pgwarm's own.
    let server = match shared.settings.pool_mode {
        PoolMode::Session => Some(pool.checkout().await.map_err(|e| e.to_client())?),
        PoolMode::Transaction => None,
    };
    let key = shared
        .cancels
        .register_as(server.as_ref().map(|s| s.cancel_target().pid));
    welcome(&mut out, &server_params, &settings, &key);
    send(stream, &out).await?;
    debug!(client = key.pid(), user = %user, tls = stream.is_tls(), "client logged in");
    shared.traffic.logins.add(1);
    Ok(Opened::Pool(Login {
        user,
        database,
        application_name: startup
            .param("application_name")
            .unwrap_or_default()
            .to_owned(),
        key,
        settings,
        server,
    }))
}

/// AuthenticationOk, the server's parameters with the values the client asked for (as the
/// database spells them: they are what its queries will run with), its key and ReadyForQuery.
fn welcome(
    out: &mut BytesMut,
    server_params: &[(String, String)],
    settings: &SessionSettings,
    key: &CancelKey,
) {
    backend::authentication_ok(out);
    for (name, value) in server_params {
        let value = settings.get(name).unwrap_or(value);
        backend::parameter_status(out, name, value);
    }
    backend::backend_key_data(out, key.pid(), key.secret());
    backend::ready_for_query(out, TxStatus::Idle);
}

/// The client must name the database pgwarm serves: any other gets FATAL 3D000, as from a
/// server that does not have it.
async fn check_database(shared: &SessionContext, database: &str) -> Result<(), LoginError> {
    let target_db = match shared.pool.credentials().credentials().await {
        Ok(creds) => creds.dbname,
        Err(e) => return Err(PgError::connection_failure(e.to_string()).into()),
    };
    if database == target_db {
        return Ok(());
    }
    let error = PgError::fatal(
        sqlstate::INVALID_CATALOG_NAME,
        format!("database \"{database}\" does not exist"),
    )
    .with_detail(format!("pgwarm serves the database \"{target_db}\" only."));
    Err(error.into())
}

/// Whether a client connects from this machine. A dual-stack listener (`[::]`) sees an IPv4
/// client as `::ffff:127.0.0.1`, which is loopback too.
fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The admin console's login: loopback clients only, with the client password when one is
/// set. It needs no database: the welcome carries the database's parameters when pgwarm knows
/// them, and its own version otherwise.
async fn open_admin(
    shared: &SessionContext,
    stream: &mut Stream,
    mut out: BytesMut,
    loopback: bool,
    user: String,
) -> Result<Opened, LoginError> {
    if !loopback {
        let error = PgError::invalid_authorization(
            "the pgwarm admin console takes loopback connections only",
        );
        return Err(error.into());
    }
    if let Some(verifier) = &shared.verifier {
        authenticate(stream, &mut out, verifier, &user).await?;
    }
    backend::authentication_ok(&mut out);
    let version = format!("{}/pgwarm", env!("CARGO_PKG_VERSION"));
    let known = shared.pool.known_params();
    let fallbacks = [
        ("server_version", version.as_str()),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
    ];
    for (name, fallback) in fallbacks {
        let from_database = known
            .as_ref()
            .and_then(|p| p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()));
        backend::parameter_status(&mut out, name, from_database.unwrap_or(fallback));
    }
    backend::parameter_status(&mut out, "application_name", "");
    backend::parameter_status(&mut out, "standard_conforming_strings", "on");
    backend::parameter_status(&mut out, "integer_datetimes", "on");
    backend::ready_for_query(&mut out, TxStatus::Idle);
    send(stream, &out).await?;
    info!(user = %user, "admin console login");
    Ok(Opened::Admin { user })
}

enum Opening {
    Startup {
        minor: u16,
        params: Vec<(String, String)>,
    },
    Cancel {
        pid: i32,
        secret: i32,
    },
    Refused(PgError),
}

/// Reads startup packets until a StartupMessage or CancelRequest. Encryption comes first: a
/// TLS handshake straight away (direct TLS), or SSLRequest answered 'S' (TLS offered) or 'N';
/// GSSENCRequest is always answered 'N'. Each may be asked once, in libpq's order.
async fn read_startup(tcp: TcpStream, shared: &SessionContext) -> io::Result<(Stream, Opening)> {
    let tls = shared.client_tls.as_ref();
    let mut stream = match tls {
        Some(tls) if opens_with_tls(&tcp).await? => match tls.accept_direct(tcp).await {
            Ok(stream) => stream,
            Err(e) => {
                info!(error = %e, "client's direct TLS handshake failed");
                return Err(e);
            }
        },
        _ => Stream::Plain(tcp),
    };
    let (mut ssl_asked, mut gss_asked) = (stream.is_tls(), false);
    // TLS was asked for and refused ('N'): a client that then leaves required it.
    let mut told_no_tls = false;
    loop {
        let len = match stream.read_u32().await {
            Ok(len) => len as usize,
            Err(e) => {
                if told_no_tls && e.kind() == io::ErrorKind::UnexpectedEof {
                    info!("a client asked for TLS, was told no, and left: a client that requires TLS (sslmode=require or stricter) needs PGWARM_CLIENT_TLS=on");
                }
                return Err(e);
            }
        };
        if let Err(e) = startup::check_len(len) {
            return Ok((stream, Opening::Refused(protocol_error(e))));
        }
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).await?;
        let packet = match startup::parse(&body) {
            Ok(packet) => packet,
            Err(e) => return Ok((stream, Opening::Refused(protocol_error(e)))),
        };
        match packet {
            StartupPacket::SslRequest if !ssl_asked => {
                ssl_asked = true;
                stream = match (stream, tls) {
                    (Stream::Plain(tcp), Some(tls)) => start_tls(tcp, tls).await?,
                    (mut stream, _) => {
                        send(&mut stream, b"N").await?;
                        told_no_tls = true;
                        stream
                    }
                };
            }
            StartupPacket::GssEncRequest if !gss_asked && !stream.is_tls() => {
                gss_asked = true;
                send(&mut stream, b"N").await?;
            }
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                let error = PgError::protocol_violation(
                    "encryption was already negotiated on this connection",
                );
                return Ok((stream, Opening::Refused(error)));
            }
            StartupPacket::Cancel { pid, secret } => {
                return Ok((stream, Opening::Cancel { pid, secret }))
            }
            StartupPacket::Startup { minor, params } => {
                return Ok((stream, Opening::Startup { minor, params }))
            }
        }
    }
}

/// Whether the client's first byte opens a TLS handshake; waits for it without consuming it.
async fn opens_with_tls(tcp: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    Ok(tcp.peek(&mut first).await? == 1 && starts_direct_tls(first[0]))
}

/// Answers 'S' and runs the TLS handshake. The SSLRequest was read to its last byte from the
/// unbuffered socket, so anything a client (or an attacker on the path) sent after it goes to
/// the TLS parser, never into the startup packet (CVE-2021-23222's lesson, from the other side).
async fn start_tls(mut tcp: TcpStream, tls: &super::tls::ClientTls) -> io::Result<Stream> {
    tcp.write_all(b"S").await?;
    tls.accept(tcp).await.inspect_err(|e| {
        info!(error = %e, "client's TLS handshake failed: a client that checks pgwarm's certificate (sslmode=verify-ca or verify-full) needs one it trusts, in PGWARM_CLIENT_TLS_CERT and PGWARM_CLIENT_TLS_KEY");
    })
}

fn protocol_error(e: StartupError) -> PgError {
    PgError::protocol_violation(e.to_string())
}

/// Forwards a cancel to the server connection the named client holds, if any. The protocol gives
/// the canceller no answer either way.
async fn forward_cancel(shared: &SessionContext, pid: i32, secret: i32) {
    let Some((target, _in_flight)) = shared.cancels.lookup(pid, secret) else {
        debug!(
            client = pid,
            "cancel request for a client that holds no server connection"
        );
        return;
    };
    let traffic = &shared.traffic;
    traffic.cancels.add(1);
    traffic
        .cancels_now
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let sent =
        server::send_cancel(&target, shared.pool.tls(), shared.settings.connect_timeout).await;
    traffic
        .cancels_now
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    match sent {
        Ok(()) => info!(
            client = pid,
            backend = target.pid,
            "forwarded cancel request"
        ),
        Err(e) => info!(client = pid, error = %e, "could not forward cancel request"),
    }
}

/// SCRAM-SHA-256 against the configured client password; its final message is left in `out`,
/// to go with the welcome.
async fn authenticate(
    stream: &mut Stream,
    out: &mut BytesMut,
    verifier: &crate::protocol::scram::ScramVerifier,
    user: &str,
) -> Result<(), LoginError> {
    backend::authentication_sasl(out, &[SCRAM_SHA_256]);
    send(stream, out).await?;
    out.clear();
    let mut exchange = ScramServer::new(verifier);

    let result = async {
        let initial = read_password_message(stream).await?;
        let (mechanism, data) = split_initial_response(&initial)
            .ok_or(ScramError::Protocol("malformed SASLInitialResponse"))
            .map_err(AuthFailure::Scram)?;
        let server_first = exchange
            .client_first(mechanism, data)
            .map_err(AuthFailure::Scram)?;
        let mut msg = BytesMut::new();
        backend::authentication_sasl_continue(&mut msg, &server_first);
        send(stream, &msg).await.map_err(AuthFailure::Io)?;
        let client_final = read_password_message(stream).await?;
        exchange
            .client_final(&client_final)
            .map_err(AuthFailure::Scram)
    }
    .await;

    match result {
        Ok(server_final) => {
            backend::authentication_sasl_final(out, &server_final);
            Ok(())
        }
        Err(AuthFailure::Io(e)) => Err(e.into()),
        Err(AuthFailure::Refused(error)) => Err(error.into()),
        Err(AuthFailure::Scram(ScramError::WrongPassword)) => {
            info!(user = %user, "client password authentication failed");
            Err(PgError::fatal(
                sqlstate::INVALID_PASSWORD,
                format!("password authentication failed for user \"{user}\""),
            )
            .into())
        }
        Err(AuthFailure::Scram(e)) => Err(PgError::protocol_violation(e.to_string()).into()),
    }
}

enum AuthFailure {
    Io(io::Error),
    Scram(ScramError),
    Refused(PgError),
}

/// Reads one 'p' message (SASLInitialResponse or SASLResponse) during authentication.
async fn read_password_message(stream: &mut Stream) -> Result<Vec<u8>, AuthFailure> {
    let tag = stream.read_u8().await.map_err(AuthFailure::Io)?;
    let len = stream.read_u32().await.map_err(AuthFailure::Io)? as usize;
    if tag != b'p' {
        return Err(AuthFailure::Refused(PgError::protocol_violation(format!(
            "expected a SASL response, got message type 0x{tag:02x}"
        ))));
    }
    if !(4..=startup::MAX_STARTUP_LEN).contains(&len) {
        return Err(AuthFailure::Refused(PgError::protocol_violation(format!(
            "invalid SASL response length {len}"
        ))));
    }
    let mut body = vec![0u8; len - 4];
    stream
        .read_exact(&mut body)
        .await
        .map_err(AuthFailure::Io)?;
    Ok(body)
}

/// SASLInitialResponse: mechanism name (C string), then a length-prefixed initial response.
fn split_initial_response(body: &[u8]) -> Option<(&str, &[u8])> {
    let nul = body.iter().position(|b| *b == 0)?;
    let mechanism = std::str::from_utf8(&body[..nul]).ok()?;
    let rest = &body[nul + 1..];
    let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let data = &rest[4..];
    if len < 0 || len as usize != data.len() {
        return None;
    }
    Some((mechanism, data))
}

/// Writes and flushes: over TLS, rustls may hold the bytes until flushed.
async fn send(stream: &mut Stream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Sends a FATAL to a client that is not logged in, counted under `cause`; the caller then
/// closes the socket. Over TLS it also sends close_notify, as a PostgreSQL backend does, so the
/// client reads the error and a clean end rather than a truncated stream.
async fn refuse(
    shared: &SessionContext,
    stream: &mut Stream,
    error: &PgError,
    cause: ErrorCause,
) -> io::Result<()> {
    warn!(code = %error.code, "refused client: {}", error.message);
    shared.traffic.refused.add(1);
    shared.traffic.count_error(cause);
    let mut out = BytesMut::new();
    error.encode(&mut out);
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_loopback() {
        for ip in ["127.0.0.1", "127.8.0.2", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.5", "::ffff:10.0.0.5", "fe80::1", "0.0.0.0"] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn splits_a_sasl_initial_response() {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&5i32.to_be_bytes());
        body.extend_from_slice(b"n,,xy");
        assert_eq!(
            split_initial_response(&body),
            Some(("SCRAM-SHA-256", &b"n,,xy"[..]))
        );
        body.push(b'z');
        assert_eq!(split_initial_response(&body), None);
        assert_eq!(split_initial_response(b"SCRAM"), None);
    }
}
