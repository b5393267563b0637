# The fed-vs-central setting, shared by the federated-learning benches (fed_vs_central,
# encodings; bench/fed_vs_central.sh's header says why each choice): the demo's two
# non-IID corpora, the hyper-parameters, one central pre-training, and fed_run.
# Sourced, not a bench (bench/run lists bench/*.sh only). Expects X (the xffl binary)
# and log(); sets W (the work directory, removed on exit unless XFFL_FVC_DIR names it).
MODEL=${XFFL_FVC_MODEL:-small}
TOKENS=${XFFL_FVC_TOKENS:-1000000}
H=${XFFL_FVC_H:-50}
BATCH=${XFFL_FVC_BATCH:-1}
SEQ=${XFFL_FVC_SEQ:-256}
LR=${XFFL_FVC_LR:-1e-3}
PRETRAIN=${XFFL_FVC_PRETRAIN:-512000}
DILOCO=${XFFL_FVC_DILOCO---outer-lr 0.7 --outer-momentum 0.5}
# The seed of every run (model initialisation, the pre-training, and with
# --data-order strided the data order); fed_vs_central sets it per seed.
SEED=${XFFL_FVC_SEED:-7}
# How each facility reads its shards (init --data-order): files or strided.
ORDER=${XFFL_FVC_ORDER:-files}
pre_rounds=0
# Threads that yield while they wait: on a machine shared with other jobs a spinning
# OpenMP barrier made a 2-thread pre-training round 8x slower. Results do not change.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
W=${XFFL_FVC_DIR:-$(mktemp -d)}
[ -n "${XFFL_FVC_DIR:-}" ] || trap 'rm -rf "$W"' EXIT
per_round=$(( 2 * H * BATCH * SEQ ))
ROUNDS=$(( (TOKENS + per_round - 1) / per_round ))
CORES=$(nproc)
fedthr=$(( CORES / 2 > 0 ? CORES / 2 : 1 ))

# $W/data/{licenses,copyrights}: /usr/share/common-licenses and up to ~400 KB of
# /usr/share/doc/*/copyright, each packed with 10 % held out.
mkdir -p "$W/corpus/licenses" "$W/corpus/copyrights"
_total=0
for _f in /usr/share/common-licenses/*; do [ -f "$_f" ] && [ ! -L "$_f" ] && cp "$_f" "$W/corpus/licenses/$(basename "$_f").txt"; done
for _f in $(ls /usr/share/doc/*/copyright 2>/dev/null | sort); do
  cp "$_f" "$W/corpus/copyrights/$(basename "$(dirname "$_f")").txt"
  _total=$(( _total + $(stat -c %s "$_f") )); [ "$_total" -gt 400000 ] && break
done
for _fac in licenses copyrights; do
  [ -d "$W/data/$_fac" ] || "$X" data pack "$W/corpus/$_fac"/* --out "$W/data/$_fac" --val-fraction 0.1 >/dev/null 2>&1
done

# The validation loss of store $1's latest version on both facilities' held-out data.
fed_eval() {
  "$X" eval --store "$1" --data "$W/data/*/*_val_*.bin" --json 2>/dev/null | grep -o '"loss": *[0-9.eE+-]*' | head -1 | sed 's/.*: *//'
}

# Mean bytes= of store $1's COMMITs (one per facility and round): what a facility
# uploads per round, as stored (encoded, shuffled, zstd'd).
fed_commit_bytes() {
  find "$1/rounds" -name 'COMMIT-*' -exec grep -h '^bytes=' {} + | awk -F= '{s += $2; n++} END {if (n) printf "%.0f\n", s / n; else print 0}'
}

# Inner hyper-parameters shared by all runs: one learning-rate schedule over the
# whole run (warm-up once, cosine over every round) and AdamW state kept across rounds,
# as DiLoCo's workers do; a schedule restarting every round re-warms a facility's
# H = 50 steps twice as often as the central run's 100.
common=(--model "$MODEL" --seq-len "$SEQ" --lr "$LR" --min-lr "$(echo "$LR" | awk '{print $1/10}')"
        --keep-inner-state)
start=()
fed_rounds() { # name facilities data-pattern H threads rounds init-flags... (a later --batch wins)
  local name=$1 facs=$2 data=$3 h=$4 thr=$5 rounds=$6; shift 6
  local t0; t0=$(date +%s)
  "$X" simulate --store "$W/$name" --facilities "$facs" --rounds "$rounds" --data "$data" --threads "$thr" \
    --state "$W/state-$name/{facility}" -- "${common[@]}" --seed "$SEED" --data-order "$ORDER" --batch "$BATCH" --total-rounds "$rounds" --local-steps "$h" "$@" >&2
  log "$name: $rounds rounds in $(( $(date +%s) - t0 ))s"
}
# Rounds for the same local steps as ROUNDS rounds of H=$2 when the first rounds follow
# local-step schedule $1 (init --local-steps-schedule SxR,...; "" = none): the
# schedule's rounds, then the rest at H (rounded up).
fed_sched_rounds() { # schedule H
  awk -v s="$1" -v h="$2" -v R="$ROUNDS" 'BEGIN {
    n = split(s, p, ","); r = 0; st = 0
    for (i = 1; i <= n; i++) { split(p[i], q, "x"); st += q[1] * q[2]; r += q[2] }
    left = R * h - st; if (left < 0) left = 0
    print r + int((left + h - 1) / h) }'
}
# Prints "LOSS BYTES": the final validation loss and the mean bytes a facility uploaded
# per round. An init flag --local-steps-schedule S (after the others) trains the same
# local steps in more rounds (fed_sched_rounds).
fed_run() { # name facilities data-pattern H threads init-flags...
  local name=$1 facs=$2 data=$3 h=$4 thr=$5; shift 5
  local rounds=$ROUNDS prev=
  for a in "$@"; do [ "$prev" = --local-steps-schedule ] && rounds=$(fed_sched_rounds "$a" "$h"); prev=$a; done
  rm -rf "${W:?}/$name" "$W/state-$name" # a kept work directory's earlier run of it
  fed_rounds "$name" "$facs" "$data" "$h" "$thr" "$rounds" ${start[@]+"${start[@]}"} "$@"
  echo "$(fed_eval "$W/$name") $(fed_commit_bytes "$W/$name")"
  # A run's store and state directories (every version, delta and inner state: about
  # 5 GB at 40 rounds) go as soon as it is evaluated, unless XFFL_FVC_DIR keeps them.
  [ -n "${XFFL_FVC_DIR:-}" ] || rm -rf "$W/$name" "$W/state-$name"
}
# The central pre-training on the union for seed $SEED, which every run starts from:
# sets start (the init flags) and pre_loss. Called once on sourcing (seed 7) unless
# FVC_PRETRAIN_LATER is set (fed_vs_central calls it per seed).
fed_pretrain() {
  start=(); pre_loss=
  [ "$PRETRAIN" -gt 0 ] || return 0
  pre_rounds=$(( (PRETRAIN + per_round - 1) / per_round ))
  local pre=pretrained-$SEED
  # A kept work directory (XFFL_FVC_DIR) keeps the pre-training for the next run with
  # the same setting (written last, so an interrupted one is redone).
  local key="$MODEL $pre_rounds $per_round $H $BATCH $SEQ $LR $CORES $SEED $ORDER"
  if [ "$(cat "$W/$pre.done" 2>/dev/null)" = "$key" ]; then
    log "reusing the pre-training in $W/$pre"
  else
    rm -rf "${W:?}/$pre" "$W/state-$pre" "$W/$pre.done"
    log "pretraining centrally (seed $SEED): $pre_rounds rounds of $per_round tokens"
    fed_rounds "$pre" central "$W/data/*/*_train_*.bin" $(( 2 * H )) "$CORES" "$pre_rounds" --algo fedavg
    echo "$key" > "$W/$pre.done"
  fi
  pre_loss=$(fed_eval "$W/$pre")
  log "pretrained (seed $SEED): loss $pre_loss after $(( pre_rounds * per_round )) tokens"
  start=(--from "$W/$pre")
}
[ -n "${FVC_PRETRAIN_LATER:-}" ] || fed_pretrain

# The scaling benches' baseline: one facility with one core (taskset -c 0) training on
# the union of both corpora, every step of XFFL_FVC_TOKENS in one job, no rounds and no
# link. Sets base_steps, base_s (its wall-clock seconds) and target (its final
# validation loss).
fed_baseline() {
  base_steps=$(( (TOKENS + BATCH * SEQ - 1) / (BATCH * SEQ) ))
  "$X" init --store "$W/base" --facilities central "${common[@]}" --batch "$BATCH" --total-rounds 1 \
    --local-steps "$base_steps" --algo fedavg ${start[@]+"${start[@]}"} >/dev/null 2>&1
  local t0; t0=$(date +%s.%N)
  taskset -c 0 "$X" train --store "$W/base" --facility central --data "$W/data/*/*_train_*.bin" \
    --state "$W/state-base" --threads 1 >/dev/null 2>"$W/base.log" || { cat "$W/base.log" >&2; return 1; }
  base_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}')
  "$X" aggregate --store "$W/base" --round 1 >/dev/null 2>&1
  target=$(fed_eval "$W/base")
  log "baseline: $base_steps steps ($(( base_steps * BATCH * SEQ )) tokens) on one core in ${base_s}s, loss $target"
}

