"""Reference for `make bench`'s loader row: the same per-image work as
crates/train/examples/loader_throughput.rs, the way a PyTorch user writes it, on one thread:
decode (PIL: PNG bytes -> grey/RGB, bilinear resize to size x size, -> uint8 tensor) and both views
(weak: RandomCrop with padding applied with p 0.5 + horizontal flip; strong: RandAugment with 3 ops, then
Cutout as RandomErasing of a square, then the weak view; each ending as normalised float32 with 3 channels).

    python bench/loader_reference.py <shard dir> <n> <size>...
"""
import glob
import io
import sys
import time

import pyarrow.parquet as pq
import torch
from PIL import Image
from torchvision.transforms import v2

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def decode(data, channels, size):
    """PNG bytes -> uint8 tensor [1 or 3, size, size], PIL's bilinear resize."""
    img = Image.open(io.BytesIO(data)).convert("L" if channels == 1 else "RGB")
    return v2.functional.pil_to_tensor(img.resize((size, size), Image.BILINEAR))


def views(size):
    """(weak, strong, finish): the two views on a uint8 tensor, and the conversion to normalised float32."""
    pad = max(size // 16, 1)
    finish = v2.Compose([
        v2.Lambda(lambda x: x.expand(3, -1, -1) if x.shape[0] == 1 else x),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(MEAN, STD),
    ])
    weak = v2.Compose([
        v2.RandomApply([v2.RandomCrop(size, padding=pad, fill=128)], p=0.5),
        v2.RandomHorizontalFlip(),
    ])
    strong = v2.Compose([
        v2.RandAugment(num_ops=3, fill=128),
        v2.RandomErasing(p=1.0, scale=(0.0, 0.25), ratio=(1.0, 1.0), value=128),
        weak,
    ])
    return weak, strong, finish


def read_images(shard_dir, n):
    """(PNG bytes, channels) of the first n rows of the shard parts."""
    rows = []
    for part in sorted(glob.glob(f"{shard_dir}/part-*.parquet")):
        t = pq.read_table(part, columns=["image", "channels"])
        rows += list(zip(t.column("image").to_pylist(), t.column("channels").to_pylist()))
        if len(rows) >= n:
            break
    return rows[:n]


def main():
    shard_dir, n, sizes = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = read_images(shard_dir, n)
    for size in sizes:
        t0 = time.perf_counter()
        images = [decode(data, channels, size) for data, channels in rows]
        decode_s = time.perf_counter() - t0
        weak, strong, finish = views(size)
        t0 = time.perf_counter()
        checksum = 0.0
        for x in images:
            w = finish(weak(x))
            s = finish(strong(x))
            checksum += float(w[0, 0, 0]) + float(s[0, 0, 0])
        augment_s = time.perf_counter() - t0
        k = len(images)
        print(f"loader torchvision size {size} images {k} decode {k / decode_s:.0f} img/s "
              f"weak+strong {k / augment_s:.0f} img/s (checksum {checksum:.1f})")


if __name__ == "__main__":
    main()
