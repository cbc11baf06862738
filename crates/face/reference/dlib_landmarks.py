"""Reference for the face stage's golden tests: dlib itself (the dlib-bin wheel) on the same pictures.

    python dlib_landmarks.py MODEL_DIR CASES.json

CASES.json: [{"image": "a.png", "box": [left, top, right, bottom]}, ...]. Prints, as JSON, per case the five
landmarks dlib's shape_predictor_5_face_landmarks gives in that box, [[x, y], ...]. Grey PNGs are read as
grey (dlib then reads the value), RGB as RGB (dlib reads the channels' mean). A case with "chip":
{"size": S, "padding": P, "out": "c.png"} also writes dlib.get_face_chip of those landmarks (RGB pictures).
"""
import json
import sys

import dlib
import numpy as np
from PIL import Image


def main():
    model_dir, cases_path = sys.argv[1], sys.argv[2]
    sp = dlib.shape_predictor(f"{model_dir}/shape_predictor_5_face_landmarks.dat")
    out = []
    for case in json.load(open(cases_path)):
        img = Image.open(case["image"])
        arr = np.asarray(img.convert("L" if img.mode in ("L", "I;16") else "RGB"))
        left, top, right, bottom = case["box"]
        shape = sp(arr, dlib.rectangle(left, top, right, bottom))
        out.append([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)])
        if "chip" in case:
            c = case["chip"]
            chip = dlib.get_face_chip(arr, shape, size=c["size"], padding=c["padding"])
            Image.fromarray(chip).save(c["out"])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
