//! What the two pgbench benchmarks (`src/bin/bench.rs`, throughput; `src/bin/bench-connect.rs`,
//! connect + query + close) share, written once: running pgbench against a target and the rule
//! that says whether a run counts ([`pgbench`]), the CPU time of a server and of pgbench
//! ([`cpu`]), the runs' clocks, table and timing ([`runner`]), the output folders ([`settings`]),
//! the database, pgwarm and exit status they share ([`setup`]), and Ctrl-C/SIGTERM ([`stop`]).
//!
//! Where a benchmark turns a problem into a report line or a clear message, these return errors
//! rather than panic: a failed run is a figure, not a crash. Starting a server still panics, as
//! everywhere in the harness; then every child is killed (see [`stop`]).

pub mod cpu;
pub mod pgbench;
pub mod runner;
pub mod settings;
pub mod setup;
pub mod stop;

pub use cpu::{
    children_cpu, clock_ticks_per_second, comm_of, us_per, CpuClock, RunCpu, ServerClocks,
};
pub use pgbench::{judge, Client, Exit, Failure, Figure, PgbenchRun, SslMode, Summary};
pub use settings::OutDirs;
pub use stop::{Halt, Stopped};
