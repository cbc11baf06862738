#!/usr/bin/env bash
# audit before / after the one-pass what-if, interleaved on one 1,000,000-row fixture (8 classes, 1 epoch):
# the full report (132 what-if candidates at the default grid step 0.1) and the report without what-if.
#   bash audit_before_after.sh OLD_AUDIT NEW_AUDIT FIXTURE_BIN [ROUNDS=5]
# OLD_AUDIT: release build of 0f4fa46; NEW_AUDIT: release build of f1100b0 or later.
set -euo pipefail
old=$1 new=$2 fixture=$3 rounds=${4:-5}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$fixture" "$tmp" 1000000 1 > /dev/null
for r in $(seq "$rounds"); do
  for which in old new; do
    bin=$old; [ $which = new ] && bin=$new
    for grid in 0.1 0; do
      /usr/bin/time -f "$which grid=$grid %e s wall %U s user %M KB" "$bin" "$tmp/runs/fixture" \
        --reports-root "$tmp/reports-$which" -q --grid-step $grid 2>&1 | grep -v '^report'
    done
  done
done
