#!/usr/bin/env bash
# learning_bound (issue 20, point 3, the learning half): how many local steps two
# facilities need to reach the one-facility baseline's loss when rounds cost nothing.
# bench/scaling.sh times the whole federation over a shaped link; this bench takes the
# link, the store and the rounds' fixed costs away (xffl simulate on a file:// store)
# and measures learning alone, which bounds what any round protocol could reach:
#   ratio <= steps_ratio * (a facility's step time / the baseline's step time)
# with steps_ratio the steps a facility trained until the first version at or below
# the baseline's loss, over the baseline's steps. With one core each and the same step
# time, scaling's target ratio <= 0.6 needs steps_ratio well under 0.6, leaving the
# difference for every round's job start, transfers and aggregation.
# Setting: bench/lib/fed.sh's (`small`, the two non-IID corpora, one central
# pre-training) with 400 K tokens; the baseline is fed_baseline's (one core, the union,
# one job). XFFL_LB_CONFIGS lists H:EXTRA:OUTER_LR:OUTER_MOMENTUM items, EXTRA the
# rounds planned (and the learning-rate schedule's span) as a multiple of the
# baseline's tokens. One JSON line per item, {"bench":"learning_bound","local_steps",
# "extra","outer_lr","outer_momentum","steps_ratio" (null: not reached),...}. Losses do
# not depend on the machine's load. About 4 minutes per item on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
log() { echo "learning_bound: $*" >&2; }
command -v taskset >/dev/null || { log "SKIP: taskset not found"; exit 0; }
CONFIGS=${XFFL_LB_CONFIGS:-25:1.5:0.7:0.5 25:1.2:0.5:0.3 25:1.0:0.5:0.3 50:1.2:0.5:0.3}
export XFFL_FVC_TOKENS=${XFFL_LB_TOKENS:-400000}
source bench/lib/fed.sh
fed_baseline

for item in $CONFIGS; do
  IFS=: read -r h extra olr omom <<<"$item"
  name=learn-h$h-e$extra-$olr-$omom
  rounds=$(awk -v e="$extra" -v t="$TOKENS" -v p=$(( 2 * h * BATCH * SEQ )) 'BEGIN {r = e * t / p; print (r == int(r)) ? r : int(r) + 1}')
  rm -rf "${W:?}/$name" "$W/state-$name"
  "$X" simulate --store "$W/$name" --facilities copyrights,licenses --rounds "$rounds" \
    --data "$W/data/{facility}/*_train_*.bin" --state "$W/state-$name/{facility}" --threads 1 -- "${common[@]}" \
    --seed "$SEED" --data-order "$ORDER" --batch "$BATCH" --total-rounds "$rounds" --local-steps "$h" --algo diloco \
    --outer-lr "$olr" --outer-momentum "$omom" ${start[@]+"${start[@]}"} >/dev/null 2>"$W/$name.log" ||
    { tail -20 "$W/$name.log" >&2; exit 1; }
  # the first version at or below the target, from 0.4x the baseline's steps (earlier
  # ones are far above it: the bench's own runs never came close)
  hit=null last=null
  for v in $(seq 1 "$rounds"); do
    [ $(( v * h * 10 )) -ge $(( base_steps * 4 )) ] || continue
    last=$("$X" eval --store "$W/$name" --version "$v" --data "$W/data/*/*_val_*.bin" --json 2>/dev/null |
      grep -o '"loss": *[0-9.eE+-]*' | head -1 | sed 's/.*: *//')
    if awk -v l="$last" -v t="$target" 'BEGIN {exit !(l <= t)}'; then hit=$v; break; fi
  done
  log "$name: $rounds rounds planned, target reached at round $hit (loss $last)"
  awk -v h="$h" -v e="$extra" -v olr="$olr" -v om="$omom" -v hit="$hit" -v last="$last" -v bs="$base_steps" \
      -v tgt="$target" -v rounds="$rounds" 'BEGIN {
    printf "{\"bench\": \"learning_bound\", \"local_steps\": %d, \"extra\": %s, \"outer_lr\": %s, \"outer_momentum\": %s, ", h, e, olr, om
    if (hit == "null") printf "\"steps_ratio\": null, \"rounds_to_target\": null, \"final_loss\": %s, ", last
    else printf "\"steps_ratio\": %.3f, \"rounds_to_target\": %d, \"loss_at_target\": %s, ", hit * h / bs, hit, last
    printf "\"rounds_planned\": %d, \"baseline_steps\": %d, \"target_loss\": %s}\n", rounds, bs, tgt }'
  [ -n "${XFFL_FVC_DIR:-}" ] || rm -rf "$W/$name" "$W/state-$name"
done
