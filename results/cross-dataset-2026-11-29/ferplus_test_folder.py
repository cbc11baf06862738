"""Builds the folder dataset of the cross-dataset table: FERPlus's test faces (FER2013Test PNGs, the majority
labels `shard ferplus` assigned) as <out>/test/<class>/<file>.png symlinks, contempt left out, so that the
folder source (`shard folder`) and a 7-class dataset are exercised on faces whose in-domain score is known.

usage: python ferplus_test_folder.py FERPLUS_DIR SHARD_DIR OUT
"""
import glob
import os
import sys

import pyarrow.parquet as pq

ferplus, shards, out = sys.argv[1:4]
names = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
n = 0
for part in sorted(glob.glob(os.path.join(shards, "part-*.parquet"))):
    t = pq.read_table(part, columns=["split", "label", "source_path"]).to_pylist()
    for r in t:
        if r["split"] != "test" or r["label"] is None or r["label"] >= 7:
            continue
        d = os.path.join(out, "test", names[r["label"]])
        os.makedirs(d, exist_ok=True)
        dst = os.path.join(d, os.path.basename(r["source_path"]))
        if not os.path.lexists(dst):
            os.symlink(os.path.abspath(os.path.join(ferplus, r["source_path"])), dst)
        n += 1
print(f"{n} faces in {out}/test/<class>/")
