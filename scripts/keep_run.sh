#!/usr/bin/env bash
# Keeps the record of a finished run under results/: its resolved config, run.json, inputs manifest, init
# report, metrics.parquet and audit's summary.json (no checkpoints, no pseudo-label files). The README's
# numbers come from these records.
#
#   bash scripts/keep_run.sh RUN DEST        e.g. ferplus_10pct-sitfer-cpu results/ferplus-dlib-2026-11-28
set -euo pipefail
cd "$(dirname "$0")/.."
run=$1
dest=$2/$run
src=artifacts/runs/$run
bin=${BIN_DIR:-target/debug}
[ -f "$src/run.json" ] || { echo "keep_run: $src/run.json missing: is $run a finished run?" >&2; exit 1; }
"$bin/audit" -q "$run" >/dev/null
mkdir -p "$dest"
for f in config.toml run.json manifest.json init.json metrics.parquet; do
  [ -f "$src/$f" ] && cp "$src/$f" "$dest/"
done
cp "artifacts/reports/$run/summary.json" "$dest/"
echo "kept $run in $dest"
