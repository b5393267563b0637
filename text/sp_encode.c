/* SentencePiece BPE encoding and decoding (contract in sentencepiece.h).
 *
 * Speed: when no piece holds U+2581 right after another character (LLaMA's vocabulary:
 * only leading U+2581 and whitespace-only runs), no merge can join a word to the
 * U+2581 run that starts the next one, so each such word is merged on its own (the
 * leftmost-first tie rule keeps the same order inside a word) and its ids are cached:
 * most words of a text are then one hash lookup. Otherwise the whole text is one
 * sequence, as in SentencePiece. */
#include <stdlib.h>
#include <string.h>

#include "text/sp_internal.h"

#define SP_WS "\xe2\x96\x81" /* U+2581, SentencePiece's space */
#define SP_MAX_TEXT ((size_t)512 << 20)
#define CACHE_KEY_MAX 255
#define CACHE_SLOTS ((uint32_t)1 << 17)
#define CACHE_KEY_BYTES ((size_t)4 << 20)
#define CACHE_IDS ((size_t)1 << 20)

static XFFL_MUST_USE xffl_status grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    void **p = pp;
    if (need <= *cap) return XFFL_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return xffl_fail(XFFL_ERR_NOMEM, "tokenizer: %zu bytes", c * elem);
    *p = q;
    *cap = c;
    return XFFL_OK;
}

xffl_status text_ids_push(text_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) XFFL_FORWARD(grow(&ids->v, &ids->cap, ids->n + 1, sizeof *ids->v));
    ids->v[ids->n++] = id;
    return XFFL_OK;
}

/* Length of the valid UTF-8 character at s, 0 when s does not start one (the checks of
 * SentencePiece's DecodeUTF8: no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) {
        if (n < 2 || (s[1] & 0xc0) != 0x80) return 0;
        return (((c & 0x1f) << 6) | (s[1] & 0x3f)) >= 0x80 ? 2 : 0;
    }
    if ((c & 0xf0) == 0xe0) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        unsigned cp = ((c & 0x0f) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
        return cp >= 0x800 && !(cp >= 0xd800 && cp < 0xe000) ? 3 : 0;
    }
    if ((c & 0xf8) == 0xf0) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) return 0;
        unsigned cp = ((c & 0x07) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
        return cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
    }
    return 0;
}

/* SentencePiece's character length from the lead byte alone (text already normalized) */
static inline size_t char_len(unsigned char c, size_t left)
{
    size_t n = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    return n < left ? n : left;
}

/* the longest user-defined piece at s, 0 if none */
static size_t user_match(const text_sp *sp, const char *s, size_t n)
{
    for (size_t l = n < (size_t)sp->max_user_len ? n : (size_t)sp->max_user_len; l > 0; l--) {
        int id = sp_lookup(sp, &sp->normal, s, l);
        if (id >= 0 && sp->pieces[id].type == SP_USER) return l;
    }
    return 0;
}

/* The identity normalizer into sp->norm (see sentencepiece.h). */
static XFFL_MUST_USE xffl_status normalize(text_sp *sp, const char *in, size_t len, size_t *out_n)
{
    *out_n = 0;
    if (len == 0) return XFFL_OK;
    XFFL_FORWARD(grow(&sp->norm, &sp->norm_cap, 3 * len + 8, 1));
    char *o = sp->norm;
    const char *ws = sp->escape_ws ? SP_WS : " ";
    size_t wsn = sp->escape_ws ? 3 : 1, n = 0, i = 0;
    if (sp->remove_extra_ws)
        while (i < len && in[i] == ' ' && !(sp->has_user && user_match(sp, in + i, len - i) > 1)) i++;
    if (i == len) return XFFL_OK;
    if (!sp->ws_suffix && sp->add_dummy_prefix) memcpy(o + n, ws, wsn), n += wsn;
    int prev_space = sp->remove_extra_ws;
    while (i < len) {
        const char *u = in + i;
        size_t ulen, used;
        if (sp->has_user && (ulen = user_match(sp, u, len - i)) > 0) used = ulen;
        else if ((unsigned char)*u < 0x80) ulen = used = 1;
        else if ((ulen = used = utf8_len((const unsigned char *)u, len - i)) == 0) {
            u = "\xef\xbf\xbd"; /* U+FFFD for one byte that does not start valid UTF-8 */
            ulen = 3;
            used = 1;
        }
        while (prev_space && ulen && *u == ' ') u++, ulen--;
        if (ulen) {
            for (size_t k = 0; k < ulen; k++)
                if (u[k] == ' ') memcpy(o + n, ws, wsn), n += wsn;
                else o[n++] = u[k];
            prev_space = u[ulen - 1] == ' ';
        }
        i += used;
        if (!sp->remove_extra_ws) prev_space = 0;
    }
    if (sp->remove_extra_ws)
        while (n >= wsn && memcmp(o + n - wsn, ws, wsn) == 0) n -= wsn;
    if (sp->ws_suffix && sp->add_dummy_prefix) memcpy(o + n, ws, wsn), n += wsn;
    *out_n = n;
    return XFFL_OK;
}

/* ---- the merge queue: highest score first, then leftmost ---- */

static inline int before(const sp_pair *a, const sp_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static XFFL_MUST_USE xffl_status heap_push(text_sp *sp, sp_pair p)
{
    if (sp->heap_n == sp->heap_cap) XFFL_FORWARD(grow(&sp->heap, &sp->heap_cap, sp->heap_n + 1, sizeof p));
    size_t i = sp->heap_n++;
    while (i > 0 && before(&p, &sp->heap[(i - 1) / 2])) {
        sp->heap[i] = sp->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    sp->heap[i] = p;
    return XFFL_OK;
}

static sp_pair heap_pop(text_sp *sp)
{
    sp_pair top = sp->heap[0], last = sp->heap[--sp->heap_n];
    size_t i = 0, n = sp->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&sp->heap[c + 1], &sp->heap[c])) c++;
        if (!before(&sp->heap[c], &last)) break;
        sp->heap[i] = sp->heap[c];
        i = c;
    }
    if (n) sp->heap[i] = last;
    return top;
}

static XFFL_MUST_USE xffl_status add_pair(text_sp *sp, const char *w, int l, int r)
{
    if (l < 0 || r < 0 || sp->sym[l].freeze || sp->sym[r].freeze) return XFFL_OK;
    uint32_t size = sp->sym[l].len + sp->sym[r].len;
    int id = sp_lookup(sp, &sp->normal, w + sp->sym[l].off, size);
    if (id < 0) return XFFL_OK;
    /* an unused piece is merged through, then split back the way it was last made */
    if (sp->pieces[id].type == SP_UNUSED) sp->rev_left[id] = (int32_t)sp->sym[l].len;
    return heap_push(sp, (sp_pair){sp->pieces[id].score, l, r, size});
}

/* The ids of one final piece: the reserved map first (as SentencePiece's PieceToId),
 * unused pieces split back, unknowns to bytes under byte_fallback. */
static XFFL_MUST_USE xffl_status emit_piece(text_sp *sp, const char *s, size_t n, text_ids *out)
{
    int id = sp_lookup(sp, &sp->reserved, s, n);
    if (id < 0) id = sp_lookup(sp, &sp->normal, s, n);
    if (id < 0) id = sp->unk;
    int t = sp->pieces[id].type;
    if (t == SP_UNUSED && sp->rev_left[id] > 0 && (size_t)sp->rev_left[id] < n) {
        size_t l = (size_t)sp->rev_left[id];
        XFFL_FORWARD(emit_piece(sp, s, l, out));
        return emit_piece(sp, s + l, n - l, out);
    }
    if (t == SP_UNKNOWN && sp->byte_fallback) {
        for (size_t k = 0; k < n; k++) XFFL_FORWARD(text_ids_push(out, sp->byte_id[(unsigned char)s[k]]));
        return XFFL_OK;
    }
    return text_ids_push(out, id);
}

/* BPE over w[0..n), ids appended to out */
static XFFL_MUST_USE xffl_status bpe(text_sp *sp, const char *w, size_t n, text_ids *out)
{
    XFFL_FORWARD(grow(&sp->sym, &sp->sym_cap, n, sizeof *sp->sym));
    int m = 0;
    for (size_t at = 0; at < n; m++) {
        size_t len = sp->has_user ? user_match(sp, w + at, n - at) : 0;
        sp->sym[m] = (sp_sym){m - 1, m + 1, (uint32_t)at, 0, len > 0};
        if (!len) len = char_len((unsigned char)w[at], n - at);
        sp->sym[m].len = (uint32_t)len;
        at += len;
    }
    sp->sym[m - 1].next = -1;
    sp->heap_n = 0;
    for (int k = 1; k < m; k++) XFFL_FORWARD(add_pair(sp, w, k - 1, k));
    while (sp->heap_n) {
        sp_pair top = heap_pop(sp);
        sp_sym *l = &sp->sym[top.left], *r = &sp->sym[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue; /* stale */
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) sp->sym[r->next].prev = top.left;
        r->len = 0;
        XFFL_FORWARD(add_pair(sp, w, l->prev, top.left));
        XFFL_FORWARD(add_pair(sp, w, top.left, sp->sym[top.left].next));
    }
    for (int k = 0; k != -1; k = sp->sym[k].next) XFFL_FORWARD(emit_piece(sp, w + sp->sym[k].off, sp->sym[k].len, out));
    return XFFL_OK;
}

/* Appends ids to out; a run of unknowns is one <unk> (only without byte_fallback can an
 * unknown reach here), across words too. */
static XFFL_MUST_USE xffl_status emit(const text_sp *sp, const int32_t *v, size_t n, text_ids *out, int *prev_unk)
{
    if (out->n + n > out->cap) XFFL_FORWARD(grow(&out->v, &out->cap, out->n + n, sizeof *out->v));
    for (size_t i = 0; i < n; i++) {
        int unk = sp->pieces[v[i]].type == SP_UNKNOWN;
        if (!(unk && *prev_unk)) out->v[out->n++] = v[i];
        *prev_unk = unk;
    }
    return XFFL_OK;
}

/* ---- the word cache ---- */

static void cache_clear(text_sp *sp)
{
    memset(sp->cache, 0, (size_t)(sp->cache_mask + 1) * sizeof *sp->cache);
    sp->cache_n = 0;
    sp->ckeys_n = sp->cids_n = 0;
}

static const sp_centry *cache_find(const text_sp *sp, const char *w, size_t n, uint64_t h)
{
    if (!sp->cache) return NULL;
    for (uint32_t i = (uint32_t)h & sp->cache_mask;; i = (i + 1) & sp->cache_mask) {
        const sp_centry *e = &sp->cache[i];
        if (e->key_len == 0) return NULL;
        if (e->hash == h && e->key_len == n && memcmp(sp->ckeys + e->key_off, w, n) == 0) return e;
    }
}

static XFFL_MUST_USE xffl_status cache_put(text_sp *sp, const char *w, size_t n, uint64_t h, const int32_t *ids, size_t k)
{
    if (!sp->cache) {
        sp->cache = calloc(CACHE_SLOTS, sizeof *sp->cache);
        if (!sp->cache) return xffl_fail(XFFL_ERR_NOMEM, "tokenizer cache");
        sp->cache_mask = CACHE_SLOTS - 1;
    }
    if (k > 0xffff) return XFFL_OK;
    if (sp->cache_n * 2 >= CACHE_SLOTS || sp->ckeys_n + n > CACHE_KEY_BYTES || sp->cids_n + k > CACHE_IDS)
        cache_clear(sp);
    XFFL_FORWARD(grow(&sp->ckeys, &sp->ckeys_cap, sp->ckeys_n + n, 1));
    XFFL_FORWARD(grow(&sp->cids, &sp->cids_cap, sp->cids_n + k, sizeof *sp->cids));
    uint32_t i = (uint32_t)h & sp->cache_mask;
    while (sp->cache[i].key_len) i = (i + 1) & sp->cache_mask;
    sp->cache[i] = (sp_centry){h, (uint32_t)sp->ckeys_n, (uint32_t)sp->cids_n, (uint16_t)n, (uint16_t)k};
    memcpy(sp->ckeys + sp->ckeys_n, w, n);
    memcpy(sp->cids + sp->cids_n, ids, k * sizeof *ids);
    sp->ckeys_n += n;
    sp->cids_n += k;
    sp->cache_n++;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status encode_word(text_sp *sp, const char *w, size_t n, text_ids *out, int *prev_unk)
{
    uint64_t h = 0;
    if (n <= CACHE_KEY_MAX) {
        h = sp_hash(w, n);
        const sp_centry *e = cache_find(sp, w, n, h);
        if (e) return emit(sp, sp->cids + e->ids_off, e->ids_n, out, prev_unk);
    }
    sp->seg.n = 0;
    XFFL_FORWARD(bpe(sp, w, n, &sp->seg));
    if (n <= CACHE_KEY_MAX) XFFL_FORWARD(cache_put(sp, w, n, h, sp->seg.v, sp->seg.n));
    return emit(sp, sp->seg.v, sp->seg.n, out, prev_unk);
}

xffl_status text_sp_encode(text_sp *sp, const char *text, size_t len, text_ids *ids)
{
    if (len > SP_MAX_TEXT)
        return xffl_fail(XFFL_ERR_INVALID, "%s: a text of %zu bytes, more than the %zu one encode takes", sp->name, len,
                         SP_MAX_TEXT);
    size_t n;
    XFFL_FORWARD(normalize(sp, text, len, &n));
    if (n == 0) return XFFL_OK;
    const char *s = sp->norm;
    int prev_unk = 0;
    if (!sp->segment) {
        if (sp->has_unused)
            for (int i = 0; i < sp->n; i++) sp->rev_left[i] = -1;
        sp->seg.n = 0;
        XFFL_FORWARD(bpe(sp, s, n, &sp->seg));
        return emit(sp, sp->seg.v, sp->seg.n, ids, &prev_unk);
    }
    /* words: a run of U+2581 and what follows it up to the next run */
    size_t start = 0, i = 0;
    int prev_ws = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t clen = sp->has_user ? user_match(sp, s + i, n - i) : 0;
        int ws = 0;
        if (clen == 0) {
            clen = char_len(c, n - i);
            ws = c == 0xe2 && clen == 3 && memcmp(s + i, SP_WS, 3) == 0;
        }
        if (ws && !prev_ws && i > start) {
            XFFL_FORWARD(encode_word(sp, s + start, i - start, ids, &prev_unk));
            start = i;
        }
        prev_ws = ws;
        i += clen;
    }
    return encode_word(sp, s + start, n - start, ids, &prev_unk);
}

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'A' + 10; }

xffl_status text_sp_decode(const text_sp *sp, const int32_t *ids, size_t n, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= sp->n)
            return xffl_fail(XFFL_ERR_INVALID, "%s: token %zu: id %d outside the vocabulary of %d", sp->name, i,
                             (int)ids[i], sp->n);
        size_t l = sp->pieces[ids[i]].len;
        cap += l > sp->unk_surface_len ? l : sp->unk_surface_len;
    }
    char *o = malloc(cap);
    if (!o) return xffl_fail(XFFL_ERR_NOMEM, "%s: decoding %zu tokens", sp->name, n);
    size_t k = 0;
    int is_bos_ws = 1, bos_ws_seen = 0;
    for (size_t i = 0; i < n; i++) {
        const sp_piece *p = &sp->pieces[ids[i]];
        const char *t = sp->pool + p->off;
        size_t tn = p->len;
        if (p->type == SP_BYTE) {
            o[k++] = (char)(hexval(t[3]) * 16 + hexval(t[4]));
            continue;
        }
        /* only the first piece's U+2581 is the dummy prefix */
        if (bos_ws_seen || k > 0) is_bos_ws = 0;
        bos_ws_seen = 0;
        if (p->type == SP_CONTROL) continue;
        if (p->type == SP_UNKNOWN) {
            memcpy(o + k, sp->unk_surface, sp->unk_surface_len);
            k += sp->unk_surface_len;
            continue;
        }
        if (is_bos_ws && (sp->add_dummy_prefix || sp->remove_extra_ws) && tn >= 3 && memcmp(t, SP_WS, 3) == 0) {
            t += 3;
            tn -= 3;
            bos_ws_seen = !sp->remove_extra_ws;
        }
        for (size_t j = 0; j < tn; j++)
            if (j + 3 <= tn && memcmp(t + j, SP_WS, 3) == 0) o[k++] = ' ', j += 2;
            else o[k++] = t[j];
    }
    o[k] = 0;
    *out = o;
    *len = k;
    return XFFL_OK;
}
