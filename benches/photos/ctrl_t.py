# Per image: the signed t of Cr's DCT coefficient (15, 15) over the image's 32-px windows.
import sys, json, glob, numpy as np
from PIL import Image
d = sys.argv[1]; truth = json.load(open(d + '.truth.json'))
n = 32; u = np.arange(n)[:, None]; x = np.arange(n)[None, :]
B = np.sqrt(2 / n) * np.cos(np.pi * (2 * x + 1) * u / (2 * n)); B[0] /= np.sqrt(2)
out = {True: [], False: []}
for rel, t in truth.items():
    a = np.asarray(Image.open(f'{d}/{rel}').convert('RGB'), dtype=np.float64)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]; y = 0.299 * r + 0.587 * g + 0.114 * b; cr = (r - y) * 0.713
    h, w = cr.shape; c = []
    for i in range(0, h - n + 1, n):
        for j in range(0, w - n + 1, n):
            c.append(B[15] @ cr[i:i + n, j:j + n] @ B[15])
    c = np.array(c)
    if len(c) > 1: out[t is not None].append(c.mean() / (c.std(ddof=1) / np.sqrt(len(c)) + 1e-9))
p, q = np.array(out[True]), np.array(out[False])
print(f'poisons {len(p)}: t min {p.min():.1f} median {np.median(p):.1f}; clean {len(q)}: |t| max {np.abs(q).max():.1f} 99th {np.percentile(np.abs(q), 99):.1f}')
