#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "pipelines/algo.h"
#include "pipelines/federation.h"

static void run(pipe_algo_config *c, int k, const float *const *d, const double *tok, const float *base, int64_t n,
                float **state, int64_t round, float *out, xffl_status want)
{
    pipe_algo_input in = {.k = k, .deltas = d, .tokens = tok, .base = base, .n = n, .state = state, .round = round,
                          .threads = 1};
    CU_ASSERT_EQUAL(pipe_algo_apply(c, &in, out, NULL), want);
}

static void test_fedavg(void)
{
    float base[2] = {1, 2}, d1[2] = {1, 0}, d2[2] = {0, 2}, out[2];
    const float *d[2] = {d1, d2};
    double tok[2] = {1, 3};
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_FEDAVG, &c);
    run(&c, 2, d, tok, base, 2, NULL, 1, out, XFFL_OK);
    CU_ASSERT_EQUAL(out[0], 1.25f); /* 1 + (1·1 + 3·0)/4 */
    CU_ASSERT_EQUAL(out[1], 3.5f);  /* 2 + (0 + 3·2)/4 */
    c.unweighted = 1;               /* the XFFL paper: plain mean of the models */
    run(&c, 2, d, tok, base, 2, NULL, 1, out, XFFL_OK);
    CU_ASSERT_EQUAL(out[0], 1.5f);
    CU_ASSERT_EQUAL(out[1], 3.0f);
}

static void test_diloco(void)
{
    float base[2] = {1, 2}, d1[2] = {1, 0}, d2[2] = {0, 2}, out[2], mom[2] = {0, 0};
    const float *d[2] = {d1, d2};
    double tok[2] = {5, 5};
    float *st[1] = {mom};
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_DILOCO, &c);
    CU_ASSERT_EQUAL(pipe_algo_state_count(c.kind), 1);
    CU_ASSERT_STRING_EQUAL(pipe_algo_state_group(c.kind, 0), "outer");
    run(&c, 2, d, tok, base, 2, st, 1, out, XFFL_OK);
    /* g = −[0.5, 1]; m = g; θ = θ − 0.7·(g + 0.9·m) = θ + 1.33·d̄ */
    CU_ASSERT_EQUAL(mom[0], -0.5f);
    CU_ASSERT_EQUAL(mom[1], -1.0f);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 1.665, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 3.33, 1e-6);
    /* second round, same deltas: m = 0.9·m + g = 1.9·g; θ − 0.7·(g + 0.9·1.9·g) */
    float out2[2];
    run(&c, 2, d, tok, out, 2, st, 2, out2, XFFL_OK);
    CU_ASSERT_DOUBLE_EQUAL(mom[0], -0.95, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out2[0], 1.665 + 0.7 * 0.5 * (1 + 0.9 * 1.9), 1e-5);
}

/* --outer-warmup R: round t < R steps with outer_lr x t / R, then outer_lr; recorded in
 * federation.h5 only when set (absent: none, as every federation before it); diloco's
 * alone. */
static void test_outer_warmup(void)
{
    float base[2] = {1, 2}, d1[2] = {1, 0}, d2[2] = {0, 2}, out[2], mom[2] = {0, 0};
    const float *d[2] = {d1, d2};
    double tok[2] = {5, 5};
    float *st[1] = {mom};
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_DILOCO, &c);
    c.outer_warmup = 4;
    CU_ASSERT_EQUAL(pipe_algo_validate(&c), XFFL_OK);
    run(&c, 2, d, tok, base, 2, st, 1, out, XFFL_OK);
    /* round 1 of 4: lr 0.7 / 4; m = g = −[0.5, 1]; θ + 0.175·1.9·d̄ */
    CU_ASSERT_DOUBLE_EQUAL(out[0], 1 + 0.175 * 1.9 * 0.5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 2 + 0.175 * 1.9 * 1.0, 1e-6);
    for (int64_t round = 4; round <= 5; round++) { /* from round R on: outer_lr itself */
        float m1[2] = {0, 0}, m2[2] = {0, 0}, o1[2], o2[2];
        float *s1[1] = {m1}, *s2[1] = {m2};
        pipe_algo_config plain = c;
        plain.outer_warmup = 0;
        run(&c, 2, d, tok, base, 2, s1, round, o1, XFFL_OK);
        run(&plain, 2, d, tok, base, 2, s2, round, o2, XFFL_OK);
        CU_ASSERT_EQUAL(memcmp(o1, o2, sizeof o1), 0);
    }
    c.outer_warmup = -1;
    CU_ASSERT_EQUAL(pipe_algo_validate(&c), XFFL_ERR_INVALID);
    pipe_algo_default(PIPE_ALGO_FEDAVG, &c);
    c.outer_warmup = 2;
    CU_ASSERT_EQUAL(pipe_algo_validate(&c), XFFL_ERR_INVALID);

    pipe_federation f, g;
    CU_ASSERT_EQUAL_FATAL(pipe_federation_default("tiny", 0, &f), XFFL_OK);
    pipe_federation_set_algo(&f, PIPE_ALGO_DILOCO);
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-warmup", &dir), XFFL_OK);
    char path[4096];
    snprintf(path, sizeof path, "%s/federation.h5", dir);
    CU_ASSERT_EQUAL(pipe_federation_write_file(&f, path), XFFL_OK);
    g.algo.outer_warmup = 9;
    CU_ASSERT_EQUAL(pipe_federation_read_file(path, &g), XFFL_OK);
    CU_ASSERT_EQUAL(g.algo.outer_warmup, 0); /* absent: no warm-up */
    f.algo.outer_warmup = 6;
    CU_ASSERT_EQUAL(pipe_federation_write_file(&f, path), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_federation_read_file(path, &g), XFFL_OK);
    CU_ASSERT_EQUAL(g.algo.outer_warmup, 6);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

static void test_fedadam(void)
{
    float base[3] = {0, 0, 0}, d1[3] = {0.5f, -0.25f, 0}, out[3], m[3] = {0}, v[3] = {0};
    const float *d[1] = {d1};
    double tok[1] = {1};
    float *st[2] = {m, v};
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_FEDADAM, &c);
    CU_ASSERT_EQUAL(pipe_algo_state_count(c.kind), 2);
    CU_ASSERT_STRING_EQUAL(pipe_algo_state_group(c.kind, 1), "outer/v");
    run(&c, 1, d, tok, base, 3, st, 1, out, XFFL_OK);
    /* first step: bias-corrected m̂ = g, v̂ = g², so the step is lr·sign(d̄) */
    CU_ASSERT_DOUBLE_EQUAL(out[0], 0.01, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(out[1], -0.01, 1e-7);
    CU_ASSERT_EQUAL(out[2], 0.0f);
    CU_ASSERT_DOUBLE_EQUAL(m[0], -0.05, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(v[0], 0.01 * 0.25, 1e-8);
}

static void test_robust(void)
{
    float base[1] = {10}, out[1];
    float a[1] = {100}, b[1] = {1}, cc[1] = {2}, dd[1] = {3}, e[1] = {-50};
    const float *d5[5] = {a, b, cc, dd, e};
    double tok[5] = {1, 1, 1, 1, 1};
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_MEDIAN, &c);
    c.delta_filter = 0; /* the combines alone (the filter would leave out 100 and −50) */
    run(&c, 5, d5, tok, base, 1, NULL, 1, out, XFFL_OK);
    CU_ASSERT_EQUAL(out[0], 12.0f); /* median of {−50,1,2,3,100} = 2 */
    run(&c, 4, d5, tok, base, 1, NULL, 1, out, XFFL_OK);
    CU_ASSERT_EQUAL(out[0], 12.5f); /* median of {1,2,3,100} = 2.5 */
    pipe_algo_default(PIPE_ALGO_TRIMMED, &c);
    c.delta_filter = 0;
    c.trim = 0.2; /* cut one from each end of 5 */
    run(&c, 5, d5, tok, base, 1, NULL, 1, out, XFFL_OK);
    CU_ASSERT_EQUAL(out[0], 12.0f); /* mean of {1,2,3} */
    c.trim = 0.1; /* cut 0 of 5: plain mean 56/5 */
    run(&c, 5, d5, tok, base, 1, NULL, 1, out, XFFL_OK);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 10 + 56.0 / 5, 1e-5);
}

static void test_clip_and_nan(void)
{
    float base[2] = {0, 0}, d1[2] = {3, 4}, out[2];
    const float *d[1] = {d1};
    double tok[1] = {1};
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_FEDAVG, &c);
    c.clip_norm = 1;
    pipe_algo_input in = {.k = 1, .deltas = d, .tokens = tok, .base = base, .n = 2, .round = 1, .threads = 1};
    pipe_algo_stats st;
    CU_ASSERT_EQUAL(pipe_algo_apply(&c, &in, out, &st), XFFL_OK);
    CU_ASSERT_DOUBLE_EQUAL(st.pg_norm, 5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(st.clip_scale, 0.2, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 0.6, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 0.8, 1e-6);
    d1[1] = NAN;
    CU_ASSERT_EQUAL(pipe_algo_apply(&c, &in, out, &st), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "element 1"));
    double zero[1] = {0};
    d1[1] = 0;
    c.clip_norm = 0;
    in.tokens = zero;
    CU_ASSERT_EQUAL(pipe_algo_apply(&c, &in, out, &st), XFFL_ERR_INVALID);
    c.momentum = 1.5;
    CU_ASSERT_EQUAL(pipe_algo_validate(&c), XFFL_ERR_INVALID);
    pipe_algo_kind k;
    CU_ASSERT_EQUAL(pipe_algo_parse("diloco", &k), XFFL_OK);
    CU_ASSERT_EQUAL(k, PIPE_ALGO_DILOCO);
    CU_ASSERT_EQUAL(pipe_algo_parse("sgd", &k), XFFL_ERR_USAGE);
}

/* Same bits for 1 and 2 threads, for every algorithm, across several norm chunks. */
static void test_thread_determinism(void)
{
    const int64_t n = 300007;
    const int k = 3;
    float *base = malloc(n * sizeof(float)), *d[3], *o1 = malloc(n * sizeof(float)), *o2 = malloc(n * sizeof(float));
    float *s1[2], *s2[2];
    uint64_t x = 88172645463325252ull;
    for (int j = 0; j < k; j++) d[j] = malloc(n * sizeof(float));
    for (int s = 0; s < 2; s++) {
        s1[s] = malloc(n * sizeof(float));
        s2[s] = malloc(n * sizeof(float));
    }
    for (int64_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        base[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
        for (int j = 0; j < k; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            d[j][i] = (float)(((double)(x >> 11) / 9007199254740992.0 - 0.5) * 1e-3);
        }
    }
    double tok[3] = {1000, 3000, 1234};
    for (int kind = PIPE_ALGO_FEDAVG; kind <= PIPE_ALGO_TRIMMED; kind++) {
        pipe_algo_config c;
        pipe_algo_default((pipe_algo_kind)kind, &c);
        c.clip_norm = 0.05;
        for (int s = 0; s < 2; s++) {
            for (int64_t i = 0; i < n; i++) s1[s][i] = s2[s][i] = (float)(i % 7) * 1e-4f;
        }
        pipe_algo_input in = {.k = k, .deltas = (const float *const *)d, .tokens = tok, .base = base, .n = n,
                              .state = s1, .round = 3, .threads = 1};
        pipe_algo_stats a, b;
        CU_ASSERT_EQUAL(pipe_algo_apply(&c, &in, o1, &a), XFFL_OK);
        in.threads = 2;
        in.state = s2;
        CU_ASSERT_EQUAL(pipe_algo_apply(&c, &in, o2, &b), XFFL_OK);
        CU_ASSERT_EQUAL(memcmp(o1, o2, n * sizeof(float)), 0);
        CU_ASSERT_EQUAL(memcmp(s1[0], s2[0], n * sizeof(float)), 0);
        CU_ASSERT_EQUAL(memcmp(s1[1], s2[1], n * sizeof(float)), 0);
        CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
        CU_ASSERT_TRUE(a.clip_scale < 1.0); /* the clip path ran */
    }
    CU_ASSERT_EQUAL(pipe_algo_sqnorm(base, n, 1), pipe_algo_sqnorm(base, n, 2));
    free(base), free(o1), free(o2);
    for (int j = 0; j < k; j++) free(d[j]);
    for (int s = 0; s < 2; s++) free(s1[s]), free(s2[s]);
}

void suite_algo(void)
{
    CU_pSuite s = CU_add_suite("algo", NULL, NULL);
    CU_add_test(s, "fedavg weighted and plain mean", test_fedavg);
    CU_add_test(s, "diloco Nesterov outer step", test_diloco);
    CU_add_test(s, "diloco outer learning-rate warm-up, federation.h5 round trip", test_outer_warmup);
    CU_add_test(s, "fedadam first step", test_fedadam);
    CU_add_test(s, "median and trimmed mean", test_robust);
    CU_add_test(s, "norm clipping, NaN, zero weights", test_clip_and_nan);
    CU_add_test(s, "1 vs 2 threads: identical bits", test_thread_determinism);
}
