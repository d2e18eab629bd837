"""Does the photo index's reduce fit an existing engine? An experiment for the sharded scan
(issue: past one machine), not a part of the crate.

Reads a recurrence index cache (`recurrence-*.idx`, written by `poisoncam scan --cache DIR`),
writes its entries as Parquet, and runs the reduce's first two steps as SQL on Apache DataFusion
under a memory limit: the buckets' image counts (a GROUP BY key with the scan's bounds) and the
rows of the buckets within them (a semi-join), whose signatures the island test then reads.
`--copies C` repeats the entries C times as other images with re-hashed keys, so that buckets
keep their sizes while the rows grow C-fold.

  python3 benches/shard/reduce_probe.py CACHE.idx IMAGES WORK [--copies C] [--memory-gib 1]
      [--reuse] [--no-order] [--key-part K/P] [--partitions P]

`--reuse` queries the Parquet already in WORK; `--no-order` streams the semi-join unsorted;
`--key-part K/P` keeps the keys with `key % P = K` only (one key-hash partition of P); with
`--partitions P` the entries are written as P folders by `key % P` (`WORK/p=K/`), and
`--key-part K/P` then reads folder K alone, as a reduce of one partition would.

Needs pyarrow and datafusion (pip).
"""
import argparse
import glob
import os
import shutil
import struct
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext

p = argparse.ArgumentParser()
p.add_argument("cache")
p.add_argument("images", type=int)
p.add_argument("work")
p.add_argument("--copies", type=int, default=1)
p.add_argument("--memory-gib", type=float, default=1.0)
p.add_argument("--reuse", action="store_true")
p.add_argument("--no-order", action="store_true")
p.add_argument("--key-part", default=None)
p.add_argument("--partitions", type=int, default=1)
a = p.parse_args()
images = a.images * a.copies

if not a.reuse:
    raw = open(a.cache, "rb").read()
    chunks, at = [], 0
    while at + 24 <= len(raw):
        magic, first, count, windows, n = struct.unpack_from("<IIIQI", raw, at)
        if magic != 0x70636931:
            break
        chunks.append(np.frombuffer(raw, dtype="<u4", count=4 * n, offset=at + 24).reshape(n, 4))
        at += 24 + 16 * n + 8
    e = np.concatenate(chunks)
    del raw, chunks
    print(f"{len(e):,} entries over {a.images:,} images ({len(e) / a.images:.0f} an image)")

    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    t = time.time()
    for c in range(a.copies):
        key = e[:, 0] if c == 0 else (e[:, 0] * np.uint32(0x9E3779B1) + np.uint32((c * 0x85EBCA6B) % 2**32)).astype(np.uint32)
        image = e[:, 1] + np.uint32(c * a.images)
        part_of = key % a.partitions
        for k in range(a.partitions):
            keep = part_of == k
            table = pa.table({"key": key[keep], "image": image[keep], "place": e[keep, 2], "signature": e[keep, 3]})
            folder = a.work if a.partitions == 1 else f"{a.work}/p={k}"
            os.makedirs(folder, exist_ok=True)
            pq.write_table(table, f"{folder}/part-{c:04}.parquet", compression="zstd", row_group_size=1 << 20)
    written = sum(os.path.getsize(f) for f in glob.glob(f"{a.work}/**/*.parquet", recursive=True))
    print(f"Parquet (zstd): {written / images:.0f} bytes an image, {written / 2**20:.0f} MiB, written in {time.time() - t:.1f} s")

runtime = RuntimeEnvBuilder().with_disk_manager_os().with_fair_spill_pool(int(a.memory_gib * 2**30))
ctx = SessionContext(SessionConfig().with_target_partitions(2), runtime)
table_path = a.work
if a.key_part and a.partitions > 1:
    k, parts = map(int, a.key_part.split("/"))
    table_path = f"{a.work}/p={k}"
ctx.register_parquet("entries", table_path)
low, high = 5, int(0.2 * images)
part = "TRUE"
if a.key_part:
    k, parts = map(int, a.key_part.split("/"))
    part = f"key % {parts} = {k}"
buckets = f"SELECT key FROM entries WHERE {part} GROUP BY key HAVING COUNT(*) BETWEEN {low} AND {high}"
order = "" if a.no_order else " ORDER BY e.key, e.image"
for name, sql in [
    ("bucket counts", f"SELECT key, COUNT(*) AS n FROM entries WHERE {part} GROUP BY key HAVING COUNT(*) BETWEEN {low} AND {high}"),
    ("rows of those buckets", f"SELECT e.key, e.image, e.place, e.signature FROM entries e WHERE {part} AND e.key IN ({buckets}){order}"),
]:
    t = time.time()
    # Streamed and dropped batch by batch, as the island test would read the buckets in key order.
    rows = sum(batch.to_pyarrow().num_rows for batch in ctx.sql(sql).execute_stream())
    print(f"{name}: {rows:,} rows in {time.time() - t:.2f} s")
