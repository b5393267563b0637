#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "text/loader.h"
#include "text/shards.h"
#include "tests/unit/unit.h"

static void write_shard(const char *path, int n, int base)
{
    uint16_t *t = malloc(n * 2);
    for (int i = 0; i < n; i++) t[i] = (uint16_t)(base + i % 50);
    CU_ASSERT_EQUAL(text_shard_write(path, t, n), XFFL_OK);
    free(t);
}

/* Two shards interleave sequence by sequence; a cursor resumes exactly. */
static void test_interleave_and_resume(void)
{
    char *dir = NULL, p[4200];
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-shards", &dir), XFFL_OK);
    snprintf(p, sizeof p, "%s/a_train_0000.bin", dir);
    write_shard(p, 41, 0); /* 5 sequences of 8 */
    snprintf(p, sizeof p, "%s/b_train_0000.bin", dir);
    write_shard(p, 100, 100);
    snprintf(p, sizeof p, "%s/*_train_*.bin", dir);
    text_loader *s = NULL;
    CU_ASSERT_EQUAL_FATAL(text_loader_open(p, 256, NULL, &s), XFFL_OK);
    CU_ASSERT_EQUAL(text_loader_shards(s), 2);
    CU_ASSERT_EQUAL(text_loader_tokens(s), 141);
    CU_ASSERT_PTR_NOT_NULL(strstr(text_loader_digests(s), "a_train_0000.bin:"));
    int32_t in[12 * 8], tg[12 * 8], in2[12 * 8], tg2[12 * 8];
    text_cursor c = {0};
    CU_ASSERT_EQUAL(text_loader_next(s, &c, 12, 8, in, tg), XFFL_OK);
    CU_ASSERT_EQUAL(c.seq, 12);
    CU_ASSERT_EQUAL(in[0], 0);       /* seq 0: shard a */
    CU_ASSERT_EQUAL(in[8], 100);     /* seq 1: shard b */
    CU_ASSERT_EQUAL(in[16], 8);      /* seq 2: shard a, second sequence */
    CU_ASSERT_EQUAL(tg[0], 1);       /* targets are the next token */
    CU_ASSERT_EQUAL(in[10 * 8], 0);  /* seq 10: shard a wrapped after its 5 sequences */
    text_cursor d = {0};
    CU_ASSERT_EQUAL(text_loader_next(s, &d, 5, 8, in2, tg2), XFFL_OK);
    char txt[32];
    text_cursor_format(&d, txt, sizeof txt);
    text_cursor e;
    CU_ASSERT_EQUAL(text_cursor_parse(txt, &e), XFFL_OK);
    CU_ASSERT_EQUAL(text_loader_next(s, &e, 7, 8, in2 + 5 * 8, tg2 + 5 * 8), XFFL_OK);
    CU_ASSERT_EQUAL(memcmp(in, in2, sizeof in), 0);
    CU_ASSERT_EQUAL(memcmp(tg, tg2, sizeof tg), 0);
    CU_ASSERT_EQUAL(text_cursor_parse("x1", &e), XFFL_ERR_INVALID);
    text_loader_close(s);
    /* tokens outside the vocabulary are refused, naming the shard */
    CU_ASSERT_EQUAL(text_loader_open(p, 120, NULL, &s), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "b_train_0000.bin"));
    snprintf(p, sizeof p, "%s/none_*.bin", dir);
    CU_ASSERT_EQUAL(text_loader_open(p, 256, NULL, &s), XFFL_ERR_NOT_FOUND);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

void suite_round_shards(void)
{
    CU_pSuite s = CU_add_suite("round_shards", NULL, NULL);
    CU_add_test(s, "shards interleave; cursor resumes exactly; vocab check", test_interleave_and_resume);
}
