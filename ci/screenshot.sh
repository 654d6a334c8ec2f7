#!/usr/bin/env bash
# Renders a socklab report's index.html to a PNG with headless Chromium, for reviewers
# (not part of CI). Usage: ci/screenshot.sh [REPORT_DIR] [OUT.png] [HEIGHT]
# With no REPORT_DIR it runs tcp-coalescing and nagle-delayed-ack into a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

report=${1:-}
out=${2:-socklab-screenshot.png}
height=${3:-2400}

if ! command -v chromium >/dev/null; then
  echo "ci/screenshot.sh: installing chromium (Debian package)" >&2
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

if [ -z "$report" ]; then
  report=$(mktemp -d)/report
  cargo run --release --quiet -- run tcp-coalescing nagle-delayed-ack \
    --set variant=default,nodelay,writev,cork,quickack --out "$report" || true
fi
[ -f "$report/index.html" ] || { echo "ci/screenshot.sh: no $report/index.html" >&2; exit 2; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
  --hide-scrollbars --screenshot="$out" --window-size=1280,"$height" \
  "file://$(realpath "$report/index.html")" 2>/dev/null
echo "ci/screenshot.sh: $out from $report/index.html"
