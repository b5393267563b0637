#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "libckpt/delta.h"
#include "tests/unit/unit.h"

static void fill(float *x, int64_t n, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        x[i] = (float)(((double)(seed >> 11) / 9007199254740992.0 - 0.5) * 1e-2);
    }
}

static const char *BASE = "versions/v000002/INDEX-0123456789ab";

static void meta_for(ckpt_delta_meta *m, ckpt_codec c)
{
    *m = (ckpt_delta_meta){.round = 3, .base_version = 2, .base_index = BASE, .facility = "alpha", .tokens = 4096,
                           .steps = 4, .loss_first = 5.5, .loss_last = 4.25, .loss_mean = 4.8, .codec = c, .block = 64};
}

/* Writes with each codec in several parts, reads back: bits equal to the encoder's
 * own decode (so aggregation sees what the tensor digests promise). */
static void test_roundtrip_all_codecs(void)
{
    ckpt_param_table *t = t_tiny_table();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    float *x = malloc(t->total * sizeof(float)), *y = malloc(t->total * sizeof(float));
    float *res = calloc(t->total, sizeof(float));
    fill(x, t->total, 77);
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-delta-test", &dir), XFFL_OK);
    for (int c = CKPT_CODEC_FP32; c <= CKPT_CODEC_TOPK; c++) {
        ckpt_delta_meta m;
        meta_for(&m, (ckpt_codec)c);
        ckpt_manifest *commit = NULL;
        CU_ASSERT_EQUAL_FATAL(ckpt_manifest_create(&commit), XFFL_OK);
        ckpt_delta_file *files = NULL;
        int nf = 0;
        memset(res, 0, t->total * sizeof(float));
        uint64_t part_size = c == CKPT_CODEC_TOPK ? 1 << 9 : 16 << 10; /* topk's codes: 1/128 byte each */
        xffl_status st = ckpt_delta_write(dir, t, x, &m, c == CKPT_CODEC_FP32 ? NULL : res, part_size, NULL,
                                          "rounds/r000003/alpha/a1/", commit, &files, &nf);
        CU_ASSERT_EQUAL_FATAL(st, XFFL_OK);
        CU_ASSERT_TRUE(nf >= 2); /* tiny is bigger than 16 KiB even at 4 bits */
        CU_ASSERT_EQUAL(commit->n_tensors, t->count);
        CU_ASSERT_EQUAL(commit->n_objects, nf);
        CU_ASSERT_PTR_NOT_NULL(strstr(commit->objects[0].name, "rounds/r000003/alpha/a1/part-000-"));
        const char *paths[64];
        for (int i = 0; i < nf && i < 64; i++) paths[i] = files[i].path;
        memset(y, 0, t->total * sizeof(float));
        st = ckpt_delta_read(paths, nf, t, commit, &m, NULL, y);
        CU_ASSERT_EQUAL(st, XFFL_OK);
        if (st) fprintf(stderr, "%s\n", xffl_errmsg());
        /* decoded + residual is exactly the input (error feedback keeps the rest) */
        double worst = 0;
        for (int64_t i = 0; i < t->total; i++) {
            double e = fabs((double)y[i] + res[i] - x[i]);
            worst = e > worst ? e : worst;
        }
        CU_ASSERT_TRUE(worst < 1e-9);
        if (c == CKPT_CODEC_FP32) CU_ASSERT_EQUAL(memcmp(x, y, t->total * sizeof(float)), 0);
        /* the wrong expectation is refused, naming what differs */
        ckpt_delta_meta other = m;
        other.base_index = "versions/v000002/INDEX-ffffffffffff";
        CU_ASSERT_EQUAL(ckpt_delta_read(paths, nf, t, commit, &other, NULL, y), XFFL_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "base_index"));
        other = m;
        other.facility = "beta";
        CU_ASSERT_EQUAL(ckpt_delta_read(paths, nf, t, commit, &other, NULL, y), XFFL_ERR_INVALID);
        /* a missing part means missing tensors */
        CU_ASSERT_EQUAL(ckpt_delta_read(paths, nf - 1, t, commit, &m, NULL, y), XFFL_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "lacks tensor"));
        free(files);
        ckpt_manifest_free(commit);
        if (c == CKPT_CODEC_FP32) continue;
        /* a decayed residual (meta.decay): a zero delta then sends and keeps what is left
         * of decay x the old residual, nothing more */
        float *old = malloc(t->total * sizeof(float)), *zero = calloc(t->total, sizeof(float));
        CU_ASSERT_PTR_NOT_NULL_FATAL(old && zero);
        memcpy(old, res, t->total * sizeof(float));
        ckpt_delta_meta md = m;
        md.decay = 0.5;
        CU_ASSERT_EQUAL_FATAL(ckpt_manifest_create(&commit), XFFL_OK);
        T_OK(ckpt_delta_write(dir, t, zero, &md, res, 0, NULL, "rounds/r000003/alpha/a1/", commit, &files, &nf));
        for (int i = 0; i < nf && i < 64; i++) paths[i] = files[i].path;
        T_OK(ckpt_delta_read(paths, nf, t, commit, &md, NULL, y));
        worst = 0;
        for (int64_t i = 0; i < t->total; i++) {
            double e = fabs((double)y[i] + res[i] - 0.5 * old[i]);
            worst = e > worst ? e : worst;
        }
        CU_ASSERT_TRUE(worst < 1e-9);
        free(files);
        ckpt_manifest_free(commit);
        free(old), free(zero);
    }
    xffl_rmtree_cleanup(dir);
    free(dir);
    free(x), free(y), free(res);
    ckpt_param_table_free(t);
}

/* A hand-made part with a NaN and one with a wrong shape: each refused, naming the tensor. */
static void test_bad_parts(void)
{
    ckpt_param_table *t = t_tiny_table();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    float *x = calloc(t->total, sizeof(float)), *y = malloc(t->total * sizeof(float));
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-delta-bad", &dir), XFFL_OK);
    ckpt_delta_meta m;
    meta_for(&m, CKPT_CODEC_FP32);
    ckpt_manifest *commit = NULL;
    T_OK(ckpt_manifest_create(&commit));
    ckpt_delta_file *files = NULL;
    int nf = 0;
    CU_ASSERT_EQUAL_FATAL(ckpt_delta_write(dir, t, x, &m, NULL, 0, NULL, "", commit, &files, &nf), XFFL_OK);
    CU_ASSERT_EQUAL(nf, 1);
    /* rewrite the part by hand with a NaN in the last tensor / a transposed matrix */
    for (int variant = 0; variant < 2; variant++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/bad%d.h5", dir, variant);
        ckpt_h5_writer *w = NULL;
        CU_ASSERT_EQUAL_FATAL(ckpt_h5_writer_create(path, NULL, &w), XFFL_OK);
        T_OK(ckpt_h5_attr_str(w, "format", CKPT_DELTA_FORMAT));
        T_OK(ckpt_h5_attr_int(w, "format_version", CKPT_DELTA_FORMAT_VERSION));
        T_OK(ckpt_h5_attr_int(w, "round", 3));
        T_OK(ckpt_h5_attr_int(w, "base_version", 2));
        T_OK(ckpt_h5_attr_str(w, "base_index", BASE));
        T_OK(ckpt_h5_attr_str(w, "facility", "alpha"));
        T_OK(ckpt_h5_attr_str(w, "encoding", "fp32"));
        T_OK(ckpt_h5_attr_int(w, "block", 64));
        for (int i = 0; i < t->count; i++) {
            const ckpt_param *p = &t->params[i];
            char name[128];
            snprintf(name, sizeof name, "delta/%s", p->name);
            int64_t shape[2] = {p->shape[0], p->shape[1]};
            if (variant == 1 && i == 2) shape[0] = p->shape[1], shape[1] = p->shape[0] + 0 * 1;
            if (variant == 1 && i == 2 && shape[0] == shape[1]) shape[0] = p->numel, shape[1] = 1;
            float *src = x + p->offset;
            if (variant == 0 && i == t->count - 1) src[5] = NAN;
            CU_ASSERT_EQUAL(ckpt_h5_write(w, name, CKPT_DT_F32, variant == 1 && i == 2 && shape[1] == 1 ? 1 : p->ndim,
                                          shape, src, NULL, NULL), XFFL_OK);
            src[5] = 0;
        }
        CU_ASSERT_EQUAL(ckpt_h5_writer_close(w), XFFL_OK);
        const char *paths[1] = {path};
        xffl_status st = ckpt_delta_read(paths, 1, t, commit, &m, NULL, y);
        CU_ASSERT_EQUAL(st, XFFL_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), variant == 0 ? t->params[t->count - 1].name : t->params[2].name));
        if (variant == 0) CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "non-finite"));
    }
    free(files);
    ckpt_manifest_free(commit);
    xffl_rmtree_cleanup(dir);
    free(dir);
    free(x), free(y);
    ckpt_param_table_free(t);
}

void suite_delta(void)
{
    CU_pSuite s = CU_add_suite("delta", NULL, NULL);
    CU_add_test(s, "delta parts round-trip for fp32/bf16/int8/int4/topk", test_roundtrip_all_codecs);
    CU_add_test(s, "NaN and wrong-shape parts are refused, naming the tensor", test_bad_parts);
}
