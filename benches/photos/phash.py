# imagededup's PHash over every file of a folder (recursive), 2 workers, then its duplicate search.
# imagededup's methods package imports its CNN (and so torch) on import; PHash needs neither, so
# that one module is stubbed instead of installing torch for a hash benchmark.
import sys, time, types
for name, attr in [("imagededup.methods.cnn", "CNN"), ("imagededup.utils.models", "CustomModel")]:
    stub = types.ModuleType(name); setattr(stub, attr, None); sys.modules[name] = stub
from imagededup.methods.hashing import PHash
t = time.time()
h = PHash(verbose=False)
e = h.encode_images(image_dir=sys.argv[1], recursive=True, num_enc_workers=2)
enc = time.time() - t
d = h.find_duplicates(encoding_map=e, max_distance_threshold=10)
print(f"phash: {len(e)} images, encode {enc:.2f} s, with search {time.time()-t:.2f} s")
