#!/usr/bin/env bash
# Cross-checks socklab's figures against independent instruments on the same traffic, in
# one run, and prints the fidelity table. Everything runs in a network namespace of its
# own, so its loopback carries this script's traffic and nothing else, and the kernel's
# counters (/proc/net/dev, /proc/net/snmp) count it alone:
#   segments      tcp-coalescing `segments` (first transmissions)  vs  tcpdump on the same lo
#   packet times  each packet of every case's capture.pcap         vs  the same packet in tcpdump's
#   UDP drops     udp-rcvbuf-overflow `drops_seq_gaps`             vs  Udp: RcvbufErrors delta
#   bytes on lo   recv-buffer bytes delivered (payload)            vs  lo's byte counter delta
# recv-buffer vs iperf3 and ping-pong vs sockperf are in ci/compare-peers.sh.
# Needs root (a namespace, tcpdump). Usage: bash ci/fidelity.sh   (RECV_BYTES=1 GiB by default)
set -euo pipefail
cd "$(dirname "$0")/.."

RECV_BYTES=${RECV_BYTES:-1073741824}
[ "$(id -u)" -eq 0 ] || { echo "fidelity.sh: needs root (a network namespace and tcpdump)" >&2; exit 2; }
command -v tcpdump >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null; }
command -v jq >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }

cargo build --release --quiet
socklab=$(realpath "${CARGO_TARGET_DIR:-target}/release/socklab")
ns=socklab-fidelity-$$
work=$(mktemp -d)
tcpdump_pid=
cleanup() {
  # End only the tcpdump this script started, by PID; then the namespace.
  [ -n "$tcpdump_pid" ] && kill "$tcpdump_pid" 2>/dev/null && wait "$tcpdump_pid" 2>/dev/null
  ip netns delete "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
in_ns() { ip netns exec "$ns" "$@"; }

metric() { jq -r --arg m "$2" "[.cases[$3].metrics[] | select(.name == \$m) | .value][0]" "$1/report.json"; }
lo_bytes() { in_ns awk '$1 == "lo:" { print $2 }' /proc/net/dev; }
rcvbuf_errors() { in_ns awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["RcvbufErrors"] }' /proc/net/snmp; }

# Segments and packet times: tcpdump (nanosecond stamps) beside socklab's capture, same lo.
ip netns exec "$ns" tcpdump -i lo -n -U --time-stamp-precision nano -w "$work/tcpdump.pcap" tcp >"$work/tcpdump.log" 2>&1 &
tcpdump_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$work/tcpdump.log" && break; sleep 0.1; done
grep -q "listening on" "$work/tcpdump.log" || { echo "fidelity.sh: tcpdump did not start: $(cat "$work/tcpdump.log")" >&2; exit 1; }
in_ns "$socklab" run tcp-coalescing --set nodelay=false,true --set warm=false,true \
  --out "$work/coalescing" >/dev/null
sleep 0.5
kill "$tcpdump_pid"; wait "$tcpdump_pid" 2>/dev/null || true; tcpdump_pid=
python3 ci/fidelity_pcap.py "$work/coalescing" "$work/tcpdump.pcap" >"$work/pcap.txt"

# UDP drops: the sequence gaps socklab saw against the kernel's count of the same drops.
errors_before=$(rcvbuf_errors)
in_ns "$socklab" run udp-rcvbuf-overflow --set netns=never --set rcvbuf=4096,65536 --out "$work/udp" >/dev/null
errors_after=$(rcvbuf_errors)
udp_cases=$(jq '.cases | length' "$work/udp/report.json")
udp_gaps=0; udp_private=0
for i in $(seq 0 $((udp_cases - 1))); do
  udp_gaps=$((udp_gaps + $(metric "$work/udp" drops_seq_gaps "$i")))
  udp_private=$((udp_private + $(metric "$work/udp" private_netns "$i")))
done

# Bytes on lo: every byte recv-buffer delivered, plus headers, crossed lo exactly once.
bytes_before=$(lo_bytes)
in_ns "$socklab" run recv-buffer --set bytes="$RECV_BYTES" --set read_size=65536 --out "$work/recv" >/dev/null
bytes_after=$(lo_bytes)
recv_bytes=$(metric "$work/recv" received 0)
recv_bytes=${recv_bytes%.0}

echo "fidelity, one run in namespace $ns on $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| quantity | socklab | independent instrument | agreement |"
echo "|---|---|---|---|"
cat "$work/pcap.txt"
# netns=never: the cases run in this script's namespace, so its Udp counters are theirs.
[ "$udp_private" -eq 0 ] || { echo "fidelity.sh: udp-rcvbuf-overflow ran in a namespace of its own" >&2; exit 1; }
snmp=$((errors_after - errors_before)); src="Udp: RcvbufErrors delta, /proc/net/snmp"
printf '| UDP drops, %d cases | %d (sequence gaps) | %d (%s) | %s |\n' "$udp_cases" "$udp_gaps" "$snmp" "$src" \
  "$([ "$udp_gaps" -eq "$snmp" ] && echo exact || echo "differ by $((udp_gaps - snmp))")"
lo_delta=$((bytes_after - bytes_before))
printf '| bytes on lo, recv-buffer | %d payload bytes received (and verified) | %d bytes (lo counter delta, /proc/net/dev) | headers and ACKs %d bytes (%.3f%%) |\n' \
  "$recv_bytes" "$lo_delta" "$((lo_delta - recv_bytes))" "$(awk -v d="$lo_delta" -v b="$recv_bytes" 'BEGIN { print (d - b) * 100 / b }')"
# Headers and ACKs of 64 KiB segments are well under 1% of the payload.
[ "$lo_delta" -ge "$recv_bytes" ] && [ "$lo_delta" -le $((recv_bytes + recv_bytes / 100)) ] || {
  echo "fidelity.sh: lo carried $lo_delta bytes; recv-buffer says it delivered $recv_bytes (expected that plus under 1% of headers)" >&2
  exit 1
}
[ "$udp_gaps" -eq "$snmp" ] && [ "$udp_gaps" -gt 0 ] || { echo "fidelity.sh: UDP drops: socklab $udp_gaps, kernel $snmp" >&2; exit 1; }
