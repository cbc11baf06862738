#!/usr/bin/env bash
# Benchmark: images/s of our full SIT-FER training step (`train run`, real shards, weak+strong augmentation
# through the prefetch queue, three levels, fusion, losses, Adam, bank update) against the same step in
# PyTorch eager (bench/train_step_reference.py), same image size, batch (B labeled + B unlabeled weak + B
# strong) and threads, in two rows: the bare reference (random inputs, no augmentation at all) and the
# augmenting one (the same synthetic faces through torchvision's weak and RandAugment + Cutout views in
# DataLoader workers: what a PyTorch user's training actually runs). Interleaved rounds, medians, ratios,
# and our input-wait fraction (share of step time spent waiting for the queue). A third row times our step
# alone: the first 4 batches augmented once and replayed (`run.replay_batches`), so no augmentation shares
# the cores, against the bare reference. Ours runs a warm-up epoch and is timed on the second, as the
# reference skips its warm-up steps (the first steps pay for allocation and oneDNN's kernel set-up). Needs the synthetic shards,
# the MiniLM prototypes and torchvision (the Makefile's `bench` target provides them).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bin=${TRAIN_BIN:-${BIN_DIR:-$repo/target/release}/train}
py=$repo/.venv-torch/bin/python
size=${BENCH_SIZE:-64}; batch=${BENCH_BATCH:-16}; steps=${BENCH_STEPS:-40}; rounds=${BENCH_ROUNDS:-3}
if [ -n "${BENCH_QUICK:-}" ]; then steps=15; rounds=2; fi
threads=$(nproc)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ours=(); alone=(); theirs=(); augmenting=(); waits=()
source bench/lib.sh
ours_run() {  # run id, then extra --set arguments
  ours_step_run "$tmp/runs" "$@" > /dev/null
}
last_epoch() { last_train_values "$1/metrics.parquet" images_per_s input_wait_fraction; }
for r in $(seq "$rounds"); do
  "$py" bench/train_step_reference.py "$size" "$batch" "$steps" "$threads" > "$tmp/ref.txt"
  theirs+=("$(grep -o '[0-9.]* img/s' "$tmp/ref.txt" | grep -o '^[0-9.]*')")
  "$py" bench/train_step_reference.py "$size" "$batch" "$steps" "$threads" artifacts/shards/synthetic > "$tmp/aug.txt"
  augmenting+=("$(grep -o '[0-9.]* img/s' "$tmp/aug.txt" | grep -o '^[0-9.]*')")
  rm -rf "$tmp/runs"
  ours_run bench "$size" "$batch" 2 "$steps"
  read -r ips wait < <(last_epoch "$tmp/runs/bench")
  ours_run alone "$size" "$batch" 2 "$steps" --set run.replay_batches=4
  read -r aips _ < <(last_epoch "$tmp/runs/alone")
  alone+=("$aips")
  ours+=("$ips"); waits+=("$wait")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mo=$(median "${ours[@]}"); ml=$(median "${alone[@]}"); mt=$(median "${theirs[@]}"); ma=$(median "${augmenting[@]}"); mw=$(median "${waits[@]}")
cat "$tmp/ref.txt" "$tmp/aug.txt"
printf 'bench train-step sitfer (%s px, %s+%s+%s, %s steps x %s rounds, %s threads): ours %.1f img/s (input wait %.1f%%), bare pytorch eager (random inputs) %.1f img/s, ratio %.2fx\n' \
  "$size" "$batch" "$batch" "$batch" "$steps" "$rounds" "$threads" "$mo" "$(awk "BEGIN{print 100*$mw}")" "$mt" "$(awk "BEGIN{print $mo / $mt}")"
printf 'bench train-step sitfer with augmentation (%s px, %s threads): ours %.1f img/s, pytorch eager + torchvision DataLoader %.1f img/s, ratio %.2fx\n' \
  "$size" "$threads" "$mo" "$ma" "$(awk "BEGIN{print $mo / $ma}")"
printf 'bench train-step sitfer, step alone (%s px, %s threads; 4 batches augmented once and replayed): ours %.1f img/s, bare pytorch eager %.1f img/s, ratio %.2fx\n' \
  "$size" "$threads" "$ml" "$mt" "$(awk "BEGIN{print $ml / $mt}")"
