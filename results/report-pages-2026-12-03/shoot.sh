#!/usr/bin/env bash
# The demo's report pages as a person sees them: after `make demo`, audit's run and comparison pages opened in
# headless Chromium, full-page screenshots and the pages' sizes. Run from the repository root:
#   bash results/report-pages-2026-12-03/shoot.sh [OUT]     (AUDIT=path/to/audit for another build)
set -euo pipefail
out=${1:-results/report-pages-2026-12-03}
runs=(demo-supervised-s0 demo-sitfer-s0 demo-supervised-s1 demo-sitfer-s1 demo-supervised-s2 demo-sitfer-s2)
"${AUDIT:-./target/debug/audit}" -q "${runs[@]}" > /dev/null
cmp=$(ls -td artifacts/reports/compare-* | head -1)
shot() { chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,"$3" \
  --screenshot="$2" "file://$(realpath "$1")" 2> /dev/null; }
shot artifacts/reports/demo-sitfer-s0/index.html "$out/run-page.png" 9000
shot "$cmp/index.html" "$out/compare-page.png" 2600
{ echo "page bytes"; wc -c artifacts/reports/demo-sitfer-s0/index.html "$cmp/index.html" | head -2
  printf 'faces embedded in the run page: %s\n' "$(grep -o '<img src="data:image' artifacts/reports/demo-sitfer-s0/index.html | wc -l)"
  printf 'comparison folder: %s\n' "$(basename "$cmp")"; } | tee "$out/sizes.txt"
