#!/usr/bin/env bash
# Runs the numerics-sensitive tests under another CPU kernel set than this machine's own, so a result that
# holds only for one set of vector kernels (AVX-512 sums in another order than AVX2 ones) fails here, not on a
# user's machine. libtorch, oneDNN and MKL each pick their kernels at run time; each has its own override:
#
#   set      ATEN_CPU_CAPABILITY  ONEDNN_MAX_CPU_ISA  MKL_ENABLE_INSTRUCTIONS
#   default  default              SSE41               SSE4_2
#   avx2     avx2                 AVX2                AVX2
#   avx512   avx512               AVX512_CORE         AVX512
#
#   bash scripts/test_kernels.sh            # the set below this CPU's best (what `make test` runs)
#   bash scripts/test_kernels.sh avx2 ...   # the named sets, one after another ("all": the three)
#
# A set above what the CPU has falls back to the CPU's best in libtorch; it is skipped, with a line saying so.
# Extra cargo options (the Makefile's lint wrapper, say) come from the environment, so the build is the one
# `make test` already made.
set -euo pipefail
cd "$(dirname "$0")/.."

flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { [[ " $flags " == *" $1 "* ]]; }
native=default
has avx2 && native=avx2
has avx512f && has avx512bw && has avx512vl && has avx512dq && native=avx512

sets=("$@")
if [ ${#sets[@]} -eq 0 ]; then
  case $native in
    avx512) sets=(avx2) ;;
    *) sets=(default) ;;
  esac
fi
[ "${sets[0]}" = all ] && sets=(default avx2 avx512)

# The tests whose result depends on how floating-point sums are ordered: libtorch against our own code or a
# reference (optimisers, synchronised batch norm, the dlib conversion, fused heads), one process against two
# ranks, TorchScript against the trainer, the text encoders against their golden vectors, audit's replayed
# fusion against the trainer's stored one.
run_set() {
  local set=$1 onednn mkl
  case $set in
    default) onednn=SSE41 mkl=SSE4_2 ;;
    avx2) onednn=AVX2 mkl=AVX2 ;;
    avx512) onednn=AVX512_CORE mkl=AVX512 ;;
    *) echo "test_kernels: unknown kernel set '$set' (expected default, avx2, avx512 or all)" >&2; return 2 ;;
  esac
  if [ "$set" = avx512 ] && [ "$native" != avx512 ]; then
    echo "test_kernels: skipping avx512: this CPU has no AVX-512 (its best is $native)"
    return 0
  fi
  if [ "$set" = avx2 ] && [ "$native" = default ]; then
    echo "test_kernels: skipping avx2: this CPU has no AVX2"
    return 0
  fi
  echo "test_kernels: kernel set $set (this CPU: $native): ATEN_CPU_CAPABILITY=$set ONEDNN_MAX_CPU_ISA=$onednn MKL_ENABLE_INSTRUCTIONS=$mkl"
  export ATEN_CPU_CAPABILITY=$set ONEDNN_MAX_CPU_ISA=$onednn MKL_ENABLE_INSTRUCTIONS=$mkl
  "${CARGO:-cargo}" test -q -p torch-ext -p tch-common --lib
  "${CARGO:-cargo}" test -q -p train --lib
  "${CARGO:-cargo}" test -q -p train --test it -- run::two_ranks run::every_preset run::vote_targets \
    run::dlib_init use_model::predict_evaluate_and_export
  "${CARGO:-cargo}" test -q -p embed-text --test it -- minilm_golden clip_text
  "${CARGO:-cargo}" test -q -p test-support --test it -- pipeline
}

for s in "${sets[@]}"; do
  run_set "$s"
done
