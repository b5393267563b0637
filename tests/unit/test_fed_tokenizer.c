/* The federation's tokenizer: the record beside shards, the loader's refusal of shards
 * of another tokenizer, and federation.h5's tokenizer_sha256 (its format_version). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "libckpt/h5part.h"
#include "pipelines/federation.h"
#include "text/loader.h"
#include "text/shards.h"
#include "tests/unit/unit.h"

static const char SHA_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char SHA_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void put(const char *dir, const char *name, const char *text)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    T_OK(xffl_write_file_atomic(p, text, strlen(text)));
}

static void shard(const char *dir, const char *name)
{
    char p[4200];
    uint16_t t[40];
    for (int i = 0; i < 40; i++) t[i] = (uint16_t)i;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    T_OK(text_shard_write(p, t, 40));
}

/* <name>_train_NNNN.bin and <name>_val_NNNN.bin share <name>_tokenizer.sha256. */
static void test_record(void)
{
    char *dir = NULL, p[4200], sha[XFFL_SHA256_HEX], model[64], rec[4200];
    T_OK(xffl_mkdtemp("xffl-fedtok", &dir));
    put(dir, "my_data_tokenizer.sha256", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  m.model\n");
    snprintf(p, sizeof p, "%s/my_data_val_0003.bin", dir);
    T_OK(text_shard_tokenizer(p, sha, model, sizeof model, rec, sizeof rec));
    CU_ASSERT_STRING_EQUAL(sha, SHA_A);
    CU_ASSERT_STRING_EQUAL(model, "m.model");
    CU_ASSERT_PTR_NOT_NULL(strstr(rec, "/my_data_tokenizer.sha256"));
    /* no record, or a name pack does not write: byte-level */
    snprintf(p, sizeof p, "%s/other_train_0000.bin", dir);
    T_OK(text_shard_tokenizer(p, sha, model, sizeof model, rec, sizeof rec));
    CU_ASSERT_STRING_EQUAL(sha, "");
    snprintf(p, sizeof p, "%s/renamed.bin", dir);
    T_OK(text_shard_tokenizer(p, sha, model, sizeof model, NULL, 0));
    CU_ASSERT_STRING_EQUAL(sha, "");
    /* a record that is not a sha256sum line */
    put(dir, "bad_tokenizer.sha256", "not a digest\n");
    snprintf(p, sizeof p, "%s/bad_train_0000.bin", dir);
    CU_ASSERT_EQUAL(text_shard_tokenizer(p, sha, model, sizeof model, NULL, 0), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "bad_tokenizer.sha256"));
    xffl_rmtree_cleanup(dir);
    free(dir);
}

/* The loader opens shards of the expected tokenizer only, naming shard and both. */
static void test_loader_refuses(void)
{
    char *dir = NULL, p[4200];
    text_loader *l = NULL;
    T_OK(xffl_mkdtemp("xffl-fedtok", &dir));
    shard(dir, "sp_train_0000.bin");
    put(dir, "sp_tokenizer.sha256", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  m.model\n");
    shard(dir, "bytes_train_0000.bin");
    snprintf(p, sizeof p, "%s/sp_train_*.bin", dir);
    T_OK(text_loader_open(p, 256, SHA_A, &l));
    text_loader_close(l);
    CU_ASSERT_EQUAL(text_loader_open(p, 256, SHA_B, &l), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "sp_train_0000.bin"));
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "m.model (sha256 aaaaaaaaaaaa"));
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "sha256 bbbbbbbbbbbb"));
    CU_ASSERT_EQUAL(text_loader_open(p, 256, NULL, &l), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "byte-level"));
    snprintf(p, sizeof p, "%s/bytes_train_*.bin", dir);
    T_OK(text_loader_open(p, 256, "", &l));
    text_loader_close(l);
    CU_ASSERT_EQUAL(text_loader_open(p, 256, SHA_A, &l), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "bytes_train_0000.bin was packed with the byte-level tokenizer"));
    /* one glob over both kinds: refused at the first that differs */
    snprintf(p, sizeof p, "%s/*_train_*.bin", dir);
    CU_ASSERT_EQUAL(text_loader_open(p, 256, SHA_A, &l), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NULL(l);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

static int64_t format_version(const char *path)
{
    ckpt_h5_reader *r = NULL;
    int64_t v = -1;
    T_OK(ckpt_h5_reader_open(path, NULL, &r));
    T_OK(ckpt_h5_get_attr_int(r, "format_version", &v));
    ckpt_h5_reader_close(r);
    return v;
}

/* tokenizer_sha256 round trips; version 2 only with it, byte-level stays version 1. */
static void test_federation_attr(void)
{
    char *dir = NULL, p[4200];
    T_OK(xffl_mkdtemp("xffl-fedtok", &dir));
    snprintf(p, sizeof p, "%s/federation.h5", dir);
    pipe_federation f, g;
    T_OK(pipe_federation_default("tiny", 0, &f));
    T_OK(pipe_federation_write_file(&f, p));
    CU_ASSERT_EQUAL(format_version(p), PIPE_FEDERATION_FORMAT_VERSION_BYTE_LEVEL);
    T_OK(pipe_federation_read_file(p, &g));
    CU_ASSERT_STRING_EQUAL(g.tokenizer_sha256, "");
    snprintf(f.tokenizer_sha256, sizeof f.tokenizer_sha256, "%s", SHA_B);
    T_OK(pipe_federation_write_file(&f, p));
    CU_ASSERT_EQUAL(format_version(p), PIPE_FEDERATION_FORMAT_VERSION);
    CU_ASSERT_EQUAL(PIPE_FEDERATION_FORMAT_VERSION, 2);
    T_OK(pipe_federation_read_file(p, &g));
    CU_ASSERT_STRING_EQUAL(g.tokenizer_sha256, SHA_B);
    snprintf(f.tokenizer_sha256, sizeof f.tokenizer_sha256, "%s", "ABC");
    CU_ASSERT_EQUAL(pipe_federation_validate(&f), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "tokenizer_sha256"));
    xffl_rmtree_cleanup(dir);
    free(dir);
}

void suite_fed_tokenizer(void)
{
    CU_pSuite s = CU_add_suite("fed_tokenizer", NULL, NULL);
    CU_add_test(s, "the tokenizer record beside shards", test_record);
    CU_add_test(s, "the loader refuses shards of another tokenizer", test_loader_refuses);
    CU_add_test(s, "federation.h5 tokenizer_sha256 and its format_version", test_federation_attr);
}
