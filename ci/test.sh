#!/usr/bin/env bash
# The test entry point for CI and for people: formatting and lints (cargo fmt --check,
# cargo clippy -D warnings, with the lints of Cargo.toml's [workspace.lints]), the
# README's test command, then the CI
# suite through the release binary, checking its exit code and its report, then the
# fidelity cross-check (ci/fidelity.sh: tcpdump and kernel counters on the same traffic),
# then every benchmark once, untimed (`cargo bench --workspace --benches -- --test`:
# benches never rot), then every fuzz target for a short fixed time (FUZZ_SECONDS,
# default 15; ci/fuzz.sh runs longer).
set -euo pipefail
cd "$(dirname "$0")/.."

# CI runs as root: tests that need packet capture or namespaces must run, not skip.
export SOCKLAB_REQUIRE_PRIVILEGED=1
export CARGO_TERM_COLOR=never NO_COLOR=1

command -v cargo >/dev/null || { echo "ci/test.sh: cargo not found; install Rust (rustup) first" >&2; exit 2; }
cargo --version

# This includes tests/two_hosts.rs, which runs ci/two-hosts.sh (two namespaces, socklab
# and its agent across a veth) with the test build of socklab: as root it runs, and under
# SOCKLAB_REQUIRE_PRIVILEGED=1 a missing privilege fails it rather than skipping it.
# Guard rails first, so a formatting slip or a lint fails in seconds, not after the tests.
echo "== cargo fmt --all -- --check"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
cargo fmt --all -- --check
echo "== cargo clippy --workspace --all-targets -- -D warnings"
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo clippy --workspace --all-targets -- -D warnings

# No import circle between the modules of any crate (ARCHITECTURE.md: dependencies point
# one way, inside crates too).
echo "== module import circles"
for src in framing/src model/src harness/src scenarios/src reports/src src; do
  python3 ci/module-cycles.py "$src" >/dev/null || { python3 ci/module-cycles.py "$src"; echo "ci/test.sh: import circle in $src" >&2; exit 1; }
done
echo "none"

# tests/cli_link.rs gives a copy of the binary file capabilities and runs it as `nobody`.
if [ "$(id -u)" -eq 0 ]; then
  command -v setcap >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcap2-bin >/dev/null; }
fi

echo "== cargo test --workspace"
cargo test --workspace

echo "== CI suite"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
cargo run --release --quiet -- run --suite scenarios/suites/ci.toml --out "$out/report" || status=$?
if [ "$status" -ne 0 ]; then
  echo "ci/test.sh: the CI suite exited $status (1 = a check failed, 2 = configuration error)" >&2
  [ -f "$out/report/report.md" ] && cat "$out/report/report.md" >&2
  exit 1
fi
for file in report.json report.md junit.xml; do
  [ -s "$out/report/$file" ] || { echo "ci/test.sh: the CI suite wrote no $file" >&2; exit 1; }
done
# The summary table, for the CI log.
sed -n '/^## Summary/,/^## /p' "$out/report/report.md" | sed '$d'

echo "== fidelity: socklab's figures against tcpdump and the kernel's counters"
# It needs root (a namespace, tcpdump); CI is root. Elsewhere it is skipped with a line.
if [ "$(id -u)" -eq 0 ]; then
  RECV_BYTES=268435456 bash ci/fidelity.sh
else
  echo "skipped: ci/fidelity.sh needs root (sudo bash ci/fidelity.sh)"
fi

# Every criterion benchmark runs once, untimed (and asserts what it measures, such as
# every frame decoded): a bench that no longer builds or panics fails CI. The release
# build above is shared, so this adds the bench targets' build and about a minute.
# --benches: the bench targets alone, not every unit and integration test rebuilt in
# release.
echo "== cargo bench --workspace --benches -- --test"
bench_log="$out/bench.log"
if ! cargo bench --workspace --benches -- --test >"$bench_log" 2>&1; then
  tail -n 40 "$bench_log" >&2
  echo "ci/test.sh: cargo bench --workspace --benches -- --test failed (log above)" >&2
  exit 1
fi
# criterion prints "Success" per benchmark it ran; none at all means nothing was checked.
benches_run=$(grep -c '^Success' "$bench_log" || true)
if [ "$benches_run" -eq 0 ]; then
  echo "ci/test.sh: cargo bench --workspace --benches -- --test ran no benchmark" >&2
  exit 1
fi
echo "$benches_run benchmarks ran once each"

echo "== fuzzing every decoder for ${FUZZ_SECONDS:-15} s"
bash ci/fuzz.sh "${FUZZ_SECONDS:-15}"
echo "ci/test.sh: all passed"
