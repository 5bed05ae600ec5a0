//! A raw wire-protocol client for tests that must send what no driver would: garbage, unknown
//! startup codes, oversized messages, a socket closed mid-transaction.

use bytes::{BufMut, BytesMut};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A blocking connection that speaks bytes and reads typed backend messages.
pub struct Wire {
    pub stream: TcpStream,
    buf: BytesMut,
}

/// The fields of an ErrorResponse that tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl Wire {
    /// Opens a TCP connection without logging in.
    pub fn connect(addr: SocketAddr) -> Wire {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set timeout");
        Wire {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Opens a connection and logs in (no password), reading up to the first ReadyForQuery.
    /// Returns the synthetic (pid, secret) from BackendKeyData.
    pub fn login(addr: SocketAddr, user: &str, database: &str) -> (Wire, (i32, i32)) {
        let mut wire = Wire::connect(addr);
        let mut out = BytesMut::new();
        frontend::startup_message([("user", user), ("database", database)], &mut out)
            .expect("encode startup");
        wire.send(&out);
        let mut key = (0, 0);
        loop {
            match wire.read() {
                Some(Message::BackendKeyData(k)) => key = (k.process_id(), k.secret_key()),
                Some(Message::ReadyForQuery(_)) => return (wire, key),
                Some(Message::ErrorResponse(body)) => {
                    panic!("login refused: {:?}", error_fields(&body))
                }
                Some(_) => {}
                None => panic!("connection closed during login"),
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to pgwarm");
    }

    /// Sends a simple Query and collects messages up to ReadyForQuery.
    pub fn query(&mut self, sql: &str) -> Vec<Message> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).expect("encode query");
        self.send(&out);
        let mut messages = Vec::new();
        loop {
            match self.read() {
                Some(Message::ReadyForQuery(r)) => {
                    messages.push(Message::ReadyForQuery(r));
                    return messages;
                }
                Some(m) => messages.push(m),
                None => panic!("connection closed during a query"),
            }
        }
    }

    /// The next backend message, or None at EOF (or a reset).
    pub fn read(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = Message::parse(&mut self.buf).expect("valid backend message") {
                return Some(m);
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads messages until an ErrorResponse and returns it; panics if none comes before EOF.
    pub fn expect_error(&mut self) -> WireError {
        loop {
            match self.read() {
                Some(Message::ErrorResponse(body)) => return error_fields(&body),
                Some(_) => {}
                None => panic!("connection closed without an ErrorResponse"),
            }
        }
    }

    /// True if the server closes the connection (EOF) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        self.buf.clear();
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    )
                }
            }
        }
    }
}

/// Builds one frontend message by hand: type byte, length, body.
pub fn raw_message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(tag);
    out.put_i32(body.len() as i32 + 4);
    out.extend_from_slice(body);
    out.to_vec()
}

/// A CancelRequest for (pid, secret), sent on a new connection like libpq does.
pub fn send_cancel(addr: SocketAddr, pid: i32, secret: i32) {
    let mut out = BytesMut::new();
    frontend::cancel_request(pid, secret, &mut out);
    let mut wire = Wire::connect(addr);
    wire.send(&out);
    assert!(wire.is_closed(), "pgwarm closes a cancel connection");
}

pub fn error_fields(body: &postgres_protocol::message::backend::ErrorResponseBody) -> WireError {
    use fallible_iterator::FallibleIterator;
    let mut fields = body.fields();
    let mut e = WireError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
    };
    while let Ok(Some(f)) = fields.next() {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'S' => e.severity = v,
            b'C' => e.code = v,
            b'M' => e.message = v,
            _ => {}
        }
    }
    e
}

/// SQLSTATE of a tokio-postgres error, or "" when it is not a database error.
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}
