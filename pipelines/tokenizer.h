/* The federation's tokenizer in its store: the SentencePiece model `init --tokenizer`
 * puts under PIPE_TOKENIZER_KEY (write-once, like federation.h5), whose SHA-256
 * federation.h5 records as tokenizer_sha256 (docs/design.md "Store layout"). A
 * federation without one is byte-level (text/tokenizer.h). Every reader takes the
 * model from the store only through pipe_tokenizer_fetch, so it is the one
 * federation.h5 names or nothing. */
#ifndef XFFL_PIPE_TOKENIZER_H
#define XFFL_PIPE_TOKENIZER_H

#include "common/digest.h"
#include "common/status.h"
#include "pipelines/federation.h"
#include "storage/store.h"
#include "text/sentencepiece.h"

/* Reads the tokenizer.model at path (text_sp_load: INVALID naming the file and field
 * for one that is not SentencePiece BPE) into f: its digest, and, unless vocab_fixed,
 * its vocabulary size as the model's; with vocab_fixed (--vocab or --from set it) the
 * model's vocabulary must be the tokenizer's (INVALID naming both). */
XFFL_MUST_USE xffl_status pipe_tokenizer_set(pipe_federation *f, const char *path, int vocab_fixed);
/* Puts the model file at path under PIPE_TOKENIZER_KEY. Its bytes must have sha256
 * (the digest of the model init parsed: INVALID naming path when the file changed
 * since). init puts it right after federation.h5, whose write-once check guards both;
 * a store that holds the same bytes there already is left as it is, other bytes are
 * EXISTS naming the key. */
XFFL_MUST_USE xffl_status pipe_tokenizer_publish(store *s, const char *path, const char *sha256);
/* The model federation.h5 names by sha256, fetched, checked (CORRUPT naming the key
 * when it is missing or its bytes have another digest) and parsed. Caller owns *out
 * (text_sp_free). */
XFFL_MUST_USE xffl_status pipe_tokenizer_fetch(store *s, const char *sha256, text_sp **out);
/* What verify --all checks: with sha256 non-empty, pipe_tokenizer_fetch succeeds; with
 * "" (byte-level), the store holds no PIPE_TOKENIZER_KEY (INVALID: an export would
 * ship a tokenizer the federation was not made with). */
XFFL_MUST_USE xffl_status pipe_tokenizer_verify(store *s, const char *sha256);

#endif
