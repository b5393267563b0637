#!/usr/bin/env bash
# Nodes x tasks per node without a Slurm (issue 15): `xffl submit --dry-run` passes
# --nodes and --tasks-per-node to sbatch (one task by default, as before), refuses them
# for the aggregator; train.sbatch, with srun and the step wrapper stood in for, runs one
# task as before and several as ranks of one srun --mpi=pmix step (mpirun when this
# Slurm has no PMIx, XFFL_SRUN_MPI to choose). tests/slurm/test-ranks.sh runs it for real.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
TR=(--scheduler slurm --role train --store "file://$T/s" --facility leo --data "$T/*.bin" --state "$T/st"
    --rounds 2 --first-round 3 --dry-run)

expect_rc 0 $X submit "${TR[@]}"
[ "$(grep -c -- ' --nodes=1 --ntasks=1 ' "$T/out")" = 2 ] || fail "default: $(cat "$T/out")"
expect_rc 0 $X submit "${TR[@]}" --nodes 2 --tasks-per-node 2
[ "$(grep -c -- ' --nodes=2 --ntasks-per-node=2 ' "$T/out")" = 2 ] || fail "2 x 2: $(cat "$T/out")"
grep -q -- '--ntasks=1' "$T/out" && fail "2 x 2 still asks for one task"
expect_rc 0 $X submit "${TR[@]}" --nodes 4 --gpus-per-node 4
grep -q -- ' --nodes=4 --gpus-per-node=4 --ntasks-per-node=4 ' "$T/out" || fail "4 nodes x 4 GPUs: $(cat "$T/out")"
expect_rc 2 $X submit --scheduler slurm --role aggregate --store x --rounds 1 --nodes 2
grep -q -- '--nodes and --tasks-per-node are for --role train' "$T/err" || fail "aggregate --nodes: $(cat "$T/err")"
# the aggregation's chain takes --rounds-per-job too: one job, aggregate --round 1 --rounds 2
expect_rc 0 $X submit --scheduler slurm --role aggregate --store x --rounds 2 --rounds-per-job 2 --first-round 1 --dry-run
[ "$(grep -c -- 'aggregate.sbatch --store x --round 1 --rounds 2' "$T/out")" = 1 ] || fail "aggregate --rounds-per-job: $(cat "$T/out")"
expect_rc 2 $X submit "${TR[@]}" --tasks-per-node 0
expect_rc 0 $X submit --help
grep -q -- '--tasks-per-node N' "$T/out" || fail "help"

# train.sbatch with stand-ins: srun prints its command line (and lists pmix or not),
# the step wrapper runs what follows --
mkdir -p "$T/bin"
cat >"$T/bin/srun" <<'S'
#!/bin/sh
if [ "$1" = --mpi=list ]; then [ -n "${FAKE_NO_PMIX:-}" ] && echo "MPI plugin types are... none pmi2" || echo "MPI plugin types are... none pmi2 pmix"; exit 0; fi
echo "srun $*"
S
printf '#!/bin/sh\necho "mpirun $*"\n' >"$T/bin/mpirun"
printf '#!/bin/sh\n[ "$1" = -- ] && shift\nexec "$@"\n' >"$T/step"
chmod +x "$T/bin/srun" "$T/bin/mpirun" "$T/step"
sb() { env -u SLURM_NTASKS -u SLURM_GPUS_PER_NODE PATH="$T/bin:$PATH" XFFL_STEP="$T/step" XFFL_BIN=xffl "$@" \
  bash pipelines/slurm/train.sbatch --store S --round 3 >"$T/out"; }
sb
[ "$(cat "$T/out")" = "srun --ntasks=1 xffl train --store S --round 3" ] || fail "one task: $(cat "$T/out")"
sb SLURM_NTASKS=1 SLURM_GPUS_PER_NODE=gpu:1
[ "$(cat "$T/out")" = "srun --ntasks=1 --gpus-per-task=1 xffl train --backend cuda --store S --round 3" ] ||
  fail "one GPU task: $(cat "$T/out")"
sb SLURM_NTASKS=4
[ "$(cat "$T/out")" = "srun --ntasks=4 --mpi=pmix --kill-on-bad-exit=1 xffl train --store S --round 3" ] ||
  fail "4 cpu ranks: $(cat "$T/out")"
sb SLURM_NTASKS=8 SLURM_GPUS_PER_NODE=4
[ "$(cat "$T/out")" = "srun --ntasks=8 --mpi=pmix --kill-on-bad-exit=1 --gpus-per-task=1 xffl train --backend cuda --store S --round 3" ] ||
  fail "8 GPU ranks: $(cat "$T/out")"
sb SLURM_NTASKS=2 FAKE_NO_PMIX=1
[ "$(cat "$T/out")" = "mpirun -np 2 xffl train --store S --round 3" ] || fail "no pmix: $(cat "$T/out")"
sb SLURM_NTASKS=2 XFFL_SRUN_MPI=pmi2
[ "$(cat "$T/out")" = "srun --ntasks=2 --mpi=pmi2 --kill-on-bad-exit=1 xffl train --store S --round 3" ] ||
  fail "XFFL_SRUN_MPI: $(cat "$T/out")"
echo ok
