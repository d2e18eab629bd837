# Patch-free attacks on the kept-aside photos (docs/whole-image.md); run after benches/photos/run.sh has
# built /tmp/poisoncam-photos/aside. Usage: bash benches/photos/run_whole.sh
set -u
work=/tmp/poisoncam-photos; here="$(cd "$(dirname "$0")" && pwd)"; bin="$here/../../target/release/poisoncam"
run() { # name attack param storage
  local name=$1
  [ -d "$work/$name" ] || python3 "$here/poison_whole.py" "$work/aside" "$work/$name" "$2" other 1.0 0 "$3" "$4" > /dev/null
  /usr/bin/time -v "$bin" scan "$work/$name" --out "$work/out_$name" >/dev/null 2>"$work/$name.time"
  echo "$name: $(python3 "$here/score.py" "$work/out_$name" "$work/$name.truth.json" | cut -c1-80) | removed_all $(python3 -c "import json;r=json.load(open('$work/out_$name/report.json'));print(r['removed'])") | wall $(grep Elapsed "$work/$name.time" | awk '{print $NF}') peak_kb $(grep Maximum "$work/$name.time" | awk '{print $NF}')"
}
run w_blend_noise_02 blend-noise 0.2 jpeg420
run w_ctrl_100_png ctrl 100 png
run w_sig_20 sig 20 jpeg420
run w_perturb_8 perturbation 8 jpeg420
