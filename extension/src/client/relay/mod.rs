//! The relay between one client and the server connection it is linked to.
//!
//! Bytes flow in bulk; the relay walks message headers to know where each message starts, which
//! transaction state the server reported and what is still in flight. That decides when a server
//! connection may go back to the pool (docs/ARCHITECTURE.md, "A client connection"):
//!
//! * every message the server answers is queued in [`Expected`] as it is sent, and leaves the
//!   queue with the message that completes its answer (see [`expected`]);
//! * Parse/Bind/Describe/Execute/Close/Flush without a following Sync keep the link;
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
//! directions interleave without deadlock and without a task per direction. Each round runs one
//! short step per direction (`poll_to_server`, `poll_to_client`, `poll_from_client`,
//! `poll_from_server`); a step that needs the session returns its [`Event`].
//!
//! The state is split by who owns it: [`ClientInput`] (the client's bytes, from walked to
//! translated to forgotten), [`Inbox`] (the server's bytes, walked on their way to the client),
//! [`Linked`] (everything about the current server connection, made and dropped as one value),
//! and what the server owes ([`Expected`]). No stage reaches into another's offsets.
//! Every index into a buffer is made by `Inbox` or `ClientInput` at positions they keep ordered,
//! and a message's body is sliced only once it has arrived; the `relay` fuzz target plays
//! arbitrary client and server bytes with link events against it, with debug assertions on.

#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod client_input;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod driver;
mod expected;
mod from_client;
mod from_server;
mod inbox;
mod link;
mod local;
mod rules;
#[cfg(test)]
mod tests;
mod to_server;

use super::statements::{ClientStatements, KnownStatements, Resolution};
use super::traffic::{Tally, Traffic};
use crate::protocol::backend::TxStatus;
use crate::protocol::error::ServerReport;
use crate::protocol::{sqlstate, PgError};
use crate::server::PreparedSet;
use crate::stream::Stream;
use bytes::{Buf, BytesMut};
use client_input::ClientInput;
use expected::Expected;
use inbox::Inbox;
use link::{FirstAnswer, Linked};
pub(crate) use rules::Rules;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
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
pub(crate) type ServerSide<'a> = (&'a mut Stream, &'a mut PreparedSet);

/// What the pump tells the session besides its events, each taken once read.
#[derive(Default)]
struct Signals {
    /// A statement was repaired since the last [`Relay::take_repaired`].
    repaired: bool,
    /// A SET, RESET or DISCARD ALL completed, or the server reported a setting's new value:
    /// the session's settings must be read back.
    settings_changed: bool,
    /// The server refused a write as read-only (25006): it may no longer be the writer.
    refused_write: bool,
    /// The client sent something that may leave state in the backend's session (a statement
    /// naming advisory locks, LISTEN, temporary objects, cursors WITH HOLD, PREPARE or LOAD, or
    /// too long to look at): worth asking the server at the transaction's end.
    session_state_hint: bool,
    /// The client ran `LOAD`: the library stays in the backend, and no catalog shows it.
    loaded: bool,
}

pub(crate) struct Relay {
    rules: Rules,
    client: ClientInput,
    /// Translated bytes not yet written to the server.
    outbox: BytesMut,
    /// Bytes from the server; walked ones may go to the client.
    server: Inbox,
    /// The current server connection, if any.
    link: Option<Linked>,
    /// What the server owes, in order, and the transaction status it last reported.
    expected: Expected,
    /// The client's named statements.
    statements: ClientStatements,
    /// Statements known to parse, shared by all sessions.
    known: Arc<KnownStatements>,
    /// The client's name-resolution settings, part of every statement it prepares.
    resolution: Resolution,
    /// The client's own unnamed statement (its last Parse of it), parsed again where it is not.
    client_unnamed: Option<Arc<[u8]>>,
    /// The pid the client was told: a notification its own backend sends carries it, as it
    /// would directly.
    client_pid: i32,
    signals: Signals,
    /// Queries, transactions and bytes, for `SHOW STATS`.
    tally: Tally,
}

impl Relay {
    pub(crate) fn new(
        rules: Rules,
        known: Arc<KnownStatements>,
        client_pid: i32,
        traffic: Arc<Traffic>,
    ) -> Relay {
        Relay {
            rules,
            client: ClientInput::default(),
            outbox: BytesMut::new(),
            server: Inbox::default(),
            link: None,
            expected: Expected::default(),
            statements: ClientStatements::default(),
            known,
            resolution: Resolution::default(),
            client_unnamed: None,
            client_pid,
            signals: Signals::default(),
            tally: Tally::new(traffic),
        }
    }

    /// A server connection was linked: the next bytes it sends answer this client.
    pub(crate) fn link(&mut self, backend_pid: i32) {
        self.link = Some(Linked::new(backend_pid));
    }

    /// pgwarm ran a simple query of its own on the linked connection (the session-state
    /// question), which destroyed the unnamed statement there: the client's is parsed again
    /// before its next use.
    pub(crate) fn own_query_ran(&mut self) {
        self.set_client_unnamed_here(false);
    }

    /// The client keeps its link past the end of a transaction (pinned): the next one may be
    /// repaired and sent again once, as on a new link.
    pub(crate) fn keep_link(&mut self) {
        if let Some(link) = self.link.as_mut() {
            link.retried = false;
        }
    }

    /// The link ends (released, failed or replaced). Server bytes not walked yet are dropped:
    /// they belong to that connection, never to the next. Returns whether there were any (a
    /// server that spoke after its last ReadyForQuery is not clean enough to lend again).
    pub(crate) fn unlink(&mut self) -> bool {
        self.link = None;
        self.client.forget_translated();
        let leftover = self.server.drop_unwalked();
        self.expected.clear();
        self.outbox.clear();
        leftover
    }

    /// After a failed link whose batch was not answered: everything the server was sent and
    /// said is forgotten, so the batch is translated and sent again for the next connection.
    pub(crate) fn rewind(&mut self) {
        debug_assert!(self.link.as_ref().is_some_and(Linked::replayable));
        self.client.rewind();
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
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        if link.first == FirstAnswer::FatalHeld && !self.server.mid_message() {
            if let Some(next) = self.server.next().filter(|n| n.tag == b'E' && n.whole()) {
                self.server.pass(&next);
                self.server.drop_unwalked();
                link.first = FirstAnswer::Received;
                link.fatal_forwarded = true;
            }
        }
        link.fatal_forwarded
    }

    /// Whether a pgwarm statement was found missing or already there since the last call:
    /// a sign that something between pgwarm and the database does not keep them.
    pub(crate) fn take_repaired(&mut self) -> bool {
        std::mem::take(&mut self.signals.repaired)
    }

    /// Whether the client sent something that may leave session state since the last call.
    pub(crate) fn take_session_state_hint(&mut self) -> bool {
        std::mem::take(&mut self.signals.session_state_hint)
    }

    /// Whether the client ran `LOAD` since the last call.
    pub(crate) fn take_loaded(&mut self) -> bool {
        std::mem::take(&mut self.signals.loaded)
    }

    /// The session state question was not asked this time: ask at the next chance.
    pub(crate) fn rearm_session_state_hint(&mut self) {
        self.signals.session_state_hint = true;
    }

    /// Nothing from the server waits to be walked or written to the client.
    pub(crate) fn server_input_idle(&self) -> bool {
        self.server.len() == 0 && !self.server.mid_message()
    }

    /// Whole messages the server sent while pgwarm asked it something of its own (a
    /// notification), walked as if read now.
    pub(crate) fn deliver_from_server(&mut self, bytes: &[u8], set: &mut PreparedSet) {
        self.server.push(bytes);
        let _ = self.walk_server(set);
    }

    /// Whether the server refused a write as read-only (25006) since the last call.
    pub(crate) fn take_refused_write(&mut self) -> bool {
        std::mem::take(&mut self.signals.refused_write)
    }

    /// Whether the client changed session settings since the last call.
    pub(crate) fn take_settings_changed(&mut self) -> bool {
        std::mem::take(&mut self.signals.settings_changed)
    }

    /// The server's last reported transaction status.
    pub(crate) fn status(&self) -> TxStatus {
        self.expected.status()
    }

    /// Nothing in flight: no partial message either way, nothing expected, no COPY. A server
    /// connection left here can be rolled back or reset and reused.
    pub(crate) fn at_rest(&self) -> bool {
        self.expected.at_rest()
            && self.client.at_rest()
            && !self.server.mid_message()
            && self.outbox.is_empty()
    }

    /// Idle inside a transaction: the client owes the next message.
    pub(crate) fn idle_in_transaction(&self) -> bool {
        self.link.is_some() && !self.status().is_idle() && self.at_rest()
    }

    /// Queues an error for the client after whatever server output is already complete. Returns
    /// false if a server message is half-written, when an error would corrupt the stream.
    pub(crate) fn queue_error(&mut self, error: &PgError) -> bool {
        self.server.replace_unwalked(|buf| error.encode(buf))
    }

    /// Writes what is queued for the client; used after the last event before closing.
    pub(crate) async fn flush_client(&mut self, client: &mut Stream) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        client.write_all(self.server.walked()).await?;
        let n = self.server.walked_len();
        self.tally.sent(n);
        self.server.consume(n);
        client.flush().await
    }

    /// Moves bytes until something needs the session. `waiting` means a checkout is under way:
    /// the client is still read (its EOF matters) but no NeedServer is raised.
    pub(crate) fn poll_pump<C: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut C,
        mut server: Option<ServerSide<'_>>,
        waiting: bool,
    ) -> Poll<Event> {
        loop {
            match self.pump_round(cx, client, &mut server, waiting) {
                Err(event) => return Poll::Ready(event),
                Ok(true) => continue,
                Ok(false) => return Poll::Pending,
            }
        }
    }

    /// One step in each direction, then whatever the session must do now. Ok(progress), or the
    /// event that stops the pump.
    fn pump_round<C: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut C,
        server: &mut Option<ServerSide<'_>>,
        waiting: bool,
    ) -> Result<bool, Event> {
        let mut progress = false;
        if let Some((stream, set)) = server.as_mut() {
            progress |= self.poll_to_server(cx, stream, set)?;
        }
        progress |= self
            .poll_to_client(cx, client)
            .map_err(|ClientClosed| Event::ClientGone)?;
        progress |= self.poll_from_client(cx, client)?;
        if let Some((stream, set)) = server.as_mut() {
            match self.poll_from_server(cx, stream, set) {
                Ok(read) => progress |= read,
                Err(event) => {
                    // The transaction's last answer goes to the client before the session gives
                    // the connection back: the client's next transaction starts meanwhile. A
                    // closed client shows at the next pump.
                    if matches!(event, Event::Release) {
                        let _ = self.poll_to_client(cx, client);
                    }
                    return Err(event);
                }
            }
        }
        if self.link.is_none() && !waiting && self.client.untranslated() > 0 {
            if self.answer_locally() {
                return Ok(true);
            }
            return Err(Event::NeedServer);
        }
        // Terminate: once everything before it reached the server, the session ends; the
        // session's clean-up decides whether the server connection can be reused.
        if self.client.terminated() && self.client.untranslated() == 0 && self.outbox.is_empty() {
            return Err(Event::ClientGone);
        }
        Ok(progress)
    }

    /// Client messages, translated for this server, to the server. Ok(true) when some went.
    fn poll_to_server(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
        set: &mut PreparedSet,
    ) -> Result<bool, Event> {
        if self.client.untranslated() > 0 {
            self.translate(set);
        }
        let mut wrote = false;
        if !self.outbox.is_empty() {
            match Pin::new(&mut *stream).poll_write(cx, &self.outbox) {
                Poll::Ready(Ok(0)) => return Err(self.server_failed("write returned 0", false)),
                Poll::Ready(Ok(n)) => {
                    self.outbox.advance(n);
                    self.drop_sent_client_bytes();
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(self.server_failed(&e.to_string(), is_reset(&e))),
                Poll::Pending => {}
            }
        }
        // TLS keeps what the socket could not take inside rustls until flushed; for plain TCP
        // this does nothing.
        if let Poll::Ready(Err(e)) = Pin::new(&mut *stream).poll_flush(cx) {
            return Err(self.server_failed(&e.to_string(), is_reset(&e)));
        }
        Ok(wrote)
    }

    /// Reads and walks client input. Only checked bytes waiting for the server count against
    /// the limit: a message pgwarm must read whole keeps being read until it is.
    fn poll_from_client<C: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut C,
    ) -> Result<bool, Event> {
        if self.client.terminated() || self.client.untranslated() + self.outbox.len() >= HIGH_WATER
        {
            return Ok(false);
        }
        match self.client.inbox().poll_read(cx, client) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Err(Event::ClientGone),
            Poll::Ready(Ok(n)) => {
                self.tally.received(n);
                self.walk_client()
                    .map_err(|e| Event::CloseClient(PgError::protocol_violation(e.to_string())))?;
                Ok(true)
            }
            Poll::Pending => Ok(false),
        }
    }

    /// Reads and walks server input; an event the walk found stops the pump.
    fn poll_from_server(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
        set: &mut PreparedSet,
    ) -> Result<bool, Event> {
        if self.server.len() >= HIGH_WATER {
            return Ok(false);
        }
        match self.server.poll_read(cx, stream) {
            Poll::Ready(Ok(0)) => {
                let reason = self.closed_reason();
                Err(self.server_failed(&reason, false))
            }
            Poll::Ready(Ok(_)) => match self.walk_server(set) {
                Some(event) => Err(event),
                None => Ok(true),
            },
            Poll::Ready(Err(e)) => Err(self.server_failed(&e.to_string(), is_reset(&e))),
            Poll::Pending => Ok(false),
        }
    }

    /// Writes walked server bytes to the client. Ok(true) when some went.
    fn poll_to_client<C: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut C,
    ) -> Result<bool, ClientClosed> {
        let mut wrote = false;
        if self.server.walked_len() > 0 {
            match Pin::new(&mut *client).poll_write(cx, self.server.walked()) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    self.server.consume(n);
                    self.tally.sent(n);
                    wrote = true;
                }
                Poll::Ready(_) => return Err(ClientClosed),
                Poll::Pending => {}
            }
        }
        // Over TLS, what the socket could not take waits inside rustls until flushed.
        if let Poll::Ready(Err(_)) = Pin::new(&mut *client).poll_flush(cx) {
            return Err(ClientClosed);
        }
        Ok(wrote)
    }

    /// A failed server connection. The batch may be replayed only when the connection was
    /// *reset*: a backend that closes with our bytes still unread makes its kernel answer with
    /// RST, so a reset before any answer means the batch was never read. A clean close (EOF),
    /// with or without a FATAL first, means the backend may have read and run it (a DBA's
    /// pg_terminate_backend of a running query, a procedure that committed half-way): running
    /// it again could repeat committed work or undo a deliberate kill. The one FATAL that says
    /// the batch was never run is `idle_session_timeout`'s (57P05): PostgreSQL raises it only
    /// in a backend waiting for a command, or at the interrupt check right after it read one,
    /// before running it. It races a batch sent just as the timeout fires, often with the short
    /// timeout of a tight database.
    fn server_failed(&mut self, reason: &str, reset: bool) -> Event {
        let held = self.held_fatal();
        let timed_out_idle = held
            .as_ref()
            .is_some_and(|r| r.code == sqlstate::IDLE_SESSION_TIMEOUT);
        // A held FATAL says why better than the reset that followed it.
        let reason = match held {
            Some(report) => closed_by(Some(&report)),
            None => reason.to_owned(),
        };
        let replayable = (reset || timed_out_idle)
            && self.link.as_ref().is_some_and(Linked::replayable)
            && self.server.walked_len() == 0;
        Event::ServerFailed { replayable, reason }
    }

    /// Why the server's socket closed: the held FATAL's message if there was one.
    fn closed_reason(&self) -> String {
        closed_by(self.held_fatal().as_ref())
    }

    /// The FATAL held back as the first answer of this link, if there is one.
    fn held_fatal(&self) -> Option<ServerReport> {
        let held = self
            .link
            .as_ref()
            .is_some_and(|l| l.first == FirstAnswer::FatalHeld);
        self.server
            .next()
            .filter(|n| held && n.tag == b'E')
            .and_then(|n| self.server.whole_body(&n))
            .map(ServerReport::read)
    }

    /// Forgets client bytes and messages the server has, unless they may still be replayed.
    fn drop_sent_client_bytes(&mut self) {
        let replay = match self.link.as_mut() {
            Some(link) if link.replay && self.client.translated() > REPLAY_LIMIT => {
                link.replay = false;
                false
            }
            Some(link) => link.replay,
            None => false,
        };
        if !replay {
            self.client.forget_translated();
        }
    }

    /// Whether translated client bytes are kept for a replay.
    fn replay(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.replay)
    }

    /// The server answered on this link: the batch is its, and is not kept for a replay.
    fn answered(&mut self) {
        if let Some(link) = self.link.as_mut() {
            link.first = FirstAnswer::Received;
            link.replay = false;
        }
        self.drop_sent_client_bytes();
    }
}

/// "The database closed the connection", with the reason its FATAL gave when there was one.
fn closed_by(fatal: Option<&ServerReport>) -> String {
    match fatal {
        Some(report) => format!("the database closed the connection: {}", report.message),
        None => "the database closed the connection".to_owned(),
    }
}

/// The client's socket failed or closed while pgwarm wrote to it.
struct ClientClosed;

/// Connection resets: the peer closed with data unread, or was never there.
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}
