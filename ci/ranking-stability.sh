#!/usr/bin/env bash
# Is the framing-throughput ranking of strategies stable from run to run?
#
#   bash ci/ranking-stability.sh [RUNS] [DURATION_MS] [MODE]     (defaults: 3 100 pipelined)
#
# Runs the scenario's built-in sweep (every strategy at every message size) RUNS times in
# a row with the release binary, then, per message size, prints each run's order of
# strategies by throughput and counts discordant pairs: two strategies that one run puts
# in one order and another run in the other, although both runs' 95% intervals
# (throughput_ci95) separate them. A duration is stable enough for the default suite when
# no separated pair is discordant; pairs whose intervals overlap are ties, not rankings.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
duration=${2:-100}
mode=${3:-pipelined}
for value in "$runs" "$duration"; do
  case $value in '' | *[!0-9]*) echo "ci/ranking-stability.sh: RUNS and DURATION_MS must be whole numbers" >&2; exit 2 ;; esac
done

cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for run in $(seq 1 "$runs"); do
  ./target/release/socklab run framing-throughput --sweep --set "duration_ms=$duration" --set "mode=$mode" \
    --seed "$run" --out "$out/run$run" >/dev/null 2>&1 || {
    echo "ci/ranking-stability.sh: run $run failed; see socklab run framing-throughput" >&2
    exit 1
  }
done

python3 - "$out" "$runs" "$duration" "$mode" <<'EOF'
import itertools, json, sys

out, runs, duration, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
# size -> run -> strategy -> (throughput, ci95 %)
table = {}
for run in range(1, runs + 1):
    report = json.load(open(f"{out}/run{run}/report.json"))
    for case in report["cases"]:
        m = {x["name"]: x["value"] for x in case["metrics"]}
        size, strategy = case["params"]["message_size"], case["params"]["framing"]
        table.setdefault(size, {}).setdefault(run, {})[strategy] = (m["throughput_mib_s"], m.get("throughput_ci95", 0.0))

def separated(a, b):
    (ta, ca), (tb, cb) = a, b
    return abs(ta - tb) > ta * ca / 100 + tb * cb / 100

print(f"framing-throughput, mode {mode}, {duration} ms per case, {runs} runs")
total_discordant = total_pairs = 0
for size in sorted(table):
    per_run = table[size]
    print(f"\nmessage_size {size} B")
    for run in sorted(per_run):
        order = sorted(per_run[run], key=lambda s: -per_run[run][s][0])
        print(f"  run {run}: " + " > ".join(f"{s} {per_run[run][s][0]:.0f}±{per_run[run][s][1]:.0f}%" for s in order))
    strategies = sorted(set.intersection(*(set(r) for r in per_run.values())))
    discordant = pairs = 0
    for a, b in itertools.combinations(strategies, 2):
        signs = set()
        for run in per_run.values():
            if separated(run[a], run[b]):
                signs.add(run[a][0] > run[b][0])
        if signs:
            pairs += 1
            discordant += len(signs) > 1
    print(f"  separated pairs: {pairs}, discordant across runs: {discordant}")
    total_discordant += discordant
    total_pairs += pairs
print(f"\nall sizes: {total_pairs} separated pairs, {total_discordant} discordant")
EOF
