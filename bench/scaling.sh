#!/usr/bin/env bash
# scaling (issue 20, point 3): does a second facility pay for itself over a real link?
# Two facilities, each in its own network namespace pinned to one core (taskset), reach
# an s3rver in a third namespace through veth links shaped with tc tbf (both
# directions, XFFL_SCALE_RATE); the aggregation job runs beside the store on both cores
# (its cost counts). The fed-vs-central setting (bench/lib/fed.sh: `small`, the two
# non-IID corpora, diloco, one central pre-training, untimed) with:
#   baseline  one facility, one core, the union of both corpora, no rounds and no link:
#             one train job of every step (file:// store); its final validation loss
#             is the target L and its wall-clock time the reference
#   2 facilities, for each encoding (XFFL_SCALE_ENCODINGS) and H (XFFL_SCALE_H, two
#             values, the smaller first), for up to XFFL_SCALE_EXTRA times the
#             baseline's tokens: the wall-clock time until the first version whose
#             validation loss is <= L. XFFL_SCALE_MODE: rounds (default; each facility
#             one process for all its rounds, train --rounds N --ahead, as one batch
#             allocation would run them; the aggregation jobs run beside them), ahead
#             (each facility's jobs back to back with train --ahead, one a round) or
#             sequential (rounds of train ‖ train, then aggregate)
# One JSON line per configuration ({"bench":"scaling","encoding","local_steps","ratio":
# its time / the baseline's, ...}; the fp32 line at the smaller H first; ratio null when
# L was not reached, with final_loss and ratio_above, the whole run's time over the
# baseline's, which the ratio would exceed), with comm_fraction: the share of a round
# that is neither training nor aggregation (fetching, encoding, uploading: what the
# link costs; ahead, where aggregation runs beside training, the share that is not
# training). XFFL_SCALE_PLOT
# (default build/bench/scaling.svg) draws validation loss against
# wall-clock time with gnuplot. Namespaces, links and s3rver are removed when the bench
# ends, also after a failure. Needs root (ip netns); prints SKIP otherwise.
# Every facility keeps --state and replays each version, so the aggregation jobs run
# with --no-update (XFFL_SCALE_AGG_FLAGS): the XOR update would be written and never read.
# The aggregation jobs keep their own cache (aggregate --state): each reads its base from
# the version the one before wrote, not from the store.
# Link arithmetic (docs/federation.md "Planning a federation"): XFFL_SCALE_RATE is
# chosen so that fp32 at the smaller H spends >= 30 % of a round on the link, as 7b
# between two real sites would.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
log() { echo "scaling: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "SKIP: needs root for ip netns and tc"; exit 0; }
for t in ip tc taskset gnuplot; do command -v $t >/dev/null || { log "SKIP: $t not found"; exit 0; }; done
[ "$(nproc)" -ge 2 ] || { log "SKIP: needs 2 cores (one per facility)"; exit 0; }

RATE=${XFFL_SCALE_RATE:-100mbit}
# how the facilities' jobs follow each other: rounds (train --rounds N --ahead, one
# process a facility), ahead (train --ahead, a job a round; aggregation beside training
# in both) or sequential (train || train, then aggregate, round after round)
MODE=${XFFL_SCALE_MODE:-rounds}
HS=${XFFL_SCALE_H:-25 50}
ENCODINGS=${XFFL_SCALE_ENCODINGS:-fp32 int4 topk:16}
read -r -a AGG_FLAGS <<<"${XFFL_SCALE_AGG_FLAGS---no-update}"
# The token budget and the outer optimizer, from learning-only runs of this setting
# (docs/federation.md "Scaling"): ratio <= 0.6 needs the two facilities to reach L
# within 1.2x the baseline's tokens, and a schedule that ends there reached it sooner
# (0.54x the baseline's steps a facility at H = 25) than one planned for 1.5x (0.59x);
# outer learning rate 0.5 with momentum 0.3 reached it sooner still (0.50x) than
# fed_vs_central's 0.7 / 0.5.
EXTRA=${XFFL_SCALE_EXTRA:-1.2}
export XFFL_FVC_DILOCO=${XFFL_FVC_DILOCO---outer-lr 0.5 --outer-momentum 0.3}
export XFFL_FVC_TOKENS=${XFFL_SCALE_TOKENS:-400000}
source bench/lib/fed.sh
export XDG_CONFIG_HOME=$W/config   # the federations' key pairs: the bench's own
FACS=(copyrights licenses)

# --- network: namespaces st (store, aggregator), f0, f1; veth st<->fI, 10.231.I.0/24
tag=x$$
NS_ST=$tag-st
S3PID=''
net_down() {
  [ -z "$S3PID" ] || S3RVER_PID=$S3PID tests/s3/stop.sh --rm
  for ns in "$NS_ST" "$tag-f0" "$tag-f1"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap 'net_down; [ -n "${XFFL_FVC_DIR:-}" ] || rm -rf "$W"' EXIT
ip netns add "$NS_ST"
ip -n "$NS_ST" link set lo up
for i in 0 1; do
  ip netns add "$tag-f$i"
  ip -n "$tag-f$i" link set lo up
  ip link add "${tag}s$i" netns "$NS_ST" type veth peer name "${tag}f$i" netns "$tag-f$i"
  ip -n "$NS_ST" addr add "10.231.$i.1/24" dev "${tag}s$i"
  ip -n "$tag-f$i" addr add "10.231.$i.2/24" dev "${tag}f$i"
  ip -n "$NS_ST" link set "${tag}s$i" up
  ip -n "$tag-f$i" link set "${tag}f$i" up
  # the link's rate both ways: the facility's uploads and its downloads
  ip netns exec "$NS_ST" tc qdisc add dev "${tag}s$i" root tbf rate "$RATE" burst 256kb latency 200ms
  ip netns exec "$tag-f$i" tc qdisc add dev "${tag}f$i" root tbf rate "$RATE" burst 256kb latency 200ms
done
eval "$(ip netns exec "$NS_ST" taskset -c 0,1 tests/s3/start.sh --addr 0.0.0.0)"
S3PID=$S3RVER_PID
PORT=$S3RVER_PORT
export XFFL_S3_HTTPS=0
in_st() { ip netns exec "$NS_ST" env XFFL_S3_ENDPOINT=127.0.0.1:$PORT "$@"; }
in_fac() { local i=$1; shift; ip netns exec "$tag-f$i" env XFFL_S3_ENDPOINT=10.231.$i.1:$PORT taskset -c "$i" "$@"; }
now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }
loss_of() { # store version
  in_st "$X" eval --store "$1" --version "$2" --data "$W/data/*/*_val_*.bin" --threads 2 --json 2>/dev/null |
    grep -o '"loss": *[0-9.eE+-]*' | head -1 | sed 's/.*: *//'
}

# --- baseline: one facility, one core, every step in one job, no link
fed_baseline
printf '0 %s\n%s %s\n' "${pre_loss:-null}" "$base_s" "$target" >"$W/base.dat"

# One configuration's rounds; each appends "round end_seconds aggregate_seconds
# train_seconds" to $W/$name.rounds (end: version r published, from t0; train: the
# slower facility's). Uses name, url, rounds, t0.
train_job() { # facility-index round [extra...]: one facility's job, its --json line in $W/$name.t<i>.r<r>
  local i=$1 r=$2; shift 2
  in_fac "$i" "$X" --json train --store "$url" --facility "${FACS[$i]}" --data "$W/data/${FACS[$i]}/*_train_*.bin" \
    --state "$W/state-$name/${FACS[$i]}" --threads 1 --round "$r" "$@" >"$W/$name.t$i.r$r" 2>>"$W/$name.log"
}
json_num() { grep -o "\"$1\": *[0-9.eE+-]*" "$2" | head -1 | sed 's/.*: *//'; }
slower_train() { # round
  cat "$W/$name.t0.r$1" "$W/$name.t1.r$1" | grep -o '"train_seconds": *[0-9.]*' | sed 's/.*: *//' | sort -g | tail -1
}
# sequential: rounds of train || train, then aggregate (what chained per-round jobs do)
run_sequential() {
  for r in $(seq 1 "$rounds"); do
    for i in 0 1; do train_job "$i" "$r" & eval "p$i=\$!"; done
    wait "$p0" && wait "$p1" || { tail -20 "$W/$name.log" >&2; exit 1; }
    ta=$(now)
    in_st taskset -c 0,1 "$X" aggregate --store "$url" --round "$r" --threads 2 --state "$W/agg-$name" \
      ${AGG_FLAGS[@]+"${AGG_FLAGS[@]}"} >/dev/null 2>>"$W/$name.log" ||
      { tail -20 "$W/$name.log" >&2; exit 1; }
    te=$(now)
    echo "$r $(minus "$te" "$t0") $(minus "$te" "$ta") $(slower_train "$r")" >>"$W/$name.rounds"
  done
}
# ahead: each facility runs its rounds' jobs back to back with train --ahead (round r+1
# trains from its own replay of version r while the aggregation job publishes it), and
# the aggregation jobs run beside them, one per round, each waiting for its quorum
run_ahead() { # [rounds]: one process a facility (its lines split into the per-round files)
  for i in 0 1; do
    if [ "${1:-}" = rounds ]; then
      ( train_job "$i" 1 --rounds "$rounds" --ahead --wait 600 || exit 1
        for r in $(seq 1 "$rounds"); do grep "\"round\": $r," "$W/$name.t$i.r1" >"$W/$name.t$i.round$r" || true; done
        for r in $(seq 1 "$rounds"); do mv "$W/$name.t$i.round$r" "$W/$name.t$i.r$r"; done ) &
    else
      ( for r in $(seq 1 "$rounds"); do train_job "$i" "$r" --ahead --wait 600 || exit 1; done ) &
    fi
    eval "p$i=\$!"
  done
  : >"$W/$name.agg"
  for r in $(seq 1 "$rounds"); do
    in_st taskset -c 0,1 "$X" --json aggregate --store "$url" --round "$r" --threads 2 --deadline 900 --poll 0.1 \
      --state "$W/agg-$name" ${AGG_FLAGS[@]+"${AGG_FLAGS[@]}"} \
      >"$W/$name.a$r" 2>>"$W/$name.log" || { kill "$p0" "$p1" 2>/dev/null; tail -20 "$W/$name.log" >&2; exit 1; }
    te=$(now)
    echo "$r $(minus "$te" "$t0") $(awk -v a="$(json_num seconds "$W/$name.a$r")" -v w="$(json_num wait_seconds "$W/$name.a$r")" \
      'BEGIN {printf "%.3f", a - w}')" >>"$W/$name.agg"
  done
  wait "$p0" && wait "$p1" || { tail -20 "$W/$name.log" >&2; exit 1; }
  while read -r r end agg; do echo "$r $end $agg $(slower_train "$r")"; done <"$W/$name.agg" >>"$W/$name.rounds"
}

# --- two facilities over the shaped link
plots=("'$W/base.dat' with linespoints title 'one facility, one core'")
configs=()
first_h=${HS%% *}
configs+=("fp32 $first_h")
for h in $HS; do for enc in $ENCODINGS; do [ "$enc $h" = "fp32 $first_h" ] || configs+=("$enc $h"); done; done
for cfg in "${configs[@]}"; do
  read -r enc h <<<"$cfg"
  name=run-${enc/:/-}-h$h
  url=s3://xffl/$name
  rounds=$(awk -v e="$EXTRA" -v t="$XFFL_FVC_TOKENS" -v p=$(( 2 * h * BATCH * SEQ )) 'BEGIN {r = e * t / p; print (r == int(r)) ? r : int(r) + 1}')
  in_st "$X" init --store "$url" --facilities "$(IFS=,; echo "${FACS[*]}")" "${common[@]}" --batch "$BATCH" \
    --total-rounds "$rounds" --local-steps "$h" --algo diloco $DILOCO --encoding "$enc" ${start[@]+"${start[@]}"} \
    >/dev/null 2>"$W/$name.init.log" || { cat "$W/$name.init.log" >&2; exit 1; }
  : >"$W/$name.rounds"
  t0=$(now)
  case $MODE in rounds) run_ahead rounds ;; ahead) run_ahead ;; *) run_sequential ;; esac
  # The first version at or below the baseline's loss. Loss falls with rounds, but not
  # strictly (non-IID facilities: a version can dip below L and the next come back
  # above), so from the round where a facility has trained 0.4 x the baseline's steps
  # every version is evaluated, as learning_bound does; before it every stride-th one
  # (points for the plot; one at or below L there sends the scan back over its gap).
  stride=$(( rounds / 8 > 0 ? rounds / 8 : 1 ))
  win=$(( (base_steps * 4 + h * 10 - 1) / (h * 10) ))
  echo "0 ${pre_loss:-null}" >"$W/$name.dat"
  hit='' prev=0
  for v in $(seq 1 "$rounds"); do
    [ "$v" -ge "$win" ] || [ $(( v % stride )) -eq 0 ] || continue
    l=$(loss_of "$url" "$v")
    echo "$(awk -v v="$v" '$1 == v {print $2}' "$W/$name.rounds") $l" >>"$W/$name.dat"
    if awk -v l="$l" -v t="$target" 'BEGIN {exit !(l <= t)}'; then
      hit=$v
      for u in $(seq $(( prev + 1 )) $(( v - 1 ))); do
        l=$(loss_of "$url" "$u")
        if awk -v l="$l" -v t="$target" 'BEGIN {exit !(l <= t)}'; then hit=$u; break; fi
      done
      break
    fi
    prev=$v
  done
  # not reached: the last version's loss (every version from win is evaluated), the
  # whole run a lower bound
  if [ -n "$hit" ]; then final=null; else final=$l; fi
  awk -v hit="${hit:-0}" -v base="$base_s" -v enc="$enc" -v h="$h" -v rounds="$rounds" -v rate="$RATE" -v tgt="$target" \
      -v final="$final" -v mode="$MODE" '
    { t[$1] = $2; agg += $3; train += $4; round += ($1 == 1 ? $2 : $2 - prev); prev = $2; n++ }
    END {
      comm = (round - (mode == "ahead" ? 0 : agg) - train) / round
      printf "{\"bench\": \"scaling\", \"encoding\": \"%s\", \"local_steps\": %d, \"mode\": \"%s\", ", enc, h, mode
      if (hit > 0) printf "\"ratio\": %.3f, \"seconds\": %.1f, \"rounds_to_target\": %d, ", t[hit] / base, t[hit], hit
      else printf "\"ratio\": null, \"seconds\": null, \"rounds_to_target\": null, \"final_loss\": %s, \"ratio_above\": %.3f, ", final, t[rounds] / base
      printf "\"baseline_seconds\": %.1f, \"target_loss\": %.4f, \"rounds_run\": %d, ", base, tgt, rounds
      printf "\"round_seconds\": %.2f, \"aggregate_seconds\": %.2f, \"train_seconds\": %.2f, \"comm_fraction\": %.3f, ", round / n, agg / n, train / n, comm
      printf "\"link\": \"%s\", \"target_ratio\": 0.6, \"meets_target\": %s}\n", rate, (hit > 0 && t[hit] / base <= 0.6) ? "true" : "false"
    }' "$W/$name.rounds"
  plots+=("'$W/$name.dat' with linespoints title '2 facilities, $enc, H=$h'")
  [ -n "${XFFL_FVC_DIR:-}" ] || rm -rf "$W/state-$name" "$W/agg-$name" "$S3RVER_DIR/data/xffl/$name"
done
out=${XFFL_SCALE_PLOT:-$PWD/$B/bench/scaling.svg}
mkdir -p "$(dirname "$out")"
gnuplot <<EOF
set terminal svg size 900,560
set output '$out'
set xlabel 'wall-clock seconds (after pre-training)'
set ylabel 'validation loss (nats/byte)'
set key top right
plot $(IFS=,; echo "${plots[*]}")
EOF
log "plot: $out"
