//! `bench-connect`: the cost of connect + one query + close, what a Lambda handler that connects
//! inside the handler pays on every invocation: directly to PostgreSQL, through pgwarm and
//! through PgBouncer, each with and without TLS from the client. `scripts/bench-connect.sh`
//! builds it and runs it; its settings come from the environment (below).
//!
//! It starts, on free ports on 127.0.0.1 (nothing else is touched):
//! - the tests' throwaway PostgreSQL cluster: SCRAM (password_encryption = scram-sha-256,
//!   scram-sha-256 for 127.0.0.1 in pg_hba.conf), ssl = on with a P-256 certificate of a
//!   throwaway CA (rcgen, the harness's `TestCerts`), a role and database `bench`,
//!   `pgbench -i -s 1`;
//! - pgwarm (`$PGWARM_BIN`) with PGWARM_SSLMODE=require (its pooled server connections use
//!   TLS), pool size 2 and client TLS on (it answers SSLRequest with 'S' and serves the
//!   self-signed certificate it makes at start-up);
//! - PgBouncer in transaction mode, pool size 2, auth_type scram-sha-256 with the role's SCRAM
//!   secret (from pg_authid) in its auth_file, server_tls_sslmode = require,
//!   client_tls_sslmode = allow with another such certificate, and log_connections/
//!   log_disconnections off (pgwarm does not log connections either).
//!
//! It checks that every target answers a query with and without TLS and that the poolers'
//! server connections use TLS (pg_stat_ssl), then runs, for each of six cases, BENCH_ROUNDS
//! times, with libpq's PGSSLMODE set per case (PGGSSENCMODE=disable throughout):
//! ```text
//! pgbench -n -C -S -c 1 -j 1 -T DURATION      (-C: a new connection for every transaction)
//!
//! direct-tls       sslmode=require  TCP + TLS + SCRAM + a forked backend: no pooler
//! direct-plain     sslmode=disable  TCP + SCRAM + a forked backend
//! pgwarm-tls       sslmode=require  TCP + TLS to pgwarm; a pooled TLS server connection
//! pgwarm-plain     sslmode=disable  TCP to pgwarm
//! pgbouncer-tls    sslmode=require  TCP + TLS + SCRAM to PgBouncer; a pooled TLS server connection
//! pgbouncer-plain  sslmode=disable  TCP + SCRAM to PgBouncer
//! ```
//! The six cases run back to back and their order rotates by one target (two cases) from round
//! to round (direct first, then pgwarm first, then pgbouncer first, ...) so that drift and
//! position effects hit them all alike.
//!
//! Per run it records pgbench's TPS (with -C it counts connect + query + close per second),
//! "latency average" and "average connection time" (connect only: TCP, TLS, startup,
//! authentication, until ReadyForQuery), and for the pooler cases the pooler's own CPU time per
//! connection: utime+stime of the pooler process (all its threads; /proc/PID/stat fields 14 and
//! 15, in clock ticks of `sysconf(_SC_CLK_TCK)`) just before and just after the run, divided by
//! pgbench's "number of transactions actually processed" (one connection each). It also records
//! pgbench's own CPU time per connection, the handler's side of the cost, where libpq's SCRAM
//! and TLS work is spent: pgbench's user + system time from its rusage, read as this process's
//! `getrusage(RUSAGE_CHILDREN)` grows once pgbench is reaped (nothing else is reaped meanwhile).
//!
//! The report gives per case the median over the rounds of the time per connect + query +
//! close, 1000 / TPS in ms (with one client it is pgbench's "latency average"), with the min-max
//! over the rounds, the medians of the connection time, the connections per second, and the
//! pooler's and pgbench's CPU µs per connection; then ratios of the medians of the time per
//! connection (per-round min-max in brackets): direct-tls / pgwarm-tls, direct-tls /
//! pgwarm-plain, pgbouncer-tls / pgwarm-tls, pgbouncer-plain / pgwarm-plain and pgwarm-tls /
//! pgwarm-plain (what the local TLS handshake costs). Its header says what TLS a client
//! negotiates with each target: a probe sends SSLRequest and makes the handshake with rustls
//! (`pgwarm_tests::negotiated_tls`). The report is printed and written to
//! OUT/connect-report.txt; every run's figures go to OUT/connect-runs.tsv, pgbench outputs to
//! OUT/connect-runs/ and server logs to OUT/connect-logs/.
//!
//! Note that by default pgwarm's clients do not authenticate (pgwarm listens on loopback and
//! accepts any user), while PgBouncer's and the database's run SCRAM, whose client side (PBKDF2,
//! 4096 rounds, in libpq) pgbench pays on every connection. PGWARM_CLIENT_PASSWORD=password (the
//! benchmark's password) makes pgwarm's clients log in with SCRAM too. With the SCRAM secret in
//! its auth_file PgBouncer checks a login with a few HMACs and logs in to the server with the
//! client's key; with the plain password there (BENCH_PGBOUNCER_SECRET=plain, what `bench`
//! does) it runs PBKDF2 itself on every client login.
//!
//! Environment:
//! ```text
//! BENCH_ROUNDS    rounds (each runs the six cases once)  (default 3)
//! BENCH_DURATION  seconds per pgbench run                (default 5)
//! BENCH_PGBOUNCER_SECRET  what PgBouncer's auth_file holds: verifier (the SCRAM secret) or
//!                 plain (the password)                   (default verifier)
//! BENCH_OUT_DIR   OUT: where the report, runs and logs go (default target/bench)
//! PGWARM_BIN      the pgwarm binary to measure (default: the workspace's debug build)
//! PGWARM_*        passed through to pgwarm (e.g. PGWARM_CLIENT_PASSWORD=password,
//!                 PGWARM_WORKER_THREADS=2), except the ones the benchmark fixes: LISTEN,
//!                 DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (2, the same as PgBouncer's
//!                 default_pool_size), SSLMODE (require), CLIENT_TLS (on) and LOG_LEVEL (warn).
//! ```
//! Runs: ROUNDS x 6 cases, each DURATION s; the defaults make 18 runs of 5 s, about 2 minutes
//! with setup.
//!
//! A pgbench run succeeds only if it exits 0, has no "aborted" in its output, reports "number of
//! failed transactions: 0", prints no "pgbench: error:" line, and reports a TPS, a latency
//! average, a connection time and a non-zero transaction count (`drivers/bench/pgbench.rs`).
//! Any other run counts as FAILED: the report marks the figures it belongs to FAILED and quotes
//! its first error line. Exit status: 0; 1 if a run failed, a pooler's CPU time could not be read
//! or a server is gone at the end; 2 for a bad setting; 128 + the signal after Ctrl-C or SIGTERM,
//! which stop the run in progress and everything the benchmark started.
//!
//! The code is [`pgwarm_tests::drivers::bench::connect`] (`src/drivers/bench/connect/`), on what
//! both benchmarks share (`src/drivers/bench/`).

use std::process::ExitCode;

fn main() -> ExitCode {
    pgwarm_tests::drivers::bench::connect::main()
}
