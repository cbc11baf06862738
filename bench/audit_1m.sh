#!/usr/bin/env bash
# Benchmark: the full audit report (all metrics, what-if grid, HTML, JSON, Parquet) of one run with
# 1,000,000 unlabeled pseudo-label rows x 8 classes (one epoch), on this machine: seconds and peak memory.
# The same report through the pandas/numpy reference (crates/audit/reference/audit_reference.py, metrics
# only, a few what-if settings instead of the grid) gives the ratio. BENCH_QUICK=1 uses 200,000 rows.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${AUDIT_BIN:-${BIN_DIR:-$repo/target/release}/audit}
fixture=${FIXTURE_BIN:-${BIN_DIR:-$repo/target/release}/examples/fixture}
py=$repo/.venv-torch/bin/python
rows=${BENCH_ROWS:-1000000}
[ -n "${BENCH_QUICK:-}" ] && rows=200000
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$fixture" "$tmp" "$rows" 1 > /dev/null
/usr/bin/time -f '%e %M' -o "$tmp/ours.time" "$bin" "$tmp/runs/fixture" --reports-root "$tmp/reports" -q 2> "$tmp/ours.err" || { cat "$tmp/ours.err"; exit 1; }
read -r secs kb < "$tmp/ours.time"
if [ -x "$py" ]; then
  /usr/bin/time -f '%e %M' -o "$tmp/ref.time" "$py" "$repo/crates/audit/reference/audit_reference.py" "$tmp/runs/fixture" > /dev/null
  read -r rsecs rkb < "$tmp/ref.time"
else
  rsecs=nan; rkb=0
fi
printf 'bench audit (%s rows x 8 classes, %s cores): ours %.2f s, peak %.0f MiB; pandas reference %.2f s, peak %.0f MiB; speed-up %.2fx\n' \
  "$rows" "$(nproc)" "$secs" "$(awk "BEGIN{print $kb/1024}")" "$rsecs" "$(awk "BEGIN{print $rkb/1024}")" "$(awk "BEGIN{print $rsecs / $secs}")"
