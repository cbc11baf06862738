#!/usr/bin/env bash
# `make demo`: the whole pipeline on the built-in synthetic faces, CPU only (about 20 min on 2 cores once built;
#   the first build of the four stages takes ~20-25 min more, and `make test` reuses it):
#   synthetic faces -> shards -> splits (10 % and all labels) -> MiniLM text prototypes
#   -> train supervised on 10 %, SIT-FER on 10 %, supervised on 100 % (scale preset `demo`: dlib's face-pretrained
#      ResNet, fetched by setup, at 64 px)
#   -> audit: the three runs side by side (test accuracy at the best-val epoch, pseudo-label quantity and
#      quality per level) and an HTML report per run.
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
"$bin/shard" split synthetic_10pct ${FORCE:+--force}
"$bin/shard" split synthetic_full ${FORCE:+--force}

say "text prototypes (MiniLM, FACS descriptions)"
"$bin/embed-text" --encoder minilm --set facs ${FORCE:+--force}

runs=()
for job in supervised:synthetic_10pct sitfer:synthetic_10pct supervised:synthetic_full; do
  preset=${job%%:*}; split=${job#*:}; id=demo-$preset-${split#synthetic_}
  say "train $preset on $split -> artifacts/runs/$id"
  [ -n "${FORCE:-}" ] && rm -rf "artifacts/runs/$id"
  "$bin/train" run --split "$split" --preset "$preset" --scale demo --run-id "$id" --device "${DEVICE:-auto}" --resume-if-any
  runs+=("$id")
done

say "audit: the three runs side by side (the all-labels run has no unlabeled faces: accuracy only)"
"$bin/audit" "${runs[@]}"
ended=$(date +%s)
printf '\ndemo: %d s in all (%d s set-up and build, %d s pipeline). Reports: artifacts/reports/<run>/index.html\n' \
  $((ended - started)) $((built - started)) $((ended - built))
