#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "libckpt/codec.h"

enum { N = 1000, BLOCK = 64 };

static void fill(float *x, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        /* spread magnitudes over blocks so per-block scales matter */
        x[i] = (float)(((double)(seed >> 11) / 9007199254740992.0 - 0.5) * 1e-3 * (1 + i / BLOCK));
    }
}

static float block_amax(const float *x, int n, int b)
{
    float m = 0;
    for (int i = b * BLOCK; i < n && i < (b + 1) * BLOCK; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

static void roundtrip(ckpt_codec c, float *maxerr_rel_block)
{
    float x[N], y[N], scales[N / BLOCK + 1];
    unsigned char codes[N * 4];
    fill(x, N, 12345);
    CU_ASSERT_EQUAL_FATAL(ckpt_codec_encode(c, x, N, BLOCK, NULL, codes, scales), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(ckpt_codec_decode(c, codes, scales, N, BLOCK, y), XFFL_OK);
    float worst = 0;
    for (int i = 0; i < N; i++) {
        float ref = c == CKPT_CODEC_BF16 ? fabsf(x[i]) : block_amax(x, N, i / BLOCK);
        float e = fabsf(x[i] - y[i]) / ref;
        worst = e > worst ? e : worst;
    }
    *maxerr_rel_block = worst;
}

static void test_roundtrip_bounds(void)
{
    float e;
    roundtrip(CKPT_CODEC_FP32, &e);
    CU_ASSERT_EQUAL(e, 0.0f);
    roundtrip(CKPT_CODEC_BF16, &e);
    CU_ASSERT_TRUE(e <= 1.0f / 256); /* 8 mantissa bits, round to nearest */
    CU_ASSERT_TRUE(e > 0);
    roundtrip(CKPT_CODEC_INT8, &e);
    CU_ASSERT_TRUE(e <= 0.5f / 127 * 1.001f); /* half a step of amax/127 */
    CU_ASSERT_TRUE(e > 0);
    roundtrip(CKPT_CODEC_INT4, &e);
    CU_ASSERT_TRUE(e <= 0.5f / 7 * 1.001f);
    CU_ASSERT_TRUE(e > 0.5f / 127);
}

static void test_sizes_and_names(void)
{
    CU_ASSERT_EQUAL(ckpt_codec_code_bytes(CKPT_CODEC_INT4, 5), 3);
    CU_ASSERT_EQUAL(ckpt_codec_code_bytes(CKPT_CODEC_BF16, 5), 10);
    CU_ASSERT_EQUAL(ckpt_codec_scale_count(CKPT_CODEC_INT8, 257, 256), 2);
    CU_ASSERT_EQUAL(ckpt_codec_scale_count(CKPT_CODEC_FP32, 257, 256), 0);
    ckpt_codec c;
    CU_ASSERT_EQUAL(ckpt_codec_parse("int4", &c), XFFL_OK);
    CU_ASSERT_EQUAL(c, CKPT_CODEC_INT4);
    CU_ASSERT_EQUAL(ckpt_codec_parse("int2", &c), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "int2"));
    float x[3] = {1, NAN, 2}, s[1];
    int8_t q[3];
    CU_ASSERT_EQUAL(ckpt_codec_encode(CKPT_CODEC_INT8, x, 3, 4, NULL, q, s), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "element 1"));
    int8_t bad[2] = {-128, 0};
    float sc[1] = {1}, out[2];
    CU_ASSERT_EQUAL(ckpt_codec_decode(CKPT_CODEC_INT8, bad, sc, 2, 4, out), XFFL_ERR_INVALID);
}

/* With error feedback the sum of what was sent over R rounds stays within one
 * quantization step of R·x; without it the error grows with R. */
static void test_error_feedback(void)
{
    enum { R = 50 };
    float x[N], y[N], res[N], scales[N / BLOCK + 1];
    double sent_fb[N] = {0}, sent_plain[N] = {0};
    unsigned char codes[N];
    fill(x, N, 999);
    memset(res, 0, sizeof res);
    for (int r = 0; r < R; r++) {
        CU_ASSERT_EQUAL_FATAL(ckpt_codec_encode(CKPT_CODEC_INT4, x, N, BLOCK, res, codes, scales), XFFL_OK);
        CU_ASSERT_EQUAL_FATAL(ckpt_codec_decode(CKPT_CODEC_INT4, codes, scales, N, BLOCK, y), XFFL_OK);
        for (int i = 0; i < N; i++) sent_fb[i] += y[i];
        CU_ASSERT_EQUAL_FATAL(ckpt_codec_encode(CKPT_CODEC_INT4, x, N, BLOCK, NULL, codes, scales), XFFL_OK);
        CU_ASSERT_EQUAL_FATAL(ckpt_codec_decode(CKPT_CODEC_INT4, codes, scales, N, BLOCK, y), XFFL_OK);
        for (int i = 0; i < N; i++) sent_plain[i] += y[i];
    }
    double err_fb = 0, err_plain = 0;
    for (int i = 0; i < N; i++) {
        double want = (double)R * x[i];
        err_fb += fabs(sent_fb[i] - want);
        err_plain += fabs(sent_plain[i] - want);
        /* the residual is exactly what is still owed */
        CU_ASSERT_DOUBLE_EQUAL(sent_fb[i] + res[i], want, 1e-6 * R);
        CU_ASSERT_TRUE(fabsf(res[i]) <= 2 * block_amax(x, N, i / BLOCK) / 7 + 1e-9f);
    }
    CU_ASSERT_TRUE(err_fb * 10 < err_plain);
}

void suite_delta_codec(void)
{
    CU_pSuite s = CU_add_suite("delta_codec", NULL, NULL);
    CU_add_test(s, "round-trip error bounds per encoding", test_roundtrip_bounds);
    CU_add_test(s, "sizes, names, invalid input", test_sizes_and_names);
    CU_add_test(s, "error feedback keeps the running sum exact", test_error_feedback);
}
