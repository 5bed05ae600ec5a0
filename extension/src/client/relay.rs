//! The relay between one client and the server connection it is linked to.
//!
//! Bytes flow through unchanged and in bulk; the relay only walks message headers to know where
//! each message starts, which transaction state the server reported, and whether anything is
//! still in flight. That is what decides when a server connection may go back to the pool
//! (DESIGN.md's protocol rules):
//!
//! * every Query/FunctionCall and every Sync expects one ReadyForQuery: they queue in `pending`;
//! * Parse/Bind/Describe/Execute/Close/Flush without a following Sync keep the link (`unsynced`);
//! * in COPY FROM STDIN the server ignores Sync, so CopyInResponse drops the queued Syncs and
//!   Syncs sent before CopyDone/CopyFail are not queued (libpq and tokio-postgres both send one);
//! * only ReadyForQuery 'I' with nothing pending releases the link.
//!
//! The relay also remembers the first batch it sent on a link until the server answers, so a
//! connection found dead before answering can be swapped for another and the batch replayed.
//!
//! The pump is a single `poll` function over both sockets, so reading and writing in both
//! directions interleave without deadlock and without a task per direction.

use crate::config::PoolMode;
use crate::protocol::framing::{self, FrameError, HEADER_LEN};
use crate::protocol::{sqlstate, PgError};
use bytes::{Buf, BytesMut};
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

/// How much is read per call; large enough for bulk COPY, small enough to stay in cache.
const READ_CHUNK: usize = 16 * 1024;
/// A direction stops reading while this much is waiting to be written (backpressure).
const HIGH_WATER: usize = 256 * 1024;
/// A first batch larger than this is not kept for replay; it is rare and memory matters more.
const REPLAY_LIMIT: usize = 64 * 1024;
/// A first answer that is an ErrorResponse is held until whole, to see whether it is a FATAL;
/// a longer one (an error quoting a huge query) cannot be a termination notice.
const FATAL_PEEK_LIMIT: usize = 8 * 1024;

/// Why the pump stopped and needs the session to act.
#[derive(Debug)]
pub enum Event {
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

pub struct Relay {
    mode: PoolMode,
    max_message_size: usize,
    /// Whether the session wants to hear about idle-in-transaction moments.
    watch_idle: bool,

    /// Bytes from the client. `[..c_sent]` went to the server (kept while `replay`),
    /// `[..c_scanned]` were checked and may go, the rest is an incomplete header.
    cin: BytesMut,
    c_sent: usize,
    c_scanned: usize,
    /// Body bytes of the current client message that have not arrived yet.
    c_body_left: usize,
    /// Terminate seen: no more client bytes are read or scanned.
    terminated: bool,

    /// Bytes from the server; `[..s_scanned]` may go to the client.
    sin: BytesMut,
    s_scanned: usize,
    s_body_left: usize,

    pending: VecDeque<u8>,
    unsynced: bool,
    copy_in: bool,
    status: u8,
    linked: bool,
    /// Keep `cin[..c_sent]` until the server answers, for a replay.
    replay: bool,
    /// The server's first message of this link was looked at.
    answered: bool,
    /// The first answer was a FATAL, held back while waiting to see how the socket closes.
    doomed: bool,
    /// Set by scanning; returned by the pump.
    event: Option<Event>,
}

impl Relay {
    pub fn new(mode: PoolMode, max_message_size: usize, watch_idle: bool) -> Relay {
        Relay {
            mode,
            max_message_size,
            watch_idle,
            cin: BytesMut::with_capacity(READ_CHUNK),
            c_sent: 0,
            c_scanned: 0,
            c_body_left: 0,
            terminated: false,
            sin: BytesMut::with_capacity(READ_CHUNK),
            s_scanned: 0,
            s_body_left: 0,
            pending: VecDeque::new(),
            unsynced: false,
            copy_in: false,
            status: b'I',
            linked: false,
            replay: false,
            answered: true,
            doomed: false,
            event: None,
        }
    }

    /// A server connection was linked: the next bytes it sends answer this client.
    pub fn link(&mut self) {
        self.linked = true;
        self.replay = true;
        self.answered = false;
        self.doomed = false;
        self.s_body_left = 0;
    }

    /// The link ends (released, failed or replaced). Server bytes not scanned yet are dropped:
    /// they belong to that connection, never to the next. Returns whether there were any (a
    /// server that spoke after its last ReadyForQuery is not clean enough to lend again).
    pub fn unlink(&mut self) -> bool {
        self.linked = false;
        self.replay = false;
        self.answered = true;
        self.doomed = false;
        let leftover = self.sin.len() > self.s_scanned || self.s_body_left > 0;
        self.sin.truncate(self.s_scanned);
        self.s_body_left = 0;
        leftover
    }

    /// After a failed link whose batch was not answered: everything the server was sent and
    /// said is forgotten, so the batch goes again to the next connection.
    pub fn rewind(&mut self) {
        debug_assert!(self.replay && !self.answered);
        self.c_sent = 0;
        self.unlink();
    }

    /// The server's last reported transaction status.
    pub fn status(&self) -> u8 {
        self.status
    }

    /// Nothing in flight: no partial message either way, no awaited ReadyForQuery, no COPY.
    /// A server connection left here can be rolled back or reset and reused.
    pub fn at_rest(&self) -> bool {
        self.pending.is_empty()
            && !self.unsynced
            && !self.copy_in
            && self.c_body_left == 0
            && self.s_body_left == 0
            && self.c_sent == self.c_scanned
    }

    /// Idle inside a transaction: the client owes the next message.
    pub fn idle_in_transaction(&self) -> bool {
        self.linked && self.status != b'I' && self.at_rest()
    }

    /// Queues an error for the client after whatever server output is already complete. Returns
    /// false if a server message is half-written, when an error would corrupt the stream.
    pub fn queue_error(&mut self, error: &PgError) -> bool {
        if self.s_body_left != 0 {
            return false;
        }
        self.sin.truncate(self.s_scanned);
        error.encode(&mut self.sin);
        self.s_scanned = self.sin.len();
        true
    }

    /// Writes what is queued for the client; used after the last event before closing.
    pub async fn flush_client(&mut self, client: &mut TcpStream) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        client.write_all(&self.sin[..self.s_scanned]).await?;
        self.sin.advance(self.s_scanned);
        self.s_scanned = 0;
        client.flush().await
    }

    /// Moves bytes until something needs the session. `waiting` means a checkout is under way:
    /// the client is still read (its EOF matters) but no NeedServer is raised.
    pub fn poll_pump(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut TcpStream,
        mut server: Option<&mut TcpStream>,
        waiting: bool,
    ) -> Poll<Event> {
        loop {
            let mut progress = false;

            // Client bytes to the server.
            if let Some(server) = server.as_deref_mut() {
                if self.c_sent < self.c_scanned {
                    match Pin::new(server).poll_write(cx, &self.cin[self.c_sent..self.c_scanned]) {
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(self.server_failed("write returned 0", false))
                        }
                        Poll::Ready(Ok(n)) => {
                            self.c_sent += n;
                            self.drop_sent_client_bytes();
                            progress = true;
                        }
                        Poll::Ready(Err(e)) => {
                            return Poll::Ready(self.server_failed(&e.to_string(), is_reset(&e)))
                        }
                        Poll::Pending => {}
                    }
                }
            }

            // Server bytes to the client.
            if self.s_scanned > 0 {
                match Pin::new(&mut *client).poll_write(cx, &self.sin[..self.s_scanned]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        self.sin.advance(n);
                        self.s_scanned -= n;
                        progress = true;
                    }
                    Poll::Ready(_) => return Poll::Ready(Event::ClientGone),
                    Poll::Pending => {}
                }
            }

            // Client input.
            if !self.terminated && self.cin.len() - self.c_sent < HIGH_WATER {
                self.cin.reserve(READ_CHUNK);
                match poll_read_buf(Pin::new(&mut *client), cx, &mut self.cin) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Event::ClientGone),
                    Poll::Ready(Ok(_)) => {
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
            if let Some(server) = server.as_deref_mut() {
                if self.sin.len() < HIGH_WATER {
                    self.sin.reserve(READ_CHUNK);
                    match poll_read_buf(Pin::new(server), cx, &mut self.sin) {
                        Poll::Ready(Ok(0)) => {
                            let reason = self.closed_reason();
                            return Poll::Ready(self.server_failed(&reason, false));
                        }
                        Poll::Ready(Ok(_)) => {
                            self.scan_server();
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
            if !self.linked && !waiting && self.c_scanned > self.c_sent {
                return Poll::Ready(Event::NeedServer);
            }
            // Terminate: once everything before it reached the server, the session ends; the
            // session's clean-up decides whether the server connection can be reused.
            if self.terminated && self.c_scanned == self.c_sent {
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
        Event::ServerFailed {
            replayable: reset && self.replay && !self.answered && self.s_scanned == 0,
            reason: reason.to_owned(),
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

    /// Forgets client bytes the server has, unless they may still be replayed.
    fn drop_sent_client_bytes(&mut self) {
        if self.replay && self.c_sent > REPLAY_LIMIT {
            self.replay = false;
        }
        if !self.replay && self.c_sent > 0 {
            self.cin.advance(self.c_sent);
            self.c_scanned -= self.c_sent;
            self.c_sent = 0;
        }
    }

    /// Walks new client bytes: validates each header and tracks what the server will owe.
    fn scan_client(&mut self) -> Result<(), FrameError> {
        loop {
            if self.c_body_left > 0 {
                let n = self.c_body_left.min(self.cin.len() - self.c_scanned);
                self.c_scanned += n;
                self.c_body_left -= n;
                if self.c_body_left > 0 {
                    return Ok(());
                }
            }
            let Some((tag, frame_len)) = framing::header(&self.cin[self.c_scanned..]) else {
                return Ok(());
            };
            framing::check_frontend(tag, frame_len, self.max_message_size)?;
            match tag {
                b'X' => {
                    // Terminate ends the session here; it is never forwarded, the pool keeps
                    // the server connection.
                    self.terminated = true;
                    self.cin.truncate(self.c_scanned);
                    return Ok(());
                }
                b'Q' | b'F' => self.pending.push_back(b'Q'),
                b'S' => {
                    self.unsynced = false;
                    if !self.copy_in {
                        self.pending.push_back(b'S');
                    }
                }
                b'P' | b'B' | b'D' | b'E' | b'C' | b'H' => self.unsynced = true,
                b'c' | b'f' => self.copy_in = false,
                b'd' => {}
                b'p' => return Err(FrameError::UnexpectedPassword),
                _ => {}
            }
            self.c_scanned += HEADER_LEN;
            self.c_body_left = frame_len - HEADER_LEN;
        }
    }

    /// Walks new server bytes: finds ReadyForQuery and COPY starts, and decides on a release.
    fn scan_server(&mut self) {
        loop {
            if self.s_body_left > 0 {
                let n = self.s_body_left.min(self.sin.len() - self.s_scanned);
                self.s_scanned += n;
                self.s_body_left -= n;
                if self.s_body_left > 0 {
                    return;
                }
            }
            let rest = &self.sin[self.s_scanned..];
            let Some((tag, frame_len)) = framing::header(rest) else {
                return;
            };
            if !framing::check_backend(frame_len) {
                self.event = Some(Event::ServerFailed {
                    replayable: false,
                    reason: format!("invalid message length from the database ({frame_len})"),
                });
                return;
            }
            let whole = rest.len() >= frame_len;
            if !self.answered {
                // A FATAL as the first answer is held back, not forwarded: how the socket then
                // closes decides whether the batch can go to another connection.
                if tag == b'E' && frame_len <= FATAL_PEEK_LIMIT {
                    if !whole {
                        return;
                    }
                    if is_fatal(&rest[HEADER_LEN..frame_len]) {
                        self.doomed = true;
                        return;
                    }
                }
                self.answered = true;
                self.replay = false;
                self.drop_sent_client_bytes();
            }
            match tag {
                b'Z' => {
                    if frame_len != HEADER_LEN + 1 {
                        self.event = Some(Event::ServerFailed {
                            replayable: false,
                            reason: format!(
                                "invalid ReadyForQuery length {frame_len} from the database"
                            ),
                        });
                        return;
                    }
                    if !whole {
                        return;
                    }
                    self.status = self.sin[self.s_scanned + HEADER_LEN];
                    self.pending.pop_front();
                    // No server is in COPY mode at ReadyForQuery, even one whose client never
                    // sent CopyDone (libpq gives up after a COPY error).
                    self.copy_in = false;
                    self.s_scanned += frame_len;
                    if self.pending.is_empty() {
                        if self.mode == PoolMode::Transaction
                            && self.status == b'I'
                            && self.at_rest()
                        {
                            self.event = Some(Event::Release);
                            return;
                        }
                        if self.watch_idle && self.status != b'I' && self.at_rest() {
                            self.event = Some(Event::IdleInTransaction);
                        }
                    }
                    continue;
                }
                b'G' => {
                    // COPY FROM STDIN: the server ignores every Sync until CopyDone/CopyFail.
                    self.copy_in = true;
                    self.pending.retain(|t| *t == b'Q');
                }
                _ => {}
            }
            self.s_scanned += HEADER_LEN;
            self.s_body_left = frame_len - HEADER_LEN;
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use postgres_protocol::message::frontend;

    fn relay() -> Relay {
        let mut r = Relay::new(PoolMode::Transaction, 1 << 20, false);
        r.link();
        r
    }

    /// Scans client bytes and marks them written to the server, as the pump would.
    fn client(r: &mut Relay, bytes: &[u8]) -> Result<(), FrameError> {
        r.cin.extend_from_slice(bytes);
        r.scan_client()?;
        r.c_sent = r.c_scanned;
        Ok(())
    }

    fn server(r: &mut Relay, bytes: &[u8]) -> Option<Event> {
        r.sin.extend_from_slice(bytes);
        r.scan_server();
        r.event.take()
    }

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.put_i32(body.len() as i32 + 4);
        v.extend_from_slice(body);
        v
    }

    fn z(status: u8) -> Vec<u8> {
        msg(b'Z', &[status])
    }

    #[test]
    fn a_simple_query_releases_at_ready_for_query_idle() {
        let mut r = relay();
        let mut q = BytesMut::new();
        frontend::query("select 1", &mut q).unwrap();
        client(&mut r, &q).unwrap();
        assert_eq!(r.pending.len(), 1);
        assert!(server(&mut r, &msg(b'C', b"SELECT 1\0")).is_none());
        assert!(matches!(server(&mut r, &z(b'I')), Some(Event::Release)));
    }

    #[test]
    fn a_transaction_keeps_the_link_until_it_ends() {
        let mut r = relay();
        client(&mut r, &msg(b'Q', b"begin\0")).unwrap();
        assert!(server(&mut r, &z(b'T')).is_none());
        client(&mut r, &msg(b'Q', b"commit\0")).unwrap();
        assert!(matches!(server(&mut r, &z(b'I')), Some(Event::Release)));
    }

    #[test]
    fn pipelined_syncs_release_only_after_the_last() {
        let mut r = relay();
        let mut b = BytesMut::new();
        for _ in 0..3 {
            frontend::parse("", "select 1", [], &mut b).unwrap();
            frontend::execute("", 0, &mut b).unwrap();
            frontend::sync(&mut b);
        }
        client(&mut r, &b).unwrap();
        assert_eq!(r.pending.len(), 3);
        assert!(server(&mut r, &z(b'I')).is_none());
        assert!(server(&mut r, &z(b'I')).is_none());
        assert!(matches!(server(&mut r, &z(b'I')), Some(Event::Release)));
    }

    #[test]
    fn flush_without_sync_keeps_the_link() {
        let mut r = relay();
        let mut b = BytesMut::new();
        frontend::parse("s1", "select 1", [], &mut b).unwrap();
        frontend::flush(&mut b);
        client(&mut r, &b).unwrap();
        assert!(server(&mut r, &msg(b'1', b"")).is_none());
        assert!(!r.at_rest());
    }

    #[test]
    fn extended_copy_in_ignores_the_sync_sent_before_copy_done() {
        // tokio-postgres: Bind, Execute, Sync, then CopyData..., CopyDone, Sync.
        let mut r = relay();
        let mut b = BytesMut::new();
        frontend::execute("", 0, &mut b).unwrap();
        frontend::sync(&mut b);
        client(&mut r, &b).unwrap();
        assert!(server(&mut r, &msg(b'2', b"")).is_none());
        assert!(server(&mut r, &msg(b'G', &[0, 0, 0])).is_none());
        assert!(r.pending.is_empty());
        let mut b = BytesMut::new();
        frontend::sync(&mut b); // ignored by a server in COPY mode
        client(&mut r, &b).unwrap();
        assert!(r.pending.is_empty());
        let mut b = BytesMut::new();
        frontend::copy_done(&mut b);
        frontend::sync(&mut b);
        client(&mut r, &b).unwrap();
        assert_eq!(r.pending.len(), 1);
        assert!(server(&mut r, &msg(b'C', b"COPY 1\0")).is_none());
        assert!(matches!(server(&mut r, &z(b'I')), Some(Event::Release)));
    }

    #[test]
    fn simple_copy_in_keeps_the_query_pending() {
        let mut r = relay();
        client(&mut r, &msg(b'Q', b"copy t from stdin\0")).unwrap();
        assert!(server(&mut r, &msg(b'G', &[0, 0, 0])).is_none());
        assert_eq!(r.pending.len(), 1);
        client(&mut r, &msg(b'd', b"1\n")).unwrap();
        client(&mut r, &msg(b'c', b"")).unwrap();
        assert!(matches!(server(&mut r, &z(b'I')), Some(Event::Release)));
    }

    #[test]
    fn large_messages_stream_through_in_pieces() {
        let mut r = relay();
        let row = msg(b'D', &vec![7u8; 100_000]);
        client(&mut r, &msg(b'Q', b"select big\0")).unwrap();
        for chunk in row.chunks(4096) {
            assert!(server(&mut r, chunk).is_none());
        }
        assert_eq!(r.s_scanned, row.len());
        assert!(matches!(server(&mut r, &z(b'I')), Some(Event::Release)));
    }

    #[test]
    fn a_fatal_first_answer_is_held_and_only_a_reset_makes_the_batch_replayable() {
        let mut r = relay();
        client(&mut r, &msg(b'Q', b"select 1\0")).unwrap();
        let fatal = msg(b'E', b"SFATAL\0VFATAL\0C57P01\0Mterminating\0\0");
        assert!(server(&mut r, &fatal).is_none(), "held, not forwarded");
        assert!(r.doomed && r.s_scanned == 0);
        assert!(r.closed_reason().contains("terminating"));
        // A clean close: the backend may have read the batch.
        match r.server_failed(&r.closed_reason(), false) {
            Event::ServerFailed { replayable, .. } => assert!(!replayable),
            other => panic!("{other:?}"),
        }
        // A reset: it never read it.
        match r.server_failed("reset", true) {
            Event::ServerFailed { replayable, .. } => assert!(replayable),
            other => panic!("{other:?}"),
        }
        r.rewind();
        assert_eq!(r.c_sent, 0);
        assert_eq!(r.pending.len(), 1);
        assert!(!r.doomed);
    }

    #[test]
    fn a_huge_first_error_streams_instead_of_stalling() {
        let mut r = relay();
        client(&mut r, &msg(b'Q', b"select 1\0")).unwrap();
        let mut body = b"SERROR\0VERROR\0C22P02\0M".to_vec();
        body.extend(std::iter::repeat_n(b'x', 300_000));
        body.extend_from_slice(b"\0\0");
        let err = msg(b'E', &body);
        assert!(server(&mut r, &err[..100_000]).is_none());
        assert!(
            r.answered,
            "a long error is an answer, streamed without waiting for its end"
        );
        assert_eq!(r.s_scanned, 100_000);
    }

    #[test]
    fn a_copy_the_client_abandoned_ends_at_ready_for_query() {
        let mut r = relay();
        client(&mut r, &msg(b'Q', b"copy t from stdin\0")).unwrap();
        assert!(server(&mut r, &msg(b'G', &[0, 0, 0])).is_none());
        client(&mut r, &msg(b'd', b"not a number\n")).unwrap();
        // The server fails the COPY; libpq then never sends CopyDone.
        assert!(server(&mut r, &msg(b'E', b"SERROR\0VERROR\0C22P02\0Mbad\0\0")).is_none());
        assert!(matches!(server(&mut r, &z(b'I')), Some(Event::Release)));
    }

    #[test]
    fn a_malformed_ready_for_query_fails_the_connection_without_panicking() {
        let mut r = relay();
        client(&mut r, &msg(b'Q', b"select 1\0")).unwrap();
        assert!(matches!(
            server(&mut r, &msg(b'Z', b"")),
            Some(Event::ServerFailed {
                replayable: false,
                ..
            })
        ));
    }

    #[test]
    fn an_ordinary_error_is_an_answer() {
        let mut r = relay();
        client(&mut r, &msg(b'Q', b"select x\0")).unwrap();
        let err = msg(b'E', b"SERROR\0VERROR\0C42703\0Mno column\0\0");
        assert!(server(&mut r, &err).is_none());
        assert!(r.answered && !r.replay);
        assert!(matches!(server(&mut r, &z(b'I')), Some(Event::Release)));
    }

    #[test]
    fn garbage_is_refused_before_it_is_forwarded() {
        let mut r = relay();
        let err = client(&mut r, b"GET / HTTP/1.1\r\n").unwrap_err();
        assert_eq!(err, FrameError::UnknownType(b'G'));
        assert_eq!(r.c_scanned, 0);
        let mut r = Relay::new(PoolMode::Transaction, 100, false);
        assert!(matches!(
            client(&mut r, &msg(b'Q', &[b'x'; 200])),
            Err(FrameError::TooLong { .. })
        ));
    }

    #[test]
    fn bytes_after_the_last_ready_for_query_never_reach_the_next_link() {
        let mut r = relay();
        client(&mut r, &msg(b'Q', b"select 1\0")).unwrap();
        let mut late = z(b'I');
        late.extend_from_slice(&msg(b'A', b"\0\0\0\x01chan\0payload\0"));
        assert!(matches!(server(&mut r, &late), Some(Event::Release)));
        assert!(
            r.unlink(),
            "the notification after Z makes the connection unfit to lend"
        );
        assert_eq!(r.sin.len(), r.s_scanned);
        r.link();
        client(&mut r, &msg(b'Q', b"select 2\0")).unwrap();
        assert!(matches!(server(&mut r, &z(b'I')), Some(Event::Release)));
        assert!(!r.unlink());
    }

    #[test]
    fn terminate_stops_the_scan() {
        let mut r = relay();
        let mut b = BytesMut::new();
        frontend::terminate(&mut b);
        client(&mut r, &b).unwrap();
        assert!(r.terminated);
        assert_eq!(r.c_scanned, 0);
    }
}
