#!/usr/bin/env bash
# Benchmark: shard the real FERPlus folder with our `shard ferplus` and with the straightforward Python
# reference (Pillow + pyarrow, bench/shard_reference.py), interleaved, on this machine; report medians and
# the ratio. BENCH_QUICK=1 runs each once.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${SITFER_FERPLUS_DIR:-${FERPLUS_DIR:-data/raw/ferplus}}
shard=${SHARD_BIN:-${BIN_DIR:-$repo/target/release}/shard}
py=$repo/.venv-torch/bin/python
runs=${BENCH_RUNS:-3}
[ -n "${BENCH_QUICK:-}" ] && runs=1
if [ ! -d "$root/FER2013Train" ]; then echo "bench shard: SKIPPED, no FERPlus at $root (set SITFER_FERPLUS_DIR)"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ours=(); theirs=()
for i in $(seq "$runs"); do
  s=$(date +%s.%N); "$shard" ferplus --root "$root" --out-root "$tmp/ours" --force -q > "$tmp/ours.txt"; e=$(date +%s.%N)
  ours+=("$(awk "BEGIN{print $e - $s}")")
  s=$(date +%s.%N); "$py" "$repo/bench/shard_reference.py" "$root" "$tmp/ref.parquet" > "$tmp/ref.txt"; e=$(date +%s.%N)
  theirs+=("$(awk "BEGIN{print $e - $s}")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
rows=$(grep -o '^shard ferplus: [0-9]*' "$tmp/ours.txt" | grep -o '[0-9]*$')
cat "$tmp/ours.txt"; cat "$tmp/ref.txt"
printf 'bench shard ferplus (%s faces kept, %s run(s), %s cores): ours %.2f s, python %.2f s, speed-up %.2fx\n' \
  "$rows" "$runs" "$(nproc)" "$mo" "$mt" "$(awk "BEGIN{print $mt / $mo}")"
