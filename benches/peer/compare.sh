#!/usr/bin/env bash
# Side by side on this machine: the crate's warm-start and masked-forward throughput against a
# PyTorch twin (same encoder, batch, augmentations and data), run back to back.
# Prints warm_start_ratio and masked_forward_ratio (the crate's throughput over PyTorch's) and
# masking_over_raw (the crate's masked forwards over its own raw batched forward).
#   bash benches/peer/compare.sh [IMAGES]      (default 1,024; needs `pip install torch numpy`)
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-1024}"
if ! python3 -c "import torch, numpy" 2>/dev/null; then
  echo "skipped: PyTorch is not installed (pip install torch numpy)"
  exit 0
fi
cargo build --release --quiet --example throughput
crate=$(target/release/examples/throughput "$n")
torch=$(python3 benches/peer/simclr_torch.py "$n" assets/fashion-mnist)
echo "crate: $crate" | tr '\n' ' '; echo
echo "torch: $torch" | tr '\n' ' '; echo
value() { echo "$1" | sed -n "s/^$2=//p"; }
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }
echo "warm_start_ratio=$(ratio "$(value "$crate" warm_start_img_s)" "$(value "$torch" warm_start_img_s)")"
echo "masking_over_raw=$(value "$crate" masking_over_raw)"
echo "masked_forward_ratio=$(ratio "$(value "$crate" masked_forward_s)" "$(value "$torch" masked_forward_s)")"
