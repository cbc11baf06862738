#!/usr/bin/env bash
# Benchmark: bf16 against fp32 on the network FERPlus trains (the `cpu` scale: dlib's ResNet cut after its
# 128-channel stage, 112 px, 64 labeled + 64 unlabeled faces a step, face-pretrained), on the synthetic
# shards so it needs no FERPlus. Per setting, the training step's images/s and one evaluation pass's seconds
# (val of synthetic_10pct through the folded inference path), interleaved rounds, medians. The ResNet-18
# figures of bench/precision.sh do not carry over: this network's convolutions are narrower.
#   bash bench/precision_ferplus.sh          (BENCH_STEPS, BENCH_ROUNDS; BENCH_QUICK=1 for one short round)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bin=${TRAIN_BIN:-${BIN_DIR:-$repo/target/release}/train}
py=$repo/.venv-torch/bin/python
steps=${BENCH_STEPS:-8}; rounds=${BENCH_ROUNDS:-2}
if [ -n "${BENCH_QUICK:-}" ]; then steps=4; rounds=1; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
declare -A got
source bench/lib.sh
run() { # precision channels_last -> "train images/s" "eval seconds"
  rm -rf "$tmp/runs"
  "$bin" run -q --split synthetic_10pct --preset sitfer --scale cpu --runs-root "$tmp/runs" --run-id bench \
    --device cpu --set schedule.epochs=1 --set schedule.steps_per_epoch="$steps" --set run.pseudo_labels_every=0 \
    --set optim.warmup_steps=0 --set "run.precision=\"$1\"" --set "run.channels_last=$2" > /dev/null 2> "$tmp/err" \
    || { cat "$tmp/err"; exit 1; }
  last_train_values "$tmp/runs/bench/metrics.parquet" images_per_s eval_seconds
}
rows=("fp32 false" "fp32 true" "bf16 false" "bf16 true")
for r in $(seq "$rounds"); do
  for row in "${rows[@]}"; do
    read -r ips secs <<< "$(run $row)"
    got[$row,ips]+="$ips "; got[$row,eval]+="$secs "
  done
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
of() { median "${got[$1]}"; }
native=$("$bin" doctor | grep -q 'CPU bf16 *native' && echo native || echo emulated)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
for row in "${rows[@]}"; do
  printf 'bench precision-ferplus (%s; %s threads; CPU bf16 %s; %s steps x %s rounds): %s channels-last=%s: train %.1f img/s (%.2fx fp32), eval %.2f s (%.2fx fp32)\n' \
    "$cpu" "$(nproc)" "$native" "$steps" "$rounds" ${row% *} ${row#* } "$(of "$row,ips")" \
    "$(awk "BEGIN{print $(of "$row,ips") / $(of 'fp32 false,ips')}")" "$(of "$row,eval")" \
    "$(awk "BEGIN{print $(of 'fp32 false,eval') / $(of "$row,eval")}")"
done
