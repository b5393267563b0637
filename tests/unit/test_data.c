/* Byte tokenizer, llm.c shards, `data pack`, and the packed shards read back through
 * the training loader (text/loader.h): deterministic, resumable from a cursor. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "pipelines/federation.h"
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

/* init --data-order strided: each pass over a shard is a permutation (every sequence
 * once), another one for another seed, shard or pass, the same bits every time; the
 * loader reads in it only when asked, and federation.h5 keeps the choice (absent: file
 * order, as every federation before it trained). */
static void test_strided_order(void)
{
    const int64_t ns[] = {2, 3, 7, 64, 100, 997, 1000};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const int64_t n = ns[t];
        unsigned char seen[1000];
        for (int64_t pass = 0; pass < 3; pass++) {
            memset(seen, 0, sizeof seen);
            int64_t same = 0;
            for (int64_t k = 0; k < n; k++) {
                uint64_t at = text_loader_stride_index(42, 1, pass, n, k);
                CU_ASSERT_FATAL(at < (uint64_t)n);
                CU_ASSERT_EQUAL(seen[at], 0);
                seen[at] = 1;
                same += at == text_loader_stride_index(42, 1, pass, n, k);
            }
            CU_ASSERT_EQUAL(same, n);
        }
    }
    CU_ASSERT_EQUAL(text_loader_stride_index(5, 0, 0, 1, 0), 0);
    int differ_seed = 0, differ_pass = 0, differ_shard = 0, neighbours = 0;
    for (int64_t k = 0; k < 1000; k++) {
        uint64_t a = text_loader_stride_index(1, 0, 0, 1000, k);
        differ_seed += a != text_loader_stride_index(2, 0, 0, 1000, k);
        differ_pass += a != text_loader_stride_index(1, 0, 1, 1000, k);
        differ_shard += a != text_loader_stride_index(1, 1, 0, 1000, k);
        if (k) {
            uint64_t p = text_loader_stride_index(1, 0, 0, 1000, k - 1);
            neighbours += a == p + 1 || p == a + 1;
        }
    }
    CU_ASSERT(differ_seed > 900);
    CU_ASSERT(differ_pass > 900);
    CU_ASSERT(differ_shard > 900);
    CU_ASSERT(neighbours < 10); /* consecutive steps read apart, not on from each other */

    /* through the loader: one shard of 10 sequences of 4 (+1) tokens, token = position */
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-strided", &dir), XFFL_OK);
    char p[4096];
    snprintf(p, sizeof p, "%s/x_train_0000.bin", dir);
    uint16_t tok[41];
    for (int i = 0; i < 41; i++) tok[i] = (uint16_t)i;
    CU_ASSERT_EQUAL_FATAL(text_shard_write(p, tok, 41), XFFL_OK);
    text_loader *l = NULL;
    CU_ASSERT_EQUAL_FATAL(text_loader_open(p, 256, NULL, &l), XFFL_OK);
    int32_t in[20 * 4], tg[20 * 4], in2[20 * 4], tg2[20 * 4];
    text_cursor c = {0};
    CU_ASSERT_EQUAL(text_loader_next(l, &c, 20, 4, in, tg), XFFL_OK);
    for (int b = 0; b < 20; b++) CU_ASSERT_EQUAL(in[b * 4], (b % 10) * 4); /* file order */
    text_loader_stride(l, 9);
    c.seq = 0;
    CU_ASSERT_EQUAL(text_loader_next(l, &c, 20, 4, in, tg), XFFL_OK);
    int moved = 0;
    for (int pass = 0; pass < 2; pass++) {
        int hit[10] = {0};
        for (int b = 0; b < 10; b++) {
            int s0 = in[(pass * 10 + b) * 4];
            CU_ASSERT_EQUAL(s0 % 4, 0);
            CU_ASSERT_EQUAL(s0, (int)text_loader_stride_index(9, 0, pass, 10, b) * 4);
            CU_ASSERT_EQUAL(tg[(pass * 10 + b) * 4], s0 + 1);
            hit[s0 / 4]++;
            moved += s0 != b * 4;
        }
        for (int i = 0; i < 10; i++) CU_ASSERT_EQUAL(hit[i], 1);
    }
    CU_ASSERT(moved > 0);
    text_cursor d = {.seq = 7}; /* resuming mid-pass reads the same sequences */
    CU_ASSERT_EQUAL(text_loader_next(l, &d, 13, 4, in2, tg2), XFFL_OK);
    CU_ASSERT_EQUAL(memcmp(in + 7 * 4, in2, 13 * 4 * sizeof *in), 0);
    text_loader_close(l);

    pipe_federation f, g;
    CU_ASSERT_EQUAL_FATAL(pipe_federation_default("tiny", 0, &f), XFFL_OK);
    snprintf(p, sizeof p, "%s/federation.h5", dir);
    CU_ASSERT_EQUAL(pipe_federation_write_file(&f, p), XFFL_OK);
    g.data_strided = 1;
    CU_ASSERT_EQUAL(pipe_federation_read_file(p, &g), XFFL_OK);
    CU_ASSERT_EQUAL(g.data_strided, 0); /* no attribute: file order */
    size_t n0 = 0, n1 = 0;
    void *b0 = NULL, *b1 = NULL;
    CU_ASSERT_EQUAL(xffl_read_file(p, &b0, &n0), XFFL_OK);
    f.data_strided = 1;
    CU_ASSERT_EQUAL(pipe_federation_write_file(&f, p), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_federation_read_file(p, &g), XFFL_OK);
    CU_ASSERT_EQUAL(g.data_strided, 1);
    CU_ASSERT_EQUAL(xffl_read_file(p, &b1, &n1), XFFL_OK);
    CU_ASSERT(n0 != n1 || (b0 && b1 && memcmp(b0, b1, n0) != 0)); /* recorded, so the sha differs */
    free(b0);
    free(b1);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

void suite_data(void)
{
    CU_pSuite s = CU_add_suite("data", NULL, NULL);
    CU_add_test(s, "byte tokenizer round trip", test_tokenizer);
    CU_add_test(s, "llm.c shard bytes, pack train/val, loader determinism and resume", test_shard_and_pack);
    CU_add_test(s, "strided data order: permutations from the seed, federation.h5 round trip", test_strided_order);
}
