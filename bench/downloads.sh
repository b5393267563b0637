#!/usr/bin/env bash
# downloads (issue 20, point 2): bytes each facility downloads per round from the
# version it trained on (pipelines/download.h: a replay of the aggregation from the
# round's deltas, or the XOR update, whichever is fewer bytes) against the whole
# version, in the same run. A federation of 2 facilities (diloco, the demo's two
# corpora as in fed_vs_central) runs R rounds with --state, once per encoding; round 1
# downloads version 0 in full, rounds 2..R from the cache. For every round >= 2 and
# facility:
#   value   the COMMIT's download_bytes (the route's parts and manifests)
#   ref     the bytes of the version's parts: what the same facility downloads in full
#           (a full download fetches whole parts, outer optimizer state included)
#   update  the XOR update's parts and manifest beside the version: the route before
#           replay existed (2026-12-03)
#   model   the model group's stored bytes inside those parts (`xffl show --json`: its
#           compressed chunks, without HDF5's metadata, which weighs for `tiny`): what a
#           full download would cost if parts held the model alone
# One JSON line per encoding: value, ref and update_bytes are means per facility per
# round, ratio = value / ref, ratio_update = value / update, ratio_model = value /
# model, bits_per_param = value * 8 / the parameter count (32 for the raw floats);
# routes counts the rounds >= 2 by route, every_round_cached says whether each went as
# a replay or an update. Replay is taken where the deltas are fewer bytes than the
# update: int8, int4 and topk, not fp32. XFFL_DL_MODEL, _ROUNDS, _H, _LR, _ENCODINGS,
# _BATCH, _SEQ set the run (defaults: small, 4 rounds, H=20, lr 1e-3, fp32, int8, int4
# and topk:16, 1 x 256 tokens).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
MODEL=${XFFL_DL_MODEL:-small}
ROUNDS=${XFFL_DL_ROUNDS:-4}
H=${XFFL_DL_H:-20}
LR=${XFFL_DL_LR:-1e-3}
ENCODINGS=${XFFL_DL_ENCODINGS:-fp32 int8 int4 topk:16}
BATCH=${XFFL_DL_BATCH:-1}
SEQ=${XFFL_DL_SEQ:-256}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export XDG_CONFIG_HOME=$W/config   # the run's keys and pins, not the user's
CORES=$(nproc)
log() { echo "downloads: $*" >&2; }

mkdir -p "$W/corpus/licenses" "$W/corpus/copyrights"
for f in /usr/share/common-licenses/*; do [ -f "$f" ] && [ ! -L "$f" ] && cp "$f" "$W/corpus/licenses/$(basename "$f").txt"; done
total=0
for f in $(ls /usr/share/doc/*/copyright 2>/dev/null | sort); do
  cp "$f" "$W/corpus/copyrights/$(basename "$(dirname "$f")").txt"
  total=$(( total + $(stat -c %s "$f") )); [ "$total" -gt 400000 ] && break
done
for fac in licenses copyrights; do
  "$X" data pack "$W/corpus/$fac"/* --out "$W/data/$fac" --val-fraction 0.1 >/dev/null 2>&1
done

thr=$(( CORES / 2 > 0 ? CORES / 2 : 1 ))
for enc in $ENCODINGS; do
  S=$W/store-${enc/:/-}
  t0=$(date +%s)
  "$X" simulate --store "$S" --facilities copyrights,licenses --rounds "$ROUNDS" \
    --data "$W/data/{facility}/*_train_*.bin" --threads "$thr" --state "$W/state-${enc/:/-}/{facility}" -- \
    --model "$MODEL" --algo diloco --local-steps "$H" --batch "$BATCH" --seq-len "$SEQ" --lr "$LR" \
    --total-rounds "$ROUNDS" --encoding "$enc" --seed 7 >&2
  log "$enc: $ROUNDS rounds in $(( $(date +%s) - t0 ))s"
  # per round >= 2 and facility: "round facility download kind full model params update"
  rows=$W/rows-${enc/:/-}
  : >"$rows"
  for r in $(seq 2 "$ROUNDS"); do
    v=$(( r - 1 ))
    idx=$(ls "$S/versions/v$(printf %06d $v)/"INDEX-*)
    full=$(awk '$1 == "object" {s += $3} END {print s + 0}' "$idx")
    u=$(ls "$S/versions/v$(printf %06d $v)/"UPDATE-from-*)
    upd=$(awk -v m="$(stat -c %s "$u")" '$1 == "object" {s += $3} END {print s + m}' "$u")
    read -r model params < <("$X" show --json --store "$S" --version "$v" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(t["stored_bytes"] for t in d["tensors"] if t["name"].startswith("model/")), d["parameters"])')
    for fac in copyrights licenses; do
      c=$(ls "$S/rounds/r$(printf %06d $r)/$fac/a1/"COMMIT-*)
      dl=$(grep '^download_bytes=' "$c" | cut -d= -f2)
      kind=$(grep '^download=' "$c" | cut -d= -f2)
      echo "$r $fac $dl $kind $full $model $params $upd" >>"$rows"
    done
  done
  awk -v enc="$enc" -v m="$MODEL" -v r="$ROUNDS" -v h="$H" -v lr="$LR" -v b="$BATCH" -v t="$SEQ" '
    { n++; dl += $3; full += $5; model += $6; params = $7; upd += $8; routes[$4]++; if ($4 == "full") all = "false"
      per = per sprintf("%s{\"round\": %d, \"facility\": \"%s\", \"download\": \"%s\", \"bytes\": %d, \"full\": %d, \"update\": %d, \"ratio\": %.4f}",
                        n > 1 ? ", " : "", $1, $2, $4, $3, $5, $8, $3 / $5) }
    BEGIN { all = "true" }
    END {
      printf "{\"bench\": \"downloads\", \"encoding\": \"%s\", \"value\": %.0f, \"unit\": \"bytes per facility per round\", ", enc, dl / n
      printf "\"ref_name\": \"full version\", \"ref\": %.0f, \"ratio\": %.4f, \"model_bytes\": %.0f, \"ratio_model\": %.4f, ", full / n, dl / full, model / n, dl / model
      printf "\"update_bytes\": %.0f, \"ratio_update\": %.4f, ", upd / n, dl / upd
      printf "\"bits_per_param\": %.2f, \"parameters\": %d, ", 8 * dl / n / params, params
      printf "\"routes\": {\"replay\": %d, \"update\": %d, \"full\": %d}, ", routes["replay"], routes["update"], routes["full"]
      printf "\"every_round_cached\": %s, \"model\": \"%s\", \"rounds\": %d, \"local_steps\": %d, \"lr\": %s, \"batch\": %d, \"seq_len\": %d, ", all, m, r, h, lr, b, t
      printf "\"per_round\": [%s]}\n", per }' "$rows"
done
