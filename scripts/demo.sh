#!/usr/bin/env bash
# `make demo`: the whole pipeline on the built-in synthetic faces, on the CPU unless DEVICE says otherwise
#   (12-17 min on 2 cores once built; the first build of the four stages comes first, and `make test` reuses it):
#   synthetic faces -> shards -> the label-scarce split (24 labels per class, 5,555 unlabeled faces, 1,898 val,
#   2,871 test)
#   -> MiniLM text prototypes
#   -> train supervised and SIT-FER on it, 3 seeds each (scale preset `demo`: dlib's face-pretrained ResNet,
#      fetched by setup, at 64 px; a seed changes the initialisation of the heads and the sampling, not the split)
#   -> audit: the six runs side by side (test accuracy at the best-val epoch, pseudo-label quantity and quality
#      per level), mean ± sd per preset and SIT-FER's seed-paired gain with its 95 % interval; an HTML report
#      per run. SEEDS=n for another number of seeds.
# Every step is skipped when its output is up to date; an interrupted run resumes. FORCE=1 starts over.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
profile=${PROFILE:-dev}
bin=target/$([ "$profile" = dev ] && echo debug || echo "$profile")

say "setup (libtorch, text model, face model; cached under ~/.cache/sitfer)"
bash scripts/setup.sh
say "build (profile $profile; shared with make test)"
bash scripts/build.sh "$profile"
built=$(date +%s)

say "synthetic faces -> artifacts/shards/synthetic"
"$bin/shard" synthetic ${FORCE:+--force} --preview artifacts/synthetic-preview.png
"$bin/shard" split synthetic_scarce ${FORCE:+--force}

say "text prototypes (MiniLM, FACS descriptions)"
"$bin/embed-text" --encoder minilm --set facs ${FORCE:+--force}

runs=()
for seed in $(seq 0 $(( ${SEEDS:-3} - 1 ))); do
  for preset in supervised sitfer; do
    id=demo-$preset-s$seed
    say "train $preset on synthetic_scarce, seed $seed -> artifacts/runs/$id"
    [ -n "${FORCE:-}" ] && rm -rf "artifacts/runs/$id"
    "$bin/train" run --split synthetic_scarce --preset "$preset" --scale demo --set "run.seed=$seed" --run-id "$id" \
      --device "${DEVICE:-auto}" --resume-if-any
    runs+=("$id")
  done
done

say "audit: the runs side by side, then the seed-paired gain of sitfer over supervised"
"$bin/audit" "${runs[@]}"
ended=$(date +%s)
printf '\ndemo: %d s in all (%d s set-up and build, %d s pipeline). Reports: artifacts/reports/<run>/index.html\n' \
  $((ended - started)) $((built - started)) $((ended - built))
