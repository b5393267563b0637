/* The SentencePiece BPE tokenizer: LLaMA-1/2's `tokenizer.model` (a SentencePiece
 * ModelProto, read by our own bounds-checked protobuf reader), encoding to exactly the
 * ids SentencePiece's BPE model gives and decoding back to bytes.
 *
 * Accepted: trainer_spec.model_type BPE, normalizer_spec.name "identity" with no
 * precompiled rules (LLaMA's), at most TEXT_SP_MAX_VOCAB pieces (shards store uint16).
 * Anything else, and every malformed file, is XFFL_ERR_INVALID naming the file and the
 * field.
 *
 * Encoding, as SentencePiece does it: the normalizer (identity: no character mapping)
 * replaces each byte that does not start valid UTF-8 with U+FFFD, optionally strips
 * leading/trailing spaces and collapses runs (remove_extra_whitespaces), adds one
 * dummy prefix space (add_dummy_prefix) and turns ' ' into U+2581 (escape_whitespaces).
 * The text is then split into characters (user-defined pieces whole, never merged) and
 * the adjacent pair whose concatenation is the highest-scoring piece is merged until
 * none is left (a tie goes to the leftmost pair). A piece not in the vocabulary becomes
 * its <0xNN> byte pieces (byte_fallback) or one <unk> per run of unknowns. The
 * trainer's split options (split_digits, split_by_whitespace, ...) only shaped the
 * vocabulary; SentencePiece's encoder does not read them, and neither does this one.
 *
 * So encode -> decode gives back the input byte for byte for valid UTF-8 under a model
 * with remove_extra_whitespaces off (LLaMA's); bytes that are not UTF-8 come back as
 * U+FFFD, as SentencePiece's own ids say.
 *
 * A text_sp is not thread-safe: encoding reuses buffers and a cache of words in it. */
#ifndef XFFL_TEXT_SENTENCEPIECE_H
#define XFFL_TEXT_SENTENCEPIECE_H

#include <stddef.h>
#include <stdint.h>
#include "common/digest.h"
#include "common/status.h"

#define TEXT_SP_MAX_VOCAB 65536

typedef struct text_sp text_sp; /* opaque */

/* A growable id array: encode appends to it. Free v with free(). */
typedef struct {
    int32_t *v;
    size_t n, cap;
} text_ids;

XFFL_MUST_USE xffl_status text_ids_push(text_ids *ids, int32_t id);

/* Reads and parses a tokenizer.model; NOT_FOUND/IO for the file, INVALID naming the
 * file and field. Caller owns *out (text_sp_free accepts NULL). */
XFFL_MUST_USE xffl_status text_sp_load(const char *path, text_sp **out);
/* The same from bytes in memory; name is the file named in messages. */
XFFL_MUST_USE xffl_status text_sp_parse(const void *data, size_t len, const char *name, text_sp **out);
void text_sp_free(text_sp *sp);

int text_sp_vocab(const text_sp *sp);
/* Ids of the trainer's bos/eos pieces when they are control pieces, else -1. */
int text_sp_bos(const text_sp *sp);
int text_sp_eos(const text_sp *sp);
/* SHA-256 (hex) of the model file's bytes. */
const char *text_sp_sha256(const text_sp *sp);
/* Piece text of id (not NUL-terminated; *len its length); NULL when out of range. */
const char *text_sp_piece(const text_sp *sp, int id, size_t *len);

/* Encodes len bytes as one text (one dummy prefix) and appends the ids to *ids.
 * NOMEM, or INVALID for a text over 1 GiB. */
XFFL_MUST_USE xffl_status text_sp_encode(text_sp *sp, const char *text, size_t len, text_ids *ids);
/* Decodes ids to bytes: control pieces vanish, <unk> is the trainer's unk_surface,
 * byte pieces are their byte, U+2581 is ' ', and the first piece's leading one (the
 * dummy prefix) is dropped. *out is malloc'd and NUL-terminated; INVALID for an id out
 * of range. */
XFFL_MUST_USE xffl_status text_sp_decode(const text_sp *sp, const int32_t *ids, size_t n, char **out, size_t *len);

#endif
