# Hostile checkpoints for docs/hostile-inputs.md: each is twin18.pth (a ResNet-18 twin) with one
# thing changed, or a safetensors file with a broken header.
import os, struct, json, sys, zipfile
# Usage: python3 benches/hostile/make_checkpoints.py OUT  (docs/hostile-inputs.md, 2026-12-07)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
src = os.path.join(os.path.dirname(__file__), '../../tests/fixtures/resnet/twin18.pth')
zin = zipfile.ZipFile(src)
pkl_name = [n for n in zin.namelist() if n.endswith('data.pkl')][0]
entries = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
def with_pickle(dst, p):
    with zipfile.ZipFile(dst, 'w') as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name), p if name == pkl_name else data)
n = 1_000_000
with_pickle(out + '/nested-lists-1e6.pth', b'\x80\x02' + b'(' * n + b'l' * n + b'.')
m = 200_000
with_pickle(out + '/nested-lists-2e5.pth', b'\x80\x02' + b'(' * m + b'l' * m + b'.')
# STACK_GLOBAL builtins.exec
with_pickle(out + '/stack-global-exec.pth', b'\x80\x04\x8c\x08builtins\x8c\x04exec\x93\x8c\x0cprint("pwn")\x85R.')
# INST os system
with_pickle(out + '/inst.pth', b'(S"echo pwn"\nios\nsystem\n.')
# REDUCE hidden in a tensor rebuilder's arguments
real = zin.read(pkl_name)
hidden = b'\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(cposix\nsystem\nX\x03\x00\x00\x00lsx\x85Rtr.'
with_pickle(out + '/reduce-in-rebuild-args.pth', hidden)
# A cycle: a = []; b = [a]; a.append(b)
with_pickle(out + '/cycle.pth', b'\x80\x02]q\x00]h\x00aq\x010h\x00h\x01a.')
# Cut in the central directory
b = open(src, 'rb').read()
open(out + '/cut-central-dir.pth', 'wb').write(b[:-30])
# safetensors: header length 2^62; an overflowing shape; backwards offsets
open(out + '/header-2e62.safetensors', 'wb').write(struct.pack('<Q', 1 << 62) + b'{}')
def st(path, header, data=b''):
    h = json.dumps(header).encode()
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
st(out + '/shape-overflow.safetensors', {'conv1.weight': {'dtype': 'F32', 'shape': [2**40, 2**40], 'data_offsets': [0, 16]}}, bytes(16))
st(out + '/backwards-offsets.safetensors', {'conv1.weight': {'dtype': 'F32', 'shape': [2], 'data_offsets': [8, 0]}}, bytes(16))

# A zip bomb: the first storage entry replaced by 8 GiB of zeros, deflated (8.6 MB on disk).
with zipfile.ZipFile(out + '/inflates-8GiB.pth', 'w') as z:
    for name, data in entries:
        if name.endswith('/data/0'):
            zi = zipfile.ZipInfo(name); zi.compress_type = zipfile.ZIP_DEFLATED
            with z.open(zi, 'w', force_zip64=True) as f:
                block = bytes(1 << 24)
                for _ in range((8 << 30) // len(block)): f.write(block)
        else:
            z.writestr(zipfile.ZipInfo(name), data)
# A lying entry: 1 GiB of zeros whose central directory declares the 4,704 bytes the tensor needs.
with zipfile.ZipFile(out + '/lies-about-its-size.pth', 'w') as z:
    for name, data in entries:
        if name.endswith('/data/0'):
            zi = zipfile.ZipInfo(name); zi.compress_type = zipfile.ZIP_DEFLATED
            with z.open(zi, 'w') as f:
                block = bytes(1 << 24)
                for _ in range((1 << 30) // len(block)): f.write(block)
        else:
            z.writestr(zipfile.ZipInfo(name), data)
b = bytearray(open(out + '/lies-about-its-size.pth', 'rb').read())
name = [n for n, _ in entries if n.endswith('/data/0')][0].encode()
i = 0
while (i := b.find(name, i + 1)) > 0:
    start = i - 46
    if b[start:start + 4] == b'PK\x01\x02':
        struct.pack_into('<I', b, start + 24, len(dict(entries)[name.decode()]))
open(out + '/lies-about-its-size.pth', 'wb').write(b)
