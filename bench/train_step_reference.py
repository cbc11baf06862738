"""PyTorch-eager reference of one SIT-FER training step, for the train-step benchmark (issue: train).

Same work as crates/train/src/run.rs's step: one forward of labeled-weak + unlabeled-weak + unlabeled-strong
through ResNet-18 (torchvision layout, written out here since torchvision is not installed), dropout + L2
feature, classifier, text projection; text level against fixed prototypes; instance level as one matrix
product + per-class masked max over a memory bank; mean-prob fusion, threshold mask; L_s + L_t + L_u; Adam;
bank update. Prints images/s.

Two input modes:
- bare (default): random tensors, no augmentation: the step alone;
- with a shard folder as 5th argument: the faces of that folder, decoded once, and each step's batch made by
  a DataLoader whose THREADS worker processes apply torchvision's weak view and RandAugment + Cutout strong view
  (bench/loader_reference.py's transforms), as a PyTorch user trains; the step keeps THREADS threads, as ours
  shares its cores between the step and the augmentation.

Precision as `run.precision` / `run.channels_last` set it in ours: REF_PRECISION=bf16 runs the forward under
torch.autocast("cpu", bfloat16) with the outputs cast back to fp32; REF_CHANNELS_LAST=1 puts the model and the
inputs in channels-last.

usage: python bench/train_step_reference.py [SIZE=64] [BATCH=16] [STEPS=20] [THREADS=2] [SHARD_DIR]
"""
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loader_reference import decode, read_images, views  # noqa: E402

size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
b = int(sys.argv[2]) if len(sys.argv) > 2 else 16
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 20
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
shard_dir = sys.argv[5] if len(sys.argv) > 5 else None
bf16 = os.environ.get("REF_PRECISION", "fp32") == "bf16"
channels_last = os.environ.get("REF_CHANNELS_LAST", "0") == "1"
torch.set_num_threads(threads)
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
if channels_last:
    net = net.to(memory_format=torch.channels_last)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
protos = F.normalize(torch.randn(C, D), dim=1)
bank = F.normalize(torch.randn(N, 512), dim=1)
bank_y = torch.randint(0, C, (N,))
class_of = torch.arange(C)[:, None] == bank_y[None, :]


class Views(torch.utils.data.Dataset):
    """One labeled face's weak view, one unlabeled face's weak and strong views (random faces of the folder)."""

    def __init__(self, images):
        self.images = images
        self.weak, self.strong, self.finish = views(size)

    def __len__(self):
        return 10 ** 9

    def __getitem__(self, i):
        lab, unl = self.images[i % len(self.images)], self.images[(i * 7919 + 1) % len(self.images)]
        return self.finish(self.weak(lab)), self.finish(self.weak(unl)), self.finish(self.strong(unl))


def batches():
    if shard_dir is None:
        while True:
            yield torch.randn(3 * b, 3, size, size)
    images = [decode(data, ch, size) for data, ch in read_images(shard_dir, 2000)]
    loader = torch.utils.data.DataLoader(
        Views(images), batch_size=b, num_workers=threads, shuffle=False, persistent_workers=True,
        worker_init_fn=lambda _: torch.set_num_threads(1), prefetch_factor=4)
    for xl, xw, xs in loader:
        yield torch.cat([xl, xw, xs])


def step(x):
    y = torch.randint(0, C, (b,))
    idx = torch.randint(0, N, (b,))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        h, z, g = net(x)
    h, z, g = h.float(), z.float(), g.float()
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
inputs = batches()
for _ in range(3):
    step(next(inputs))
t = time.perf_counter()
for _ in range(steps):
    step(next(inputs))
e = time.perf_counter() - t
mode = f"torchvision augmentation in {threads} DataLoader workers" if shard_dir else "random inputs"
layout = ", channels-last" if channels_last else ""
print(f"pytorch eager SIT-FER step ({mode}, {'bf16' if bf16 else 'fp32'}{layout}): {size} px, {b}+{b}+{b}, {steps} steps: {e / steps:.3f} s/step, "
      f"{3 * b * steps / e:.1f} img/s")
