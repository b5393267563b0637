/* The init job: a federation from settings (federation.h5, version 0 and LATEST in an
 * empty store), or with dry_run only its plan. cmd_init parses the flags into a
 * pipe_init_settings and prints the pipe_init_result. Same settings, same bytes. */
#ifndef XFFL_PIPE_INIT_H
#define XFFL_PIPE_INIT_H

#include <stdint.h>
#include "common/digest.h"
#include "common/status.h"
#include "libckpt/model.h"
#include "pipelines/federation.h"
#include "pipelines/trust.h"
#include "pipelines/version.h"
#include "storage/store.h"

/* The settings that are numbers with a default that depends on --model or --algo:
 * indexes into pipe_init_settings.dbl, applied when dbl_set says they were given. */
enum {
    PIPE_INIT_OUTER_LR,
    PIPE_INIT_MOMENTUM,
    PIPE_INIT_OUTER_WARMUP,
    PIPE_INIT_ADAM_BETA1,
    PIPE_INIT_ADAM_BETA2,
    PIPE_INIT_ADAM_EPS,
    PIPE_INIT_TRIM,
    PIPE_INIT_CLIP_NORM,
    PIPE_INIT_DELTA_CLIP,
    PIPE_INIT_DELTA_FILTER,
    PIPE_INIT_ENCODING_DECAY,
    PIPE_INIT_LR,
    PIPE_INIT_MIN_LR,
    PIPE_INIT_WEIGHT_DECAY,
    PIPE_INIT_GRAD_CLIP,
    PIPE_INIT_BETA1,
    PIPE_INIT_BETA2,
    PIPE_INIT_NDBL
};

/* Each of those settings once: its flag, the pipe_federation field it sets, and its
 * help line (defaults included), in the order `xffl init --help` lists them. */
typedef struct {
    const char *flag;    /* "--outer-lr" */
    const char *section; /* "algorithm" or "facility training" */
    const char *help;
    size_t field;        /* offsetof(pipe_federation, ...): a double */
} pipe_init_number;
extern const pipe_init_number pipe_init_numbers[PIPE_INIT_NDBL];

/* Zero/NULL means the default for every field unless noted. */
typedef struct {
    const char *preset;     /* ckpt_model_preset_names(); NULL: from's Hugging Face config */
    int vocab;              /* 0: the preset's */
    const char *facilities; /* "a,b" ("local") */
    const char *algo;       /* pipe_algo_parse name (fedavg) */
    const char *encoding;   /* ckpt_codec_parse name (fp32) */
    int local_steps, quorum, batch, seq_len, level; /* quorum 0: all facilities */
    int warmup, total_rounds;                       /* -1: default */
    int encoding_flush;                             /* last rounds at k = block (0) */
    int64_t seed;
    uint64_t part_size;
    int unweighted, no_nesterov, keep_inner_state;
    const char *data_order; /* "files" (NULL: the default) or "strided" */
    const char *local_steps_schedule; /* "SxR,..." (pipe_federation_parse_steps); NULL: none */
    double dbl[PIPE_INIT_NDBL];
    int dbl_set[PIPE_INIT_NDBL];
    int threads;  /* compression threads (0: all cores) */
    int dry_run;  /* plan only: no store, nothing written */
    const char *from;         /* version 0's weights: a store URL, a llama2.c file or a
                               * Hugging Face directory (formats/hf.h) */
    const char *from_version; /* which version of the --from store ("latest") */
    const store_options *from_options; /* how to reach the --from store */
    const char *tokenizer;    /* a SentencePiece tokenizer.model (NULL: byte-level): its
                               * vocabulary is the model's (taken from it unless --vocab
                               * or --from fixes one; INVALID when they differ, or for a
                               * model that is not SentencePiece BPE), its SHA-256 goes
                               * into federation.h5 and the file into the store
                               * (pipelines/tokenizer.h) */
    int insecure;             /* 1: an unsigned federation (no keys; docs/design.md "Trust") */
    const pipe_trust_options *trust; /* key directory, aggregator's --key (NULL: defaults) */
    int n_facility_keys;      /* --facility-key NAME=PUBFILE, repeated */
    const char *const *facility_keys;
    const char *aggregator_key; /* --aggregator-key PUBFILE (NULL: the key directory's) */
} pipe_init_settings;

typedef struct pipe_init_result {
    pipe_federation f;     /* as published (or planned) */
    ckpt_param_table *t;   /* its parameter table */
    pipe_part_plan plan;   /* version 0's parts */
    int n_groups;          /* "model" and the algorithm's outer state groups */
    const char *groups[PIPE_MAX_GROUPS];
    int bad_settings;      /* 1: the settings failed pipe_federation_validate */
    char federation_sha256[XFFL_SHA256_HEX];
    pipe_version_result version; /* version 0 as published (not for dry_run) */
    double seconds;              /* publishing federation.h5 and version 0 */
} pipe_init_result;

/* Builds the federation from set, plans version 0 and, unless set->dry_run, reads
 * --from, checks its model is the one set describes (INVALID naming both), and
 * publishes federation.h5 (EXISTS when s has one), version 0 and LATEST to s (NULL for
 * a dry run). A Hugging Face --from is checked whole (config.json against every
 * safetensors header, INVALID naming file and field) before anything is written, gives
 * the model when set->preset is NULL, and is streamed one tensor at a time.
 * USAGE for bad settings; res->bad_settings marks a failed validation.
 * res is filled as far as the job got: free it with pipe_init_result_free either way. */
XFFL_MUST_USE xffl_status pipe_init(store *s, const pipe_init_settings *set, pipe_init_result *res);
void pipe_init_result_free(pipe_init_result *res);

#endif
