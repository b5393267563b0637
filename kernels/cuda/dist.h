/* Data parallelism inside one facility: one process per GPU, gradients summed with NCCL.
 *
 * Launch: `srun` (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_JOB_ID, SLURM_STEP_ID)
 * or a parent that starts N copies of itself on one node and sets XFFL_RANK, XFFL_WORLD,
 * XFFL_LOCAL_RANK and XFFL_DIST_TAG (those win over SLURM's). Rendezvous: rank 0 creates
 * the NCCL unique id and writes it atomically to <state_dir>/nccl-<tag>.id; the others
 * poll for that file. No daemon, no port opened by xffl (NCCL opens its own sockets
 * between the ranks, as it does under any launcher). The tag names the run (job and
 * step), so an id file left by an earlier run is never read; rank 0 deletes the file once
 * every rank has joined the communicator.
 *
 * This header compiles in every build. Without CUDA (no -DXFFL_WITH_CUDA) kern_dist_init
 * and the all-reduces return XFFL_ERR_UNSUPPORTED "built without CUDA", so callers such
 * as cmd_train can use it unconditionally; the environment parsing and the id-file
 * exchange work everywhere (and are unit-tested on CPU). */
#ifndef XFFL_KERN_DIST_H
#define XFFL_KERN_DIST_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

enum { KERN_DIST_TAG_MAX = 128, KERN_DIST_ID_BYTES = 128 /* sizeof(ncclUniqueId) */ };

typedef struct {
    int rank, world, local_rank;
    char tag[KERN_DIST_TAG_MAX];
} kern_dist_env;

/* Fills e from XFFL_RANK/XFFL_WORLD/XFFL_LOCAL_RANK/XFFL_DIST_TAG, else SLURM_PROCID/
 * SLURM_NTASKS/SLURM_LOCALID with tag "slurm-<SLURM_JOB_ID>-<SLURM_STEP_ID>", else a
 * single rank (0 of 1, tag "single-<pid>"). USAGE naming the variable when one is
 * malformed, or when world > 1 and no tag can be formed. */
XFFL_MUST_USE xffl_status kern_dist_env_read(kern_dist_env *e);

/* The id file of a run: "<state_dir>/nccl-<tag>.id" into buf. USAGE if the tag holds
 * characters other than [A-Za-z0-9._-] or the path does not fit. */
XFFL_MUST_USE xffl_status kern_dist_id_path(const char *state_dir, const char *tag, char *buf, size_t len);
/* Rank 0: writes the id file atomically (creating state_dir), recording world and tag. */
XFFL_MUST_USE xffl_status kern_dist_id_publish(const char *state_dir, const char *tag, int world, const void *id, size_t id_len);
/* Ranks > 0: polls for the id file until timeout_s. NOT_YET naming the path on timeout;
 * INVALID when the file records another world size, tag or id length. */
XFFL_MUST_USE xffl_status kern_dist_id_wait(const char *state_dir, const char *tag, int world, void *id, size_t id_len,
                              double timeout_s);

typedef struct kern_dist kern_dist; /* opaque: an NCCL communicator and its device */

/* Joins the communicator of e->world ranks on CUDA device `device` (usually e->local_rank),
 * exchanging the NCCL id through state_dir, waiting at most timeout_s for rank 0's file.
 * Caller owns *out; kern_dist_free accepts NULL. */
XFFL_MUST_USE xffl_status kern_dist_init(const char *state_dir, const kern_dist_env *e, int device, double timeout_s,
                           kern_dist **out);
void kern_dist_free(kern_dist *d);
int kern_dist_rank(const kern_dist *d);
int kern_dist_world(const kern_dist *d);

/* In-place sum over ranks of n device floats on the given cudaStream_t (NULL: the default
 * stream), then multiplied by scale (1/world gives the mean); returns after the stream
 * has finished. */
XFFL_MUST_USE xffl_status kern_dist_allreduce_device(kern_dist *d, float *dev_buf, int64_t n, float scale, void *stream);
/* The same for n host floats (losses, token counts; n <= 4096). */
XFFL_MUST_USE xffl_status kern_dist_allreduce_host(kern_dist *d, float *host_buf, int n, float scale);
/* Rank 0's n device floats copied to every rank, in place (ncclBroadcast), then synchronised. */
XFFL_MUST_USE xffl_status kern_dist_broadcast_device(kern_dist *d, float *dev_buf, int64_t n, void *stream);
/* Returns when every rank has called it. */
XFFL_MUST_USE xffl_status kern_dist_barrier(kern_dist *d);

typedef struct kern_model kern_model; /* kernels/kern.h */
/* Data-parallel step: the gradient slab of m (a "cuda" backend model) becomes the mean over
 * ranks, in place on the device. Call after every rank's backward, before kern_adamw_step;
 * with equal micro-batches per rank the result equals one rank's N-way accumulation.
 * UNSUPPORTED for other backends. */
XFFL_MUST_USE xffl_status kern_dist_allreduce_grads(kern_dist *d, kern_model *m);
/* Rank 0's parameters and AdamW moments (and step count) copied to every rank's model m:
 * only rank 0 reads the store, so after it kern_set_params (and kern_set_optimizer) the
 * base version, every rank calls this. UNSUPPORTED for other backends. */
XFFL_MUST_USE xffl_status kern_dist_broadcast_state(kern_dist *d, kern_model *m);

/* `xffl train --gpus N` on one node: runs argv (argv[0] a path; /proc/self/exe re-runs the
 * caller) as N processes with XFFL_RANK=i, XFFL_WORLD=N, XFFL_LOCAL_RANK=i and one fresh
 * XFFL_DIST_TAG, waits for all, and stops (SIGTERM) the others as soon as one fails, since
 * they would wait for it in NCCL forever. *exit_code: rank 0's exit status, or the first
 * failing rank's. BACKEND naming the rank when one failed or was killed. Plain POSIX: no CUDA. */
XFFL_MUST_USE xffl_status kern_dist_spawn_local(int n, char *const argv[], int *exit_code);

#endif
