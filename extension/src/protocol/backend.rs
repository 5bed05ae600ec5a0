//! Encoders for the backend messages pgwarm writes itself, toward clients that log in to it.
//!
//! Everything a server says during a client's transaction is relayed byte for byte; these are
//! the messages of pgwarm's own side of the handshake, and the result sets of the admin console.

use super::framing::{put_cstr, put_message as message};
use bytes::{BufMut, BytesMut};

/// Answers the relay gives for the server, whole and constant: ParseComplete, CloseComplete,
/// the CommandComplete of a `DEALLOCATE` pgwarm ran as a Close, and ReadyForQuery idle.
pub(crate) const PARSE_COMPLETE: &[u8] = b"1\0\0\0\x04";
pub(crate) const CLOSE_COMPLETE: &[u8] = b"3\0\0\0\x04";
pub(crate) const DEALLOCATE_COMPLETE: &[u8] = b"C\0\0\0\x0fDEALLOCATE\0";
pub(crate) const READY_IDLE: &[u8] = b"Z\0\0\0\x05I";

pub(crate) fn authentication_ok(buf: &mut BytesMut) {
    message(buf, b'R', |b| b.put_i32(0));
}

pub(crate) fn authentication_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    message(buf, b'R', |b| {
        b.put_i32(10);
        for mechanism in mechanisms {
            put_cstr(b, mechanism);
        }
        b.put_u8(0);
    });
}

pub(crate) fn authentication_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    message(buf, b'R', |b| {
        b.put_i32(11);
        b.extend_from_slice(data);
    });
}

pub(crate) fn authentication_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    message(buf, b'R', |b| {
        b.put_i32(12);
        b.extend_from_slice(data);
    });
}

pub(crate) fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    message(buf, b'S', |b| {
        put_cstr(b, name);
        put_cstr(b, value);
    });
}

pub(crate) fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: i32) {
    message(buf, b'K', |b| {
        b.put_i32(pid);
        b.put_i32(secret);
    });
}

/// The transaction status a ReadyForQuery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxStatus {
    /// `I`: no transaction is open; a server connection here may go back to the pool.
    Idle,
    /// `T`: inside a transaction block.
    InTransaction,
    /// `E`: inside a failed transaction block, until ROLLBACK.
    Failed,
}

impl TxStatus {
    /// `None` for a byte no PostgreSQL sends.
    pub(crate) fn from_byte(byte: u8) -> Option<TxStatus> {
        match byte {
            b'I' => Some(TxStatus::Idle),
            b'T' => Some(TxStatus::InTransaction),
            b'E' => Some(TxStatus::Failed),
            _ => None,
        }
    }

    pub(crate) fn byte(self) -> u8 {
        match self {
            TxStatus::Idle => b'I',
            TxStatus::InTransaction => b'T',
            TxStatus::Failed => b'E',
        }
    }

    pub(crate) fn is_idle(self) -> bool {
        self == TxStatus::Idle
    }
}

impl std::fmt::Display for TxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.byte() as char)
    }
}

pub(crate) fn ready_for_query(buf: &mut BytesMut, status: TxStatus) {
    message(buf, b'Z', |b| b.put_u8(status.byte()));
}

/// A column of a result pgwarm produces itself; values are always sent in text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    Text,
    Int8,
}

impl ColumnType {
    /// The type's OID and size, as `pg_type` has them.
    fn oid_and_len(self) -> (u32, i16) {
        match self {
            ColumnType::Text => (25, -1),
            ColumnType::Int8 => (20, 8),
        }
    }
}

pub(crate) fn row_description(buf: &mut BytesMut, columns: &[(&str, ColumnType)]) {
    message(buf, b'T', |b| {
        b.put_i16(columns.len() as i16);
        for (name, ty) in columns {
            let (oid, len) = ty.oid_and_len();
            put_cstr(b, name);
            b.put_u32(0); // no table
            b.put_i16(0); // no column number
            b.put_u32(oid);
            b.put_i16(len);
            b.put_i32(-1); // no type modifier
            b.put_i16(0); // text format
        }
    });
}

/// One row; `None` is SQL NULL.
pub(crate) fn data_row<S: AsRef<str>>(buf: &mut BytesMut, values: &[Option<S>]) {
    message(buf, b'D', |b| {
        b.put_i16(values.len() as i16);
        for value in values {
            match value {
                Some(v) => {
                    b.put_i32(v.as_ref().len() as i32);
                    b.extend_from_slice(v.as_ref().as_bytes());
                }
                None => b.put_i32(-1),
            }
        }
    });
}

pub(crate) fn command_complete(buf: &mut BytesMut, tag: &str) {
    message(buf, b'C', |b| put_cstr(b, tag));
}

pub(crate) fn empty_query_response(buf: &mut BytesMut) {
    message(buf, b'I', |_| {});
}

/// Tells a client that asked for protocol 3.x (x > 0) or sent `_pq_.` options that pgwarm speaks
/// 3.0 and which options it ignored, so the client can carry on instead of failing.
pub(crate) fn negotiate_protocol_version(buf: &mut BytesMut, minor: i32, unrecognized: &[&str]) {
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
        ready_for_query(&mut buf, TxStatus::Idle);
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

    #[test]
    fn transaction_statuses_read_back() {
        for status in [TxStatus::Idle, TxStatus::InTransaction, TxStatus::Failed] {
            assert_eq!(TxStatus::from_byte(status.byte()), Some(status));
        }
        assert_eq!(TxStatus::from_byte(b'X'), None);
    }

    #[test]
    fn the_constant_answers_are_what_the_encoders_write() {
        let mut written = BytesMut::new();
        message(&mut written, b'1', |_| {});
        assert_eq!(&written[..], PARSE_COMPLETE);
        written.clear();
        message(&mut written, b'3', |_| {});
        assert_eq!(&written[..], CLOSE_COMPLETE);
        written.clear();
        command_complete(&mut written, "DEALLOCATE");
        assert_eq!(&written[..], DEALLOCATE_COMPLETE);
        written.clear();
        ready_for_query(&mut written, TxStatus::Idle);
        assert_eq!(&written[..], READY_IDLE);
    }

    #[test]
    fn a_result_set_reads_back() {
        use fallible_iterator::FallibleIterator;
        let mut buf = BytesMut::new();
        row_description(
            &mut buf,
            &[
                ("database", ColumnType::Text),
                ("cl_active", ColumnType::Int8),
            ],
        );
        data_row(&mut buf, &[Some("app"), None]);
        command_complete(&mut buf, "SHOW");
        match Message::parse(&mut buf).unwrap() {
            Some(Message::RowDescription(d)) => {
                let fields: Vec<_> = d.fields().collect().unwrap();
                assert_eq!(fields.len(), 2);
                assert_eq!(fields[0].name(), "database");
                assert_eq!(fields[1].type_oid(), 20);
            }
            _ => panic!("expected RowDescription"),
        }
        match Message::parse(&mut buf).unwrap() {
            Some(Message::DataRow(row)) => {
                let ranges: Vec<_> = row.ranges().collect().unwrap();
                assert_eq!(ranges.len(), 2);
                assert_eq!(&row.buffer()[ranges[0].clone().unwrap()], b"app");
                assert!(ranges[1].is_none());
            }
            _ => panic!("expected DataRow"),
        }
        match Message::parse(&mut buf).unwrap() {
            Some(Message::CommandComplete(c)) => assert_eq!(c.tag().unwrap(), "SHOW"),
            _ => panic!("expected CommandComplete"),
        }
    }
}
