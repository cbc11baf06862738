"""ONNX Runtime on a model `train export --format onnx` wrote: the independent side of the ONNX golden test
(crates/train/tests/it/onnx.rs) and of the demo's serving check.

Checks the file with onnx's full checker (shape inference included) first, then:

  logits MODEL INPUT.npy OUT.npy
      runs the model on a preprocessed float32 batch [B, 3, S, S] and writes its logits [B, C].

  accuracy MODEL SHARDS_DIR SPLIT.parquet ROLE [PREDICTIONS.parquet]
      preprocesses the role's faces itself, from the shards' image bytes and the model's metadata (PIL
      decoding, grey or RGB, the card's triangle-filter resize, /255, mean/std), runs the model, and prints
      one JSON object:
      faces, accuracy, and, given the table `train predict` wrote for the same faces, how many predictions
      differ and the largest |probability| difference. Nothing here comes from the Rust code.

Decoding is PIL's: 8-bit PNGs decode as the loader's do; 16-bit images are refused (image-rs scales them,
PIL clips), and a JPEG decoder may differ from zune-jpeg in a few pixels.
"""
import glob
import io
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow.parquet as pq
from PIL import Image


def session(path):
    onnx.checker.check_model(onnx.load(path), full_check=True)
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def run(sess, x, batch=256):
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def taps(n_in, n_out):
    """The model card's resize along one axis: a triangle filter over source pixel centres, widened by the
    scale when shrinking, weights normalised to sum 1 (float32, in source order)."""
    f32 = np.float32
    ratio = f32(n_in) / f32(n_out)
    sratio = max(ratio, f32(1.0))
    support = f32(1.0) * sratio
    out = []
    for o in range(n_out):
        centre = (f32(o) + f32(0.5)) * ratio
        left = min(max(int(np.floor(centre - support)), 0), n_in - 1)
        right = min(max(int(np.ceil(centre + support)), left + 1), n_in)
        ws = [max(f32(0.0), f32(1.0) - abs((f32(i) - (centre - f32(0.5))) / sratio)) for i in range(left, right)]
        total = f32(0.0)
        for w in ws:
            total = f32(total + w)
        out.append((left, [f32(w / total) for w in ws]))
    return out


def resample(a, axis, n_out):
    """`a` (float32) resampled along `axis`, the weighted sum accumulated tap by tap from zero."""
    a = np.moveaxis(a, axis, 0)
    out = np.zeros((n_out,) + a.shape[1:], np.float32)
    for o, (left, ws) in enumerate(taps(a.shape[0], n_out)):
        for k, w in enumerate(ws):
            out[o] = out[o] + a[left + k] * w
    return np.moveaxis(out, 0, axis)


def resize(img, size):
    """Rows first into float32, then columns, rounded half away from zero and clamped to 0..255."""
    a = resample(img.astype(np.float32), 0, size)
    a = resample(a, 1, size)
    return np.clip(np.sign(a) * np.floor(np.abs(a) + 0.5), 0, 255).astype(np.uint8)


def preprocess(image_bytes, meta):
    size, grey = int(meta["image_size"]), meta["grey"] == "true"
    mean = np.array([float(v) for v in meta["mean"].split(",")], np.float32).reshape(3, 1, 1)
    std = np.array([float(v) for v in meta["std"].split(",")], np.float32).reshape(3, 1, 1)
    img = Image.open(io.BytesIO(image_bytes))
    if img.mode not in ("L", "RGB", "RGBA", "P", "LA"):
        sys.exit(f"image mode {img.mode}: only 8-bit images are compared with the loader")
    if grey and img.mode != "L":
        # The card's grey: sRGB luma, (2126 R + 7152 G + 722 B) / 10000 rounded down.
        rgb = np.asarray(img.convert("RGB"), np.uint32)
        img = ((rgb @ np.array([2126, 7152, 722], np.uint32)) // 10000).astype(np.uint8)
    else:
        img = np.asarray(img.convert("L" if grey else "RGB"))
    if img.shape[:2] != (size, size):
        img = resize(img, size)
    a = img.astype(np.float32) / 255.0
    a = np.repeat(a[None], 3, 0) if grey else a.transpose(2, 0, 1)
    return (a - mean) / std


def accuracy(model, shards, split, role, predictions=None):
    sess = session(model)
    meta = {p.key: p.value for p in onnx.load(model, load_external_data=False).metadata_props}
    classes = meta["classes"].split(",")
    roles = pq.read_table(split).to_pandas()
    wanted = set(roles.loc[roles["role"] == role, "id"])
    ids, xs, labels = [], [], []
    for part in sorted(glob.glob(f"{shards}/part-*.parquet")):
        t = pq.read_table(part, columns=["id", "label", "image"]).to_pandas()
        for r in t[t["id"].isin(wanted)].itertuples():
            ids.append(r.id)
            xs.append(preprocess(r.image, meta))
            labels.append(int(r.label))
    p = softmax(run(sess, np.stack(xs).astype(np.float32)))
    # Shard labels index the canonical class list (exchange's labels::ALL, in that order); the model's classes
    # are names in that list.
    canonical = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    predicted = [classes[k] for k in p.argmax(1)]
    truth = [canonical[l] for l in labels]
    out = {"faces": len(ids), "accuracy": float(np.mean([a == b for a, b in zip(predicted, truth)]))}
    if predictions:
        theirs = pq.read_table(predictions).to_pandas().set_index("id").loc[ids]
        out["predictions_differing"] = int(sum(a != b for a, b in zip(predicted, theirs["predicted"])))
        out["max_abs_probability_difference"] = float(np.abs(np.stack(theirs["p_sem"].to_numpy()) - p).max())
        out["predict_accuracy"] = float(np.mean([a == b for a, b in zip(theirs["predicted"], truth)]))
    print(json.dumps(out))


def main(argv):
    if len(argv) == 4 and argv[0] == "logits":
        np.save(argv[3], run(session(argv[1]), np.load(argv[2]).astype(np.float32)))
    elif len(argv) in (5, 6) and argv[0] == "accuracy":
        accuracy(*argv[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
