#!/usr/bin/env bash
# Builds the four stage binaries with one Cargo profile (default dev: what `make test` builds too, so the two
# README commands share one build). The first build compiles ~400 crates, libtorch bindings included: about
# 20-25 minutes on 2 cores; cargo's own progress bar shows where it is. Later builds take seconds.
#
#   bash scripts/build.sh [PROFILE]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-dev}
dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
if [ ! -x "$dir/train" ]; then
  printf 'build: first build of the stages (profile %s): usually 20-25 min on 2 cores, then seconds.\n' "$profile" >&2
fi
exec "${CARGO:-cargo}" build --profile "$profile" -p shard -p embed-text -p train -p audit
