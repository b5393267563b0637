#!/usr/bin/env bash
# encodings (issue 20, point 1): what each delta encoding costs in learning and saves
# in bytes, on the fed-vs-central setting (bench/lib/fed.sh: `small`, the two non-IID
# facilities, diloco, >= 1 M tokens from one central pre-training). One diloco run per
# encoding; one JSON line each with
#   loss        the final validation loss (nats/byte), loss_ratio = loss / fp32's
#   bytes       what a facility uploaded per round (the COMMITs' bytes=: encoded,
#               byte-shuffled, zstd'd), bytes_ratio = bytes / fp32's (fp32 + zstd)
#   bits_per_param = 8 bytes / parameters
# Targets: int4 bytes_ratio <= 0.15 within 1 % of fp32's loss; topk (the sparse one)
# <= 1/16 within 1 %. XFFL_ENC_LIST picks encodings (fp32 first: it is the reference);
# the XFFL_FVC_* variables shrink the setting for a smoke run. About 6 minutes per
# encoding on 2 idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
LIST=${XFFL_ENC_LIST:-fp32 bf16 int8 int4 topk topk:16 topk:28 topk:48 topk:28/decay0.9 topk:28/flush2}
log() { echo "encodings: $*" >&2; }
source bench/lib/fed.sh
params=$("$X" init --model "$MODEL" --dry-run 2>/dev/null | sed -n 's/^parameters: \([0-9,]*\).*/\1/p' | tr -d , || true)
log "$MODEL, $ROUNDS rounds of $per_round tokens, H=$H; encodings: $LIST"
# An item ENC/flushN adds --encoding-flush N: the last N rounds send every entry;
# ENC/decayB adds --encoding-decay B: the error-feedback residual decays by B a round.
# XFFL_ENC_JOBS runs that many encodings at once (each with the same threads as
# alone, so the same bits): on a machine shared with other jobs it takes a larger
# share; loss and bytes do not depend on it.
JOBS=${XFFL_ENC_JOBS:-1}
run_one() { # item -> $W/result-<name>: "LOSS BYTES"
  local item=$1 enc=${1%%/*} extra=() name=enc-${1//[:\/]/-}
  case $item in
    */flush*) extra=(--encoding-flush "${item##*/flush}") ;;
    */decay*) extra=(--encoding-decay "${item##*/decay}") ;;
  esac
  fed_run "$name" copyrights,licenses "$W/data/{facility}/*_train_*.bin" "$H" "$fedthr" \
    --algo diloco $DILOCO --encoding "$enc" ${extra[@]+"${extra[@]}"} >"$W/result-$name"
}
running=0
for item in $LIST; do
  if [ "$JOBS" -le 1 ]; then run_one "$item"; continue; fi
  run_one "$item" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
ref_loss='' ref_bytes='' rc=0
for item in $LIST; do
  # a run that failed (or was stopped) left no result: said, and the rest still printed
  read -r loss bytes <"$W/result-enc-${item//[:\/]/-}" || { log "$item: no result"; rc=1; continue; }
  [ -n "$ref_loss" ] || { ref_loss=$loss; ref_bytes=$bytes; }
  awk -v e="$item" -v l="$loss" -v b="$bytes" -v rl="$ref_loss" -v rb="$ref_bytes" -v p="${params:-0}" \
      -v m="$MODEL" -v r="$ROUNDS" -v h="$H" 'BEGIN {
    lr = l / rl; br = b / rb
    target = e == "int4" ? 0.15 : e ~ /^topk/ ? 1 / 16 : 0
    printf "{\"bench\": \"encodings\", \"encoding\": \"%s\", \"loss\": %.4f, \"loss_ratio\": %.4f, ", e, l, lr
    bits = p > 0 ? sprintf("%.3f", 8 * b / p) : "null"
    meets = target ? ((br <= target && lr <= 1.01) ? "true" : "false") : "null"
    printf "\"bytes\": %d, \"bytes_ratio\": %.4f, \"bits_per_param\": %s, ", b, br, bits
    printf "\"target_bytes_ratio\": %s, \"meets_target\": %s, ", (target ? target : "null"), meets
    printf "\"model\": \"%s\", \"rounds\": %d, \"local_steps\": %d, \"ref\": \"fp32\"}\n", m, r, h }'
done
exit $rc
