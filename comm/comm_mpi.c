/* The MPI transport (comm.h): Open MPI carries the bytes, sums are ours.
 *
 * MPI_Allreduce and MPI_Reduce_scatter promise no summation order (Open MPI picks ring,
 * recursive doubling or Rabenseifner by message size and rank count), so the reductions
 * here move every rank's contribution with MPI_Alltoall / MPI_Allgather and add them up
 * locally in rank order. Large buffers go in pieces of at most PIECE_BYTES per rank, with
 * a resized datatype (64-bit extent) so that no count or displacement overflows an int
 * and no buffer bigger than a piece per rank is allocated.
 *
 * MPI is initialised by the first comm_open("mpi") only: a single-process xffl never
 * touches it. It is finalised at process exit, not in comm_close: a rank that fails
 * returns (and closes its comm) while the others still wait in a collective, and Open
 * MPI's MPI_Finalize waits for every rank; so at exit a zero status finalises and any
 * other status aborts the whole job (MPI_Abort), which is what comm.h promises. */
#include "comm/comm.h"

#include <stdlib.h>
#include <string.h>

static int env_int(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : 0;
}

/* The ranks a launcher started: mpirun/mpiexec (Open MPI's variables, or a PMI
 * launcher's), else srun (the step's task count). Read in every build: a build without
 * MPI that was started by a launcher must say so, not run N lone copies. */
int comm_launcher_ranks(void)
{
    int n = env_int("OMPI_COMM_WORLD_SIZE");
    if (!n) n = env_int("PMI_SIZE");
    if (!n) n = env_int("SLURM_STEP_NUM_TASKS");
    if (!n && getenv("SLURM_STEP_ID")) n = env_int("SLURM_NTASKS");
    return n;
}
static int mpi_launched(void) { return comm_launcher_ranks() > 1; }

#ifdef XFFL_WITH_MPI

#include <mpi.h>

/* Per-rank bytes of one piece: a reduce-scatter holds size × PIECE_BYTES of scratch.
 * XFFL_COMM_PIECE_BYTES and XFFL_COMM_GATHER_SUM_MAX override both limits, for the tests
 * (many pieces on small buffers, both all-reduce paths) and the measurements. */
enum { PIECE_BYTES = 8 << 20 };
/* An all-reduce of fewer bytes than this is one all-gather and a local sum (one round
 * trip); above it, reduce-scatter then all-gather (half the traffic and sum work per
 * rank at 4 ranks and more; docs/design.md "Ranks and collectives"). */
enum { GATHER_SUM_MAX_BYTES = 64 << 10 };

typedef struct {
    MPI_Comm comm;
    int rank, size;
    void *scratch;    /* size × piece_bytes, allocated on first use */
    const void **row; /* size row pointers for sum_rows */
    MPI_Request *req; /* 2 × size: the reduce-scatter's sends and receives */
    size_t piece_bytes, gather_sum_max;
} mpi_impl;

static MPI_Datatype mpi_type(comm_dtype t)
{
    switch (t) {
    case COMM_F32: return MPI_FLOAT;
    case COMM_F64: return MPI_DOUBLE;
    case COMM_I64: return MPI_INT64_T;
    case COMM_BYTE: return MPI_UNSIGNED_CHAR;
    }
    return MPI_DATATYPE_NULL;
}

static XFFL_MUST_USE xffl_status mpi_fail(int err, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(err, msg, &len);
    return xffl_fail(XFFL_ERR_BACKEND, "mpi transport: %s: %s", what, msg);
}
#define MPI_TRY(call, what)                           \
    do {                                              \
        int mpi_e_ = (call);                          \
        if (mpi_e_ != MPI_SUCCESS) return mpi_fail(mpi_e_, (what)); \
    } while (0)

/* out[i] = ((row[0][i] + row[1][i]) + row[2][i]) + ...: the one summation order of
 * comm.h. Elements are independent, so threads cannot change a bit. out may alias any
 * one row (element i is read before it is written). */
#define SUM_ROWS(T)                                                                   \
    do {                                                                              \
        T *o_ = out;                                                                  \
        _Pragma("omp parallel for schedule(static) if (n >= 65536)")                  \
        for (size_t i = 0; i < n; i++) {                                              \
            T acc = ((const T *)row[0])[i];                                           \
            for (int k = 1; k < nrows; k++) acc = (T)(acc + ((const T *)row[k])[i]);  \
            o_[i] = acc;                                                              \
        }                                                                             \
    } while (0)
static void sum_rows(const void *const *row, void *out, int nrows, size_t n, comm_dtype t)
{
    switch (t) {
    case COMM_F32: SUM_ROWS(float); break;
    case COMM_F64: SUM_ROWS(double); break;
    case COMM_I64: SUM_ROWS(uint64_t); break; /* two's-complement wrap, without signed overflow */
    case COMM_BYTE: SUM_ROWS(uint8_t); break;
    }
}

static int we_initialised;

static void finalise_at_exit(int status, void *arg)
{
    (void)arg;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (status == 0)
        MPI_Finalize();
    else
        MPI_Abort(MPI_COMM_WORLD, status);
}

static XFFL_MUST_USE xffl_status mpi_open(const char *state_dir, void **impl, int *rank, int *size)
{
    (void)state_dir;
    *impl = NULL;
    int inited = 0, finalized = 0;
    MPI_Finalized(&finalized);
    XFFL_RETURN_IF(finalized, XFFL_ERR_UNSUPPORTED, "mpi transport: MPI was already finalised in this process");
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        /* Only the thread that opened the comm calls MPI; OpenMP threads never do. */
        XFFL_RETURN_IF(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS,
                       XFFL_ERR_BACKEND, "mpi transport: MPI_Init_thread failed");
        if (!we_initialised) on_exit(finalise_at_exit, NULL);
        we_initialised = 1;
    }
    mpi_impl *m = calloc(1, sizeof *m);
    XFFL_RETURN_IF(!m, XFFL_ERR_NOMEM, "mpi transport: state");
    int err = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (err != MPI_SUCCESS) {
        free(m);
        return mpi_fail(err, "MPI_Comm_dup");
    }
    /* Errors come back as statuses naming the collective, not as an abort from inside MPI. */
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &m->rank);
    MPI_Comm_size(m->comm, &m->size);
    m->piece_bytes = env_int("XFFL_COMM_PIECE_BYTES") > 0 ? (size_t)env_int("XFFL_COMM_PIECE_BYTES") : PIECE_BYTES;
    m->gather_sum_max = getenv("XFFL_COMM_GATHER_SUM_MAX") ? (size_t)env_int("XFFL_COMM_GATHER_SUM_MAX")
                                                            : GATHER_SUM_MAX_BYTES;
    /* srun without an MPI plugin that Open MPI understands starts N singletons: N jobs that
     * would each train alone and race to commit. */
    int tasks = comm_launcher_ranks();
    if (tasks > 1 && m->size != tasks) {
        int seen = m->size;
        MPI_Comm_free(&m->comm);
        free(m);
        return xffl_fail(XFFL_ERR_USAGE,
                         "mpi transport: the launcher started %d tasks but MPI sees %d rank(s) (under srun: "
                         "srun --mpi=pmix, or mpirun inside the allocation)",
                         tasks, seen);
    }
    *impl = m;
    *rank = m->rank;
    *size = m->size;
    return XFFL_OK;
}

static void mpi_close(void *impl)
{
    mpi_impl *m = impl;
    if (!m) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&m->comm);
    free(m->scratch), free(m->row), free(m->req);
    free(m);
}

/* Elements per piece: piece_bytes of them, at least 1 (and an int count for MPI). */
static size_t piece_elems(const mpi_impl *m, comm_dtype t)
{
    size_t p = m->piece_bytes / comm_dtype_size(t);
    return p ? (p < (1u << 30) ? p : (1u << 30)) : 1;
}

/* p elements of t whose extent is `stride` elements: consecutive ones in a collective
 * land `stride` apart (a 64-bit extent, where int displacements would overflow). When
 * p == stride (one piece) that is p plain elements: *count says how many of *out to pass,
 * and free_type whether *out must be freed (derived types take Open MPI's slower
 * pack path). */
static XFFL_MUST_USE xffl_status strided_type(size_t p, size_t stride, comm_dtype t, MPI_Datatype *out, int *count)
{
    if (p == stride) {
        *out = mpi_type(t);
        *count = (int)p;
        return XFFL_OK;
    }
    *count = 1;
    MPI_Datatype c;
    MPI_TRY(MPI_Type_contiguous((int)p, mpi_type(t), &c), "MPI_Type_contiguous");
    int err = MPI_Type_create_resized(c, 0, (MPI_Aint)(stride * comm_dtype_size(t)), out);
    MPI_Type_free(&c);
    if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Type_create_resized");
    err = MPI_Type_commit(out);
    if (err != MPI_SUCCESS) {
        MPI_Type_free(out);
        return mpi_fail(err, "MPI_Type_commit");
    }
    return XFFL_OK;
}

static void free_type(MPI_Datatype d, comm_dtype t)
{
    if (d != mpi_type(t)) MPI_Type_free(&d);
}

static XFFL_MUST_USE xffl_status scratch(mpi_impl *m)
{
    /* A piece is at least one element of the widest type. */
    if (!m->scratch) m->scratch = malloc((size_t)m->size * (m->piece_bytes < 8 ? 8 : m->piece_bytes));
    if (!m->row) m->row = malloc((size_t)m->size * sizeof *m->row);
    if (!m->req) m->req = malloc((size_t)m->size * 2 * sizeof *m->req);
    XFFL_RETURN_IF(!m->scratch || !m->row || !m->req, XFFL_ERR_NOMEM, "mpi transport: %d x %zu bytes of scratch",
                   m->size, m->piece_bytes);
    return XFFL_OK;
}

/* recv[0..n) ← rank-ordered sum of chunk `rank` of every rank's send (chunk r at
 * send[r*stride .. r*stride + n)).
 * Point to point rather than MPI_Alltoall: every piece that moves is contiguous (Open
 * MPI's shared-memory transport then copies it once, process to process, where a
 * strided datatype is packed and unpacked), and this rank's own chunk is summed where it
 * lies instead of being copied into the scratch first.
 * recv may be send's own chunk (the all-reduce does that): each piece is fully sent
 * before its sum is written, and pieces do not overlap. */
static XFFL_MUST_USE xffl_status mpi_reduce_scatter(void *impl, const void *send, size_t stride, void *recv, size_t n,
                                                    comm_dtype t)
{
    mpi_impl *m = impl;
    if (n == 0) return XFFL_OK;
    XFFL_FORWARD(scratch(m));
    size_t es = comm_dtype_size(t), P = piece_elems(m, t);
    const char *s = send;
    for (size_t off = 0; off < n; off += P) {
        size_t p = n - off < P ? n - off : P;
        int nr = 0, err = MPI_SUCCESS;
        for (int q = 0; q < m->size; q++) {
            char *buf = (char *)m->scratch + (size_t)q * p * es;
            m->row[q] = q == m->rank ? s + ((size_t)q * stride + off) * es : buf;
            if (q == m->rank) continue;
            if (err == MPI_SUCCESS) err = MPI_Irecv(buf, (int)p, mpi_type(t), q, 0, m->comm, &m->req[nr++]);
            if (err == MPI_SUCCESS)
                err = MPI_Isend(s + ((size_t)q * stride + off) * es, (int)p, mpi_type(t), q, 0, m->comm,
                                &m->req[nr++]);
        }
        /* after a failed post the job is aborted at exit (comm.h); nothing may dangle before */
        int werr = MPI_Waitall(nr, m->req, MPI_STATUSES_IGNORE);
        if (err == MPI_SUCCESS) err = werr;
        if (err != MPI_SUCCESS) return mpi_fail(err, "point-to-point exchange (reduce-scatter)");
        sum_rows(m->row, (char *)recv + off * es, m->size, p, t);
    }
    return XFFL_OK;
}

/* recv[r*stride ..) ← rank r's send[0..n); send == NULL: this rank's part is already in place. */
static XFFL_MUST_USE xffl_status gather(mpi_impl *m, const void *send, void *recv, size_t stride, size_t n, comm_dtype t)
{
    size_t es = comm_dtype_size(t), P = piece_elems(m, t);
    for (size_t off = 0; off < n; off += P) {
        size_t p = n - off < P ? n - off : P;
        MPI_Datatype part;
        int count;
        XFFL_FORWARD(strided_type(p, stride, t, &part, &count));
        int err = send ? MPI_Allgather((const char *)send + off * es, (int)p, mpi_type(t), (char *)recv + off * es,
                                       count, part, m->comm)
                       : MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, (char *)recv + off * es, count, part, m->comm);
        free_type(part, t);
        if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Allgather");
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status mpi_allgather(void *impl, const void *send, void *recv, size_t stride, size_t n,
                                               comm_dtype t)
{
    mpi_impl *m = impl;
    int in_place = send == (const char *)recv + (size_t)m->rank * stride * comm_dtype_size(t);
    return gather(m, in_place ? NULL : send, recv, stride, n, t);
}

/* buf[0..n) ← rank-ordered sum by all-gather of pieces and a local sum (n per rank of
 * traffic per rank and of additions per rank, times size-1). */
static XFFL_MUST_USE xffl_status gather_sum(mpi_impl *m, void *buf, size_t n, comm_dtype t)
{
    XFFL_FORWARD(scratch(m));
    size_t es = comm_dtype_size(t), P = piece_elems(m, t);
    for (size_t off = 0; off < n; off += P) {
        size_t p = n - off < P ? n - off : P;
        char *b = (char *)buf + off * es;
        MPI_TRY(MPI_Allgather(b, (int)p, mpi_type(t), m->scratch, (int)p, mpi_type(t), m->comm), "MPI_Allgather (all-reduce)");
        for (int q = 0; q < m->size; q++) m->row[q] = (char *)m->scratch + (size_t)q * p * es;
        sum_rows(m->row, b, m->size, p, t);
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status mpi_allreduce(void *impl, void *buf, size_t n, comm_dtype t)
{
    mpi_impl *m = impl;
    if (n == 0 || m->size == 1) return XFFL_OK;
    size_t es = comm_dtype_size(t), q = n / (size_t)m->size, main = q * (size_t)m->size;
    if (n * es <= m->gather_sum_max || q == 0) return gather_sum(m, buf, n, t);
    /* Every element is still summed in rank order: reduce-scatter hands each rank the sum
     * of its chunk (in place, in buf), the all-gather copies the chunks back out. */
    XFFL_FORWARD(mpi_reduce_scatter(m, buf, q, (char *)buf + (size_t)m->rank * q * es, q, t));
    XFFL_FORWARD(gather(m, NULL, buf, q, q, t));
    return main < n ? gather_sum(m, (char *)buf + main * es, n - main, t) : XFFL_OK;
}

static XFFL_MUST_USE xffl_status mpi_broadcast(void *impl, void *buf, size_t n, comm_dtype t, int root)
{
    mpi_impl *m = impl;
    XFFL_RETURN_IF(root < 0 || root >= m->size, XFFL_ERR_USAGE, "mpi transport: broadcast from rank %d of %d", root,
                   m->size);
    size_t es = comm_dtype_size(t), P = piece_elems(m, t);
    for (size_t off = 0; off < n; off += P) {
        size_t p = n - off < P ? n - off : P;
        MPI_TRY(MPI_Bcast((char *)buf + off * es, (int)p, mpi_type(t), root, m->comm), "MPI_Bcast");
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status mpi_barrier(void *impl)
{
    MPI_TRY(MPI_Barrier(((mpi_impl *)impl)->comm), "MPI_Barrier");
    return XFFL_OK;
}

const comm_transport_def comm_mpi = {
    .name = "mpi",
    .open = mpi_open,
    .close = mpi_close,
    .allreduce_sum = mpi_allreduce,
    .reduce_scatter_sum = mpi_reduce_scatter,
    .allgather = mpi_allgather,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .launched = mpi_launched,
};

#else /* built without MPI */

static XFFL_MUST_USE xffl_status mpi_open(const char *state_dir, void **impl, int *rank, int *size)
{
    (void)state_dir, (void)rank, (void)size;
    *impl = NULL;
    return xffl_fail(XFFL_ERR_UNSUPPORTED,
                     "mpi transport: built without MPI (install libopenmpi-dev: scripts/install-deps, then rebuild)");
}
/* open never succeeds, so comm.c never calls these. */
const comm_transport_def comm_mpi = {.name = "mpi", .open = mpi_open, .launched = mpi_launched};

#endif
