#!/usr/bin/env bash
# A screenshot of a report as a reader's browser first shows it (headless Chromium), to
# look at the first screen — the scoreboard — without opening a browser:
#
#   bash bench/screenshot_report.sh results/demo/report.html /tmp/report.png [1280,1600]
#
# The third argument is the window, width,height in pixels. The browser is $CHROMIUM, else
# chromium or chromium-browser on PATH (Debian: apt-get install chromium); exit 2 when there
# is none, 1 when it wrote no image. tests/test_report.py takes one and checks its colours.
set -euo pipefail
html=${1:?usage: screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]}
png=${2:?usage: screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]}
size=${3:-1280,1600}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$browser" ]; then
    echo "screenshot_report.sh: no chromium on PATH (apt-get install chromium)" >&2
    exit 2
fi
[ -s "$html" ] || { echo "screenshot_report.sh: no $html" >&2; exit 1; }
png=$(realpath -m "$png")
rm -f "$png"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start; the page is a
# local file this harness wrote. Its D-Bus complaints on a bare machine are noise.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --screenshot="$png" \
    --window-size="$size" "file://$(realpath "$html")" >"$log" 2>&1 || true
if [ ! -s "$png" ]; then
    cat "$log" >&2
    echo "screenshot_report.sh: $browser wrote no $png" >&2
    exit 1
fi
echo "$png"
