//! Errors that pgwarm itself reports to a client, in PostgreSQL's own terms.
//!
//! A driver can only act on what the protocol tells it, so every failure that reaches a client is
//! an ErrorResponse with a severity and a SQLSTATE the driver already knows how to treat (a FATAL
//! closes the session, an ERROR leaves it usable).

use super::framing::{put_cstr, put_message};
use bytes::{BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{ErrorResponseBody, Message};

/// SQLSTATE codes pgwarm raises (see PostgreSQL's errcodes.txt).
pub(crate) mod sqlstate {
    pub(crate) const PROTOCOL_VIOLATION: &str = "08P01";
    pub(crate) const CONNECTION_FAILURE: &str = "08006";
    pub(crate) const INVALID_CATALOG_NAME: &str = "3D000";
    pub(crate) const INVALID_AUTHORIZATION: &str = "28000";
    pub(crate) const INVALID_PASSWORD: &str = "28P01";
    pub(crate) const TOO_MANY_CONNECTIONS: &str = "53300";
    pub(crate) const CONFIGURATION_LIMIT_EXCEEDED: &str = "53400";
    pub(crate) const QUERY_CANCELED: &str = "57014";
    pub(crate) const ADMIN_SHUTDOWN: &str = "57P01";
    pub(crate) const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";
    pub(crate) const IDLE_SESSION_TIMEOUT: &str = "57P05";
    pub(crate) const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub(crate) const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
    pub(crate) const INVALID_STATEMENT_NAME: &str = "26000";
    pub(crate) const SYNTAX_ERROR: &str = "42601";
    pub(crate) const UNDEFINED_OBJECT: &str = "42704";
    pub(crate) const UNDEFINED_FUNCTION: &str = "42883";
    pub(crate) const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub(crate) const INVALID_PARAMETER_VALUE: &str = "22023";
    pub(crate) const READ_ONLY_SQL_TRANSACTION: &str = "25006";

    /// Classes (a code's first two characters) and the "57P" group pgwarm acts on as a whole.
    pub(crate) const CLASS_CONNECTION_EXCEPTION: &str = "08";
    pub(crate) const CLASS_INVALID_AUTHORIZATION: &str = "28";
    pub(crate) const CLASS_INSUFFICIENT_RESOURCES: &str = "53";
    /// Shutting down, starting up, in recovery, terminated by an administrator.
    pub(crate) const GROUP_SERVER_GOING_AWAY: &str = "57P";
}

/// How bad an error is; FATAL means pgwarm closes the client after sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// An ErrorResponse to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgError {
    pub(crate) severity: Severity,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) detail: Option<String>,
    pub(crate) hint: Option<String>,
}

impl PgError {
    pub(crate) fn fatal(code: &str, message: impl Into<String>) -> PgError {
        PgError {
            severity: Severity::Fatal,
            code: code.to_owned(),
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub(crate) fn error(code: &str, message: impl Into<String>) -> PgError {
        PgError {
            severity: Severity::Error,
            ..PgError::fatal(code, message)
        }
    }

    /// The client broke the protocol: it is closed.
    pub(crate) fn protocol_violation(message: impl Into<String>) -> PgError {
        PgError::fatal(sqlstate::PROTOCOL_VIOLATION, message)
    }

    /// The server connection the client depended on is gone.
    pub(crate) fn connection_failure(message: impl Into<String>) -> PgError {
        PgError::fatal(sqlstate::CONNECTION_FAILURE, message)
    }

    /// pgwarm (or its admin console) ends the session.
    pub(crate) fn admin_shutdown(message: impl Into<String>) -> PgError {
        PgError::fatal(sqlstate::ADMIN_SHUTDOWN, message)
    }

    /// The login names a user, role or database pgwarm does not serve.
    pub(crate) fn invalid_authorization(message: impl Into<String>) -> PgError {
        PgError::fatal(sqlstate::INVALID_AUTHORIZATION, message)
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> PgError {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> PgError {
        self.detail = Some(detail.into());
        self
    }

    /// Appends the ErrorResponse ('E') message to `buf`.
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        put_message(buf, b'E', |buf| {
            let severity = self.severity.as_str();
            put_field(buf, b'S', severity);
            put_field(buf, b'V', severity);
            put_field(buf, b'C', &self.code);
            put_field(buf, b'M', &self.message);
            if let Some(detail) = &self.detail {
                put_field(buf, b'D', detail);
            }
            if let Some(hint) = &self.hint {
                put_field(buf, b'H', hint);
            }
            buf.put_u8(0);
        });
    }
}

/// What an ErrorResponse from a server says, as far as pgwarm acts on it. Every error a server
/// sends is read here, with postgres-protocol's field reader: the relay's (from the bytes it
/// holds) and those of pgwarm's own exchanges (already parsed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServerReport {
    /// 'V' (the untranslated severity), or 'S' from servers before 9.6.
    pub(crate) severity: String,
    pub(crate) code: String,
    pub(crate) message: String,
}

impl ServerReport {
    pub(crate) fn of(body: &ErrorResponseBody) -> ServerReport {
        let mut report = ServerReport::default();
        let mut localized = String::new();
        let mut fields = body.fields();
        while let Ok(Some(field)) = fields.next() {
            let value = || String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'V' => report.severity = value(),
                b'S' => localized = value(),
                b'C' => report.code = value(),
                b'M' => report.message = value(),
                _ => {}
            }
        }
        if report.severity.is_empty() {
            report.severity = localized;
        }
        report
    }

    /// From an ErrorResponse's body as it came off the wire. Errors are rare, so the copy this
    /// takes costs nothing that matters; a malformed body reads as far as it goes.
    pub(crate) fn read(body: &[u8]) -> ServerReport {
        let mut message = BytesMut::with_capacity(body.len() + super::framing::HEADER_LEN);
        put_message(&mut message, b'E', |buf| buf.put_slice(body));
        match Message::parse(&mut message) {
            Ok(Some(Message::ErrorResponse(body))) => ServerReport::of(&body),
            _ => ServerReport::default(),
        }
    }

    /// FATAL or PANIC: the server closes the connection after it.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "PANIC")
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.severity.as_str(),
            self.code,
            self.message
        )
    }
}

fn put_field(buf: &mut BytesMut, kind: u8, value: &str) {
    buf.put_u8(kind);
    put_cstr(buf, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::backend::Message;

    #[test]
    fn encodes_an_error_response_that_a_driver_parses() {
        let mut buf = BytesMut::new();
        PgError::fatal(sqlstate::TOO_MANY_CONNECTIONS, "too many clients")
            .with_hint("raise PGWARM_MAX_CLIENT_CONN")
            .encode(&mut buf);
        let Some(Message::ErrorResponse(body)) = Message::parse(&mut buf).unwrap() else {
            panic!("not an ErrorResponse");
        };
        use fallible_iterator::FallibleIterator;
        let fields: Vec<(u8, String)> = body
            .fields()
            .map(|f| {
                Ok((
                    f.type_(),
                    String::from_utf8_lossy(f.value_bytes()).into_owned(),
                ))
            })
            .collect()
            .unwrap();
        assert!(fields.contains(&(b'S', "FATAL".into())));
        assert!(fields.contains(&(b'C', "53300".into())));
        assert!(fields.contains(&(b'M', "too many clients".into())));
        assert!(fields.contains(&(b'H', "raise PGWARM_MAX_CLIENT_CONN".into())));
        assert!(buf.is_empty());
    }
}
