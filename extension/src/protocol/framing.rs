//! Message framing: the 5-byte header (type byte + length) and what a well-formed frontend message
//! looks like.
//!
//! The relay never copies or re-encodes messages it does not need to understand; it only has to
//! know where each message starts and ends. This module answers that, and rejects frames that no
//! PostgreSQL client would send, before any byte of them reaches a server connection.

use bytes::{BufMut, BytesMut};
use thiserror::Error;

/// Type byte plus the 4-byte length (which counts itself but not the type byte).
pub(crate) const HEADER_LEN: usize = 5;

/// Writes a header for a message whose body will be `body_len` bytes (written next, or
/// streamed through later, as the relay does with a Bind's parameters).
pub(crate) fn put_header(out: &mut BytesMut, tag: u8, body_len: usize) {
    out.put_u8(tag);
    out.put_u32((body_len + HEADER_LEN - 1) as u32);
}

/// Writes `s` as a C string (NUL-terminated), the one way pgwarm writes text into a message.
///
/// The protocol cannot carry a NUL inside a string, so pgwarm refuses one where text enters it:
/// a secret's fields (`credentials/rds_secret.rs`); environment variables cannot hold one, and
/// strings read off the wire end at their NUL. Text that got past that would be a bug: it is
/// cut at the NUL, leaving a well-formed message, rather than shifting every field after it.
pub(crate) fn put_cstr(out: &mut BytesMut, s: &str) {
    debug_assert!(!s.contains('\0'), "a NUL inside {s:?}");
    let text = s.split('\0').next().unwrap_or_default();
    out.put_slice(text.as_bytes());
    out.put_u8(0);
}

/// Writes a whole message: the header, then the body `body` writes, and the length patched in
/// once it is known. The one way pgwarm frames what it writes itself.
pub(crate) fn put_message(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    put_header(out, tag, 0);
    body(out);
    let len = (out.len() - start - 1) as u32;
    if let Some(slot) = out.get_mut(start + 1..start + HEADER_LEN) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

/// PostgreSQL's own cap for messages that carry no payload worth more than a few bytes
/// (PQ_SMALL_MESSAGE_LIMIT); anything longer is garbage, not a big message.
const SMALL_MESSAGE_LIMIT: usize = 10_000;

/// A frame that breaks the protocol; the client is told why and closed.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    #[error("invalid frontend message type {}", describe_tag(*.0))]
    UnknownType(u8),
    #[error("invalid message length {len} for message type {}", describe_tag(*.tag))]
    BadLength { tag: u8, len: usize },
    #[error("unexpected password message: the client is already authenticated")]
    UnexpectedPassword,
    #[error("message of type {} is {len} bytes long, more than the limit of {max} bytes (PGWARM_MAX_MESSAGE_SIZE)", describe_tag(*.tag))]
    TooLong { tag: u8, len: usize, max: usize },
}

fn describe_tag(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        format!("0x{tag:02x}")
    }
}

/// Reads a header at the start of `buf`: the type byte and the whole frame length (header included).
#[inline]
pub(crate) fn header(buf: &[u8]) -> Option<(u8, usize)> {
    let (&tag, rest) = buf.split_first()?;
    let len = u32::from_be_bytes(*rest.first_chunk::<4>()?) as usize;
    Some((tag, len + 1))
}

/// Checks a frontend (client → server) frame header. `frame_len` includes the type byte.
#[inline]
pub(crate) fn check_frontend(tag: u8, frame_len: usize, max: usize) -> Result<(), FrameError> {
    let body = frame_len.saturating_sub(HEADER_LEN);
    if frame_len < HEADER_LEN {
        return Err(FrameError::BadLength {
            tag,
            len: frame_len.saturating_sub(1),
        });
    }
    match tag {
        // Sync, Flush, Terminate, CopyDone carry nothing.
        b'S' | b'H' | b'X' | b'c' => {
            if body != 0 {
                return Err(FrameError::BadLength {
                    tag,
                    len: frame_len - 1,
                });
            }
        }
        // Describe and Close: a kind byte and a name.
        b'D' | b'C' => {
            if !(2..=SMALL_MESSAGE_LIMIT).contains(&body) {
                return Err(FrameError::BadLength {
                    tag,
                    len: frame_len - 1,
                });
            }
        }
        // Execute: a portal name and a row count.
        b'E' => {
            if !(5..=SMALL_MESSAGE_LIMIT).contains(&body) {
                return Err(FrameError::BadLength {
                    tag,
                    len: frame_len - 1,
                });
            }
        }
        b'Q' | b'P' | b'B' | b'd' | b'f' | b'F' | b'p' => {}
        other => return Err(FrameError::UnknownType(other)),
    }
    if frame_len - 1 > max {
        return Err(FrameError::TooLong {
            tag,
            len: frame_len - 1,
            max,
        });
    }
    Ok(())
}

/// Checks a backend (server → client) frame header. Servers are trusted for content, but a
/// length no PostgreSQL sends means the connection is broken (or hostile): the messages pgwarm
/// reads whole (completions, ReadyForQuery, CommandComplete, notifications) have a known size,
/// and waiting for a gigabyte of one would stall the client for good.
#[inline]
pub(crate) fn check_backend(tag: u8, frame_len: usize) -> bool {
    match tag {
        // ParseComplete, BindComplete, CloseComplete, NoData, EmptyQueryResponse,
        // PortalSuspended: a header and nothing else.
        b'1' | b'2' | b'3' | b'n' | b'I' | b's' => frame_len == HEADER_LEN,
        // ReadyForQuery: the transaction status byte.
        b'Z' => frame_len == HEADER_LEN + 1,
        // CommandComplete's tag; a notification's channel and payload (under 8000 bytes).
        b'C' | b'A' => (HEADER_LEN..=HEADER_LEN + SMALL_MESSAGE_LIMIT).contains(&frame_len),
        _ => frame_len >= HEADER_LEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_lengths_no_server_sends_are_refused() {
        assert!(check_backend(b'Z', 6) && !check_backend(b'Z', 5) && !check_backend(b'Z', 7));
        assert!(check_backend(b'1', 5) && !check_backend(b'1', 6));
        assert!(check_backend(b'C', 5 + 9) && !check_backend(b'C', 1 << 30));
        assert!(
            check_backend(b'D', 1 << 30),
            "rows stream through, any size"
        );
        assert!(!check_backend(b'D', 4));
    }

    #[test]
    fn header_reads_type_and_frame_length() {
        assert_eq!(header(b"Q\0\0\0\x09SEL"), Some((b'Q', 10)));
        assert_eq!(header(b"Q\0\0"), None);
    }

    #[test]
    fn accepts_ordinary_frames() {
        for (tag, len) in [
            (b'Q', 20),
            (b'S', 5),
            (b'E', 10),
            (b'd', 1 << 20),
            (b'D', 7),
        ] {
            assert_eq!(check_frontend(tag, len, 1 << 30), Ok(()), "{}", tag as char);
        }
    }

    #[test]
    fn rejects_unknown_types_and_bad_lengths() {
        assert_eq!(
            check_frontend(b'z', 5, 1000),
            Err(FrameError::UnknownType(b'z'))
        );
        assert!(matches!(
            check_frontend(b'S', 9, 1000),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            check_frontend(b'Q', 3, 1000),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            check_frontend(b'E', 6, 1000),
            Err(FrameError::BadLength { .. })
        ));
        let err = check_frontend(b'Q', 2001, 1000).unwrap_err();
        assert!(err.to_string().contains("PGWARM_MAX_MESSAGE_SIZE"), "{err}");
        assert_eq!(
            FrameError::UnknownType(0xff).to_string(),
            "invalid frontend message type 0xff"
        );
    }
}
