/* The NCCL transport (comm.h): GPU ranks, device buffers. NCCL carries the bytes (its
 * all-gather, grouped send/receive for the all-to-all, broadcast); sums are ours.
 *
 * ncclAllReduce and ncclReduceScatter promise no summation order (ring or tree, chosen by
 * size, topology and NCCL version), so a reduction gathers every rank's contribution
 * with NCCL and adds the rows up on the device in rank order (kernels/cuda/sum_rows.h),
 * as comm_mpi.c does on the host. The communicator is kernels/cuda/dist.h's: ranks from
 * XFFL_RANK/mpirun/srun, the NCCL id exchanged through a file in state_dir.
 *
 * Every collective runs on the transport's own stream and returns once it has finished:
 * buffers written on another stream must be complete before the call. */
#include "comm/comm.h"

#include <stdlib.h>

#ifdef XFFL_WITH_CUDA

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "kernels/cuda/check.h"
#include "kernels/cuda/dist.h"
#include "kernels/cuda/sum_rows.h"

/* Rank 0 writes the id file; the others wait this long for it (a large job's ranks may
 * start minutes apart). */
#define ID_TIMEOUT_S 600.0
/* Per-rank bytes of one piece of a reduce-scatter (scratch: size × this) and the size
 * below which an all-reduce is one all-gather and a sum (as in comm_mpi.c). */
enum { PIECE_BYTES = 64 << 20, GATHER_SUM_MAX_BYTES = 64 << 10 };

typedef struct {
    kern_dist *d;
    ncclComm_t comm;
    cudaStream_t stream;
    int rank, size;
    void *tmp; /* device scratch, size × PIECE_BYTES at most */
    size_t tmp_bytes;
} nccl_impl;

static ncclDataType_t nccl_type(comm_dtype t)
{
    switch (t) {
    case COMM_F32: return ncclFloat32;
    case COMM_F64: return ncclFloat64;
    case COMM_I64: return ncclInt64;
    case COMM_BYTE: return ncclUint8;
    }
    return ncclUint8;
}


static void nccl_close(void *impl)
{
    nccl_impl *m = impl;
    if (!m) return;
    if (m->tmp) cudaFree(m->tmp);
    if (m->stream) cudaStreamDestroy(m->stream);
    kern_dist_free(m->d);
    free(m);
}

static XFFL_MUST_USE xffl_status nccl_open(const char *state_dir, void **impl, int *rank, int *size)
{
    *impl = NULL;
    XFFL_RETURN_IF(!state_dir || !*state_dir, XFFL_ERR_USAGE,
                   "nccl transport: needs a state directory, where rank 0 leaves the NCCL id for the others");
    kern_dist_env e;
    XFFL_FORWARD(kern_dist_env_read(&e));
    int count = 0;
    cudaError_t ce = cudaGetDeviceCount(&count);
    XFFL_RETURN_IF(ce != cudaSuccess || count == 0, XFFL_ERR_UNSUPPORTED, "nccl transport: no CUDA device for rank %d (%s)",
                   e.rank, ce != cudaSuccess ? cudaGetErrorString(ce) : "0 devices");
    nccl_impl *m = calloc(1, sizeof *m);
    XFFL_RETURN_IF(!m, XFFL_ERR_NOMEM, "nccl transport: state");
    /* One GPU per rank on a node: the node-local rank picks it. */
    xffl_status s = kern_dist_init(state_dir, &e, e.local_rank % count, ID_TIMEOUT_S, &m->d);
    if (s == XFFL_OK && (ce = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking)) != cudaSuccess)
        s = xffl_fail(XFFL_ERR_BACKEND, "nccl transport: cudaStreamCreate: %s", cudaGetErrorString(ce));
    if (s != XFFL_OK) {
        nccl_close(m);
        return s;
    }
    m->comm = (ncclComm_t)kern_dist_nccl_comm(m->d);
    m->rank = e.rank;
    m->size = e.world;
    *impl = m;
    *rank = m->rank;
    *size = m->size;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status scratch(nccl_impl *m, size_t bytes)
{
    if (bytes <= m->tmp_bytes) return XFFL_OK;
    if (m->tmp) cudaFree(m->tmp);
    m->tmp = NULL;
    m->tmp_bytes = 0;
    CU(cudaMalloc(&m->tmp, bytes), "cudaMalloc for the all-to-all scratch");
    m->tmp_bytes = bytes;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status sum_rows(nccl_impl *m, const void *rows, void *out, size_t n, comm_dtype t)
{
    int err = kcu_sum_rows(rows, out, m->size, n, n, (int)t, m->stream);
    XFFL_RETURN_IF(err, XFFL_ERR_BACKEND, "nccl transport: rank-ordered sum kernel: %s",
                   cudaGetErrorString((cudaError_t)err));
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status done(nccl_impl *m, const char *what)
{
    CU(cudaStreamSynchronize(m->stream), what);
    return XFFL_OK;
}

/* One grouped all-to-all of p elements per peer: rank r gets send + r*sstride (bytes) and
 * this rank's piece from rank r lands at recv + r*rstride; its own is a device copy. */
static XFFL_MUST_USE xffl_status exchange(nccl_impl *m, const char *send, size_t sstride, char *recv, size_t rstride,
                                          size_t p, comm_dtype t, const char *what)
{
    NC(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < m->size; r++) {
        const char *from = send + (size_t)r * sstride;
        char *to = recv + (size_t)r * rstride;
        if (r == m->rank) {
            if (to != from) /* an in-place all-gather's own part is already there */
                CU(cudaMemcpyAsync(to, from, p * comm_dtype_size(t), cudaMemcpyDeviceToDevice, m->stream),
                   "own chunk copy");
            continue;
        }
        NC(ncclSend(from, p, nccl_type(t), r, m->comm, m->stream), what);
        NC(ncclRecv(to, p, nccl_type(t), r, m->comm, m->stream), what);
    }
    NC(ncclGroupEnd(), what);
    return XFFL_OK;
}

/* recv[0..n) ← rank-ordered sum of chunk `rank` (send[rank*stride ..)) of every rank's send, by
 * pieces: an all-to-all of grouped sends and receives, then the sum kernel. recv may be
 * this rank's chunk of send: the piece is received before its sum is written. */
static XFFL_MUST_USE xffl_status reduce_scatter(nccl_impl *m, const void *send, size_t stride, void *recv, size_t n,
                                                comm_dtype t)
{
    size_t es = comm_dtype_size(t), P = PIECE_BYTES / es;
    XFFL_FORWARD(scratch(m, (size_t)m->size * (n < P ? n : P) * es));
    for (size_t off = 0; off < n; off += P) {
        size_t p = n - off < P ? n - off : P;
        XFFL_FORWARD(exchange(m, (const char *)send + off * es, stride * es, m->tmp, p * es, p, t,
                              "ncclSend/ncclRecv (reduce-scatter)"));
        XFFL_FORWARD(sum_rows(m, m->tmp, (char *)recv + off * es, p, t));
    }
    return XFFL_OK;
}

/* buf[0..n) ← rank-ordered sum: all-gather into scratch, then the sum kernel. */
static XFFL_MUST_USE xffl_status gather_sum(nccl_impl *m, void *buf, size_t n, comm_dtype t)
{
    size_t es = comm_dtype_size(t), P = PIECE_BYTES / es;
    XFFL_FORWARD(scratch(m, (size_t)m->size * (n < P ? n : P) * es));
    for (size_t off = 0; off < n; off += P) {
        size_t p = n - off < P ? n - off : P;
        char *b = (char *)buf + off * es;
        NC(ncclAllGather(b, m->tmp, p, nccl_type(t), m->comm, m->stream), "ncclAllGather (all-reduce)");
        XFFL_FORWARD(sum_rows(m, m->tmp, b, p, t));
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status nccl_reduce_scatter(void *impl, const void *send, size_t stride, void *recv, size_t n,
                                                     comm_dtype t)
{
    nccl_impl *m = impl;
    if (n == 0) return XFFL_OK;
    XFFL_FORWARD(reduce_scatter(m, send, stride, recv, n, t));
    return done(m, "reduce-scatter");
}

static XFFL_MUST_USE xffl_status nccl_allreduce(void *impl, void *buf, size_t n, comm_dtype t)
{
    nccl_impl *m = impl;
    if (n == 0 || m->size == 1) return XFFL_OK;
    size_t es = comm_dtype_size(t), q = n / (size_t)m->size, main = q * (size_t)m->size;
    if (n * es <= GATHER_SUM_MAX_BYTES || q == 0) {
        XFFL_FORWARD(gather_sum(m, buf, n, t));
        return done(m, "all-reduce");
    }
    /* As in comm_mpi.c: each rank sums its chunk in place, the all-gather (in place too)
     * hands the chunks out, a tail of fewer than size elements is gathered and summed. */
    char *mine = (char *)buf + (size_t)m->rank * q * es;
    XFFL_FORWARD(reduce_scatter(m, buf, q, mine, q, t));
    NC(ncclAllGather(mine, buf, q, nccl_type(t), m->comm, m->stream), "ncclAllGather (all-reduce)");
    if (main < n) XFFL_FORWARD(gather_sum(m, (char *)buf + main * es, n - main, t));
    return done(m, "all-reduce");
}

/* Chunks stride apart: grouped sends and receives (ncclAllGather writes them back to back). */
static XFFL_MUST_USE xffl_status nccl_allgather(void *impl, const void *send, void *recv, size_t stride, size_t n,
                                                comm_dtype t)
{
    nccl_impl *m = impl;
    if (n == 0) return XFFL_OK;
    if (stride == n) {
        NC(ncclAllGather(send, recv, n, nccl_type(t), m->comm, m->stream), "ncclAllGather");
        return done(m, "all-gather");
    }
    XFFL_FORWARD(exchange(m, send, 0, recv, stride * comm_dtype_size(t), n, t, "ncclSend/ncclRecv (all-gather)"));
    return done(m, "all-gather");
}

static XFFL_MUST_USE xffl_status nccl_broadcast(void *impl, void *buf, size_t n, comm_dtype t, int root)
{
    nccl_impl *m = impl;
    XFFL_RETURN_IF(root < 0 || root >= m->size, XFFL_ERR_USAGE, "nccl transport: broadcast from rank %d of %d", root,
                   m->size);
    if (n == 0) return XFFL_OK;
    NC(ncclBroadcast(buf, buf, n, nccl_type(t), root, m->comm, m->stream), "ncclBroadcast");
    return done(m, "broadcast");
}

static XFFL_MUST_USE xffl_status nccl_barrier(void *impl) { return kern_dist_barrier(((nccl_impl *)impl)->d); }

/* GPU ranks are asked for by name (the train job's cuda backend), never by "auto". */
static int nccl_launched(void) { return 0; }

const comm_transport_def comm_nccl = {
    .name = "nccl",
    .open = nccl_open,
    .close = nccl_close,
    .allreduce_sum = nccl_allreduce,
    .reduce_scatter_sum = nccl_reduce_scatter,
    .allgather = nccl_allgather,
    .broadcast = nccl_broadcast,
    .barrier = nccl_barrier,
    .launched = nccl_launched,
};

#else /* built without CUDA */

static XFFL_MUST_USE xffl_status nccl_open(const char *state_dir, void **impl, int *rank, int *size)
{
    (void)state_dir, (void)rank, (void)size;
    *impl = NULL;
    return xffl_fail(XFFL_ERR_UNSUPPORTED, "nccl transport: built without CUDA (rebuild with `make cuda`, see docs/gpu.md)");
}
static int nccl_launched(void) { return 0; }

/* open never succeeds, so comm.c never calls the collectives. */
const comm_transport_def comm_nccl = {.name = "nccl", .open = nccl_open, .launched = nccl_launched};

#endif
