//! One backend connection: its socket, the identity the database gave it (BackendKeyData,
//! ParameterStatus), and the few round trips pgwarm runs on it by itself (health check,
//! ROLLBACK, reset query, Terminate).
//!
//! The relay in `client` borrows the socket directly while a client is linked; everything here
//! runs only while no client is.

mod cleanup;
mod connect;
mod error;
pub(crate) mod prepared;
mod role;
pub(crate) mod session_settings;
mod session_state;
pub(crate) mod tls;
mod topology;

pub(crate) use cleanup::Cleanup;
pub(crate) use connect::connect;
pub(crate) use error::ServerError;
pub(crate) use prepared::{Digest, PreparedCounters, PreparedSet, Presence};
pub(crate) use role::Role;
pub(crate) use session_settings::SessionSettings;
pub(crate) use tls::TlsSetup;

use crate::protocol::backend::TxStatus;
use crate::protocol::error::ServerReport;
use crate::protocol::framing;
use crate::stream::Stream;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Where and with which key a CancelRequest for this server connection must be sent, and how
/// many cancels are on their way to it.
#[derive(Debug, Clone)]
pub(crate) struct CancelTarget {
    pub(crate) addr: SocketAddr,
    pub(crate) pid: i32,
    pub(crate) secret: i32,
    /// The host name the connection verified its TLS certificate against, when it is encrypted:
    /// the cancel goes encrypted too (as libpq 17 sends it), so the key never crosses the
    /// network in clear.
    tls_host: Option<Arc<str>>,
    /// A connection with a cancel in flight must not be lent to another client: the cancel
    /// could land on that client's query.
    in_flight: Arc<AtomicUsize>,
}

impl PartialEq for CancelTarget {
    fn eq(&self, other: &CancelTarget) -> bool {
        (self.addr, self.pid, self.secret) == (other.addr, other.pid, other.secret)
    }
}

impl CancelTarget {
    pub(crate) fn new(addr: SocketAddr, pid: i32, secret: i32) -> CancelTarget {
        CancelTarget {
            addr,
            pid,
            secret,
            tls_host: None,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Marks the target as reached over TLS, verified for `host`.
    pub(crate) fn with_tls_host(mut self, host: &str) -> CancelTarget {
        self.tls_host = Some(Arc::from(host));
        self
    }

    /// Cancels on their way to this backend now.
    pub(crate) fn in_flight_count(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts a cancel as under way until the returned guard is dropped.
    pub(crate) fn begin(&self) -> CancelInFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        CancelInFlight(Arc::clone(&self.in_flight))
    }
}

/// A cancel on its way to the database; see [`CancelTarget::begin`].
pub(crate) struct CancelInFlight(Arc<AtomicUsize>);

impl Drop for CancelInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The largest message pgwarm reads on its own exchanges (login, health checks, settings):
/// ParameterStatus values, errors, a few small rows. Clients' results never pass here.
const OWN_MESSAGE_LIMIT: usize = 1 << 20;

/// A logged-in backend connection.
pub(crate) struct ServerConn {
    stream: Stream,
    /// Read buffer for pgwarm's own round trips; always empty while a client is linked.
    rbuf: BytesMut,
    cancel: CancelTarget,
    /// pgwarm's end of the connection, read once at connect (the admin console shows it).
    local: Option<SocketAddr>,
    params: Vec<(String, String)>,
    id: u64,
    created: Instant,
    last_used: Instant,
    /// The pgwarm statements prepared on this connection (transaction mode).
    prepared: PreparedSet,
    /// The session settings pgwarm knows are in effect here (none after login).
    session: SessionSettings,
    /// The host name it was opened to (an entry of `PGWARM_DB_HOST`, or the secret's host);
    /// shared, as every row the admin console shows of it holds one.
    host: Arc<str>,
    /// What the server is, once read (`role.rs`).
    role: Option<Role>,
    /// Opened to the writer for the reader port, because no replica answered.
    fallback: bool,
    /// While true, notifications, notices and parameter reports met on pgwarm's own exchange
    /// are kept in `kept` for the linked client instead of dropped.
    keep_async: bool,
    kept: BytesMut,
}

impl ServerConn {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The host name it was opened to.
    pub(crate) fn host(&self) -> &Arc<str> {
        &self.host
    }

    /// It was opened to the writer for the reader port: it is retired soon, so that the
    /// replicas are tried again.
    pub(crate) fn mark_fallback(&mut self) {
        self.fallback = true;
    }

    pub(crate) fn is_fallback(&self) -> bool {
        self.fallback
    }

    pub(crate) fn cancel_target(&self) -> CancelTarget {
        self.cancel.clone()
    }

    /// Whether a CancelRequest for this connection is still being delivered.
    pub(crate) fn cancel_in_flight(&self) -> bool {
        self.cancel.in_flight.load(Ordering::SeqCst) > 0
    }

    /// The ParameterStatus values the database sent at login.
    pub(crate) fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// How long it has been logged in, at `now`. The clock is read by the caller, once for
    /// the several questions asked of a connection at each lend and return.
    pub(crate) fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// How long it has sat in the pool, at `now`.
    pub(crate) fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_used)
    }

    /// When it logged in, and when it was last given back to the pool.
    pub(crate) fn times(&self) -> (Instant, Instant) {
        (self.created, self.last_used)
    }

    /// It is given back to the pool at `now`.
    pub(crate) fn touch(&mut self, now: Instant) {
        self.last_used = now;
    }

    /// Whether the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The database's address and pgwarm's end of the connection.
    pub(crate) fn addrs(&self) -> (SocketAddr, Option<SocketAddr>) {
        (self.cancel.addr, self.local)
    }

    /// What its set of prepared statements did, readable while it is lent.
    pub(crate) fn prepared_counters(&self) -> &Arc<PreparedCounters> {
        self.prepared.counters()
    }

    /// The socket and the set of statements prepared on it, for the relay, which rewrites
    /// statement names as it forwards.
    pub(crate) fn link_parts(&mut self) -> (&mut Stream, &mut PreparedSet) {
        (&mut self.stream, &mut self.prepared)
    }

    /// Whether an idle connection has anything to say. An idle backend is silent; if the socket is
    /// readable it has been closed (EOF) or sent a FATAL (pg_terminate_backend, idle timeouts,
    /// a restart). This polls once without waiting and costs nothing when the socket is quiet.
    pub(crate) fn is_quiet(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }

    pub(crate) fn session_settings(&self) -> &SessionSettings {
        &self.session
    }

    pub(crate) fn session_settings_mut(&mut self) -> &mut SessionSettings {
        &mut self.session
    }

    pub(crate) fn set_session_settings(&mut self, settings: SessionSettings) {
        self.session = settings;
    }

    /// Runs `sql` as a simple query and waits for ReadyForQuery; an ErrorResponse is an error.
    /// Returns the transaction status that followed.
    pub(crate) async fn run(
        &mut self,
        what: &'static str,
        sql: &str,
    ) -> Result<TxStatus, ServerError> {
        self.query(what, sql, |_| {}).await
    }

    /// Like [`Self::run`], handing each row's text values to `row` (NULL as None).
    pub(crate) async fn query(
        &mut self,
        what: &'static str,
        sql: &str,
        mut row: impl FnMut(Vec<Option<String>>),
    ) -> Result<TxStatus, ServerError> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out)?;
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        let mut failure = None;
        loop {
            match self.read_message().await? {
                Message::ReadyForQuery(body) => {
                    return match failure {
                        Some(ServerReport { code, message, .. }) => Err(ServerError::Query {
                            what,
                            code,
                            message,
                        }),
                        None => TxStatus::from_byte(body.status()).ok_or_else(|| {
                            ServerError::Protocol(format!(
                                "ReadyForQuery with transaction status 0x{:02x}",
                                body.status()
                            ))
                        }),
                    }
                }
                Message::ErrorResponse(body) => failure = Some(ServerReport::of(&body)),
                Message::DataRow(body) => {
                    let buf = body.buffer();
                    let values: Vec<Option<String>> = body
                        .ranges()
                        .map(|r| Ok(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned())))
                        .collect()
                        .map_err(|e| ServerError::Protocol(e.to_string()))?;
                    // Values pgwarm reads end up in messages of its own (a setting's value in
                    // a ParameterStatus), where a NUL cannot go.
                    if values.iter().flatten().any(|v| v.contains('\0')) {
                        return Err(ServerError::Protocol(
                            "a value with a NUL character in an answer to pgwarm's own query"
                                .into(),
                        ));
                    }
                    row(values);
                }
                _ => {}
            }
        }
    }

    /// Reads the session settings in effect and remembers them as this connection's.
    pub(crate) async fn read_session_settings(&mut self) -> Result<SessionSettings, ServerError> {
        let mut rows = Vec::new();
        let status = self
            .query(
                "reading session settings",
                session_settings::READ_SQL,
                |r| {
                    if let [Some(name), Some(value)] = &r[..] {
                        rows.push((name.clone(), value.clone()));
                    }
                },
            )
            .await?;
        if !status.is_idle() {
            return Err(ServerError::Protocol(format!(
                "session settings read inside a transaction (status {})",
                status
            )));
        }
        self.session = SessionSettings::new(rows);
        Ok(self.session.clone())
    }

    /// Sends Terminate without waiting, then drops the socket. The backend ends cleanly instead of
    /// logging an unexpected EOF; if the socket cannot take the 5 bytes now, closing it is enough.
    pub(crate) fn close(mut self) {
        let mut out = BytesMut::with_capacity(5);
        frontend::terminate(&mut out);
        let mut cx = Context::from_waker(Waker::noop());
        let stream = Pin::new(&mut self.stream);
        if let Poll::Ready(Ok(_)) = stream.poll_write(&mut cx, &out) {
            // TLS: out of rustls onto the socket, then close_notify.
            let _ = Pin::new(&mut self.stream).poll_flush(&mut cx);
            let _ = Pin::new(&mut self.stream).poll_shutdown(&mut cx);
        }
    }

    /// What was read but is not pgwarm's: the messages kept while `keep_async`, then whatever
    /// followed the answer in the read buffer. Taken whole.
    pub(crate) fn take_unread(&mut self) -> BytesMut {
        let mut unread = std::mem::take(&mut self.kept);
        unread.extend_from_slice(&self.rbuf);
        self.rbuf.clear();
        unread
    }

    async fn read_message(&mut self) -> Result<Message, ServerError> {
        loop {
            if self.keep_async {
                if let Some((tag @ (b'A' | b'N' | b'S'), frame_len)) = framing::header(&self.rbuf) {
                    let whole = framing::check_backend(tag, frame_len)
                        && frame_len <= OWN_MESSAGE_LIMIT
                        && self.rbuf.len() >= frame_len;
                    if whole {
                        let message = self.rbuf.split_to(frame_len);
                        self.kept.extend_from_slice(&message);
                        continue;
                    }
                }
            }
            if let Some(message) = parse_own_message(&mut self.rbuf)? {
                return Ok(message);
            }
            self.rbuf.reserve(4096);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(ServerError::Closed);
            }
        }
    }

    async fn write_buf(&mut self, out: &mut BytesMut) -> Result<(), ServerError> {
        self.stream.write_all(out).await?;
        self.stream.flush().await?;
        out.clear();
        Ok(())
    }
}

/// The next whole message in `buf`, as pgwarm reads them on its own exchanges with a server.
/// postgres-protocol reserves room for a whole message as soon as it sees the length: a hostile
/// or broken server's 4 GiB length is refused before that.
pub(crate) fn parse_own_message(buf: &mut BytesMut) -> Result<Option<Message>, ServerError> {
    if let Some((tag, frame_len)) = framing::header(buf) {
        if !framing::check_backend(tag, frame_len) || frame_len > OWN_MESSAGE_LIMIT {
            return Err(ServerError::Protocol(format!(
                "a message of type 0x{tag:02x} and {frame_len} bytes, which pgwarm's own \
                 exchanges never get"
            )));
        }
    }
    Message::parse(buf).map_err(|e| ServerError::Protocol(e.to_string()))
}

/// Writes a CancelRequest for `target` on a new connection, as the protocol requires, over TLS
/// when the connection to cancel uses it.
pub(crate) async fn send_cancel(
    target: &CancelTarget,
    tls: &TlsSetup,
    timeout: Duration,
) -> Result<(), ServerError> {
    let work = async {
        let tcp = TcpStream::connect(target.addr)
            .await
            .map_err(|source| ServerError::Connect {
                addr: target.addr.to_string(),
                source,
            })?;
        let mut stream = match &target.tls_host {
            Some(host) => tls.negotiate(tcp, host).await?,
            None => Stream::Plain(tcp),
        };
        let mut out = BytesMut::with_capacity(16);
        frontend::cancel_request(target.pid, target.secret, &mut out);
        stream.write_all(&out).await?;
        stream.flush().await?;
        // The server closes the socket when it has read the request.
        let mut sink = [0u8; 1];
        let _ = stream.read(&mut sink).await;
        Ok(())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ServerError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_length_is_refused_before_anything_is_allocated() {
        let mut buf = BytesMut::from(&b"S\xff\xff\xff\xffserver_version"[..]);
        assert!(matches!(
            parse_own_message(&mut buf),
            Err(ServerError::Protocol(_))
        ));
        let mut buf = BytesMut::from(&b"Z\0\0\0\x05I"[..]);
        assert!(matches!(
            parse_own_message(&mut buf),
            Ok(Some(Message::ReadyForQuery(_)))
        ));
        let mut partial = BytesMut::from(&b"S\0\0\0\x20serv"[..]);
        assert!(matches!(parse_own_message(&mut partial), Ok(None)));
    }
}
