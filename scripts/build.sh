#!/usr/bin/env bash
# Builds the four stage binaries with one Cargo profile (default dev: what `make test` builds too, so the two
# README commands share one build). The first build compiles about 450 crates, libtorch's bindings and polars
# among them; cargo's own progress shows where it is. Later builds take seconds. docs/build.md says where the
# time goes.
#
#   bash scripts/build.sh [PROFILE]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-dev}
dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
# The first build is compile work spread over the cores: CORE_MINUTES of it, measured (docs/build.md) on a
# 2-core AMD EPYC (AVX-512). Other CPUs differ by up to 2x either way.
CORE_MINUTES=34
if [ ! -x "$dir/train" ]; then
  cores=$(nproc 2>/dev/null || echo 2)
  printf 'build: first build of the stages (profile %s): about %d min on these %d cores (%d core-minutes of compiling; measured 16.9 min on 2 AMD EPYC cores; CPUs differ up to 2x), then seconds.\n' \
    "$profile" $(( (CORE_MINUTES + cores - 1) / cores + 1 )) "$cores" "$CORE_MINUTES" >&2
fi
exec "${CARGO:-cargo}" build --profile "$profile" -p shard -p embed-text -p train -p audit
