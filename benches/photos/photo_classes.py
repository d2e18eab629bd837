# What sort_photos.py and aside.py share: each class's images, in a fixed order by path hash,
# saved as RGB PNG named by that hash, skipping unreadable ones and any under 96 px a side.
import hashlib, os
from PIL import Image


def name_of(path):
    return hashlib.md5(path.encode()).hexdigest()[:12]


def save_classes(groups, out, per_class):
    """Writes up to per_class images of each class to out/CLASS/; returns the count per class."""
    counts = {}
    for cls, paths in sorted(groups.items()):
        kept = 0
        for p in sorted(paths, key=name_of):
            try:
                im = Image.open(p); im.load()
            except Exception:
                continue
            if min(im.size) < 96:
                continue
            os.makedirs(f'{out}/{cls}', exist_ok=True)
            im.convert('RGB').save(f'{out}/{cls}/{name_of(p)}.png'); kept += 1
            if kept >= per_class:
                break
        counts[cls] = kept
    return counts
