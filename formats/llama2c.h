/* llama2.c's legacy checkpoint (karpathy/llama2.c export.py legacy_export, read by run.c):
 * exported so its `run` generates from our models, imported so a model it holds (e.g.
 * Meta's LLaMA-2 through export.py) can start a federation (`init --from FILE.bin`):
 *   header: 7 x int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *                      vocab_size (negative: the classifier is not shared), max_seq_len}
 *   float32: tok_embeddings [V,D]; then each of attention_norm [D], wq [D,D],
 *            wk [KV*hd,D], wv [KV*hd,D], wo [D,D], ffn_norm [D], w1 [F,D], w2 [D,F],
 *            w3 [F,D] for all layers in turn (all layers' attention_norm, then all
 *            layers' wq, ...); norm [D]; freq_cis_real, freq_cis_imag [max_seq_len, hd/2]
 *            (cos, sin of t * 10000^(-2i/hd)); output [V,D] (ours is never tied).
 * Tokenizer file for the byte-level vocabulary: int32 max_token_length (1), then per
 * id 0..255: float score (0), int32 length (1), the byte itself.
 * run.c fixes RoPE theta 10000 and RMSNorm eps 1e-5; other configurations are refused. */
#ifndef XFFL_FORMATS_LLAMA2C_H
#define XFFL_FORMATS_LLAMA2C_H

#include "common/status.h"
#include "libckpt/model.h"

/* INVALID (saying which setting) when the model is not representable: rope_theta
 * != 10000 or norm_eps != 1e-5. */
XFFL_MUST_USE xffl_status fmt_llama2c_check(const ckpt_model_config *cfg);

/* Writes the checkpoint (params: table-order slab) to bin_path atomically. */
XFFL_MUST_USE xffl_status fmt_llama2c_export(const ckpt_param_table *t, const float *params, const char *bin_path);

/* Reads a llama2.c legacy checkpoint (this layout; a positive vocab_size means the
 * classifier is tok_embeddings, copied into output.weight; the RoPE tables are skipped)
 * into a new table (its config from the header; norm_eps 1e-5, rope_theta 10000, as
 * run.c fixes them) and a table-order slab. Caller owns *t (ckpt_param_table_free) and
 * *params (free). NOT_FOUND/IO naming the file; CORRUPT for a bad header, a size that
 * does not match it, a short read or a non-finite value. */
XFFL_MUST_USE xffl_status fmt_llama2c_import(const char *bin_path, ckpt_param_table **t, float **params);

/* Writes the byte-level tokenizer file; UNSUPPORTED unless vocab_size == 256. */
XFFL_MUST_USE xffl_status fmt_llama2c_export_tokenizer(const ckpt_model_config *cfg, const char *tok_path);

#endif
