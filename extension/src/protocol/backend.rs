//! Encoders for the backend messages pgwarm writes itself, toward clients that log in to it.
//!
//! Everything a server says during a client's transaction is relayed byte for byte; these are
//! only the messages of pgwarm's own side of the handshake.

use bytes::{BufMut, BytesMut};

/// Appends a message with `tag`, letting `body` write the payload; the length is patched after.
fn message(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_u8(tag);
    buf.put_i32(0);
    body(buf);
    let len = (buf.len() - start - 1) as i32;
    if let Some(slot) = buf.get_mut(start + 1..start + 5) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

fn put_cstr(buf: &mut BytesMut, s: &str) {
    buf.extend(s.bytes().filter(|b| *b != 0));
    buf.put_u8(0);
}

pub fn authentication_ok(buf: &mut BytesMut) {
    message(buf, b'R', |b| b.put_i32(0));
}

pub fn authentication_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    message(buf, b'R', |b| {
        b.put_i32(10);
        for mechanism in mechanisms {
            put_cstr(b, mechanism);
        }
        b.put_u8(0);
    });
}

pub fn authentication_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    message(buf, b'R', |b| {
        b.put_i32(11);
        b.extend_from_slice(data);
    });
}

pub fn authentication_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    message(buf, b'R', |b| {
        b.put_i32(12);
        b.extend_from_slice(data);
    });
}

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    message(buf, b'S', |b| {
        put_cstr(b, name);
        put_cstr(b, value);
    });
}

pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: i32) {
    message(buf, b'K', |b| {
        b.put_i32(pid);
        b.put_i32(secret);
    });
}

pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
    message(buf, b'Z', |b| b.put_u8(status));
}

/// Tells a client that asked for protocol 3.x (x > 0) or sent `_pq_.` options that pgwarm speaks
/// 3.0 and which options it ignored, so the client can carry on instead of failing.
pub fn negotiate_protocol_version(buf: &mut BytesMut, minor: i32, unrecognized: &[&str]) {
    message(buf, b'v', |b| {
        b.put_i32(minor);
        b.put_i32(unrecognized.len() as i32);
        for option in unrecognized {
            put_cstr(b, option);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::backend::Message;

    #[test]
    fn a_real_parser_reads_what_we_write() {
        let mut buf = BytesMut::new();
        authentication_ok(&mut buf);
        parameter_status(&mut buf, "server_version", "15.4");
        backend_key_data(&mut buf, 7, 99);
        ready_for_query(&mut buf, b'I');
        assert!(matches!(
            Message::parse(&mut buf).unwrap(),
            Some(Message::AuthenticationOk)
        ));
        match Message::parse(&mut buf).unwrap() {
            Some(Message::ParameterStatus(p)) => {
                assert_eq!(p.name().unwrap(), "server_version");
                assert_eq!(p.value().unwrap(), "15.4");
            }
            _ => panic!("expected ParameterStatus"),
        }
        match Message::parse(&mut buf).unwrap() {
            Some(Message::BackendKeyData(k)) => {
                assert_eq!((k.process_id(), k.secret_key()), (7, 99));
            }
            _ => panic!("expected BackendKeyData"),
        }
        match Message::parse(&mut buf).unwrap() {
            Some(Message::ReadyForQuery(r)) => assert_eq!(r.status(), b'I'),
            _ => panic!("expected ReadyForQuery"),
        }
        assert!(buf.is_empty());
    }
}
