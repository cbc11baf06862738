#!/usr/bin/env bash
# Benchmark: face alignment (5-point landmarks + a 150-px aligned chip, get_face_chip's defaults) per second on
# ONE core, on 640x480 RGB pictures with one face box each (a fifth to half of the picture's height), ours
# (crates/face/examples/align_throughput.rs) against dlib itself (dlib-bin, bench/face_align_reference.py) on
# the same pictures: interleaved rounds, medians, the ratio. Detection is not in it yet (the CNN detector is
# not written). BENCH_QUICK=1 for fewer repeats.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
ours_bin=${ALIGN_BIN:-${BIN_DIR:-$repo/target/release}/examples/align_throughput}
py=$repo/.venv-torch/bin/python
models=${SITFER_FACE_MODEL:-$repo/.face-model}
repeats=${BENCH_REPEATS:-20}; rounds=${BENCH_ROUNDS:-3}
if [ -n "${BENCH_QUICK:-}" ]; then repeats=4; rounds=1; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# 16 pictures of seeded smooth noise (the landmark model's cost does not depend on the content).
"$py" - "$tmp" <<'PY'
import json, sys
import numpy as np
from PIL import Image
d = sys.argv[1]; rng = np.random.default_rng(0); cases = []
for k in range(16):
    small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(small).resize((640, 480), Image.BICUBIC).save(f"{d}/p{k}.png")
    side = int(96 + 144 * k / 15); left = int(rng.integers(0, 640 - side)); top = int(rng.integers(0, 480 - side))
    cases.append({"image": f"{d}/p{k}.png", "box": [left, top, left + side, top + side]})
json.dump(cases, open(f"{d}/cases.json", "w"))
PY
for r in $(seq "$rounds"); do
  SITFER_FACE_MODEL=$models "$ours_bin" "$tmp" "$repeats" >> "$tmp/ours.txt"
  OMP_NUM_THREADS=1 "$py" bench/face_align_reference.py "$models" "$tmp" "$repeats" >> "$tmp/ref.txt"
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
o=$(awk '{print $7}' "$tmp/ours.txt" | median); d=$(awk '{print $7}' "$tmp/ref.txt" | median)
printf 'bench face align 640x480 (1 core, 16 faces x %s repeats x %s rounds): ours %.0f faces/s vs dlib %.0f (%.2fx)\n' \
  "$repeats" "$rounds" "$o" "$d" "$(awk "BEGIN{print $o/$d}")"
