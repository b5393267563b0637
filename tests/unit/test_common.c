#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/digest.h"
#include "common/status.h"
#include "common/util.h"
#include "libckpt/model.h"

static void test_sizes(void)
{
    uint64_t v = 0;
    CU_ASSERT_EQUAL(xffl_parse_size("512M", &v), XFFL_OK);
    CU_ASSERT_EQUAL(v, 512ull << 20);
    CU_ASSERT_EQUAL(xffl_parse_size("1G", &v), XFFL_OK);
    CU_ASSERT_EQUAL(v, 1ull << 30);
    CU_ASSERT_EQUAL(xffl_parse_size("4096", &v), XFFL_OK);
    CU_ASSERT_EQUAL(v, 4096);
    CU_ASSERT_EQUAL(xffl_parse_size("12X", &v), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "12X"));
    CU_ASSERT_EQUAL(xffl_parse_size("-3", &v), XFFL_ERR_USAGE);
}

static void test_status_table(void)
{
    CU_ASSERT_EQUAL(xffl_exit_code(XFFL_OK), 0);
    CU_ASSERT_EQUAL(xffl_exit_code(XFFL_ERR_USAGE), 2);
    CU_ASSERT_EQUAL(xffl_exit_code(XFFL_ERR_CORRUPT), 65);
    CU_ASSERT_EQUAL(xffl_exit_code(XFFL_ERR_INVALID), 65);
    CU_ASSERT_EQUAL(xffl_exit_code(XFFL_ERR_UNREACHABLE), 74);
    CU_ASSERT_EQUAL(xffl_exit_code(XFFL_ERR_NOT_YET), 75);
    CU_ASSERT_TRUE(xffl_is_retryable(XFFL_ERR_TRANSIENT));
    CU_ASSERT_FALSE(xffl_is_retryable(XFFL_ERR_AUTH));
    for (int s = 0; s < XFFL_STATUS_COUNT; s++) CU_ASSERT_PTR_NOT_NULL(xffl_strerror((xffl_status)s));
    xffl_fail(XFFL_ERR_IO, "writing %s", "a.h5");
    xffl_wrap(XFFL_ERR_IO, "version %d", 3);
    CU_ASSERT_STRING_EQUAL(xffl_errmsg(), "version 3: writing a.h5");
}

static void test_sha256(void)
{
    char hex[XFFL_SHA256_HEX];
    xffl_sha256_hex("abc", 3, hex);
    CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* the digest of pieces: SHA-256 of the pieces' SHA-256s in hex, the last piece shorter,
 * the same for any thread count; one empty piece for no data */
static void test_sha256_pieces(void)
{
    char data[2500], want[XFFL_SHA256_HEX], got[XFFL_SHA256_HEX], cat[3 * 64 + 1];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (char)(i * 7 + 3);
    const size_t off[3] = {0, 1000, 2000}, len[3] = {1000, 1000, 500};
    for (int i = 0; i < 3; i++) {
        char h[XFFL_SHA256_HEX];
        xffl_sha256_hex(data + off[i], len[i], h);
        memcpy(cat + 64 * i, h, 64);
    }
    xffl_sha256_hex(cat, 3 * 64, want);
    for (int threads = 1; threads <= 3; threads++) {
        CU_ASSERT_EQUAL(xffl_sha256_pieces_hex(data, sizeof data, 1000, threads, got), XFFL_OK);
        CU_ASSERT_STRING_EQUAL(got, want);
    }
    char whole[XFFL_SHA256_HEX];
    xffl_sha256_hex(data, sizeof data, whole);
    CU_ASSERT_EQUAL(xffl_sha256_pieces_hex(data, sizeof data, 1u << 20, 0, got), XFFL_OK);
    xffl_sha256_hex(whole, 64, want); /* one piece: the digest of its digest */
    CU_ASSERT_STRING_EQUAL(got, want);
    xffl_sha256_hex("", 0, whole);
    xffl_sha256_hex(whole, 64, want);
    CU_ASSERT_EQUAL(xffl_sha256_pieces_hex(data, 0, 1000, 2, got), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(got, want);
    CU_ASSERT_EQUAL(xffl_sha256_pieces_hex(data, 10, 0, 1, got), XFFL_ERR_USAGE);
}

static void test_7b_parameter_count(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_model_preset("7b", 0, &cfg), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(ckpt_param_table_create(&cfg, &t), XFFL_OK);
    CU_ASSERT_EQUAL(t->total, 6738415616LL);
    CU_ASSERT_EQUAL(t->count, 3 + 9 * 32);
    CU_ASSERT_STRING_EQUAL(t->params[2].name, "layers.0.attention.wq.weight");
    ckpt_param_table_free(t);
    CU_ASSERT_EQUAL(ckpt_model_preset("nope", 0, &cfg), XFFL_ERR_USAGE);
}

static void test_gqa_shapes(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_model_preset("1b", 0, &cfg), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(ckpt_param_table_create(&cfg, &t), XFFL_OK);
    int k = ckpt_param_find(t, "layers.0.attention.wk.weight");
    CU_ASSERT_TRUE_FATAL(k >= 0);
    CU_ASSERT_EQUAL(t->params[k].shape[0], 256); /* 4 kv heads of 64 */
    CU_ASSERT_EQUAL(t->params[k].shape[1], 2048);
    ckpt_param_table_free(t);
}

static void test_init_deterministic(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_model_preset("tiny", 0, &cfg), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(ckpt_param_table_create(&cfg, &t), XFFL_OK);
    float a[64 * 256], b[64 * 256];
    ckpt_param_init(t, 0, 7, a);
    ckpt_param_init(t, 0, 7, b);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    ckpt_param_init(t, 0, 8, b);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof a), 0);
    double s2 = 0;
    for (int i = 0; i < 64 * 256; i++) s2 += (double)a[i] * a[i];
    double std = sqrt(s2 / (64 * 256));
    CU_ASSERT_DOUBLE_EQUAL(std, 0.02, 0.001);
    ckpt_param_table_free(t);
}

/* xffl_link_or_copy: the second name keeps what the first held when the first is
 * replaced by rename; it replaces an older second name; a missing source is an IO
 * error naming it. */
static void test_link_or_copy(void)
{
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("linktest", &dir), XFFL_OK);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    CU_ASSERT_EQUAL_FATAL(xffl_write_file_atomic(b, "older", 5), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(xffl_write_file_atomic(a, "first", 5), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(xffl_link_or_copy(a, b), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(xffl_write_file_atomic(a, "second!", 7), XFFL_OK);
    void *data = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(xffl_read_file(b, &data, &len), XFFL_OK);
    CU_ASSERT_TRUE(len == 5 && memcmp(data, "first", 5) == 0);
    free(data);
    snprintf(a, sizeof a, "%s/missing", dir);
    CU_ASSERT_EQUAL(xffl_link_or_copy(a, b), XFFL_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "missing"));
    CU_ASSERT_EQUAL(xffl_rmtree(dir), XFFL_OK);
    free(dir);
}

/* xffl_mkdirs: every missing level made, an existing directory fine, a file of that
 * name refused naming it (a --state DIR given a file) */
static void test_mkdirs(void)
{
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("mkdirs", &dir), XFFL_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/a/b/c", dir);
    CU_ASSERT_EQUAL(xffl_mkdirs(p), XFFL_OK);
    CU_ASSERT_EQUAL(xffl_mkdirs(p), XFFL_OK);
    struct stat st;
    CU_ASSERT(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
    snprintf(p, sizeof p, "%s/f", dir);
    CU_ASSERT_EQUAL_FATAL(xffl_write_file_atomic(p, "x", 1), XFFL_OK);
    CU_ASSERT_EQUAL(xffl_mkdirs(p), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "not a directory"));
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), p));
    snprintf(p, sizeof p, "%s/f/g", dir);
    CU_ASSERT_EQUAL(xffl_mkdirs(p), XFFL_ERR_IO);
    /* a cache file replaces the old one whole (not fsync'd; nothing else differs) */
    snprintf(p, sizeof p, "%s/a/cache", dir);
    CU_ASSERT_EQUAL(xffl_write_cache_file(p, "first", 5), XFFL_OK);
    CU_ASSERT_EQUAL(xffl_write_cache_file(p, "second", 6), XFFL_OK);
    void *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(xffl_read_file(p, &d, &n), XFFL_OK);
    CU_ASSERT(n == 6 && d && !memcmp(d, "second", 6));
    free(d);
    snprintf(p, sizeof p, "%s/missing/cache", dir);
    CU_ASSERT_EQUAL(xffl_write_cache_file(p, "x", 1), XFFL_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "missing"));
    CU_ASSERT_EQUAL(xffl_rmtree(dir), XFFL_OK);
    free(dir);
}

/* xffl_alloc_big: 64-byte aligned below 2 MiB, 2 MiB-aligned from there (where the
 * kernel can back it with huge pages), every byte usable; size 0 is not NULL. */
static void test_alloc_big(void)
{
    const size_t sizes[] = {0, 1, 100, ((size_t)2 << 20) - 1, (size_t)2 << 20, ((size_t)5 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = xffl_alloc_big(sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        size_t align = sizes[i] >= ((size_t)2 << 20) ? (size_t)2 << 20 : 64;
        CU_ASSERT_EQUAL((uintptr_t)p % align, 0);
        memset(p, 0xab, sizes[i]);
        if (sizes[i]) CU_ASSERT_EQUAL(p[sizes[i] - 1], 0xab);
        free(p);
    }
}

/* xffl_free_big while xffl_big_keep is on: the block comes back to the next allocation
 * of its size (and of no other size), at most once; a block under 2 MiB or one malloc
 * gave is never kept; xffl_big_keep(0) frees what is kept (ASan would report a leak). */
static void test_free_big_keeps(void)
{
    const size_t mb = (size_t)1 << 20;
    xffl_big_keep(1);
    unsigned char *a = xffl_alloc_big(5 * mb + 3), *small = xffl_alloc_big(mb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(small);
    memset(a, 0x5a, 5 * mb + 3);
    xffl_free_big(a);
    xffl_free_big(small);
    xffl_free_big(NULL);
    unsigned char *other = xffl_alloc_big(9 * mb); /* another size: a block of its own */
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    CU_ASSERT_PTR_NOT_EQUAL(other, a);
    unsigned char *b = xffl_alloc_big(5 * mb + 3), *c = xffl_alloc_big(5 * mb + 3);
    CU_ASSERT_PTR_EQUAL(b, a);
    CU_ASSERT_PTR_NOT_EQUAL(c, a);
    CU_ASSERT_EQUAL((uintptr_t)c % (2 * mb), 0);
    /* not from xffl_alloc_big: freed, not handed out as 2 MiB-aligned memory */
    unsigned char *m = malloc(6 * mb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    xffl_free_big(m);
    unsigned char *d = xffl_alloc_big(6 * mb);
    CU_ASSERT_EQUAL((uintptr_t)d % (2 * mb), 0);
    xffl_free_big(b);
    xffl_free_big(c);
    xffl_free_big(d);
    xffl_free_big(other);
    xffl_big_keep(0); /* frees all four */
    xffl_big_keep(0);
    /* off: nothing is kept */
    unsigned char *e = xffl_alloc_big(7 * mb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    xffl_free_big(e);
}

/* xffl_read_file: a regular file in one buffer of its size (3 MiB, empty), and a file
 * whose size stat does not know (/proc reports 0) by growing the buffer. */
static void test_read_file_sizes(void)
{
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("readtest", &dir), XFFL_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/big", dir);
    size_t n = (size_t)3 << 20;
    unsigned char *src = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)(i * 31 + (i >> 12));
    CU_ASSERT_EQUAL_FATAL(xffl_write_file_atomic(path, src, n), XFFL_OK);
    void *data = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(xffl_read_file(path, &data, &len), XFFL_OK);
    CU_ASSERT_TRUE(len == n && memcmp(data, src, n) == 0 && ((char *)data)[n] == 0);
    free(data);
    free(src);
    snprintf(path, sizeof path, "%s/empty", dir);
    CU_ASSERT_EQUAL_FATAL(xffl_write_file_atomic(path, "", 0), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(xffl_read_file(path, &data, &len), XFFL_OK);
    CU_ASSERT_TRUE(len == 0 && ((char *)data)[0] == 0);
    free(data);
    CU_ASSERT_EQUAL_FATAL(xffl_read_file("/proc/self/status", &data, &len), XFFL_OK);
    CU_ASSERT_TRUE(len > 100 && strlen(data) == len && strstr(data, "VmRSS:") != NULL);
    free(data);
    CU_ASSERT_EQUAL(xffl_rmtree(dir), XFFL_OK);
    free(dir);
}

/* A file written from parts reads back into parts of the same sizes with the whole
 * file's SHA-256; a size that is not their sum is INVALID naming the file. */
static void test_file_parts(void)
{
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("partstest", &dir), XFFL_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/inner.bin", dir);
    int64_t step = 1234567;
    float m[1000], v[3000], m2[1000], v2[3000];
    for (int i = 0; i < 1000; i++) m[i] = (float)i * 0.5f;
    for (int i = 0; i < 3000; i++) v[i] = (float)i * -0.25f;
    const void *out[3] = {&step, m, v};
    const size_t lens[3] = {8, sizeof m, sizeof v};
    CU_ASSERT_EQUAL_FATAL(xffl_write_file_atomic_parts(path, out, lens, 3), XFFL_OK);
    int64_t step2 = 0;
    void *in[3] = {&step2, m2, v2};
    char hex[XFFL_SHA256_HEX], whole[XFFL_SHA256_HEX];
    CU_ASSERT_EQUAL_FATAL(xffl_read_file_parts(path, in, lens, 3, hex), XFFL_OK);
    CU_ASSERT_TRUE(step2 == step && !memcmp(m, m2, sizeof m) && !memcmp(v, v2, sizeof v));
    void *data = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(xffl_read_file(path, &data, &len), XFFL_OK);
    CU_ASSERT_EQUAL(len, 8 + sizeof m + sizeof v);
    xffl_sha256_hex(data, len, whole);
    CU_ASSERT_STRING_EQUAL(hex, whole);
    free(data);
    const size_t short_lens[3] = {8, sizeof m, sizeof v - 4};
    CU_ASSERT_EQUAL(xffl_read_file_parts(path, in, short_lens, 3, NULL), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "inner.bin"));
    snprintf(path, sizeof path, "%s/missing", dir);
    CU_ASSERT_EQUAL(xffl_read_file_parts(path, in, lens, 3, NULL), XFFL_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(xffl_rmtree(dir), XFFL_OK);
    free(dir);
}

/* the pauses double from 0.05 s to the cap; no cap is 1 s; a cap below 0.05 s is the pause */
static void test_backoff(void)
{
    xffl_backoff b;
    xffl_backoff_init(&b, 0.2);
    const double want[] = {0.05, 0.1, 0.2, 0.2};
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_DOUBLE_EQUAL(b.next, want[i], 1e-12);
        double t0 = xffl_now();
        xffl_backoff_sleep(&b);
        CU_ASSERT(xffl_now() - t0 >= want[i] * 0.99);
    }
    xffl_backoff_init(&b, 0);
    CU_ASSERT_DOUBLE_EQUAL(b.max, 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(b.next, 0.05, 1e-12);
    xffl_backoff_init(&b, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(b.next, 0.01, 1e-12);
}

void suite_common(void)
{
    CU_pSuite s = CU_add_suite("common", NULL, NULL);
    CU_add_test(s, "big allocations: aligned for huge pages", test_alloc_big);
    CU_add_test(s, "big allocations: freed blocks kept for their size", test_free_big_keeps);
    CU_add_test(s, "whole files: sized by stat, or grown", test_read_file_sizes);
    CU_add_test(s, "files as parts: round trip, digest, wrong size", test_file_parts);
    CU_add_test(s, "a second name keeps the file a rename replaced", test_link_or_copy);
    CU_add_test(s, "directories made level by level; a file of that name refused; cache files", test_mkdirs);
    CU_add_test(s, "size parsing", test_sizes);
    CU_add_test(s, "waits: pauses double up to the cap", test_backoff);
    CU_add_test(s, "status table and messages", test_status_table);
    CU_add_test(s, "sha256 known answer", test_sha256);
    CU_add_test(s, "sha256 of pieces: any thread count, the last piece shorter", test_sha256_pieces);
    CU_add_test(s, "7b has 6,738,415,616 parameters", test_7b_parameter_count);
    CU_add_test(s, "GQA key/value shapes", test_gqa_shapes);
    CU_add_test(s, "init is deterministic, std 0.02", test_init_deterministic);
}
