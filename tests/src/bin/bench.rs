//! `bench`: pgwarm's throughput and CPU per transaction against a direct connection, PgBouncer
//! and a plain TCP relay, with pgbench. `scripts/bench.sh` builds it and runs it.
//!
//! ```text
//! bench                                    the benchmark, its settings from the environment
//! bench --summarize RUNS_TSV [OUT_DIR]     only the chart data (charts.tsv) of a runs.tsv
//! ```
//!
//! It starts the tests' throwaway PostgreSQL cluster, pgwarm (`$PGWARM_BIN`), PgBouncer and
//! HAProxy on free ports on 127.0.0.1 (nothing else is touched), and runs
//! `pgbench -n -S -M MODE -T DURATION -c C -j min(C,2)` against each target, BENCH_ROUNDS
//! times. Within a round, for each mode and client count, the targets run back to back, and
//! their order rotates from round to round (direct, pgwarm, pgbouncer, haproxy; then pgwarm,
//! pgbouncer, haproxy, direct; ...) so that drift and position effects hit all of them alike.
//!
//! The targets:
//! - direct: PostgreSQL itself, the ceiling.
//! - pgwarm: pool of 4, transaction mode.
//! - pgbouncer: PgBouncer (`BENCH_PGBOUNCER_BIN`, else Debian's), pool of 4, transaction mode,
//!   SCRAM; from 1.21 on with `max_prepared_statements = 200` (1.24's default).
//! - haproxy: HAProxy (Debian's) in `mode tcp` with one thread, as pgwarm and PgBouncer run: a
//!   relay that only copies bytes, one server connection per client, no pooling. No pooler
//!   does less work per transaction: it is the floor for CPU, and the reference for the
//!   latency a hop adds.
//!
//! PgBouncer before 1.21 cannot run -M prepared in transaction mode; when -M extended runs too,
//! its -M prepared runs are skipped and the prepared table compares with its extended figures.
//! Every client uses libpq's sslmode=disable (the cluster has no TLS) and no GSSAPI encryption.
//!
//! Single runs are noisy on small machines, so besides the TPS it records, for pgwarm, PgBouncer
//! and HAProxy, the process's own CPU time per transaction: utime+stime of the process (all its
//! threads; /proc/PID/stat fields 14 and 15, in clock ticks of `sysconf(_SC_CLK_TCK)`) read just
//! before and just after each pgbench run, divided by pgbench's "number of transactions actually
//! processed". It includes the process's share of the connection setup (SCRAM) of that run.
//!
//! The report has one table per mode. Per client count it gives the median over the rounds of
//! each target's TPS, pgwarm's ratios to the others (ratios of those medians, with the min-max
//! range of the per-round ratios), and the median CPU µs/transaction of the three relays with
//! pgwarm's ratios to PgBouncer's and HAProxy's. It is printed and written to OUT/report.txt;
//! every run's figures go to OUT/runs.tsv, pgbench outputs to OUT/runs/ and server logs to
//! OUT/logs/. OUT/charts.tsv holds what the charts show, per mode and client count: each
//! relay's median TPS as a share of direct's and its median CPU µs per transaction (NaN where a
//! run failed; PgBouncer's prepared cells are its extended ones when those runs were skipped);
//! `scripts/bench-charts.sh` draws tps.svg and cpu.svg from it. `--summarize` recomputes
//! charts.tsv from a runs.tsv (OUT_DIR defaults to the runs.tsv's folder), so committed runs
//! redraw the same charts.
//!
//! Environment:
//! ```text
//! BENCH_ROUNDS    rounds (each runs every target once per mode and client count) (default 3)
//! BENCH_DURATION  seconds per pgbench run                                        (default 10)
//! BENCH_CLIENTS   client counts, space separated                            (default "1 16 64")
//! BENCH_MODES     pgbench -M query modes, space separated  (default "simple extended prepared")
//! BENCH_SCALE     pgbench -i scale factor                                        (default 10)
//! BENCH_OUT_DIR   OUT: where the report, runs and logs go                 (default target/bench)
//! PGWARM_BIN      the pgwarm binary to measure (default: the workspace's debug build)
//! BENCH_PGBOUNCER_BIN  the PgBouncer to compare with (default: Debian's, `pgbouncer` on PATH;
//!                 `scripts/bench.sh` builds the current release when it can)
//! PGWARM_*        passed through to pgwarm (e.g. PGWARM_WORKER_THREADS=2), except the ones the
//!                 benchmark fixes: LISTEN, DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (4, the
//!                 same as PgBouncer's default_pool_size) and LOG_LEVEL (warn).
//! ```
//! Runs: ROUNDS x modes x client counts x 4 targets (3 for prepared), each DURATION s; the
//! defaults make 99 runs of 10 s, about 18 minutes with setup.
//!
//! A pgbench run succeeds only if it exits 0, has no "aborted" in its output, reports "number of
//! failed transactions: 0", prints no "pgbench: error:" line, and reports a TPS and a non-zero
//! transaction count (`drivers/bench/pgbench.rs`). Any other run counts as FAILED: the report
//! marks the figures it belongs to FAILED and quotes its first error line. PgBouncer's
//! -M prepared runs before 1.21, when they run, are expected to fail (see `mode.rs`). Exit
//! status: 0; 1 if any other run failed, a relay's CPU time could not be read or a server is
//! gone at the end; 2 for a bad setting; 128 + the signal after Ctrl-C or SIGTERM, which stop
//! the run in progress and everything the benchmark started.
//!
//! The code is [`pgwarm_tests::drivers::bench::throughput`] (`src/drivers/bench/throughput/`),
//! on what both benchmarks share (`src/drivers/bench/`).

use std::process::ExitCode;

fn main() -> ExitCode {
    pgwarm_tests::drivers::bench::throughput::main()
}
