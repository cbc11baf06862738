"""Reference for the text-encoding benchmark: sentence-transformers encoding the same description set.

usage: python bench/embed_text_reference.py MODEL_DIR EMBEDDINGS.parquet
Reads the sentences our embed-text wrote (so both sides encode the same list), encodes them in one batch of
64 like ours, prints the encode seconds (model load excluded, as in ours) and the lowest cosine to our vectors.
"""
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import torch
from sentence_transformers import SentenceTransformer

torch.set_num_threads(2)
model = SentenceTransformer(sys.argv[1], device="cpu")
t = pq.read_table(sys.argv[2]).to_pydict()
model.encode(t["description"][:2])  # warm-up, as our binary's first call also pays libtorch's start
s = time.perf_counter()
v = model.encode(t["description"], batch_size=64, convert_to_numpy=True)
e = time.perf_counter() - s
ours = np.array(t["vector"], dtype=np.float32)
cos = (ours * v).sum(1) / np.linalg.norm(v, axis=1)
print(f"reference encode {e:.4f} s for {len(v)} sentences, min cosine to ours {cos.min():.6f}")
