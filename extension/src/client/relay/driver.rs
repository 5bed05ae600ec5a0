//! A relay driven without sockets, the way the session drives it: client bytes in, server bytes
//! in, links made and ended. The unit tests check what comes out of it; the fuzz target
//! (`extension/fuzz`, feature `fuzzing`) feeds it arbitrary bytes and asks only that nothing
//! panics, whatever a client or a server sends.

use super::{Event, Relay, Rules};
use crate::config::{PoolMode, Upstream};
#[cfg(test)]
use crate::protocol::framing::{self, FrameError, HEADER_LEN};
use crate::server::PreparedSet;
use bytes::BytesMut;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// The pid the relay's client was told, and that of the imaginary backend it is linked to.
pub(crate) const CLIENT_PID: i32 = 1 << 23;
pub(crate) const BACKEND_PID: i32 = 4242;

/// A relay linked to an imaginary server connection: what the pump would write to the server is
/// collected in `sent`, and the server's statements are `set`.
pub(crate) struct Driver {
    pub(super) relay: Relay,
    pub(super) set: PreparedSet,
    pub(super) sent: BytesMut,
}

impl Deref for Driver {
    type Target = Relay;
    fn deref(&self) -> &Relay {
        &self.relay
    }
}

impl DerefMut for Driver {
    fn deref_mut(&mut self) -> &mut Relay {
        &mut self.relay
    }
}

impl Driver {
    /// A transaction-mode relay, linked, keeping `max_prepared` statements per connection.
    pub(crate) fn new(max_prepared: usize, upstream: Upstream) -> Driver {
        let rules = Rules {
            mode: PoolMode::Transaction,
            max_message_size: 1 << 20,
            watch_idle: false,
            max_prepared,
            unnamed_server: upstream == Upstream::Pooler,
            watch_session_state: true,
            refuse_session_state: false,
        };
        let mut relay = Relay::new(rules, Arc::default(), CLIENT_PID, Arc::default());
        relay.link(BACKEND_PID);
        Driver {
            relay,
            set: PreparedSet::default(),
            sent: BytesMut::new(),
        }
    }

    /// As with `PGWARM_PINNING=refuse`.
    #[cfg(test)]
    pub(crate) fn refusing_session_state(mut self) -> Driver {
        self.relay.rules.refuse_session_state = true;
        self
    }

    /// Translates what was walked and marks it written to the server, as the pump would.
    fn write_to_server(&mut self) {
        self.relay.translate(&mut self.set);
        self.sent.extend_from_slice(&self.relay.outbox);
        self.relay.outbox.clear();
        self.relay.drop_sent_client_bytes();
    }
}

#[cfg(test)]
impl Driver {
    /// Walks and translates client bytes and marks them written, as the pump would.
    pub(super) fn client(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        self.relay.client.inbox().push(bytes);
        self.relay.walk_client()?;
        self.write_to_server();
        Ok(())
    }

    pub(super) fn server(&mut self, bytes: &[u8]) -> Option<Event> {
        self.relay.server.push(bytes);
        self.relay.walk_server(&mut self.set)
    }

    /// The messages written to the server so far, as (tag, body).
    pub(super) fn take_sent(&mut self) -> Vec<(u8, Vec<u8>)> {
        let sent = split(&self.sent);
        self.sent.clear();
        sent
    }

    /// The messages ready for the client so far, as (tag, body).
    pub(super) fn take_for_client(&mut self) -> Vec<(u8, Vec<u8>)> {
        let out = split(self.relay.server.walked());
        self.relay.server.consume(self.relay.server.walked_len());
        out
    }

    /// A new link to another (empty) server connection.
    pub(super) fn relink(&mut self) {
        assert!(!self.relay.unlink());
        self.set = PreparedSet::default();
        self.relay.link(BACKEND_PID);
    }

    /// A new link to the same server connection, whose statements pgwarm believes are there.
    pub(super) fn relink_keeping_statements(&mut self) {
        assert!(!self.relay.unlink());
        self.relay.link(BACKEND_PID);
    }
}

/// Whole messages in `bytes`, as (tag, body); panics on a partial one.
#[cfg(test)]
pub(super) fn split(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((tag, len)) = framing::header(bytes) {
        out.push((tag, bytes[HEADER_LEN..len].to_vec()));
        bytes = &bytes[len..];
    }
    assert!(bytes.is_empty(), "a partial message");
    out
}

/// Plays `script` against a relay as a session would, for the fuzzer. The first byte picks the
/// set-up (statements kept or passed through, a pooler upstream or not); then each step is an
/// operation byte, a length byte and that many bytes:
/// - `0`: client bytes. Unlinked, the relay answers what it can by itself or links, as
///   `poll_pump` and `Session::link` do; linked, it translates and "writes" to the server;
/// - `1`: server bytes, when linked; a release unlinks, a failure or a closed client ends;
/// - `2`: the server connection fails: a batch the server never answered is replayed on another
///   connection, as the session does, otherwise the session ends;
/// - `3`: the client is closed with an error;
/// - anything else: the link ends cleanly if the relay is at rest.
#[cfg(feature = "fuzzing")]
pub(crate) fn run_script(script: &[u8]) {
    let Some((&setup, mut rest)) = script.split_first() else {
        return;
    };
    let upstream = match setup & 1 {
        0 => Upstream::Database,
        _ => Upstream::Pooler,
    };
    let max_prepared = match setup & 6 {
        0 => 0,
        2 => 1,
        _ => 200,
    };
    let mut d = Driver::new(max_prepared, upstream);
    let _ = d.relay.unlink();
    let mut linked = false;
    while let [op, len, tail @ ..] = rest {
        let (chunk, after) = tail.split_at(usize::from(*len).min(tail.len()));
        rest = after;
        match op {
            0 => {
                d.relay.client.inbox().push(chunk);
                if d.relay.walk_client().is_err() {
                    return;
                }
                if !linked && d.relay.client.untranslated() > 0 && !d.relay.answer_locally() {
                    d.relay.link(BACKEND_PID);
                    linked = true;
                }
                if linked {
                    d.write_to_server();
                    d.sent.clear();
                }
            }
            1 if linked => {
                d.relay.server.push(chunk);
                let event = d.relay.walk_server(&mut d.set);
                // What is walked goes to the client.
                d.relay.server.consume(d.relay.server.walked_len());
                match event {
                    Some(Event::Release) => {
                        let _ = d.relay.unlink();
                        linked = false;
                    }
                    Some(Event::ServerFailed { .. } | Event::CloseClient(_)) => return,
                    _ => {}
                }
            }
            2 if linked => {
                let replayable = d.relay.link.as_ref().is_some_and(|l| l.replayable());
                if replayable && d.relay.server.walked_len() == 0 {
                    d.relay.rewind();
                    d.set = PreparedSet::default();
                    d.relay.link(BACKEND_PID);
                } else {
                    let _ = d.relay.pass_on_fatal();
                    let _ = d.relay.unlink();
                    return;
                }
            }
            3 => {
                let _ = d
                    .relay
                    .queue_error(&crate::protocol::PgError::protocol_violation("fuzz"));
                return;
            }
            _ if linked && d.relay.at_rest() => {
                let _ = d.relay.unlink();
                linked = false;
            }
            _ => {}
        }
    }
}
