#!/usr/bin/env bash
# Benchmark: the input pipeline's images/s on ONE core at 64, 112 and 224 px: decode (PNG bytes -> resized
# image, once per sample) and both augmented views (weak + strong RandAugment/Cutout, to normalised floats,
# every step) — ours (crates/train/examples/loader_throughput.rs) against PIL + torchvision v2
# (bench/loader_reference.py) on the same synthetic shard images, interleaved rounds, medians, ratios.
# A GPU step at 224 px eats thousands of images per second: divide by the per-core rate to get the cores the
# loader needs. BENCH_QUICK=1 for fewer images and rounds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
ours_bin=${LOADER_BIN:-${BIN_DIR:-$repo/target/release}/examples/loader_throughput}
py=$repo/.venv-torch/bin/python
shards=artifacts/shards/synthetic
n=${BENCH_IMAGES:-600}; rounds=${BENCH_ROUNDS:-3}
if [ -n "${BENCH_QUICK:-}" ]; then n=200; rounds=1; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$rounds"); do
  # One thread each: rayon and torch both pinned to a single core's worth of work.
  RAYON_NUM_THREADS=1 "$ours_bin" "$shards" "$n" 64 112 224 >> "$tmp/ours.txt"
  OMP_NUM_THREADS=1 "$py" bench/loader_reference.py "$shards" "$n" 64 112 224 >> "$tmp/ref.txt"
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# Fields of a line "loader <who> size S images N decode D img/s weak+strong A img/s (…)": S $4, D $8, A $11.
col() { awk -v size="$2" -v f="$3" '$4 == size { print $f }' "$1" | median; }
for size in 64 112 224; do
  od=$(col "$tmp/ours.txt" "$size" 8); oa=$(col "$tmp/ours.txt" "$size" 11)
  rd=$(col "$tmp/ref.txt" "$size" 8); ra=$(col "$tmp/ref.txt" "$size" 11)
  printf 'bench loader %s px (1 core, %s images x %s rounds): decode ours %.0f img/s vs PIL %.0f (%.2fx); weak+strong views ours %.0f img/s vs torchvision %.0f (%.2fx)\n' \
    "$size" "$n" "$rounds" "$od" "$rd" "$(awk "BEGIN{print $od/$rd}")" "$oa" "$ra" "$(awk "BEGIN{print $oa/$ra}")"
done
