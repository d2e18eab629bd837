#!/usr/bin/env bash
# The GPU checks in one run of at most 8 minutes, on a machine with PyTorch and the binaries
# built elsewhere (`cargo build --release --features cuda,cli --bins --example throughput
# --example resnet_parity --example resnet_throughput`, stripped, in BIN):
#   1. full-size ResNet-18 and -50 read from PyTorch files, features against PyTorch's (CPU f32);
#   2. the peer bench on the card, crate and PyTorch at 28 and 64 px, two runs each;
#   3. ResNet-50 masking at 224 px through the crate on the card.
# Every result is written to OUT as well as printed; docs/gpu.md keeps them with the card's name.
#   BIN=target/gpu OUT=/tmp/gpu bash benches/gpu/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
bin="${BIN:-target/gpu}"
out="${OUT:-/tmp/poisoncam-gpu}"
mkdir -p "$out"
started=$(date +%s)
stamp() { echo "[$(( $(date +%s) - started )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/card.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$out/card.txt"
stamp "parity"
timeout 150 python3 benches/peer/resnet_parity.py "$out/parity" --binary="$bin/resnet_parity" 2>&1 | tee "$out/parity.txt"
rm -rf "$out/parity"
stamp "peer bench"
RUNS=2 SIZES="28 64" DEVICE=cuda CRATE_BIN="$bin/throughput" timeout 270 \
  bash benches/peer/compare.sh 4096 2048 2>&1 | tee "$out/peer.txt"
stamp "resnet-50 at 224"
timeout 90 "$bin/resnet_throughput" resnet50 224 512 2>&1 | grep -v '^\[' | tee "$out/resnet50.txt"
stamp "done"
