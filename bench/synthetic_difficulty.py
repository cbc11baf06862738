"""Is the synthetic dataset hard enough to show what semi-supervision buys?

Trains the same small CNN, supervised only, on the labeled role of two splits (e.g. synthetic_10pct and
synthetic_full) for the same number of optimiser steps, picks the epoch on val, and prints test accuracy.
An independent PyTorch check used when tuning the generator (issue: shard); not part of the pipeline.

usage: python bench/synthetic_difficulty.py SHARD_DIR SPLIT_A.parquet SPLIT_B.parquet [steps]
environment: SIZE=32 resizes the faces first (the demo's input size); HEAD=paper puts SIT-FER's head on the net
(dropout 0.5, L2-normalised feature, linear) instead of dropout 0.3 + linear; RES=16 swaps the small CNN for a
ResNet-18 of that first-stage width with the small stem; BS=32 sets the batch (default 64).
Measured with it (1,200 steps, 32 px): small CNN 65.3 % (10 %) / 79.7 % (all labels); HEAD=paper 64.5 % / 68.2 %;
RES=16 HEAD=paper BS=32 57.9 % (10 %), as the Rust trainer's 56.6 %.
"""
import glob
import io
import os
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

torch.manual_seed(0)
torch.set_num_threads(2)


def load(shard_dir):
    ids, x, y = [], [], []
    for p in sorted(glob.glob(f"{shard_dir}/part-*.parquet")):
        t = pq.read_table(p, columns=["id", "label", "image"]).to_pydict()
        for i, l, b in zip(t["id"], t["label"], t["image"]):
            ids.append(i)
            y.append(l)
            x.append(np.asarray(Image.open(io.BytesIO(b)).convert("L"), dtype=np.float32) / 255.0)
    return {i: k for k, i in enumerate(ids)}, torch.tensor(np.stack(x))[:, None], torch.tensor(y)


class Norm(nn.Module):
    def forward(self, x):
        return F.normalize(x, dim=1)


class Block(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o)
        self.c2, self.b2 = nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
        self.d = None if (s == 1 and i == o) else nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.d is None else self.d(x)))


def head(dim):
    if os.environ.get("HEAD") == "paper":
        return [nn.Dropout(0.5), Norm(), nn.Linear(dim, 8)]
    return [nn.Dropout(0.3), nn.Linear(dim, 8)]


def net():
    if os.environ.get("RES"):
        w = int(os.environ["RES"])
        layers, i = [nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()], w
        for n, m in enumerate([1, 2, 4, 8]):
            layers += [Block(i, m * w, 1 if n == 0 else 2), Block(m * w, m * w, 1)]
            i = m * w
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), *head(8 * w))

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(block(1, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), *head(128))


def run(index, X, Y, split_path, steps):
    roles = pq.read_table(split_path).to_pydict()
    by = {r: torch.tensor([index[i] for i, rr in zip(roles["id"], roles["role"]) if rr == r]) for r in ["labeled", "val", "test"]}
    model = net()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    lab = by["labeled"]
    best = (-1, 0, 0)
    t0 = time.time()
    for step in range(1, steps + 1):
        model.train()
        idx = lab[torch.randint(len(lab), (int(os.environ.get("BS", 64)),))]
        xb = X[idx]
        if torch.rand(1) < 0.5:
            xb = xb.flip(3)
        xb = F.pad(xb, (3, 3, 3, 3), mode="replicate")
        dx, dy = torch.randint(0, 7, (2,))
        xb = xb[:, :, dy : dy + X.shape[2], dx : dx + X.shape[3]]
        loss = F.cross_entropy(model(xb), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % (steps // 10) == 0:
            model.eval()
            with torch.no_grad():
                acc = {r: (model(X[by[r]]).argmax(1) == Y[by[r]]).float().mean().item() for r in ["val", "test"]}
            if acc["val"] > best[0]:
                best = (acc["val"], acc["test"], step)
    return len(lab), best, time.time() - t0


def main():
    shard_dir, a, b = sys.argv[1:4]
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 1500
    index, X, Y = load(shard_dir)
    if os.environ.get("SIZE"):
        X = F.interpolate(X, size=int(os.environ["SIZE"]), mode="bilinear", antialias=True, align_corners=False)
    for split in [a, b]:
        n, (val, test, step), secs = run(index, X, Y, split, steps)
        print(f"{split}: {n} labels, best val {val:.3f} at step {step}, test {test:.3f} ({secs:.0f} s)")


if __name__ == "__main__":
    main()
