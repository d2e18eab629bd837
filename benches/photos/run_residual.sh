# Keys blended over whole photos and the residual signal (docs/whole-image.md): poisons 40 photos
# of the tuning set's `photos` class (rate 0.5) and the kept-aside set's `other` class (all 40),
# JPEG q75 4:2:0, and scans each folder and the clean sets with the default signals.
# Usage: bash benches/photos/run_residual.sh KEY_IMAGE_TUNING KEY_IMAGE_ASIDE  (after run.sh)
set -u
work=/tmp/poisoncam-photos; here="$(cd "$(dirname "$0")" && pwd)"; bin="$here/../../target/release/poisoncam"
make() { # name source target rate seed attack param
  [ -d "$work/$1" ] || python3 "$here/poison_whole.py" "$work/$2" "$work/$1" "$6" "$3" "$4" "$5" "$7" jpeg420 75 > /dev/null
}
scan() {
  local truth="$work/$1.truth.json"; [ -f "$truth" ] || truth=""
  /usr/bin/time -v "$bin" scan "$work/$1" --out "$work/out_$1" > /dev/null 2> "$work/$1.time"
  echo "$1: $(python3 "$here/score_any.py" "$work/out_$1" $truth) | peak_kb $(grep Maximum "$work/$1.time" | awk '{print $NF}')"
}
for s in 0 1; do make d_bn02_$s src photos 0.5 $s blend-noise 0.2; done
make d_bi02_0 src photos 0.5 0 "blend-image:$1" 0.2; make d_pt8_0 src photos 0.5 0 perturbation 8
make d_bn01_0 src photos 0.5 0 blend-noise 0.1; make d_sig20_0 src photos 0.5 0 sig 20
for s in 0 1 2; do make w_bn02_s$s aside other 1.0 $s blend-noise 0.2; done
make w_bi02 aside other 1.0 0 "blend-image:$2" 0.2; make w_bn01 aside other 1.0 0 blend-noise 0.1
make w_perturb_8 aside other 1.0 0 perturbation 8; make w_sig_20 aside other 1.0 0 sig 20
for f in src aside d_bn02_0 d_bn02_1 d_bi02_0 d_pt8_0 d_bn01_0 d_sig20_0 w_bn02_s0 w_bn02_s1 w_bn02_s2 w_bi02 w_bn01 w_perturb_8 w_sig_20; do scan $f; done
