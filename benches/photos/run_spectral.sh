#!/usr/bin/env bash
# The spectral signal's photo table (docs/whole-image.md): `poisoncam eval-photos` with CTRL's
# trigger on the tuning set (class `photos`) and the kept-aside set (class `other`), seeds 0-2,
# recurrence and spectral (what `scan` runs on photos on the CPU), 30% of the files held back
# for the guard. Usage: bash benches/photos/run_spectral.sh PHOTO_WORK_DIR OUT
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$1" out="$2"
mkdir -p "$out"
bin="$repo/target/release/poisoncam"
one() { # name set target seed [flags]
  local name=$1 set=$2 target=$3 seed=$4; shift 4
  rm -rf "$out/w_$name"
  /usr/bin/time -v "$bin" eval-photos "$work/$set" --target "$target" --seed "$seed" --guard-share 0.3 --signals recurrence,spectral \
    --work "$out/w_$name" --json "$out/$name.json" --cache "$out/cache_$name" "$@" >"$out/$name.txt" 2>"$out/$name.time"
  echo "$name: $(tail -1 "$out/$name.txt") | peak_kb $(grep Maximum "$out/$name.time" | awk '{print $NF}')"
  rm -rf "$out/w_$name" "$out/cache_$name"
}
for seed in 0 1 2; do
  for m in 50 100; do
    one "src_ctrl${m}_png_s$seed" src photos "$seed" --whole-image ctrl --magnitude "$m" --format png
    one "aside_ctrl${m}_png_s$seed" aside other "$seed" --whole-image ctrl --magnitude "$m" --format png
  done
done
one src_ctrl100_jpeg95_s0 src photos 0 --whole-image ctrl --magnitude 100 --format jpeg --quality 95
one aside_ctrl100_jpeg95_s0 aside other 0 --whole-image ctrl --magnitude 100 --format jpeg --quality 95
