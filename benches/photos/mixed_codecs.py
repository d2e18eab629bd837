"""A clean photo folder stored as a mix of codecs, as scraped data is: 85% JPEG q75 4:2:0, 10% JPEG
q95 4:4:4, 5% PNG, chosen per file from SEED. Sub-folders are kept (class names).
Usage: python3 benches/photos/mixed_codecs.py SRC OUT SEED"""
import os, random, sys
from PIL import Image

src, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
for root, _, files in sorted(os.walk(src)):
    for name in sorted(files):
        path = os.path.join(root, name)
        try:
            im = Image.open(path).convert('RGB')
        except OSError:
            continue
        rel = os.path.relpath(root, src)
        os.makedirs(os.path.join(out, rel), exist_ok=True)
        stem = os.path.splitext(name)[0]
        draw = rng.random()
        if draw < 0.85:
            im.save(os.path.join(out, rel, stem + '.jpg'), quality=75, subsampling=2)
        elif draw < 0.95:
            im.save(os.path.join(out, rel, stem + '.jpg'), quality=95, subsampling=0)
        else:
            im.save(os.path.join(out, rel, stem + '.png'))
