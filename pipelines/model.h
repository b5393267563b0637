/* One version's model at work: loaded from the store with every digest verified, then
 * evaluated on token shards, sampled from, or exported (xffl eval, sample, export).
 * version is a number or -1 for the one LATEST names, as pipe_version_resolve takes it. */
#ifndef XFFL_PIPE_MODEL_H
#define XFFL_PIPE_MODEL_H

#include <stdint.h>
#include "common/status.h"
#include "libckpt/model.h"
#include "pipelines/round.h"
#include "pipelines/version.h"
#include "storage/store.h"

/* The model config from federation.h5 and the model tensors through pipe_version_fetch.
 * Caller owns *t (ckpt_param_table_free) and *params (free); *ref (may be NULL) receives
 * the version loaded: number, INDEX key and INDEX sha. */
XFFL_MUST_USE xffl_status pipe_model_load(store *s, int64_t version, ckpt_param_table **t, float **params,
                                          pipe_version_ref *ref);

typedef struct {
    const char *data_glob; /* token shards, read in order from their start */
    const char *backend;   /* cpu, cuda, auto or NULL (auto) */
    int threads;           /* 0: all cores */
    long batch;            /* sequences per batch */
    long seq_len;          /* 0: min(256, the model's max) */
    long batches;          /* 0: every sequence once */
} pipe_eval_options;

typedef struct {
    int64_t version;
    double loss;              /* mean cross-entropy, nats per token */
    int64_t tokens;           /* batches x batch x seq_len */
    long batch, seq_len, batches; /* as run */
} pipe_eval_result;

/* Mean loss of version on o->data_glob. USAGE when seq_len exceeds the model's. */
XFFL_MUST_USE xffl_status pipe_eval(store *s, int64_t version, const pipe_eval_options *o, pipe_eval_result *r);

typedef struct {
    const char *prompt;  /* at least one byte */
    double temperature;  /* 0: greedy */
    long tokens;         /* tokens to generate (bytes with the byte-level tokenizer) */
    long seed;
    const char *backend; /* cpu, cuda, auto or NULL (auto) */
    int threads;         /* 0: all cores */
} pipe_sample_options;

/* o->tokens tokens continuing o->prompt, as text in *text (malloc'd, caller frees;
 * *len bytes, NUL after them): with the federation's tokenizer when federation.h5
 * names one (pipelines/tokenizer.h: the prompt encoded as one text, the continuation
 * decoded in its context), else byte-level (UNSUPPORTED for another vocabulary).
 * --verbose logs the prompt's and the sampled ids. *version_out receives the version
 * used. */
XFFL_MUST_USE xffl_status pipe_sample(store *s, int64_t version, const pipe_sample_options *o, char **text,
                                      size_t *len, int64_t *version_out);

typedef struct {
    int64_t version;
    char tokenizer[4200]; /* the tokenizer file written beside out, "" when none */
} pipe_export_result;

/* Version as a llama2.c checkpoint at out and, for the byte-level vocabulary, its
 * tokenizer at out's name with .bin replaced by (or followed by) .tokenizer.bin.
 * INVALID for a model llama2.c cannot represent. log (may be NULL) says when no
 * tokenizer is written. */
XFFL_MUST_USE xffl_status pipe_export_llama2c(store *s, int64_t version, const char *out, pipe_export_result *r);

#endif
