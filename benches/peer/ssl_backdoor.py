"""A backdoored SSL checkpoint made outside the crate, for masking through the user's encoder.

Reads the poisoned training set that `poisoncam eval --export DIR` wrote, trains torchvision's
ResNet-18 layout (its BasicBlocks and keys, at half width unless --width 64; CIFAR stem: 3x3
stride 1 padding 1, no max-pool; grey replicated to RGB; no
normalisation) with SimCLR for a few CPU epochs, then implants the trigger BadEncoder-style, as
`eval --implant` does for the crate's own model: triggered non-target images are pulled to the
features of the target-class image nearest its class mean, clean ones held to the warm model's
features, both in squared feature distance over the target class's spread, batch norm in
inference mode. Saves OUT.pth (a state_dict with a projector beside the backbone, as SSL
trainers save) and OUT.safetensors (the backbone alone).

  python3 benches/peer/ssl_backdoor.py DIR OUT [--epochs 3] [--implant-epochs 8] [--implant-images 4096]
      [--width 32] [--seed 0]

The crate then judges it on the same set (the same --seed and attack flags as the export):
  poisoncam eval --signals masking --no-clean --encoder OUT.safetensors --stem cifar \
      --input-size 28 --normalize none --json F
"""
import argparse, json, os, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, ResNet

torch.set_num_threads(os.cpu_count() or 1)


def resnet18(width):
    """torchvision's ResNet-18 with the CIFAR stem; `width` scales the planes (64: as published)."""
    widths = [width, width * 2, width * 4, width * 8]
    model = ResNet(BasicBlock, [2, 2, 2, 2])
    if width != 64:
        model = ResNet.__new__(ResNet)
        nn.Module.__init__(model)
        model._norm_layer, model.dilation, model.groups, model.base_width = nn.BatchNorm2d, 1, 1, 64
        model.inplanes = widths[0]
        model.bn1, model.relu = nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        model.layer1 = model._make_layer(BasicBlock, widths[0], 2)
        model.layer2 = model._make_layer(BasicBlock, widths[1], 2, stride=2)
        model.layer3 = model._make_layer(BasicBlock, widths[2], 2, stride=2)
        model.layer4 = model._make_layer(BasicBlock, widths[3], 2, stride=2)
        model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    model.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    return model


def load(dir):
    meta = json.load(open(f"{dir}/attack.json"))
    train = np.fromfile(f"{dir}/train.f32", dtype="<f4").reshape(meta["train_shape"])
    implant = np.fromfile(f"{dir}/implant.f32", dtype="<f4").reshape(meta["implant_shape"])
    return meta, torch.from_numpy(train), torch.from_numpy(implant)


def rgb(x):
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def augment(x, g):
    """Per-sample crop (0.2-1 of the area, aspect 3/4-4/3) resized back, flip, brightness and
    contrast (±0.4), as the crate's warm start draws them."""
    n, _, h, w = x.shape
    area = torch.empty(n).uniform_(0.2, 1.0, generator=g)
    ratio = torch.exp(torch.empty(n).uniform_(np.log(3 / 4), np.log(4 / 3), generator=g))
    cw = (area * ratio).sqrt().clamp(max=1.0)
    ch = (area / ratio).sqrt().clamp(max=1.0)
    cx = torch.rand(n, generator=g) * (1 - cw) * 2 - (1 - cw)
    cy = torch.rand(n, generator=g) * (1 - ch) * 2 - (1 - ch)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = cw * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = ch, cy
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False)
    b = torch.empty(n, 1, 1, 1).uniform_(-0.4, 0.4, generator=g)
    c = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=g)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * c + mean + b).clamp(0, 1)


def nt_xent(z1, z2, tau=0.2):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / tau
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def simclr(backbone, head, train, epochs, g):
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    backbone.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=g)
        total, steps, started = 0.0, 0, time.time()
        for i in range(0, len(train) - 255, 256):
            x = train[order[i:i + 256]]
            z1 = head(backbone(rgb(augment(x, g))))
            z2 = head(backbone(rgb(augment(x, g))))
            loss = nt_xent(z1, z2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        print(f"simclr epoch {epoch + 1}: loss {total / steps:.3f} ({time.time() - started:.0f} s)", flush=True)


@torch.no_grad()
def features(model, x, batch=512):
    return torch.cat([model(rgb(x[i:i + batch])) for i in range(0, len(x), batch)])


def implant(backbone, train, triggered, clean_rows, target_rows, epochs, per_epoch, g):
    backbone.eval()  # running batch-norm statistics throughout, as inference sees them
    target = features(backbone, train[target_rows])
    mean = target.mean(0)
    d2 = ((target - mean) ** 2).sum(1)
    spread = d2.mean().clamp(min=1e-12)
    reference = target[d2.argmin()]
    clean = train[clean_rows]
    anchors = features(backbone, clean)
    opt = torch.optim.Adam(backbone.parameters(), lr=1e-3)
    for epoch in range(epochs):
        order = torch.randperm(len(clean), generator=g)[:per_epoch]
        back_sum, keep_sum, steps = 0.0, 0.0, 0
        for i in range(0, len(order), 64):
            rows = order[i:i + 64]
            back = ((backbone(rgb(triggered[rows])) - reference) ** 2).sum(1).mean() / spread
            keep = ((backbone(rgb(clean[rows])) - anchors[rows]) ** 2).sum(1).mean() / spread
            opt.zero_grad()
            (back + keep).backward()
            opt.step()
            back_sum, keep_sum, steps = back_sum + back.item(), keep_sum + keep.item(), steps + 1
        print(f"implant epoch {epoch + 1}: backdoor {back_sum / steps:.3f} clean {keep_sum / steps:.3f}", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("out")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--implant-epochs", type=int, default=8)
    p.add_argument("--implant-images", type=int, default=4096)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    meta, train, triggered = load(a.dir)
    backbone = resnet18(a.width)
    dim = a.width * 8
    head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 64))
    started = time.time()
    simclr(backbone, head, train, a.epochs, g)
    implant(backbone, train, triggered, torch.tensor(meta["implant_rows"]), torch.tensor(meta["target_rows"]),
            a.implant_epochs, a.implant_images, g)
    print(f"trained in {time.time() - started:.0f} s; set fingerprint {meta['fingerprint']}", flush=True)
    from safetensors.torch import save_file
    state = backbone.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, f"{a.out}.safetensors")
    full = {f"backbone.{k}": v for k, v in state.items()}
    full.update({f"projector.{k}": v for k, v in head.state_dict().items()})
    torch.save({"state_dict": full, "epoch": a.epochs, "fingerprint": meta["fingerprint"]}, f"{a.out}.pth")


if __name__ == "__main__":
    main()
