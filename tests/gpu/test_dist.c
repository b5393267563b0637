/* NCCL data parallelism: the whole one-rank path (id file, communicator, all-reduce), the
 * gradient-accumulation equivalence that N ranks rely on, and an N-GPU run (SKIP below 2). */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "kernels/cuda/dist.h"
#include "kernels/cuda/model.h"
#include "tests/gpu/gpu_test.h"

extern char **environ;

enum { DP_B = 4, DP_T = 32 };

/* tiny has GQA (4 heads, 2 kv heads), so the group-summed k/v gradients are covered. */
static XFFL_MUST_USE xffl_status tiny_model_seed(int B, int dev, uint64_t seed, kcu_model **m, float **params)
{
    ckpt_model_config cfg;
    XFFL_FORWARD(ckpt_model_preset("tiny", 0, &cfg));
    XFFL_FORWARD(kcu_model_create(&cfg, B, DP_T, dev, KCU_FP32, m));
    *params = gt_init_params(kcu_model_table(*m), seed);
    XFFL_RETURN_IF(!*params, XFFL_ERR_NOMEM, "params");
    return kcu_set_params(*m, *params);
}

static XFFL_MUST_USE xffl_status tiny_model(int B, int dev, kcu_model **m, float **params)
{
    return tiny_model_seed(B, dev, 7, m, params);
}

/* Gradients of the whole DP_B x DP_T batch in one backward. */
static XFFL_MUST_USE xffl_status full_batch_grads(int dev, const int32_t *in, const int32_t *tg, float **grads)
{
    kcu_model *m = NULL;
    float *p = NULL;
    xffl_status s = tiny_model(DP_B, dev, &m, &p);
    int64_t total = m ? kcu_model_table(m)->total : 0;
    if (s == XFFL_OK) s = kcu_zero_grad(m);
    if (s == XFFL_OK) s = kcu_forward(m, in, tg, DP_B, DP_T, NULL);
    if (s == XFFL_OK) s = kcu_backward(m);
    if (s == XFFL_OK && !(*grads = malloc((size_t)total * 4))) s = xffl_fail(XFFL_ERR_NOMEM, "grads");
    if (s == XFFL_OK) s = kcu_get_grads(m, *grads);
    kcu_model_free(m);
    free(p);
    return s;
}

void test_grad_accumulation_equivalence(void)
{
    int32_t in[DP_B * DP_T], tg[DP_B * DP_T];
    gt_text_batch(0, DP_B, DP_T, in, tg);
    float *full = NULL, *p = NULL, *acc = NULL;
    kcu_model *m = NULL;
    kern_dist *d = NULL;
    char *dir = NULL;
    GT_OK(full_batch_grads(0, in, tg, &full));
    GT_OK(tiny_model(1, 0, &m, &p));
    int64_t total = kcu_model_table(m)->total;
    acc = malloc((size_t)total * 4);
    GT_OK(kcu_zero_grad(m));
    for (int i = 0; i < DP_B; i++) { /* micro-batches of one sequence, gradients summed */
        GT_OK(kcu_forward(m, in + i * DP_T, tg + i * DP_T, 1, DP_T, NULL));
        GT_OK(kcu_backward(m));
    }
    /* the 1/N of the data-parallel mean goes through the same all-reduce call N ranks use */
    GT_OK(xffl_mkdtemp("gpu-dist", &dir));
    kern_dist_env e = {0, 1, 0, "accum"};
    GT_OK(kern_dist_init(dir, &e, 0, 10.0, &d));
    GT_OK(kern_dist_allreduce_device(d, kcu_grad_slab(m), total, 1.0f / DP_B, kcu_model_stream(m)));
    GT_OK(kcu_get_grads(m, acc));
    double err = gt_rel_err(acc, full, total);
    GT_CHECK(err < 1e-5, "4 x 1-sequence accumulation vs one 4-sequence batch: rel err %.3g (limit 1e-5)", err);
    kern_dist_free(d);
    kcu_model_free(m);
    xffl_rmtree_cleanup(dir);
    free(dir);
    free(full);
    free(p);
    free(acc);
}

void test_nccl_one_rank(void)
{
    char *dir = NULL, path[4096];
    GT_OK(xffl_mkdtemp("gpu-nccl", &dir));
    kern_dist_env e = {0, 1, 0, ""};
    snprintf(e.tag, sizeof e.tag, "test-%ld", (long)getpid());
    kern_dist *d = NULL;
    GT_OK(kern_dist_init(dir, &e, 0, 10.0, &d));
    GT_OK(kern_dist_id_path(dir, e.tag, path, sizeof path));
    GT_CHECK(access(path, F_OK) != 0, "rank 0 left the id file %s after every rank joined", path);
    GT_CHECK(kern_dist_rank(d) == 0 && kern_dist_world(d) == 1, "rank %d of %d", kern_dist_rank(d), kern_dist_world(d));
    float x[3] = {1, 2, 3};
    GT_OK(kern_dist_allreduce_host(d, x, 3, 0.5f));
    GT_CHECK(x[0] == 0.5f && x[1] == 1.0f && x[2] == 1.5f, "one-rank all-reduce x 0.5 gave %g %g %g", x[0], x[1], x[2]);
    /* the state broadcast path on the device: one rank keeps its values */
    kcu_model *m = NULL;
    float *p = NULL;
    GT_OK(tiny_model(1, 0, &m, &p));
    int64_t total = kcu_model_table(m)->total;
    float *back = malloc((size_t)total * 4);
    GT_OK(kern_dist_broadcast_device(d, kcu_param_slab(m), total, kcu_model_stream(m)));
    GT_OK(kcu_params_changed(m));
    GT_OK(kcu_get_params(m, back));
    GT_CHECK(memcmp(back, p, (size_t)total * 4) == 0, "one-rank broadcast changed the parameters");
    free(back);
    free(p);
    kcu_model_free(m);
    GT_OK(kern_dist_barrier(d));
    kern_dist_free(d);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

/* One rank of test_nccl_multi_gpu, in its own process on device R:
 *   --dp-rank R W TAG STATE_DIR */
int gpu_dp_rank_main(int argc, char **argv)
{
    if (argc != 6) return 2;
    int r = atoi(argv[2]), w = atoi(argv[3]);
    kern_dist_env e = {r, w, r, ""};
    snprintf(e.tag, sizeof e.tag, "%s", argv[4]);
    int32_t in[DP_B * DP_T], tg[DP_B * DP_T];
    gt_text_batch(0, DP_B, DP_T, in, tg);
    int per = DP_B / w;
    kern_dist *d = NULL;
    kcu_model *m = NULL;
    float *p = NULL, *full = NULL, *mine = NULL;
    xffl_status s = kern_dist_init(argv[5], &e, r, 60.0, &d);
    /* every rank starts from other parameters; rank 0's (seed 7) are broadcast, as rank 0 alone
     * reads the base version from the store */
    if (s == XFFL_OK) s = tiny_model_seed(per, r, 7 + (uint64_t)r, &m, &p);
    int64_t np = m ? kcu_model_table(m)->total : 0;
    if (s == XFFL_OK) s = kern_dist_broadcast_device(d, kcu_param_slab(m), np, kcu_model_stream(m));
    if (s == XFFL_OK) s = kcu_params_changed(m);
    if (s == XFFL_OK) s = kcu_zero_grad(m);
    if (s == XFFL_OK) s = kcu_forward(m, in + r * per * DP_T, tg + r * per * DP_T, per, DP_T, NULL);
    if (s == XFFL_OK) s = kcu_backward(m);
    int64_t total = m ? kcu_model_table(m)->total : 0;
    if (s == XFFL_OK) s = kern_dist_allreduce_device(d, kcu_grad_slab(m), total, 1.0f / w, kcu_model_stream(m));
    if (s == XFFL_OK && !(mine = malloc((size_t)total * 4))) s = XFFL_ERR_NOMEM;
    if (s == XFFL_OK) s = kcu_get_grads(m, mine);
    if (s == XFFL_OK) s = full_batch_grads(r, in, tg, &full);
    int rc = 0;
    if (s != XFFL_OK) {
        fprintf(stderr, "rank %d: %s (%s)\n", r, xffl_errmsg(), xffl_strerror(s));
        rc = 1;
    } else {
        double err = gt_rel_err(mine, full, total);
        if (err >= 1e-5) {
            fprintf(stderr, "rank %d of %d: all-reduced gradients vs one-GPU batch: rel err %.3g\n", r, w, err);
            rc = 1;
        }
    }
    kern_dist_free(d);
    kcu_model_free(m);
    free(p);
    free(full);
    free(mine);
    return rc;
}

void test_nccl_multi_gpu(void)
{
    int n = 0;
    GT_OK(kcu_device_count(&n));
    if (n < 2) {
        gt_skip("fewer than 2 GPUs (%d visible); NCCL refuses two ranks on one device", n);
        return;
    }
    int w = n >= 4 ? 4 : 2; /* divides the batch of 4 */
    char *dir = NULL, tag[64], rs[16], ws[16];
    GT_OK(xffl_mkdtemp("gpu-dp", &dir));
    snprintf(tag, sizeof tag, "multi-%ld", (long)getpid());
    snprintf(ws, sizeof ws, "%d", w);
    pid_t pids[4];
    for (int r = 0; r < w; r++) {
        snprintf(rs, sizeof rs, "%d", r);
        char *args[] = {"/proc/self/exe", "--dp-rank", rs, ws, tag, dir, NULL};
        int e = posix_spawn(&pids[r], "/proc/self/exe", NULL, NULL, args, environ);
        GT_CHECK(e == 0, "spawning rank %d: %s", r, strerror(e));
        if (e) pids[r] = -1;
    }
    for (int r = 0; r < w; r++) {
        int st = 0;
        if (pids[r] < 0) continue;
        waitpid(pids[r], &st, 0);
        GT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank %d of %d failed (status %d)", r, w, st);
    }
    xffl_rmtree_cleanup(dir);
    free(dir);
}
