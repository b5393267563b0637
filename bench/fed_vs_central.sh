#!/usr/bin/env bash
# fed_vs_central (issues 7 and 21): the `small` preset on the demo's two non-IID
# corpora (facility "copyrights": /usr/share/doc/*/copyright, facility "licenses":
# /usr/share/common-licenses), 512 K training tokens per seed, trained
#   - federated, 2 facilities, H = 50: diloco; on seed 1 also fedavg (token-weighted)
#     and the plain mean (XFFL paper)
#   - centralized: one trainer on the union of both corpora (shards interleaved sequence
#     by sequence), the same tokens and inner hyper-parameters, H = 100 per round (the
#     two facilities' steps of a round), fedavg of one = plain training
#   - on seed 1, centralized with the same number of steps as each facility (batch 2B,
#     H a round): central_same_steps, to tell the cost of federating from the cost of
#     taking half as many optimizer steps
# and evaluated on the union of both facilities' held-out data (nats per byte: the
# tokenizer is byte-level). Seeds 1..XFFL_FVC_SEEDS (3): each seed is its own model
# initialisation, pre-training and data order (init --data-order strided --seed S). One JSON
# line per seed and run (ratio = its loss / that seed's central loss), then a summary:
# mean_ratio and worst_ratio of diloco over the seeds, the CPU model, and meets_target:
# worst <= 1.05 and mean <= 1.04 from the pre-trained start, worst <= 1.08 from
# scratch, central < 2.5 on every seed (for the comparison to mean anything).
# The setting (docs/federation.md, "Learning quality", has every figure and what else
# was tried):
#   - all runs of a seed start from one central pre-training on the union
#     (XFFL_FVC_PRETRAIN, 256 K tokens; 0 = from the seed's random initialisation), as
#     DiLoCo and XFFL start from a pretrained model;
#   - 1 x 256 tokens a step (XFFL_FVC_BATCH): two facilities' parallel steps add up
#     to the central run's sequential ones only while a step's batch is below the
#     critical batch size; at 1 x 256 the same-steps central run was within 0.1 % of
#     the central one, at 2 x 256 2.8 % behind, at 8 x 256 far behind (2026-12-01; the
#     2026-12-02 binary, seed 1: 1.9 % behind pre-trained, 1.4 % ahead from scratch);
#   - the federated runs take fewer local steps a round than H = 50, the same local
#     steps and tokens in more rounds (init --local-steps-schedule; XFFL_FVC_STEPS sets
#     another schedule, "" none); central is unchanged. The gap follows the local steps
#     per round (issue 21):
#       pre-trained: 25 steps a round (25x40: 40 rounds), diloco's outer optimizer at
#         lr 0.7, momentum 0.6 (XFFL_FVC_DILOCO): on each of seeds 1-3 both changes
#         narrowed the gap (H = 50 at 0.7 / 0.5 missed on seed 1 with this binary:
#         1.056); DiLoCo's 0.9 averages over ~10 rounds and overshoots in a short run;
#       from scratch (XFFL_FVC_PRETRAIN=0): 8 steps a round (8x125: 125 rounds) and no
#         outer momentum (--outer-lr 1.0 --outer-momentum 0): at 8 steps 0.7 / 0.5
#         overshoots.
# Until issue 21 the bench ran one seed (7) for 1 M tokens after a 512 K-token
# pre-training; three seeds at that length took ~55 minutes on 2 idle cores, so each
# seed now trains half of both (20 rounds after 10; the old length is
# XFFL_FVC_TOKENS=1000000 XFFL_FVC_PRETRAIN=512000). The ratio means what it meant: the
# same tokens and hyper-parameters federated and central, from the same start.
# On 2 idle cores (2026-12-02, every run): 21 minutes from the pre-trained start, 30 from
# scratch (125 federated rounds a run); XFFL_FVC_EXTRAS=0 (diloco and central only) saves
# a quarter to a third. XFFL_FVC_TOKENS, XFFL_FVC_MODEL, XFFL_FVC_SEQ shrink it for a smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
X=$B/xffl
export HDF5_PLUGIN_PATH=$B/plugins
log() { echo "fed_vs_central: $*" >&2; }
# Per seed: 512 K tokens after a 256 K-token pre-training (before seeds: 1 M after 512 K).
export XFFL_FVC_TOKENS=${XFFL_FVC_TOKENS:-512000} XFFL_FVC_PRETRAIN=${XFFL_FVC_PRETRAIN:-256000}
# Each seed its own data order (init --data-order strided); XFFL_FVC_ORDER=files: file order.
export XFFL_FVC_ORDER=${XFFL_FVC_ORDER:-strided}
SEEDS=${XFFL_FVC_SEEDS:-3}
EXTRAS=${XFFL_FVC_EXTRAS:-1}   # 0: central and diloco only, on every seed
FVC_PRETRAIN_LATER=1
source bench/lib/fed.sh   # the setting: corpora, hyper-parameters, pre-training, fed_run
fed_loss() { fed_run "$@" | cut -d' ' -f1; }
# The federated runs' local-step schedule (init --local-steps-schedule SxR,...; "" none):
# its rounds take S local steps instead of H, and the same local steps in all take more
# rounds (fed_sched_rounds); central is unchanged. XFFL_FVC_STEPS sets it. By default S
# steps in every round: 25 from the pre-trained start (25x40 for the default 20 x 50), 8
# from scratch (8x125). The gap follows the local steps per round, and early short
# rounds alone did not close it (docs/federation.md, issue 21, has every run).
every() { [ $(( ROUNDS * H )) -lt "$1" ] || echo "$1x$(( ROUNDS * H / $1 ))"; }
[ "$PRETRAIN" -gt 0 ] && STEPS=${XFFL_FVC_STEPS-$(every 25)} || STEPS=${XFFL_FVC_STEPS-$(every 8)}
# diloco's outer optimizer (XFFL_FVC_DILOCO still sets it): pre-trained, lr 0.7 and
# momentum 0.6 (a steady-state step of 1.75 x the mean delta); from scratch at 8 local
# steps, no outer momentum (outer lr 1: the plain token-weighted mean, fedavg's step):
# 0.7 / 0.5 overshoots over 125 short rounds.
if [ "$PRETRAIN" -gt 0 ]; then DILOCO=${XFFL_FVC_DILOCO---outer-lr 0.7 --outer-momentum 0.6}
else DILOCO=${XFFL_FVC_DILOCO---outer-lr 1.0 --outer-momentum 0}; fi
sched=()
[ -z "$STEPS" ] || sched=(--local-steps-schedule "$STEPS")
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
# the matrix extensions that change float rounding in training (bf16 GEMMs on AMX)
isa=$(grep -o -w 'amx_bf16\|avx512_bf16\|avx512f\|avx2' /proc/cpuinfo 2>/dev/null | sort -u | tr '\n' ' ' | sed 's/ $//')
[ "$PRETRAIN" -gt 0 ] && target=1.05 || target=1.08
log "$MODEL, $ROUNDS rounds of $per_round tokens ($(( ROUNDS * per_round )) in all), H=$H${STEPS:+ after $STEPS ($(fed_sched_rounds "$STEPS" "$H") federated rounds)}, B=$BATCH, T=$SEQ, seeds 1..$SEEDS, data order $ORDER"
# One JSON line: seed run loss central [extra "key": value pairs]
line() {
  awk -v s="$1" -v r="$2" -v l="$3" -v c="$4" -v x="${5:-}" -v pl="${pre_loss:-null}" 'BEGIN {
  printf "{\"bench\": \"fed_vs_central\", \"seed\": %d, \"run\": \"%s\", \"value\": %.4f, \"unit\": \"nats/byte\", ", s, r, l
  printf "\"ref_name\": \"central\", \"ref\": %.4f, \"ratio\": %.4f, \"pretrained_loss\": %s%s}\n", c, l / c, pl, x }'
}
ratios=()
for SEED in $(seq 1 "$SEEDS"); do
  t0=$(date +%s)
  fed_pretrain
  central=$(fed_loss central central "$W/data/*/*_train_*.bin" $(( 2 * H )) "$CORES" --algo fedavg)
  line "$SEED" central "$central" "$central" ", \"central_below_2_5\": $(awk -v c="$central" 'BEGIN {print (c < 2.5) ? "true" : "false"}')"
  [ "$(awk -v c="$central" 'BEGIN {print (c < 2.5)}')" = 1 ] || below=false
  diloco=$(fed_loss diloco copyrights,licenses "$W/data/{facility}/*_train_*.bin" "$H" "$fedthr" --algo diloco $DILOCO ${sched[@]+"${sched[@]}"})
  line "$SEED" diloco "$diloco" "$central" ", \"diloco_flags\": \"$DILOCO\", \"local_steps_schedule\": \"$STEPS\""
  ratios+=("$(awk -v d="$diloco" -v c="$central" 'BEGIN {printf "%.6f", d / c}')")
  if [ "$SEED" = 1 ] && [ "$EXTRAS" = 1 ]; then
    # The same tokens in the same number of steps as each facility: twice the batch, H
    # steps a round (what synchronous data parallelism over both facilities would do).
    v=$(fed_loss central-same-steps central "$W/data/*/*_train_*.bin" "$H" "$CORES" --algo fedavg --batch $(( 2 * BATCH )))
    line "$SEED" central_same_steps "$v" "$central"
    v=$(fed_loss fedavg copyrights,licenses "$W/data/{facility}/*_train_*.bin" "$H" "$fedthr" --algo fedavg ${sched[@]+"${sched[@]}"})
    line "$SEED" fedavg "$v" "$central"
    v=$(fed_loss plain copyrights,licenses "$W/data/{facility}/*_train_*.bin" "$H" "$fedthr" --algo fedavg --unweighted ${sched[@]+"${sched[@]}"})
    line "$SEED" plain_mean "$v" "$central"
  fi
  log "seed $SEED: central $central, diloco $diloco, $(( $(date +%s) - t0 ))s"
done
printf '%s\n' "${ratios[@]}" | awk -v n="$SEEDS" -v cpu="$cpu" -v isa="$isa" -v tgt="$target" -v ok="${below:-true}" -v m="$MODEL" \
    -v tok=$(( ROUNDS * per_round )) -v r="$ROUNDS" -v h="$H" -v b="$BATCH" -v t="$SEQ" -v o="$ORDER" \
    -v pt=$(( PRETRAIN > 0 ? pre_rounds * per_round : 0 )) -v df="$DILOCO" -v ls="$STEPS" '
  { s += $1; if (NR == 1 || $1 > w) w = $1 }
  END {
  mean = s / NR
  meets = (w <= tgt && (tgt > 1.05 || mean <= 1.04) && ok == "true") ? "true" : "false"
  printf "{\"bench\": \"fed_vs_central\", \"value\": %.4f, \"unit\": \"ratio\", \"ref_name\": \"central\", ", mean
  printf "\"mean_ratio\": %.4f, \"worst_ratio\": %.4f, \"seeds\": %d, \"target_worst\": %.2f, ", mean, w, n, tgt
  if (tgt == 1.05) printf "\"target_mean\": 1.04, "
  printf "\"meets_target\": %s, \"central_below_2_5\": %s, \"cpu\": \"%s\", \"cpu_isa\": \"%s\", ", meets, ok, cpu, isa
  printf "\"model\": \"%s\", \"tokens\": %d, \"rounds\": %d, \"local_steps\": %d, \"batch\": %d, \"seq_len\": %d, ", m, tok, r, h, b, t
  printf "\"pretrain_tokens\": %d, \"data_order\": \"%s\", \"diloco_flags\": \"%s\", ", pt, o, df
  printf "\"local_steps_schedule\": \"%s\"}\n", ls }'
