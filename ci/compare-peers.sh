#!/usr/bin/env bash
# Compares socklab's reference peers with the reference tools, on loopback, in one run:
#   bulk TCP throughput:  iperf3             vs  socklab bulk, 64 KiB u32be frames, same duration
#   TCP ping-pong, 64 B:  sockperf (reports half the round trip, doubled here)
#                                            vs  socklab ping-pong, u32be, TCP_NODELAY
#   1 GiB, 64 KiB reads:  iperf3 -n 1G -l 64K vs  socklab recv-buffer, bytes=1 GiB, read_size=65536
#                         (every byte verified by socklab, none by iperf3)
# Runs alternate A B A B over ROUNDS rounds; prints each run, the medians and the ratios.
# Targets: socklab bulk >= 0.9x iperf3; socklab p50 round trip <= 1.1x sockperf's;
#          socklab recv-buffer >= 0.9x iperf3 on the same 1 GiB transfer.
# Usage: bash ci/compare-peers.sh      (ROUNDS=3 DURATION=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}

need=()
command -v iperf3 >/dev/null || need+=(iperf3)
command -v sockperf >/dev/null || need+=(sockperf)
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "compare-peers.sh: ${need[*]} missing; install them (apt-get install ${need[*]}) or run as root" >&2
    exit 2
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --quiet
socklab=${CARGO_TARGET_DIR:-target}/release/socklab
work=$(mktemp -d)
servers=()
cleanup() {
  # End only the servers this script started, by PID.
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port, chosen by the OS (the tools need a number up front).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

iperf_port=$(free_port)
iperf3 --server --bind 127.0.0.1 --port "$iperf_port" >"$work/iperf3-server.log" 2>&1 &
servers+=($!)
sockperf_port=$(free_port)
sockperf server --tcp -i 127.0.0.1 -p "$sockperf_port" >"$work/sockperf-server.log" 2>&1 &
servers+=($!)
sleep 1

iperf3_gbit() {
  iperf3 --client 127.0.0.1 --port "$iperf_port" --time "$DURATION" --json \
    | jq '.end.sum_received.bits_per_second / 1e9'
}

socklab_bulk_gbit() {
  "$socklab" run framing-throughput --set mode=bulk --set framing=u32be --set message_size=65536 \
    --set duration_ms=$((DURATION * 1000)) --out "$work/bulk" >/dev/null 2>&1
  jq '.cases[0].metrics[] | select(.name == "throughput_mib_s") | .value * 1048576 * 8 / 1e9' "$work/bulk/report.json"
}

iperf3_1g_gbit() {
  iperf3 --client 127.0.0.1 --port "$iperf_port" --bytes 1G --length 64K --json \
    | jq '.end.sum_received.bits_per_second / 1e9'
}

socklab_recv_gbit() {
  "$socklab" run recv-buffer --set bytes=1073741824 --set read_size=65536 --out "$work/recv" >/dev/null 2>&1
  jq '.cases[0].metrics[] | select(.name == "throughput") | .value * 8 / 1e9' "$work/recv/report.json"
}

sockperf_rtt_us() {
  # sockperf prints the one-way latency (half the round trip); double it.
  sockperf ping-pong --tcp -i 127.0.0.1 -p "$sockperf_port" -m 64 -t "$DURATION" 2>&1 \
    | awk '/percentile 50.000/ { print $NF * 2 }'
}

socklab_rtt_us() {
  "$socklab" run framing-throughput --set mode=ping-pong --set framing=u32be --set message_size=64 \
    --set nodelay=true --set duration_ms=$((DURATION * 1000)) --out "$work/pingpong" >/dev/null 2>&1
  jq '.cases[0].metrics[] | select(.name == "rtt_p50") | .value' "$work/pingpong/report.json"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/iperf3"; : >"$work/socklab-bulk"; : >"$work/sockperf"; : >"$work/socklab-rtt"
: >"$work/iperf3-1g"; : >"$work/socklab-recv"
for round in $(seq 1 "$ROUNDS"); do
  a=$(iperf3_gbit); b=$(socklab_bulk_gbit)
  c=$(sockperf_rtt_us); d=$(socklab_rtt_us)
  e=$(iperf3_1g_gbit); f=$(socklab_recv_gbit)
  printf 'round %d: bulk  iperf3 %.2f Gbit/s  socklab %.2f Gbit/s | p50 RTT  sockperf %.2f us  socklab %.2f us | 1 GiB  iperf3 %.2f Gbit/s  socklab recv-buffer %.2f Gbit/s\n' \
    "$round" "$a" "$b" "$c" "$d" "$e" "$f"
  echo "$a" >>"$work/iperf3"; echo "$b" >>"$work/socklab-bulk"
  echo "$c" >>"$work/sockperf"; echo "$d" >>"$work/socklab-rtt"
  echo "$e" >>"$work/iperf3-1g"; echo "$f" >>"$work/socklab-recv"
done

iperf=$(median <"$work/iperf3"); bulk=$(median <"$work/socklab-bulk")
sockperf=$(median <"$work/sockperf"); rtt=$(median <"$work/socklab-rtt")
iperf1g=$(median <"$work/iperf3-1g"); recv=$(median <"$work/socklab-recv")
echo
echo "medians over $ROUNDS rounds (${DURATION} s runs; 1 GiB transfers):"
awk -v i="$iperf" -v b="$bulk" -v s="$sockperf" -v r="$rtt" -v g="$iperf1g" -v v="$recv" 'BEGIN {
  printf "  bulk TCP throughput   iperf3 %.2f Gbit/s   socklab %.2f Gbit/s   ratio %.2fx (target >= 0.90x)\n", i, b, b / i
  printf "  ping-pong p50 RTT     sockperf %.2f us     socklab %.2f us       ratio %.2fx (target <= 1.10x)\n", s, r, r / s
  printf "  1 GiB, 64 KiB reads   iperf3 %.2f Gbit/s   socklab %.2f Gbit/s   ratio %.2fx (target >= 0.90x)\n", g, v, v / g
}'
