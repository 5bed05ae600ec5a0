#!/usr/bin/env bash
# Benchmark the cost of connect + one query + close, what a Lambda handler that connects inside
# the handler pays on every invocation: directly to PostgreSQL, through pgwarm and through
# PgBouncer, each with and without TLS from the client (pgbench -C). The benchmark is
# tests/src/bin/bench-connect.rs, on the tests' harness; its doc says what it measures and how.
#
# On a fresh Debian/Ubuntu machine it first installs what is missing, one line per install:
#   apt: postgresql (server), postgresql-client (psql, pgbench), pgbouncer
# then builds the workspace in release (pgwarm and the bench-connect binary) and runs
# bench-connect with PGWARM_BIN set to that pgwarm. Everything the benchmark started is stopped
# and removed on exit, also on Ctrl-C.
#
# Environment:
#   BENCH_ROUNDS    rounds (each runs the six cases once)  (default 3)
#   BENCH_DURATION  seconds per pgbench run                (default 5)
#   BENCH_PGBOUNCER_SECRET  what PgBouncer's auth_file holds: verifier (the SCRAM secret) or
#                   plain (the password)                   (default verifier)
#   BENCH_OUT_DIR   where the report, runs and logs go     (default target/bench)
#   BENCH_PGWARM_BIN  a pgwarm binary to measure instead of a release build, by the debug
#                   bench-connect binary (smoke runs; build the workspace first: cargo build
#                   --workspace)
#   PGWARM_*        passed through to pgwarm (e.g. PGWARM_CLIENT_PASSWORD=password), except the
#                   ones the benchmark fixes: LISTEN, DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE
#                   (2), SSLMODE (require), CLIENT_TLS (on) and LOG_LEVEL (warn).
# The defaults make 18 runs of 5 s, about 2 minutes with setup (plus the build).
#
# Output, in BENCH_OUT_DIR: connect-report.txt (also printed), connect-runs.tsv (every run's
# figures), connect-runs/ (each pgbench output) and connect-logs/ (the servers' logs). Exit
# status: the benchmark's (0; 1 if a run failed; 2 for a bad setting; 128 + the signal when
# stopped).
set -euo pipefail
SCRIPT_NAME=bench-connect.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."

install_missing postgresql postgresql-client pgbouncer
bench_binary bench-connect

# The harness's temporary files live in a work folder removed on exit, on Ctrl-C too.
make_workdir pgwarm-bench-connect
trap common_cleanup EXIT
export PGWARM_BIN
TMPDIR="$WORK" run_driver "$BENCH_BIN_DIR/bench-connect"
exit "$DRIVER_RC"
