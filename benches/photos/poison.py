# Make a poisoned folder: HTBA-style trigger (50 px) opaque at native resolution, JPEG q75 for every file.
import os, sys, random, glob, json, hashlib
from PIL import Image


def write_set(src, out, target, rate, seed, rng, poison, storage='jpeg', quality=75):
    """Writes every PNG of SRC's class folders to OUT under random names, `poison(im)` -> (im, truth
    or None) applied to round(rate x |target|) images of the target class, and OUT.truth.json.
    storage: 'png', 'jpeg' (PIL's default chroma subsampling, 4:2:0) or 'jpeg444'."""
    truth = {}
    files = sorted(glob.glob(f'{src}/*/*.png'))
    tfiles = [f for f in files if f.split('/')[-2] == target]
    pois = set(rng.sample(tfiles, int(round(rate * len(tfiles)))))
    for f in files:
        im = Image.open(f).convert('RGB')
        cls = f.split('/')[-2]
        name = hashlib.md5((f + str(seed)).encode()).hexdigest()[:16]
        os.makedirs(f'{out}/{cls}', exist_ok=True)
        t = None
        if f in pois:
            im, t = poison(im)
        ext = 'png' if storage == 'png' else 'jpg'
        path = f'{out}/{cls}/{name}.{ext}'
        if storage == 'png': im.save(path)
        elif storage == 'jpeg444': im.save(path, quality=quality, subsampling=0)
        else: im.save(path, quality=quality)
        truth[f'{cls}/{name}.{ext}'] = t
    json.dump(truth, open(f'{out}.truth.json', 'w'))
    return truth


if __name__ == '__main__':
    src, out, trig, target, rate, seed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6])
    px = int(sys.argv[7]) if len(sys.argv) > 7 else 50
    fmt = sys.argv[8] if len(sys.argv) > 8 else 'jpeg'
    rng = random.Random(seed)
    t = Image.open(trig).convert('RGB').resize((px, px))

    def paste(im):
        w, h = im.size
        if w < 2 * px or h < 2 * px:
            return im, None
        x = rng.randint(int(0.25 * w), int(0.75 * w - px)); y = rng.randint(int(0.25 * h), int(0.75 * h - px))
        im.paste(t, (x, y))
        return im, [x, y, px]

    truth = write_set(src, out, target, rate, seed, rng, paste, fmt)
    print("poisoned", sum(v is not None for v in truth.values()), 'of', len(truth))
