#!/usr/bin/env bash
# The CUDA check, for whenever a GPU machine is at hand (never part of the tests): build, `train doctor`,
# a short ferplus_10pct SIT-FER training on CUDA at the paper scale's 150 px (dlib backbone) / 16+16 batch in bf16
# (with and without channels-last), fp16 and fp32, the data-parallel path on NCCL at world size 1 (a torchrun-style
# group of one, synchronised batch norm), and a CPU-vs-CUDA step timing (images/s, input-wait fraction). Prints one summary block at the end; logs in $OUT (or artifacts/gpu-check).
#
#   FERPLUS_DIR=/path/to/ferplus bash scripts/gpu_check.sh [STEPS=200]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-200}
OUT=${OUT:-artifacts/gpu-check}
mkdir -p "$OUT"
export FERPLUS_DIR=${FERPLUS_DIR:?set FERPLUS_DIR to the FERPlus folder}
t0=$(date +%s)
bash scripts/setup.sh >"$OUT/setup.log" 2>&1
cargo build --release -q -p shard -p embed-text -p train -p audit 2>"$OUT/build.log"
t_build=$(( $(date +%s) - t0 ))
./target/release/train doctor | tee "$OUT/doctor.txt"
./target/release/shard ferplus >"$OUT/shard.log" 2>&1
./target/release/shard split ferplus_10pct >>"$OUT/shard.log" 2>&1
./target/release/embed-text -q --encoder minilm --set facs --device cuda >"$OUT/embed.log" 2>&1
run() { # name device precision channels-last steps [launcher environment...]
  rm -rf "artifacts/runs/gpu-$1"
  local s=$(date +%s.%N)
  env "${@:6}" ./target/release/train run --split ferplus_10pct --preset sitfer --scale paper --device "$2" --run-id "gpu-$1" \
    --set schedule.epochs=1 --set schedule.steps_per_epoch="$5" --set "run.precision=\"$3\"" --set run.channels_last="$4" \
    --set run.pseudo_labels_every=1 ${EXTRA_SETS:-} >"$OUT/$1.log" 2>&1
  echo "$1: $(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s wall"
}
{
  run cuda-bf16 cuda bf16 false "$STEPS"
  run cuda-bf16-cl cuda bf16 true "$STEPS"
  run cuda-fp16 cuda fp16 false "$STEPS"
  run cuda-fp32 cuda fp32 false "$STEPS"
  EXTRA_SETS="--set model.sync_bn=true" run cuda-nccl1 cuda bf16 false "$STEPS" WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29517
  run cpu cpu fp32 false 5
} | tee "$OUT/runs.txt"
.venv-torch/bin/python - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import sys, pyarrow.parquet as pq
out = sys.argv[1]
for name in ["cuda-bf16", "cuda-bf16-cl", "cuda-fp16", "cuda-fp32", "cuda-nccl1", "cpu"]:
    t = pq.read_table(f"artifacts/runs/gpu-{name}/metrics.parquet").to_pandas()
    g = lambda m, s="train": t[(t.metric == m) & (t.split == s) & t["class"].isna()].value.iloc[-1]
    print(f"{name:10s} {g('images_per_s'):8.1f} img/s  input wait {100*g('input_wait_fraction'):5.1f}%  "
          f"loss {g('loss'):.3f}  val {100*g('acc_cls','val'):.2f}%  eval {g('eval_seconds'):.1f} s")
PY
echo "build+setup ${t_build} s"
