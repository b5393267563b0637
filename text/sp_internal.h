/* Private to text/sp_model.c (parsing) and text/sp_encode.c (encoding, decoding): the
 * layout of a loaded SentencePiece model. */
#ifndef XFFL_TEXT_SP_INTERNAL_H
#define XFFL_TEXT_SP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "text/sentencepiece.h"

/* ModelProto.SentencePiece.Type values */
enum { SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER = 4, SP_UNUSED = 5, SP_BYTE = 6 };

typedef struct {
    uint32_t off, len; /* in text_sp.pool */
    float score;
    uint8_t type;
} sp_piece;

/* piece text -> id, open addressing; SentencePiece keeps normal, user-defined and
 * unused pieces in one map (the ones BPE merges into) and the rest in another. */
typedef struct {
    int32_t *id; /* -1 empty */
    uint32_t *tag;
    uint32_t mask;
} sp_table;

typedef struct {
    int32_t prev, next;
    uint32_t off, len;
    uint8_t freeze;
} sp_sym;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size;
} sp_pair;

typedef struct {
    uint64_t hash;
    uint32_t key_off, ids_off;
    uint16_t key_len, ids_n;
} sp_centry;

struct text_sp {
    char name[256];
    char sha256[XFFL_SHA256_HEX];
    int n;
    sp_piece *pieces;
    char *pool;
    sp_table normal, reserved;
    int unk, bos, eos;
    int byte_id[256];
    int byte_fallback, add_dummy_prefix, remove_extra_ws, escape_ws, ws_suffix;
    char *unk_surface;
    size_t unk_surface_len;
    int has_user, has_unused, max_user_len;
    int segment; /* no piece holds U+2581 after another character: words encode alone */

    /* encoding scratch, reused across calls */
    char *norm;
    size_t norm_cap;
    sp_sym *sym;
    size_t sym_cap;
    sp_pair *heap;
    size_t heap_n, heap_cap;
    int32_t *rev_left; /* per unused piece: the left part's length it was last merged from */
    text_ids seg;      /* one segment's ids */
    /* word -> ids cache */
    sp_centry *cache;
    uint32_t cache_mask, cache_n;
    char *ckeys;
    size_t ckeys_n, ckeys_cap;
    int32_t *cids;
    size_t cids_n, cids_cap;
};

uint64_t sp_hash(const char *s, size_t n);
/* id of the piece s[0..n) in t, -1 if none */
int sp_lookup(const text_sp *sp, const sp_table *t, const char *s, size_t n);

#endif
