# Adds one photo repeated to a folder: four shifted crops and the photo at full and half size, for
# five photos of the sorted set, all as JPEG q75. None is a poison; they must be reported as
# duplicate groups and kept.
import sys, glob, os, random, json
from PIL import Image
src, out = sys.argv[1], sys.argv[2]
random.seed(3)
os.makedirs(f'{out}/dups', exist_ok=True)
truth = json.load(open(out + '.truth.json'))
k = 0
for p in sorted(glob.glob(f'{src}/photos/*.png')):
    im = Image.open(p).convert('RGB'); w, h = im.size
    if min(w, h) < 400: continue
    for j in range(4):
        dx, dy = random.randint(0, 40), random.randint(0, 40)
        im.crop((dx, dy, w - 40 + dx, h - 40 + dy)).save(f'{out}/dups/c{k}_{j}.jpg', quality=75)
        truth[f'dups/c{k}_{j}.jpg'] = None
    im.resize((w // 2, h // 2)).save(f'{out}/dups/r{k}_half.jpg', quality=75); truth[f'dups/r{k}_half.jpg'] = None
    im.save(f'{out}/dups/r{k}_full.jpg', quality=75); truth[f'dups/r{k}_full.jpg'] = None
    k += 1
    if k >= 5: break
json.dump(truth, open(out + '.truth.json', 'w'))
