#!/usr/bin/env bash
# byzantine (issue 14, point 3): robust aggregation against one Byzantine facility,
# as a training run. 4 facilities (f1..f4: the demo's corpora, /usr/share/common-licenses
# and /usr/share/doc/*/copyright up to ~400 KB, files dealt round-robin, so IID) train
# the `tiny` preset; f4 is authorised (its COMMITs are as valid as anyone's)
# and every round sends, through its own `xffl train`, instead of its delta
#   negate100   the delta x -100
#   noise100    Gaussian noise with 100 x the delta's L2 norm
# (the benchmark-only hook XFFL_BENCH_ATTACK, pipelines/bench_attack.h). Runs:
#   - all honest, fedavg: the reference (ref)
#   - per attack: fedavg (no defence: must be >= 1.20 x ref, or the attack did not bite)
#     and the defences median, trimmed (--trim-fraction 0.25: one of four cut at each
#     end) and delta_clip (fedavg with --delta-clip M: each delta scaled to at most M x
#     the round's median delta norm before combining), as a user gets them: each with
#     its default delta filter (F = 3: a delta farther than F x the median distance from
#     the coordinate-wise median delta, or pointing away from it, is left out before
#     combining; pipelines/algo.h PIPE_ALGO_ROBUST_FILTER), and each with the filter
#     off (--delta-filter 0; names *_nofilter), which shows why it is the default: alone,
#     none of the three combines meets the target under negate100 (docs/federation.md
#     "Robustness").
#   - each defence all honest (what the defence costs without an attacker; `honest`, and
#     `honest_left_out`: how many honest deltas its filter left out over all rounds)
# XFFL_BYZ_SPLIT=blocks deals the files to the facilities in contiguous blocks of the
# sorted list instead of round-robin (non-IID: licences apart from package copyrights),
# to check that the filter leaves honest facilities alone when their data differ.
# All runs start from one central pre-training on the union (XFFL_BYZ_PRETRAIN rounds of
# 4 H steps, 0 = from the random initialisation): short, so that the federated rounds
# still matter (pretrained_ratio: the pre-trained model's loss / ref, > 1.05 means doing
# nothing would miss the target). Evaluated on the union of the four held-out sets
# (nats per token; byte tokenizer).
# One JSON line per attack and defence: value = its final validation loss, ref = the
# all-honest fedavg run's, ratio = value/ref, fedavg_attacked beside it; meets_target:
# ratio <= 1.05, the undefended fedavg >= 1.20 x ref and pretrained_ratio > 1.05; delta_filter:
# F, or 0 without the filter. 21 training runs: 28 min on 2 cores shared with other jobs (load
# 13-17, a make test among them), 10-20 s a run on idle cores (about 6 min).
# XFFL_BYZ_ROUNDS, XFFL_BYZ_H, XFFL_BYZ_CLIP, XFFL_BYZ_ATTACKS, XFFL_BYZ_DEFENCES (names, e.g. "median delta_clip_nofilter"), XFFL_BYZ_SPLIT,
# XFFL_BYZ_PRETRAIN and XFFL_BYZ_DIR (keep the stores, and reuse its data and pre-training
# on the next run) change the setting.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
ROUNDS=${XFFL_BYZ_ROUNDS:-10}
PRETRAIN=${XFFL_BYZ_PRETRAIN:-4}
H=${XFFL_BYZ_H:-50}
BATCH=8
SEQ=64
LR=3e-3
CLIP=${XFFL_BYZ_CLIP:-1}
SPLIT=${XFFL_BYZ_SPLIT:-iid}
ATTACKS=${XFFL_BYZ_ATTACKS:-negate100 noise100}
ATTACKER=f4
W=${XFFL_BYZ_DIR:-$(mktemp -d)}
[ -n "${XFFL_BYZ_DIR:-}" ] || trap 'rm -rf "$W"' EXIT
log() { echo "byzantine: $*" >&2; }
unset XFFL_BENCH_ATTACK

mkdir -p "$W"/corpus/f{1,2,3,4}
i=0 total=0 files=()
for f in $(ls /usr/share/common-licenses/* | sort) $(ls /usr/share/doc/*/copyright 2>/dev/null | sort); do
  { [ -f "$f" ] && [ ! -L "$f" ]; } || continue
  case $f in
    /usr/share/doc/*) total=$(( total + $(stat -c %s "$f") )); [ "$total" -gt 400000 ] && break
                      n=$(basename "$(dirname "$f")") ;;
    *) n=$(basename "$f") ;;
  esac
  files+=("$f:$n")
done
for e in "${files[@]}"; do
  case $SPLIT in
    iid) fac=$(( i % 4 + 1 )) ;;
    blocks) fac=$(( i * 4 / ${#files[@]} + 1 )) ;;
    *) log "XFFL_BYZ_SPLIT=$SPLIT: iid or blocks"; exit 2 ;;
  esac
  cp "${e%%:*}" "$W/corpus/f$fac/${e##*:}.txt"
  i=$(( i + 1 ))
done
for fac in f1 f2 f3 f4; do
  [ -d "$W/data/$fac" ] || "$X" data pack "$W/corpus/$fac"/* --out "$W/data/$fac" --val-fraction 0.1 >/dev/null 2>&1
done

inner=(--model tiny --seq-len "$SEQ" --batch "$BATCH" --lr "$LR" --min-lr "$(echo "$LR" | awk '{print $1/10}')" --seed 7
       --keep-inner-state)
pre_loss=null
if [ "$PRETRAIN" -gt 0 ] && [ -n "${XFFL_BYZ_DIR:-}" ] && [ -s "$W/pretrained.loss" ]; then
  pre_loss=$(cat "$W/pretrained.loss")  # a kept XFFL_BYZ_DIR: the same pre-training (same settings)
  inner+=(--from "$W/pretrained")
elif [ "$PRETRAIN" -gt 0 ]; then
  # one trainer on the union of the four facilities' data, 4 H steps a round
  t0=$(date +%s)
  "$X" simulate --store "$W/pretrained" --facilities central --rounds "$PRETRAIN" --data "$W/data/*/*_train_*.bin" \
    --threads "$(nproc)" --state "$W/state-pretrained/{facility}" -- "${inner[@]}" --total-rounds "$PRETRAIN" \
    --local-steps $(( 4 * H )) --algo fedavg >/dev/null 2>&1
  pre_loss=$("$X" eval --store "$W/pretrained" --data "$W/data/*/*_val_*.bin" --threads 2 --json 2>/dev/null \
             | grep -o '"loss": *[^,}]*' | head -1 | sed 's/.*: *//')
  echo "$pre_loss" >"$W/pretrained.loss"
  log "pretrained: loss $pre_loss after $PRETRAIN rounds of $(( 4 * H )) steps in $(( $(date +%s) - t0 ))s"
  inner+=(--from "$W/pretrained")
fi
common=("${inner[@]}" --total-rounds "$ROUNDS" --local-steps "$H")
run() { # name attack(- for none) init-flags... ; prints the final validation loss
  local name=$1 attack=$2 t0; shift 2
  t0=$(date +%s)
  rm -rf "${W:?}/$name" "$W/state-$name"
  if [ "$attack" = - ]; then
    "$X" simulate --store "$W/$name" --facilities f1,f2,f3,f4 --rounds "$ROUNDS" --data "$W/data/{facility}/*_train_*.bin" \
      --threads 1 --state "$W/state-$name/{facility}" -- "${common[@]}" "$@" >/dev/null 2>"$W/$name.log"
  else
    # every WARN the hook logs (one a round) is counted: the attack must have run
    XFFL_BENCH_ATTACK="$attack:$ATTACKER" "$X" simulate --store "$W/$name" --facilities f1,f2,f3,f4 --rounds "$ROUNDS" \
      --data "$W/data/{facility}/*_train_*.bin" --threads 1 --state "$W/state-$name/{facility}" -- "${common[@]}" "$@" \
      >/dev/null 2>"$W/$name.log"
    local warns; warns=$(grep -c "BENCHMARK ATTACK" "$W/$name.log" || true)
    [ "$warns" = "$ROUNDS" ] || { log "$name: the attack ran $warns times, not $ROUNDS"; exit 1; }
  fi
  local loss; loss=$("$X" eval --store "$W/$name" --data "$W/data/*/*_val_*.bin" --threads 2 --json 2>/dev/null \
                     | grep -o '"loss": *[^,}]*' | head -1 | sed 's/.*: *//')
  log "$name: loss ${loss:-?} after $ROUNDS rounds in $(( $(date +%s) - t0 ))s"
  [ -n "${XFFL_BYZ_DIR:-}" ] || rm -rf "${W:?}/$name" "$W/state-$name"
  echo "${loss:-nan}"
}
all_defences=("median:--algo median" "trimmed:--algo trimmed --trim-fraction 0.25" "delta_clip:--algo fedavg --delta-clip $CLIP"
              "median_nofilter:--algo median --delta-filter 0"
              "trimmed_nofilter:--algo trimmed --trim-fraction 0.25 --delta-filter 0"
              "delta_clip_nofilter:--algo fedavg --delta-clip $CLIP --delta-filter 0")
defences=()
for d in "${all_defences[@]}"; do
  case " ${XFFL_BYZ_DEFENCES:-${all_defences[*]%%:*}} " in *" ${d%%:*} "*) defences+=("$d") ;; esac
done
log "tiny, 4 facilities (attacker $ATTACKER), $ROUNDS rounds of H=$H x $BATCH x $SEQ tokens each"
ref=$(run honest-fedavg - --algo fedavg)
declare -A honest left_out
for d in "${defences[@]}"; do
  honest[${d%%:*}]=$(run "honest-${d%%:*}" - ${d#*:})
  # aggregate logs each round's filter verdicts ("f2 left out (distance ...)")
  left_out[${d%%:*}]=$(grep -o " left out (" "$W/honest-${d%%:*}.log" | wc -l || true)
done
for a in $ATTACKS; do
  fed=$(run "$a-fedavg" "$a" --algo fedavg)
  for d in "${defences[@]}"; do
    name=${d%%:*}
    v=$(run "$a-$name" "$a" ${d#*:})
    filt=3; case "${d#*:}" in *"--delta-filter 0"*) filt=0 ;; esac
    awk -v filt="$filt" -v v="$v" -v r="$ref" -v f="$fed" -v h="${honest[$name]}" -v hl="${left_out[$name]}" -v splitname="$SPLIT" -v a="$a" -v n="$name" -v flags="${d#*:}" \
        -v rounds="$ROUNDS" -v hh="$H" -v b="$BATCH" -v t="$SEQ" -v pl="$pre_loss" -v pr="$PRETRAIN" 'function num(x) { return (x ~ /^[0-9.eE+-]+$/) ? x + 0 : -1 }
      function js(x) { return num(x) < 0 ? "null" : sprintf("%.4f", x) }
      BEGIN {
      vv = num(v); ff = num(f); rr = num(r)
      ratio = (vv >= 0 && rr > 0) ? vv / rr : -1
      fratio = (ff >= 0 && rr > 0) ? ff / rr : 1e30   # a diverged (nan/inf) fedavg is worse than any ratio
      pratio = (num(pl) >= 0 && rr > 0) ? num(pl) / rr : 1e30  # no pre-training: the random start
      printf "{\"bench\": \"byzantine_%s\", \"attack\": \"%s\", \"value\": %s, \"unit\": \"nats/token\", ", n, a, js(vv)
      printf "\"ref_name\": \"all honest, fedavg\", \"ref\": %s, \"ratio\": %s, ", js(rr), (ratio < 0 ? "null" : sprintf("%.4f", ratio))
      printf "\"fedavg_attacked\": %s, \"fedavg_ratio\": %s, \"honest\": %s, \"honest_left_out\": %d, ", js(ff), (fratio >= 1e30 ? "null" : sprintf("%.4f", fratio)), js(num(h)), hl
      printf "\"target_ratio\": 1.05, \"fedavg_target_ratio\": 1.20, \"meets_target\": %s, ", ((ratio >= 0 && ratio <= 1.05 && fratio >= 1.20 && pratio > 1.05) ? "true" : "false")
      printf "\"flags\": \"%s\", \"delta_filter\": %g, \"facilities\": 4, \"split\": \"%s\", \"attackers\": 1, \"model\": \"tiny\", \"rounds\": %d, \"local_steps\": %d, \"batch\": %d, \"seq_len\": %d, ", flags, filt + 0, splitname, rounds, hh, b, t
      printf "\"pretrain_rounds\": %d, \"pretrained_loss\": %s, \"pretrained_ratio\": %s}\n", pr, js(num(pl)), (pratio >= 1e30 ? "null" : sprintf("%.4f", pratio)) }'
  done
done
