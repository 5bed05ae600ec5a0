//! pgwarm's end-to-end tests and the driver binaries built on the same code, in two halves:
//!
//! - [`harness`]: what the end-to-end tests (`tests/*.rs`) start and talk to: real components,
//!   no mocks (PostgreSQL, pgwarm, PgBouncer, HAProxy, moto_server, lambda-simulator, the wire
//!   protocol, TLS). Its items are also at the crate's root, so a test says
//!   `use pgwarm_tests::*;`.
//! - [`drivers`]: what only the binaries in `src/bin/` run on top of the harness: the demo, the
//!   benchmarks, the fleet, one environment's lifecycle, and their reports.
//!
//! The harness never uses the drivers; a driver uses the harness as a test does.

pub mod drivers;
pub mod harness;

pub use harness::*;
