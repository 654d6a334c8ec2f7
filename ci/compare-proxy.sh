#!/usr/bin/env bash
# What the impairment relay costs and how accurate its shaping is, in one run:
#   1. cargo bench --bench proxy: bulk throughput direct vs through the relay (splice and
#      read/write), 64-byte ping-pong p50 direct vs relayed, rate=1MiB/s and 20MiB/s over
#      2 s, delay=5ms on the round trip; medians with the spread over ROUNDS rounds.
#   2. A cross-check with instruments that share no code with socklab: a Python sender
#      and receiver on either side of `socklab proxy --rate 1MiB/s`. The receiver times
#      the 2 s after its first byte with its own clock; the bytes it received in all must
#      equal the bytes the proxy says it wrote.
# Targets: relay bulk >= 0.8x direct; added p50 <= 30 us; rate within 5%; delay 5 +- 1 ms.
# Run on a quiet machine (the load average is printed before and after).
# Usage: bash ci/compare-proxy.sh        (ROUNDS=5; QUICK=1 for a short pass)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --quiet -p socklab-benches --bench proxy

cargo build --release --quiet
socklab=${CARGO_TARGET_DIR:-target}/release/socklab
work=$(mktemp -d)
pids=()
cleanup() {
  # End only the processes this script started, by PID.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The receiver: binds port 0, prints it, counts bytes in the 2 s after the first byte and
# in all, until the sender closes (at most 20 s).
cat >"$work/receiver.py" <<'EOF'
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
conn.settimeout(20)
first = None
window = total = 0
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    data = conn.recv(65536)
    if not data:
        break
    now = time.monotonic()
    if first is None:
        first = now
    if now - first <= 2.0:
        window += len(data)
    total += len(data)
print(f"{window / 2.0:.0f} {total}", flush=True)
EOF

# The sender: writes for 3 s, then closes.
cat >"$work/sender.py" <<'EOF'
import socket, sys, time
conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
chunk = b"x" * 65536
end = time.monotonic() + 3.0
conn.settimeout(0.05)
while time.monotonic() < end:
    try:
        conn.send(chunk)
    except socket.timeout:
        pass
conn.close()
EOF

coproc RECEIVER { python3 "$work/receiver.py"; }
pids+=("$RECEIVER_PID")
read -r port <&"${RECEIVER[0]}"
"$socklab" proxy --upstream "127.0.0.1:$port" --rate 1MiB/s --seed 1 >"$work/proxy.out" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$work/proxy.out" && break; sleep 0.05; done
proxy_port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$work/proxy.out")
python3 "$work/sender.py" "$proxy_port"
read -r rate total <&"${RECEIVER[0]}"
sleep 0.3  # the proxy prints the connection when it has closed
kill -INT "${pids[1]}"
wait "${pids[1]}" || true
proxy_out=$(sed -n 's/^connection 0 .*up [0-9]* B in [0-9]* reads -> \([0-9]*\) B out.*/\1/p' "$work/proxy.out")
python3 - "$rate" "$total" "$proxy_out" <<'EOF'
import sys
rate, total, proxy_out = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3] or 0)
target = 1024 * 1024
error = (rate / target - 1) * 100
print(f"\ncross-check, Python receiver behind socklab proxy --rate 1MiB/s:")
print(f"  received in the 2 s after the first byte: {rate:.0f} B/s, {error:+.1f}% against the rate ({'met' if abs(error) <= 5 else 'NOT met'})")
print(f"  bytes received in all {total}, bytes the proxy wrote {proxy_out}: {'equal' if total == proxy_out else 'DIFFERENT'}")
EOF
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
