"""Reduced-width twins of torchvision's ResNets, and PyTorch's features for them.

Writes the fixtures that tests/resnet_import.rs checks the crate's ResNet against, without
PyTorch at test time: torchvision's own blocks (BasicBlock, Bottleneck) and keys, at widths 8-64
so that every file stays small.
  python3 benches/peer/resnet_twins.py tests/fixtures/resnet
Each twin is saved as a plain state_dict (.pth and .safetensors) beside <name>.json: its
settings and PyTorch's features (CPU, f32, eval mode) for the 16 images of `inputs()`.
Also written: the same twin in the wrappers SSL trainers save (MoCo's `.pth.tar`, a Lightning
`.ckpt`), and hostile files the loader must refuse.
"""
import io, json, os, pickle, sys, zipfile

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from safetensors.torch import save_file

MEANS = {"imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
         "cifar": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
         "none": ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])}


class Twin(ResNet):
    """torchvision's ResNet with the stage widths given, built by its own _make_layer."""

    def __init__(self, block, layers, widths, stem):
        nn.Module.__init__(self)
        self._norm_layer, self.dilation, self.groups, self.base_width = nn.BatchNorm2d, 1, 1, 64
        self.inplanes = widths[0]
        # Children in torchvision's order (conv1, bn1, relu, maxpool, layer1-4, avgpool, fc), which
        # an nn.Sequential of them numbers.
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 2 if stem == "cifar-pad2" else 1, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, 10)


def inputs(n, size):
    """n RGB images in [0, 1] from an integer hash, so the crate rebuilds them exactly."""
    i, c, y, x = torch.meshgrid(torch.arange(n), torch.arange(3), torch.arange(size), torch.arange(size), indexing="ij")
    h = (i * 7919 + c * 104729 + y * 31 + x * 17) * 2654435761 % (1 << 32)
    return (h >> 24).float() / 255.0


def randomise(model, seed):
    """Weights and batch-norm statistics far from their initial values, so a swapped or
    missing tensor shows in the features."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype != torch.float32:
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith(("running_mean", "bias")):
                t.copy_(0.2 * torch.randn(t.shape, generator=g))
            elif name.endswith("weight") and t.dim() == 1:
                t.copy_(0.5 + 0.5 * torch.rand(t.shape, generator=g))
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    return model.eval()


def features(model, norm, size):
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in MEANS[norm])
    head, model.fc = model.fc, nn.Identity()
    with torch.no_grad():
        out = model((inputs(16, size) - mean) / std)
    model.fc = head
    return out


def save_twin(out, name, model, settings):
    sd = model.state_dict()
    torch.save(sd, f"{out}/{name}.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, f"{out}/{name}.safetensors")
    feats = features(model, settings["normalization"], settings["input_size"])
    with open(f"{out}/{name}.json", "w") as f:
        json.dump({**settings, "features": [[round(float(v), 8) for v in row] for row in feats]}, f)
    return sd


def hostile(out, sd):
    # A pickle that calls posix.system when unpickled by Python: the loader must refuse it
    # by name and run nothing.
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/poisoncam-pwned",))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"conv1.weight": Evil()}, protocol=2))
        z.writestr("archive/version", "3\n")
    open(f"{out}/system_call.pth", "wb").write(buf.getvalue())
    # A checkpoint whose first tensor's storage is cut short: burn-store would pad it with zeros.
    torch.save(sd, f"{out}/_full.pth")
    with zipfile.ZipFile(f"{out}/_full.pth") as src, zipfile.ZipFile(f"{out}/short_storage.pth", "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("/data/0"):
                data = data[: len(data) // 2]
            dst.writestr(item, data)
    os.remove(f"{out}/_full.pth")


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    r18 = randomise(Twin(BasicBlock, [2, 2, 2, 2], [8, 8, 16, 32], "imagenet"), 1)
    save_twin(out, "twin18", r18, {"arch": "resnet18", "stem": "imagenet", "input_size": 64,
                                   "normalization": "imagenet", "widths": [8, 8, 16, 32]})
    r50 = randomise(Twin(Bottleneck, [3, 4, 6, 3], [8, 8, 8, 16], "cifar-pad2"), 2)
    save_twin(out, "twin50", r50, {"arch": "resnet50", "stem": "cifar-pad2", "input_size": 32,
                                   "normalization": "cifar", "widths": [8, 8, 8, 16]})
    os.remove(f"{out}/twin50.pth")  # the .safetensors alone keeps the fixtures small
    # The wrappers hold two encoders of the smallest twin, different weights each, so that
    # taking the wrong one shows in the features.
    query_model = randomise(Twin(BasicBlock, [2, 2, 2, 2], [8, 8, 8, 8], "cifar"), 3)
    query = query_model.state_dict()
    # lightly's recipe: the children but the last as an nn.Sequential, keys numbered.
    torch.save(nn.Sequential(*list(query_model.children())[:-1]).state_dict(), f"{out}/lightly.pth")
    key = randomise(Twin(BasicBlock, [2, 2, 2, 2], [8, 8, 8, 8], "cifar"), 4).state_dict()
    # MoCo v2's main_moco.py: {'epoch', 'arch', 'state_dict' (DataParallel: module.encoder_q.*,
    # module.encoder_k.*, each with its fc head), 'optimizer'}.
    moco = {f"module.encoder_{q}.{k}": v for q, sd in (("q", query), ("k", key)) for k, v in sd.items()}
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": moco, "optimizer": {"state": {}, "param_groups": []}},
               f"{out}/moco.pth.tar")
    # Lightning (solo-learn): state_dict with backbone.* and momentum_backbone.*, plus a
    # projector the loader ignores.
    ckpt = {f"backbone.{k}": v for k, v in query.items()}
    ckpt.update({f"momentum_backbone.{k}": v for k, v in key.items()})
    ckpt["projector.0.weight"] = torch.zeros(4, 8)
    torch.save({"epoch": 10, "global_step": 100, "pytorch-lightning_version": "2.4.0", "state_dict": ckpt,
                "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": []}, f"{out}/solo.ckpt")
    hostile(out, query)
    for f in sorted(os.listdir(out)):
        print(f, os.path.getsize(f"{out}/{f}"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/resnet")
