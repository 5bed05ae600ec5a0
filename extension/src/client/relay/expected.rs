//! What the server owes on the current link, in order, and the protocol state that decides
//! when the link has nothing left in flight: one [`Answer`] per message sent that the server
//! answers, including the messages pgwarm added (a Parse that re-creates a statement, a Close
//! that evicts one) and the ones it answered itself (a Parse of a statement the server already
//! has).
//!
//! PostgreSQL answers messages strictly in order, so the front entry always names the message the
//! next completion belongs to. That is how pgwarm removes the answers to its own messages, slips
//! its own answers in at the right place, and knows when the link has nothing left in flight.
//! After an error in the extended protocol the server skips everything up to the next Sync; the
//! skipped entries are handed back so that whatever they changed in pgwarm's books is undone.
//! [`Expected`] owns the queue and these rules; the relay's stages ask it, never edit it.

use crate::client::statements::Statement;
use crate::protocol::backend::TxStatus;
use crate::protocol::PgError;
use crate::server::Digest;
use std::collections::VecDeque;
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

/// What becomes of the server's answer to a message: its fate.
#[derive(Debug)]
pub(crate) enum Fate {
    /// The client's own message: the answer goes to the client.
    Forward,
    /// pgwarm's own message: its completion is dropped (errors still reach the client, since
    /// they fail the client's next message).
    Swallow,
    /// Never sent: pgwarm answers with these bytes when the entry reaches the front.
    Ours(&'static [u8]),
    /// Sent as a message that is sure to fail; its ErrorResponse is replaced by this one.
    ReplaceError(Box<PgError>),
    /// Sent as an empty query; its EmptyQueryResponse becomes this CommandComplete message.
    EmptyAs(&'static [u8]),
}

/// What to undo in the client's statement books if the message fails or is skipped.
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

/// What a message does to a pgwarm statement on the server, for the books of its `PreparedSet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
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

/// One answer the server owes: to which message, its fate, and what to take back if it fails.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) kind: Kind,
    pub(crate) fate: Fate,
    pub(crate) undo: Undo,
    /// What the message does to a pgwarm statement on the server.
    pub(crate) effect: Effect,
    /// The client message count when it was read, and the server set's clock when it was sent:
    /// `DEALLOCATE ALL` forgets statements from before it, not those pipelined after it.
    pub(crate) seq: u64,
    pub(crate) clock: u64,
}

impl Answer {
    pub(crate) fn new(kind: Kind, fate: Fate) -> Answer {
        Answer {
            kind,
            fate,
            undo: Undo::None,
            effect: Effect::None,
            seq: 0,
            clock: 0,
        }
    }
}

/// Whose answer a ReadyForQuery ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadyFor {
    /// The Sync pgwarm added before sending a batch again: it is not the client's.
    Ours,
    /// The client's Sync or query.
    Client,
}

/// The expected answers of the current link, with the protocol state around them: whether the
/// client left messages without a Sync, whether the server is in COPY FROM STDIN (where it
/// ignores Sync), and the transaction status it last reported.
#[derive(Debug)]
pub(crate) struct Expected {
    queue: VecDeque<Answer>,
    /// Parse/Bind/Describe/Execute/Close/Flush since the client's last Sync: the link is kept.
    unsynced: bool,
    /// In COPY FROM STDIN, where the server ignores Sync.
    copy_in: bool,
    /// The server's last reported transaction status.
    status: TxStatus,
}

impl Default for Expected {
    fn default() -> Expected {
        Expected {
            queue: VecDeque::new(),
            unsynced: false,
            copy_in: false,
            status: TxStatus::Idle,
        }
    }
}

impl Expected {
    /// The server's last reported transaction status.
    pub(crate) fn status(&self) -> TxStatus {
        self.status
    }

    /// Nothing owed, nothing unsynced, no COPY: the link has nothing in flight.
    pub(crate) fn at_rest(&self) -> bool {
        self.queue.is_empty() && !self.unsynced && !self.copy_in
    }

    /// Whether no answer is owed.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many answers are owed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn front(&self) -> Option<&Answer> {
        self.queue.front()
    }

    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Answer> {
        self.queue.iter()
    }

    /// A message went to the server (or will be answered by pgwarm in its turn).
    pub(crate) fn push(&mut self, answer: Answer) {
        self.queue.push_back(answer);
    }

    /// The link ended: whatever that server owed, no other will answer.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }

    /// The client sent a Sync. Returns whether the server will answer it (not in COPY FROM
    /// STDIN, where it ignores Sync).
    pub(crate) fn client_synced(&mut self) -> bool {
        self.unsynced = false;
        !self.copy_in
    }

    /// The client sent an extended-protocol message or a Flush: the link is kept until a Sync.
    pub(crate) fn client_unsynced(&mut self) {
        self.unsynced = true;
    }

    /// The client ended its COPY data (CopyDone or CopyFail).
    pub(crate) fn copy_ended(&mut self) {
        self.copy_in = false;
    }

    /// CopyInResponse: the front entry is the query or Execute it answers; the server ignores
    /// every Sync until CopyDone/CopyFail, so the Syncs queued after it are not owed.
    pub(crate) fn copy_in_began(&mut self) {
        self.copy_in = true;
        let front = self.queue.pop_front();
        self.queue.retain(|a| a.kind != Kind::Sync);
        if let Some(front) = front {
            self.queue.push_front(front);
        }
    }

    /// The bytes pgwarm answers with, when its own answer is at the front; taken off the queue.
    pub(crate) fn take_ours(&mut self) -> Option<&'static [u8]> {
        match self.queue.front() {
            Some(Answer {
                fate: Fate::Ours(bytes),
                ..
            }) => {
                let bytes = *bytes;
                self.queue.pop_front();
                Some(bytes)
            }
            _ => None,
        }
    }

    /// An EmptyQueryResponse (`tag` `I`) answering an empty query pgwarm sent in place of a
    /// statement: the CommandComplete to send instead. The query still ends at ReadyForQuery.
    pub(crate) fn take_empty_replacement(&mut self, tag: u8) -> Option<&'static [u8]> {
        let front = self.queue.front_mut()?;
        match (&front.fate, tag) {
            (Fate::EmptyAs(replacement), b'I') => {
                let replacement = *replacement;
                front.fate = Fate::Forward;
                Some(replacement)
            }
            _ => None,
        }
    }

    /// A backend message with `tag` that completes the front entry takes it off the queue.
    pub(crate) fn complete(&mut self, tag: u8) -> Option<Answer> {
        match self.queue.front() {
            Some(front) if front.kind.done_by(tag) => self.queue.pop_front(),
            _ => None,
        }
    }

    /// An ErrorResponse: in the extended protocol it answers the front message, which is taken
    /// off the queue and returned. None inside a simple query or for a failing COMMIT at Sync,
    /// where ReadyForQuery still follows and owes the rest.
    pub(crate) fn fail_front(&mut self) -> Option<Answer> {
        match self.queue.front() {
            Some(front) if front.kind.extended() => self.queue.pop_front(),
            _ => None,
        }
    }

    /// After an extended-protocol error the server skips every message up to Sync: the next
    /// one it skips, until there are none.
    pub(crate) fn pop_skipped(&mut self) -> Option<Answer> {
        match self.queue.front() {
            Some(front) if front.kind != Kind::Sync => self.queue.pop_front(),
            _ => None,
        }
    }

    /// ReadyForQuery with `status`. pgwarm's own Sync is taken off; otherwise everything up to
    /// the Sync or query it answers is over, answered or skipped, and no server is in COPY mode
    /// any more (even one whose client never sent CopyDone: libpq gives up after a COPY error).
    pub(crate) fn ready(&mut self, status: TxStatus) -> ReadyFor {
        self.status = status;
        if self
            .queue
            .front()
            .is_some_and(|a| a.kind == Kind::Sync && matches!(a.fate, Fate::Swallow))
        {
            self.queue.pop_front();
            return ReadyFor::Ours;
        }
        if let Some(end) = self
            .queue
            .iter()
            .position(|a| matches!(a.kind, Kind::Sync | Kind::Query | Kind::FunctionCall))
        {
            self.queue.drain(..=end);
        }
        self.copy_in = false;
        ReadyFor::Client
    }

    /// Whether what is owed is one Sync group: a batch that can be sent again as a whole.
    pub(crate) fn one_group(&self) -> bool {
        let last = self.queue.len().checked_sub(1);
        last.is_some() && self.queue.iter().position(|a| a.kind == Kind::Sync) == last
    }

    /// Whether the batch describes its result before executing it.
    pub(crate) fn describes_first(&self) -> bool {
        self.queue
            .iter()
            .find(|a| matches!(a.kind, Kind::Describe | Kind::Execute))
            .is_some_and(|a| a.kind == Kind::Describe)
    }

    /// The batch is sent again: only the answer to the failed one's Sync is still owed, and it is
    /// pgwarm's, not the client's.
    pub(crate) fn resend(&mut self) {
        self.queue.clear();
        self.queue.push_back(Answer::new(Kind::Sync, Fate::Swallow));
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

    fn queue(kinds: &[Kind]) -> Expected {
        let mut expected = Expected::default();
        for &kind in kinds {
            expected.push(Answer::new(kind, Fate::Forward));
        }
        expected
    }

    fn kinds(expected: &Expected) -> Vec<Kind> {
        expected.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn an_error_skips_to_the_sync() {
        use Kind::*;
        let mut expected = queue(&[Parse, Bind, Execute, Sync, Query]);
        assert_eq!(expected.fail_front().map(|a| a.kind), Some(Parse));
        let mut skipped = Vec::new();
        while let Some(answer) = expected.pop_skipped() {
            skipped.push(answer.kind);
        }
        assert_eq!(skipped, [Bind, Execute]);
        assert_eq!(
            expected.fail_front().map(|a| a.kind),
            None,
            "a Sync is not failed"
        );
        assert_eq!(expected.ready(TxStatus::Idle), ReadyFor::Client);
        assert_eq!(kinds(&expected), [Query]);
        assert!(!expected.at_rest());
        assert_eq!(expected.ready(TxStatus::InTransaction), ReadyFor::Client);
        assert!(expected.at_rest() && !expected.status().is_idle());
    }

    #[test]
    fn copy_in_owes_no_sync() {
        use Kind::*;
        let mut expected = queue(&[Execute, Sync, Sync]);
        expected.client_unsynced();
        expected.copy_in_began();
        assert_eq!(kinds(&expected), [Execute]);
        assert!(
            !expected.client_synced(),
            "the server ignores a Sync in COPY"
        );
        expected.copy_ended();
        assert!(expected.client_synced());
        assert_eq!(expected.complete(b'C').map(|a| a.kind), Some(Execute));
        assert!(expected.at_rest());
    }

    #[test]
    fn a_resent_batch_owes_only_our_sync() {
        use Kind::*;
        let mut expected = queue(&[Bind, Execute, Sync]);
        assert!(expected.one_group() && !expected.describes_first());
        expected.resend();
        assert_eq!(expected.ready(TxStatus::Idle), ReadyFor::Ours);
        assert!(expected.is_empty() && !expected.one_group());
    }

    #[test]
    fn pgwarm_answers_in_its_turn() {
        let mut expected = queue(&[Kind::Parse]);
        expected.push(Answer::new(Kind::Close, Fate::Ours(b"3")));
        assert_eq!(expected.take_ours(), None, "the Parse is answered first");
        assert!(expected.complete(b'1').is_some());
        assert_eq!(expected.take_ours(), Some(&b"3"[..]));
        assert!(expected.is_empty());
    }
}
