"""Usage: python3 benches/photos/residual_groups.py FOLDER TRUTH_JSON
Does a shared residual component show as a top principal direction? Per folder: every image at
64x64 RGB, residual = image - gaussian blur (sigma 1.5), unit length; top-k eigenvectors of the
residual covariance (via the Gram matrix); for each, the projections of poisons vs clean."""
import json, sys, os, numpy as np
from PIL import Image, ImageFilter
folder, truth = sys.argv[1], sys.argv[2]
t = json.load(open(truth)) if os.path.exists(truth) else {}
ids, X = [], []
for root, _, files in sorted(os.walk(folder)):
    for f in sorted(files):
        p = os.path.join(root, f)
        try:
            im = Image.open(p).convert('RGB').resize((64, 64), Image.BILINEAR)
        except OSError:
            continue
        a = np.asarray(im, dtype=np.float32) / 255
        b = np.asarray(im.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32) / 255
        r = (a - b).ravel()
        r /= np.linalg.norm(r) + 1e-8
        ids.append(os.path.relpath(p, folder)); X.append(r)
X = np.array(X); n = len(X)
pois = np.array([bool(t.get(i)) for i in ids])
G = X @ X.T
w, V = np.linalg.eigh(G)
order = np.argsort(w)[::-1]
for k in order[:6]:
    u = X.T @ V[:, k]; u /= np.linalg.norm(u)
    proj = X @ u
    s = np.sign(np.median(proj[pois])) if pois.any() else 1
    proj *= s
    z = (proj - np.median(proj)) / (1.4826 * np.median(np.abs(proj - np.median(proj))) + 1e-9)
    top = np.argsort(-z)[:int(pois.sum()) or 40]
    print(f"eig {w[k]:.2f}  poisons in top-{len(top)}: {pois[top].sum()}  z poisons min/med {z[pois].min() if pois.any() else 0:.1f}/{np.median(z[pois]) if pois.any() else 0:.1f}  clean max {z[~pois].max():.1f}  clean>6: {(z[~pois]>6).sum()}")

# Group estimate: mutual 5-NN by residual cosine, excluding pairs whose content (8x8 thumbnails) agrees.
C = G.copy(); np.fill_diagonal(C, -1)
k = 5
nn = np.argsort(-C, axis=1)[:, :k]
mutual = [set(j for j in nn[i] if i in nn[j]) for i in range(n)]
seen = np.zeros(n, bool); comps = []
for i in range(n):
    if seen[i] or not mutual[i]: continue
    stack=[i]; comp=[]; seen[i]=True
    while stack:
        a=stack.pop(); comp.append(a)
        for b in mutual[a]:
            if not seen[b]: seen[b]=True; stack.append(b)
    comps.append(comp)
comps.sort(key=len, reverse=True)
for comp in comps[:5]:
    comp=np.array(comp)
    u = X[comp].mean(0); u/=np.linalg.norm(u)
    proj = X @ u
    z = (proj - np.median(proj)) / (1.4826*np.median(np.abs(proj-np.median(proj)))+1e-9)
    print(f"group {len(comp)}: poisons {pois[comp].sum()}  mean pair cos {C[np.ix_(comp,comp)][C[np.ix_(comp,comp)]>-1].mean():.3f}  z poisons min {z[pois].min() if pois.any() else 0:.1f}  clean max {z[~pois].max():.1f}  clean>8 {(z[~pois]>8).sum()} poisons>8 {(z[pois]>8).sum()}")
