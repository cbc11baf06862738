#!/usr/bin/env bash
# The demo's first look at the candidates of docs/results.md section 2 (sitfer-flex, sitfer-flex-nowarm, sitfer-lp)
# beside sitfer and fixmatch: 5 presets x seeds 0-2 on synthetic_scarce at the demo scale, one stream of one libtorch
# thread, then audit's seed-paired table against sitfer, and the records kept here.
#   bash results/demo-candidates-2026-12-04/run.sh        (from the repository root, after `make demo`'s build)
set -euo pipefail
cd "$(dirname "$0")/../.."
rec=results/demo-candidates-2026-12-04
bin=${BIN_DIR:-target/debug}
presets=(sitfer sitfer-flex sitfer-flex-nowarm sitfer-lp fixmatch)
"$bin/shard" synthetic -q && "$bin/shard" split synthetic_scarce && "$bin/embed-text" -q --encoder minilm --set facs
for s in 0 1 2; do for p in "${presets[@]}"; do
  OMP_NUM_THREADS=1 "$bin/train" run -q --split synthetic_scarce --preset "$p" --scale demo --seed "$s" --device cpu --resume-if-any
done; done
runs() { for p in "$@"; do for s in 0 1 2; do echo "synthetic_scarce-$p-demo-s$s"; done; done; }
"$bin/audit" --no-html $(runs "${presets[@]}") > "$rec/vs-sitfer.txt"
for p in "${presets[@]}"; do for s in 0 1 2; do
  bash scripts/keep_run.sh "synthetic_scarce-$p-demo-s$s" "$rec"
done; done
