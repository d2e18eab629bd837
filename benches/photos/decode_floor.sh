# The scan beside its decode floor, side by side on one folder (issue: photos at the decode
# floor): the default scan; every file decoded once by the crate's own decoder on 2 threads and
# on 1 (examples/decode_floor.rs); Pillow's decode on one core; imagededup's PHash on 2 workers.
# Three alternating rounds, medians printed. FRESH=1 drops the page cache before every command
# (root only), else the files are read from the page cache.
# Usage: bash benches/photos/decode_floor.sh FOLDER
set -eu
folder=$1; here="$(cd "$(dirname "$0")" && pwd)"; root="$here/../.."
cargo build --release --features cli --example decode_floor --manifest-path "$root/Cargo.toml" -q
cargo build --release --features cli --manifest-path "$root/Cargo.toml" -q
# imagededup imports torch for its CNN; PHash needs none of it (phash.py stubs those modules).
if ! python3 -c "import imagededup, sklearn, tqdm, matplotlib, pywt, scipy, PIL" 2>/dev/null; then
  pip install -q --no-deps imagededup && pip install -q scikit-learn tqdm matplotlib PyWavelets scipy pillow
fi
out=$(mktemp -d)
fresh() { if [ "${FRESH:-0}" = 1 ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }
timed() { fresh; local s=$(date +%s.%N); "$@" > /dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc; }
declare -A t
for round in 1 2 3; do
  # A cache of its own each round: a resumed index would not be a scan of the folder.
  t[scan]+="$(timed "$root/target/release/poisoncam" scan "$folder" --out "$out/scan$round" --cache "$out/cache$round") "
  t[decode2]+="$(timed "$root/target/release/examples/decode_floor" "$folder" 2) "
  t[decode1]+="$(timed "$root/target/release/examples/decode_floor" "$folder" 1) "
  t[pillow1]+="$(timed python3 "$here/pillow_decode.py" "$folder") "
  t[phash2]+="$(timed python3 "$here/phash.py" "$folder") "
done
n=$(find "$folder" -type f | wc -l)
for k in scan decode2 decode1 pillow1 phash2; do
  echo "$k ${t[$k]}" | python3 -c "import sys,statistics; k,*v=sys.stdin.read().split(); m=statistics.median(map(float,v)); print(f'{k:8s} median {m:6.2f} s  {$n/m:6.0f} images/s  (runs: {\" \".join(v)})')"
done
grep -o '"verified_images": [0-9]*' "$out/scan1/report.json" | head -1 | sed "s/$/ of $n/"
rm -rf "$out"
