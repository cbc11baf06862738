"""Straightforward Python reference for `shard ferplus`: the same work, written the way one would in a notebook.

Reads FER+ label.csv for the three splits, applies the FER+ majority protocol, decodes each PNG with Pillow,
re-encodes it as PNG, and writes one Parquet file with pyarrow (zstd level 1, 1024-row row groups) with the
same columns as our shard schema. Used only by `make bench` to give our sharder a reference on the same
machine; never part of the pipeline.

usage: python bench/shard_reference.py FERPLUS_ROOT OUT.parquet
"""
import csv
import io
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

SPLITS = [("train", "FER2013Train"), ("valid", "FER2013Valid"), ("test", "FER2013Test")]


def majority(votes):
    v = [x if x > 1 else 0 for x in votes]
    s, m = sum(v), max(v)
    if m <= 0 or 2 * m <= s:
        return None
    arg = v.index(m)
    return arg if arg < 8 else None


def main(root, out):
    t0 = time.time()
    cols = {k: [] for k in ["id", "dataset", "split", "label", "votes", "image", "height", "width", "channels", "source_path"]}
    for split, folder in SPLITS:
        with open(f"{root}/{folder}/label.csv", newline="") as f:
            for row in csv.reader(f):
                name, votes = row[0], [int(x) for x in row[2:12]]
                label = majority(votes)
                if label is None:
                    continue
                img = Image.open(f"{root}/{folder}/{name}")
                img = img.convert("L") if img.mode in ("L", "LA", "I;16") else img.convert("RGB")
                buf = io.BytesIO()
                img.save(buf, format="PNG", compress_level=1)
                cols["id"].append(f"ferplus/{split}/{name.rsplit('.', 1)[0]}")
                cols["dataset"].append("ferplus")
                cols["split"].append(split)
                cols["label"].append(label)
                cols["votes"].append(votes)
                cols["image"].append(buf.getvalue())
                cols["height"].append(img.height)
                cols["width"].append(img.width)
                cols["channels"].append(1 if img.mode == "L" else 3)
                cols["source_path"].append(f"{folder}/{name}")
    table = pa.table(
        {
            **{k: cols[k] for k in ["id", "dataset", "split"]},
            "label": pa.array(cols["label"], pa.int32()),
            "votes": pa.array(cols["votes"], pa.list_(pa.int32())),
            "image": pa.array(cols["image"], pa.binary()),
            **{k: pa.array(cols[k], pa.int32()) for k in ["height", "width", "channels"]},
            "source_path": cols["source_path"],
        }
    )
    pq.write_table(table, out, compression="zstd", compression_level=1, row_group_size=1024)
    dt = time.time() - t0
    print(f"python reference: {table.num_rows} faces in {dt:.2f} s ({table.num_rows / dt:.0f} faces/s)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
