#!/usr/bin/env bash
# Measure one failover side by side through three ways of connecting, with the same psycopg
# clients for each: through pgwarm (PGWARM_DB_HOST listing the primary and the standby),
# directly with libpq's own host list and target_session_attrs=read-write, and through Debian's
# PgBouncer pointed at the primary. Each run: a fresh primary and streaming standby, a client
# load, pg_ctl stop -m fast of the primary, pg_ctl promote of the standby; recorded: client
# errors, lost or doubled commits, and the time to writes again after the promotion. The driver
# is tests/src/bin/failover.rs, on the tests' harness; its doc says what it measures and how.
#
# On a fresh Debian/Ubuntu machine it first installs what is missing, one line per install:
#   apt: postgresql (server), postgresql-client (psql), pgbouncer, python3-pip (if psycopg is
#        missing and there is no pip)
#   pip: psycopg[binary] (psycopg 3 with its own libpq: the clients)
# then builds the workspace in release (pgwarm and the failover binary) and runs failover with
# PGWARM_BIN set to that pgwarm. Everything the benchmark started is stopped and removed on
# exit, also on Ctrl-C.
#
# Environment:
#   BENCH_ROUNDS      rounds (each runs every way once, on fresh servers)  (default 3)
#   BENCH_CLIENTS     client threads                                       (default 50)
#   BENCH_WINDOW      seconds the load goes on after the promotion         (default 10)
#   BENCH_BACKOFF_MS  a client's pause before connecting again             (default 10)
#   BENCH_WAYS        the ways, space separated         (default "pgwarm direct pgbouncer")
#   BENCH_OUT_DIR     where the report, runs and logs go                   (default target/bench)
#   BENCH_PGWARM_BIN  a pgwarm binary to measure instead of a release build, by the debug
#                     failover binary (smoke runs; build the workspace first: cargo build
#                     --workspace)
#   PGWARM_*          passed through to pgwarm, except the ones the driver fixes: LISTEN,
#                     DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (4), QUERY_WAIT_TIMEOUT (20s)
#                     and LOG_LEVEL (info).
# The defaults make 9 runs of about 16 s, about 2.5 minutes (plus the build).
#
# Output, in BENCH_OUT_DIR: failover-report.txt (also printed), failover-runs.tsv (every run's
# figures), failover-runs/ (the load script's output) and failover-logs/ (the servers' logs).
# Exit status: the driver's (0; 1 if a run gave no figures or an answer was wrong; 2 for a bad
# setting; 128 + the signal when stopped).
set -euo pipefail
SCRIPT_NAME=bench-failover.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."

apt_wants=(postgresql postgresql-client pgbouncer)
if ! python3 -c 'import psycopg' 2>/dev/null; then
    apt_wants+=(python3-pip)
fi
install_missing "${apt_wants[@]}"
# psycopg 3 with its own libpq (17+): the clients of every way.
pip_install_module psycopg 'psycopg[binary]'
bench_binary failover

# The harness's temporary files live in a work folder removed on exit, on Ctrl-C too.
make_workdir pgwarm-bench-failover
trap common_cleanup EXIT
export PGWARM_BIN
say "failover: ${BENCH_ROUNDS:-3} rounds of pgwarm, direct and pgbouncer, ${BENCH_CLIENTS:-50} clients"
TMPDIR="$WORK" run_driver "$BENCH_BIN_DIR/failover"
exit "$DRIVER_RC"
