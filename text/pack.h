/* `xffl data pack`: text files tokenized (byte-level, text/tokenizer.h) into train and
 * val shards (text/shards.h). */
#ifndef XFFL_TEXT_PACK_H
#define XFFL_TEXT_PACK_H

#include <stdint.h>
#include "common/status.h"

typedef struct {
    const char *out_dir;
    const char *name;       /* shard prefix, default "data" */
    double val_fraction;    /* the last fraction of every file goes to val (0..1) */
    int64_t shard_tokens;   /* tokens per shard before starting the next (default 100M) */
} text_pack_options;

typedef struct {
    int64_t files, train_tokens, val_tokens;
    int train_shards, val_shards;
} text_pack_result;

/* Tokenizes files (bytes) into <out>/<name>_train_NNNN.bin and <name>_val_NNNN.bin.
 * NOT_FOUND / IO naming the file that could not be read; USAGE for a bad option. */
XFFL_MUST_USE xffl_status text_pack(const char *const *files, int n_files, const text_pack_options *o,
                                    text_pack_result *r);

#endif
