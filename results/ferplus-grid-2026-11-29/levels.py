"""Per-level pseudo-label quality at the last sweep, from audit's summary.json of each run named on the command
line: every level's argmax accuracy over the unlabeled faces, its quantity and quality at the run's threshold,
and each level's recall per class beside the class's share of the labeled faces (the memory bank).

    python3 results/ferplus-grid-2026-11-29/levels.py results/<record>/<run> ...
"""
import json
import sys
from pathlib import Path


def pct(x):
    return "—" if x is None else f"{100 * x:.1f}"


for run in sys.argv[1:]:
    s = json.loads((Path(run) / "summary.json").read_text())
    e = s["epochs"][-1]
    m = s.get("model") or {}
    print(f"\n{s['run']} (seed {s.get('seed')}), sweep of epoch {e['epoch']}, {e['rows']} unlabeled faces; "
          f"test at best val {pct(m.get('test_acc'))} %")
    print("level      argmax acc  quantity  quality")
    for lv in e["levels"]:
        sel = lv["selection"]
        print(f"{lv['level']:<10} {pct(lv['accuracy']):>10}  {pct(sel['quantity']):>8}  {pct(sel['quality']):>7}")
    recalls = {lv["level"]: lv.get("class_recall") for lv in e["levels"]}
    shown = [name for name, r in recalls.items() if r]
    if not shown:
        continue
    print("class      labeled share  " + "  ".join(f"{n:>9}" for n in shown))
    for k, cls in enumerate(s["classes"]):
        row = "  ".join(f"{pct(recalls[n][k]):>9}" for n in shown)
        print(f"{cls:<10} {pct(s['labeled_prior'][k]):>13}  {row}")
