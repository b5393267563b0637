/* `xffl data pack`: text files tokenized into train and val shards (text/shards.h):
 * byte-level (text/tokenizer.h) by default, or with a SentencePiece tokenizer.model
 * (text/sentencepiece.h), each file encoded as one text. */
#ifndef XFFL_TEXT_PACK_H
#define XFFL_TEXT_PACK_H

#include <stdint.h>
#include "common/digest.h"
#include "common/status.h"

typedef struct {
    const char *out_dir;
    const char *name;       /* shard prefix, default "data" */
    double val_fraction;    /* the last fraction of every file goes to val (0..1) */
    int64_t shard_tokens;   /* tokens per shard before starting the next (default 100M) */
    const char *tokenizer;  /* a tokenizer.model; NULL: byte-level */
    int bos, eos;           /* with a tokenizer: its bos/eos id around each file */
} text_pack_options;

typedef struct {
    int64_t files, train_tokens, val_tokens;
    int train_shards, val_shards;
    int vocab;                                  /* 256 byte-level, else the tokenizer's */
    char tokenizer_sha256[XFFL_SHA256_HEX];     /* "" byte-level */
} text_pack_result;

/* Tokenizes files into <out>/<name>_train_NNNN.bin and <name>_val_NNNN.bin. With a
 * tokenizer, each file is one text (one dummy prefix, bos/eos only when asked), its
 * last val_fraction of tokens goes to val, and <out>/<name>_tokenizer.sha256 records
 * the model (a sha256sum line: "<hex>  <model file name>"). NOT_FOUND / IO naming the
 * file that could not be read; USAGE for a bad option; INVALID for a bad model. */
XFFL_MUST_USE xffl_status text_pack(const char *const *files, int n_files, const text_pack_options *o,
                                    text_pack_result *r);

#endif
