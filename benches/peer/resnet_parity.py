"""Full-size torchvision ResNet-18 and ResNet-50 against the crate's, at 224 px.

Writes, for each, a state_dict with randomised weights and batch-norm statistics (no pretrained
weights can be fetched here, and parity does not depend on them) as .pth and .safetensors, and
PyTorch's features (CPU, f32, eval mode) for the 16 hash images of resnet_twins.py; then runs
`examples/resnet_parity.rs` on each file and prints ||a - b|| / ||b||.
  python3 benches/peer/resnet_parity.py [WORK_DIR] [--binary=PATH]
(needs `pip install torch torchvision safetensors`; --binary runs a built resnet_parity, a cuda
build on a GPU, instead of `cargo run`)
"""
import json, os, subprocess, sys

import torch
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from resnet_twins import features, randomise  # noqa: E402

args = [a for a in sys.argv[1:] if not a.startswith("--binary")]
binary = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--binary=")), None)
work = args[0] if args else "/tmp/poisoncam-parity"
os.makedirs(work, exist_ok=True)
torch.set_num_threads(os.cpu_count() or 1)
for arch, seed in (("resnet18", 1), ("resnet50", 2)):
    model = randomise(getattr(torchvision.models, arch)(), seed)
    sd = model.state_dict()
    torch.save(sd, f"{work}/{arch}.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, f"{work}/{arch}.safetensors")
    feats = features(model, "imagenet", 224)
    with open(f"{work}/{arch}.json", "w") as f:
        json.dump({"arch": arch, "stem": "imagenet", "input_size": 224, "normalization": "imagenet",
                   "features": feats.tolist()}, f)
    for ext in ("pth", "safetensors"):
        run = [binary] if binary else ["cargo", "run", "--release", "--quiet", "--example", "resnet_parity", "--"]
        out = subprocess.run(run + [f"{work}/{arch}.{ext}", f"{work}/{arch}.json"], capture_output=True, text=True)
        print(f"{arch}.{ext}: {out.stdout.strip()} {out.stderr.strip()[-300:]}", flush=True)
