"""One line per run folder given: preset, seed, test accuracy at the val-chosen epoch (and that epoch), the
last epoch's test accuracy, and the run's time split (training / evaluation / sweeps, from metrics.parquet).

    python results/ferplus-25pc-2026-12-04/cell.py results/ferplus-25pc-2026-12-04/ferplus_25pc-*-cpu-s*
"""
import json
import sys

import pyarrow.parquet as pq

for d in sys.argv[1:]:
    run = json.load(open(f"{d}/run.json"))
    m = pq.read_table(f"{d}/metrics.parquet").to_pandas()
    acc = m[(m.metric == "acc_cls") & m["class"].isna()]
    val = acc[acc.split == "val"].set_index("epoch").value
    test = acc[acc.split == "test"].set_index("epoch").value
    best = int(val.idxmax())  # first epoch with the best val accuracy
    secs = m[m.metric.str.endswith("_seconds")].groupby("metric").value.sum()
    total = secs.sum()
    split = " / ".join(f"{100 * secs.get(k, 0) / total:.0f}" for k in ["train_seconds", "eval_seconds", "sweep_seconds"])
    print(f"{run['preset']:<15} s{run['seed']}  test {100 * test[best]:.2f} % (epoch {best}; last {100 * test[test.index.max()]:.2f} %)"
          f"  val {100 * val[best]:.2f} %  time train/eval/sweep {split} % of {total / 60:.0f} min")
