/* Reading a SentencePiece tokenizer.model (contract in sentencepiece.h): a minimal
 * protobuf wire-format reader, every length checked against what is left, and the
 * checks SentencePiece's model loader makes, each failing as INVALID naming the field.
 * Field numbers are those of sentencepiece_model.proto. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "text/sp_internal.h"

/* ---- protobuf wire format ---- */

typedef struct {
    const uint8_t *p, *end;
} pb_buf;

typedef struct {
    uint32_t field;
    int wire;
    uint64_t v;          /* varint and fixed values */
    const uint8_t *data; /* length-delimited bytes */
    size_t len;
} pb_field;

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

static int pb_varint(pb_buf *b, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return 0;
        uint8_t c = *b->p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* 1: a field read; 0: end of the message; -1: malformed (groups included: proto3 and
 * SentencePiece never write them) */
static int pb_next(pb_buf *b, pb_field *f)
{
    if (b->p == b->end) return 0;
    uint64_t tag;
    if (!pb_varint(b, &tag) || tag >> 3 == 0 || tag >> 3 > UINT32_MAX) return -1;
    f->field = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    f->data = NULL;
    f->len = 0;
    size_t left;
    switch (f->wire) {
    case PB_VARINT: return pb_varint(b, &f->v) ? 1 : -1;
    case PB_I64:
    case PB_I32:
        f->len = f->wire == PB_I64 ? 8 : 4;
        if ((size_t)(b->end - b->p) < f->len) return -1;
        f->data = b->p;
        f->v = 0;
        for (size_t i = 0; i < f->len; i++) f->v |= (uint64_t)b->p[i] << (8 * i);
        b->p += f->len;
        return 1;
    case PB_LEN:
        if (!pb_varint(b, &f->v)) return -1;
        left = (size_t)(b->end - b->p);
        if (f->v > left) return -1;
        f->data = b->p;
        f->len = (size_t)f->v;
        b->p += f->len;
        return 1;
    default: return -1;
    }
}

/* ---- the model ---- */

typedef struct {
    const char *name;
    int model_type;
    const uint8_t *bos_piece, *eos_piece;
    size_t bos_len, eos_len;
    int have_name;
    const uint8_t *norm_name;
    size_t norm_name_len;
} sp_spec;

static XFFL_MUST_USE xffl_status bad(const text_sp *sp, const char *field, const char *what)
{
    return xffl_fail(XFFL_ERR_INVALID, "%s: %s: %s", sp->name, field, what);
}

static XFFL_MUST_USE xffl_status wire_is(const text_sp *sp, const pb_field *f, int wire, const char *field)
{
    if (f->wire == wire) return XFFL_OK;
    return xffl_fail(XFFL_ERR_INVALID, "%s: %s: protobuf wire type %d, expected %d", sp->name, field, f->wire, wire);
}

static XFFL_MUST_USE xffl_status malformed(const text_sp *sp, const char *msg, const pb_buf *b, const uint8_t *start)
{
    return xffl_fail(XFFL_ERR_INVALID, "%s: %s: truncated or malformed protobuf (at byte %zu of it)", sp->name, msg,
                     (size_t)(b->p - start));
}

static XFFL_MUST_USE xffl_status parse_piece(text_sp *sp, const uint8_t *data, size_t len, int i, size_t *pool_n)
{
    char field[64];
    pb_buf b = {data, data + len};
    pb_field f;
    int r;
    sp_piece *p = &sp->pieces[i];
    p->type = SP_NORMAL;
    while ((r = pb_next(&b, &f)) > 0) {
        if (f.field == 1) {
            snprintf(field, sizeof field, "pieces[%d].piece", i);
            XFFL_FORWARD(wire_is(sp, &f, PB_LEN, field));
            if (f.len == 0) return bad(sp, field, "empty");
            if (f.len > 0xffff) return bad(sp, field, "longer than 65535 bytes");
            memcpy(sp->pool + *pool_n, f.data, f.len);
            p->off = (uint32_t)*pool_n;
            p->len = (uint32_t)f.len;
            *pool_n += f.len;
        } else if (f.field == 2) {
            snprintf(field, sizeof field, "pieces[%d].score", i);
            XFFL_FORWARD(wire_is(sp, &f, PB_I32, field));
            uint32_t u = (uint32_t)f.v;
            memcpy(&p->score, &u, sizeof u);
            if (isnan(p->score)) return bad(sp, field, "not a number");
        } else if (f.field == 3) {
            snprintf(field, sizeof field, "pieces[%d].type", i);
            XFFL_FORWARD(wire_is(sp, &f, PB_VARINT, field));
            if (f.v < SP_NORMAL || f.v > SP_BYTE) return bad(sp, field, "unknown piece type");
            p->type = (uint8_t)f.v;
        }
    }
    snprintf(field, sizeof field, "pieces[%d]", i);
    if (r < 0) return malformed(sp, field, &b, data);
    if (p->len == 0) return bad(sp, field, "has no piece text");
    return XFFL_OK;
}

static int flag(uint64_t v) { return v != 0; }

static XFFL_MUST_USE xffl_status parse_trainer(text_sp *sp, sp_spec *s, const uint8_t *data, size_t len)
{
    pb_buf b = {data, data + len};
    pb_field f;
    int r;
    while ((r = pb_next(&b, &f)) > 0) {
        switch (f.field) {
        case 3:
            XFFL_FORWARD(wire_is(sp, &f, PB_VARINT, "trainer_spec.model_type"));
            s->model_type = (int)(f.v > 100 ? 100 : f.v);
            break;
        case 24:
            XFFL_FORWARD(wire_is(sp, &f, PB_VARINT, "trainer_spec.treat_whitespace_as_suffix"));
            sp->ws_suffix = flag(f.v);
            break;
        case 35:
            XFFL_FORWARD(wire_is(sp, &f, PB_VARINT, "trainer_spec.byte_fallback"));
            sp->byte_fallback = flag(f.v);
            break;
        case 44:
            XFFL_FORWARD(wire_is(sp, &f, PB_LEN, "trainer_spec.unk_surface"));
            free(sp->unk_surface);
            sp->unk_surface = malloc(f.len + 1);
            if (!sp->unk_surface) return xffl_fail(XFFL_ERR_NOMEM, "%s: unk_surface", sp->name);
            memcpy(sp->unk_surface, f.data, f.len);
            sp->unk_surface_len = f.len;
            break;
        case 46:
        case 47:
            XFFL_FORWARD(wire_is(sp, &f, PB_LEN, f.field == 46 ? "trainer_spec.bos_piece" : "trainer_spec.eos_piece"));
            if (f.field == 46) s->bos_piece = f.data, s->bos_len = f.len;
            else s->eos_piece = f.data, s->eos_len = f.len;
            break;
        default: break;
        }
    }
    if (r < 0) return malformed(sp, "trainer_spec", &b, data);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status parse_normalizer(text_sp *sp, sp_spec *s, const uint8_t *data, size_t len, int denorm)
{
    const char *what = denorm ? "denormalizer_spec" : "normalizer_spec";
    char field[64];
    pb_buf b = {data, data + len};
    pb_field f;
    int r;
    while ((r = pb_next(&b, &f)) > 0) {
        snprintf(field, sizeof field, "%s.%s", what,
                 f.field == 1   ? "name"
                 : f.field == 2 ? "precompiled_charsmap"
                 : f.field == 3 ? "add_dummy_prefix"
                 : f.field == 4 ? "remove_extra_whitespaces"
                                : "escape_whitespaces");
        if (f.field == 1 || f.field == 2) XFFL_FORWARD(wire_is(sp, &f, PB_LEN, field));
        if (f.field >= 3 && f.field <= 5) XFFL_FORWARD(wire_is(sp, &f, PB_VARINT, field));
        if (f.field == 2 && f.len > 0)
            return bad(sp, field, "character normalization rules are not supported (only the identity normalizer)");
        if (denorm) continue;
        if (f.field == 1) s->norm_name = f.data, s->norm_name_len = f.len, s->have_name = 1;
        if (f.field == 3) sp->add_dummy_prefix = flag(f.v);
        if (f.field == 4) sp->remove_extra_ws = flag(f.v);
        if (f.field == 5) sp->escape_ws = flag(f.v);
    }
    if (r < 0) return malformed(sp, what, &b, data);
    return XFFL_OK;
}

/* ---- piece maps ---- */

uint64_t sp_hash(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
    return h ^ (h >> 29);
}

int sp_lookup(const text_sp *sp, const sp_table *t, const char *s, size_t n)
{
    uint64_t h = sp_hash(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        int32_t id = t->id[i];
        if (id < 0) return -1;
        const sp_piece *p = &sp->pieces[id];
        if (t->tag[i] == tag && p->len == n && memcmp(sp->pool + p->off, s, n) == 0) return id;
    }
}

static XFFL_MUST_USE xffl_status table_init(sp_table *t, int n)
{
    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2) cap <<= 1;
    t->mask = cap - 1;
    t->id = malloc(cap * sizeof *t->id);
    t->tag = malloc(cap * sizeof *t->tag);
    if (!t->id || !t->tag) return xffl_fail(XFFL_ERR_NOMEM, "tokenizer piece table");
    memset(t->id, 0xff, cap * sizeof *t->id);
    return XFFL_OK;
}

/* 0 when already present */
static int table_add(text_sp *sp, sp_table *t, int id)
{
    const sp_piece *p = &sp->pieces[id];
    if (sp_lookup(sp, t, sp->pool + p->off, p->len) >= 0) return 0;
    uint64_t h = sp_hash(sp->pool + p->off, p->len);
    uint32_t i = (uint32_t)h & t->mask;
    while (t->id[i] >= 0) i = (i + 1) & t->mask;
    t->id[i] = id;
    t->tag[i] = (uint32_t)(h >> 32);
    return 1;
}

static int is_merge_map(int type) { return type == SP_NORMAL || type == SP_USER || type == SP_UNUSED; }

/* "<0xNN>" exactly as SentencePiece writes it (upper-case hex), else -1 */
static int piece_byte(const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *a = memchr(hex, s[3], 16), *b = memchr(hex, s[4], 16);
    if (!a || !b || !s[3] || !s[4]) return -1;
    return (int)((a - hex) * 16 + (b - hex));
}

static XFFL_MUST_USE xffl_status index_pieces(text_sp *sp, const sp_spec *s)
{
    char field[64];
    XFFL_FORWARD(table_init(&sp->normal, sp->n));
    XFFL_FORWARD(table_init(&sp->reserved, sp->n));
    for (int b = 0; b < 256; b++) sp->byte_id[b] = -1;
    int bytes = 0;
    sp->segment = 1;
    for (int i = 0; i < sp->n; i++) {
        const sp_piece *p = &sp->pieces[i];
        const char *t = sp->pool + p->off;
        snprintf(field, sizeof field, "pieces[%d].piece", i);
        if (!table_add(sp, is_merge_map(p->type) ? &sp->normal : &sp->reserved, i)) return bad(sp, field, "defined twice");
        if (p->type == SP_USER) {
            sp->has_user = 1;
            if ((int)p->len > sp->max_user_len) sp->max_user_len = (int)p->len;
        }
        if (p->type == SP_UNUSED) sp->has_unused = 1;
        if (p->type == SP_UNKNOWN) {
            if (sp->unk >= 0) return bad(sp, field, "a second unknown piece");
            sp->unk = i;
        }
        if (p->type == SP_BYTE) {
            if (!sp->byte_fallback) return bad(sp, field, "a byte piece, but trainer_spec.byte_fallback is false");
            int b = piece_byte(t, p->len);
            if (b < 0) return bad(sp, field, "a byte piece that is not <0xNN>");
            if (sp->byte_id[b] < 0) bytes++;
            sp->byte_id[b] = i;
        }
        /* a merge can only join a word to the U+2581 after it when some piece holds
         * U+2581 right after another character */
        if (is_merge_map(p->type))
            for (uint32_t k = 1; k + 3 <= p->len; k++)
                if (memcmp(t + k, "\xe2\x96\x81", 3) == 0 && !(k >= 3 && memcmp(t + k - 3, "\xe2\x96\x81", 3) == 0))
                    sp->segment = 0;
    }
    if (sp->unk < 0) return bad(sp, "pieces", "no unknown (<unk>) piece");
    if (sp->byte_fallback && bytes != 256) {
        snprintf(field, sizeof field, "%d of the 256 <0xNN> byte pieces it needs", bytes);
        return bad(sp, "trainer_spec.byte_fallback", field);
    }
    if (sp->has_unused || !sp->escape_ws || sp->ws_suffix) sp->segment = 0;
    int id = sp_lookup(sp, &sp->reserved, (const char *)s->bos_piece, s->bos_len);
    sp->bos = id >= 0 && sp->pieces[id].type == SP_CONTROL ? id : -1;
    id = sp_lookup(sp, &sp->reserved, (const char *)s->eos_piece, s->eos_len);
    sp->eos = id >= 0 && sp->pieces[id].type == SP_CONTROL ? id : -1;
    sp->rev_left = malloc((size_t)sp->n * sizeof *sp->rev_left);
    if (!sp->rev_left) return xffl_fail(XFFL_ERR_NOMEM, "%s: tokenizer tables", sp->name);
    for (int i = 0; i < sp->n; i++) sp->rev_left[i] = -1;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status parse_model(text_sp *sp, const uint8_t *data, size_t len)
{
    sp_spec s = {.model_type = 1, .bos_piece = (const uint8_t *)"<s>", .bos_len = 3,
                 .eos_piece = (const uint8_t *)"</s>", .eos_len = 4};
    sp->add_dummy_prefix = sp->remove_extra_ws = sp->escape_ws = 1;
    sp->unk = -1;
    /* first pass: count the pieces, so a vocabulary too large for uint16 shards is
     * refused before anything is allocated for it */
    pb_buf b = {data, data + len};
    pb_field f;
    int r;
    size_t pieces = 0, pool = 0;
    while ((r = pb_next(&b, &f)) > 0)
        if (f.field == 1) {
            XFFL_FORWARD(wire_is(sp, &f, PB_LEN, "pieces"));
            pieces++;
            pool += f.len;
        }
    if (r < 0) return malformed(sp, "ModelProto", &b, data);
    if (pieces == 0) return bad(sp, "pieces", "no pieces");
    if (pieces > TEXT_SP_MAX_VOCAB) {
        char what[96];
        snprintf(what, sizeof what, "%zu pieces, more than %d (shards store uint16 ids)", pieces, TEXT_SP_MAX_VOCAB);
        return bad(sp, "pieces", what);
    }
    sp->n = (int)pieces;
    sp->pieces = calloc(pieces, sizeof *sp->pieces);
    sp->pool = malloc(pool + 1);
    if (!sp->pieces || !sp->pool) return xffl_fail(XFFL_ERR_NOMEM, "%s: %zu pieces", sp->name, pieces);
    size_t pool_n = 0;
    int i = 0;
    b = (pb_buf){data, data + len};
    while (pb_next(&b, &f) > 0) {
        if (f.field == 1) XFFL_FORWARD(parse_piece(sp, f.data, f.len, i++, &pool_n));
        if (f.field == 2) {
            XFFL_FORWARD(wire_is(sp, &f, PB_LEN, "trainer_spec"));
            XFFL_FORWARD(parse_trainer(sp, &s, f.data, f.len));
        }
        if (f.field == 3 || f.field == 5) {
            XFFL_FORWARD(wire_is(sp, &f, PB_LEN, f.field == 3 ? "normalizer_spec" : "denormalizer_spec"));
            XFFL_FORWARD(parse_normalizer(sp, &s, f.data, f.len, f.field == 5));
        }
    }
    if (s.model_type != 2) {
        static const char *const types[] = {"", "UNIGRAM", "BPE", "WORD", "CHAR"};
        char what[96];
        snprintf(what, sizeof what, "%s, only BPE models are supported",
                 s.model_type >= 1 && s.model_type <= 4 ? types[s.model_type] : "unknown type");
        return bad(sp, "trainer_spec.model_type", what);
    }
    if (!s.have_name || s.norm_name_len != 8 || memcmp(s.norm_name, "identity", 8) != 0) {
        char what[160], shown[64];
        size_t k = 0;
        for (; k < s.norm_name_len && k + 1 < sizeof shown; k++)
            shown[k] = s.norm_name[k] >= 0x20 && s.norm_name[k] < 0x7f ? (char)s.norm_name[k] : '?';
        shown[k] = 0;
        snprintf(what, sizeof what, "'%s', only the identity normalizer (LLaMA's) is supported", shown);
        return bad(sp, "normalizer_spec.name", what);
    }
    if (!sp->unk_surface) {
        sp->unk_surface = strdup(" \xe2\x81\x87 ");
        if (!sp->unk_surface) return xffl_fail(XFFL_ERR_NOMEM, "%s", sp->name);
        sp->unk_surface_len = strlen(sp->unk_surface);
    }
    return index_pieces(sp, &s);
}

xffl_status text_sp_parse(const void *data, size_t len, const char *name, text_sp **out)
{
    *out = NULL;
    text_sp *sp = calloc(1, sizeof *sp);
    if (!sp) return xffl_fail(XFFL_ERR_NOMEM, "%s", name);
    snprintf(sp->name, sizeof sp->name, "%s", name);
    xffl_sha256_hex(data, len, sp->sha256);
    xffl_status st = parse_model(sp, data, len);
    if (st != XFFL_OK) {
        text_sp_free(sp);
        return st;
    }
    *out = sp;
    return XFFL_OK;
}

xffl_status text_sp_load(const char *path, text_sp **out)
{
    void *data = NULL;
    size_t len = 0;
    *out = NULL;
    XFFL_FORWARD(xffl_read_file(path, &data, &len));
    xffl_status st = text_sp_parse(data, len, path, out);
    free(data);
    return st;
}

void text_sp_free(text_sp *sp)
{
    if (!sp) return;
    free(sp->pieces);
    free(sp->pool);
    free(sp->normal.id);
    free(sp->normal.tag);
    free(sp->reserved.id);
    free(sp->reserved.tag);
    free(sp->unk_surface);
    free(sp->norm);
    free(sp->sym);
    free(sp->heap);
    free(sp->rev_left);
    free(sp->seg.v);
    free(sp->cache);
    free(sp->ckeys);
    free(sp->cids);
    free(sp);
}

int text_sp_vocab(const text_sp *sp) { return sp->n; }
int text_sp_bos(const text_sp *sp) { return sp->bos; }
int text_sp_eos(const text_sp *sp) { return sp->eos; }
const char *text_sp_sha256(const text_sp *sp) { return sp->sha256; }

const char *text_sp_piece(const text_sp *sp, int id, size_t *len)
{
    if (id < 0 || id >= sp->n) return NULL;
    *len = sp->pieces[id].len;
    return sp->pool + sp->pieces[id].off;
}
