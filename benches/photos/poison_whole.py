# Make a folder poisoned by a trigger without a patch, per its recipe (as src/sim/whole_image.rs):
#   python3 poison_whole.py SRC OUT ATTACK TARGET RATE SEED [PARAM] [STORAGE] [QUALITY]
# ATTACK: ctrl (PARAM magnitude, 100), blend-noise (alpha, 0.2), blend-image:FILE (alpha, 0.2),
# sig (delta, 20; f = 6), perturbation (bound, 8). STORAGE: png (default for ctrl), jpeg420 (PIL's
# default chroma subsampling; the default otherwise) or jpeg444. QUALITY: JPEG quality, 75.
# The truth file marks each poison with its whole image, [0, 0, max(w, h)].
import os, sys, random
import numpy as np
from PIL import Image
src, out, attack, target, rate, seed = sys.argv[1:6] + [int(sys.argv[6])]
rate = float(rate)
storage = sys.argv[8] if len(sys.argv) > 8 else ('png' if attack == 'ctrl' else 'jpeg420')
quality = int(sys.argv[9]) if len(sys.argv) > 9 else 75
kind, _, key_file = attack.partition(':')
param = float(sys.argv[7]) if len(sys.argv) > 7 else {'ctrl': 100, 'blend-noise': 0.2, 'blend-image': 0.2, 'sig': 20, 'perturbation': 8}[kind]
rng = random.Random(seed)
npr = np.random.default_rng(seed)

def basis(n=32):
    u = np.arange(n)[:, None]; x = np.arange(n)[None, :]
    m = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * x + 1) * u / (2 * n)); m[0] /= np.sqrt(2.0)
    return m
B = basis()

def ctrl(a, magnitude):
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + 128; cb = (b - y) * 0.564 + 128
    h, w = y.shape
    raise_ = magnitude * (np.outer(B[15], B[15]) + np.outer(B[31], B[31]))
    for ch in (cr, cb):
        for t in range(0, h - h % 32, 32):
            for l in range(0, w - w % 32, 32):
                ch[t:t + 32, l:l + 32] += raise_
    cr -= 128; cb -= 128
    return np.stack([y + 1.403 * cr, y - 0.714 * cr - 0.344 * cb, y + 1.773 * cb], -1)

key = None
if kind == 'blend-noise': key = Image.fromarray((npr.random((256, 256, 3)) * 255).astype(np.uint8))
if kind == 'blend-image': key = Image.open(key_file).convert('RGB')
if kind == 'perturbation': key = Image.fromarray(np.where(npr.random((256, 256, 3)) < 0.5, 0, 255).astype(np.uint8))

def poison(im):
    a = np.asarray(im, dtype=np.float64)
    h, w = a.shape[:2]
    if kind == 'ctrl':
        a = ctrl(a, param)
    elif kind in ('blend-noise', 'blend-image'):
        a = (1 - param) * a + param * np.asarray(key.resize((w, h), Image.BILINEAR), dtype=np.float64)
    elif kind == 'sig':
        a = a + param * np.sin(2 * np.pi * np.arange(w) * 6 / w)[None, :, None]
    elif kind == 'perturbation':
        sign = np.asarray(key.resize((w, h), Image.NEAREST), dtype=np.float64) / 255 * 2 - 1
        a = a + param * sign
    else:
        sys.exit(f'unknown attack {attack}')
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from poison import write_set
truth = write_set(src, out, target, rate, seed, rng, lambda im: (poison(im), [0, 0, max(im.size)]),
                  {'jpeg420': 'jpeg'}.get(storage, storage), quality)
print('poisoned', sum(v is not None for v in truth.values()), 'of', len(truth), 'with', attack, param, storage)
