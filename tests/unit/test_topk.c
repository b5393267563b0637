/* The sparse encoding (libckpt/codec.h "topk"): what it keeps, what error feedback
 * owes, and every malformed index or code refused by the decoder. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "libckpt/codec.h"
#include "pipelines/federation.h"

enum { N = 1000, BLOCK = 64, K = 3, NB = (N + BLOCK - 1) / BLOCK };

static void fill(float *x, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        x[i] = (float)(((double)(seed >> 11) / 9007199254740992.0 - 0.5) * 1e-3 * (1 + i / BLOCK));
    }
}

static const ckpt_codec_params P = {BLOCK, K, 0}, PG = {BLOCK, K, 1};

/* Buffers for the three datasets of N values. */
typedef struct {
    uint8_t codes[N], idx[N];
    float scales[NB];
} sets;

static xffl_status enc(const float *x, float *res, sets *s)
{
    void *out[] = {s->codes, s->idx, s->scales};
    return ckpt_codec_encode_sets(CKPT_CODEC_TOPK, x, N, &P, res, out);
}

static xffl_status dec(const sets *s, float *y)
{
    const void *in[] = {s->codes, s->idx, s->scales};
    return ckpt_codec_decode_sets(CKPT_CODEC_TOPK, in, N, &P, y);
}

/* Kept: exactly the K largest magnitudes of each block (the last, 1000 - 960 = 40
 * long, too), each within half a step of amax/7; everything else 0. */
static void test_keeps_the_largest(void)
{
    float x[N], y[N];
    sets s;
    fill(x, N, 7);
    CU_ASSERT_EQUAL_FATAL(enc(x, NULL, &s), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(dec(&s, y), XFFL_OK);
    for (int b = 0; b < NB; b++) {
        int lo = b * BLOCK, hi = lo + BLOCK < N ? lo + BLOCK : N, kept = 0;
        float amax = 0, smallest_kept = INFINITY, largest_dropped = 0;
        for (int i = lo; i < hi; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        for (int i = lo; i < hi; i++) {
            if (y[i] != 0) {
                kept++;
                smallest_kept = fabsf(x[i]) < smallest_kept ? fabsf(x[i]) : smallest_kept;
                CU_ASSERT_TRUE(fabsf(y[i] - x[i]) <= 0.5f * amax / 7 * 1.001f);
            } else
                largest_dropped = fabsf(x[i]) > largest_dropped ? fabsf(x[i]) : largest_dropped;
        }
        CU_ASSERT_EQUAL(kept, K);
        CU_ASSERT_TRUE(smallest_kept >= largest_dropped);
    }
    CU_ASSERT_EQUAL(ckpt_codec_dataset_count(CKPT_CODEC_TOPK, 1, N, &P), NB * K);
    CU_ASSERT_EQUAL(ckpt_codec_dataset_bytes(CKPT_CODEC_TOPK, 0, N, &P), (NB * K + 1) / 2);
    CU_ASSERT_EQUAL(ckpt_codec_dataset_count(CKPT_CODEC_TOPK, 2, N, &P), NB);
    /* a block shorter than k keeps all it has */
    ckpt_codec_params p = {.block = 4, .k = 3};
    CU_ASSERT_EQUAL(ckpt_codec_dataset_count(CKPT_CODEC_TOPK, 1, 6, &p), 3 + 2);
}

/* Error feedback: after R rounds of the same x, what was sent plus what is still owed
 * is R·x, and what is owed stays bounded (every entry is sent once it grows large). */
static void test_error_feedback(void)
{
    enum { R = 200 };
    float x[N], y[N], res[N] = {0};
    double sent[N] = {0};
    sets s;
    fill(x, N, 99);
    for (int r = 0; r < R; r++) {
        CU_ASSERT_EQUAL_FATAL(enc(x, res, &s), XFFL_OK);
        CU_ASSERT_EQUAL_FATAL(dec(&s, y), XFFL_OK);
        for (int i = 0; i < N; i++) sent[i] += y[i];
    }
    double owed_worst = 0, rel_worst = 0;
    for (int i = 0; i < N; i++) {
        CU_ASSERT_DOUBLE_EQUAL(sent[i] + res[i], (double)R * x[i], 1e-5 * R);
        owed_worst = fabs(res[i]) > owed_worst ? fabs(res[i]) : owed_worst;
        double rel = fabs(sent[i] - (double)R * x[i]) / (R * 1e-3 * (1 + i / BLOCK));
        rel_worst = rel > rel_worst ? rel : rel_worst;
    }
    /* sending 3 of 64 per round, an entry waits at most ~64/3 rounds: owed ≲ 25·|x| */
    CU_ASSERT_TRUE(owed_worst < 25 * 1e-3 * (1 + N / BLOCK));
    CU_ASSERT_TRUE(rel_worst < 0.2);
}

/* Every malformed input is INVALID naming the block, never a silent value. */
static void test_decoder_refuses(void)
{
    float x[N], y[N];
    sets s, bad;
    fill(x, N, 5);
    CU_ASSERT_EQUAL_FATAL(enc(x, NULL, &s), XFFL_OK);
    bad = s;
    bad.idx[1] = bad.idx[0]; /* repeated */
    CU_ASSERT_EQUAL(dec(&bad, y), XFFL_ERR_INVALID);
    bad = s;
    uint8_t t = bad.idx[0];
    bad.idx[0] = bad.idx[1], bad.idx[1] = t; /* out of order */
    CU_ASSERT_EQUAL(dec(&bad, y), XFFL_ERR_INVALID);
    bad = s;
    bad.idx[(NB - 1) * K + K - 1] = 40; /* past the short last block's end */
    CU_ASSERT_EQUAL(dec(&bad, y), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "out of range"));
    bad = s;
    bad.codes[0] = (uint8_t)(bad.codes[0] & 0xf0); /* code −8 */
    CU_ASSERT_EQUAL(dec(&bad, y), XFFL_ERR_INVALID);
    bad = s;
    bad.scales[2] = -1;
    CU_ASSERT_EQUAL(dec(&bad, y), XFFL_ERR_INVALID);
    bad = s;
    bad.scales[2] = NAN;
    CU_ASSERT_EQUAL(dec(&bad, y), XFFL_ERR_INVALID);
    /* parameters the encoding cannot take */
    ckpt_codec_params p = {.block = 512, .k = 4};
    const void *in[] = {s.codes, s.idx, s.scales};
    CU_ASSERT_EQUAL(ckpt_codec_decode_sets(CKPT_CODEC_TOPK, in, N, &p, y), XFFL_ERR_INVALID);
    p = (ckpt_codec_params){.block = 64, .k = 65};
    CU_ASSERT_EQUAL(ckpt_codec_decode_sets(CKPT_CODEC_TOPK, in, N, &p, y), XFFL_ERR_INVALID);
    p = (ckpt_codec_params){.block = 64, .k = 0};
    CU_ASSERT_EQUAL(ckpt_codec_decode_sets(CKPT_CODEC_TOPK, in, N, &p, y), XFFL_ERR_INVALID);
    CU_ASSERT_EQUAL(dec(&s, y), XFFL_OK);
}

/* Indices as gaps (params.gaps): the same decoded floats and residual as absolute
 * indices; the index dataset holds index − previous index (the first as is); a gap of
 * 0 (a repeated index) or one that runs past the block is refused; gaps only for an
 * encoding with a k. */
static void test_gaps(void)
{
    float x[N], ra[N] = {0}, rg[N] = {0}, ya[N], yg[N];
    sets a, g;
    fill(x, N, 11);
    void *oa[] = {a.codes, a.idx, a.scales}, *og[] = {g.codes, g.idx, g.scales};
    const void *ia[] = {a.codes, a.idx, a.scales}, *ig[] = {g.codes, g.idx, g.scales};
    for (int r = 0; r < 3; r++) { /* with error feedback, three rounds */
        CU_ASSERT_EQUAL_FATAL(ckpt_codec_encode_sets(CKPT_CODEC_TOPK, x, N, &P, ra, oa), XFFL_OK);
        CU_ASSERT_EQUAL_FATAL(ckpt_codec_encode_sets(CKPT_CODEC_TOPK, x, N, &PG, rg, og), XFFL_OK);
        CU_ASSERT_EQUAL_FATAL(ckpt_codec_decode_sets(CKPT_CODEC_TOPK, ia, N, &P, ya), XFFL_OK);
        CU_ASSERT_EQUAL_FATAL(ckpt_codec_decode_sets(CKPT_CODEC_TOPK, ig, N, &PG, yg), XFFL_OK);
        CU_ASSERT_EQUAL(memcmp(ya, yg, sizeof ya), 0);
        CU_ASSERT_EQUAL(memcmp(ra, rg, sizeof ra), 0);
        CU_ASSERT_EQUAL(memcmp(a.codes, g.codes, (NB * K + 1) / 2), 0);
    }
    for (int b = 0; b < NB; b++)
        for (int j = 0; j < K; j++) {
            int o = b * K + j;
            CU_ASSERT_EQUAL(g.idx[o], j ? a.idx[o] - a.idx[o - 1] : a.idx[o]);
        }
    /* the absolute indices read as gaps run past the block: refused, never a silent value */
    CU_ASSERT_EQUAL(ckpt_codec_decode_sets(CKPT_CODEC_TOPK, ia, N, &PG, yg), XFFL_ERR_INVALID);
    sets bad = g;
    bad.idx[1] = 0; /* repeated */
    const void *ib[] = {bad.codes, bad.idx, bad.scales};
    CU_ASSERT_EQUAL(ckpt_codec_decode_sets(CKPT_CODEC_TOPK, ib, N, &PG, yg), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "repeated"));
    bad = g;
    bad.idx[(NB - 1) * K + K - 1] = 40; /* past the short last block's end */
    CU_ASSERT_EQUAL(ckpt_codec_decode_sets(CKPT_CODEC_TOPK, ib, N, &PG, yg), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "out of range"));
    ckpt_codec_params p4 = {.block = BLOCK, .gaps = 1};
    CU_ASSERT_EQUAL(ckpt_codec_check_params(CKPT_CODEC_INT4, &p4), XFFL_ERR_INVALID);
    p4 = PG;
    p4.gaps = 2;
    CU_ASSERT_EQUAL(ckpt_codec_check_params(CKPT_CODEC_TOPK, &p4), XFFL_ERR_INVALID);
}

/* Ties: the kept set is the k first in (magnitude descending, index ascending) order,
 * whatever the selection inside the encoder does. The reference here sorts each block;
 * the values come from a few levels, signs mixed and zeros among them, so most
 * magnitudes tie, and k runs from 1 to the whole block (the short last one included). */
typedef struct {
    float mag;
    int idx;
} ref_entry;
static int ref_cmp(const void *a, const void *b)
{
    const ref_entry *x = a, *y = b;
    if (x->mag != y->mag) return x->mag > y->mag ? -1 : 1;
    return x->idx - y->idx;
}
static int int_cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void test_ties(void)
{
    enum { M = 700, B = 64 }; /* 10 full blocks and one of 60 */
    float x[M];
    uint64_t seed = 99;
    for (int i = 0; i < M; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        x[i] = (float)((int)(seed % 5) - 2) * 0.25f; /* -0.5 .. 0.5 in 5 levels */
    }
    static uint8_t codes[M], idx[M];
    float scales[(M + B - 1) / B];
    void *out[] = {codes, idx, scales};
    for (int k = 1; k <= B; k += (k < 8 ? 1 : 9)) {
        ckpt_codec_params p = {B, k, 0};
        CU_ASSERT_EQUAL_FATAL(ckpt_codec_encode_sets(CKPT_CODEC_TOPK, x, M, &p, NULL, out), XFFL_OK);
        int o = 0;
        for (int lo = 0; lo < M; lo += B) {
            int len = M - lo < B ? M - lo : B, kk = len < k ? len : k, want[B];
            ref_entry e[B];
            for (int j = 0; j < len; j++) e[j] = (ref_entry){fabsf(x[lo + j]), j};
            qsort(e, (size_t)len, sizeof *e, ref_cmp);
            for (int j = 0; j < kk; j++) want[j] = e[j].idx;
            qsort(want, (size_t)kk, sizeof *want, int_cmp);
            for (int j = 0; j < kk; j++, o++) CU_ASSERT_EQUAL(idx[o], want[j]);
        }
    }
}

static void test_spec(void)
{
    ckpt_codec c;
    int k;
    CU_ASSERT_EQUAL(ckpt_codec_parse_spec("topk", &c, &k), XFFL_OK);
    CU_ASSERT_EQUAL(c, CKPT_CODEC_TOPK);
    CU_ASSERT_EQUAL(k, CKPT_CODEC_TOPK_K_DEFAULT);
    CU_ASSERT_EQUAL(ckpt_codec_parse_spec("topk:8", &c, &k), XFFL_OK);
    CU_ASSERT_EQUAL(k, 8);
    CU_ASSERT_EQUAL(ckpt_codec_parse_spec("int8", &c, &k), XFFL_OK);
    CU_ASSERT_EQUAL(k, 0);
    const char *bad[] = {"topk:0", "topk:257", "topk:", "topk:4x", "int8:4", "top:4"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CU_ASSERT_EQUAL(ckpt_codec_parse_spec(bad[i], &c, &k), XFFL_ERR_USAGE);
    char list[128];
    ckpt_codec_list(list, sizeof list, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(list, "topk[:K]"));
}

/* --encoding-flush: the last N of total_rounds keep the whole block; federation.h5
 * records it only when set; a flush without a k or past total_rounds is refused. */
static void test_flush_schedule(void)
{
    pipe_federation f, g;
    CU_ASSERT_EQUAL_FATAL(pipe_federation_default("tiny", 0, &f), XFFL_OK);
    f.encoding = CKPT_CODEC_TOPK;
    f.encoding_k = 16;
    f.inner.total_rounds = 10;
    f.encoding_flush = 2;
    CU_ASSERT_EQUAL(pipe_federation_validate(&f), XFFL_OK);
    for (int r = 1; r <= 12; r++) CU_ASSERT_EQUAL(pipe_federation_round_k(&f, r), r <= 8 ? 16 : CKPT_CODEC_BLOCK_DEFAULT);
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-topk", &dir), XFFL_OK);
    char path[4096];
    snprintf(path, sizeof path, "%s/federation.h5", dir);
    CU_ASSERT_EQUAL(pipe_federation_write_file(&f, path), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_federation_read_file(path, &g), XFFL_OK);
    CU_ASSERT_EQUAL(g.encoding_flush, 2);
    CU_ASSERT_EQUAL(g.encoding_gaps, 0); /* absent: what federations made before it meant */
    f.encoding_gaps = 1;
    CU_ASSERT_EQUAL(pipe_federation_write_file(&f, path), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_federation_read_file(path, &g), XFFL_OK);
    CU_ASSERT_EQUAL(g.encoding_gaps, 1);
    CU_ASSERT_EQUAL(g.encoding_decay, 1); /* absent: the residual kept whole */
    f.encoding_decay = 0.75;
    CU_ASSERT_EQUAL(pipe_federation_write_file(&f, path), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_federation_read_file(path, &g), XFFL_OK);
    CU_ASSERT_EQUAL(g.encoding_decay, 0.75);
    f.encoding_decay = 0;
    CU_ASSERT_EQUAL(pipe_federation_validate(&f), XFFL_ERR_INVALID);
    f.encoding_decay = 1;
    CU_ASSERT_EQUAL(pipe_federation_round_k(&g, 9), CKPT_CODEC_BLOCK_DEFAULT);
    f.encoding_flush = 0;
    CU_ASSERT_EQUAL(pipe_federation_write_file(&f, path), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_federation_read_file(path, &g), XFFL_OK);
    CU_ASSERT_EQUAL(g.encoding_flush, 0);
    CU_ASSERT_EQUAL(pipe_federation_round_k(&g, 10), 16);
    xffl_rmtree_cleanup(dir);
    free(dir);

    f.encoding_flush = 11; /* more than total_rounds */
    CU_ASSERT_EQUAL(pipe_federation_validate(&f), XFFL_ERR_INVALID);
    f.encoding_flush = 1;
    f.encoding = CKPT_CODEC_INT4;
    f.encoding_k = 0;
    CU_ASSERT_EQUAL(pipe_federation_validate(&f), XFFL_ERR_INVALID);
    CU_ASSERT_EQUAL(pipe_federation_round_k(&f, 10), 0);
}

void suite_topk(void)
{
    CU_pSuite s = CU_add_suite("topk", NULL, NULL);
    CU_add_test(s, "keeps the k largest of each block", test_keeps_the_largest);
    CU_add_test(s, "error feedback owes what was not sent", test_error_feedback);
    CU_add_test(s, "malformed indices, codes and scales refused", test_decoder_refuses);
    CU_add_test(s, "indices as gaps", test_gaps);
    CU_add_test(s, "ties kept by the lower index", test_ties);
    CU_add_test(s, "topk:K parsing", test_spec);
    CU_add_test(s, "the flush rounds' k", test_flush_schedule);
}
