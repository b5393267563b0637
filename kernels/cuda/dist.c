/* NCCL communicator for data parallelism inside a facility (kernels/cuda/dist.h).
 * Built in every configuration: without XFFL_WITH_CUDA every entry point reports
 * UNSUPPORTED, so cmd/ can call it unconditionally. */
#include "kernels/cuda/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef XFFL_WITH_CUDA

#include <cuda_runtime_api.h>
#include <nccl.h>
#include "kernels/cuda/check.h"

#include "kernels/cuda/ops.h"

_Static_assert(sizeof(ncclUniqueId) == KERN_DIST_ID_BYTES, "ncclUniqueId size changed");

enum { HOST_MAX = 4096 };

struct kern_dist {
    int rank, world, device;
    ncclComm_t comm;
    float *scratch; /* HOST_MAX device floats for host all-reduces */
};

xffl_status kern_dist_init(const char *state_dir, const kern_dist_env *e, int device, double timeout_s,
                           kern_dist **out)
{
    *out = NULL;
    XFFL_RETURN_IF(e->world < 1 || e->rank < 0 || e->rank >= e->world, XFFL_ERR_USAGE, "rank %d of %d is invalid",
                   e->rank, e->world);
    int count = 0;
    cudaError_t ce = cudaGetDeviceCount(&count);
    XFFL_RETURN_IF(ce != cudaSuccess || count == 0, XFFL_ERR_UNSUPPORTED, "no CUDA device visible for rank %d (%s)",
                   e->rank, ce != cudaSuccess ? cudaGetErrorString(ce) : "0 devices");
    XFFL_RETURN_IF(device < 0 || device >= count, XFFL_ERR_USAGE, "rank %d: device %d not visible (%d devices)",
                   e->rank, device, count);
    CU(cudaSetDevice(device), "cudaSetDevice");
    ncclUniqueId id;
    if (e->rank == 0) {
        NC(ncclGetUniqueId(&id), "ncclGetUniqueId");
        XFFL_FORWARD(kern_dist_id_publish(state_dir, e->tag, e->world, &id, sizeof id));
    } else {
        XFFL_FORWARD(kern_dist_id_wait(state_dir, e->tag, e->world, &id, sizeof id, timeout_s));
    }
    kern_dist *d = calloc(1, sizeof *d);
    XFFL_RETURN_IF(!d, XFFL_ERR_NOMEM, "nccl communicator");
    d->rank = e->rank;
    d->world = e->world;
    d->device = device;
    ncclResult_t r = ncclCommInitRank(&d->comm, e->world, id, e->rank);
    if (r != ncclSuccess) {
        free(d);
        return xffl_fail(XFFL_ERR_BACKEND, "nccl: ncclCommInitRank (rank %d of %d, run %s): %s", e->rank, e->world,
                         e->tag, ncclGetErrorString(r));
    }
    /* Init is collective: once it returns every rank has read the file. */
    if (e->rank == 0) {
        char path[4096];
        if (kern_dist_id_path(state_dir, e->tag, path, sizeof path) == XFFL_OK) unlink(path);
    }
    ce = cudaMalloc((void **)&d->scratch, HOST_MAX * sizeof(float));
    if (ce != cudaSuccess) {
        d->scratch = NULL;
        kern_dist_free(d);
        return xffl_fail(XFFL_ERR_NOMEM, "cuda: cudaMalloc for the nccl scratch: %s", cudaGetErrorString(ce));
    }
    *out = d;
    return XFFL_OK;
}

void kern_dist_free(kern_dist *d)
{
    if (!d) return;
    if (d->comm) ncclCommDestroy(d->comm);
    if (d->scratch) cudaFree(d->scratch);
    free(d);
}

int kern_dist_rank(const kern_dist *d) { return d ? d->rank : 0; }
int kern_dist_world(const kern_dist *d) { return d ? d->world : 1; }

xffl_status kern_dist_allreduce_device(kern_dist *d, float *dev_buf, int64_t n, float scale, void *stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    NC(ncclAllReduce(dev_buf, dev_buf, (size_t)n, ncclFloat, ncclSum, d->comm, s), "ncclAllReduce");
    if (scale != 1.0f) {
        int err = kcu_scale(dev_buf, scale, n, s);
        XFFL_RETURN_IF(err, XFFL_ERR_BACKEND, "cuda kernel scale (all-reduce mean): %s",
                       cudaGetErrorString((cudaError_t)err));
    }
    CU(cudaStreamSynchronize(s), "all-reduce");
    return XFFL_OK;
}

xffl_status kern_dist_allreduce_host(kern_dist *d, float *host_buf, int n, float scale)
{
    XFFL_RETURN_IF(n < 0 || n > HOST_MAX, XFFL_ERR_USAGE, "host all-reduce of %d floats (at most %d)", n, HOST_MAX);
    CU(cudaMemcpy(d->scratch, host_buf, (size_t)n * sizeof(float), cudaMemcpyHostToDevice), "host all-reduce copy in");
    XFFL_FORWARD(kern_dist_allreduce_device(d, d->scratch, n, scale, NULL));
    CU(cudaMemcpy(host_buf, d->scratch, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost), "host all-reduce copy out");
    return XFFL_OK;
}

xffl_status kern_dist_broadcast_device(kern_dist *d, float *dev_buf, int64_t n, void *stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    NC(ncclBroadcast(dev_buf, dev_buf, (size_t)n, ncclFloat, 0, d->comm, s), "ncclBroadcast");
    CU(cudaStreamSynchronize(s), "broadcast");
    return XFFL_OK;
}

xffl_status kern_dist_barrier(kern_dist *d)
{
    float one = 1.0f;
    return kern_dist_allreduce_host(d, &one, 1, 1.0f);
}

#else /* no CUDA in this build */

struct kern_dist {
    int unused;
};

static XFFL_MUST_USE xffl_status no_cuda(const char *what)
{
    return xffl_fail(XFFL_ERR_UNSUPPORTED, "%s: built without CUDA (rebuild with `make cuda`, see docs/gpu.md)", what);
}

xffl_status kern_dist_init(const char *state_dir, const kern_dist_env *e, int device, double timeout_s,
                           kern_dist **out)
{
    (void)state_dir, (void)e, (void)device, (void)timeout_s;
    *out = NULL;
    return no_cuda("multi-GPU data parallelism (NCCL)");
}

void kern_dist_free(kern_dist *d) { free(d); }
int kern_dist_rank(const kern_dist *d) { return d ? 0 : 0; }
int kern_dist_world(const kern_dist *d) { return d ? 1 : 1; }

xffl_status kern_dist_allreduce_device(kern_dist *d, float *dev_buf, int64_t n, float scale, void *stream)
{
    (void)d, (void)dev_buf, (void)n, (void)scale, (void)stream;
    return no_cuda("nccl all-reduce");
}

xffl_status kern_dist_allreduce_host(kern_dist *d, float *host_buf, int n, float scale)
{
    (void)d, (void)host_buf, (void)n, (void)scale;
    return no_cuda("nccl all-reduce");
}

xffl_status kern_dist_broadcast_device(kern_dist *d, float *dev_buf, int64_t n, void *stream)
{
    (void)d, (void)dev_buf, (void)n, (void)stream;
    return no_cuda("nccl broadcast");
}

xffl_status kern_dist_barrier(kern_dist *d)
{
    (void)d;
    return no_cuda("nccl barrier");
}

xffl_status kern_dist_allreduce_grads(kern_dist *d, kern_model *m)
{
    (void)d, (void)m;
    return no_cuda("gradient all-reduce");
}

xffl_status kern_dist_broadcast_state(kern_dist *d, kern_model *m)
{
    (void)d, (void)m;
    return no_cuda("parameter broadcast");
}

#endif
