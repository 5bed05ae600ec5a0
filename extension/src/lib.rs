//! pgwarm: a PostgreSQL wire-protocol connection pooler meant to run inside an AWS Lambda
//! execution environment (and, the same binary, standalone).
//!
//! Data flows one way through the modules: [`config`] → [`credentials`] → [`protocol`] →
//! [`server`] → [`pool`] → [`client`] → [`admin`] / [`metrics`] → [`listener`] → [`lambda`]; [`app`] wires them
//! together and `main.rs` calls it. [`stream`] is the socket type both ends share, [`counter`] the totals everything counts into.
//! `docs/ARCHITECTURE.md` follows a connection through them.

// No unwrap, expect or panic outside tests: the release build aborts on a panic, and on Lambda
// Managed Instances that takes the execution environment down. The few invariants that cannot
// fail say so where they are allowed.
// Visibility tells the truth: what no other crate can reach is `pub(crate)`, not `pub`.
#![warn(unreachable_pub)]
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

// Public: the program itself, the IAM token signer (the tests check it against AWS's), and the
// fuzz targets' entry points. Everything else is the program's own.
pub(crate) mod admin;
pub mod app;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod counter;
pub mod credentials;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub(crate) mod lambda;
pub(crate) mod listener;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod pool;
pub(crate) mod protocol;
pub(crate) mod server;
pub(crate) mod stream;
