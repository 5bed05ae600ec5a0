//! Answering without a server connection: a client's Parse + Sync (and Close + Sync) outside a
//! transaction, for statements pgwarm can vouch for, needs nothing from the database.
//!
//! The Parse is only recorded (it already was, when it was read); the statement is created on
//! the server connection of the client's first Bind or Describe, as for a statement that
//! connection evicted. pgwarm vouches only for statements some connection has parsed before
//! ([`KnownStatements`](crate::client::statements::KnownStatements)), so an invalid query still
//! fails at its Parse, as the client expects.

use super::expected::Kind;
use super::from_client::Edit;
use super::Relay;
use crate::protocol::backend::{TxStatus, CLOSE_COMPLETE, PARSE_COMPLETE, READY_IDLE};
use crate::protocol::framing::HEADER_LEN;

impl Relay {
    /// Answers the next batch here if it is made only of Parses of known statements and Closes,
    /// ending with a Sync. Returns whether it did.
    pub(super) fn answer_locally(&mut self) -> bool {
        if self.link.is_some()
            || !self.tracking()
            || !self.status().is_idle()
            || !self.expected.is_empty()
        {
            return false;
        }
        let mut at = self.client.done_offset();
        let mut answers = Vec::new();
        let mut end = None;
        for (i, message) in self.client.queued().enumerate() {
            if message.at != at {
                return false;
            }
            match (&message.edit, message.kind) {
                (Edit::Parse { len, statement, .. }, _)
                    if self.known.contains(statement.digest()) =>
                {
                    answers.push(PARSE_COMPLETE);
                    at += *len as u64;
                }
                (Edit::Close { len, .. }, _) => {
                    answers.push(CLOSE_COMPLETE);
                    at += *len as u64;
                }
                (Edit::None, Kind::Sync) => {
                    end = Some((i + 1, at + HEADER_LEN as u64));
                    break;
                }
                _ => return false,
            }
        }
        let Some((messages, end_at)) = end else {
            return false;
        };
        if end_at > self.client.walk_offset() {
            return false;
        }
        for answer in answers {
            self.server.splice(0, answer);
        }
        self.server.splice(0, READY_IDLE);
        self.tally.ready(TxStatus::Idle);
        self.client.answered_here(messages, end_at);
        self.drop_sent_client_bytes();
        true
    }
}
