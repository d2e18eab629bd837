"""PyTorch twin of the crate's threat model, for benches/peer/compare.sh.

Same encoder (ResNet widths 16/32/64, 3x3 convs without bias, batch norm, a 2-layer 64-d
projection head), same batch (256), same SimCLR step (two views cropped 0.2-1 of the area with
flips, brightness and contrast, drawn per sample and applied batched; NT-Xent at tau 0.2; Adam
1e-3), same data (the first IMAGES embedded Fashion-MNIST test images). Masking: 7x7 windows at
stride 4 filled with the image mean, 49 masked copies plus the original per image, forwarded in
batches of 256, as the crate's grid search does. Prints key=value lines.

  python3 benches/peer/simclr_torch.py [IMAGES] [DATA_DIR] [--size S] [--device cpu|cuda]

At --size S the images are upsampled to S and replicated to RGB (a colour set of that size), the
encoder takes 3 channels, and masking's windows are a quarter of the side at half-window strides,
as the crate's defaults. On CUDA every timing synchronises the device first.
"""
import argparse, gzip, math, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(os.cpu_count() or 1)
torch.manual_seed(0)


def conv3x3(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.norm1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.norm2 = conv3x3(cout, cout, 1), nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        skip = x if self.short is None else self.short(x)
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + skip)


class Encoder(nn.Module):
    def __init__(self, channels=1):
        super().__init__()
        self.stem, self.norm = conv3x3(channels, 16, 1), nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))

    def features(self, x):
        return self.blocks(F.relu(self.norm(self.stem(x)))).mean(dim=(2, 3))

    def forward(self, x):
        return self.head(self.features(x))


def augment(x, g):
    n, dev = x.shape[0], x.device
    area = torch.empty(n).uniform_(0.2, 1.0, generator=g)
    log_r = math.log(1.333)
    ratio = torch.exp(torch.empty(n).uniform_(-log_r, log_r, generator=g))
    half_w = torch.sqrt(area * ratio).clamp(max=1.0)
    half_h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - half_w)
    cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - half_h)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = half_w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = half_h, cy
    grid = F.affine_grid(theta.to(dev), list(x.shape), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    b = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=g).to(dev)
    c = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=g).to(dev)
    mean = v.mean(dim=(1, 2, 3), keepdim=True)
    return ((v * b - mean) * c + mean).clamp(0, 1)


def nt_xent(z1, z2, tau=0.2):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / tau
    sim.fill_diagonal_(-1e9)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def load_images(n, root, size):
    with gzip.open(os.path.join(root, "t10k-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    x = torch.from_numpy(raw[: n * 784].astype(np.float32) / 255.0).reshape(n, 1, 28, 28)
    if size != 28:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    return x.contiguous()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def epoch(model, opt, x, g):
    order = torch.randperm(x.shape[0], generator=g)
    for i in range(0, x.shape[0], 256):
        batch = x[order[i : i + 256]]
        if batch.shape[0] < 2:
            continue
        loss = nt_xent(model(augment(batch, g)), model(augment(batch, g)))
        opt.zero_grad()
        loss.backward()
        opt.step()


def masked_forwards(model, x):
    model.eval()
    size = x.shape[-1]
    side = max(1, round(size * 0.25))
    stride = max(1, round(side * 0.5))
    starts = list(range(0, size - side + 1, stride))
    if starts[-1] != size - side:
        starts.append(size - side)
    copies = []
    with torch.no_grad():
        sync(x.device)
        t = time.perf_counter()
        for img in x:
            copies.append(img)
            for y in starts:
                for xx in starts:
                    m = img.clone()
                    m[:, y : y + side, xx : xx + side] = img.mean()
                    copies.append(m)
        batch = torch.stack(copies)
        out = [model.features(batch[i : i + 256]) for i in range(0, batch.shape[0], 256)]
        torch.cat(out).cpu()
        return batch.shape[0] / (time.perf_counter() - t)


def raw_forwards(model, x):
    model.eval()
    with torch.no_grad():
        model.features(x[:256])
        sync(x.device)
        t = time.perf_counter()
        torch.cat([model.features(x[i : i + 256]) for i in range(0, x.shape[0], 256)]).cpu()
        return x.shape[0] / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("images", nargs="?", type=int, default=1024)
    p.add_argument("root", nargs="?", default="assets/fashion-mnist")
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    device = torch.device(a.device)
    x = load_images(a.images, a.root, a.size).to(device)
    g = torch.Generator().manual_seed(0)
    model = Encoder(x.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    epoch(model, opt, x[:256], g)  # untimed, as on the crate's side
    sync(device)
    t = time.perf_counter()
    epoch(model, opt, x, g)
    sync(device)
    print(f"warm_start_img_s={a.images / (time.perf_counter() - t):.1f}")
    print(f"masked_forward_s={masked_forwards(model, x[:64]):.1f}")
    print(f"raw_forward_img_s={raw_forwards(model, x):.1f}")
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} device={a.device} size={a.size}")


if __name__ == "__main__":
    main()
