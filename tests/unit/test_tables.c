/* The extension points are tables: a toy algorithm and a toy (sparse) encoding,
 * registered from here, run end to end without a line changed anywhere else. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "libckpt/codec.h"
#include "libckpt/delta.h"
#include "pipelines/algo.h"
#include "pipelines/federation.h"
#include "tests/unit/unit.h"

/* "half": θ + d̄/2, the builtins' mean and clip. */
static void outer_half(const pipe_algo_round *r, const float *base, int64_t lo, int64_t hi, float *out)
{
    for (int64_t i = lo; i < hi; i++) out[i] = (float)((double)base[i] + (double)out[i] * r->scale / 2.0);
}

static const pipe_algo_def half = {.name = "half", .combine = pipe_algo_combine_mean,
                                   .clip = pipe_algo_clip_to_norm, .outer = outer_half};

/* "top1": per block, the element of largest magnitude as (value, index in the block):
 * a sparse encoding described by two datasets of one entry per block. */
static int64_t per_block(int64_t n, const ckpt_codec_params *p) { return (n + p->block - 1) / p->block; }

static XFFL_MUST_USE xffl_status top1_encode(const float *x, int64_t n, const ckpt_codec_params *p, float *residual,
                                             void *const out[])
{
    int block = p->block;
    XFFL_RETURN_IF(block < 1 || block > 65536, XFFL_ERR_INVALID, "top1 block %d outside 1..65536", block);
    float *val = out[0];
    uint16_t *idx = out[1];
    for (int64_t b = 0; b * block < n; b++) {
        int64_t start = b * block, len = n - start < block ? n - start : block, best = 0;
        float bestv = 0;
        for (int64_t j = 0; j < len; j++) {
            float v = residual ? x[start + j] + residual[start + j] : x[start + j];
            if (fabsf(v) > fabsf(bestv)) bestv = v, best = j;
        }
        val[b] = bestv;
        idx[b] = (uint16_t)best;
        if (residual)
            for (int64_t j = 0; j < len; j++) {
                float v = x[start + j] + residual[start + j];
                residual[start + j] = j == best ? v - bestv : v;
            }
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status top1_decode(const void *const in[], int64_t n, const ckpt_codec_params *p, float *out)
{
    int block = p->block;
    const float *val = in[0];
    const uint16_t *idx = in[1];
    memset(out, 0, (size_t)n * sizeof *out);
    for (int64_t b = 0; b * block < n; b++) {
        int64_t i = b * block + idx[b];
        XFFL_RETURN_IF(idx[b] >= block || i >= n, XFFL_ERR_INVALID, "top1 index %d of block %lld out of range",
                       idx[b], (long long)b);
        out[i] = val[b];
    }
    return XFFL_OK;
}

static const ckpt_codec_def top1 = {
    .name = "top1",
    .lossy = 1,
    .n_datasets = 2,
    .datasets = {{"value", CKPT_DT_F32, per_block, 1}, {"index", CKPT_DT_U16, per_block, 0}},
    .encode = top1_encode,
    .decode = top1_decode,
};

static pipe_algo_kind half_kind;
static ckpt_codec top1_codec;

static int registered(void)
{
    static int done = -1;
    if (done < 0)
        done = pipe_algo_register(&half, &half_kind) == XFFL_OK && ckpt_codec_register(&top1, &top1_codec) == XFFL_OK;
    return done;
}

static void test_register(void)
{
    CU_ASSERT_TRUE_FATAL(registered());
    CU_ASSERT_EQUAL(half_kind, pipe_algo_count() - 1);
    CU_ASSERT_EQUAL(top1_codec, ckpt_codec_count() - 1);
    pipe_algo_kind k;
    CU_ASSERT_EQUAL(pipe_algo_parse("half", &k), XFFL_OK);
    CU_ASSERT_EQUAL(k, half_kind);
    CU_ASSERT_STRING_EQUAL(pipe_algo_name(k), "half");
    CU_ASSERT_EQUAL(pipe_algo_state_count(k), 0);
    ckpt_codec c;
    CU_ASSERT_EQUAL(ckpt_codec_parse("top1", &c), XFFL_OK);
    CU_ASSERT_EQUAL(c, top1_codec);
    CU_ASSERT_TRUE(ckpt_codec_lossy(c));
    CU_ASSERT_EQUAL(ckpt_codec_code_bytes(c, 1000), 4 * 4); /* ⌈1000/256⌉ values */
    char list[256];
    pipe_algo_list(list, sizeof list, " (default)");
    CU_ASSERT_NSTRING_EQUAL(list, "fedavg (default), diloco, fedadam, median, trimmed", 50);
    CU_ASSERT_PTR_NOT_NULL(strstr(list, ", half"));
    ckpt_codec_list(list, sizeof list, NULL);
    CU_ASSERT_NSTRING_EQUAL(list, "fp32, bf16, int8, int4", 22);
    CU_ASSERT_PTR_NOT_NULL(strstr(list, ", top1"));
    /* names are unique; an incomplete entry is refused */
    CU_ASSERT_EQUAL(pipe_algo_register(&half, &k), XFFL_ERR_EXISTS);
    CU_ASSERT_EQUAL(ckpt_codec_register(&top1, &c), XFFL_ERR_EXISTS);
    pipe_algo_def bad = {.name = "nothing"};
    CU_ASSERT_EQUAL(pipe_algo_register(&bad, &k), XFFL_ERR_USAGE);
}

static void test_toy_algorithm(void)
{
    CU_ASSERT_TRUE_FATAL(registered());
    float base[3] = {1, 2, 3}, d1[3] = {1, 0, -4}, d2[3] = {3, 2, 0}, out[3];
    const float *d[2] = {d1, d2};
    double tok[2] = {1, 1};
    pipe_algo_config c;
    pipe_algo_default(half_kind, &c);
    CU_ASSERT_EQUAL(c.kind, half_kind);
    CU_ASSERT_EQUAL(c.outer_lr, 1.0); /* the common defaults */
    pipe_algo_input in = {.k = 2, .deltas = d, .tokens = tok, .base = base, .n = 3, .round = 1, .threads = 2};
    pipe_algo_stats st;
    CU_ASSERT_EQUAL_FATAL(pipe_algo_apply(&c, &in, out, &st), XFFL_OK);
    CU_ASSERT_EQUAL(out[0], 2.0f); /* 1 + 2/2 */
    CU_ASSERT_EQUAL(out[1], 2.5f); /* 2 + 1/2 */
    CU_ASSERT_EQUAL(out[2], 2.0f); /* 3 − 2/2 */
    CU_ASSERT_EQUAL(st.clip_scale, 1.0);

    /* federation.h5 with it (and the toy encoding), written and read back */
    pipe_federation f, g;
    CU_ASSERT_EQUAL_FATAL(pipe_federation_default("tiny", 0, &f), XFFL_OK);
    pipe_federation_set_algo(&f, half_kind);
    f.algo.clip_norm = 0.5;
    f.encoding = top1_codec;
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-tables", &dir), XFFL_OK);
    char path[4096];
    snprintf(path, sizeof path, "%s/federation.h5", dir);
    CU_ASSERT_EQUAL_FATAL(pipe_federation_write_file(&f, path), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(pipe_federation_read_file(path, &g), XFFL_OK);
    CU_ASSERT_EQUAL(g.algo.kind, half_kind);
    CU_ASSERT_EQUAL(g.algo.clip_norm, 0.5);
    CU_ASSERT_EQUAL(g.encoding, top1_codec);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

static void test_toy_encoding(void)
{
    CU_ASSERT_TRUE_FATAL(registered());
    /* encode/decode: one value per block, the residual keeps the rest */
    float x[10] = {0.1f, -0.9f, 0.2f, 0.3f, 0.05f, 0.6f, -0.7f, 0.1f, 0.4f, 0.0f}, y[10], res[10] = {0};
    float val[3];
    uint16_t idx[3];
    void *sets[] = {val, idx};
    ckpt_codec_params p = {.block = 4};
    CU_ASSERT_EQUAL_FATAL(ckpt_codec_encode_sets(top1_codec, x, 10, &p, res, sets), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(ckpt_codec_decode_sets(top1_codec, (const void *const *)sets, 10, &p, y), XFFL_OK);
    CU_ASSERT_EQUAL(y[1], -0.9f);
    CU_ASSERT_EQUAL(y[6], -0.7f);
    CU_ASSERT_EQUAL(y[8], 0.4f);
    for (int i = 0; i < 10; i++) CU_ASSERT_EQUAL(y[i] + res[i], x[i]);

    /* a delta in parts, written and read back: its datasets are value/<name> and index/<name> */
    ckpt_param_table *t = t_tiny_table();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    float *d = malloc(t->total * sizeof(float)), *back = malloc(t->total * sizeof(float));
    float *r = calloc(t->total, sizeof(float)), *want = malloc(t->total * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(d && back && r && want);
    for (int64_t i = 0; i < t->total; i++) d[i] = (float)((i * 7919) % 1000 - 500) * 1e-5f;
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-tables", &dir), XFFL_OK);
    ckpt_delta_meta m = {.round = 1, .base_version = 0, .base_index = "versions/v000000/INDEX-0123456789ab",
                         .facility = "alpha", .tokens = 10, .steps = 1, .codec = top1_codec, .block = 64};
    ckpt_manifest *commit = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_manifest_create(&commit), XFFL_OK);
    ckpt_delta_file *files = NULL;
    int nf = 0;
    CU_ASSERT_EQUAL_FATAL(ckpt_delta_write(dir, t, d, &m, r, 4 << 10, NULL, "", commit, &files, &nf), XFFL_OK);
    CU_ASSERT_TRUE(nf >= 2);
    const char *paths[64];
    for (int i = 0; i < nf && i < 64; i++) paths[i] = files[i].path;
    CU_ASSERT_EQUAL_FATAL(ckpt_delta_read(paths, nf, t, commit, &m, NULL, back), XFFL_OK);
    for (int64_t i = 0; i < t->total; i++) want[i] = d[i] - r[i]; /* what the residual did not keep */
    int64_t nonzero = 0, bad = 0;
    for (int64_t i = 0; i < t->total; i++) {
        nonzero += back[i] != 0;
        bad += back[i] != want[i];
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_TRUE(nonzero > 0 && nonzero <= t->total / 64 + t->count);
    ckpt_manifest_free(commit);
    free(files);
    xffl_rmtree_cleanup(dir);
    free(dir);
    free(d), free(back), free(r), free(want);
    ckpt_param_table_free(t);
}

void suite_tables(void)
{
    CU_pSuite s = CU_add_suite("tables", NULL, NULL);
    CU_add_test(s, "register a toy algorithm and encoding", test_register);
    CU_add_test(s, "toy algorithm: apply, federation.h5 round trip", test_toy_algorithm);
    CU_add_test(s, "toy sparse encoding: codec and delta parts round trip", test_toy_encoding);
}
