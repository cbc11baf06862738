#!/usr/bin/env bash
# The demo's classifiers through ONNX Runtime: for each demo run (seed 0 of every preset), `train export
# --format onnx`, `train predict` on the split's test faces, and reference/onnx_runtime.py's `accuracy` mode,
# which preprocesses the same faces itself from the shards and the model's metadata. Run from the repo root
# after `make demo`; writes summary.jsonl beside this script (the .onnx files stay in /tmp: no checkpoints here).
set -euo pipefail
here=$(dirname "$0")
out=${TMPDIR:-/tmp}/onnx-demo
rm -rf "$out" && mkdir -p "$out"
: > "$here/summary.jsonl"
for run in artifacts/runs/synthetic_scarce-{supervised,fixmatch,sitfer}-demo-s0; do
  name=$(basename "$run")
  ./target/debug/train export --run "$run" --format onnx --out "$out/$name" | tee -a "$here/export.log"
  ./target/debug/train predict --run "$run" --split artifacts/splits/synthetic_scarce.parquet --role test \
    --out "$out/$name/test.parquet" --json > "$out/$name/predict.json"
  ort=$(.venv-torch/bin/python crates/train/reference/onnx_runtime.py accuracy "$out/$name/classifier.onnx" \
    artifacts/shards/synthetic artifacts/splits/synthetic_scarce.parquet test "$out/$name/test.parquet")
  size=$(stat -c %s "$out/$name/classifier.onnx")
  sha=$(sha256sum "$out/$name/classifier.onnx" | cut -c1-16)
  echo "{\"run\": \"$name\", \"onnx_bytes\": $size, \"onnx_sha256_16\": \"$sha\", \"predict\": $(cat "$out/$name/predict.json"), \"onnx_runtime\": $ort}" \
    | tee -a "$here/summary.jsonl"
done
