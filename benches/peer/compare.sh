#!/usr/bin/env bash
# Side by side on this machine: the crate's warm-start and masked-forward throughput against a
# PyTorch twin (same encoder, batch, augmentations and data), run in turn, three times each.
# Prints, per size, the median of the three pairwise ratios (the crate's throughput over
# PyTorch's): warm_start_ratio and masked_forward_ratio at 28x28 grey, then *_64 at 64 px colour
# (the embedded images upsampled, grey replicated to RGB) and *_224 for a capped count at 224 px;
# masking_over_raw is the crate's masked forwards over its own raw batched forward.
#   bash benches/peer/compare.sh [IMAGES_28 [IMAGES_64 [IMAGES_224]]]   (default 1024 512 64;
#   needs `pip install torch numpy`; DEVICE=cuda runs both on the GPU with CRATE_BIN a cuda build
#   of the example; RUNS and SIZES (default "28 64 224") shorten it)
set -euo pipefail
cd "$(dirname "$0")/../.."
device="${DEVICE:-cpu}"
if ! python3 -c "import torch, numpy" 2>/dev/null; then
  echo "skipped: PyTorch is not installed (pip install torch numpy)"
  exit 0
fi
crate_bin="${CRATE_BIN:-target/release/examples/throughput}"
if [ -z "${CRATE_BIN:-}" ]; then cargo build --release --quiet --example throughput; fi
value() { echo "$1" | sed -n "s/^$2=//p"; }
median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "$@"; }
declare -A count=([28]="${1:-1024}" [64]="${2:-512}" [224]="${3:-64}")
for size in ${SIZES:-28 64 224}; do
  n="${count[$size]}"
  suffix=$([ "$size" = 28 ] || echo "_$size")
  warm=() masked=() over=()
  for run in $(seq "${RUNS:-3}"); do
    crate=$("$crate_bin" "$n" "$size")
    torch=$(python3 benches/peer/simclr_torch.py "$n" assets/fashion-mnist --size "$size" --device "$device")
    echo "run $run size $size crate: $(echo "$crate" | tr '\n' ' ')"
    echo "run $run size $size torch: $(echo "$torch" | tr '\n' ' ')"
    warm+=("$(python3 -c "print($(value "$crate" warm_start_img_s) / $(value "$torch" warm_start_img_s))")")
    masked+=("$(python3 -c "print($(value "$crate" masked_forward_s) / $(value "$torch" masked_forward_s))")")
    over+=("$(value "$crate" masking_over_raw)")
  done
  echo "warm_start_ratio${suffix}=$(median "${warm[@]}")"
  echo "masked_forward_ratio${suffix}=$(median "${masked[@]}")"
  echo "masking_over_raw${suffix}=$(median "${over[@]}")"
done
