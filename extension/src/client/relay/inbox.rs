//! Bytes read from one peer, walked one message at a time.
//!
//! Both directions of the relay read the same way: a header is looked at once the whole header is
//! there, the part of the message the relay must judge is waited for, and the rest of a long
//! message (rows, COPY data, a huge query) streams through as it arrives, never buffered whole.
//! `Inbox` owns the buffer and the two positions that make this work, so the stages above it ask
//! for "the next message" and never touch an offset.

use crate::protocol::framing::{self, HEADER_LEN};
use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncRead;
use tokio_util::io::poll_read_buf;

/// How much is read per call; large enough for bulk COPY, small enough to stay in cache.
const READ_CHUNK: usize = 16 * 1024;

/// `buf[..walked]` has been walked: it holds whole messages, or the start of one whose
/// `body_left` remaining bytes have not all arrived; `buf[walked..]` is the next message, not
/// yet judged.
#[derive(Default)]
pub(super) struct Inbox {
    buf: BytesMut,
    walked: usize,
    body_left: usize,
}

/// The next message, whose header has arrived.
#[derive(Debug, Clone, Copy)]
pub(super) struct Next {
    pub(super) tag: u8,
    /// The whole message's length, header included (already within `u32` by `framing`).
    pub(super) frame_len: usize,
    /// How many of its bytes have arrived.
    pub(super) arrived: usize,
}

impl Next {
    pub(super) fn whole(&self) -> bool {
        self.arrived >= self.frame_len
    }
}

impl Inbox {
    /// Reads what the peer sent. The buffer is allocated at the first read: a client that only
    /// logged in costs no buffer.
    pub(super) fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        peer: &mut R,
    ) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_CHUNK);
        poll_read_buf(Pin::new(peer), cx, &mut self.buf)
    }

    /// Counts the bytes of a streaming body that arrived as walked. True when the walk is at a
    /// message boundary, false while the body is still coming.
    pub(super) fn pass_body(&mut self) -> bool {
        let n = self.body_left.min(self.buf.len() - self.walked);
        self.walked += n;
        self.body_left -= n;
        self.body_left == 0
    }

    /// The next message, once its header is here (at a message boundary only).
    pub(super) fn next(&self) -> Option<Next> {
        debug_assert_eq!(self.body_left, 0);
        let rest = self.unwalked();
        let (tag, frame_len) = framing::header(rest)?;
        Some(Next {
            tag,
            frame_len,
            arrived: rest.len(),
        })
    }

    /// The first `len` bytes of the next message's body, if they have arrived.
    pub(super) fn body(&self, len: usize) -> Option<&[u8]> {
        self.unwalked()
            .get(HEADER_LEN..HEADER_LEN.checked_add(len)?)
    }

    /// The next message's whole body, if it has arrived.
    pub(super) fn whole_body(&self, next: &Next) -> Option<&[u8]> {
        self.body(next.frame_len.checked_sub(HEADER_LEN)?)
    }

    /// The same, to rewrite in place (a field of the same length).
    pub(super) fn whole_body_mut(&mut self, next: &Next) -> Option<&mut [u8]> {
        let start = self.walked + HEADER_LEN;
        self.buf.get_mut(start..self.walked + next.frame_len)
    }

    /// Walks past the first `taken` bytes of the next message (all here); the rest of it
    /// streams through as it arrives.
    pub(super) fn take(&mut self, next: &Next, taken: usize) {
        debug_assert!(taken <= next.arrived && taken <= next.frame_len);
        self.walked += taken;
        self.body_left = next.frame_len.saturating_sub(taken);
    }

    /// Walks past the next message: all of it when it is here, else its header, the body then
    /// streaming through.
    pub(super) fn pass(&mut self, next: &Next) {
        let taken = match next.whole() {
            true => next.frame_len,
            false => HEADER_LEN,
        };
        self.take(next, taken);
    }

    /// Replaces the first `remove` bytes of the unwalked part with `insert`, which count as
    /// walked: pgwarm's own answer in place of the server's, or slipped in before it.
    pub(super) fn splice(&mut self, remove: usize, insert: &[u8]) {
        let at = self.walked;
        let tail_len = self.buf.len() - at - remove;
        if insert.len() > remove {
            self.buf.resize(self.buf.len() + insert.len() - remove, 0);
        }
        self.buf
            .copy_within(at + remove..at + remove + tail_len, at + insert.len());
        self.buf.truncate(at + insert.len() + tail_len);
        if let Some(place) = self.buf.get_mut(at..at + insert.len()) {
            place.copy_from_slice(insert);
        }
        self.walked += insert.len();
    }

    /// Appends pgwarm's own message after what was walked, dropping what was not (the caller
    /// is ending this peer's stream). False when a message is half-walked, when anything
    /// appended would land inside it.
    pub(super) fn replace_unwalked(&mut self, write: impl FnOnce(&mut BytesMut)) -> bool {
        if self.body_left != 0 {
            return false;
        }
        self.buf.truncate(self.walked);
        write(&mut self.buf);
        self.walked = self.buf.len();
        true
    }

    /// Drops what was not walked. True if there was any, or a body was still coming.
    pub(super) fn drop_unwalked(&mut self) -> bool {
        let leftover = self.buf.len() > self.walked || self.body_left > 0;
        self.buf.truncate(self.walked);
        self.body_left = 0;
        leftover
    }

    /// Walked bytes, from the front.
    pub(super) fn walked(&self) -> &[u8] {
        self.buf.get(..self.walked).unwrap_or_default()
    }

    /// Bytes not walked yet.
    pub(super) fn unwalked(&self) -> &[u8] {
        self.buf.get(self.walked..).unwrap_or_default()
    }

    pub(super) fn walked_len(&self) -> usize {
        self.walked
    }

    /// Bytes in the buffer, walked or not.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether a message's body is still coming.
    pub(super) fn mid_message(&self) -> bool {
        self.body_left > 0
    }

    /// Removes `n` walked bytes from the front (they were used: written on, or translated).
    pub(super) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.walked);
        let n = n.min(self.walked);
        self.buf.advance(n);
        self.walked -= n;
    }

    /// Stops walking: nothing after the walked part is read or kept (a client's Terminate).
    pub(super) fn close(&mut self) {
        self.buf.truncate(self.walked);
        self.body_left = 0;
    }

    /// Bytes as if read from the peer: test set-up, and messages pgwarm read on its own
    /// exchange with the linked server that belong to the client.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}
