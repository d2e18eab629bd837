"""Are a backdoor's poisons the densest members of their cluster? An experiment for the paste
test's probe choice (docs/encoder.md, 2026-12-04), not a part of the crate.

For each exported set and checkpoint (benches/peer/ssl_backdoor.py), embeds the training set,
runs spherical k-means with k = N/100 as the crate does, and for every cluster holding 5 or more
poisons ranks its members by the mean cosine similarity to their 5 nearest members. Prints how
many of the 4 densest are poisons, against the chance that 4 random probes (the crate's choice)
miss every poison.

  python3 benches/peer/probe_density.py /tmp/exp0:/tmp/ssl2/r18w32_seed0.safetensors [...]
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ssl_backdoor import load, resnet18, rgb

torch.set_num_threads(2)
for pair in sys.argv[1:]:
    torch.manual_seed(0)
    export, checkpoint = pair.split(":")
    meta, train, _ = load(export)
    model = resnet18(32)
    model.load_state_dict(load_file(checkpoint))
    model.eval()
    with torch.no_grad():
        z = F.normalize(torch.cat([model(rgb(train[i:i + 500])) for i in range(0, len(train), 500)]), dim=1)
    n, k = len(z), len(z) // 100
    centroids = z[torch.randperm(n)[:k]].clone()
    for _ in range(30):
        assigned = (z @ centroids.t()).argmax(1)
        for j in range(k):
            if (assigned == j).any():
                centroids[j] = F.normalize(z[assigned == j].mean(0), dim=0)
    poison = {i for i, _ in meta["poisoned"]}
    for j in range(k):
        rows = torch.where(assigned == j)[0]
        p = sum(int(i) in poison for i in rows)
        if p < 5:
            continue
        sim = z[rows] @ z[rows].t()
        density = sim.topk(min(6, len(rows)), dim=1).values[:, 1:].mean(1)
        densest = rows[torch.argsort(density, descending=True)][:4]
        miss = np.prod([(len(rows) - p - t) / (len(rows) - t) for t in range(4)])
        print(f"{export} cluster {j}: {p} poisons of {len(rows)} members; the 4 densest hold "
              f"{sum(int(i) in poison for i in densest)} poisons; 4 random probes miss all with p = {miss:.3f}")
