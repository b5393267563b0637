/* Collectives among the ranks of one facility's train job: one interface, an
 * implementation per transport chosen at run time (a table entry each, comm.c).
 *
 *   self  one rank, no transport (every collective is a copy): the default
 *   mpi   Open MPI (CPU ranks, any number of nodes; started by srun, mpirun/mpiexec or
 *         `xffl train --ranks N`)
 *   nccl  GPU ranks (kernels/cuda/dist.h's id-file rendezvous); device buffers
 *
 * DETERMINISM: every reduction is a sum taken in rank order, element by element:
 *   out[i] = ((x_0[i] + x_1[i]) + x_2[i]) + ...   (x_r: rank r's contribution)
 * whatever the transport, its algorithm (ring, tree) or the machine, so that a result
 * depends on how many ranks share the work only through that one fixed order. An
 * implementation whose native reduce does not promise this (MPI_Allreduce, NCCL's)
 * moves the bytes with the engine (all-to-all, all-gather) and sums locally. The
 * engine carries every byte between ranks: no transport of our own.
 *
 * Buffers are host memory for self and mpi, device memory for nccl. Counts are in
 * elements of dtype. Every call is collective: all ranks make it, in the same order,
 * with the same counts. A failure on one rank is a failure of the job (the launcher
 * ends the others); the status names the transport and the collective.
 *
 * comm_close is safe on every path, failing ones too: MPI is ended at process exit
 * (MPI_Finalize on exit status 0, MPI_Abort of the whole job otherwise), never in
 * comm_close, where a failing rank would wait for ranks stuck in a collective. nccl runs
 * each collective on its own stream and returns when it is done: device buffers written
 * on another stream must be complete (synchronised) before the call. */
#ifndef XFFL_COMM_H
#define XFFL_COMM_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

typedef enum { COMM_F32, COMM_F64, COMM_I64, COMM_BYTE } comm_dtype;

typedef struct xffl_comm xffl_comm; /* opaque */

/* Joins the job's ranks with transport name ("self", "mpi", "nccl"; "auto": mpi when
 * the process was started by an MPI launcher or srun with more than one task, else
 * self). state_dir is where nccl exchanges its id (NULL for the others). USAGE naming
 * an unknown transport; UNSUPPORTED when this build or machine lacks it. Caller owns
 * *out; comm_close accepts NULL. */
XFFL_MUST_USE xffl_status comm_open(const char *transport, const char *state_dir, xffl_comm **out);
void comm_close(xffl_comm *c);
/* comm_open with a transport that is not in the table (tests: ranks as threads). */
struct comm_transport_def_s;
XFFL_MUST_USE xffl_status comm_open_def(const struct comm_transport_def_s *def, const char *state_dir,
                                        xffl_comm **out);
int comm_rank(const xffl_comm *c);
int comm_size(const xffl_comm *c);
const char *comm_transport(const xffl_comm *c);

/* buf[0..n) ← the rank-ordered sum of every rank's buf. */
XFFL_MUST_USE xffl_status comm_allreduce_sum(xffl_comm *c, void *buf, size_t n, comm_dtype t);
/* Rank r receives, in recv[0..n), elements [r*n, (r+1)*n) of the rank-ordered sum of
 * every rank's send[0..size*n). (ZeRO: each rank gets the summed gradient of its shard.) */
XFFL_MUST_USE xffl_status comm_reduce_scatter_sum(xffl_comm *c, const void *send, void *recv, size_t n, comm_dtype t);
/* recv[r*n .. (r+1)*n) ← rank r's send[0..n), on every rank. send may be this rank's own
 * place in recv (recv + rank*n, or recv + rank*stride below): the part is already there
 * and is not copied. */
XFFL_MUST_USE xffl_status comm_allgather(xffl_comm *c, const void *send, void *recv, size_t n, comm_dtype t);
/* The same two with the chunks `stride` elements apart (stride >= n): chunk r of send is
 * send[r*stride .. r*stride + n), rank r's part lands in recv[r*stride .. r*stride + n)
 * (elements between chunks untouched). A rank's shard of a slab then moves in place,
 * straight from a backend's gradient and into its parameters, with no packing copy. */
XFFL_MUST_USE xffl_status comm_reduce_scatter_sum_strided(xffl_comm *c, const void *send, size_t stride, void *recv,
                                                          size_t n, comm_dtype t);
XFFL_MUST_USE xffl_status comm_allgather_strided(xffl_comm *c, const void *send, void *recv, size_t stride, size_t n,
                                                 comm_dtype t);
/* buf[0..n) ← root's buf[0..n). */
XFFL_MUST_USE xffl_status comm_broadcast(xffl_comm *c, void *buf, size_t n, comm_dtype t, int root);
XFFL_MUST_USE xffl_status comm_barrier(xffl_comm *c);

/* How many ranks this process's launcher started (mpirun/mpiexec, a PMI launcher, srun's
 * step): 0 when none did. "auto" opens mpi when it is above 1. */
int comm_launcher_ranks(void);

/* Bytes of one element of t. */
size_t comm_dtype_size(comm_dtype t);

/* One transport: what comm.c dispatches to. open fills *impl (its private state) and the
 * rank and size; the collectives keep the contract above. */
typedef struct comm_transport_def_s {
    const char *name;
    XFFL_MUST_USE xffl_status (*open)(const char *state_dir, void **impl, int *rank, int *size);
    void (*close)(void *impl);
    XFFL_MUST_USE xffl_status (*allreduce_sum)(void *impl, void *buf, size_t n, comm_dtype t);
    /* the strided forms (comm_*_strided); the dense ones pass stride = n */
    XFFL_MUST_USE xffl_status (*reduce_scatter_sum)(void *impl, const void *send, size_t stride, void *recv, size_t n,
                                                    comm_dtype t);
    XFFL_MUST_USE xffl_status (*allgather)(void *impl, const void *send, void *recv, size_t stride, size_t n,
                                           comm_dtype t);
    XFFL_MUST_USE xffl_status (*broadcast)(void *impl, void *buf, size_t n, comm_dtype t, int root);
    XFFL_MUST_USE xffl_status (*barrier)(void *impl);
    int (*launched)(void); /* 1: this process was started as one of several ranks for it (auto) */
} comm_transport_def;

/* The transports besides self, each in its own file (comm_mpi.c, comm_nccl.c); in a build
 * without their library, open reports UNSUPPORTED naming it. */
extern const comm_transport_def comm_mpi, comm_nccl;

#endif
