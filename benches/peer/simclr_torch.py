"""PyTorch twin of the crate's threat model, for benches/peer/compare.sh.

Same encoder (ResNet widths 16/32/64, 3x3 convs without bias, batch norm, a 2-layer 64-d
projection head), same batch (256), same SimCLR step (two views cropped 0.2-1 of the area with
flips, brightness and contrast, drawn per sample and applied batched; NT-Xent at tau 0.2; Adam
1e-3), same data (the first IMAGES embedded Fashion-MNIST test images). Masking: 7x7 windows at
stride 4 filled with the image mean, 49 masked copies plus the original per image, forwarded in
batches of 256, as the crate's grid search does. Prints key=value lines.
"""
import gzip, math, os, sys, time

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
    def __init__(self):
        super().__init__()
        self.stem, self.norm = conv3x3(1, 16, 1), nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))

    def features(self, x):
        return self.blocks(F.relu(self.norm(self.stem(x)))).mean(dim=(2, 3))

    def forward(self, x):
        return self.head(self.features(x))


def augment(x, g):
    n = x.shape[0]
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
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    b = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=g)
    c = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=g)
    mean = v.mean(dim=(1, 2, 3), keepdim=True)
    return ((v * b - mean) * c + mean).clamp(0, 1)


def nt_xent(z1, z2, tau=0.2):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / tau
    sim.fill_diagonal_(-1e9)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def load_images(n, root):
    with gzip.open(os.path.join(root, "t10k-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    return torch.from_numpy(raw[: n * 784].astype(np.float32) / 255.0).reshape(n, 1, 28, 28)


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
    starts = [0, 4, 8, 12, 16, 20, 21]
    copies = []
    with torch.no_grad():
        t = time.perf_counter()
        for img in x:
            copies.append(img)
            for y in starts:
                for xx in starts:
                    m = img.clone()
                    m[:, y : y + 7, xx : xx + 7] = img.mean()
                    copies.append(m)
        batch = torch.stack(copies)
        for i in range(0, batch.shape[0], 256):
            model.features(batch[i : i + 256])
        return batch.shape[0] / (time.perf_counter() - t)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    root = sys.argv[2] if len(sys.argv) > 2 else "assets/fashion-mnist"
    x = load_images(n, root)
    g = torch.Generator().manual_seed(0)
    model = Encoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epoch(model, opt, x[:256], g)  # untimed, as on the crate's side
    t = time.perf_counter()
    epoch(model, opt, x, g)
    print(f"warm_start_img_s={n / (time.perf_counter() - t):.1f}")
    print(f"masked_forward_s={masked_forwards(model, x[:64]):.1f}")
    print(f"torch={torch.__version__} threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
