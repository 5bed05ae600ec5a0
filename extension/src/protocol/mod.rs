//! The PostgreSQL wire protocol as pgwarm needs it: framing, the startup packet, the backend
//! messages pgwarm writes itself, its own errors and the server side of SCRAM.
//!
//! Parsing is kept apart from I/O so each piece can be tested on bytes alone; backend messages
//! that pgwarm only reads come from `postgres-protocol`.

pub mod backend;
pub mod error;
pub mod framing;
pub mod frontend;
pub mod scram;
pub mod startup;

pub use error::{sqlstate, PgError, Severity};
