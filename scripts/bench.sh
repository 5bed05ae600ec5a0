#!/usr/bin/env bash
# Benchmark pgwarm against a direct connection, PgBouncer and a plain TCP relay (HAProxy), with
# pgbench -S in simple, extended and prepared mode: TPS, and each relay's CPU per transaction.
# The benchmark is tests/src/bin/bench.rs, on the tests' harness; its doc says what it measures
# and how.
#
# On a fresh Debian/Ubuntu machine it first installs what is missing, one line per install:
#   apt: postgresql (server), postgresql-client (psql, pgbench), pgbouncer, haproxy, and
#        gnuplot-nox for the charts
# then builds the workspace in release (pgwarm and the bench binary), runs bench with
# PGWARM_BIN set to that pgwarm, and draws the charts from its chart data
# (scripts/bench-charts.sh). Everything the benchmark started is stopped and removed on exit,
# also on Ctrl-C.
#
# Environment:
#   BENCH_ROUNDS    rounds (each runs every target once per mode and client count) (default 3)
#   BENCH_DURATION  seconds per pgbench run                                        (default 10)
#   BENCH_CLIENTS   client counts, space separated                            (default "1 16 64")
#   BENCH_MODES     pgbench -M query modes, space separated  (default "simple extended prepared")
#   BENCH_SCALE     pgbench -i scale factor                                        (default 10)
#   BENCH_OUT_DIR   where the report, runs and logs go                 (default target/bench)
#   BENCH_PGWARM_BIN  a pgwarm binary to measure instead of a release build, by the debug bench
#                   binary (smoke runs; build the workspace first: cargo build --workspace)
#   BENCH_PGBOUNCER_BIN  the PgBouncer to compare with. Unset: the current release (1.25.2),
#                   built once into /opt/pgbouncer-1.25.2 from the source archive of the
#                   project's shared anchors (about a minute, with its build packages from apt)
#                   when that archive is beside the project; Debian's 1.18 otherwise, with a
#                   line that says so.
#   PGWARM_*        passed through to pgwarm (e.g. PGWARM_WORKER_THREADS=2), except the ones the
#                   benchmark fixes: LISTEN, DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (4) and
#                   LOG_LEVEL (warn).
# The defaults make 99 runs of 10 s, about 18 minutes with setup (plus the build).
#
# Output, in BENCH_OUT_DIR: report.txt (also printed), runs.tsv (every run's figures), runs/
# (each pgbench output), logs/ (the servers' logs), charts.tsv (the charts' figures), tps.svg and
# cpu.svg. Exit status: the benchmark's (0; 1 if a run that should count failed; 2 for a bad
# setting; 128 + the signal when stopped), or the charts' when they fail.
set -euo pipefail
SCRIPT_NAME=bench.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."

install_missing postgresql postgresql-client pgbouncer haproxy
bench_binary bench

if [ -z "${BENCH_PGBOUNCER_BIN:-}" ]; then
    build_pgbouncer=../shared/anchors/build-pgbouncer.sh
    if [ -f "$build_pgbouncer" ]; then
        say "PgBouncer 1.25.2 to compare with: building it once into /opt/pgbouncer-1.25.2"
        BENCH_PGBOUNCER_BIN=$(bash "$build_pgbouncer" | tail -1)
        export BENCH_PGBOUNCER_BIN
    else
        say "comparing with Debian's $(pgbouncer --version | head -1): the source of the current release is not beside the project"
    fi
fi

# The harness's temporary files (the cluster, the servers' folders) live in a work folder removed
# on exit, on Ctrl-C too. bench runs as a child rather than in this shell's place so that the
# charts can follow; INT and TERM reach it (run_driver), and it stops its pgbench run and
# everything it started.
make_workdir pgwarm-bench
trap common_cleanup EXIT
export PGWARM_BIN
TMPDIR="$WORK" run_driver "$BENCH_BIN_DIR/bench"
rc=$DRIVER_RC

# With some runs FAILED (status 1) the charts still show the others, as the report does.
charts="${BENCH_OUT_DIR:-$TARGET_DIR/bench}/charts.tsv"
if [ "$rc" -le 1 ] && [ -f "$charts" ]; then
    "$(dirname "$0")/bench-charts.sh" "$charts"
fi
exit "$rc"
