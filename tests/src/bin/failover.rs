//! `failover`: one failover under load, side by side through three ways of connecting, with the
//! same client code for each: through pgwarm, directly with libpq's own host list
//! (`target_session_attrs=read-write`), and through PgBouncer. `scripts/bench-failover.sh`
//! builds it and runs it; its settings come from the environment (below).
//!
//! Each round runs every way once (in an order rotating from round to round), each on servers of
//! its own, started on free ports of 127.0.0.1:
//! - a fresh PostgreSQL primary (the tests' harness: SCRAM, `synchronous_commit = off`) with a
//!   fresh login and a table `failover_rows(id bigint, client int)`, and a streaming standby of
//!   it (`pg_basebackup -R`) that has replayed them;
//! - pgwarm (`$PGWARM_BIN`) with `PGWARM_DB_HOST=127.0.0.1,127.0.0.1` and `PGWARM_DB_PORT`
//!   naming the primary then the standby, `PGWARM_POOL_SIZE=4`,
//!   `PGWARM_QUERY_WAIT_TIMEOUT=20s`, `PGWARM_LOG_LEVEL=info`, otherwise its defaults (and the
//!   caller's `PGWARM_*` variables); or nothing (direct: the clients' connection string has
//!   `host=127.0.0.1,127.0.0.1 port=<primary>,<standby> target_session_attrs=read-write`); or
//!   Debian's PgBouncer in transaction mode, `default_pool_size = 4`, its database at the
//!   primary's address, as a user with one host name would have it.
//!
//! The load is `tests/py/failover.py`: BENCH_CLIENTS psycopg clients, one thread each, every
//! fourth in transactions (BEGIN; INSERT a unique id; COMMIT), the others a simple-protocol
//! SELECT and a parameterised (extended) one in turn, every answer checked. A client whose
//! connection is gone connects again, as an application using libpq directly must, waiting
//! BENCH_BACKOFF_MS before each such attempt; a failed connect is an error. Once every client has
//! had an operation succeed, and a second more, the driver runs `pg_ctl stop -m fast` of the
//! primary, then `pg_ctl promote` of the standby, and the load goes on BENCH_WINDOW seconds after
//! the promotion was asked for. Then the committed ids are counted on the new primary.
//!
//! Per run it records: the operations that succeeded; errors outside a transaction (failed
//! connects, failed statements, and of those the statements the database killed while they
//! ran; and how many clients saw one) and inside one (between BEGIN and the end of COMMIT); committed ids lost or doubled on
//! the new primary; and the time from the promotion's request to the first write (a COMMIT)
//! and to the first operation of any kind that succeeded after it, or none within the window.
//! The report (OUT/failover-report.txt, also printed) has every run, the medians per way with
//! their ranges, the ratios to pgwarm's, and the errors by kind; OUT/failover-runs.tsv every
//! run's figures, OUT/failover-runs/ the script's output and OUT/failover-logs/ the servers'.
//!
//! Environment:
//! ```text
//! BENCH_ROUNDS      rounds (each runs every way once)                  (default 3)
//! BENCH_CLIENTS     client threads                                     (default 50)
//! BENCH_WINDOW      seconds the load goes on after the promotion       (default 10)
//! BENCH_BACKOFF_MS  a client's pause before connecting again           (default 10)
//! BENCH_WAYS        the ways, space separated               (default "pgwarm direct pgbouncer")
//! BENCH_OUT_DIR     OUT: where the report, runs and logs go            (default target/bench)
//! PGWARM_BIN        the pgwarm binary to measure (default: the workspace's debug build)
//! PGWARM_*          passed through to pgwarm, except DB_HOST/PORT/NAME/USER/PASSWORD, LISTEN,
//!                   POOL_SIZE, QUERY_WAIT_TIMEOUT and LOG_LEVEL, which the driver sets
//! ```
//! A run takes about BENCH_WINDOW + 6 s; the defaults make 9 runs, about 2.5 minutes.
//!
//! Exit status: 0; 1 if a run gave no figures (the load did not get going, the script failed)
//! or an answer was wrong; 2 for a bad setting; 128 + the signal after Ctrl-C or SIGTERM. How
//! long a way took to come back, and its errors, are figures, not failures.
//!
//! The code is [`pgwarm_tests::drivers::failover`] (`src/drivers/failover/`).

use std::process::ExitCode;

fn main() -> ExitCode {
    pgwarm_tests::drivers::failover::main()
}
