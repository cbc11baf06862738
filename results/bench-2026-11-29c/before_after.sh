#!/usr/bin/env bash
# The training step before and after the fused Adam / dropped gradients change (commit 5eea78a): two train
# binaries on the benchmark's configuration (bench/train_step.sh: ResNet-18 from scratch, 64 px, 16+16+16,
# 2 threads, a warm-up epoch then a timed one of 40 steps), interleaved rounds, last-epoch images/s.
# usage: BEFORE=/path/to/train AFTER=/path/to/train bash before_after.sh [ROUNDS=3]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
py=$repo/.venv-torch/bin/python
rounds=${1:-3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() {
  rm -rf "$tmp/runs"
  "$1" run -q --split synthetic_10pct --preset sitfer --scale cpu --runs-root "$tmp/runs" --run-id b --device cpu \
    --set model.arch=resnet18 --set model.init=scratch --set model.stem=imagenet --set model.dropout=0.5 \
    --set model.classifier_scale=1 --set optim.kind=adam --set optim.weight_decay=0 --set model.image_size=64 \
    --set schedule.batch_labeled=16 --set schedule.batch_unlabeled=16 --set schedule.epochs=2 \
    --set schedule.steps_per_epoch=40 --set run.pseudo_labels_every=0 --set optim.warmup_steps=0 > /dev/null
  "$py" -c "
import pyarrow.parquet as pq
t = pq.read_table('$tmp/runs/b/metrics.parquet').to_pandas()
print(t[(t.metric == 'images_per_s') & (t.split == 'train')].value.iloc[-1])"
}
for r in $(seq "$rounds"); do
  b=$(run "$BEFORE"); a=$(run "$AFTER")
  echo "round $r: before $b img/s, after $a img/s, after/before $(awk "BEGIN{printf \"%.3f\", $a / $b}")"
done
