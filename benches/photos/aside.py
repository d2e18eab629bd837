# The kept-aside set: images of the packages that sort_photos.py did not take, in their own classes.
import os, sys, hashlib, collections
from photo_classes import name_of, save_classes
src = os.environ.get('PHOTO_PKGS', '/tmp/pkgs'); out = sys.argv[1]; used_dir = sys.argv[2]
used = set()
for root, _, fs in os.walk(used_dir):
    used |= set(fs)
groups = collections.defaultdict(list)
for root, _, fs in os.walk(src):
    for f in sorted(fs):
        if not f.lower().endswith(('.jpg', '.jpeg', '.png')): continue
        p = os.path.join(root, f)
        if name_of(p) + '.png' in used: continue
        rel = root.replace(src + '/', '')
        if 'opencv4/html' in rel: cls = 'doc_' + hashlib.md5(rel.encode()).hexdigest()[0]  # 16 doc classes by folder
        elif 'nebulae' in rel: cls = 'nebulae_' + hashlib.md5(f.encode()).hexdigest()[0:1]
        elif 'skycultures' in rel: cls = 'sky_rest'
        else: cls = 'other'
        groups[cls].append(p)
counts = save_classes(groups, out, 40)
print('total', sum(counts.values()), len(groups), 'classes')
