#!/usr/bin/env bash
# aggregate_update: the aggregation job with `--no-update` against the same job writing
# the XOR update beside the version (the reference, same run): `small` (or
# XFFL_AGGU_MODEL), diloco, int4 deltas of two facilities, file:// store, 2 threads;
# best of XFFL_AGGU_REPS (3) each, every run on a fresh copy of the store. One JSON
# line: seconds and the version's stored bytes, each with its reference, and their ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
MODEL=${XFFL_AGGU_MODEL:-small}
REPS=${XFFL_AGGU_REPS:-3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export XDG_CONFIG_HOME=$W/config
mkdir -p "$W/txt/alpha" "$W/txt/beta"
cp /usr/share/common-licenses/GPL-3 "$W/txt/alpha/a.txt"
cp /usr/share/common-licenses/Apache-2.0 "$W/txt/beta/b.txt"
for f in alpha beta; do "$X" data pack "$W/txt/$f"/* --out "$W/data/$f" >/dev/null 2>&1; done
"$X" init --store "$W/s0" --model "$MODEL" --facilities alpha,beta --algo diloco --local-steps 2 --batch 1 \
  --seq-len 64 --encoding int4 >/dev/null 2>&1
for f in alpha beta; do
  "$X" train --store "$W/s0" --facility "$f" --data "$W/data/$f/*_train_*.bin" --threads 2 >/dev/null 2>&1
done
best() { # aggregate flags...: the fastest of REPS runs; its version's stored bytes in $W/bytes
  local b='' s e t
  for _ in $(seq "$REPS"); do
    rm -rf "$W/s"; cp -a "$W/s0" "$W/s"
    s=$(date +%s.%N)
    "$X" aggregate --store "$W/s" --threads 2 "$@" >/dev/null 2>&1
    e=$(date +%s.%N)
    t=$(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f", e - s}')
    b=$(awk -v b="$b" -v t="$t" 'BEGIN {print (b == "" || t < b) ? t : b}')
  done
  du -sb "$W/s/versions/v000001" | cut -f1 >"$W/bytes"
  echo "$b"
}
with=$(best); with_bytes=$(cat "$W/bytes")
without=$(best --no-update); without_bytes=$(cat "$W/bytes")
awk -v m="$MODEL" -v a="$without" -v r="$with" -v ab="$without_bytes" -v rb="$with_bytes" -v n="$REPS" 'BEGIN {
  printf "{\"bench\": \"aggregate_update\", \"model\": \"%s\", \"encoding\": \"int4\", \"algo\": \"diloco\", \"facilities\": 2, ", m
  printf "\"reps\": %d, \"seconds\": %s, \"reference_seconds\": %s, \"ratio\": %.3f, ", n, a, r, a / r
  printf "\"version_bytes\": %d, \"reference_version_bytes\": %d, \"bytes_ratio\": %.3f, ", ab, rb, ab / rb
  printf "\"reference\": \"the same aggregation writing the XOR update\"}\n" }'
