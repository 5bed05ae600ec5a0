#!/usr/bin/env bash
# Charts of a bench.sh run, drawn by gnuplot from the run's own figures (runs.tsv):
#   OUT/tps.svg  each target's TPS as a share of direct PostgreSQL's, per mode and client count;
#   OUT/cpu.svg  the CPU time per transaction of pgwarm, PgBouncer and HAProxy, in µs.
# Bars are medians over the rounds; a cell with a failed run has no bar. PgBouncer's -M prepared
# cells use its -M extended runs when bench.sh skipped prepared (it cannot run it), as its report
# does.
#
#   scripts/bench-charts.sh [RUNS_TSV [OUT_DIR]]   (default target/bench/runs.tsv, its folder)
#
# Installs gnuplot-nox (apt) when gnuplot is missing; needs python3 for the medians.
set -euo pipefail
SCRIPT_NAME=bench-charts.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=scripts/layer-common.sh
source "$(dirname "$0")/layer-common.sh"

TSV=${1:-target/bench/runs.tsv}
OUT=${2:-$(dirname "$TSV")}
[ -f "$TSV" ] || die "no $TSV: run scripts/bench.sh first, or name a runs.tsv"
have python3 || die "python3 not found: install the Debian package python3"
apt_install_commands gnuplot=gnuplot-nox
mkdir -p "$OUT"
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT

# One row per mode and client count: the label, then the medians of each target.
python3 - "$TSV" "$DATA" <<'PY'
import csv, statistics, sys
tsv, out = sys.argv[1], sys.argv[2]
runs = {}
failed = set()
modes, clients = [], []
with open(tsv) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        key = (r["mode"], int(r["clients"]), r["target"])
        if r["mode"] not in modes:
            modes.append(r["mode"])
        if int(r["clients"]) not in clients:
            clients.append(int(r["clients"]))
        if r["tps"] == "FAILED":
            failed.add(key)
            continue
        cpu = r["pooler_cpu_us_per_txn"]
        runs.setdefault(key, []).append((float(r["tps"]), float(cpu) if cpu else None))

def median(mode, c, target, i):
    key = (mode, c, target)
    if target == "pgbouncer" and mode == "prepared" and key not in runs and key not in failed:
        key = ("extended", c, target)
    if key in failed or key not in runs:
        return None
    values = [v[i] for v in runs[key] if v[i] is not None]
    return statistics.median(values) if values else None

def cell(v):
    return "NaN" if v is None else f"{v:.4f}"

with open(f"{out}/tps.dat", "w") as tps, open(f"{out}/cpu.dat", "w") as cpu:
    for mode in modes:
        for c in sorted(clients):
            label = f'"{mode} c={c}"'
            direct = median(mode, c, "direct", 0)
            shares = [median(mode, c, t, 0) for t in ("pgwarm", "pgbouncer", "haproxy")]
            shares = [None if s is None or not direct else s / direct for s in shares]
            tps.write(" ".join([label] + [cell(s) for s in shares]) + "\n")
            costs = [median(mode, c, t, 1) for t in ("pgwarm", "pgbouncer", "haproxy")]
            cpu.write(" ".join([label] + [cell(s) for s in costs]) + "\n")
PY

plot() {
    local name=$1 ylabel=$2 title=$3
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
set datafile missing "NaN"
plot "$DATA/$name.dat" using 2:xtic(1) title "pgwarm" lc rgb "#2b8cbe", \
     "" using 3 title "PgBouncer" lc rgb "#fdae6b", \
     "" using 4 title "HAProxy (TCP relay)" lc rgb "#a1a1a1"
EOF
    say "wrote $OUT/$name.svg"
}
plot tps "TPS / direct PostgreSQL" "pgbench -S throughput, as a share of a direct connection (medians)"
plot cpu "CPU µs per transaction" "CPU time of the relay process per transaction (medians; lower is better)"
