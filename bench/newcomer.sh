#!/usr/bin/env bash
# A newcomer's first hour, measured: the README's two commands (`make demo`, then `make test`) in a clone,
# every output line stamped with the seconds since the start, then the time of each part (set-up, build,
# pipeline; fmt, lint + test build, tests, second kernel set). For a cold measurement, give it a fresh clone
# and an empty cache:
#
#   git clone . /tmp/fresh && SITFER_CACHE=/tmp/cache bash bench/newcomer.sh /tmp/fresh /tmp/newcomer
#
# Writes OUT.log (the stamped output) and OUT.parts (one "part seconds" line each), and prints the parts.
set -uo pipefail
clone=$(cd "$1" && pwd); out=$2
start=${EPOCHREALTIME/./}
stamp() {
  local now
  while IFS= read -r line; do
    now=${EPOCHREALTIME/./}
    printf '%6d.%d %s\n' $(((now - start) / 1000000)) $(((now - start) / 100000 % 10)) "$line"
  done
}
cd "$clone"
{ make demo; echo "== exit make demo $?"; echo "== make test"; make test; echo "== exit make test $?"; } 2>&1 | stamp > "$out.log"
# The first stamp of each part's opening line; a part ends where the next begins.
at() { grep -m1 -F -- "$1" "$out.log" | awk '{print $1}'; }
marks=(
  "set-up|== setup"
  "build|== build"
  "pipeline|== synthetic faces"
  "fmt|cargo fmt --all -- --check"
  "lint + test build|test --workspace --no-run"
  "tests|test --workspace$"
  "second kernel set|bash scripts/test_kernels.sh"
  "end|== exit make test"
)
: > "$out.parts"
prev_name=""; prev_t=""
for m in "${marks[@]}"; do
  name=${m%%|*}; key=${m#*|}
  if [ "$key" = "test --workspace$" ]; then t=$(grep -m1 -E -- "test --workspace$" "$out.log" | awk '{print $1}'); else t=$(at "$key"); fi
  if [ -n "$prev_name" ] && [ -n "$t" ] && [ -n "$prev_t" ]; then
    awk -v n="$prev_name" -v a="$prev_t" -v b="$t" 'BEGIN { printf "%s %.0f s\n", n, b - a }' >> "$out.parts"
  fi
  prev_name=$name; prev_t=$t
done
grep -F "== exit" "$out.log" >> "$out.parts"
tail -1 "$out.log" | awk '{ printf "total %.0f s\n", $1 }' >> "$out.parts"
cat "$out.parts"
