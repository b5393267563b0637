/* The Hugging Face export job: a loaded version written as a transformers directory
 * (formats/hf.h), with the federation's tokenizer.model when its store holds one. */
#ifndef XFFL_PIPE_EXPORT_HF_H
#define XFFL_PIPE_EXPORT_HF_H

#include "common/status.h"
#include "formats/hf.h"
#include <stdint.h>
#include "libckpt/model.h"
#include "storage/store.h"

typedef struct {
    int64_t version; /* the version written */
    fmt_hf_export_result files;
    int tokenizer; /* 1: tokenizer.model copied from the store */
} pipe_export_hf_result;

/* Writes version (a number, or -1 for LATEST's) of s into dir (created) with o's dtype
 * and shard size (o->has_tokenizer is set from the store). Memory: the model as float32
 * (pipe_model_load) plus one tensor. USAGE for a dtype other than fp32/bf16. */
XFFL_MUST_USE xffl_status pipe_export_hf(store *s, int64_t version, const char *dir, const fmt_hf_export_options *o,
                                         pipe_export_hf_result *res);
/* "fp32" -> FMT_ST_F32, "bf16" -> FMT_ST_BF16; USAGE naming --dtype otherwise. */
XFFL_MUST_USE xffl_status pipe_export_hf_dtype(const char *name, fmt_st_dtype *d);

#endif
