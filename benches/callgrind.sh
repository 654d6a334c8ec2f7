#!/usr/bin/env bash
# Counts instructions per MiB of payload for every framing benchmark entry and size,
# with callgrind: a number that, unlike wall-clock time, does not depend on what else the
# machine runs, so before/after comparisons hold on a loaded machine.
#
#   bash benches/callgrind.sh [decode|encode|all] [OUT.tsv]
#
# Prints one markdown table per mode (thousands of instructions per MiB of payload) and
# writes the raw numbers (mode, size, entry, instructions per MiB) to OUT.tsv (default
# target/framing-instructions.tsv). Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
modes=${1:-all}
[ "$modes" = all ] && modes="decode encode"
target=${CARGO_TARGET_DIR:-target}
out=${2:-$target/framing-instructions.tsv}
reps=${REPS:-3}
command -v valgrind >/dev/null || { echo "benches/callgrind.sh: valgrind not found" >&2; exit 2; }
cargo build --release --quiet -p socklab-benches --example framing_instructions
bin=$target/release/examples/framing_instructions
sizes="16 256 4096 65536"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

count() { # mode size entry -> "mode<TAB>size<TAB>entry<TAB>instructions per MiB"
  local file="$work/$1.$2.$(echo "$3" | tr -c 'a-zA-Z0-9\n' _)"
  local line payload
  line=$(valgrind --tool=callgrind --callgrind-out-file="$file.cg" --collect-atstart=no \
    '--toggle-collect=*measured*' "$bin" "$1" "$3" "$2" "$reps" 2>"$file.err")
  payload=${line##*payload_bytes=}
  payload=${payload%% *}
  local ir
  ir=$(sed -n 's/^==[0-9]*== Collected : //p' "$file.err")
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$((ir * 1048576 / payload / reps))"
}
export -f count
export bin reps work

: >"$out"
for mode in $modes; do
  for size in $sizes; do
    "$bin" list "$mode" | while IFS= read -r entry; do printf '%s\0%s\0%s\0' "$mode" "$size" "$entry"; done
  done
done | xargs -0 -n3 -P "${JOBS:-2}" bash -c 'count "$0" "$1" "$2"' >>"$out"

for mode in $modes; do
  echo
  echo "$mode: thousands of instructions per MiB of payload (callgrind, $reps runs each)"
  echo
  echo "| entry | 16 B | 256 B | 4 KiB | 64 KiB |"
  echo "|---|---|---|---|---|"
  "$bin" list "$mode" | while IFS= read -r entry; do
    row="| $entry |"
    for size in $sizes; do
      v=$(awk -F'\t' -v m="$mode" -v s="$size" -v e="$entry" '$1==m && $2==s && $3==e {print int($4/1000)}' "$out")
      row="$row $v |"
    done
    echo "$row"
  done
done
