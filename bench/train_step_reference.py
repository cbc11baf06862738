"""PyTorch-eager reference of one SIT-FER training step, for the train-step benchmark (issue: train).

Same work as crates/train/src/run.rs's step: one forward of labeled-weak + unlabeled-weak + unlabeled-strong
through ResNet-18 (torchvision layout, written out here since torchvision is not installed), dropout + L2
feature, classifier, text projection; text level against fixed prototypes; instance level as one matrix
product + per-class masked max over a memory bank; mean-prob fusion, threshold mask; L_s + L_t + L_u; Adam;
bank update. Random inputs (augmentation is timed separately on the Rust side). Prints images/s.

usage: python bench/train_step_reference.py [SIZE=64] [BATCH=16] [STEPS=20] [THREADS=2]
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
b = int(sys.argv[2]) if len(sys.argv) > 2 else 16
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 20
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
torch.manual_seed(0)
C, D, N = 8, 384, 2505


class Block(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, s, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.downsample = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o)) if s != 1 or i != o else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, i = [], 64
        for n, o in enumerate([64, 128, 256, 512]):
            layers += [Block(i, o, 1 if n == 0 else 2), Block(o, o, 1)]
            i = o
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, C)
        self.text_proj = nn.Linear(512, D)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        f = F.adaptive_avg_pool2d(self.layers(x), 1).flatten(1)
        h = F.normalize(F.dropout(f, 0.5, self.training), dim=1)
        return h, self.fc(h), self.text_proj(h)


net = Net()
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
protos = F.normalize(torch.randn(C, D), dim=1)
bank = F.normalize(torch.randn(N, 512), dim=1)
bank_y = torch.randint(0, C, (N,))
class_of = torch.arange(C)[:, None] == bank_y[None, :]


def step():
    x = torch.randn(3 * b, 3, size, size)
    y = torch.randint(0, C, (b,))
    idx = torch.randint(0, N, (b,))
    h, z, g = net(x)
    s_text = F.normalize(g, dim=1) @ protos.T
    l_s = F.cross_entropy(z[:b], y)
    l_t = F.cross_entropy(s_text[:b] / 0.1, y)
    with torch.no_grad():
        hw = h[b:2 * b]
        sims = hw @ bank.T
        s_ins = sims[:, None, :].masked_fill(~class_of[None], float("-inf")).amax(-1).clamp_min(0)
        p = (F.softmax(z[b:2 * b], 1) + F.softmax(s_text[b:2 * b] / 0.1, 1) + F.softmax(s_ins / 0.1, 1)) / 3
        conf, label = p.max(1)
        mask = (conf > 0.75).float()
    l_u = (F.cross_entropy(z[2 * b:], label, reduction="none") * mask).mean()
    loss = l_s + l_t + l_u
    opt.zero_grad()
    loss.backward()
    opt.step()
    bank[idx] = h[:b].detach()


net.train()
for _ in range(3):
    step()
t = time.perf_counter()
for _ in range(steps):
    step()
e = time.perf_counter() - t
print(f"pytorch eager SIT-FER step: {size} px, {b}+{b}+{b}, {steps} steps: {e / steps:.3f} s/step, {3 * b * steps / e:.1f} img/s")
