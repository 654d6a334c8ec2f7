#!/usr/bin/env bash
# Compares socklab's reference peers with the reference tools, on loopback, in one run:
#   bulk TCP throughput:  iperf3             vs  socklab bulk, 64 KiB u32be frames, same duration
#   TCP ping-pong, 64 B:  sockperf (reports half the round trip, doubled here)
#                                            vs  socklab ping-pong, u32be, TCP_NODELAY (two processes:
#                                                `socklab serve`, tokio and threaded)
#   UDP ping-pong, 64 B:  sockperf ping-pong over UDP (half the round trip, doubled here)
#                                            vs  socklab ping-pong over UDP, u32be (two processes:
#                                                `socklab serve --transport udp`, tokio and threaded)
#   1 GiB, 64 KiB reads:  iperf3 -n 1G -l 64K vs  socklab recv-buffer, bytes=1 GiB, read_size=65536
#                         (every byte verified by socklab, none by iperf3)
# Beside the ping-pong rows runs their floor: benches/examples/ping_pong_floor.rs, the
# simplest blocking echo server and client (64 B, no framing, no checks, no socket
# timeouts). Nothing that measures a round trip can measure a shorter one, so how far
# the floor moves against sockperf from round to round is the noise of these ratios.
# socklab's client and server share one process in the first rows (the in-process
# arrangement `socklab run` uses by default). The "two processes" rows put the server in
# `socklab serve` and the client in `socklab run framing-throughput --target ADDR`, as
# iperf3 and sockperf always are: that is the like-for-like comparison.
# Runs alternate A B A B over ROUNDS rounds; prints each run, the medians and the ratios.
# Targets: socklab bulk >= 0.9x iperf3 (two processes: >= 1.0x); socklab p50 round trip
#          <= 1.1x sockperf's (two processes: <= 1.0x); UDP p50 round trip <= 1.0x sockperf's
#          over UDP; recv-buffer >= 0.9x iperf3.
# Usage: bash ci/compare-peers.sh      (ROUNDS=5 DURATION=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
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
cargo build --release --quiet -p socklab-benches --example ping_pong_floor
socklab=${CARGO_TARGET_DIR:-target}/release/socklab
floor=${CARGO_TARGET_DIR:-target}/release/examples/ping_pong_floor
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

free_udp_port() {
  python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

iperf_port=$(free_port)
iperf3 --server --bind 127.0.0.1 --port "$iperf_port" >"$work/iperf3-server.log" 2>&1 &
servers+=($!)
sockperf_port=$(free_port)
sockperf server --tcp -i 127.0.0.1 -p "$sockperf_port" >"$work/sockperf-server.log" 2>&1 &
servers+=($!)
sockperf_udp_port=$(free_udp_port)
sockperf server -i 127.0.0.1 -p "$sockperf_udp_port" >"$work/sockperf-udp-server.log" 2>&1 &
servers+=($!)
# socklab's reference servers in processes of their own: an echo for ping-pong, a sink
# (which verifies every message) for bulk.
echo_port=$(free_port)
"$socklab" serve --listen "127.0.0.1:$echo_port" --framing u32be --behaviour echo >"$work/echo.log" 2>&1 &
servers+=($!)
echo_threaded_port=$(free_port)
"$socklab" serve --listen "127.0.0.1:$echo_threaded_port" --flavour threaded --framing u32be --behaviour echo \
  >"$work/echo-threaded.log" 2>&1 &
servers+=($!)
sink_port=$(free_port)
"$socklab" serve --listen "127.0.0.1:$sink_port" --framing u32be --behaviour sink >"$work/sink.log" 2>&1 &
servers+=($!)
udp_echo_port=$(free_udp_port)
"$socklab" serve --listen "127.0.0.1:$udp_echo_port" --transport udp --framing u32be --behaviour echo \
  >"$work/udp-echo.log" 2>&1 &
servers+=($!)
udp_echo_threaded_port=$(free_udp_port)
"$socklab" serve --listen "127.0.0.1:$udp_echo_threaded_port" --transport udp --flavour threaded \
  --framing u32be --behaviour echo >"$work/udp-echo-threaded.log" 2>&1 &
servers+=($!)
# The floor's servers pick their own ports and print them.
"$floor" serve tcp >"$work/floor-tcp.port" 2>"$work/floor-tcp.log" &
servers+=($!)
"$floor" serve udp >"$work/floor-udp.port" 2>"$work/floor-udp.log" &
servers+=($!)
sleep 1
floor_tcp_port=$(cat "$work/floor-tcp.port")
floor_udp_port=$(cat "$work/floor-udp.port")

iperf3_gbit() {
  iperf3 --client 127.0.0.1 --port "$iperf_port" --time "$DURATION" --json \
    | jq '.end.sum_received.bits_per_second / 1e9'
}

socklab_bulk_gbit() {
  "$socklab" run framing-throughput --set mode=bulk --set framing=u32be --set message_size=65536 \
    --set duration_ms=$((DURATION * 1000)) --out "$work/bulk" >/dev/null 2>&1
  jq '.cases[0].metrics[] | select(.name == "throughput_mib_s") | .value * 1048576 * 8 / 1e9' "$work/bulk/report.json"
}

socklab_bulk_2p_gbit() {
  "$socklab" run framing-throughput --set mode=bulk --set framing=u32be --set message_size=65536 \
    --set duration_ms=$((DURATION * 1000)) --target "127.0.0.1:$sink_port" --out "$work/bulk2p" >/dev/null 2>&1
  jq '.cases[0].metrics[] | select(.name == "throughput_mib_s") | .value * 1048576 * 8 / 1e9' "$work/bulk2p/report.json"
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

# socklab's TCP ping-pong client against `socklab serve` (TCP echo) at port $1.
socklab_rtt_2p_us() {
  "$socklab" run framing-throughput --set mode=ping-pong --set framing=u32be --set message_size=64 \
    --set nodelay=true --set duration_ms=$((DURATION * 1000)) --target "127.0.0.1:$1" \
    --out "$work/pingpong2p$1" >/dev/null 2>&1
  jq '.cases[0].metrics[] | select(.name == "rtt_p50") | .value' "$work/pingpong2p$1/report.json"
}

sockperf_udp_rtt_us() {
  # UDP is sockperf's default transport; it prints half the round trip, doubled here.
  sockperf ping-pong -i 127.0.0.1 -p "$sockperf_udp_port" -m 64 -t "$DURATION" 2>&1 \
    | awk '/percentile 50.000/ { print $NF * 2 }'
}

# socklab's UDP ping-pong client against `socklab serve --transport udp` at port $1.
socklab_udp_rtt_us() {
  "$socklab" run framing-throughput --set transport=udp --set mode=ping-pong --set framing=u32be \
    --set message_size=64 --set duration_ms=$((DURATION * 1000)) --target "127.0.0.1:$1" \
    --out "$work/udp$1" >/dev/null 2>&1
  jq '.cases[0].metrics[] | select(.name == "rtt_p50") | .value' "$work/udp$1/report.json"
}

# The floor's p50 round trip over $1 (tcp or udp), 64 B messages.
floor_rtt_us() {
  local port=$floor_tcp_port
  [ "$1" = udp ] && port=$floor_udp_port
  "$floor" ping "$1" "$port" "$DURATION" 64 | sed -n 's/^p50_us=\([0-9.]*\) .*/\1/p'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/iperf3"; : >"$work/socklab-bulk"; : >"$work/sockperf"; : >"$work/socklab-rtt"
: >"$work/iperf3-1g"; : >"$work/socklab-recv"; : >"$work/socklab-bulk-2p"; : >"$work/socklab-rtt-2p"
: >"$work/sockperf-udp"; : >"$work/socklab-udp"; : >"$work/socklab-udp-threaded"; : >"$work/socklab-rtt-2p-threaded"
: >"$work/floor-tcp"; : >"$work/floor-udp"
for round in $(seq 1 "$ROUNDS"); do
  a=$(iperf3_gbit); b=$(socklab_bulk_gbit); b2=$(socklab_bulk_2p_gbit)
  c=$(sockperf_rtt_us); ft=$(floor_rtt_us tcp); d=$(socklab_rtt_us); d2=$(socklab_rtt_2p_us "$echo_port")
  d3=$(socklab_rtt_2p_us "$echo_threaded_port")
  u=$(sockperf_udp_rtt_us); fu=$(floor_rtt_us udp); w=$(socklab_udp_rtt_us "$udp_echo_port")
  w2=$(socklab_udp_rtt_us "$udp_echo_threaded_port")
  e=$(iperf3_1g_gbit); f=$(socklab_recv_gbit)
  # A run that gave no figure (a tool failed, a report lacks the metric) stops the script.
  for v in "$a" "$b" "$b2" "$c" "$ft" "$d" "$d2" "$d3" "$u" "$fu" "$w" "$w2" "$e" "$f"; do
    [[ $v =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] && awk -v v="$v" 'BEGIN { exit !(v > 0) }' || {
      echo "compare-peers.sh: round $round: a run gave no positive figure ('$v'); the figures were: $a $b $b2 $c $ft $d $d2 $d3 $u $fu $w $w2 $e $f" >&2
      exit 1
    }
  done
  printf 'round %d: bulk  iperf3 %.2f  socklab %.2f (two processes %.2f) Gbit/s | p50 RTT  sockperf %.2f  floor %.2f  socklab %.2f (two processes %.2f, threaded server %.2f) us | UDP p50 RTT  sockperf %.2f  floor %.2f  socklab %.2f (threaded server %.2f) us | 1 GiB  iperf3 %.2f  recv-buffer %.2f Gbit/s\n' \
    "$round" "$a" "$b" "$b2" "$c" "$ft" "$d" "$d2" "$d3" "$u" "$fu" "$w" "$w2" "$e" "$f"
  echo "$ft" >>"$work/floor-tcp"; echo "$fu" >>"$work/floor-udp"
  echo "$u" >>"$work/sockperf-udp"; echo "$w" >>"$work/socklab-udp"; echo "$w2" >>"$work/socklab-udp-threaded"
  echo "$a" >>"$work/iperf3"; echo "$b" >>"$work/socklab-bulk"; echo "$b2" >>"$work/socklab-bulk-2p"
  echo "$c" >>"$work/sockperf"; echo "$d" >>"$work/socklab-rtt"; echo "$d2" >>"$work/socklab-rtt-2p"
  echo "$d3" >>"$work/socklab-rtt-2p-threaded"
  echo "$e" >>"$work/iperf3-1g"; echo "$f" >>"$work/socklab-recv"
  # Round trips on this kind of machine jump between two regimes (busy CPUs: 11-17 us;
  # idle ones that must be woken: 60-70 us) from one 5 s run to the next, so the latency
  # ratios are also taken within each round, where both tools ran within seconds.
  awk -v s="$c" -v r="$d" -v r2="$d2" -v r3="$d3" -v su="$u" -v u="$w" -v ut="$w2" -v ft="$ft" -v fu="$fu" \
    'BEGIN { print r / s, r2 / s, r3 / s, u / su, ut / su, ft / s, fu / su, r3 / ft, ut / fu }' >>"$work/round-ratios"
done

iperf=$(median <"$work/iperf3"); bulk=$(median <"$work/socklab-bulk")
sockperf=$(median <"$work/sockperf"); rtt=$(median <"$work/socklab-rtt")
iperf1g=$(median <"$work/iperf3-1g"); recv=$(median <"$work/socklab-recv")
bulk2=$(median <"$work/socklab-bulk-2p"); rtt2=$(median <"$work/socklab-rtt-2p")
rtt3=$(median <"$work/socklab-rtt-2p-threaded")
sockperf_udp=$(median <"$work/sockperf-udp"); udp=$(median <"$work/socklab-udp")
udp_threaded=$(median <"$work/socklab-udp-threaded")
floor_tcp=$(median <"$work/floor-tcp"); floor_udp=$(median <"$work/floor-udp")
echo
echo "medians over $ROUNDS rounds (${DURATION} s runs; 1 GiB transfers):"
awk -v i="$iperf" -v b="$bulk" -v b2="$bulk2" -v s="$sockperf" -v r="$rtt" -v r2="$rtt2" -v r3="$rtt3" -v g="$iperf1g" -v v="$recv" \
  -v su="$sockperf_udp" -v u="$udp" -v ut="$udp_threaded" -v ft="$floor_tcp" -v fu="$floor_udp" 'BEGIN {
  printf "  bulk TCP throughput, one process     iperf3 %.2f Gbit/s   socklab %.2f Gbit/s   ratio %.2fx (target >= 0.90x)\n", i, b, b / i
  printf "  bulk TCP throughput, two processes   iperf3 %.2f Gbit/s   socklab %.2f Gbit/s   ratio %.2fx (target >= 1.00x)\n", i, b2, b2 / i
  printf "  ping-pong p50 RTT, floor             sockperf %.2f us     floor %.2f us         ratio %.2fx (the noise of these ratios)\n", s, ft, ft / s
  printf "  ping-pong p50 RTT, one process       sockperf %.2f us     socklab %.2f us       ratio %.2fx (target <= 1.10x)\n", s, r, r / s
  printf "  ping-pong p50 RTT, two processes     sockperf %.2f us     socklab %.2f us       ratio %.2fx (target <= 1.00x; tokio server)\n", s, r2, r2 / s
  printf "  ping-pong p50 RTT, two processes     sockperf %.2f us     socklab %.2f us       ratio %.2fx (target <= 1.00x; threaded server)\n", s, r3, r3 / s
  printf "  UDP ping-pong p50 RTT, floor        sockperf %.2f us     floor %.2f us         ratio %.2fx (the noise of these ratios)\n", su, fu, fu / su
  printf "  UDP ping-pong p50 RTT, tokio srv    sockperf %.2f us     socklab %.2f us       ratio %.2fx (target <= 1.00x; two processes)\n", su, u, u / su
  printf "  UDP ping-pong p50 RTT, threaded srv sockperf %.2f us     socklab %.2f us       ratio %.2fx (target <= 1.00x; two processes)\n", su, ut, ut / su
  printf "  1 GiB, 64 KiB reads                  iperf3 %.2f Gbit/s   socklab %.2f Gbit/s   ratio %.2fx (target >= 0.90x)\n", g, v, v / g
}'
col() { awk -v c="$1" '{ print $c }' "$work/round-ratios" | median; }
echo "latency ratios taken within each round (socklab / sockperf), median over $ROUNDS rounds:"
printf '  ping-pong p50 RTT: one process %.2fx, two processes %.2fx (tokio server), %.2fx (threaded server); floor %.2fx\n' \
  "$(col 1)" "$(col 2)" "$(col 3)" "$(col 6)"
printf '  UDP ping-pong p50 RTT, two processes: %.2fx (tokio server), %.2fx (threaded server); floor %.2fx\n' \
  "$(col 4)" "$(col 5)" "$(col 7)"
spread() { awk -v c="$1" '{ print $c }' "$work/round-ratios" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2fx", lo, hi }'; }
printf 'socklab (threaded server) / the floor, within rounds: TCP %.3fx, UDP %.3fx\n' "$(col 8)" "$(col 9)"
echo "the floor against sockperf, round by round (the same system calls; how far apart is noise):"
echo "  TCP $(spread 6), UDP $(spread 7)"
