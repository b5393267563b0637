#!/usr/bin/env bash
# comm.h over Open MPI (comm/comm_mpi.c): every collective equals the rank-ordered sum bit
# for bit (f32, f64, i64, bytes; n = 0, 1, not divisible by the ranks, large, many pieces)
# on 1, 2 and 4 ranks (4 oversubscribed on a 2-core machine), both all-reduce paths; with
# one rank "self" and "mpi" agree; a plain process does not initialise MPI; a killed rank
# ends the job. xffl train --ranks N: the mpirun command line, failures, and the delta of
# mpirun -np 2 and of one rank with --accumulate 2, bit for bit, also over two rounds in
# one process (--rounds 2: each rank's model kept for the second).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${XFFL_BUILD:-build}
bin=$BUILD/mpi/test_comm
if ! command -v mpirun >/dev/null || [ ! -x "$bin" ]; then
  echo "SKIP: Open MPI not installed (scripts/install-deps installs libopenmpi-dev openmpi-bin)"; exit 0
fi
# Open MPI refuses root without these; ranks are single-threaded (the sums are elementwise).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
# make asan: Open MPI's components leak at MPI_Finalize from libraries already unloaded
# (no frame to suppress by name); ours are checked in a plain process (--plain).
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
run() { echo "+ $*"; timeout 300 "$@"; }

ASAN_OPTIONS=${ASAN_OPTIONS%detect_leaks=0}detect_leaks=1 run "$bin" --plain
run mpirun -np 1 "$bin" mpi
run mpirun -np 2 "$bin"
run mpirun -np 4 --oversubscribe "$bin"
# Tiny pieces (every collective in many MPI calls) and both all-reduce algorithms.
for g in 0 1000000000; do
  run mpirun -np 3 --oversubscribe -x XFFL_COMM_PIECE_BYTES=4096 -x XFFL_COMM_GATHER_SUM_MAX=$g "$bin"
done
# Large: 2.5 M floats per rank, over the default 8 MiB piece.
run mpirun -np 2 -x TEST_COMM_BIG=2500001 "$bin"
# A rank killed mid-collective ends the job (non-zero, well before the timeout), no hang.
rc=0; timeout 120 mpirun -q -np 2 "$bin" --die > /dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || { echo "FAIL: a rank killed in an all-reduce: mpirun rc $rc (124: hung)"; exit 1; }
# srun's tasks that MPI does not see as one job (no PMIx plugin) are refused, not run alone.
rc=0; SLURM_STEP_NUM_TASKS=3 "$bin" > /dev/null 2> "$BUILD/mpi/singleton.err" || rc=$?
[ "$rc" != 0 ] && grep -q 'started 3 tasks but MPI sees 1' "$BUILD/mpi/singleton.err" ||
  { cat "$BUILD/mpi/singleton.err"; echo "FAIL: 3 srun tasks seen as 1 MPI rank ran on"; exit 1; }
echo "test-comm-mpi: collectives ok"

# xffl train --ranks N: execs mpirun on the same binary with the process's own arguments
# (global flags included), adding the root and oversubscribe flags.
xffl=$PWD/$BUILD/xffl
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '#!/bin/sh\nprintf "%%s\\n" "$*" > "%s/args"\n' "$tmp" > "$tmp/fake-mpirun"; chmod +x "$tmp/fake-mpirun"
XFFL_MPIRUN=$tmp/fake-mpirun "$xffl" --quiet train --ranks 3 --store "file://$tmp/none" --facility a --data 'x*' --threads 1
want="-q --oversubscribe --bind-to none -np 3"
[ "$(id -u)" = 0 ] && want="$want --allow-run-as-root"
want="$want $xffl --quiet train --ranks 3 --store file://$tmp/none --facility a --data x* --threads 1"
[ "$(cat "$tmp/args")" = "$want" ] || { echo "FAIL: --ranks ran: $(cat "$tmp/args")"; echo "  expected: $want"; exit 1; }
# Real ranks fail on the missing store, and the job's status is that failure (the first
# rank to fail may end the other before it says so).
rc=0; "$xffl" train --ranks 2 --store "file://$tmp/none" --facility a --data 'x*' 2> "$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q 'no federation.h5' "$tmp/err" || { cat "$tmp/err"; echo "FAIL: --ranks 2 on a missing store: rc $rc"; exit 1; }
# A launcher's rank with another --ranks is a usage error; --ranks 1 runs in-process.
rc=0; OMPI_COMM_WORLD_SIZE=4 "$xffl" train --ranks 2 --store "file://$tmp/none" --facility a --data 'x*' 2> "$tmp/err" || rc=$?
[ "$rc" = 2 ] && grep -q 'launcher started 4 ranks' "$tmp/err" || { cat "$tmp/err"; echo "FAIL: --ranks 2 under 4 ranks: rc $rc"; exit 1; }
rc=0; XFFL_MPIRUN=/nonexistent "$xffl" train --ranks 1 --store "file://$tmp/none" --facility a --data 'x*' 2> "$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q 'no federation.h5' "$tmp/err" || { cat "$tmp/err"; echo "FAIL: --ranks 1: rc $rc"; exit 1; }
# The same bits as mpirun -np 2 and as one rank with --accumulate 2 (tiny, one round).
mkdir -p "$tmp/txt"; cp /usr/share/common-licenses/GPL-3 "$tmp/txt/gpl.txt"
"$xffl" data pack "$tmp/txt/gpl.txt" --out "$tmp/data" --val-fraction 0.1 >/dev/null 2>&1
"$xffl" init --store "$tmp/s0" --model tiny --facilities a --local-steps 3 --batch 8 --seq-len 32 --seed 5 >/dev/null 2>&1
train() { # name [launcher...] -- [flags...]: the COMMIT's tensor digests of round 1
  local name=$1; shift; local pre=()
  while [ "$1" != -- ]; do pre+=("$1"); shift; done; shift
  cp -r "$tmp/s0" "$tmp/$name"
  "${pre[@]}" "$xffl" train --store "$tmp/$name" --facility a --data "$tmp/data/*_train_*.bin" --threads 1 "$@" \
    >/dev/null 2>"$tmp/$name.err" || { cat "$tmp/$name.err"; echo "FAIL: train $name"; exit 1; }
  grep -h '^tensor' "$tmp/$name"/rounds/r000001/a/a1/COMMIT-* | sha256sum | cut -c1-16
}
acc2=$(train acc2 env -- --accumulate 2)
r2=$(train r2 env -- --ranks 2)
mp2=$(train mp2 mpirun -q -np 2 -- )
[ "$r2" = "$acc2" ] && [ "$mp2" = "$acc2" ] ||
  { echo "FAIL: --ranks 2 $r2, mpirun -np 2 $mp2, --accumulate 2 $acc2: not the same delta"; exit 1; }
grep -q '^ranks=2$' "$tmp"/r2/rounds/r000001/a/a1/COMMIT-* || { echo "FAIL: --ranks 2: COMMIT lacks ranks=2"; exit 1; }
# --ranks 2 --rounds 2: each rank keeps its model for round 2, with the bits of separate
# one-rank jobs (--accumulate 2), the aggregation beside it
digests() { grep -h '^tensor' "$tmp/$1"/rounds/r00000$2/a/a1/COMMIT-* | sha256sum | cut -c1-16; }
cp -r "$tmp/s0" "$tmp/c2"
for r in 1 2; do
  "$xffl" train --store "$tmp/c2" --facility a --data "$tmp/data/*_train_*.bin" --threads 1 --accumulate 2 \
    >/dev/null 2>"$tmp/c2.err" || { cat "$tmp/c2.err"; echo "FAIL: train c2 round $r"; exit 1; }
  "$xffl" aggregate --store "$tmp/c2" >/dev/null 2>&1 || { echo "FAIL: aggregate c2 round $r"; exit 1; }
done
cp -r "$tmp/s0" "$tmp/k2"
( for r in 1 2; do "$xffl" aggregate --store "$tmp/k2" --round $r --deadline 120 --poll 0.1 >/dev/null 2>&1 || exit 1; done ) &
agg=$!
"$xffl" train --store "$tmp/k2" --facility a --data "$tmp/data/*_train_*.bin" --threads 1 --ranks 2 --rounds 2 \
  --poll 0.1 --verbose >/dev/null 2>"$tmp/k2.err" || { cat "$tmp/k2.err"; echo "FAIL: train --ranks 2 --rounds 2"; exit 1; }
wait "$agg" || { echo "FAIL: aggregate k2"; exit 1; }
for r in 1 2; do
  [ "$(digests k2 $r)" = "$(digests c2 $r)" ] || { echo "FAIL: --ranks 2 --rounds 2: round $r's delta differs"; exit 1; }
done
grep -q "the model of the run before, set again" "$tmp/k2.err" || { echo "FAIL: --ranks 2 --rounds 2: no model kept"; exit 1; }
echo "test-comm-mpi: --ranks ok"
