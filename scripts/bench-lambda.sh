#!/usr/bin/env bash
# A Lambda-shaped benchmark: a naive handler (Python with psycopg 3, Node.js with node-postgres)
# that connects, runs SELECT 1 and closes on every invocation, and pgwarm, both in one cgroup with
# the CPU share Lambda gives 128, 512 and 1,769 MB (a CFS quota per 100 ms period: cgroup v2
# cpu.max, or v1 cpu.cfs_quota_us, whichever the machine has; the report says which). The database
# is at 0 and 0.5 ms of round trip (the harness's delay relay). Per cell: the invocation's p50 and
# p99, the handler's and pgwarm's CPU per invocation; then cold starts (exec to registered with the
# Extensions API, then the first query). The benchmark is tests/src/bin/bench-lambda.rs, on the
# tests' harness; its doc and that of tests/src/drivers/lambda say what it measures and how.
#
# It must run as root (it makes a cgroup). On a fresh Debian/Ubuntu machine it first installs what
# is missing, one line per install:
#   apt: postgresql (server), nodejs and npm, python3-pip
#   pip: psycopg[binary]
#   npm: pg (node-postgres, pinned), into $TARGET_DIR/bench-lambda-node (needs node and npm)
# then builds the workspace in release and runs bench-lambda with PGWARM_BIN set to that pgwarm.
# Everything the benchmark started is stopped and removed on exit, also on Ctrl-C.
#
# Environment (the driver's doc has them all):
#   BENCH_LAMBDA_INVOCATIONS  measured invocations per cell (default 150)
#   BENCH_LAMBDA_MEMORY       memory sizes, MB (default "128 512 1769")
#   BENCH_LAMBDA_RTT_MS       round trips to the database, ms (default "0 0.5")
#   BENCH_LAMBDA_DRIVERS      python node (default both)
#   BENCH_LAMBDA_COLD_STARTS  cold starts per driver, memory, round trip (default 5)
#   BENCH_OUT_DIR             where the report, runs and logs go (default target/bench)
#   BENCH_PGWARM_BIN          a pgwarm binary to measure instead of a release build, by the debug
#                             bench-lambda binary (smoke runs; build the workspace first)
# The defaults make 48 cells of about 20 s and 40 cold starts: about 20 minutes.
#
# Output, in BENCH_OUT_DIR: lambda-report.txt (also printed), lambda-runs.tsv (every cell's
# figures), lambda-runs/ (every invocation of each cell) and lambda-logs/ (pgwarm's and
# PostgreSQL's logs). Exit status: the benchmark's (0; 1 if something failed; 2 for a bad
# setting; 128 + the signal when stopped).
set -euo pipefail
SCRIPT_NAME=bench-lambda.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."

# node-postgres, the version the figures in BENCHMARKS.md were made with.
NODE_PG_VERSION=8.23.1

is_root || die "run as root: the benchmark makes a cgroup for the CPU quota"
install_missing postgresql nodejs
python3 -c 'import psycopg' >/dev/null 2>&1 || install_missing python3-pip
pip_install_module psycopg 'psycopg[binary]'
bench_binary bench-lambda

node_dir="$TARGET_DIR/bench-lambda-node"
installed=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
    "$node_dir/node_modules/pg/package.json" 2>/dev/null || true)
if [ "$installed" != "$NODE_PG_VERSION" ]; then
    say "installing pg@$NODE_PG_VERSION (npm) into $node_dir"
    mkdir -p "$node_dir"
    npm install --silent --no-audit --no-fund --no-save --prefix "$node_dir" "pg@$NODE_PG_VERSION"
fi
NODE_PATH=$(cd "$node_dir/node_modules" && pwd)
export NODE_PATH

# The harness's temporary files live in a work folder removed on exit, on Ctrl-C too.
make_workdir pgwarm-bench-lambda
trap common_cleanup EXIT
export PGWARM_BIN
TMPDIR="$WORK" run_driver "$BENCH_BIN_DIR/bench-lambda"
exit "$DRIVER_RC"
