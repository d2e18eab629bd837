# The residual signal through eval-photos with 30% of the files held back for the guard (docs/whole-image.md).
# Usage: bash benches/photos/run_residual_guard.sh (keys: scikit-image astronaut and chelsea saved as PNG under /tmp/exp)
cd /work/main; B=target/release/poisoncam
one() { n=$1; set=$2; t=$3; s=$4; shift 4; rm -rf /tmp/exp/ep_$n /tmp/exp/epc_$n
 /usr/bin/time -v $B eval-photos /tmp/poisoncam-photos/$set --target $t --seed $s --guard-share 0.3 --signals recurrence,spectral,residual --format jpeg --quality 75 --work /tmp/exp/ep_$n --json /tmp/exp/ep_$n.json --cache /tmp/exp/epc_$n "$@" > /tmp/exp/ep_$n.txt 2>/tmp/exp/ep_$n.err
 echo "$n: $(tail -1 /tmp/exp/ep_$n.txt) | $(grep guard: /tmp/exp/ep_$n.err | tail -1) | peak_kb $(grep Maximum /tmp/exp/ep_$n.err | awk '{print $NF}')"; rm -rf /tmp/exp/ep_$n /tmp/exp/epc_$n; }
for s in 0 1 2; do one aside_bn02_s$s aside other $s --whole-image blend-noise --alpha 0.2; done
one aside_bi02_s0 aside other 0 --whole-image blend-image --key /tmp/exp/key_chelsea.png --alpha 0.2
one aside_pt8_s0 aside other 0 --whole-image perturbation --bound 8
one src_bn02_s0 src photos 0 --whole-image blend-noise --alpha 0.2
one src_bi02_s0 src photos 0 --whole-image blend-image --key /tmp/exp/key_astronaut.png --alpha 0.2
