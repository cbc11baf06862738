"""Independent computation of the audit's metrics (crates/audit/tests/it/reference.rs compares against it).

Plain pandas + numpy, written from the metric definitions, not from the Rust code: reads run.json, the
pseudo-label files, the shards and the split of a run folder and prints one JSON object per epoch.

usage: python audit_reference.py RUN_DIR
"""
import glob
import json
import sys

import numpy as np
import pandas as pd

LEVELS = ["p_sem", "p_text", "p_ins", "p_fused"]
NAMES = {"p_sem": "semantic", "p_text": "text", "p_ins": "instance", "p_fused": "fused"}
CANONICAL = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]


def ece(conf, correct, bins=15):
    idx = np.clip(np.ceil(conf.astype(np.float64) * bins).astype(int), 1, bins) - 1
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].astype(np.float64).mean())
    return total


def fuse(levels, mode, w, tau_t, tau_i):
    if mode == "mean-prob":
        used = [(p, wi) for p, wi in zip(levels, w) if p is not None and wi != 0]
        return sum(p * wi for p, wi in used) / sum(wi for _, wi in used)
    taus = [1.0, tau_t, tau_i]
    z = sum(wi * t * np.log(np.maximum(p, 1e-30)) for p, wi, t in zip(levels, w, taus) if p is not None and wi != 0)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def top_k_quality(p, y, k):
    conf, pred = p.max(1), p.argmax(1)
    order = np.argsort(-conf, kind="stable")[:k]
    if k == 0:
        return None
    return float((pred[order] == y[order]).mean())


def main(run_dir):
    info = json.load(open(f"{run_dir}/run.json"))
    classes = info["classes"]
    cid = [CANONICAL.index(c) for c in classes]
    shards = pd.concat(pd.read_parquet(p, columns=["id", "label", "votes"]) for p in sorted(glob.glob(info["shards"] + "/part-*.parquet")))
    split = pd.read_parquet(info["split"])
    labeled = split[split.role == "labeled"].merge(shards, on="id")
    prior = np.array([(labeled.label == c).sum() for c in cid], dtype=float)
    prior = prior / prior.sum()
    out = []
    for path in sorted(glob.glob(f"{run_dir}/pseudo_labels/epoch-*.parquet")):
        df = pd.read_parquet(path).merge(shards, on="id", how="inner")
        df = df[df.label.isin(cid)]
        y = df.label.map({c: i for i, c in enumerate(cid)}).to_numpy()
        thr = info["threshold"]
        P = {k: np.stack(df[k].to_numpy()).astype(np.float32) for k in LEVELS}
        res = {"epoch": int(df.epoch.iloc[0]), "rows": len(df), "levels": {}}
        pred = {k: P[k].argmax(1) for k in LEVELS}
        for k in LEVELS:
            conf = P[k].max(1)
            sel = conf > thr
            correct = pred[k] == y
            res["levels"][NAMES[k]] = {
                "accuracy": float(correct.mean()),
                "quantity": float(sel.mean()),
                "quality": float(correct[sel].mean()) if sel.any() else None,
                "ece": ece(conf, correct),
                "sweep_0.9": float(correct[conf > 0.9].mean()) if (conf > 0.9).any() else None,
            }
        lv = ["p_sem", "p_text", "p_ins"]
        res["pairs"] = {f"{NAMES[a]}~{NAMES[b]}": float((pred[a] == pred[b]).mean()) for i, a in enumerate(lv) for b in lv[i + 1:]}
        agree = (pred["p_sem"] == pred["p_text"]) & (pred["p_sem"] == pred["p_ins"])
        fcorrect = pred["p_fused"] == y
        res["all"] = float(agree.mean())
        res["acc_agree"] = float(fcorrect[agree].mean())
        res["acc_disagree"] = float(fcorrect[~agree].mean())
        fconf = P["p_fused"].max(1)
        sel = fconf > thr
        res["per_class"] = []
        for i, name in enumerate(classes):
            predicted = sel & (pred["p_fused"] == i)
            hits = predicted & (y == i)
            res["per_class"].append({
                "class": name,
                "precision": float(hits.sum() / predicted.sum()) if predicted.any() else None,
                "recall": float(hits.sum() / (y == i).sum()) if (y == i).any() else None,
                "pseudo_share": float(predicted.sum() / sel.sum()) if sel.any() else None,
                "labeled_prior": float(prior[i]),
                "true_share": float((y == i).mean()),
            })
        res["confusion"] = pd.crosstab(pd.Categorical(y, range(len(classes))), pd.Categorical(pred["p_fused"], range(len(classes))), dropna=False).to_numpy().tolist()
        # Second choice: for each wrong row, the class with most votes other than the true one.
        V = np.stack(df.votes.to_numpy())[:, cid].astype(float)
        wrong, second, zero = 0, 0, 0
        for r in np.nonzero(~fcorrect)[0]:
            v = V[r].copy()
            v[y[r]] = -1
            if v.max() <= 0:
                continue
            wrong += 1
            p = pred["p_fused"][r]
            second += int(V[r][p] > 0 and V[r][p] == v.max())
            zero += int(V[r][p] == 0)
        res["votes"] = {"wrong": wrong, "second_choice": second, "no_vote": zero}
        f = info["fusion"]
        k = int(sel.sum())
        levels3 = [P["p_sem"], P["p_text"], P["p_ins"]]
        res["what_if"] = {
            "selected": k,
            "baseline": float(fcorrect[sel].mean()) if k else None,
            "mean-prob 0.50/0.50/0.00": top_k_quality(fuse(levels3, "mean-prob", [0.5, 0.5, 0.0], f["tau_text"], f["tau_ins"]), y, k),
            "weighted-logit 0.30/0.20/0.50": top_k_quality(fuse(levels3, "weighted-logit", [0.3, 0.2, 0.5], f["tau_text"], f["tau_ins"]), y, k),
            "mean-prob 0.00/0.00/1.00": top_k_quality(P["p_ins"], y, k),
        }
        out.append(res)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
