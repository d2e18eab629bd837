# The kept-aside set: images of the packages that sort_photos.py did not take, in their own classes.
import os, sys, hashlib, collections
from PIL import Image
src = os.environ.get('PHOTO_PKGS', '/tmp/pkgs'); out = sys.argv[1]; used_dir = sys.argv[2]
used = set()
for root, _, fs in os.walk(used_dir):
    used |= set(fs)
groups = collections.defaultdict(list)
for root, _, fs in os.walk(src):
    for f in sorted(fs):
        if not f.lower().endswith(('.jpg', '.jpeg', '.png')): continue
        p = os.path.join(root, f)
        if hashlib.md5(p.encode()).hexdigest()[:12] + '.png' in used: continue
        rel = root.replace(src + '/', '')
        if 'opencv4/html' in rel: cls = 'doc_' + hashlib.md5(rel.encode()).hexdigest()[0]  # 16 doc classes by folder
        elif 'nebulae' in rel: cls = 'nebulae_' + hashlib.md5(f.encode()).hexdigest()[0:1]
        elif 'skycultures' in rel: cls = 'sky_rest'
        else: cls = 'other'
        groups[cls].append(p)
n = 0
for cls, paths in sorted(groups.items()):
    kept = 0
    for p in sorted(paths, key=lambda p: hashlib.md5(p.encode()).hexdigest()):
        try:
            im = Image.open(p); im.load()
        except Exception: continue
        if min(im.size) < 96: continue
        os.makedirs(f'{out}/{cls}', exist_ok=True)
        im.convert('RGB').save(f'{out}/{cls}/{hashlib.md5(p.encode()).hexdigest()[:12]}.png'); kept += 1; n += 1
        if kept >= 40: break
print('total', n, len(groups), 'classes')
