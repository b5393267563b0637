/* Byte-level tokenizer and llm.c token shards.
 *
 * Tokenizer: token id = byte value (vocab 256); decoding is the identity. Any bytes
 * (UTF-8 included) round-trip.
 * Shard (llm.c format, little-endian): 256 x int32 header {20240520, 1, token count, 0...}
 * then count x uint16 tokens. Reading shards for training is pipelines/shards.h; this
 * is the writer (`xffl data pack`) and a whole-shard reader (eval, tests). */
#ifndef XFFL_KERN_DATA_H
#define XFFL_KERN_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

#define KERN_SHARD_MAGIC 20240520
#define KERN_SHARD_VERSION 1
#define KERN_SHARD_HEADER_INTS 256

/* out[i] = bytes[i]; returns len. out holds at least len ids. */
size_t kern_tok_encode(const char *bytes, size_t len, int32_t *out);
/* Writes the byte of each id (< 256) into out (n bytes), returns n; ids >= 256 become '?'. */
size_t kern_tok_decode(const int32_t *ids, size_t n, char *out);

/* Writes tokens as one shard at path (temporary name, fsync, rename). INVALID when n
 * exceeds INT32_MAX tokens. */
xffl_status kern_shard_write(const char *path, const uint16_t *tokens, int64_t n);
/* Reads a whole shard; checks magic, version, size and that every token < vocab
 * (INVALID naming the shard and the offset). Caller frees *tokens. */
xffl_status kern_shard_read(const char *path, int vocab, uint16_t **tokens, int64_t *n);

typedef struct {
    const char *out_dir;
    const char *name;       /* shard prefix, default "data" */
    double val_fraction;    /* the last fraction of every file goes to val (0..1) */
    int64_t shard_tokens;   /* tokens per shard before starting the next (default 100M) */
} kern_pack_options;

typedef struct {
    int64_t files, train_tokens, val_tokens;
    int train_shards, val_shards;
} kern_pack_result;

/* Tokenizes files (bytes) into <out>/<name>_train_NNNN.bin and <name>_val_NNNN.bin.
 * NOT_FOUND / IO naming the file that could not be read; USAGE for a bad option. */
xffl_status kern_pack(const char *const *files, int n_files, const kern_pack_options *o, kern_pack_result *r);

#endif
