/* The transports' table and the dispatch (contract in comm.h). A transport is one
 * entry in `transports`: comm_self here, comm_mpi and comm_nccl in their own files. */
#include "comm/comm.h"

#include <stdlib.h>
#include <string.h>

struct xffl_comm {
    const comm_transport_def *def;
    void *impl;
    int rank, size;
};

size_t comm_dtype_size(comm_dtype t)
{
    static const size_t sizes[] = {[COMM_F32] = 4, [COMM_F64] = 8, [COMM_I64] = 8, [COMM_BYTE] = 1};
    return sizes[t];
}

/* --- self: one rank; every collective is the identity or a copy ---------------- */

static XFFL_MUST_USE xffl_status self_open(const char *state_dir, void **impl, int *rank, int *size)
{
    (void)state_dir;
    *impl = NULL;
    *rank = 0;
    *size = 1;
    return XFFL_OK;
}
static void self_close(void *impl) { (void)impl; }
static XFFL_MUST_USE xffl_status self_identity(void *impl, void *buf, size_t n, comm_dtype t)
{
    (void)impl, (void)buf, (void)n, (void)t;
    return XFFL_OK;
}
/* One rank: chunk 0 is the whole story, wherever the stride puts chunk 1. */
static XFFL_MUST_USE xffl_status self_reduce_scatter(void *impl, const void *send, size_t stride, void *recv, size_t n,
                                                     comm_dtype t)
{
    (void)impl, (void)stride;
    if (send != recv) memmove(recv, send, n * comm_dtype_size(t));
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status self_allgather(void *impl, const void *send, void *recv, size_t stride, size_t n,
                                                comm_dtype t)
{
    return self_reduce_scatter(impl, send, stride, recv, n, t);
}
static XFFL_MUST_USE xffl_status self_broadcast(void *impl, void *buf, size_t n, comm_dtype t, int root)
{
    (void)impl, (void)buf, (void)n, (void)t, (void)root;
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status self_barrier(void *impl)
{
    (void)impl;
    return XFFL_OK;
}
static int self_launched(void) { return 0; }

static const comm_transport_def comm_self = {
    .name = "self",
    .open = self_open,
    .close = self_close,
    .allreduce_sum = self_identity,
    .reduce_scatter_sum = self_reduce_scatter,
    .allgather = self_allgather,
    .broadcast = self_broadcast,
    .barrier = self_barrier,
    .launched = self_launched,
};

static const comm_transport_def *const transports[] = {&comm_self, &comm_mpi, &comm_nccl};
enum { N_TRANSPORTS = sizeof transports / sizeof transports[0] };

xffl_status comm_open(const char *transport, const char *state_dir, xffl_comm **out)
{
    *out = NULL;
    const comm_transport_def *def = NULL;
    if (!transport || !strcmp(transport, "auto")) {
        def = &comm_self;
        for (int i = 0; i < N_TRANSPORTS; i++)
            if (transports[i]->launched()) def = transports[i];
    } else {
        for (int i = 0; i < N_TRANSPORTS; i++)
            if (!strcmp(transports[i]->name, transport)) def = transports[i];
        XFFL_RETURN_IF(!def, XFFL_ERR_USAGE, "unknown transport '%s' (self, mpi, nccl, auto)", transport);
    }
    return comm_open_def(def, state_dir, out);
}

xffl_status comm_open_def(const comm_transport_def *def, const char *state_dir, xffl_comm **out)
{
    *out = NULL;
    xffl_comm *c = calloc(1, sizeof *c);
    XFFL_RETURN_IF(!c, XFFL_ERR_NOMEM, "opening transport %s", def->name);
    c->def = def;
    xffl_status s = def->open(state_dir, &c->impl, &c->rank, &c->size);
    if (s != XFFL_OK) {
        free(c);
        return s;
    }
    *out = c;
    return XFFL_OK;
}

void comm_close(xffl_comm *c)
{
    if (!c) return;
    c->def->close(c->impl);
    free(c);
}

int comm_rank(const xffl_comm *c) { return c->rank; }
int comm_size(const xffl_comm *c) { return c->size; }
const char *comm_transport(const xffl_comm *c) { return c->def->name; }

xffl_status comm_allreduce_sum(xffl_comm *c, void *buf, size_t n, comm_dtype t)
{
    return c->def->allreduce_sum(c->impl, buf, n, t);
}
xffl_status comm_reduce_scatter_sum(xffl_comm *c, const void *send, void *recv, size_t n, comm_dtype t)
{
    return c->def->reduce_scatter_sum(c->impl, send, n, recv, n, t);
}
xffl_status comm_reduce_scatter_sum_strided(xffl_comm *c, const void *send, size_t stride, void *recv, size_t n,
                                            comm_dtype t)
{
    XFFL_RETURN_IF(stride < n, XFFL_ERR_USAGE, "%s transport: reduce-scatter chunks of %zu elements %zu apart",
                   c->def->name, n, stride);
    return c->def->reduce_scatter_sum(c->impl, send, stride, recv, n, t);
}
xffl_status comm_allgather(xffl_comm *c, const void *send, void *recv, size_t n, comm_dtype t)
{
    return c->def->allgather(c->impl, send, recv, n, n, t);
}
xffl_status comm_allgather_strided(xffl_comm *c, const void *send, void *recv, size_t stride, size_t n, comm_dtype t)
{
    XFFL_RETURN_IF(stride < n, XFFL_ERR_USAGE, "%s transport: all-gather chunks of %zu elements %zu apart",
                   c->def->name, n, stride);
    return c->def->allgather(c->impl, send, recv, stride, n, t);
}
xffl_status comm_broadcast(xffl_comm *c, void *buf, size_t n, comm_dtype t, int root)
{
    return c->def->broadcast(c->impl, buf, n, t, root);
}
xffl_status comm_barrier(xffl_comm *c) { return c->def->barrier(c->impl); }
