#!/usr/bin/env python3
"""Writes tests/data/photos/ and tests/data/textures/: small JPEG copies of sample images that
scikit-image ships in skimage/data (`pip install scikit-image pillow`). Content photographs get a
shorter side of 160 px, style textures 128 px (Lanczos, quality 90)."""

import os

import skimage
from PIL import Image

SRC = os.path.join(os.path.dirname(skimage.__file__), "data")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "retina.jpg", "ihc.png"]
TEXTURES = {"brick.png": "brick", "grass.png": "grass", "gravel.png": "gravel",
            "coffee.png": "coffee-crop", "chelsea.png": "chelsea-crop"}


def save(src, dst, short):
    im = Image.open(os.path.join(SRC, src)).convert("RGB")
    w, h = im.size
    s = short / min(w, h)
    im.resize((round(w * s), round(h * s)), Image.LANCZOS).save(dst, quality=90)


def main():
    for sub in ("photos", "textures"):
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    for f in PHOTOS:
        save(f, os.path.join(OUT, "photos", os.path.splitext(f)[0] + ".jpg"), 160)
    for f, name in TEXTURES.items():
        save(f, os.path.join(OUT, "textures", name + ".jpg"), 128)


if __name__ == "__main__":
    main()
