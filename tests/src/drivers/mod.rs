//! What the driver binaries (`src/bin/`) run on the tests' harness, so that a person or a script
//! measures pgwarm with the code the end-to-end tests check. None of it is test support: a test
//! that uses a driver ([`fleet`] at a small scale) tests the driver.
//!
//! - [`bench`](mod@bench): the two pgbench benchmarks, `bench` (throughput) and `bench-connect`
//!   (connect + one query + close), and what they share.
//! - [`demo`]: the demo behind `scripts/demo.sh`, a module per step.
//! - [`failover`]: one failover under the same psycopg load through pgwarm, directly with
//!   libpq's host list, and through PgBouncer; the `failover` binary runs it.
//! - [`fleet`]: many environments against a database with few connection slots, directly,
//!   through pgwarm and through pgwarm + PgBouncer; the `demo` and `fleet` binaries run it.
//! - [`lambda`]: `bench-lambda`, a naive handler and pgwarm under a Lambda-sized CPU quota.
//! - [`lifecycle`]: one environment's life on lambda-simulator, measured (invocations, the thaw
//!   check, SHUTDOWN, start-up), for `demo`, `lambda-run` and `footprint`.
//! - [`children`]: how a driver ends everything it started, on Ctrl-C or a panic.
//! - [`vars`]: a driver's settings from `BENCH_*` and `DEMO_*` variables, a bad one named.
//! - [`pgwarm_env`]: the caller's `PGWARM_*` variables a driver passes on to pgwarm.
//! - [`figures`], [`facts`]: every driver's report arithmetic (medians, quantiles, ratio cells,
//!   the rounds' order) and the facts a report starts with (date, commit, load).

pub mod bench;
pub mod children;
pub mod demo;
pub mod facts;
pub mod failover;
pub mod figures;
pub mod fleet;
pub mod lambda;
pub mod lifecycle;
pub mod pgwarm_env;
pub mod vars;
