/* The Hugging Face readers: the strict JSON parser, safetensors headers (tiling,
 * shape x dtype, duplicates), fp16/bf16 conversions, config.json, and a write/read
 * round trip of the whole directory with the q/k row permutation. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "formats/hf.h"
#include "formats/safetensors.h"
#include "tests/unit/unit.h"

static int json_ok(const char *s)
{
    xffl_json_doc *d = NULL;
    xffl_status st = xffl_json_parse(s, strlen(s), "t.json", &d);
    xffl_json_free(d);
    return st == XFFL_OK;
}

static void test_json(void)
{
    const char *good[] = {"{}", "[]", "0", "-0.5e+3", "\"a\\u00e9\\ud83d\\ude00\\n\"", " {\"a\":[1,{\"b\":null}],\"c\":true} ",
                          "\"\xc3\xa9\""};
    const char *bad[] = {"", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "+1", "\"\\x\"", "\"\\ud800\"", "\"\\u0000\"",
                         "{\"a\":1,\"a\":2}", "[1] x", "tru", "\"\x01\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "{1:2}",
                         "nul", "\"abc", "[1 2]", "/* c */ 1"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) CU_ASSERT_TRUE(json_ok(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CU_ASSERT_FALSE(json_ok(bad[i]));
    }
    char deep[200];
    memset(deep, '[', sizeof deep);
    xffl_json_doc *d = NULL;
    CU_ASSERT_EQUAL(xffl_json_parse(deep, sizeof deep, "deep", &d), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "nested too deeply"));
    const char *s = "{\"n\": 9007199254740993, \"f\": 1.5, \"s\": \"x\\\"y\", \"a\": [1, 2, 3]}";
    T_OK(xffl_json_parse(s, strlen(s), "t", &d));
    const xffl_json *r = xffl_json_root(d);
    int64_t v = 0;
    CU_ASSERT_TRUE(xffl_json_int(xffl_json_get(r, "n"), &v));
    CU_ASSERT_EQUAL(v, 9007199254740993LL); /* exact beyond double's 2^53 */
    CU_ASSERT_FALSE(xffl_json_int(xffl_json_get(r, "f"), &v));
    CU_ASSERT_STRING_EQUAL(xffl_json_get(r, "s")->str, "x\"y");
    CU_ASSERT_EQUAL(xffl_json_get(r, "a")->count, 3);
    CU_ASSERT_PTR_NULL(xffl_json_get(r, "missing"));
    xffl_json_free(d);
}

/* A file image in memory: 8-byte length, header, data_len bytes of data. */
static xffl_status st_parse(const char *header, uint64_t data_len)
{
    size_t h = strlen(header);
    unsigned char *b = calloc(1, 8 + h);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    fmt_st_file *f = NULL;
    xffl_status st = fmt_st_parse(b, 8 + h, 8 + h + data_len, "x.safetensors", &f);
    fmt_st_close(f);
    free(b);
    return st;
}

static void test_safetensors_header(void)
{
    CU_ASSERT_EQUAL(st_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                             "\"__metadata__\":{\"format\":\"pt\"},"
                             "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}",
                             32),
                    XFFL_OK);
    struct {
        const char *h;
        uint64_t data;
        const char *msg;
    } bad[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 20, "past the 20 data bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 28, "the file holds 28"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
         20, "gap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before they begin"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24, "need 12"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]}}", 24, "dtype F64"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, "negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}", 0, "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[4,8]}}",
         8, "twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "fields other"},
        {"{\"__metadata__\":{\"format\":1}}", 0, "not a string"},
        {"[]", 0, "start with '{'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CU_ASSERT_EQUAL(st_parse(bad[i].h, bad[i].data), XFFL_ERR_INVALID);
        if (!strstr(xffl_errmsg(), bad[i].msg)) printf("\ncase %zu: '%s' lacks '%s'\n", i, xffl_errmsg(), bad[i].msg);
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "x.safetensors"));
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), bad[i].msg));
    }
    unsigned char lying[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    fmt_st_file *f = NULL;
    CU_ASSERT_EQUAL(fmt_st_parse(lying, sizeof lying, sizeof lying, "x.safetensors", &f), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "header length"));
}

static void test_half_conversions(void)
{
    /* every fp16 and bf16 bit pattern survives f32 and back (NaNs stay NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fmt_f16_to_f32((uint16_t)h), g = fmt_bf16_to_f32((uint16_t)h);
        if (isnan(f)) {
            CU_ASSERT_TRUE(isnan(fmt_f16_to_f32(fmt_f32_to_f16(f))));
        } else if (fmt_f32_to_f16(f) != h) {
            CU_FAIL("fp16 round trip");
        }
        if (isnan(g)) {
            CU_ASSERT_TRUE(isnan(fmt_bf16_to_f32(fmt_f32_to_bf16(g))));
        } else if (fmt_f32_to_bf16(g) != h) {
            CU_FAIL("bf16 round trip");
        }
    }
    CU_ASSERT_EQUAL(fmt_f32_to_f16(1.0f), 0x3C00);
    CU_ASSERT_EQUAL(fmt_f32_to_f16(65504.0f), 0x7BFF);
    CU_ASSERT_EQUAL(fmt_f32_to_f16(65520.0f), 0x7C00);
    CU_ASSERT_EQUAL(fmt_f32_to_f16(5.9604645e-08f), 0x0001);
    CU_ASSERT_EQUAL(fmt_f32_to_bf16(1.00390625f), 0x3F80);     /* halfway: to even */
    CU_ASSERT_EQUAL(fmt_f32_to_bf16(1.01171875f), 0x3F82);     /* halfway: to even, up */
    CU_ASSERT_EQUAL(fmt_f32_to_f16(1.00048828125f), 0x3C00);   /* halfway: to even */
    CU_ASSERT_EQUAL(fmt_f32_to_f16(1.00146484375f), 0x3C02);
}

/* config.json of tiny's shape, field key set to value (added when not one of them). */
static void config_text(char *buf, size_t cap, const char *key, const char *value)
{
    static const char *const fields[][2] = {{"model_type", "\"llama\""},      {"hidden_size", "64"},
                                            {"num_hidden_layers", "2"},         {"num_attention_heads", "4"},
                                            {"intermediate_size", "160"},       {"vocab_size", "256"},
                                            {"max_position_embeddings", "64"}};
    size_t n = (size_t)snprintf(buf, cap, "{");
    int used = 0;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        int mine = key && strcmp(fields[i][0], key) == 0;
        used |= mine;
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":%s", i ? "," : "", fields[i][0], mine ? value : fields[i][1]);
    }
    if (key && !used) n += (size_t)snprintf(buf + n, cap - n, ",\"%s\":%s", key, value);
    snprintf(buf + n, cap - n, "}");
}

static void test_config(void)
{
    ckpt_model_config c;
    int tied = -1;
    char buf[1024];
    config_text(buf, sizeof buf, NULL, NULL);
    T_OK(fmt_hf_config_parse(buf, strlen(buf), "config.json", &c, &tied));
    CU_ASSERT_EQUAL(c.n_kv_heads, 4);
    CU_ASSERT_EQUAL(c.norm_eps, 1e-6f);
    CU_ASSERT_EQUAL(c.rope_theta, 10000.0f);
    CU_ASSERT_EQUAL(tied, 0);
    static const char *const bad[][3] = {{"model_type", "\"mistral\"", "model_type is \"mistral\""},
                                         {"hidden_size", "64.5", "hidden_size is 64.5"},
                                         {"vocab_size", "100000", "vocab_size 100000"},
                                         {"num_key_value_heads", "3", "n_kv_heads 3"},
                                         {"rope_scaling", "{\"type\":\"linear\"}", "rope_scaling"},
                                         {"hidden_act", "\"gelu\"", "hidden_act is gelu"},
                                         {"tie_word_embeddings", "1", "tie_word_embeddings"},
                                         {"attention_bias", "true", "attention_bias"},
                                         {"num_hidden_layers", "\"2\"", "num_hidden_layers is string"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        config_text(buf, sizeof buf, bad[i][0], bad[i][1]);
        CU_ASSERT_EQUAL(fmt_hf_config_parse(buf, strlen(buf), "config.json", &c, &tied), XFFL_ERR_INVALID);
        if (!strstr(xffl_errmsg(), bad[i][2])) printf("\n'%s': '%s' lacks '%s'\n", buf, xffl_errmsg(), bad[i][2]);
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), bad[i][2]));
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "config.json"));
    }
}

static void test_export_import(void)
{
    ckpt_model_config cfg = {32, 2, 4, 2, 48, 40, 16, 1e-5f, 10000.0f};
    ckpt_param_table *t;
    T_OK(ckpt_param_table_create(&cfg, &t));
    float *p = malloc((size_t)t->total * sizeof *p), *q = malloc((size_t)t->total * sizeof *q);
    for (int64_t i = 0; i < t->total; i++) p[i] = (float)i * 0.001f - 1.0f;
    char *dir;
    T_OK(xffl_mkdtemp("hf", &dir));
    for (int sharded = 0; sharded < 2; sharded++) {
        fmt_hf_export_options o = {.dtype = FMT_ST_F32, .shard_bytes = sharded ? 4096 : 0};
        fmt_hf_export_result res;
        char sub[4200];
        snprintf(sub, sizeof sub, "%s/%d", dir, sharded);
        T_OK(fmt_hf_export(t, p, sub, &o, &res));
        CU_ASSERT_EQUAL(res.shards > 1, sharded);
        CU_ASSERT_EQUAL(res.bytes, (uint64_t)t->total * 4);
        fmt_hf_reader *r;
        T_OK(fmt_hf_open(sub, &r));
        const ckpt_param_table *rt = fmt_hf_table(r);
        CU_ASSERT_EQUAL(memcmp(&rt->cfg, &cfg, sizeof cfg), 0);
        for (int i = 0; i < t->count; i++) CU_ASSERT_EQUAL(fmt_hf_read(r, i, q + t->params[i].offset), XFFL_OK);
        CU_ASSERT_EQUAL(memcmp(p, q, (size_t)t->total * sizeof *p), 0);
        /* q's row order really changed on disk: head 0's row 1 is stored at row hd/2 */
        char path[4300];
        snprintf(path, sizeof path, "%s/model.safetensors", sub);
        if (!sharded) {
            fmt_st_file *f;
            T_OK(fmt_st_open(path, &f));
            const fmt_st_tensor *wq = fmt_st_find(f, "model.layers.0.self_attn.q_proj.weight");
            CU_ASSERT_PTR_NOT_NULL_FATAL(wq);
            float row[32];
            CU_ASSERT_EQUAL(fmt_st_read_range(f, wq, 4 * 32, 32, row), XFFL_OK); /* hd 8: HF row 4 is ours 1 */
            const ckpt_param *pq = &t->params[ckpt_param_index(t, CKPT_SLOT_WQ, 0)];
            CU_ASSERT_EQUAL(memcmp(row, p + pq->offset + 32, sizeof row), 0);
            fmt_st_close(f);
        }
        fmt_hf_close(r);
    }
    xffl_rmtree_cleanup(dir);
    free(dir);
    free(p);
    free(q);
    ckpt_param_table_free(t);
}

void suite_hf(void)
{
    CU_pSuite s = CU_add_suite("hf", NULL, NULL);
    CU_add_test(s, "json: strict grammar, depth bound, exact integers, duplicate keys", test_json);
    CU_add_test(s, "safetensors: tiling, overlap, gap, shape x dtype, dtype, duplicates, header length",
                test_safetensors_header);
    CU_add_test(s, "fp16/bf16: every pattern round trips, nearest-even rounding", test_half_conversions);
    CU_add_test(s, "config.json: defaults, refused fields name the file and field", test_config);
    CU_add_test(s, "export then import (one file, sharded) is exact; q/k rows permuted", test_export_import);
}
