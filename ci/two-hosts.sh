#!/usr/bin/env bash
# Two hosts on one machine: network namespaces A and B joined by a veth pair (MTU 1280,
# tbf 50mbit on both ends), socklab in A, its agent in B started through
# `ip netns exec B socklab agent --stdio`. Runs tcp-coalescing, framing-throughput and
# recv-buffer across them and checks:
#   - the report names both sides (this host, and the agent's with its command);
#   - the segments follow MSS 1228 (MTU 1280 less 40 bytes of headers and 12 of TCP
#     timestamps): a 4000-byte write leaves as 1228 + 1228 + 1228 + 316;
#   - throughput stays under the tbf rate.
# Everything it makes (two namespaces, the veth pair, the qdiscs) is removed on exit,
# also when a step fails or the script is interrupted.
#
# Usage: sudo bash ci/two-hosts.sh
#   SOCKLAB=path/to/socklab   use this binary (default: cargo build --release, then
#                             $CARGO_TARGET_DIR/release/socklab, target/ when unset)
#   OUT=dir                   keep the report there (default: a temporary folder, removed)
set -euo pipefail
cd "$(dirname "$0")/.."

MTU=1280
RATE_MBIT=50
MSS=1228

fail() { echo "two-hosts.sh: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  echo "two-hosts.sh: needs root (it makes network namespaces); run it with sudo" >&2
  exit 2
fi
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v tc >/dev/null || need+=(iproute2)
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
  echo "two-hosts.sh: installing ${need[*]}" >&2
  command -v apt-get >/dev/null || { echo "two-hosts.sh: ${need[*]} missing and no apt-get; install them" >&2; exit 2; }
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${SOCKLAB:-}" ]; then
  command -v cargo >/dev/null || { echo "two-hosts.sh: cargo not found; install Rust or set SOCKLAB" >&2; exit 2; }
  cargo build --release --quiet
  SOCKLAB="${CARGO_TARGET_DIR:-target}/release/socklab"
fi
SOCKLAB=$(realpath "$SOCKLAB")
[ -x "$SOCKLAB" ] || { echo "two-hosts.sh: $SOCKLAB is not an executable socklab" >&2; exit 2; }

# Names of this run only, so two runs (or other tools' namespaces) never collide.
A="socklab-a-$$"
B="socklab-b-$$"
work=$(mktemp -d)
out=${OUT:-$work/report}
cleanup() {
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== namespaces $A and $B, veth MTU $MTU, tbf ${RATE_MBIT}mbit"
ip netns add "$A"
ip netns add "$B"
# Made inside A with its peer end straight in B: the host never sees either end.
ip -n "$A" link add veth-a type veth peer name veth-b netns "$B"
ip -n "$A" addr add 198.18.2.1/30 dev veth-a
ip -n "$B" addr add 198.18.2.2/30 dev veth-b
for side in "$A veth-a" "$B veth-b"; do
  set -- $side
  ip -n "$1" link set lo up
  # gso_max_segs 1: the kernel builds every packet as one segment, as a NIC puts it on
  # the wire, so the capture shows MSS-sized segments rather than 64 KiB GSO packets.
  ip -n "$1" link set dev "$2" mtu "$MTU" gso_max_segs 1 up
  tc -n "$1" qdisc add dev "$2" root tbf rate "${RATE_MBIT}mbit" burst 25000 latency 50ms
done
ip -n "$A" route get 198.18.2.2 | grep -q "dev veth-a" || fail "A has no route to B over the veth"

echo "== socklab in $A, agent in $B"
status=0
ip netns exec "$A" "$SOCKLAB" run tcp-coalescing framing-throughput recv-buffer \
  --set large_message=4000 \
  --peer-cmd "ip netns exec $B $SOCKLAB agent --stdio" \
  --seed 1 --out "$out" || status=$?
[ "$status" -eq 0 ] || fail "socklab run exited $status"
report="$out/report.json"

echo "== checks"
# Both sides named.
peer_command=$(jq -r '.run.peer.command' "$report")
[[ "$peer_command" == "ip netns exec $B "* ]] || fail "the report does not name the agent's command: $peer_command"
jq -e '.run.hostname and .run.peer.hostname and .run.peer.kernel and (.run.peer.cpu_count > 0)
       and .run.peer.socklab_version == .run.socklab_version' "$report" >/dev/null \
  || fail "the report does not name both hosts: $(jq -c .run "$report")"
grep -q '^| server host |' "$out/report.md" || fail "report.md names no server host"
echo "both sides: $(jq -r '"\(.run.hostname) (kernel \(.run.kernel), \(.run.cpu_count) CPUs) -> \(.run.peer.hostname) at \(.run.peer.addr) (kernel \(.run.peer.kernel), \(.run.peer.cpu_count) CPUs), socklab \(.run.peer.socklab_version)"' "$report")"

# Segments of MSS 1228.
segments=$(jq -c '[.cases[] | select(.scenario == "tcp-coalescing") | .observations.stream.segments[].len]' "$report")
[ "$segments" = "[1228,1228,1228,316]" ] || fail "the 4000-byte write left as segments $segments, not [1228,1228,1228,316]"
mss=$(jq '[.cases[] | select(.scenario == "tcp-coalescing") | .metrics[] | select(.name == "mss") | .value][0]' "$report")
[ "$mss" = "$MSS" ] || [ "$mss" = "$MSS.0" ] || fail "TCP_MAXSEG is $mss, not $MSS"
echo "segments of the 4000-byte write: $segments (TCP_MAXSEG $mss)"

# Throughput under the rate: payload in Mbit/s of every transfer, none above 50.
rates=$(jq -r '.cases[] | select(.status == "passed")
  | (.metrics | map({(.name): .value}) | add) as $m
  | select($m.throughput_mib_s != null)
  | "\(.id) \($m.throughput_mib_s * 8.388608 * 1000 | round / 1000)"' "$report")
[ -n "$rates" ] || fail "no throughput in the report"
over=$(awk -v rate="$RATE_MBIT" '$2 > rate { print }' <<<"$rates")
[ -z "$over" ] || fail "faster than the ${RATE_MBIT}mbit tbf rate: $over"
bulk=$(awk '/recv-buffer/ { print $2 }' <<<"$rates")
echo "recv-buffer: $bulk Mbit/s of payload through the ${RATE_MBIT}mbit link"
awk -v b="$bulk" -v rate="$RATE_MBIT" 'BEGIN { exit !(b > rate * 0.8) }' \
  || fail "recv-buffer reached only $bulk Mbit/s: something other than the link held it back"
echo "every transfer under ${RATE_MBIT} Mbit/s ($(wc -l <<<"$rates") cases; fastest $(sort -k2 -n <<<"$rates" | tail -1))"
[ "$(jq '[.cases[] | select(.status != "passed")] | length' "$report")" = 0 ] || fail "some case did not pass"
echo "two-hosts.sh: all checks passed"
