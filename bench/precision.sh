#!/usr/bin/env bash
# Benchmark: our training step at 112 px in fp32, fp32 + channels-last and bf16 + channels-last
# (`run.precision`, `run.channels_last`), beside PyTorch eager in fp32 and in bf16 autocast + channels-last
# (bench/train_step_reference.py, bare step), same batch and threads, interleaved rounds, medians. Whether bf16
# pays depends on the CPU: native with AVX-512 BF16 or AMX (`train doctor` says), emulated and slow elsewhere.
# Our step is bench/lib.sh's, the reference's head and optimiser (dropout 0.5, Adam without weight decay) since
# 2026-11-29; rows recorded before that date ran the preset's head and AdamW.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bin=${TRAIN_BIN:-${BIN_DIR:-$repo/target/release}/train}
py=$repo/.venv-torch/bin/python
size=${BENCH_SIZE:-112}; batch=${BENCH_BATCH:-8}; steps=${BENCH_STEPS:-8}; rounds=${BENCH_ROUNDS:-2}
if [ -n "${BENCH_QUICK:-}" ]; then steps=4; rounds=1; fi
threads=$(nproc)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
declare -A got
source bench/lib.sh
ours() { # precision channels_last -> images/s of the run's train epoch
  rm -rf "$tmp/runs"
  ours_step_run "$tmp/runs" bench "$size" "$batch" 1 "$steps" --set "run.precision=\"$1\"" \
    --set "run.channels_last=$2" > /dev/null 2> "$tmp/err" || { cat "$tmp/err"; exit 1; }
  last_train_values "$tmp/runs/bench/metrics.parquet" images_per_s
}
theirs() { # precision channels_last -> images/s of the bare PyTorch step
  REF_PRECISION=$1 REF_CHANNELS_LAST=$2 "$py" bench/train_step_reference.py "$size" "$batch" "$steps" "$threads" \
    | grep -o '[0-9.]* img/s' | grep -o '^[0-9.]*'
}
# who, precision, channels-last (ours takes a TOML boolean, the reference 0/1).
rows=("ours fp32 false" "ours fp32 true" "ours bf16 true" "theirs fp32 0" "theirs bf16 1")
for r in $(seq "$rounds"); do
  for row in "${rows[@]}"; do
    read -r who p cl <<< "$row"
    got[$row]+="$("$who" "$p" "$cl") "
  done
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
of() { median "${got[$1]}"; }
native=$("$bin" doctor | grep -q 'CPU bf16 *native' && echo native || echo emulated)
printf 'bench precision (%s px, %s+%s+%s, %s steps x %s rounds, %s threads, CPU bf16 %s): ours fp32 %.1f, fp32+channels-last %.1f, bf16+channels-last %.1f img/s; bf16 vs fp32 %.2fx; pytorch eager fp32 %.1f, bf16+channels-last %.1f img/s (%.2fx)\n' \
  "$size" "$batch" "$batch" "$batch" "$steps" "$rounds" "$threads" "$native" \
  "$(of 'ours fp32 false')" "$(of 'ours fp32 true')" "$(of 'ours bf16 true')" \
  "$(awk "BEGIN{print $(of 'ours bf16 true') / $(of 'ours fp32 false')}")" \
  "$(of 'theirs fp32 0')" "$(of 'theirs bf16 1')" "$(awk "BEGIN{print $(of 'theirs bf16 1') / $(of 'theirs fp32 0')}")"
