//! `bench-lambda`: what a naive Lambda handler pays per invocation, at the CPU share Lambda gives
//! 128, 512 and 1,769 MB, directly to PostgreSQL and through pgwarm; and a cold start.
//! `scripts/bench-lambda.sh` installs what it needs, builds it and runs it. It must run as root
//! (it makes a cgroup). The scenario and its figures:
//! [`pgwarm_tests::drivers::lambda`].
//!
//! It starts, on free ports on 127.0.0.1: the tests' throwaway cluster (SCRAM, ssl = on), a
//! delay relay per round trip, pgwarm (`$PGWARM_BIN`, or the workspace's debug build) with
//! PGWARM_SSLMODE=require, and per cell a handler: `python3` with psycopg 3 or `node` with
//! node-postgres (found through `NODE_PATH`). Settings, from the environment:
//! ```text
//! BENCH_LAMBDA_INVOCATIONS  measured invocations per cell            (default 150)
//! BENCH_LAMBDA_WARMUP       unmeasured ones before them               (default 5)
//! BENCH_LAMBDA_GAP_MS       pause between invocations                 (default 100)
//! BENCH_LAMBDA_MEMORY       memory sizes, MB                          (default "128 512 1769")
//! BENCH_LAMBDA_RTT_MS       round trips to the database, ms          (default "0 0.5")
//! BENCH_LAMBDA_DRIVERS      python, node                              (default "python node")
//! BENCH_LAMBDA_WAYS         direct-tls direct-plain pgwarm-tls pgwarm-plain (default: all)
//! BENCH_LAMBDA_COLD_STARTS  cold starts per driver, memory, round trip (default 5; 0: none)
//! BENCH_LAMBDA_COLD_MEMORY  their memory sizes, MB                    (default "128 1769")
//! BENCH_OUT_DIR             lambda-report.txt, lambda-runs.tsv, lambda-runs/ (a TSV of
//!                           invocations per cell), lambda-logs/       (default target/bench)
//! PGWARM_*                  passed on to pgwarm, but for the ones it fixes (LISTEN, DB_*,
//!                           SSLMODE, LOG_LEVEL)
//! ```
//! Exit status 0; 1 when an invocation, a cold start or a step failed; 2 for a bad setting;
//! 128 + the signal when stopped.

fn main() -> std::process::ExitCode {
    pgwarm_tests::drivers::lambda::main()
}
