//! Entry points for the fuzz targets in `extension/fuzz` (feature `fuzzing`, off in every
//! other build). Each feeds arbitrary bytes to the code that reads what clients and servers
//! send; the only expectation is that none of it panics, since a panic is an outage (the
//! release profile aborts, and on Lambda Managed Instances a crashed extension takes the whole
//! execution environment down).

use crate::client::session_sql::session_state;
use crate::client::statements::deallocate_target;
use crate::protocol::scram::{ScramServer, ScramVerifier};
use crate::protocol::startup::session_settings;
use crate::protocol::startup::{self, StartupPacket};
use crate::server::{self, SessionSettings};
use postgres_protocol::message::backend::Message;
use std::sync::OnceLock;

/// A startup packet body (after the length word): parsed, and its settings read as pgwarm would
/// apply them.
pub fn startup_packet(data: &[u8]) {
    let _ = startup::check_len(data.len().saturating_add(4));
    if let Ok(StartupPacket::Startup { params, .. }) = startup::parse(data) {
        let settings = SessionSettings::new(session_settings(&params));
        let _ = settings.apply_sql(&SessionSettings::default());
    }
}

/// A script of client bytes, server bytes and link events played against the relay (see
/// `client::relay::driver::run_script`), plus the `DEALLOCATE` recogniser and the reading of
/// session-state statements (`PGWARM_PINNING=refuse`) on the raw bytes.
pub fn relay(data: &[u8]) {
    let _ = deallocate_target(data);
    let _ = session_state(data);
    crate::client::relay::driver::run_script(data);
}

/// The client side of a SCRAM-SHA-256 exchange: the bytes up to the first 0xff are the
/// client-first-message, the rest the client-final-message.
pub fn scram(data: &[u8]) {
    static VERIFIER: OnceLock<ScramVerifier> = OnceLock::new();
    // One iteration: the fuzzer wants the parsing, not PBKDF2.
    let verifier = VERIFIER.get_or_init(|| ScramVerifier::with_salt("password", b"salt", 1));
    let (first, last) = match data.iter().position(|b| *b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let mut exchange = ScramServer::new(verifier);
    if exchange.client_first("SCRAM-SHA-256", first).is_ok() {
        let _ = exchange.client_final(last);
    }
}

/// Backend messages as pgwarm reads them on its own round trips and logins (a hostile or broken
/// server): parsed one after another, errors' fields read.
pub fn backend_messages(data: &[u8]) {
    let mut buf = bytes::BytesMut::from(data);
    while let Ok(Some(message)) = server::parse_own_message(&mut buf) {
        if let Message::ErrorResponse(body) = message {
            let _ = crate::protocol::error::ServerReport::of(&body);
        }
    }
}
