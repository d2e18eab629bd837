#!/usr/bin/env bash
# Runs the scan as its phases on this machine: N index processes at once; the reduce, which
# writes the cores and waits (--wait-for-shards); N cut processes at once (verification as a
# map); the reduce again, which compares the cut windows; N judge processes at once; one merge.
# Each phase's wall time and each process's peak RSS (from /usr/bin/time -v) go to
# WORK/timings.tsv.
#
#   bash benches/shard/run_local.sh BIN DATA WORK OUT [N=4] [extra index flags...]
#
# BIN is a poisoncam built with `--features shard`; DATA an image folder (or `--filelist F`
# given as DATA="--filelist F"). A killed run resumes: run it again with the same WORK.
set -euo pipefail
bin=$1 data=$2 work=$3 out=$4 n=${5:-4}
shift $(( $# < 5 ? $# : 5 ))
mkdir -p "$work/logs"
tsv=$work/timings.tsv
[ -f "$tsv" ] || printf 'phase\tshard\twall_s\tpeak_rss_kb\n' > "$tsv"

# One process: its wall time and peak RSS, appended to the table.
one() {
  local phase=$1 shard=$2; shift 2
  local log=$work/logs/$phase-${shard//\//-of-}.log
  /usr/bin/time -v "$@" > "$log" 2>&1 || { cat "$log"; return 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  printf '%s\t%s\t%s\t%s\n' "$phase" "$shard" "$wall" "$rss" >> "$tsv"
}

# Runs the N processes of one mapped phase at once; fails if any of them failed.
mapped() {
  local phase=$1 pids=() k; shift
  # shellcheck disable=SC2086
  for k in $(seq 0 $((n - 1))); do one "$phase" "$k/$n" "$bin" shard "$phase" $data --shard "$k/$n" --work "$work" "$@" & pids+=($!); done
  for k in "${pids[@]}"; do wait "$k"; done
}

mapped index "$@"
one reduce - "$bin" shard reduce --work "$work" --wait-for-shards
mapped cut
one reduce - "$bin" shard reduce --work "$work" --wait-for-shards
mapped judge
one merge - "$bin" shard merge --work "$work" --out "$out"
column -t "$tsv"
