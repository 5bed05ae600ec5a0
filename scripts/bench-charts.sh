#!/usr/bin/env bash
# Charts of a bench.sh run, drawn by gnuplot from the chart data the benchmark wrote (charts.tsv,
# one row per mode and client count, medians over the rounds):
#   OUT/tps.svg  each target's TPS as a share of direct PostgreSQL's, per mode and client count;
#   OUT/cpu.svg  the CPU time per transaction of pgwarm, PgBouncer and HAProxy, in µs.
# A cell with a failed run is NaN in charts.tsv and has no bar. The benchmark (tests/src/bin/
# bench.rs) made the figures: PgBouncer's -M prepared cells are its -M extended runs when it
# skipped prepared, as its report says. To redraw the charts of a runs.tsv (e.g. the committed
# docs/bench/runs.tsv), write its charts.tsv first: `target/debug/bench --summarize RUNS_TSV`.
#
#   scripts/bench-charts.sh [CHARTS_TSV [OUT_DIR]]   (default target/bench/charts.tsv, its folder)
#
# Installs gnuplot-nox (apt) when gnuplot is missing.
set -euo pipefail
SCRIPT_NAME=bench-charts.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=scripts/layer-common.sh
source "$(dirname "$0")/layer-common.sh"

TSV=${1:-target/bench/charts.tsv}
OUT=${2:-$(dirname "$TSV")}
[ -f "$TSV" ] || die "no $TSV: run scripts/bench.sh first, or bench --summarize RUNS_TSV"
head -n 1 "$TSV" | grep -q '^cell	pgwarm_tps_share	' ||
    die "$TSV is not the chart data of bench (charts.tsv); for a runs.tsv, run bench --summarize on it"
apt_install_commands gnuplot=gnuplot-nox
mkdir -p "$OUT"

# plot NAME YLABEL TITLE FIRST_COLUMN: a clustered bar per relay, from three columns of charts.tsv.
plot() {
    local name=$1 ylabel=$2 title=$3 col=$4
    gnuplot <<EOF
set terminal svg size 900,420 dynamic font "sans,11" background rgb "white"
set output "$OUT/$name.svg"
set title "$title"
set ylabel "$ylabel"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set xtics rotate by -30
set key top right
set datafile separator "\t"
set datafile missing "NaN"
set key autotitle columnhead
plot "$TSV" using $col:xtic(1) title "pgwarm" lc rgb "#2b8cbe", \
     "" using $((col + 1)) title "PgBouncer" lc rgb "#fdae6b", \
     "" using $((col + 2)) title "HAProxy (TCP relay)" lc rgb "#a1a1a1"
EOF
    say "wrote $OUT/$name.svg"
}
plot tps "TPS / direct PostgreSQL" "pgbench -S throughput, as a share of a direct connection (medians)" 2
plot cpu "CPU µs per transaction" "CPU time of the relay process per transaction (medians; lower is better)" 5
