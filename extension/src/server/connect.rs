//! Opening a server connection: TCP, then the startup packet and whatever authentication the
//! database asks for (trust, cleartext, md5 or SCRAM-SHA-256), then ParameterStatus and
//! BackendKeyData until the first ReadyForQuery.

use super::{CancelTarget, ServerConn, ServerError, TlsSetup};
use crate::credentials::Credentials;
use crate::protocol::error::ServerReport;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Connects and logs in, all within `timeout`. `options` is the startup packet's `options`
/// (command-line settings such as `-c idle_session_timeout=60000`), if any.
pub(crate) async fn connect(
    creds: &Credentials,
    tls: &TlsSetup,
    application_name: &str,
    options: Option<&str>,
    id: u64,
    timeout: Duration,
) -> Result<ServerConn, ServerError> {
    tokio::time::timeout(
        timeout,
        connect_inner(creds, tls, application_name, options, id),
    )
    .await
    .map_err(|_| ServerError::Timeout(timeout))?
}

async fn connect_inner(
    creds: &Credentials,
    tls: &TlsSetup,
    application_name: &str,
    options: Option<&str>,
    id: u64,
) -> Result<ServerConn, ServerError> {
    let addr = format!("{}:{}", creds.host, creds.port);
    let stream = TcpStream::connect((creds.host.as_str(), creds.port))
        .await
        .map_err(|source| ServerError::Connect {
            addr: addr.clone(),
            source,
        })?;
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    let local = stream.local_addr().ok();
    let stream = tls.negotiate(stream, &creds.host).await?;
    let cancel = match stream.is_tls() {
        true => CancelTarget::new(peer, 0, 0).with_tls_host(&creds.host),
        false => CancelTarget::new(peer, 0, 0),
    };
    let now = Instant::now();
    let mut conn = ServerConn {
        stream,
        rbuf: BytesMut::with_capacity(4096),
        cancel,
        local,
        params: Vec::new(),
        id,
        created: now,
        last_used: now,
        prepared: super::PreparedSet::default(),
        session: super::SessionSettings::default(),
        host: Arc::from(creds.host.as_str()),
        role: None,
        fallback: false,
        keep_async: false,
        kept: BytesMut::new(),
    };

    let mut out = BytesMut::with_capacity(256);
    let params = [
        ("user", creds.user.as_str()),
        ("database", creds.dbname.as_str()),
        ("application_name", application_name),
        ("client_encoding", "UTF8"),
    ];
    let options = options.map(|o| ("options", o));
    frontend::startup_message(params.into_iter().chain(options), &mut out)?;
    conn.write_buf(&mut out).await?;
    authenticate(&mut conn, creds, &mut out).await?;

    loop {
        match conn.read_message().await? {
            Message::ParameterStatus(body) => {
                let name = body.name().map_err(protocol)?.to_owned();
                let value = body.value().map_err(protocol)?.to_owned();
                conn.params.push((name, value));
            }
            Message::BackendKeyData(body) => {
                conn.cancel.pid = body.process_id();
                conn.cancel.secret = body.secret_key();
            }
            Message::ReadyForQuery(_) => return Ok(conn),
            Message::ErrorResponse(body) => return Err(rejected(&body)),
            Message::NoticeResponse(_) => {}
            _ => {
                return Err(ServerError::Protocol(
                    "unexpected message during login".into(),
                ))
            }
        }
    }
}

async fn authenticate(
    conn: &mut ServerConn,
    creds: &Credentials,
    out: &mut BytesMut,
) -> Result<(), ServerError> {
    let password = || {
        creds
            .password
            .as_ref()
            .map(|p| p.expose().as_bytes())
            .ok_or(ServerError::NoPassword)
    };
    let mut scram: Option<ScramSha256> = None;
    loop {
        match conn.read_message().await? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password()?, out)?;
                conn.write_buf(out).await?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(creds.user.as_bytes(), password()?, body.salt());
                frontend::password_message(hash.as_bytes(), out)?;
                conn.write_buf(out).await?;
            }
            Message::AuthenticationSasl(body) => {
                let mut offered = Vec::new();
                let mut mechanisms = body.mechanisms();
                while let Some(m) = mechanisms.next().map_err(protocol)? {
                    offered.push(m.to_owned());
                }
                if !offered.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(ServerError::UnsupportedAuth(offered.join(", ")));
                }
                // Channel binding (tls-server-end-point) is not offered; PostgreSQL accepts
                // SCRAM without it unless the client insists.
                let exchange = ScramSha256::new(password()?, ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, exchange.message(), out)?;
                conn.write_buf(out).await?;
                scram = Some(exchange);
            }
            Message::AuthenticationSaslContinue(body) => {
                let exchange = scram
                    .as_mut()
                    .ok_or_else(|| ServerError::Protocol("SASL continue before start".into()))?;
                exchange.update(body.data()).map_err(protocol)?;
                frontend::sasl_response(exchange.message(), out)?;
                conn.write_buf(out).await?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let exchange = scram
                    .as_mut()
                    .ok_or_else(|| ServerError::Protocol("SASL final before start".into()))?;
                exchange.finish(body.data()).map_err(protocol)?;
            }
            Message::ErrorResponse(body) => return Err(rejected(&body)),
            Message::AuthenticationGss
            | Message::AuthenticationKerberosV5
            | Message::AuthenticationSspi
            | Message::AuthenticationScmCredential
            | Message::AuthenticationGssContinue(_) => {
                return Err(ServerError::UnsupportedAuth("GSSAPI/SSPI/Kerberos".into()))
            }
            _ => {
                return Err(ServerError::Protocol(
                    "unexpected message during authentication".into(),
                ))
            }
        }
    }
}

fn rejected(body: &postgres_protocol::message::backend::ErrorResponseBody) -> ServerError {
    let ServerReport { code, message, .. } = ServerReport::of(body);
    ServerError::Rejected { code, message }
}

fn protocol(e: std::io::Error) -> ServerError {
    ServerError::Protocol(e.to_string())
}
