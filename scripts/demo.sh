#!/usr/bin/env bash
# The demo: the problem pgwarm solves and what it does about it, on this machine, with a printed
# report. A real PostgreSQL, lambda-simulator playing Lambda, pgwarm as the extension and the
# example handler as the function; then a fleet of 60 environments against a database with 20
# connection slots, directly, through pgwarm and through pgwarm + PgBouncer.
#
# On a fresh Debian/Ubuntu machine with Rust it first installs what is missing, one line per
# install (apt: postgresql, postgresql-client, pgbouncer, gnuplot-nox, python3-pip; pip:
# moto[server]), then builds the workspace in release and runs the `demo` binary
# (tests/src/bin/demo.rs, on the tests' harness), whose doc comment lists its steps:
#   - pgwarm's start-up as an extension, timed;
#   - the handler through pgwarm, frozen between invocations, with a thaw check after the
#     database killed every backend, and SHUTDOWN;
#   - the same handler straight to PostgreSQL;
#   - the fleet, three ways: a table, and target/demo/fleet-connections.svg, the database's
#     connections over time.
# It takes about a minute after the build. Everything it started is stopped and removed on
# exit, on Ctrl-C too.
#
#   scripts/demo.sh           the demo and its report
#   scripts/demo.sh --keep    then leave one environment running, with the psql lines to reach
#                             it (Enter invokes the function, Ctrl-C ends it)
#
# Environment (see tests/src/bin/demo.rs): DEMO_INVOCATIONS, DEMO_DIRECT_INVOCATIONS (50 each),
# DEMO_FREEZE (on|off), DEMO_STARTUP_RUNS (10), DEMO_FLEET_ENVIRONMENTS (60), DEMO_FLEET_SLOTS
# (20), DEMO_FLEET_BURST (30), DEMO_FLEET_BURSTS (12); PGWARM_* reach pgwarm, except the ones the
# demo fixes (LISTEN, SECRET_ID, SSLMODE, POOL_SIZE, LOG_LEVEL).
#
# Exits non-zero if any invocation or check failed; the report marks those lines FAILED.
set -euo pipefail
SCRIPT_NAME=demo.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=scripts/layer-common.sh
source "$(dirname "$0")/layer-common.sh"
cd "$(dirname "$0")/.."

for arg in "$@"; do
    case "$arg" in
        --keep) ;;
        *) die "unknown argument '$arg' (scripts/demo.sh [--keep])" ;;
    esac
done

apt_wants=(postgresql postgresql-client pgbouncer)
have moto_server || { have python3 && python3 -m pip --version >/dev/null 2>&1; } || apt_wants+=(python3-pip)
install_missing "${apt_wants[@]}"
pip_install_missing moto_server 'moto[server]'
apt_install_commands gnuplot=gnuplot-nox
cargo_build_release

# The demo's temporary files (the cluster, logs) live in a work folder removed on exit, once
# the cluster's reaper has stopped PostgreSQL (common_cleanup waits for it).
make_workdir pgwarm-demo
trap common_cleanup EXIT

say "running the demo (about a minute)"
TMPDIR="$WORK" PGWARM_BIN="$PGWARM_BIN" HANDLER_BIN="$RELEASE_DIR/handler-example" \
    run_driver "$RELEASE_DIR/demo" --out "$TARGET_DIR/demo" "$@"
exit "$DRIVER_RC"
