"""dlib's own landmarks + get_face_chip per second on one core, on the bench's cases (bench/face_align.sh).

    python face_align_reference.py MODEL_DIR DIR N
"""
import json
import sys
import time

import dlib
import numpy as np
from PIL import Image


def main():
    model_dir, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sp = dlib.shape_predictor(f"{model_dir}/shape_predictor_5_face_landmarks.dat")
    cases = json.load(open(f"{d}/cases.json"))
    loaded = [(np.asarray(Image.open(c["image"]).convert("RGB")), dlib.rectangle(*c["box"])) for c in cases]
    start = time.perf_counter()
    checksum = 0
    for _ in range(n):
        for img, box in loaded:
            shape = sp(img, box)
            checksum += int(dlib.get_face_chip(img, shape, size=150, padding=0.25)[75, 0, 0])
    secs = time.perf_counter() - start
    print(f"align dlib cases {len(loaded)} repeats {n}: {len(loaded) * n / secs:.1f} faces/s (checksum {checksum})")


if __name__ == "__main__":
    main()
