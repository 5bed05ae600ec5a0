//! pgwarm: a PostgreSQL wire-protocol connection pooler meant to run inside an AWS Lambda
//! execution environment (and, the same binary, standalone).
//!
//! Data flows one way through the modules: [`config`] → [`credentials`] → [`protocol`] →
//! [`server`] → [`pool`] → [`client`] → [`admin`] / [`metrics`] → [`listener`] → [`lambda`]; `main.rs` only wires them
//! together. [`stream`] is the socket type both ends share, [`counter`] the totals everything counts into.
//! `docs/ARCHITECTURE.md` follows a connection through them.

// No unwrap, expect or panic outside tests: the release build aborts on a panic, and on Lambda
// Managed Instances that takes the execution environment down. The few invariants that cannot
// fail say so where they are allowed.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod admin;
pub mod client;
pub mod config;
pub mod counter;
pub mod credentials;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod lambda;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod pool;
pub mod protocol;
pub mod server;
pub mod stream;
