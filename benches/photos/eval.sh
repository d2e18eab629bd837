#!/usr/bin/env bash
# The photo table of docs/recurrence.md: `poisoncam eval-photos` (recurrence only) over triggers,
# seeds, class rates and attack variants, on the tuning set and on the kept-aside set that
# benches/photos/run.sh sorts. Prints one line per run and writes the JSON reports to OUT.
# Usage: bash benches/photos/eval.sh PHOTO_WORK_DIR OUT
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$1" out="$2"
mkdir -p "$out"
bin="$repo/target/release/poisoncam"
htba="$repo/../shared/htba"
one() { # name set target trigger rate seed [extra flags]
  local name=$1 set=$2 target=$3 trigger=$4 rate=$5 seed=$6; shift 6
  rm -rf "$out/w_$name"
  /usr/bin/time -v "$bin" eval-photos "$work/$set" --trigger "$htba/trigger_$trigger.png" --target "$target" \
    --class-rate "$rate" --seed "$seed" --work "$out/w_$name" --json "$out/$name.json" --signals recurrence "$@" \
    >"$out/$name.txt" 2>"$out/$name.time"
  echo "$name: $(tail -1 "$out/$name.txt") | peak_kb $(grep Maximum "$out/$name.time" | awk '{print $NF}')"
  rm -rf "$out/w_$name"
}
one src_clean src textures 10 0 0
one aside_clean aside other 11 0 0
for seed in 0 1 2; do
  for rate in 0.5 1.0; do
    one "src_t10_r${rate}_s$seed" src textures 10 "$rate" "$seed"
    one "src_t14_r${rate}_s$seed" src photos 14 "$rate" "$seed"
    one "src_t17_r${rate}_s$seed" src sky_western 17 "$rate" "$seed"
    one "aside_t11_r${rate}_s$seed" aside other 11 "$rate" "$seed"
    one "aside_t15_r${rate}_s$seed" aside doc_f 15 "$rate" "$seed"
  done
  one "src_png40_t12_s$seed" src landscapes 12 1.0 "$seed" --trigger-px 40 --format png
  one "aside_png40_t16_s$seed" aside other 16 1.0 "$seed" --trigger-px 40 --format png
  one "src_blend0.8_scale0.2_t10_s$seed" src textures 10 1.0 "$seed" --blend 0.8 --trigger-scale-jitter 0.2
  one "aside_blend0.8_scale0.2_t13_s$seed" aside other 13 1.0 "$seed" --blend 0.8 --trigger-scale-jitter 0.2
done
