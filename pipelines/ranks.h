/* `xffl train --ranks N` on one node: the N ranks start through MPI's own launcher. */
#ifndef XFFL_PIPE_RANKS_H
#define XFFL_PIPE_RANKS_H

#include "common/status.h"

/* Replaces this process with `mpirun -np N <this binary> <its arguments>` (Open MPI; with
 * --allow-run-as-root as root, --oversubscribe, --bind-to none, -q), so that the ranks
 * start exactly as under `mpirun -np N xffl ...` and give the same bits; the job's exit
 * status is mpirun's (a rank's failure ends the others). The arguments are the process's
 * own (/proc/self/cmdline: global flags too), --ranks N kept: each rank
 * sees it, finds itself started by a launcher and returns XFFL_OK here, to run as one
 * rank (comm_open "auto" then opens mpi).
 * Returns XFFL_OK at once when n <= 1 or this process is one of several ranks a launcher
 * started (USAGE when that launcher started another number of ranks than n). Otherwise it returns only on
 * failure: UNSUPPORTED when mpirun (XFFL_MPIRUN, default "mpirun" on PATH) cannot run. */
XFFL_MUST_USE xffl_status pipe_ranks_launch(int n);

#endif
