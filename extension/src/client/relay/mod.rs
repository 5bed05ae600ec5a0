//! The relay between one client and the server connection it is linked to.
//!
//! Bytes flow in bulk; the relay walks message headers to know where each message starts, which
//! transaction state the server reported and what is still in flight. That decides when a server
//! connection may go back to the pool (DESIGN.md's protocol rules):
//!
//! * every message the server answers is queued in `expect` as it is sent, and leaves the queue
//!   with the message that completes its answer (see [`expect`]);
//! * Parse/Bind/Describe/Execute/Close/Flush without a following Sync keep the link (`unsynced`);
//! * in COPY FROM STDIN the server ignores Sync, so CopyInResponse drops the queued Syncs and
//!   Syncs sent before CopyDone/CopyFail are not queued (libpq and tokio-postgres both send one);
//! * only ReadyForQuery 'I' with nothing expected releases the link.
//!
//! In transaction mode the client's named prepared statements are renamed on the way: the three
//! stages are [`from_client`] (read, validate, note what each message refers to), [`to_server`]
//! (write it for the linked connection, creating statements it lacks) and [`from_server`] (match
//! answers to messages, drop or add the answers pgwarm owes). The client's bytes are kept as sent
//! until the server answers, so a batch can be replayed, and translated again, on another
//! connection when the first was found dead before answering.
//!
//! The pump is a single `poll` function over both sockets, so reading and writing in both
//! directions interleave without deadlock and without a task per direction.
//!
//! No index here can panic on input, by construction rather than by lint (unlike `protocol/`):
//! every index is into the relay's own buffers, at positions it keeps ordered
//! (`c_done <= c_scanned <= cin.len()`, `s_scanned <= sin.len()`), and a message's body is
//! sliced only once the whole message is there (`frame_len` bytes, from a header already checked
//! by `framing`). The `relay` fuzz target plays arbitrary client and server bytes with link
//! events against it, with debug assertions on; the redesign with typed inputs (issue 16) is to
//! make the lint hold here too.

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod driver;
mod expect;
mod from_client;
mod from_server;
mod local;
#[cfg(test)]
mod tests;
mod to_server;

use super::statements::{ClientStatements, KnownStatements, Resolution};
use super::traffic::{Tally, Traffic};
use crate::config::{PoolMode, Upstream};
use crate::protocol::backend::TxStatus;
use crate::protocol::framing::{self, HEADER_LEN};
use crate::protocol::{sqlstate, PgError};
use crate::server::PreparedSet;
use crate::stream::Stream;
use bytes::{Buf, BytesMut};
use expect::Expect;
use from_client::Outgoing;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

/// How much is read per call; large enough for bulk COPY, small enough to stay in cache.
const READ_CHUNK: usize = 16 * 1024;
/// A direction stops reading while this much is waiting to be written (backpressure).
const HIGH_WATER: usize = 256 * 1024;
/// A first batch larger than this is not kept for replay; it is rare and memory matters more.
const REPLAY_LIMIT: usize = 64 * 1024;
/// An ErrorResponse up to this size is read whole: to see whether a first answer is a FATAL and
/// which SQLSTATE an error has. A longer one (an error quoting a huge query) streams through.
const ERROR_PEEK_LIMIT: usize = 8 * 1024;

/// Why the pump stopped and needs the session to act.
#[derive(Debug)]
pub(crate) enum Event {
    /// Client bytes are ready to go and no server connection is linked.
    NeedServer,
    /// The transaction is over (transaction mode): the link may be released.
    Release,
    /// The client closed its socket or sent Terminate.
    ClientGone,
    /// The client must be closed with this error (it broke the protocol, or a timeout hit).
    CloseClient(PgError),
    /// The server connection failed. `replayable`: nothing of the current batch was answered
    /// yet, so it can be sent again on another connection.
    ServerFailed { replayable: bool, reason: String },
    /// The server reported a transaction state (T or E) and went quiet: the session may arm
    /// the idle-in-transaction timer.
    IdleInTransaction,
}

/// The linked server connection as the pump sees it: its socket and its statements.
pub(crate) type Link<'a> = (&'a mut Stream, &'a mut PreparedSet);

pub(crate) struct Relay {
    mode: PoolMode,
    max_message_size: usize,
    /// Whether the session wants to hear about idle-in-transaction moments.
    watch_idle: bool,
    /// Statements kept per server connection; 0 when names pass through unchanged (session
    /// mode, or `PGWARM_MAX_PREPARED_STATEMENTS=0`).
    max_prepared: usize,
    /// A pooler is upstream (`PGWARM_UPSTREAM_POOLER=on`): the client's named statements are
    /// parsed as the unnamed statement before each use, as nothing lasts beyond a transaction.
    unnamed_server: bool,
    /// The client's own unnamed statement (in that mode), and whether the linked connection has
    /// it now rather than one pgwarm parsed there.
    client_unnamed: Option<Arc<[u8]>>,
    client_unnamed_here: bool,

    /// Bytes from the client. `[..c_done]` were translated for the server (kept while `replay`),
    /// `[..c_scanned]` were checked, the rest is an incomplete message.
    cin: BytesMut,
    /// Stream offset of `cin[0]`: queued messages are placed by offset, which survives `advance`.
    c_base: u64,
    c_done: usize,
    c_scanned: usize,
    /// Body bytes of the current client message that have not arrived yet.
    c_body_left: usize,
    /// Messages read so far (numbers `seq`).
    c_seq: u64,
    /// Terminate seen: no more client bytes are read or scanned.
    terminated: bool,
    /// Scanned messages the server will answer or pgwarm must rewrite, in order;
    /// `[..o_done]` were translated and are kept while `replay`.
    outgoing: VecDeque<Outgoing>,
    o_done: usize,
    /// The client's named statements.
    statements: ClientStatements,
    /// Statements known to parse, shared by all sessions.
    known: Arc<KnownStatements>,
    /// The client's name-resolution settings, part of every statement it prepares.
    resolution: Resolution,
    /// The pid the client was told, and that of the linked backend: a notification the client's
    /// own backend sends carries the one the client knows, as it would directly.
    client_pid: i32,
    backend_pid: Option<i32>,

    /// Translated bytes not yet written to the server.
    sout: BytesMut,

    /// Bytes from the server; `[..s_scanned]` may go to the client.
    sin: BytesMut,
    s_scanned: usize,
    s_body_left: usize,

    /// What the server owes, in order.
    expect: VecDeque<Expect>,
    unsynced: bool,
    copy_in: bool,
    status: TxStatus,
    linked: bool,
    /// Keep `cin[..c_done]` until the server answers, for a replay.
    replay: bool,
    /// The server's first message of this link was looked at (or pgwarm answered for it).
    answered: bool,
    /// The first answer was a FATAL, held back while waiting to see how the socket closes.
    doomed: bool,
    /// A FATAL from the server went to the client: it needs no second one from pgwarm.
    fatal_forwarded: bool,
    /// A batch was sent again after a repairable error (`from_server::retry_repairable`): at
    /// most once per link.
    retried: bool,
    /// A statement was repaired since the last [`Relay::take_repaired`].
    repaired: bool,
    /// A SET, RESET or DISCARD ALL completed, or the server reported a setting's new value:
    /// the session's settings must be read back.
    settings_changed: bool,
    /// Set by scanning; returned by the pump.
    event: Option<Event>,
    /// Queries, transactions and bytes, for `SHOW STATS`.
    tally: Tally,
}

impl Relay {
    pub(crate) fn new(
        mode: PoolMode,
        max_message_size: usize,
        watch_idle: bool,
        max_prepared: usize,
        known: Arc<KnownStatements>,
        client_pid: i32,
        upstream: Upstream,
    ) -> Relay {
        Relay {
            mode,
            max_message_size,
            watch_idle,
            max_prepared: if mode == PoolMode::Transaction {
                max_prepared
            } else {
                0
            },
            unnamed_server: upstream == Upstream::Pooler,
            client_unnamed: None,
            client_unnamed_here: false,
            // Allocated at the first read: a client that only logged in costs no buffer.
            cin: BytesMut::new(),
            c_base: 0,
            c_done: 0,
            c_scanned: 0,
            c_body_left: 0,
            c_seq: 0,
            terminated: false,
            outgoing: VecDeque::new(),
            o_done: 0,
            statements: ClientStatements::default(),
            known,
            resolution: Resolution::default(),
            client_pid,
            backend_pid: None,
            sout: BytesMut::new(),
            sin: BytesMut::new(),
            s_scanned: 0,
            s_body_left: 0,
            expect: VecDeque::new(),
            unsynced: false,
            copy_in: false,
            status: TxStatus::Idle,
            linked: false,
            replay: false,
            answered: true,
            doomed: false,
            fatal_forwarded: false,
            retried: false,
            repaired: false,
            settings_changed: false,
            event: None,
            tally: Tally::new(Arc::default()),
        }
    }

    /// Counts this client's traffic into `traffic` (the shared totals) from now on.
    pub(crate) fn count_into(&mut self, traffic: Arc<Traffic>) {
        self.tally = Tally::new(traffic);
    }

    /// A server connection was linked: the next bytes it sends answer this client.
    pub(crate) fn link(&mut self, backend_pid: i32) {
        self.linked = true;
        self.fatal_forwarded = false;
        self.client_unnamed_here = false;
        self.backend_pid = Some(backend_pid);
        self.replay = true;
        self.answered = false;
        self.doomed = false;
        self.retried = false;
        self.s_body_left = 0;
    }

    /// The link ends (released, failed or replaced). Server bytes not scanned yet are dropped:
    /// they belong to that connection, never to the next. Returns whether there were any (a
    /// server that spoke after its last ReadyForQuery is not clean enough to lend again).
    pub(crate) fn unlink(&mut self) -> bool {
        self.linked = false;
        self.backend_pid = None;
        self.replay = false;
        self.drop_sent_client_bytes();
        self.answered = true;
        self.doomed = false;
        let leftover = self.sin.len() > self.s_scanned || self.s_body_left > 0;
        self.sin.truncate(self.s_scanned);
        self.s_body_left = 0;
        self.expect.clear();
        self.sout.clear();
        leftover
    }

    /// After a failed link whose batch was not answered: everything the server was sent and
    /// said is forgotten, so the batch is translated and sent again for the next connection.
    pub(crate) fn rewind(&mut self) {
        debug_assert!(self.replay && !self.answered);
        self.c_done = 0;
        self.o_done = 0;
        self.unlink();
    }

    /// The client's session settings changed: statements it prepares from now on are resolved
    /// under the new ones.
    pub(crate) fn set_resolution(&mut self, resolution: Resolution) {
        self.resolution = resolution;
    }

    /// The server connection failed for good: whether the client has the server's own FATAL
    /// to end on. A FATAL held back as the first answer is released to the client now, after
    /// what it already has; one already forwarded needs nothing more.
    pub(crate) fn pass_on_fatal(&mut self) -> bool {
        if self.doomed && self.s_body_left == 0 {
            if let Some((b'E', len)) = framing::header(&self.sin[self.s_scanned..]) {
                if self.sin.len() >= self.s_scanned + len {
                    self.s_scanned += len;
                    self.sin.truncate(self.s_scanned);
                    self.doomed = false;
                    self.fatal_forwarded = true;
                }
            }
        }
        self.fatal_forwarded
    }

    /// Whether a pgwarm statement was found missing or already there since the last call:
    /// a sign that something between pgwarm and the database does not keep them.
    pub(crate) fn take_repaired(&mut self) -> bool {
        std::mem::take(&mut self.repaired)
    }

    /// Whether the client changed session settings since the last call.
    pub(crate) fn take_settings_changed(&mut self) -> bool {
        std::mem::take(&mut self.settings_changed)
    }

    /// The server's last reported transaction status.
    pub(crate) fn status(&self) -> TxStatus {
        self.status
    }

    /// Nothing in flight: no partial message either way, nothing expected, no COPY. A server
    /// connection left here can be rolled back or reset and reused.
    pub(crate) fn at_rest(&self) -> bool {
        self.expect.is_empty()
            && !self.unsynced
            && !self.copy_in
            && self.c_body_left == 0
            && self.s_body_left == 0
            && self.c_done == self.c_scanned
            && self.sout.is_empty()
    }

    /// Idle inside a transaction: the client owes the next message.
    pub(crate) fn idle_in_transaction(&self) -> bool {
        self.linked && !self.status.is_idle() && self.at_rest()
    }

    /// Queues an error for the client after whatever server output is already complete. Returns
    /// false if a server message is half-written, when an error would corrupt the stream.
    pub(crate) fn queue_error(&mut self, error: &PgError) -> bool {
        if self.s_body_left != 0 {
            return false;
        }
        self.sin.truncate(self.s_scanned);
        error.encode(&mut self.sin);
        self.s_scanned = self.sin.len();
        true
    }

    /// Writes what is queued for the client; used after the last event before closing.
    pub(crate) async fn flush_client(&mut self, client: &mut Stream) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        client.write_all(&self.sin[..self.s_scanned]).await?;
        self.tally.sent(self.s_scanned);
        self.sin.advance(self.s_scanned);
        self.s_scanned = 0;
        client.flush().await
    }

    /// Moves bytes until something needs the session. `waiting` means a checkout is under way:
    /// the client is still read (its EOF matters) but no NeedServer is raised.
    pub(crate) fn poll_pump<C: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut C,
        mut server: Option<Link<'_>>,
        waiting: bool,
    ) -> Poll<Event> {
        loop {
            let mut progress = false;

            // Client messages, translated for this server, to the server.
            if let Some((stream, set)) = server.as_mut() {
                if self.c_done < self.c_scanned {
                    self.translate(set);
                }
                if !self.sout.is_empty() {
                    match Pin::new(&mut **stream).poll_write(cx, &self.sout) {
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(self.server_failed("write returned 0", false))
                        }
                        Poll::Ready(Ok(n)) => {
                            self.sout.advance(n);
                            self.drop_sent_client_bytes();
                            progress = true;
                        }
                        Poll::Ready(Err(e)) => {
                            return Poll::Ready(self.server_failed(&e.to_string(), is_reset(&e)))
                        }
                        Poll::Pending => {}
                    }
                }
                // TLS keeps what the socket could not take inside rustls until flushed; for
                // plain TCP this does nothing.
                if let Poll::Ready(Err(e)) = Pin::new(&mut **stream).poll_flush(cx) {
                    return Poll::Ready(self.server_failed(&e.to_string(), is_reset(&e)));
                }
            }

            // Server bytes to the client.
            if self.s_scanned > 0 {
                match Pin::new(&mut *client).poll_write(cx, &self.sin[..self.s_scanned]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        self.sin.advance(n);
                        self.s_scanned -= n;
                        self.tally.sent(n);
                        progress = true;
                    }
                    Poll::Ready(_) => return Poll::Ready(Event::ClientGone),
                    Poll::Pending => {}
                }
            }
            // Over TLS, what the socket could not take waits inside rustls until flushed.
            if let Poll::Ready(Err(_)) = Pin::new(&mut *client).poll_flush(cx) {
                return Poll::Ready(Event::ClientGone);
            }

            // Client input. Only checked bytes waiting for the server count against the limit:
            // a message pgwarm must read whole keeps being read until it is.
            if !self.terminated && self.c_scanned - self.c_done + self.sout.len() < HIGH_WATER {
                self.cin.reserve(READ_CHUNK);
                match poll_read_buf(Pin::new(&mut *client), cx, &mut self.cin) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Event::ClientGone),
                    Poll::Ready(Ok(n)) => {
                        self.tally.received(n);
                        if let Err(e) = self.scan_client() {
                            return Poll::Ready(Event::CloseClient(PgError::fatal(
                                sqlstate::PROTOCOL_VIOLATION,
                                e.to_string(),
                            )));
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::ClientGone),
                    Poll::Pending => {}
                }
            }

            // Server input.
            if let Some((stream, set)) = server.as_mut() {
                if self.sin.len() < HIGH_WATER {
                    self.sin.reserve(READ_CHUNK);
                    match poll_read_buf(Pin::new(&mut **stream), cx, &mut self.sin) {
                        Poll::Ready(Ok(0)) => {
                            let reason = self.closed_reason();
                            return Poll::Ready(self.server_failed(&reason, false));
                        }
                        Poll::Ready(Ok(_)) => {
                            self.scan_server(set);
                            progress = true;
                        }
                        Poll::Ready(Err(e)) => {
                            return Poll::Ready(self.server_failed(&e.to_string(), is_reset(&e)))
                        }
                        Poll::Pending => {}
                    }
                }
            }

            if let Some(event) = self.event.take() {
                return Poll::Ready(event);
            }
            if !self.linked && !waiting && self.c_scanned > self.c_done {
                if self.answer_locally() {
                    continue;
                }
                return Poll::Ready(Event::NeedServer);
            }
            // Terminate: once everything before it reached the server, the session ends; the
            // session's clean-up decides whether the server connection can be reused.
            if self.terminated && self.c_scanned == self.c_done && self.sout.is_empty() {
                return Poll::Ready(Event::ClientGone);
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// A failed server connection. The batch may be replayed only when the connection was
    /// *reset*: a backend that closes with our bytes still unread makes its kernel answer with
    /// RST, so a reset before any answer means the batch was never read. A clean close (EOF),
    /// with or without a FATAL first, means the backend may have read and run it (a DBA's
    /// pg_terminate_backend of a running query, a procedure that committed half-way): running
    /// it again could repeat committed work or undo a deliberate kill.
    fn server_failed(&mut self, reason: &str, reset: bool) -> Event {
        // A held FATAL says why better than the reset that followed it.
        let reason = match self.doomed {
            true => self.closed_reason(),
            false => reason.to_owned(),
        };
        Event::ServerFailed {
            replayable: reset && self.replay && !self.answered && self.s_scanned == 0,
            reason,
        }
    }

    /// Why the server's socket closed: the held FATAL's message if there was one.
    fn closed_reason(&self) -> String {
        let held = &self.sin[self.s_scanned..];
        match framing::header(held) {
            Some((b'E', len)) if self.doomed && held.len() >= len => format!(
                "the database closed the connection: {}",
                error_message(&held[HEADER_LEN..len])
            ),
            _ => "the database closed the connection".to_owned(),
        }
    }

    /// Forgets client bytes and messages the server has, unless they may still be replayed.
    fn drop_sent_client_bytes(&mut self) {
        if self.replay && self.c_done > REPLAY_LIMIT {
            self.replay = false;
        }
        if !self.replay && self.c_done > 0 {
            self.cin.advance(self.c_done);
            self.c_base += self.c_done as u64;
            self.c_scanned -= self.c_done;
            self.c_done = 0;
            self.outgoing.drain(..self.o_done);
            self.o_done = 0;
        }
    }
}

/// Connection resets: the peer closed with data unread, or was never there.
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// The first field of an ErrorResponse body whose type is one of `kinds`.
fn error_field<'a>(body: &'a [u8], kinds: &[u8]) -> Option<&'a [u8]> {
    let mut fields = body;
    while let Some((&kind, rest)) = fields.split_first() {
        if kind == 0 {
            break;
        }
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        if kinds.contains(&kind) {
            return Some(&rest[..end]);
        }
        fields = rest.get(end + 1..).unwrap_or(&[]);
    }
    None
}

/// The message ('M') of an ErrorResponse body.
fn error_message(body: &[u8]) -> String {
    String::from_utf8_lossy(error_field(body, b"M").unwrap_or_default()).into_owned()
}

/// Whether an ErrorResponse body has severity FATAL or PANIC ('V', or 'S' from old servers).
fn is_fatal(body: &[u8]) -> bool {
    matches!(error_field(body, b"VS"), Some(b"FATAL" | b"PANIC"))
}
