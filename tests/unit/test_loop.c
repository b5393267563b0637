/* The training loop's splits (pipelines/loop.h) on the tiny model, with ranks as
 * threads of this process (a transport kept to the comm.h contract: rank-ordered sums):
 * R ranks x K micro-batches give the bits of 1 rank x R*K, the sharded optimizer the
 * bits of the unsharded one and of the backend's own AdamW, and a run stopped right
 * after a checkpoint then resumed gives the bits of an uninterrupted run. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "pipelines/loop.h"
#include "pipelines/memplan.h"
#include "tests/unit/unit.h"

/* --- ranks as threads ------------------------------------------------------------ */

enum { MAX_RANKS = 8 };
static struct {
    pthread_barrier_t bar;
    int size;
    const void *ptr[MAX_RANKS];
} team;
static _Thread_local int my_rank;

typedef struct {
    int rank;
} th_impl;

static XFFL_MUST_USE xffl_status th_open(const char *dir, void **impl, int *rank, int *size)
{
    (void)dir;
    th_impl *t = malloc(sizeof *t);
    XFFL_RETURN_IF(!t, XFFL_ERR_NOMEM, "threads transport");
    t->rank = my_rank;
    *impl = t, *rank = my_rank, *size = team.size;
    return XFFL_OK;
}
static void th_close(void *impl) { free(impl); }
static void sync_all(void) { pthread_barrier_wait(&team.bar); }

/* out[i] = ((x_0[off+i] + x_1[off+i]) + ...) */
static void rank_sum(void *out, size_t off, size_t n, comm_dtype t)
{
    for (size_t i = 0; i < n; i++) {
        if (t == COMM_F32) {
            float s = ((const float *)team.ptr[0])[off + i];
            for (int r = 1; r < team.size; r++) s += ((const float *)team.ptr[r])[off + i];
            ((float *)out)[i] = s;
        } else if (t == COMM_F64) {
            double s = ((const double *)team.ptr[0])[off + i];
            for (int r = 1; r < team.size; r++) s += ((const double *)team.ptr[r])[off + i];
            ((double *)out)[i] = s;
        } else {
            int64_t s = ((const int64_t *)team.ptr[0])[off + i];
            for (int r = 1; r < team.size; r++) s += ((const int64_t *)team.ptr[r])[off + i];
            ((int64_t *)out)[i] = s;
        }
    }
}

static XFFL_MUST_USE xffl_status th_allreduce(void *impl, void *buf, size_t n, comm_dtype t)
{
    th_impl *me = impl;
    void *tmp = malloc(n * comm_dtype_size(t) + 1);
    team.ptr[me->rank] = buf;
    sync_all();
    rank_sum(tmp, 0, n, t);
    sync_all();
    memcpy(buf, tmp, n * comm_dtype_size(t));
    free(tmp);
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status th_reduce_scatter(void *impl, const void *send, size_t stride, void *recv, size_t n,
                                                   comm_dtype t)
{
    th_impl *me = impl;
    team.ptr[me->rank] = send;
    sync_all();
    rank_sum(recv, (size_t)me->rank * stride, n, t);
    sync_all();
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status th_allgather(void *impl, const void *send, void *recv, size_t stride, size_t n,
                                              comm_dtype t)
{
    th_impl *me = impl;
    size_t b = n * comm_dtype_size(t);
    team.ptr[me->rank] = send;
    sync_all();
    for (int r = 0; r < team.size; r++) {
        char *to = (char *)recv + (size_t)r * stride * comm_dtype_size(t);
        if (to != team.ptr[r]) memcpy(to, team.ptr[r], b); /* in place: the own part is there */
    }
    sync_all();
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status th_broadcast(void *impl, void *buf, size_t n, comm_dtype t, int root)
{
    th_impl *me = impl;
    team.ptr[me->rank] = buf;
    sync_all();
    if (me->rank != root) memcpy(buf, team.ptr[root], n * comm_dtype_size(t));
    sync_all();
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status th_barrier(void *impl)
{
    (void)impl;
    sync_all();
    return XFFL_OK;
}
static int th_launched(void) { return 0; }

static const comm_transport_def threads_def = {
    .name = "threads", .open = th_open, .close = th_close, .allreduce_sum = th_allreduce,
    .reduce_scatter_sum = th_reduce_scatter, .allgather = th_allgather, .broadcast = th_broadcast,
    .barrier = th_barrier, .launched = th_launched,
};

/* --- one run on R thread-ranks ----------------------------------------------------- */

static XFFL_MUST_USE xffl_status synth(void *ctx, int64_t seq, int B, int T, int32_t *in, int32_t *tg)
{
    (void)ctx;
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= T; t++) {
            int64_t q = seq + b;
            int32_t tok = (int32_t)((q * 37 + t * 11 + (q * t) % 7) % 256);
            if (t < T) in[b * T + t] = tok;
            if (t > 0) tg[b * T + t - 1] = tok;
        }
    return XFFL_OK;
}

typedef struct {
    pipe_loop_options o;
    const float *theta0;
    int64_t n;
    int keep;              /* 1: inner state in and out */
    float *theta[MAX_RANKS], *m[MAX_RANKS], *v[MAX_RANKS];
    int64_t step[MAX_RANKS];
    xffl_status st[MAX_RANKS];
    float losses[MAX_RANKS][16];
    pipe_loop_result r[MAX_RANKS];
    int rank;
} run_spec;

typedef struct {
    run_spec *s;
    int rank;
} th_arg;

static void *rank_main(void *p)
{
    th_arg *a = p;
    run_spec *s = a->s;
    int r = a->rank;
    my_rank = r;
    xffl_comm *c = NULL;
    s->st[r] = comm_open_def(&threads_def, NULL, &c);
    if (s->st[r] != XFFL_OK) return NULL;
    s->theta[r] = malloc((size_t)s->n * 4);
    memcpy(s->theta[r], s->theta0, (size_t)s->n * 4);
    pipe_loop_inner in = {0};
    if (s->keep) {
        in.m = s->m[r] = calloc((size_t)s->n, 4);
        in.v = s->v[r] = calloc((size_t)s->n, 4);
    }
    s->st[r] = pipe_loop_run(c, &s->o, s->theta[r], s->keep ? &in : NULL, s->losses[r], &s->r[r]);
    s->step[r] = in.step;
    comm_close(c);
    return NULL;
}

/* Runs s on R ranks (R = 0: one rank on the self transport); returns rank 0's status. */
static xffl_status run(run_spec *s, int R)
{
    for (int r = 0; r < MAX_RANKS; r++) s->theta[r] = s->m[r] = s->v[r] = NULL;
    if (R == 0) {
        s->theta[0] = malloc((size_t)s->n * 4);
        memcpy(s->theta[0], s->theta0, (size_t)s->n * 4);
        pipe_loop_inner in = {0};
        if (s->keep) {
            in.m = s->m[0] = calloc((size_t)s->n, 4);
            in.v = s->v[0] = calloc((size_t)s->n, 4);
        }
        s->st[0] = pipe_loop_run(NULL, &s->o, s->theta[0], s->keep ? &in : NULL, s->losses[0], &s->r[0]);
        s->step[0] = in.step;
        return s->st[0];
    }
    team.size = R;
    pthread_barrier_init(&team.bar, NULL, (unsigned)R);
    pthread_t th[MAX_RANKS];
    th_arg args[MAX_RANKS];
    for (int r = 0; r < R; r++) {
        args[r] = (th_arg){s, r};
        pthread_create(&th[r], NULL, rank_main, &args[r]);
    }
    for (int r = 0; r < R; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&team.bar);
    for (int r = 1; r < R; r++) CU_ASSERT_EQUAL(s->st[r], s->st[0]);
    return s->st[0];
}

static void run_free(run_spec *s)
{
    for (int r = 0; r < MAX_RANKS; r++) free(s->theta[r]), free(s->m[r]), free(s->v[r]);
}

static ckpt_model_config cfg;
static float *theta0;
static int64_t n_params;

static void base_spec(run_spec *s, int K, pipe_opt_mode mode)
{
    memset(s, 0, sizeof *s);
    s->o = (pipe_loop_options){.model = &cfg, .backend = "cpu", .threads = 1, .steps = 4, .batch = 12,
                               .seq_len = 16, .accumulate = K, .optimizer = mode, .step0 = 3, .cursor = 5,
                               .next_batch = synth, .progress = XFFL_LOG_DEBUG};
    kern_adamw_default(&s->o.adamw);
    s->o.adamw.lr = 3e-3f;
    s->o.adamw.warmup_steps = 2;
    s->o.adamw.total_steps = 10;
    s->o.adamw.grad_clip = 0.5f; /* reached: the clip's scale takes part */
    s->theta0 = theta0;
    s->n = n_params;
}

static int setup(void)
{
    if (ckpt_model_preset("tiny", 0, &cfg) != XFFL_OK) return 1;
    ckpt_param_table *t = NULL;
    if (ckpt_param_table_create(&cfg, &t) != XFFL_OK) return 1;
    n_params = t->total;
    theta0 = malloc((size_t)n_params * 4);
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 9, theta0 + t->params[i].offset);
    ckpt_param_table_free(t);
    return 0;
}
static int teardown(void)
{
    free(theta0);
    return 0;
}

/* Every rank of b ends with a's θ, losses and (when kept) inner state, bit for bit. */
static void same_bits(const char *what, run_spec *a, run_spec *b, int R)
{
    for (int r = 0; r < (R ? R : 1); r++) {
        int same = !memcmp(a->theta[0], b->theta[r], (size_t)n_params * 4) &&
                   !memcmp(a->losses[0], b->losses[r], sizeof a->losses[0]) &&
                   a->r[0].loss_mean == b->r[r].loss_mean;
        if (a->keep && b->keep)
            same = same && !memcmp(a->m[0], b->m[r], (size_t)n_params * 4) &&
                   !memcmp(a->v[0], b->v[r], (size_t)n_params * 4) && a->step[0] == b->step[r];
        if (!same) printf("\n  %s: rank %d differs", what, r);
        CU_ASSERT(same);
    }
}

static void test_splits(void)
{
    /* the reference: one rank, 12 micro-batches of 1... M = 2, 4 and 6 below */
    int Ms[] = {2, 4, 6};
    for (int mi = 0; mi < 3; mi++) {
        int M = Ms[mi];
        run_spec ref;
        base_spec(&ref, M, PIPE_OPT_AUTO);
        ref.keep = 1;
        T_OK(run(&ref, 0));
        CU_ASSERT_EQUAL(ref.r[0].micro_batches, M);
        /* R ranks x K = M, sharded and replicated */
        for (int R = 2; R <= M && R <= 6; R++) {
            if (M % R) continue;
            for (int mode = PIPE_OPT_SHARDED; mode <= PIPE_OPT_REPLICATED; mode++) {
                run_spec s;
                base_spec(&s, M / R, (pipe_opt_mode)mode);
                s.keep = 1;
                T_OK(run(&s, R));
                char what[96];
                snprintf(what, sizeof what, "%d ranks x %d (%s) vs 1 x %d", R, M / R,
                         mode == PIPE_OPT_SHARDED ? "sharded" : "replicated", M);
                same_bits(what, &ref, &s, R);
                CU_ASSERT_EQUAL(s.r[0].sharded, mode == PIPE_OPT_SHARDED);
                run_free(&s);
            }
        }
        run_free(&ref);
    }
    /* the backend's own AdamW (1 x 1) = the host optimizer, sharded or not */
    run_spec a, b, c;
    base_spec(&a, 1, PIPE_OPT_AUTO);
    base_spec(&b, 1, PIPE_OPT_SHARDED);
    base_spec(&c, 1, PIPE_OPT_REPLICATED);
    a.keep = b.keep = c.keep = 1;
    T_OK(run(&a, 0));
    T_OK(run(&b, 0));
    T_OK(run(&c, 0));
    CU_ASSERT_EQUAL(a.r[0].sharded, 0);
    same_bits("sharded vs backend", &a, &b, 0);
    same_bits("replicated vs backend", &a, &c, 0);
    /* activations recomputed layer by layer: the same bits, on the backend's AdamW and sharded */
    run_spec rc1, rc2;
    base_spec(&rc1, 1, PIPE_OPT_AUTO);
    base_spec(&rc2, 2, PIPE_OPT_SHARDED);
    rc1.keep = rc2.keep = 1;
    rc1.o.recompute = rc2.o.recompute = 1;
    T_OK(run(&rc1, 0));
    T_OK(run(&rc2, 2));
    same_bits("recompute vs not", &a, &rc1, 0);
    CU_ASSERT(rc1.r[0].backend_bytes < a.r[0].backend_bytes);
    run_spec acc4;
    base_spec(&acc4, 4, PIPE_OPT_AUTO);
    T_OK(run(&acc4, 0));
    same_bits("2 ranks x 2 recomputed vs 1 x 4", &acc4, &rc2, 2);
    /* the host optimizer's backend holds no AdamW slabs */
    CU_ASSERT(b.r[0].backend_bytes + 8 * (uint64_t)n_params <= a.r[0].backend_bytes);
    run_free(&rc1), run_free(&rc2), run_free(&acc4);
    /* a batch the split does not divide */
    run_spec bad;
    base_spec(&bad, 5, PIPE_OPT_AUTO);
    CU_ASSERT_EQUAL(run(&bad, 0), XFFL_ERR_USAGE);
    run_free(&a), run_free(&b), run_free(&c), run_free(&bad);
}

/* Exchanges in pieces of one chunk (a model of 3.3 chunks: vocab 1024): the same bits. */
static void test_pieces(void)
{
    ckpt_model_config was_cfg = cfg;
    float *was_theta = theta0;
    int64_t was_n = n_params;
    ckpt_param_table *t = NULL;
    T_OK(ckpt_model_preset("tiny", 1024, &cfg));
    T_OK(ckpt_param_table_create(&cfg, &t));
    n_params = t->total;
    theta0 = malloc((size_t)n_params * 4);
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 4, theta0 + t->params[i].offset);
    CU_ASSERT(n_params > 3 * 65536);
    run_spec ref, s;
    base_spec(&ref, 4, PIPE_OPT_AUTO);
    ref.keep = 1;
    T_OK(run(&ref, 0));
    struct {
        int R, K;
        pipe_opt_mode mode;
    } cases[] = {{1, 4, PIPE_OPT_SHARDED}, {2, 2, PIPE_OPT_SHARDED}, {4, 1, PIPE_OPT_SHARDED},
                 {2, 2, PIPE_OPT_REPLICATED}, {4, 1, PIPE_OPT_REPLICATED}};
    for (int i = 0; i < 5; i++) {
        base_spec(&s, cases[i].K, cases[i].mode);
        s.keep = 1;
        s.o.piece = 65536;
        T_OK(run(&s, cases[i].R == 1 ? 0 : cases[i].R));
        char what[64];
        snprintf(what, sizeof what, "pieces: %d x %d mode %d", cases[i].R, cases[i].K, (int)cases[i].mode);
        same_bits(what, &ref, &s, cases[i].R == 1 ? 0 : cases[i].R);
        run_free(&s);
    }
    run_free(&ref);
    free(theta0);
    ckpt_param_table_free(t);
    cfg = was_cfg, theta0 = was_theta, n_params = was_n;
}

/* Stopped right after step 2's checkpoint, then run again: the bits of a run without
 * the stop, on 1 rank (backend AdamW) and on 3 sharded ranks; another tag starts over. */
static void test_checkpoint_resume(void)
{
    char *dir = NULL;
    T_OK(xffl_mkdtemp("xffl-loop", &dir));
    for (int R = 0; R <= 3; R += 3) {
        run_spec plain, cut, again, other;
        char d1[4200], d2[4200];
        snprintf(d1, sizeof d1, "%s/r%d-a", dir, R);
        snprintf(d2, sizeof d2, "%s/r%d-b", dir, R);
        pipe_opt_mode mode = R ? PIPE_OPT_SHARDED : PIPE_OPT_AUTO;
        base_spec(&plain, 1, mode);
        plain.o.steps = 5;
        plain.keep = 1;
        T_OK(run(&plain, R));
        base_spec(&cut, 1, mode);
        cut.o.steps = 5;
        cut.keep = 1;
        cut.o.checkpoint_dir = d1;
        cut.o.checkpoint_every = 2;
        cut.o.checkpoint_tag = "round 1 from v0";
        cut.o.halt_after = 2;
        CU_ASSERT_EQUAL(run(&cut, R), XFFL_ERR_INTERNAL);
        again = cut;
        again.o.halt_after = 0;
        T_OK(run(&again, R));
        CU_ASSERT_EQUAL(again.r[0].resumed_after, 2);
        CU_ASSERT_EQUAL(again.r[0].loss_first, plain.r[0].loss_first);
        CU_ASSERT_EQUAL(again.r[0].loss_mean, plain.r[0].loss_mean);
        CU_ASSERT_EQUAL(again.r[0].cursor_end, plain.r[0].cursor_end);
        for (int r = 0; r < (R ? R : 1); r++) {
            CU_ASSERT_EQUAL(memcmp(plain.theta[0], again.theta[r], (size_t)n_params * 4), 0);
            CU_ASSERT_EQUAL(memcmp(plain.m[0], again.m[r], (size_t)n_params * 4), 0);
            CU_ASSERT_EQUAL(plain.step[0], again.step[r]);
        }
        /* a checkpoint left by a run stopped at step 4 does not fit another tag */
        run_free(&cut);
        base_spec(&cut, 1, mode);
        cut.o.steps = 5;
        cut.o.checkpoint_dir = d2;
        cut.o.checkpoint_every = 2;
        cut.o.checkpoint_tag = "round 1 from v0";
        cut.o.halt_after = 4;
        CU_ASSERT_EQUAL(run(&cut, R), XFFL_ERR_INTERNAL);
        other = cut;
        other.o.halt_after = 0;
        other.o.checkpoint_tag = "round 1 from another v0";
        T_OK(run(&other, R));
        CU_ASSERT_EQUAL(other.r[0].resumed_after, 0);
        CU_ASSERT_EQUAL(memcmp(plain.theta[0], other.theta[0], (size_t)n_params * 4), 0);
        xffl_comm *self = NULL;
        T_OK(comm_open("self", NULL, &self));
        pipe_loop_checkpoint_clear(self, d1);
        comm_close(self);
        CU_ASSERT(access(d1, F_OK) == 0);
        run_free(&plain), run_free(&cut), run_free(&again), run_free(&other);
    }
    xffl_rmtree_cleanup(dir);
    free(dir);
}

/* The cpu memory plan (pipelines/memplan.c) is what the loop allocates, to the byte:
 * the backend's slab and its two token arrays, and the loop's host buffers; the MPI
 * transport's scratch (a plan line with several ranks) is not this transport's. */
static void test_plan_matches_loop(void)
{
    static const struct {
        int R, K;
        pipe_opt_mode mode;
    } cases[] = {{0, 2, PIPE_OPT_AUTO}, {2, 1, PIPE_OPT_AUTO}, {2, 3, PIPE_OPT_SHARDED}, {3, 1, PIPE_OPT_REPLICATED}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_spec s;
        base_spec(&s, cases[i].K, cases[i].mode);
        s.o.steps = 1;
        int R = cases[i].R ? cases[i].R : 1, M = R * cases[i].K;
        T_OK(run(&s, cases[i].R));
        pipe_memplan_config c = {.model = cfg, .backend = "cpu", .ranks = R, .accumulate = cases[i].K,
                                 .zero = cases[i].mode == PIPE_OPT_REPLICATED ? 0 : 2, .batch = s.o.batch / M,
                                 .seq_len = s.o.seq_len, .threads = 1};
        pipe_memplan p;
        T_OK(pipe_memplan_compute(&c, &p));
        uint64_t scratch = 0;
        for (int k = 0; k < p.n_items; k++)
            if (!strncmp(p.items[k].what, "mpi transport scratch", 21)) scratch += p.items[k].each;
        CU_ASSERT_EQUAL(scratch > 0, R > 1);
        CU_ASSERT_EQUAL(p.total - scratch, s.r[0].backend_bytes + 2ull * (uint64_t)(c.batch * c.seq_len) * 4 +
                                               s.r[0].host_bytes);
        run_free(&s);
    }
}

void suite_loop(void)
{
    CU_pSuite s = CU_add_suite("loop", setup, teardown);
    CU_add_test(s, "R ranks x K micro-batches = 1 x R*K; sharded = replicated = backend AdamW", test_splits);
    CU_add_test(s, "exchanges in pieces of one chunk: the same bits", test_pieces);
    CU_add_test(s, "stopped after a checkpoint and resumed = uninterrupted (1 and 3 ranks)", test_checkpoint_resume);
    CU_add_test(s, "the cpu memory plan counts what the loop allocates", test_plan_matches_loop);
}
