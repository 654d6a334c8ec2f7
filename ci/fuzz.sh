#!/usr/bin/env bash
# Fuzzes every framing decoder (fuzz/fuzz_targets/) for a fixed time each and fails on
# any crash, printing executions per target.
#
#   bash ci/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 300 (a campaign; CI runs 15). With no TARGET, every
# target runs. The corpus is kept in fuzz/corpus/<target>/ between runs (FUZZ_CORPUS=DIR
# puts it elsewhere), so each campaign starts where the last one stopped. A crashing
# input is saved under fuzz/artifacts/<target>/; replay it with
#   cd fuzz && cargo +nightly fuzz run -O <target> <file>
# Needs the nightly toolchain (cargo-fuzz builds with sanitizers); installs cargo-fuzz
# from crates.io when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-300}
shift || true
case $seconds in '' | *[!0-9]*) echo "ci/fuzz.sh: SECONDS_PER_TARGET must be a whole number, got '$seconds'" >&2; exit 2 ;; esac
corpus_root=${FUZZ_CORPUS:-corpus}

cargo +nightly --version >/dev/null 2>&1 || {
  echo "ci/fuzz.sh: no nightly toolchain (cargo +nightly); fuzzing needs one for its sanitizer flags" >&2
  exit 2
}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
echo "== building ${#targets[@]} fuzz targets (release, address sanitizer)"
cargo +nightly fuzz build -O >/dev/null

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
printf '%-26s %14s %10s %8s  %s\n' target executions per_s corpus result
for target in "${targets[@]}"; do
  mkdir -p "$corpus_root/$target"
  log="$logs/$target.log"
  # -malloc_limit_mb: any single allocation over 256 MiB is a finding (the decoders'
  # limits in these targets are a few KiB; a hostile length must never be reserved).
  if cargo +nightly fuzz run -O "$target" "$corpus_root/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -malloc_limit_mb=256 -rss_limit_mb=1024 \
    >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    failed=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  runs=${runs:-0}
  corpus=$(find "$corpus_root/$target" -type f | wc -l)
  printf '%-26s %14s %10s %8s  %s\n' "$target" "$runs" "$((runs / (seconds > 0 ? seconds : 1)))" "$corpus" "$result"
  if [ "$result" != ok ]; then
    echo "---- $target: last lines of libFuzzer's log" >&2
    tail -40 "$log" >&2
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "ci/fuzz.sh: a fuzz target crashed; the input is under fuzz/artifacts/" >&2
  exit 1
fi
echo "ci/fuzz.sh: no crashes"
