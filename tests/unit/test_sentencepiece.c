/* The SentencePiece tokenizer on hand-written models (a protobuf writer below): the
 * merge order and its tie rule, unused pieces split back, runs of unknowns, byte
 * fallback, a merge across U+2581, decoding, the vocabulary limit and truncated files.
 * The comparison with SentencePiece itself is tests/it/test-tokenizer.sh. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/sentencepiece.h"

typedef struct {
    uint8_t *b;
    size_t n, cap;
} pbw;

static void put(pbw *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->b = realloc(w->b, w->cap);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void varint(pbw *w, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
        put(w, &c, 1);
        v >>= 7;
    } while (v);
}

static void field_bytes(pbw *w, int field, const void *p, size_t n)
{
    varint(w, (uint64_t)field << 3 | 2);
    varint(w, n);
    put(w, p, n);
}

static void field_varint(pbw *w, int field, uint64_t v)
{
    varint(w, (uint64_t)field << 3);
    varint(w, v);
}

typedef struct {
    const char *piece;
    float score;
    int type; /* 0: normal */
} pc;

enum { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, UNUSED = 5, BYTE = 6 };

/* a BPE identity model: <unk> <s> </s>, the 256 byte pieces when byte_fallback, then ps */
static pbw model(const pc *ps, int n, int byte_fallback, int dummy_prefix, int extra_pieces)
{
    pbw m = {0};
    char buf[16];
    for (int i = -3; i < n + (byte_fallback ? 256 : 0) + extra_pieces; i++) {
        pbw p = {0};
        const char *s;
        float score = 0;
        int type = NORMAL;
        if (i < 0) s = i == -3 ? "<unk>" : i == -2 ? "<s>" : "</s>", type = i == -3 ? UNKNOWN : CONTROL;
        else if (i < n) s = ps[i].piece, score = ps[i].score, type = ps[i].type ? ps[i].type : NORMAL;
        else if (byte_fallback && i < n + 256) snprintf(buf, sizeof buf, "<0x%02X>", i - n), s = buf, type = BYTE;
        else snprintf(buf, sizeof buf, "z%d", i), s = buf, score = -1e6f;
        field_bytes(&p, 1, s, strlen(s));
        varint(&p, 2 << 3 | 5);
        put(&p, &score, 4);
        field_varint(&p, 3, (uint64_t)type);
        field_bytes(&m, 1, p.b, p.n);
        free(p.b);
    }
    pbw t = {0};
    field_varint(&t, 3, 2); /* BPE */
    field_varint(&t, 35, (uint64_t)byte_fallback);
    field_bytes(&m, 2, t.b, t.n);
    pbw z = {0};
    field_bytes(&z, 1, "identity", 8);
    field_varint(&z, 3, (uint64_t)dummy_prefix);
    field_varint(&z, 4, 0);
    field_bytes(&m, 3, z.b, z.n);
    free(t.b);
    free(z.b);
    return m;
}

/* the pieces of text's ids, space separated */
static char *pieces(text_sp *sp, const char *text)
{
    text_ids ids = {0};
    static char out[4096];
    out[0] = 0;
    CU_ASSERT_EQUAL_FATAL(text_sp_encode(sp, text, strlen(text), &ids), XFFL_OK);
    for (size_t i = 0; i < ids.n; i++) {
        size_t len;
        const char *p = text_sp_piece(sp, ids.v[i], &len);
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%.*s", i ? " " : "", (int)len, p);
    }
    free(ids.v);
    return out;
}

static text_sp *load(pbw m)
{
    text_sp *sp = NULL;
    CU_ASSERT_EQUAL(text_sp_parse(m.b, m.n, "test.model", &sp), XFFL_OK);
    free(m.b);
    return sp;
}

static void test_merge_order(void)
{
    const pc ps[] = {{"a", -10, 0}, {"b", -10, 0}, {"ab", 0, 0}, {"ba", 0, 0}};
    text_sp *sp = load(model(ps, 4, 0, 0, 0));
    CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
    CU_ASSERT_STRING_EQUAL(pieces(sp, "aba"), "ab a"); /* equal scores: the leftmost pair */
    CU_ASSERT_STRING_EQUAL(pieces(sp, "bab"), "ba b");
    text_sp_free(sp);
    const pc hi[] = {{"a", -10, 0}, {"b", -10, 0}, {"ab", 0, 0}, {"ba", 1, 0}};
    sp = load(model(hi, 4, 0, 0, 0));
    CU_ASSERT_STRING_EQUAL(pieces(sp, "aba"), "a ba"); /* a higher score wins over position */
    text_sp_free(sp);
}

static void test_unused_and_unknown(void)
{
    const pc ps[] = {{"a", -10, 0}, {"b", -10, 0}, {"c", -10, 0}, {"ab", 5, UNUSED}, {"abc", 4, 0}};
    text_sp *sp = load(model(ps, 5, 0, 0, 0));
    CU_ASSERT_STRING_EQUAL(pieces(sp, "abc"), "abc"); /* merged through the unused "ab" */
    CU_ASSERT_STRING_EQUAL(pieces(sp, "ab"), "a b");  /* and split back when it is final */
    /* without byte fallback a run of unknowns is one <unk>, across words too */
    CU_ASSERT_STRING_EQUAL(pieces(sp, "xyz"), "<unk>");
    CU_ASSERT_STRING_EQUAL(pieces(sp, "x y"), "<unk>");
    CU_ASSERT_STRING_EQUAL(pieces(sp, "xay"), "<unk> a <unk>");
    char *out = NULL;
    size_t len;
    text_ids ids = {0};
    CU_ASSERT_EQUAL(text_sp_encode(sp, "xa", 2, &ids), XFFL_OK);
    CU_ASSERT_EQUAL(text_sp_decode(sp, ids.v, ids.n, &out, &len), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(out, " \xe2\x81\x87 a"); /* SentencePiece's unk_surface */
    free(out);
    int32_t bad = text_sp_vocab(sp);
    CU_ASSERT_EQUAL(text_sp_decode(sp, &bad, 1, &out, &len), XFFL_ERR_INVALID);
    free(ids.v);
    text_sp_free(sp);
}

static void test_bytes_and_spaces(void)
{
    const pc ps[] = {{"\xe2\x96\x81", -10, 0}, {"a", -10, 0}, {"b", -10, 0}, {"a\xe2\x96\x81", 2, 0},
                     {"a\xe2\x96\x81" "b", 1, 0}};
    text_sp *sp = load(model(ps, 5, 1, 1, 0));
    CU_ASSERT_EQUAL(text_sp_bos(sp), 1);
    CU_ASSERT_EQUAL(text_sp_eos(sp), 2);
    /* a piece with U+2581 inside: the merge crosses the space */
    CU_ASSERT_STRING_EQUAL(pieces(sp, "a b"), "\xe2\x96\x81 a\xe2\x96\x81" "b");
    CU_ASSERT_STRING_EQUAL(pieces(sp, "\xc3\xa9"), "\xe2\x96\x81 <0xC3> <0xA9>");
    CU_ASSERT_STRING_EQUAL(pieces(sp, "\xff"), "\xe2\x96\x81 <0xEF> <0xBF> <0xBD>"); /* U+FFFD */
    const char *text = "a b  \xc3\xa9\n b";
    text_ids ids = {0};
    char *out = NULL;
    size_t len;
    CU_ASSERT_EQUAL(text_sp_encode(sp, text, strlen(text), &ids), XFFL_OK);
    CU_ASSERT_EQUAL(text_sp_decode(sp, ids.v, ids.n, &out, &len), XFFL_OK);
    CU_ASSERT_EQUAL(len, strlen(text));
    CU_ASSERT_STRING_EQUAL(out, text);
    free(out);
    free(ids.v);
    text_sp_free(sp);
}

static void test_limits(void)
{
    const pc ps[] = {{"a", 0, 0}};
    text_sp *sp = NULL;
    pbw m = model(ps, 1, 0, 1, 65536 - 4);
    CU_ASSERT_EQUAL(text_sp_parse(m.b, m.n, "big.model", &sp), XFFL_OK);
    CU_ASSERT_EQUAL(text_sp_vocab(sp), 65536);
    text_sp_free(sp);
    free(m.b);
    m = model(ps, 1, 0, 1, 65536 - 3);
    CU_ASSERT_EQUAL(text_sp_parse(m.b, m.n, "big.model", &sp), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "big.model"));
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "65536"));
    free(m.b);
    /* every truncation of a good model: parsed or refused, never read past the end */
    const pc two[] = {{"a", -1, 0}, {"b", -1, 0}, {"ab", 0, 0}};
    m = model(two, 3, 1, 1, 0);
    for (size_t n = 0; n < m.n; n++) {
        uint8_t *cut = malloc(n + 1);
        memcpy(cut, m.b, n);
        xffl_status st = text_sp_parse(cut, n, "cut.model", &sp);
        CU_ASSERT(st == XFFL_OK || st == XFFL_ERR_INVALID);
        text_sp_free(sp);
        free(cut);
    }
    free(m.b);
}

void suite_sentencepiece(void)
{
    CU_pSuite s = CU_add_suite("sentencepiece", NULL, NULL);
    CU_add_test(s, "merge order and ties", test_merge_order);
    CU_add_test(s, "unused pieces, unknown runs, decode", test_unused_and_unknown);
    CU_add_test(s, "byte fallback, spaces, round trip", test_bytes_and_spaces);
    CU_add_test(s, "vocabulary limit, truncated files", test_limits);
}
