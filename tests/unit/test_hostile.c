/* Issue 14: inputs another party wrote (damaged or crafted) end in a status naming them,
 * never a crash, a hang, an unbounded allocation or a write outside the store. */
#include <CUnit/CUnit.h>
#include <string.h>
#include <unistd.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/digest.h"
#include "common/isolate.h"
#include "common/util.h"
#include "libckpt/model.h"
#include "storage/store.h"
#include "tests/unit/unit.h"
#include "text/loader.h"
#include "text/shards.h"

/* abort(), not SIGSEGV: under `make asan` a SEGV prints a report that reads like a bug */
static XFFL_MUST_USE xffl_status crashes(void *ctx)
{
    (void)ctx;
    abort();
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status loops(void *ctx)
{
    for (;;) pause();
    (void)ctx;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status refuses(void *ctx)
{
    return xffl_fail(XFFL_ERR_INVALID, "%s: refused", (const char *)ctx);
}

static XFFL_MUST_USE xffl_status answers(void *ctx)
{
    strcpy(ctx, "from the child");
    return XFFL_OK;
}

static void test_isolated(void)
{
    CU_ASSERT_EQUAL(xffl_isolated(crashes, NULL, NULL, 0, 10, "part-000.h5"), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "part-000.h5"));
    CU_ASSERT_EQUAL(xffl_isolated(loops, NULL, NULL, 0, 1, "part-001.h5"), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "did not finish in 1 s"));
    char what[] = "part-002.h5";
    CU_ASSERT_EQUAL(xffl_isolated(refuses, what, NULL, 0, 10, what), XFFL_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(xffl_errmsg(), "part-002.h5: refused");
    char buf[32] = "";
    T_OK(xffl_isolated(answers, buf, buf, sizeof buf, 10, "answer"));
    CU_ASSERT_STRING_EQUAL(buf, "from the child");
}

/* A shard is its header, then exactly the tokens announced: /dev/zero and a short or
 * long file are refused before the tokens are allocated or read. */
static void test_shard_sizes(void)
{
    char *dir = NULL, path[4096];
    T_OK(xffl_mkdtemp("xffl-hostile", &dir));
    uint16_t tok[40];
    for (int i = 0; i < 40; i++) tok[i] = (uint16_t)(i % 256);
    snprintf(path, sizeof path, "%s/s.bin", dir);
    T_OK(text_shard_write(path, tok, 40));
    uint16_t *t = NULL;
    int64_t n = 0;
    char hex[XFFL_SHA256_HEX], want[XFFL_SHA256_HEX];
    void *raw = NULL;
    size_t len = 0;
    T_OK(text_shard_read(path, 256, &t, &n, hex));
    CU_ASSERT_EQUAL(n, 40);
    T_OK(xffl_read_file(path, &raw, &len));
    xffl_sha256_hex(raw, len, want);
    CU_ASSERT_STRING_EQUAL(hex, want); /* the digest is still the whole file's */
    free(t);
    CU_ASSERT_EQUAL(text_shard_read("/dev/zero", 256, &t, &n, NULL), XFFL_ERR_INVALID);
    FILE *f = fopen(path, "ab");
    fputc(0, f);
    fclose(f);
    CU_ASSERT_EQUAL(text_shard_read(path, 256, &t, &n, NULL), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "header says 40 tokens"));
    CU_ASSERT_EQUAL(truncate(path, (off_t)len - 3), 0);
    CU_ASSERT_EQUAL(text_shard_read(path, 256, &t, &n, NULL), XFFL_ERR_INVALID);
    /* fuzz_shards: a 1 KB file whose header announces 2^31-1 tokens allocated 4 GB */
    int32_t hdr[TEXT_SHARD_HEADER_INTS] = {TEXT_SHARD_MAGIC, TEXT_SHARD_VERSION, INT32_MAX};
    f = fopen(path, "wb");
    fwrite(hdr, sizeof hdr, 1, f);
    fclose(f);
    CU_ASSERT_EQUAL(text_shard_read(path, 256, &t, &n, NULL), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "header says 2147483647 tokens, file holds 0 bytes"));
    free(raw);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

/* A cursor from --state or a COMMIT's cursor_end near INT64_MAX overflowed into a
 * negative shard index. */
static void test_cursor_range(void)
{
    char *dir = NULL, path[4096];
    T_OK(xffl_mkdtemp("xffl-hostile", &dir));
    uint16_t tok[100] = {0};
    snprintf(path, sizeof path, "%s/s.bin", dir);
    T_OK(text_shard_write(path, tok, 100));
    text_loader *l = NULL;
    T_OK(text_loader_open(path, 256, NULL, &l));
    int32_t in[2 * 8], tg[2 * 8];
    text_cursor c = {.seq = 5};
    T_OK(text_loader_next(l, &c, 2, 8, in, tg));
    CU_ASSERT_EQUAL(c.seq, 7);
    T_OK(text_cursor_parse("9223372036854775807", &c));
    CU_ASSERT_EQUAL(text_loader_next(l, &c, 2, 8, in, tg), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "out of range"));
    c.seq = INT64_MAX - 1;
    CU_ASSERT_EQUAL(text_loader_next(l, &c, 2, 8, in, tg), XFFL_ERR_INVALID);
    text_loader_close(l);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

/* file://: a symbolic link inside the store is never followed; put_unless refuses a
 * second COMMIT beside the first, and takes the same key again. */
static void test_store_file_rules(void)
{
    char *dir = NULL, *out = NULL, link[4096];
    T_OK(xffl_mkdtemp("xffl-hostile", &dir));
    T_OK(xffl_mkdtemp("xffl-outside", &out));
    store *s = NULL;
    T_OK(store_open(dir, NULL, &s));
    T_OK(store_put(s, "rounds/r000001/a/a1/x", "1", 1));
    snprintf(link, sizeof link, "%s/rounds/r000002", dir);
    CU_ASSERT_EQUAL_FATAL(symlink(out, link), 0);
    CU_ASSERT_EQUAL(store_put(s, "rounds/r000002/a/a1/x", "1", 1), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "rounds/r000002 is a symbolic link"));
    void *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(store_get(s, "rounds/r000002/a/a1/x", &d, &n), XFFL_ERR_INVALID);
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/a", out);
    CU_ASSERT_NOT_EQUAL(access(probe, F_OK), 0); /* nothing written outside */
    const char *p = "rounds/r000001/a/a1/COMMIT-";
    T_OK(store_put_unless(s, "rounds/r000001/a/a1/COMMIT-aaaaaaaaaaaa", "a", 1, p));
    T_OK(store_put_unless(s, "rounds/r000001/a/a1/COMMIT-aaaaaaaaaaaa", "a", 1, p));
    CU_ASSERT_EQUAL(store_put_unless(s, "rounds/r000001/a/a1/COMMIT-bbbbbbbbbbbb", "b", 1, p), XFFL_ERR_EXISTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "COMMIT-aaaaaaaaaaaa"));
    store_listing l = {0};
    T_OK(store_list(s, "rounds/r000001/", &l));
    CU_ASSERT_EQUAL(l.count, 2); /* x and one COMMIT: the lock is no key */
    store_listing_free(&l);
    store_close(s);
    xffl_rmtree_cleanup(dir);
    xffl_rmtree_cleanup(out);
    free(dir);
    free(out);
}

/* fuzz_federation found n_layers = 2^28 validated: a 3.8 GB parameter table (and an
 * int overflow in its size) from one federation.h5 attribute. */
static void test_model_bounds(void)
{
    ckpt_model_config c;
    T_OK(ckpt_model_preset("7b", 0, &c));
    T_OK(ckpt_model_validate(&c));
    ckpt_model_config big = c;
    big.n_layers = 1 << 28;
    CU_ASSERT_EQUAL(ckpt_model_validate(&big), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "n_layers"));
    big = c;
    big.dim = 1 << 20;
    CU_ASSERT_EQUAL(ckpt_model_validate(&big), XFFL_ERR_INVALID);
    big = c;
    big.hidden_dim = INT32_MAX;
    CU_ASSERT_EQUAL(ckpt_model_validate(&big), XFFL_ERR_INVALID);
    ckpt_param_table *t = NULL;
    big = c;
    big.n_layers = 1 << 28;
    CU_ASSERT_EQUAL(ckpt_param_table_create(&big, &t), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NULL(t);
}

void suite_hostile(void)
{
    CU_pSuite s = CU_add_suite("hostile", NULL, NULL);
    CU_add_test(s, "a parser in a child: crash, hang, failure, result", test_isolated);
    CU_add_test(s, "shard sizes bounded by the header, /dev/zero refused", test_shard_sizes);
    CU_add_test(s, "cursor near INT64_MAX out of range", test_cursor_range);
    CU_add_test(s, "file store: no symlinks followed, one COMMIT per attempt", test_store_file_rules);
    CU_add_test(s, "model config bounded before its table is allocated", test_model_bounds);
}
