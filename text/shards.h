/* The token shard format, llm.c's (little-endian): a header of TEXT_SHARD_HEADER_INTS
 * int32 {TEXT_SHARD_MAGIC, TEXT_SHARD_VERSION, token count, 0...} (1024 bytes), then
 * count uint16 tokens. The one writer and the one reader of it: `data pack` writes
 * through text_shard_write, the training and eval loader (text/loader.h) reads through
 * text_shard_read. */
#ifndef XFFL_TEXT_SHARDS_H
#define XFFL_TEXT_SHARDS_H

#include <stdint.h>
#include "common/digest.h"
#include "common/status.h"

#define TEXT_SHARD_MAGIC 20240520
#define TEXT_SHARD_VERSION 1
#define TEXT_SHARD_HEADER_INTS 256

/* Writes tokens as one shard at path (temporary name, fsync, rename). INVALID when n
 * exceeds INT32_MAX tokens. */
XFFL_MUST_USE xffl_status text_shard_write(const char *path, const uint16_t *tokens, int64_t n);
/* Reads a whole shard; checks magic, version, size and that every token < vocab
 * (INVALID naming the shard and the offset). Caller frees *tokens. With sha256_hex
 * non-NULL it also gets the SHA-256 of the file's bytes (the loader records it). */
XFFL_MUST_USE xffl_status text_shard_read(const char *path, int vocab, uint16_t **tokens, int64_t *n,
                                          char *sha256_hex);

/* The record `data pack --tokenizer` writes beside the shards it packs:
 * <dir>/<name>_tokenizer.sha256 for <dir>/<name>_train_NNNN.bin and _val_NNNN.bin, one
 * sha256sum line "<hex>  <model file name>". Byte-level shards have none. */
#define TEXT_TOKENIZER_RECORD "_tokenizer.sha256"
/* The tokenizer shard was packed with, from its record: *sha256_hex the model's digest
 * ("" byte-level: no record, or a shard not named <name>_train_* / <name>_val_*), model
 * its file name as recorded; record (may be NULL) gets the record's path. INVALID
 * naming a record that is not a sha256sum line. */
XFFL_MUST_USE xffl_status text_shard_tokenizer(const char *shard, char sha256_hex[XFFL_SHA256_HEX], char *model,
                                               size_t model_cap, char *record, size_t record_cap);

#endif
