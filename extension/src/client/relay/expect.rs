//! What the server owes, in order: one entry per message sent on the current link that the server
//! answers, including the messages pgwarm added (a Parse that re-creates a statement, a Close that
//! evicts one) and the ones it answered itself (a Parse of a statement the server already has).
//!
//! PostgreSQL answers messages strictly in order, so the front entry always names the message the
//! next completion belongs to. That is how pgwarm removes the answers to its own messages, slips
//! its own answers in at the right place, and knows when the link has nothing left in flight.
//! After an error in the extended protocol the server skips everything up to the next Sync; the
//! skipped entries are dropped, and whatever they changed in pgwarm's books is undone.

use crate::client::statements::Statement;
use crate::protocol::PgError;
use crate::server::Digest;
use std::sync::Arc;

/// A frontend message the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Sync,
    Query,
    FunctionCall,
}

impl Kind {
    /// Whether a backend message with `tag` is the last one answering this message.
    pub(crate) fn done_by(self, tag: u8) -> bool {
        match self {
            Kind::Parse => tag == b'1',
            Kind::Bind => tag == b'2',
            Kind::Close => tag == b'3',
            Kind::Describe => matches!(tag, b'T' | b'n'),
            Kind::Execute => matches!(tag, b'C' | b'I' | b's'),
            Kind::Sync | Kind::Query | Kind::FunctionCall => tag == b'Z',
        }
    }

    /// Extended-protocol messages: an ErrorResponse answers them, and the server then skips to
    /// the next Sync.
    pub(crate) fn extended(self) -> bool {
        !matches!(self, Kind::Sync | Kind::Query | Kind::FunctionCall)
    }
}

/// What pgwarm does with the answer.
#[derive(Debug)]
pub(crate) enum Act {
    /// The client's own message: the answer goes to the client.
    Forward,
    /// pgwarm's own message: its completion is dropped (errors still reach the client, since
    /// they fail the client's next message).
    Swallow,
    /// Never sent: pgwarm answers with these bytes when the entry reaches the front.
    Answer(&'static [u8]),
    /// Sent as a message that is sure to fail; its ErrorResponse is replaced by this one.
    ReplaceError(Box<PgError>),
    /// Sent as an empty query; its EmptyQueryResponse becomes this CommandComplete message.
    EmptyAs(&'static [u8]),
}

/// What to undo in pgwarm's books if the message fails or is skipped.
#[derive(Debug)]
pub(crate) enum Undo {
    None,
    /// A client's Parse: the name was recorded when it was read.
    Forget(Box<[u8]>, Arc<Statement>),
    /// A client's Close or DEALLOCATE: the name was dropped when it was read.
    Restore(Box<[u8]>, Arc<Statement>),
    /// The client's unnamed statement, parsed again by pgwarm: if that fails, it is not there.
    UnnamedLost,
}

/// How a message touches a pgwarm statement on the server, for the books of its `PreparedSet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touch {
    None,
    /// A Parse pgwarm sent: the statement is only on the server if it succeeds.
    Creates(Digest),
    /// A Parse pgwarm sent right after a Close of the same statement, to parse it anew: if it
    /// fails the statement is gone; if both were skipped, the old one is still there.
    Recreates(Digest),
    /// A Close of an evicted statement: if it fails or is skipped, the statement is still there.
    Closes(Digest),
    /// A Bind or Describe of it: if the server says it does not exist (someone deallocated it
    /// behind pgwarm's back), it is created again next time.
    Uses(Digest),
    /// A client's Parse sent as the unnamed statement (`PGWARM_UPSTREAM_POOLER=on`): only whether
    /// it parses is recorded.
    Checks(Digest),
}

#[derive(Debug)]
pub(crate) struct Expect {
    pub(crate) kind: Kind,
    pub(crate) act: Act,
    pub(crate) undo: Undo,
    /// Which pgwarm statement on the server the message touches.
    pub(crate) statement: Touch,
    /// The client message count when it was read, and the server set's clock when it was sent:
    /// `DEALLOCATE ALL` forgets statements from before it, not those pipelined after it.
    pub(crate) seq: u64,
    pub(crate) clock: u64,
}

impl Expect {
    pub(crate) fn new(kind: Kind, act: Act) -> Expect {
        Expect {
            kind,
            act,
            undo: Undo::None,
            statement: Touch::None,
            seq: 0,
            clock: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions() {
        assert!(Kind::Describe.done_by(b'n') && !Kind::Describe.done_by(b't'));
        assert!(Kind::Execute.done_by(b's') && !Kind::Execute.done_by(b'T'));
        assert!(Kind::Query.done_by(b'Z') && !Kind::Query.done_by(b'C'));
        assert!(!Kind::Sync.extended() && Kind::Close.extended());
    }
}
