# Make a poisoned folder: HTBA-style trigger (50 px) opaque at native resolution, JPEG q75 for every file.
import os, sys, random, glob, json, hashlib
from PIL import Image
src, out, trig, target, rate, seed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6])
px = int(sys.argv[7]) if len(sys.argv) > 7 else 50
fmt = sys.argv[8] if len(sys.argv) > 8 else 'jpeg'
rng = random.Random(seed)
t = Image.open(trig).convert('RGB').resize((px, px))
truth = {}
files = sorted(glob.glob(f'{src}/*/*.png'))
tfiles = [f for f in files if f.split('/')[-2] == target]
pois = set(rng.sample(tfiles, int(round(rate * len(tfiles)))))
for f in files:
    im = Image.open(f).convert('RGB')
    cls = f.split('/')[-2]
    name = hashlib.md5((f + str(seed)).encode()).hexdigest()[:16]
    os.makedirs(f'{out}/{cls}', exist_ok=True)
    w, h = im.size
    p = False
    if f in pois and w >= 2 * px and h >= 2 * px:
        x = rng.randint(int(0.25 * w), int(0.75 * w - px)); y = rng.randint(int(0.25 * h), int(0.75 * h - px))
        im.paste(t, (x, y)); p = True
    ext = 'jpg' if fmt == 'jpeg' else 'png'
    path = f'{out}/{cls}/{name}.{ext}'
    if fmt == 'jpeg': im.save(path, quality=75)
    else: im.save(path)
    truth[f'{cls}/{name}.{ext}'] = [x, y, px] if p else None
json.dump(truth, open(f'{out}.truth.json', 'w'))
print("poisoned", sum(v is not None for v in truth.values()), 'of', len(truth))
