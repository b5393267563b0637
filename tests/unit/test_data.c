/* Byte tokenizer, llm.c shards, `data pack`, and the packed shards read back through
 * the training loader (text/loader.h): deterministic, resumable from a cursor. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "text/loader.h"
#include "text/pack.h"
#include "text/shards.h"
#include "text/tokenizer.h"
#include "tests/unit/unit.h"

static void test_tokenizer(void)
{
    const char *s = "h\xc3\xa9llo\n\x01\xff";
    int32_t ids[16];
    char back[16];
    size_t n = text_byte_encode(s, strlen(s), ids);
    CU_ASSERT_EQUAL(n, strlen(s));
    CU_ASSERT_EQUAL(ids[0], 'h');
    CU_ASSERT_EQUAL(ids[1], 0xc3);
    CU_ASSERT_EQUAL(ids[n - 1], 255);
    CU_ASSERT_EQUAL(text_byte_decode(ids, n, back), n);
    CU_ASSERT_EQUAL(memcmp(back, s, n), 0);
}

static void write_text(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, n, f);
    fclose(f);
}

static void test_shard_and_pack(void)
{
    char *dir = NULL, p[4200], a[4200], b[4200];
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-data", &dir), XFFL_OK);
    /* header bytes exactly as llm.c writes them */
    uint16_t tok[5] = {1, 2, 300, 4, 255};
    snprintf(p, sizeof p, "%s/one.bin", dir);
    CU_ASSERT_EQUAL(text_shard_write(p, tok, 5), XFFL_OK);
    void *raw = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(xffl_read_file(p, &raw, &len), XFFL_OK);
    CU_ASSERT_EQUAL(len, 1024 + 10);
    int32_t h[3];
    memcpy(h, raw, sizeof h);
    CU_ASSERT_EQUAL(h[0], 20240520);
    CU_ASSERT_EQUAL(h[1], 1);
    CU_ASSERT_EQUAL(h[2], 5);
    CU_ASSERT_EQUAL(((unsigned char *)raw)[1024 + 4], 300 & 255); /* little-endian uint16 */
    CU_ASSERT_EQUAL(((unsigned char *)raw)[1024 + 5], 300 >> 8);
    free(raw);
    uint16_t *back = NULL;
    int64_t n = 0;
    CU_ASSERT_EQUAL(text_shard_read(p, 512, &back, &n, NULL), XFFL_OK);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(back[2], 300);
    free(back);
    CU_ASSERT_EQUAL(text_shard_read(p, 256, &back, &n, NULL), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "one.bin"));
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "offset 2"));

    /* pack: two files, 25% of each to val, shards of 64 tokens */
    char text1[200], text2[120];
    for (int i = 0; i < 200; i++) text1[i] = (char)('a' + i % 26);
    for (int i = 0; i < 120; i++) text2[i] = (char)('A' + i % 26);
    snprintf(a, sizeof a, "%s/a.txt", dir);
    snprintf(b, sizeof b, "%s/b.txt", dir);
    write_text(a, text1, sizeof text1);
    write_text(b, text2, sizeof text2);
    const char *files[] = {a, b};
    snprintf(p, sizeof p, "%s/out", dir);
    text_pack_options o = {.out_dir = p, .name = "en", .val_fraction = 0.25, .shard_tokens = 64};
    text_pack_result r;
    CU_ASSERT_EQUAL_FATAL(text_pack(files, 2, &o, &r), XFFL_OK);
    CU_ASSERT_EQUAL(r.files, 2);
    CU_ASSERT_EQUAL(r.train_tokens, 150 + 90);
    CU_ASSERT_EQUAL(r.val_tokens, 50 + 30);
    CU_ASSERT_EQUAL(r.train_shards, 4); /* 64 + 64 + 64 + 48 */
    CU_ASSERT_EQUAL(r.val_shards, 2);
    snprintf(p, sizeof p, "%s/out/en_train_0003.bin", dir);
    CU_ASSERT_EQUAL(text_shard_read(p, 256, &back, &n, NULL), XFFL_OK);
    CU_ASSERT_EQUAL(n, 48);
    CU_ASSERT_EQUAL(back[0], text2[192 - 150]); /* token 192 of the train stream */
    free(back);
    snprintf(p, sizeof p, "%s/out/en_val_0000.bin", dir);
    CU_ASSERT_EQUAL(text_shard_read(p, 256, &back, &n, NULL), XFFL_OK);
    CU_ASSERT_EQUAL(back[0], text1[150]); /* val = the tail of each file */
    free(back);

    /* the training loader reads them: same batches twice, and resuming from a cursor */
    snprintf(p, sizeof p, "%s/out/en_train_*.bin", dir);
    text_loader *s = NULL;
    CU_ASSERT_EQUAL_FATAL(text_loader_open(p, 256, NULL, &s), XFFL_OK);
    CU_ASSERT_EQUAL(text_loader_tokens(s), 240);
    int32_t in1[6 * 8], tg1[6 * 8], in2[6 * 8], tg2[6 * 8];
    text_cursor c = {0}, d = {0};
    CU_ASSERT_EQUAL(text_loader_next(s, &c, 6, 8, in1, tg1), XFFL_OK);
    CU_ASSERT_EQUAL(text_loader_next(s, &d, 2, 8, in2, tg2), XFFL_OK);
    char txt[64];
    text_cursor_format(&d, txt, sizeof txt);
    text_cursor e;
    CU_ASSERT_EQUAL(text_cursor_parse(txt, &e), XFFL_OK);
    CU_ASSERT_EQUAL(text_loader_next(s, &e, 4, 8, in2 + 16, tg2 + 16), XFFL_OK);
    CU_ASSERT_EQUAL(memcmp(in1, in2, sizeof in1), 0);
    CU_ASSERT_EQUAL(memcmp(tg1, tg2, sizeof tg1), 0);
    CU_ASSERT_EQUAL(tg1[0], in1[1]);
    text_loader_close(s);

    /* errors name the file or option */
    const char *missing[] = {"/nonexistent/x.txt"};
    CU_ASSERT_EQUAL(text_pack(missing, 1, &o, &r), XFFL_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "/nonexistent/x.txt"));
    o.val_fraction = 1.5;
    CU_ASSERT_EQUAL(text_pack(files, 2, &o, &r), XFFL_ERR_USAGE);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

void suite_data(void)
{
    CU_pSuite s = CU_add_suite("data", NULL, NULL);
    CU_add_test(s, "byte tokenizer round trip", test_tokenizer);
    CU_add_test(s, "llm.c shard bytes, pack train/val, loader determinism and resume", test_shard_and_pack);
}
