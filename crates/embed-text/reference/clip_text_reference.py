"""Independent computation for the clip-text encoder test (crates/embed-text/tests/clip_text.rs).

Loads the tiny random CLIP text checkpoint the test wrote (model.safetensors, config.json, tokenizer.json)
into Hugging Face transformers' CLIPTextModelWithProjection, encodes each sentence on its own (no padding),
L2-normalises `text_embeds`, and prints {"ids": [...], "vectors": [...]} as JSON.

usage: python clip_text_reference.py MODEL_DIR SENTENCES.json
"""
import json
import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import CLIPTextConfig, CLIPTextModelWithProjection


def main(model_dir, sentences_path):
    torch.set_num_threads(1)
    cfg = json.load(open(f"{model_dir}/config.json"))
    config = CLIPTextConfig(**{k: v for k, v in cfg.items() if k != "model_type"})
    model = CLIPTextModelWithProjection(config).eval()
    model.load_state_dict(load_file(f"{model_dir}/model.safetensors"), strict=True)
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(config.max_position_embeddings)
    ids, vectors = [], []
    with torch.no_grad():
        for s in json.load(open(sentences_path)):
            enc = tok.encode(s).ids
            out = model(input_ids=torch.tensor([enc])).text_embeds[0]
            ids.append(enc)
            vectors.append((out / out.norm()).tolist())
    print(json.dumps({"ids": ids, "vectors": vectors}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
