/* Hugging Face LLaMA checkpoints (transformers' LlamaForCausalLM directory layout):
 *   config.json                       model_type "llama"; hidden_size, num_hidden_layers,
 *                                     num_attention_heads, num_key_value_heads,
 *                                     intermediate_size, vocab_size, rope_theta,
 *                                     rms_norm_eps, max_position_embeddings,
 *                                     tie_word_embeddings
 *   model.safetensors                 or model-0000i-of-0000n.safetensors with
 *   model.safetensors.index.json      {"metadata": {...}, "weight_map": {tensor: file}}
 *   tokenizer.model, tokenizer_config.json (optional)
 * Tensor names map one to one onto ours (hf_names in hf.c). The q and k projections
 * differ in row order: Meta's checkpoints (and ours) rotate interleaved pairs (2i, 2i+1)
 * of each head, Hugging Face's rotate_half rotates (i, i + head/2); transformers'
 * convert_llama_weights_to_hf.py permutes rows per head as (h, i, 2) -> (h, 2, i),
 * k with num_key_value_heads. Import inverts that; export applies it. */
#ifndef XFFL_FORMATS_HF_H
#define XFFL_FORMATS_HF_H

#include <stddef.h>
#include <stdint.h>
#include "common/digest.h"
#include "common/status.h"
#include "formats/safetensors.h"
#include "libckpt/model.h"

#define FMT_HF_CONFIG "config.json"
#define FMT_HF_TOKENIZER "tokenizer.model"

/* 1 when dir is a directory holding config.json. */
int fmt_hf_is_dir(const char *dir);

/* Parses config.json text into cfg (max_seq_len from max_position_embeddings);
 * *tied receives tie_word_embeddings. Absent optional fields take transformers'
 * LlamaConfig defaults (num_key_value_heads = num_attention_heads, rope_theta 10000,
 * rms_norm_eps 1e-6, tie_word_embeddings false). INVALID naming what and the field for
 * a missing or mistyped field, a model_type other than "llama", rope_scaling,
 * attention/mlp biases, an activation other than silu, or a config ckpt_model_validate
 * refuses. Fuzzed by tests/fuzz/fuzz_hf_config.c. */
XFFL_MUST_USE xffl_status fmt_hf_config_parse(const char *text, size_t len, const char *what, ckpt_model_config *cfg,
                                              int *tied);

/* An open checkpoint directory: config read, every safetensors header checked against
 * it (each tensor present once with its shape, none unknown), nothing loaded. */
typedef struct fmt_hf_reader fmt_hf_reader;

/* NOT_FOUND naming the file when config.json or the weights are absent; INVALID naming
 * file and field or tensor when they disagree. Caller owns *out (fmt_hf_close). */
XFFL_MUST_USE xffl_status fmt_hf_open(const char *dir, fmt_hf_reader **out);
void fmt_hf_close(fmt_hf_reader *r); /* accepts NULL */
/* The parameter table of the checkpoint's config (owned by r). */
const ckpt_param_table *fmt_hf_table(const fmt_hf_reader *r);
/* Tensor index of fmt_hf_table(r), in our layout, into out (numel floats). Memory: out
 * only. INVALID naming file and tensor for a non-finite value. */
XFFL_MUST_USE xffl_status fmt_hf_read(const fmt_hf_reader *r, int index, float *out);
/* Digest naming the checkpoint: SHA-256 of the `sha256sum` lines ("<hex>  <file>\n")
 * of config.json, the index when there is one and every weight file, in name order. */
XFFL_MUST_USE xffl_status fmt_hf_digest(const fmt_hf_reader *r, char hex[XFFL_SHA256_HEX]);

typedef struct {
    fmt_st_dtype dtype;     /* FMT_ST_F32 or FMT_ST_BF16 */
    uint64_t shard_bytes;   /* 0: FMT_HF_SHARD_BYTES; above it, shards and an index */
    int has_tokenizer;      /* dir/tokenizer.model is there: tokenizer_config names it */
} fmt_hf_export_options;
#define FMT_HF_SHARD_BYTES ((uint64_t)5000000000) /* transformers' save_pretrained default */

typedef struct {
    int shards;       /* weight files written */
    uint64_t bytes;   /* tensor bytes in them */
} fmt_hf_export_result;

/* Writes config.json, the weights (model.safetensors, or shards with
 * model.safetensors.index.json), tokenizer_config.json into dir (created). */
XFFL_MUST_USE xffl_status fmt_hf_export(const ckpt_param_table *t, const float *params, const char *dir,
                                        const fmt_hf_export_options *o, fmt_hf_export_result *res);

#endif
