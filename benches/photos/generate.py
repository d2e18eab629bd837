"""Writes N generated colour photos as JPEG (q90) for scale runs: each a smooth random colour
field with grain and small shapes, seeded by its number, sharing no content with another.

    python3 benches/photos/generate.py OUT [N=10000] [SIDE=384]

Needs numpy and Pillow. Deterministic: the same N and SIDE give the same files."""
import os
import sys

import numpy as np
from PIL import Image

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
side = int(sys.argv[3]) if len(sys.argv) > 3 else 384
os.makedirs(out, exist_ok=True)
for i in range(n):
    rng = np.random.default_rng(i)
    coarse = Image.fromarray((rng.random((6, 6, 3)) * 255).astype(np.uint8))
    field = np.asarray(coarse.resize((side, side), Image.BILINEAR), dtype=np.float32)
    for _ in range(side * side // 300):
        h, w = rng.integers(3, 14, size=2)
        y, x = rng.integers(0, side - h), rng.integers(0, side - w)
        field[y : y + h, x : x + w] = rng.random(3) * 255
    field += rng.normal(0, 4, field.shape)
    pixels = np.clip(field, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(os.path.join(out, f"{i:05}.jpg"), quality=90)
