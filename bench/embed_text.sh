#!/usr/bin/env bash
# Benchmark: encode the default description set with our `embed-text` (MiniLM on tch) and with
# sentence-transformers (bench/embed_text_reference.py), interleaved, on CPU; medians and the ratio.
# Times are the encoding itself (tokenise + forward + pool), model loading excluded on both sides.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${EMBED_BIN:-${BIN_DIR:-$repo/target/release}/embed-text}
py=$repo/.venv-torch/bin/python
runs=${BENCH_RUNS:-5}
[ -n "${BENCH_QUICK:-}" ] && runs=2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ours=(); theirs=()
for i in $(seq "$runs"); do
  "$bin" --out-root "$tmp" --force --json --device cpu > "$tmp/ours.json" 2> "$tmp/ours.err"
  ours+=("$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["encode_seconds"])' "$tmp/ours.json")")
  "$py" "$repo/bench/embed_text_reference.py" "$repo/.text-model" "$tmp/minilm/facs/embeddings.parquet" > "$tmp/ref.txt" 2>/dev/null
  theirs+=("$(grep -o 'encode [0-9.]*' "$tmp/ref.txt" | grep -o '[0-9.]*$')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
n=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["descriptions"])' "$tmp/ours.json")
cat "$tmp/ref.txt"
printf 'bench embed-text minilm (%s descriptions, %s run(s), %s cores): ours %.3f s, sentence-transformers %.3f s, speed-up %.2fx\n' \
  "$n" "$runs" "$(nproc)" "$mo" "$mt" "$(awk "BEGIN{print $mt / $mo}")"
