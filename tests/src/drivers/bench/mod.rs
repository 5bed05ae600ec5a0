//! The two pgbench benchmarks and what they share, written once. [`throughput`] is the `bench`
//! binary (TPS and CPU per transaction against a direct connection, PgBouncer and HAProxy);
//! [`connect`] is `bench-connect` (connect + one query + close, with and without TLS). Their
//! binaries' docs say what each measures and how.
//!
//! Shared: what pgbench talks to (`way.rs`) and the relays started for it (`relays.rs`); the
//! settings both take from the environment (`settings.rs`); one run's record (`run.rs`); running
//! pgbench against a target and the rule that says whether a run counts (`pgbench.rs`); the CPU
//! time of a server and of pgbench (`cpu.rs`); the runs' clocks, table and timing (`runner.rs`);
//! the output folders and the report's publication (`out_dirs.rs`); the database, pgwarm and exit
//! status (`setup.rs`); and Ctrl-C/SIGTERM (`stop.rs`). The failover comparison
//! ([`crate::drivers::failover`]) runs no pgbench but shares the output folders, the exit
//! status, the caller's `PGWARM_*` variables and the signal handling.
//!
//! Where a benchmark turns a problem into a report line or a clear message, these return errors
//! rather than panic: a failed run is a figure, not a crash. Starting a server still panics, as
//! everywhere in the harness; then every child is killed (see `stop.rs`).

pub mod connect;
pub mod throughput;

pub(crate) mod cpu;
pub(crate) mod out_dirs;
mod pgbench;
mod relays;
mod run;
mod runner;
pub(crate) mod settings;
pub(crate) mod setup;
pub(crate) mod stop;
mod way;

/// A line on stderr, in the name of the benchmark `program`.
fn say(program: &str, text: impl AsRef<str>) {
    eprintln!("{program}: {}", text.as_ref());
}
