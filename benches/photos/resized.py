"""A poisoned photo folder resized after poisoning (a trigger no longer on its grid), with its truth
file copied. Usage: python3 benches/photos/resized.py SRC OUT SCALE"""
import os, shutil, sys
from PIL import Image

src, out, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
for root, _, files in sorted(os.walk(src)):
    for name in sorted(files):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, src)
        im = Image.open(path).convert('RGB')
        w, h = im.size
        os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
        im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC).save(os.path.join(out, rel))
if os.path.exists(src + '.truth.json'):
    shutil.copy(src + '.truth.json', out + '.truth.json')
