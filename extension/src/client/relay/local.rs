//! Answering without a server connection: a client's Parse + Sync (and Close + Sync) outside a
//! transaction, for statements pgwarm can vouch for, needs nothing from the database.
//!
//! The Parse is only recorded (it already was, when it was read); the statement is created on
//! the server connection of the client's first Bind or Describe, as for a statement that
//! connection evicted. pgwarm vouches only for statements some connection has parsed before
//! ([`KnownStatements`](crate::client::statements::KnownStatements)), so an invalid query still
//! fails at its Parse, as the client expects.

use super::expect::Kind;
use super::from_client::Edit;
use super::Relay;
use crate::protocol::backend::{TxStatus, CLOSE_COMPLETE, PARSE_COMPLETE, READY_IDLE};
use crate::protocol::framing::HEADER_LEN;

impl Relay {
    /// Answers the next batch here if it is made only of Parses of known statements and Closes,
    /// ending with a Sync. Returns whether it did.
    pub(super) fn answer_locally(&mut self) -> bool {
        if self.linked || !self.tracking() || !self.status.is_idle() || !self.expect.is_empty() {
            return false;
        }
        let mut at = self.c_base + self.c_done as u64;
        let mut answers = Vec::new();
        let mut end = None;
        for (i, message) in self.outgoing.iter().enumerate().skip(self.o_done) {
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
                    end = Some((i, at + HEADER_LEN as u64));
                    break;
                }
                _ => return false,
            }
        }
        let Some((last, end_at)) = end else {
            return false;
        };
        if end_at > self.c_base + self.c_scanned as u64 {
            return false;
        }
        for answer in answers {
            self.splice_server(0, answer);
        }
        self.splice_server(0, READY_IDLE);
        self.tally.ready(TxStatus::Idle);
        self.outgoing.drain(self.o_done..=last);
        self.c_done = (end_at - self.c_base) as usize;
        self.drop_sent_client_bytes();
        true
    }
}
