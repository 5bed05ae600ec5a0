//! Unit tests of the relay's state machine, on bytes alone (no sockets): framing, transaction
//! boundaries, COPY, errors and replay here; named statements in [`statements`].

mod statements;

use super::driver::{split, Driver, BACKEND_PID, CLIENT_PID};
use super::expected::Kind;
use super::link::FirstAnswer;
use super::*;
use crate::config::Upstream;
use crate::protocol::framing::FrameError;
use bytes::BufMut;
use postgres_protocol::message::frontend;

fn tags(messages: &[(u8, Vec<u8>)]) -> String {
    messages.iter().map(|(t, _)| *t as char).collect()
}

fn linked(max_prepared: usize) -> Driver {
    linked_to(max_prepared, Upstream::Database)
}

fn linked_to(max_prepared: usize, upstream: Upstream) -> Driver {
    Driver::new(max_prepared, upstream)
}

fn relay() -> Driver {
    linked(200)
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
    r.client(&q).unwrap();
    assert_eq!(r.expected.len(), 1);
    assert!(r.server(&msg(b'C', b"SELECT 1\0")).is_none());
    assert!(matches!(r.server(&z(b'I')), Some(Event::Release)));
}

#[test]
fn a_ready_for_query_with_an_unknown_status_fails_the_server_connection() {
    let mut r = relay();
    r.client(&msg(b'Q', b"select 1\0")).unwrap();
    match r.server(&z(b'X')) {
        Some(Event::ServerFailed { replayable, reason }) => {
            assert!(!replayable);
            assert!(reason.contains("0x58"), "{reason}");
        }
        other => panic!("expected ServerFailed, got {other:?}"),
    }
}

#[test]
fn a_transaction_keeps_the_link_until_it_ends() {
    let mut r = relay();
    r.client(&msg(b'Q', b"begin\0")).unwrap();
    assert!(r.server(&z(b'T')).is_none());
    r.client(&msg(b'Q', b"commit\0")).unwrap();
    assert!(matches!(r.server(&z(b'I')), Some(Event::Release)));
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
    r.client(&b).unwrap();
    assert_eq!(
        r.expected.iter().filter(|e| e.kind == Kind::Sync).count(),
        3
    );
    let mut answer = msg(b'1', b"");
    answer.extend(msg(b'C', b"SELECT 1\0"));
    answer.extend(z(b'I'));
    assert!(r.server(&answer).is_none());
    assert!(r.server(&answer).is_none());
    assert!(matches!(r.server(&answer), Some(Event::Release)));
}

#[test]
fn flush_without_sync_keeps_the_link() {
    let mut r = relay();
    let mut b = BytesMut::new();
    frontend::parse("s1", "select 1", [], &mut b).unwrap();
    frontend::flush(&mut b);
    r.client(&b).unwrap();
    assert!(r.server(&msg(b'1', b"")).is_none());
    assert!(!r.at_rest());
}

#[test]
fn extended_copy_in_ignores_the_sync_sent_before_copy_done() {
    // tokio-postgres: Bind, Execute, Sync, then CopyData..., CopyDone, Sync.
    let mut r = relay();
    let mut b = BytesMut::new();
    frontend::execute("", 0, &mut b).unwrap();
    frontend::sync(&mut b);
    r.client(&b).unwrap();
    assert!(r.server(&msg(b'2', b"")).is_none());
    assert!(r.server(&msg(b'G', &[0, 0, 0])).is_none());
    assert_eq!(r.expected.len(), 1, "only the Execute is owed");
    let mut b = BytesMut::new();
    frontend::sync(&mut b); // ignored by a server in COPY mode
    r.client(&b).unwrap();
    assert_eq!(r.expected.len(), 1);
    let mut b = BytesMut::new();
    frontend::copy_done(&mut b);
    frontend::sync(&mut b);
    r.client(&b).unwrap();
    assert_eq!(r.expected.len(), 2);
    assert!(r.server(&msg(b'C', b"COPY 1\0")).is_none());
    assert!(matches!(r.server(&z(b'I')), Some(Event::Release)));
}

#[test]
fn simple_copy_in_keeps_the_query_pending() {
    let mut r = relay();
    r.client(&msg(b'Q', b"copy t from stdin\0")).unwrap();
    assert!(r.server(&msg(b'G', &[0, 0, 0])).is_none());
    assert_eq!(r.expected.len(), 1);
    r.client(&msg(b'd', b"1\n")).unwrap();
    r.client(&msg(b'c', b"")).unwrap();
    assert!(matches!(r.server(&z(b'I')), Some(Event::Release)));
}

#[test]
fn large_messages_stream_through_in_pieces() {
    let mut r = relay();
    let row = msg(b'D', &vec![7u8; 100_000]);
    r.client(&msg(b'Q', b"select big\0")).unwrap();
    for chunk in row.chunks(4096) {
        assert!(r.server(chunk).is_none());
    }
    assert_eq!(r.server.walked_len(), row.len());
    assert!(matches!(r.server(&z(b'I')), Some(Event::Release)));
}

#[test]
fn a_fatal_first_answer_is_held_and_only_a_reset_makes_the_batch_replayable() {
    let mut r = relay();
    r.client(&msg(b'Q', b"select 1\0")).unwrap();
    let fatal = msg(b'E', b"SFATAL\0VFATAL\0C57P01\0Mterminating\0\0");
    assert!(r.server(&fatal).is_none(), "held, not forwarded");
    assert_eq!(r.link.as_ref().unwrap().first, FirstAnswer::FatalHeld);
    assert_eq!(r.server.walked_len(), 0);
    assert!(r.closed_reason().contains("terminating"));
    // A clean close: the backend may have read the batch.
    let reason = r.closed_reason();
    match r.server_failed(&reason, false) {
        Event::ServerFailed { replayable, .. } => assert!(!replayable),
        other => panic!("{other:?}"),
    }
    // A reset: it never read it.
    match r.server_failed("reset", true) {
        Event::ServerFailed { replayable, .. } => assert!(replayable),
        other => panic!("{other:?}"),
    }
    r.rewind();
    assert_eq!(r.client.kept(), (0, 0));
    assert_eq!(
        r.client.queue_len(),
        1,
        "the query is kept to be sent again"
    );
    assert!(r.expected.is_empty());
    assert!(r.link.is_none());
}

/// `idle_session_timeout` fires only in a backend waiting for a command: the batch that met it
/// was never read, whether the socket then closes cleanly or with a reset.
#[test]
fn a_first_answer_of_idle_session_timeout_makes_the_batch_replayable() {
    let mut r = relay();
    r.client(&msg(b'Q', b"select 1\0")).unwrap();
    let fatal = msg(
        b'E',
        b"SFATAL\0VFATAL\0C57P05\0Mterminating connection due to idle-session timeout\0\0",
    );
    assert!(r.server(&fatal).is_none(), "held, not forwarded");
    let reason = r.closed_reason();
    assert!(reason.contains("idle-session timeout"), "{reason}");
    match r.server_failed(&reason, false) {
        Event::ServerFailed { replayable, .. } => assert!(replayable),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_huge_first_error_streams_instead_of_stalling() {
    let mut r = relay();
    r.client(&msg(b'Q', b"select 1\0")).unwrap();
    let mut body = b"SERROR\0VERROR\0C22P02\0M".to_vec();
    body.extend(std::iter::repeat_n(b'x', 300_000));
    body.extend_from_slice(b"\0\0");
    let err = msg(b'E', &body);
    assert!(r.server(&err[..100_000]).is_none());
    assert!(
        r.link.as_ref().unwrap().first == FirstAnswer::Received,
        "a long error is an answer, streamed without waiting for its end"
    );
    assert_eq!(r.server.walked_len(), 100_000);
}

#[test]
fn a_copy_the_client_abandoned_ends_at_ready_for_query() {
    let mut r = relay();
    r.client(&msg(b'Q', b"copy t from stdin\0")).unwrap();
    assert!(r.server(&msg(b'G', &[0, 0, 0])).is_none());
    r.client(&msg(b'd', b"not a number\n")).unwrap();
    // The server fails the COPY; libpq then never sends CopyDone.
    assert!(r
        .server(&msg(b'E', b"SERROR\0VERROR\0C22P02\0Mbad\0\0"))
        .is_none());
    assert!(matches!(r.server(&z(b'I')), Some(Event::Release)));
}

#[test]
fn a_malformed_ready_for_query_fails_the_connection_without_panicking() {
    let mut r = relay();
    r.client(&msg(b'Q', b"select 1\0")).unwrap();
    assert!(matches!(
        r.server(&msg(b'Z', b"")),
        Some(Event::ServerFailed {
            replayable: false,
            ..
        })
    ));
}

#[test]
fn an_ordinary_error_is_an_answer() {
    let mut r = relay();
    r.client(&msg(b'Q', b"select x\0")).unwrap();
    let err = msg(b'E', b"SERROR\0VERROR\0C42703\0Mno column\0\0");
    assert!(r.server(&err).is_none());
    assert!(r.link.as_ref().unwrap().first == FirstAnswer::Received && !r.replay());
    assert!(matches!(r.server(&z(b'I')), Some(Event::Release)));
}

#[test]
fn garbage_is_refused_before_it_is_forwarded() {
    let mut r = relay();
    let err = r.client(b"GET / HTTP/1.1\r\n").unwrap_err();
    assert_eq!(err, FrameError::UnknownType(b'G'));
    assert_eq!(r.client.walked_len(), 0);
    let mut r = relay();
    r.rules.max_message_size = 100;
    assert!(matches!(
        r.client(&msg(b'Q', &[b'x'; 200])),
        Err(FrameError::TooLong { .. })
    ));
}

#[test]
fn bytes_after_the_last_ready_for_query_never_reach_the_next_link() {
    let mut r = relay();
    r.client(&msg(b'Q', b"select 1\0")).unwrap();
    let mut late = z(b'I');
    late.extend_from_slice(&msg(b'A', b"\0\0\0\x01chan\0payload\0"));
    assert!(matches!(r.server(&late), Some(Event::Release)));
    assert!(
        r.unlink(),
        "the notification after Z makes the connection unfit to lend"
    );
    assert_eq!(r.server.len(), r.server.walked_len());
    r.link(BACKEND_PID);
    r.client(&msg(b'Q', b"select 2\0")).unwrap();
    assert!(matches!(r.server(&z(b'I')), Some(Event::Release)));
    assert!(!r.unlink());
}

#[test]
fn terminate_stops_the_scan() {
    let mut r = relay();
    let mut b = BytesMut::new();
    frontend::terminate(&mut b);
    r.client(&b).unwrap();
    assert!(r.client.terminated());
    assert_eq!(r.client.walked_len(), 0);
}

// Named prepared statements in transaction mode.

/// A client socket that keeps what is written until it is flushed, as a TLS stream does when
/// the socket under it is full; it never has anything to read.
#[derive(Default)]
struct HoldsUntilFlushed {
    held: Vec<u8>,
    delivered: Vec<u8>,
}

impl tokio::io::AsyncWrite for HoldsUntilFlushed {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.delivered.append(&mut this.held);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl tokio::io::AsyncRead for HoldsUntilFlushed {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

#[test]
fn the_pump_flushes_what_it_wrote_to_the_client() {
    let mut relay = linked(0).relay;
    let error = PgError::admin_shutdown("bye");
    assert!(relay.queue_error(&error));
    let mut client = HoldsUntilFlushed::default();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(relay
        .poll_pump(&mut cx, &mut client, None, true)
        .is_pending());
    assert!(client.held.is_empty(), "nothing left waiting for a flush");
    assert_eq!(client.delivered.first(), Some(&b'E'));
}
