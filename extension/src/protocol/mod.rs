//! The PostgreSQL wire protocol as pgwarm needs it: framing, the startup packet, the backend
//! messages pgwarm writes itself, its own errors and the server side of SCRAM.
//!
//! Parsing is kept apart from I/O so each piece can be tested on bytes alone; backend messages
//! that pgwarm only reads come from `postgres-protocol`.
//!
//! Everything here reads bytes a client or a server chose, so no index, unwrap or panic is
//! allowed outside tests: a panic would be an outage (the release build aborts). The fuzz
//! targets in `extension/fuzz` check the same from the outside.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub(crate) mod backend;
pub(crate) mod error;
pub(crate) mod framing;
pub(crate) mod frontend;
pub(crate) mod scram;
pub(crate) mod startup;

pub(crate) use error::{sqlstate, PgError};
