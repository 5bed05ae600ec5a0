//! What the client sent, from reading to translation.
//!
//! The client's bytes go through three marks: walked (each header checked, each message the server
//! will answer queued as an [`WalkedMessage`]), translated (copied or rewritten into the bytes for the
//! linked server), and forgotten. Translated bytes are kept until the server answers, while the
//! batch may still be replayed on another connection, and translated again there. Queued
//! messages are placed by their offset in the client's stream, which survives dropping bytes
//! from the front.

use super::from_client::WalkedMessage;
use super::inbox::Inbox;
use bytes::BytesMut;
use std::collections::VecDeque;

#[derive(Default)]
pub(super) struct ClientInput {
    inbox: Inbox,
    /// Stream offset of the buffer's first byte.
    base: u64,
    /// `walked()[..done]` was translated for the server.
    done: usize,
    /// Messages read so far: `DEALLOCATE ALL` forgets statements from before it.
    seq: u64,
    /// Terminate seen: nothing more is read.
    terminated: bool,
    /// Walked messages the server will answer or pgwarm must rewrite, in order;
    /// `[..queue_done]` were translated, kept while the batch may be replayed.
    queue: VecDeque<WalkedMessage>,
    queue_done: usize,
}

impl ClientInput {
    pub(super) fn inbox(&mut self) -> &mut Inbox {
        &mut self.inbox
    }

    /// Stream offset of the next byte to walk.
    pub(super) fn walk_offset(&self) -> u64 {
        self.base + self.inbox.walked_len() as u64
    }

    /// One more message was read.
    pub(super) fn count_message(&mut self) {
        self.seq += 1;
    }

    /// The number of the last message read.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    pub(super) fn queue(&mut self, message: WalkedMessage) {
        self.queue.push_back(message);
    }

    /// Terminate: the session ends once what came before it reached the server.
    pub(super) fn terminate(&mut self) {
        self.terminated = true;
        self.inbox.close();
    }

    pub(super) fn terminated(&self) -> bool {
        self.terminated
    }

    /// Walked bytes not translated yet.
    pub(super) fn untranslated(&self) -> usize {
        self.inbox.walked_len() - self.done
    }

    /// Bytes translated and kept for a replay.
    pub(super) fn translated(&self) -> usize {
        self.done
    }

    /// Nothing half-read, nothing walked and left untranslated.
    pub(super) fn at_rest(&self) -> bool {
        !self.inbox.mid_message() && self.untranslated() == 0
    }

    /// The untranslated bytes, from the next one to translate.
    pub(super) fn pending(&self) -> &[u8] {
        self.inbox.walked().get(self.done..).unwrap_or_default()
    }

    /// Copies untranslated bytes to `out` up to the next queued message (or all of them). True
    /// when a queued message starts at the first untranslated byte: nothing was copied, and the
    /// message is the caller's to translate.
    pub(super) fn copy_to_next(&mut self, out: &mut BytesMut) -> bool {
        let done_at = self.base + self.done as u64;
        let end = self.walk_offset();
        let next_at = self
            .queue
            .get(self.queue_done)
            .map_or(end, |o| o.at.min(end));
        if next_at > done_at {
            let to = (next_at - self.base) as usize;
            out.extend_from_slice(self.inbox.walked().get(self.done..to).unwrap_or_default());
            self.done = to;
            return false;
        }
        true
    }

    /// Takes the queued message at the first untranslated byte: kept (for a replay) or popped.
    pub(super) fn take_next(&mut self, keep: bool) -> Option<WalkedMessage> {
        if keep {
            let message = self.queue.get(self.queue_done).cloned();
            self.queue_done += usize::from(message.is_some());
            message
        } else {
            debug_assert_eq!(self.queue_done, 0);
            self.queue.pop_front()
        }
    }

    /// The message at the first untranslated byte was translated; it took `len` bytes.
    pub(super) fn translated_bytes(&mut self, len: usize) {
        self.done = (self.done + len).min(self.inbox.walked_len());
    }

    /// Queued messages not yet translated, in order.
    pub(super) fn queued(&self) -> impl Iterator<Item = &WalkedMessage> {
        self.queue.iter().skip(self.queue_done)
    }

    /// Stream offset of the first untranslated byte.
    pub(super) fn done_offset(&self) -> u64 {
        self.base + self.done as u64
    }

    /// The first `messages` queued messages not yet translated, ending at stream offset `end`,
    /// were answered without a server.
    pub(super) fn answered_here(&mut self, messages: usize, end: u64) {
        self.queue
            .drain(self.queue_done..(self.queue_done + messages).min(self.queue.len()));
        self.done = ((end - self.base) as usize).min(self.inbox.walked_len());
    }

    /// Forgets translated bytes and messages: the server has them and no replay will need them.
    pub(super) fn forget_translated(&mut self) {
        if self.done == 0 {
            return;
        }
        self.inbox.consume(self.done);
        self.base += self.done as u64;
        self.done = 0;
        self.queue.drain(..self.queue_done);
        self.queue_done = 0;
    }

    /// The batch is translated anew, for another server connection.
    pub(super) fn rewind(&mut self) {
        self.done = 0;
        self.queue_done = 0;
    }

    /// Translated messages kept for a replay (tests).
    #[cfg(test)]
    pub(super) fn kept(&self) -> (usize, usize) {
        (self.done, self.queue_done)
    }

    #[cfg(test)]
    pub(super) fn walked_len(&self) -> usize {
        self.inbox.walked_len()
    }

    #[cfg(test)]
    pub(super) fn queue_len(&self) -> usize {
        self.queue.len()
    }
}
