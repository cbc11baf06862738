"""Golden vectors for the MiniLM parity test (crates/embed-text/tests/it/minilm_golden.rs).

Encodes a fixed list of sentences with sentence-transformers (the reference implementation of
all-MiniLM-L6-v2: tokenizer, BERT, masked mean pooling, Normalize) from the same model folder `make setup`
installs, and writes tests/fixtures/minilm_golden.json. Rerun only when the sentence list changes:

    .venv-torch/bin/python crates/embed-text/reference/minilm_golden.py .text-model \
        crates/embed-text/tests/fixtures/minilm_golden.json
"""
import json
import sys

import torch
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "This is a face image of happiness.",
    "A smiling face: the cheeks are raised and the lip corners pulled up and back.",
    "A surprised face: the eyebrows are raised high and curved, and the upper eyelids are lifted.",
    "A disgusted face: the nose is wrinkled and the upper lip raised.",
    "contempt",
    "Un visage étonné — les sourcils levés, bouche ouverte (AU1+2+5+26)!",
    # Longer than the model's 256-token context: both sides must truncate the same way.
    " ".join(["The inner brows rise while the lip corners are pulled down and the chin boss pushes up."] * 20),
]


def main(model_dir, out):
    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    tokens = [len(model.tokenizer(s, truncation=False)["input_ids"]) for s in SENTENCES]
    data = {
        "model": "all-MiniLM-L6-v2 via sentence-transformers",
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "untruncated_tokens": tokens,
        "vectors": [[round(float(x), 7) for x in v] for v in vectors],
    }
    with open(out, "w") as f:
        json.dump(data, f)
        f.write("\n")
    print(f"wrote {out}: {len(SENTENCES)} sentences, dim {vectors.shape[1]}, tokens {tokens}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
