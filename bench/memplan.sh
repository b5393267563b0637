#!/usr/bin/env bash
# memplan: `base` at 1 x 1024 tokens per rank on 1 and 2 cpu ranks (mpirun -np 2, one
# thread each): the memory plan's per-rank total (train --dry-run) against each rank's
# measured peak RSS minus its RSS before the training loop starts; target within 10 %.
set -euo pipefail
cd "$(dirname "$0")/.."
b="${XFFL_BUILD:-build}/bench/memplan"
"$b" base 1 1024 "${XFFL_BENCH_THREADS:-2}" 1
if command -v mpirun >/dev/null 2>&1; then
  # as root Open MPI needs to be told; 2 ranks on 2 cores may need oversubscription
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 \
    mpirun -np 2 --oversubscribe "$b" base 1 1024 1 1 | sort
else
  echo "memplan: no mpirun (openmpi-bin): 2 ranks not measured" >&2
fi
