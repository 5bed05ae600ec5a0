//! The frontend messages pgwarm reads into or writes itself: the statement names inside Parse,
//! Bind, Describe and Close (to rename them per server connection) and the few messages pgwarm
//! injects (a Parse that re-creates a statement, a Close that evicts one).
//!
//! Everything else a client sends is relayed as bytes; only these prefixes are ever decoded, and
//! they are decoded as bytes, not strings, because a client's encoding need not be UTF-8.

use super::framing::put_header as header;
#[cfg(test)]
use super::framing::HEADER_LEN;
use bytes::{BufMut, BytesMut};

/// Splits `buf` at its first NUL: the C string before it and what follows the NUL.
pub(crate) fn cstr(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = buf.iter().position(|b| *b == 0)?;
    let (head, tail) = buf.split_at_checked(end)?;
    Some((head, tail.get(1..)?))
}

/// Parse body: the statement name and the rest (query, parameter types), which is what makes two
/// statements the same.
pub(crate) fn parse_body(body: &[u8]) -> Option<(&[u8], &[u8])> {
    cstr(body)
}

/// Bind body: portal and statement names, and how many bytes of the body they take (the
/// parameters after them stream through untouched). None until both names are in `body`.
pub(crate) fn bind_names(body: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let (portal, rest) = cstr(body)?;
    let (statement, _) = cstr(rest)?;
    Some((portal, statement, portal.len() + statement.len() + 2))
}

/// Describe or Close body: the kind byte ('S' statement, 'P' portal) and the name.
pub(crate) fn target(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    let (name, _) = cstr(rest)?;
    Some((kind, name))
}

/// A Parse of `name` whose body continues with `rest` (query and parameter types as the client
/// sent them).
pub(crate) fn parse(out: &mut BytesMut, name: &[u8], rest: &[u8]) {
    header(out, b'P', name.len() + 1 + rest.len());
    out.put_slice(name);
    out.put_u8(0);
    out.put_slice(rest);
}

/// The start of a Bind, up to and including the statement name; `tail_len` more body bytes (the
/// client's parameters) follow.
pub(crate) fn bind_prefix(out: &mut BytesMut, portal: &[u8], name: &[u8], tail_len: usize) {
    header(out, b'B', portal.len() + name.len() + 2 + tail_len);
    out.put_slice(portal);
    out.put_u8(0);
    out.put_slice(name);
    out.put_u8(0);
}

/// Describe or Close (`tag` 'D' or 'C') of the statement `name`.
pub(crate) fn statement_message(out: &mut BytesMut, tag: u8, name: &[u8]) {
    header(out, tag, name.len() + 2);
    out.put_u8(b'S');
    out.put_slice(name);
    out.put_u8(0);
}

/// A Sync.
pub(crate) fn sync(out: &mut BytesMut) {
    header(out, b'S', 0);
}

/// A simple Query.
pub(crate) fn query(out: &mut BytesMut, sql: &[u8]) {
    header(out, b'Q', sql.len() + 1);
    out.put_slice(sql);
    out.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::frontend as reference;

    #[test]
    fn encoders_match_postgres_protocol() {
        let mut ours = BytesMut::new();
        let mut theirs = BytesMut::new();
        parse(&mut ours, b"s1", b"select $1\0\0\x01\0\0\0\x17");
        reference::parse("s1", "select $1", [23], &mut theirs).unwrap();
        assert_eq!(ours, theirs);

        ours.clear();
        theirs.clear();
        statement_message(&mut ours, b'D', b"s1");
        reference::describe(b'S', "s1", &mut theirs).unwrap();
        assert_eq!(ours, theirs);

        ours.clear();
        theirs.clear();
        statement_message(&mut ours, b'C', b"s1");
        reference::close(b'S', "s1", &mut theirs).unwrap();
        assert_eq!(ours, theirs);

        ours.clear();
        theirs.clear();
        query(&mut ours, b"select 1");
        reference::query("select 1", &mut theirs).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_rewritten_bind_prefix_keeps_the_tail() {
        let mut theirs = BytesMut::new();
        reference::bind(
            "p",
            "s1",
            [1],
            [7i32],
            |v, buf| {
                buf.put_i32(v);
                Ok(postgres_protocol::IsNull::No)
            },
            [1],
            &mut theirs,
        )
        .map_err(|_| "bind")
        .unwrap();
        let body = &theirs[HEADER_LEN..];
        let (portal, name, names_len) = bind_names(body).unwrap();
        assert_eq!((portal, name), (&b"p"[..], &b"s1"[..]));
        let tail = &body[names_len..];
        let mut ours = BytesMut::new();
        bind_prefix(&mut ours, portal, b"s1", tail.len());
        ours.put_slice(tail);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn names_need_their_terminators() {
        assert_eq!(bind_names(b"p\0s1"), None);
        assert_eq!(target(b"S"), None);
        assert_eq!(target(b"Ss1\0"), Some((b'S', &b"s1"[..])));
        assert_eq!(
            parse_body(b"s1\0q\0\0\0"),
            Some((&b"s1"[..], &b"q\0\0\0"[..]))
        );
    }
}
