"""One line per run folder given: preset, seed, test accuracy at the val-chosen epoch (and that epoch), the
last epoch's test accuracy, and the run's time split (training / evaluation / sweeps, from metrics.parquet).

    python results/ferplus-25pc-2026-12-04/cell.py results/ferplus-25pc-2026-12-04/ferplus_25pc-*-cpu-s*

The candidates' test accuracies are withheld (docs/results.md: the candidate is chosen on val first); pass
--unblind once the choice is recorded.
"""
import json
import sys

import pyarrow.parquet as pq

CANDIDATES = {"sitfer-flex", "sitfer-lp"}
unblind = "--unblind" in sys.argv
for d in [a for a in sys.argv[1:] if a != "--unblind"]:
    run = json.load(open(f"{d}/run.json"))
    m = pq.read_table(f"{d}/metrics.parquet").to_pandas()
    acc = m[(m.metric == "acc_cls") & m["class"].isna()]
    val = acc[acc.split == "val"].set_index("epoch").value
    test = acc[acc.split == "test"].set_index("epoch").value
    best = int(val.idxmax())  # first epoch with the best val accuracy
    secs = m[m.metric.str.endswith("_seconds")].groupby("metric").value.sum()
    total = secs.sum()
    split = " / ".join(f"{100 * secs.get(k, 0) / total:.0f}" for k in ["train_seconds", "eval_seconds", "sweep_seconds"])
    blind = run["preset"] in CANDIDATES and not unblind
    shown = f"test withheld (epoch {best})" if blind else f"test {100 * test[best]:.2f} % (epoch {best}; last {100 * test[test.index.max()]:.2f} %)"
    print(f"{run['preset']:<15} s{run['seed']}  {shown}"
          f"  val {100 * val[best]:.2f} %  time train/eval/sweep {split} % of {total / 60:.0f} min")
