#!/usr/bin/env bash
# The demo's preset comparison with the three controls (docs/results.md section 2: the rule was committed
# before these runs): 6 presets x seeds 0-2 on synthetic_scarce at the demo scale, two streams of one libtorch
# thread each, then audit's seed-paired tables with three references, and the records kept here.
#   bash results/demo-controls-2026-12-02/run.sh        (from the repository root, after `make demo`'s build)
set -euo pipefail
cd "$(dirname "$0")/../.."
rec=results/demo-controls-2026-12-02
bin=target/debug
presets=(supervised fixmatch fixmatch-0.75 sitfer-novote sitfer-placebo sitfer)
"$bin/shard" synthetic -q && "$bin/shard" split synthetic_scarce && "$bin/embed-text" -q --encoder minilm --set facs
cells=(); for s in 0 1 2; do for p in "${presets[@]}"; do cells+=("$p $s"); done; done
stream() { # every other cell, from $1
  for ((i = $1; i < ${#cells[@]}; i += 2)); do
    read -r p s <<< "${cells[$i]}"
    OMP_NUM_THREADS=1 nice -n 19 "$bin/train" run -q --split synthetic_scarce --preset "$p" --scale demo --seed "$s" \
      --device cpu --resume-if-any > "$rec/logs/synthetic_scarce-$p-demo-s$s.log" 2>&1
  done
}
mkdir -p "$rec/logs"
stream 0 & stream 1 & wait
runs() { for p in "$@"; do for s in 0 1 2; do echo "synthetic_scarce-$p-demo-s$s"; done; done; }
"$bin/audit" --no-html $(runs "${presets[@]}") > "$rec/vs-supervised.txt"
"$bin/audit" --no-html $(runs sitfer sitfer-placebo sitfer-novote fixmatch-0.75 fixmatch supervised) > "$rec/vs-sitfer.txt"
"$bin/audit" --no-html $(runs fixmatch fixmatch-0.75) > "$rec/threshold.txt"
for p in "${presets[@]}"; do for s in 0 1 2; do
  bash scripts/keep_run.sh "synthetic_scarce-$p-demo-s$s" "$rec"
done; done
