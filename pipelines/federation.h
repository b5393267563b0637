/* federation.h5: every setting that changes a round's result, written once by
 * `xffl init` and read by train, aggregate and reproduce (docs/design.md "federation.h5": a second
 * aggregator or `reproduce` needs no flags to get the same bytes).
 *
 * Stored as root attributes of a small HDF5 file (format="xffl-federation",
 * format_version 1, or 2 when it names a tokenizer); `h5dump -A federation.h5` shows
 * them all. Its SHA-256 goes into every INDEX as `federation=<sha256>`. */
#ifndef XFFL_PIPE_FEDERATION_H
#define XFFL_PIPE_FEDERATION_H

#include <stdint.h>
#include "common/status.h"
#include "common/digest.h"
#include "common/sign.h"
#include "libckpt/codec.h"
#include "libckpt/delta.h"
#include "libckpt/model.h"
#include "pipelines/algo.h"
#include "pipelines/keys.h"
#include "storage/store.h"

#define PIPE_FEDERATION_FORMAT "xffl-federation"
/* The newest format_version read and written. Version 2 adds tokenizer_sha256: a
 * version-1 reader would ignore it and train on (and sample with) another vocabulary,
 * so it is a bump (docs/design.md "Format versions"). A byte-level federation, which
 * has no such attribute, is still written as version 1: the same bytes as before, and
 * older binaries keep reading it. */
/* 5: signed, with settings that change what a round computes which a 1-3 reader does not
 * know (pipe_federation_newer_settings: it would train or aggregate without them, silently
 * wrong; seeing 4 or 5 it refuses, naming the version); 4: the same, unsigned; 3: signed
 * (aggregator_key, facility_keys); 2: unsigned with a tokenizer; 1: unsigned byte-level.
 * Each is written only when it needs to be, so a federation without the newer settings is
 * byte for byte what older binaries wrote (docs/design.md "Format versions"). The version
 * says whether the keys must be there (3, 5), so stripping them cannot make a signed
 * federation look unsigned. */
#define PIPE_FEDERATION_FORMAT_VERSION 5
#define PIPE_FEDERATION_FORMAT_VERSION_SETTINGS 4
#define PIPE_FEDERATION_FORMAT_VERSION_SIGNED 3
#define PIPE_FEDERATION_FORMAT_VERSION_TOKENIZER 2
#define PIPE_FEDERATION_FORMAT_VERSION_BYTE_LEVEL 1
enum { PIPE_MAX_FACILITIES = 64, PIPE_FACILITY_MAX = 32, PIPE_PRESET_MAX = 32 };
/* Phases of a local-step schedule (init --local-steps-schedule), and the longest
 * federation.h5 attribute that spells one ("SxR,SxR,...": pipe_federation_format_steps). */
enum { PIPE_STEP_PHASES = 8, PIPE_STEP_SCHEDULE_MAX = 200 };

/* One phase of a local-step schedule: `rounds` rounds of `steps` local steps each. */
typedef struct {
    int steps, rounds;
} pipe_step_phase;

typedef struct {
    double lr;           /* peak learning rate (3e-4) */
    double min_lr;       /* cosine floor (3e-5) */
    int warmup;          /* linear warm-up steps (10) */
    int total_rounds;    /* rounds the schedule spans: warm-up once, one cosine over the
                          * local steps of rounds 1..total_rounds (total_rounds * H
                          * without a local-step schedule); 0 = restart it every round (0) */
    double weight_decay; /* AdamW decoupled decay (0.1) */
    double grad_clip;    /* global grad-norm clip, 0 = none (1.0) */
    double beta1, beta2; /* (0.9, 0.95) */
    double eps;          /* (1e-8) */
} pipe_inner_opt;

typedef struct {
    char preset[PIPE_PRESET_MAX];     /* "tiny", ..., "7b", or "custom" (PIPE_CUSTOM_MODEL) */
    ckpt_model_config model;          /* preset + --vocab, or a Hugging Face config */
    int n_facilities;                 /* ≥ 1 */
    char facilities[PIPE_MAX_FACILITIES][PIPE_FACILITY_MAX]; /* sorted bytewise, unique, [a-z0-9_-] */
    pipe_algo_config algo;            /* algorithm and its parameters (pipelines/algo.h) */
    int local_steps;                  /* H (100): every round's, or the rounds after
                                       * the step schedule's phases */
    int n_step_phases;                /* a local-step schedule (init --local-steps-schedule,
                                       * federation.h5's local_steps_schedule): from
                                       * round 1, step_phases[i].rounds rounds of
                                       * step_phases[i].steps local steps each, in order,
                                       * then local_steps; 0 (absent from older files):
                                       * local_steps every round */
    pipe_step_phase step_phases[PIPE_STEP_PHASES];
    int quorum;                       /* deltas needed per round (default: n_facilities) */
    uint64_t seed;                    /* init and data order */
    uint64_t part_size;               /* uncompressed bytes per version part (1 GiB) */
    int zstd_level;                   /* compression level of every part (CKPT_ZSTD_DEFAULT_LEVEL) */
    pipe_inner_opt inner;             /* facility optimizer */
    int batch;                        /* B sequences per step (4) */
    int seq_len;                      /* T tokens per sequence (min(256, max_seq_len)) */
    ckpt_codec encoding;              /* delta encoding (fp32; libckpt/codec.h) */
    int encoding_k;                   /* entries kept per block when the encoding takes
                                       * a k (topk: CKPT_CODEC_TOPK_K_DEFAULT), else 0 */
    int encoding_gaps;                /* an encoding with a k: indices stored as gaps
                                       * (libckpt/codec.h; 1 in every federation init
                                       * makes, 0 when federation.h5 predates it) */
    double encoding_decay;            /* a lossy encoding: the error-feedback residual a
                                       * round carries over is multiplied by this first
                                       * (SparseLoCo's beta; 1: kept whole, the default) */
    int encoding_flush;               /* an encoding with a k: the last N of total_rounds
                                       * keep every entry (k = block), which sends what
                                       * the error-feedback residual holds (0) */
    int keep_inner_state;             /* 1: AdamW state persists across rounds in --state DIR */
    int data_strided;                 /* 1: each shard read in the seed's strided order
                                       * (text_loader_stride; init --data-order strided);
                                       * 0: in file order (0; absent from older files) */
    char tokenizer_sha256[XFFL_SHA256_HEX]; /* the SentencePiece model's (stored as
                                             * PIPE_TOKENIZER_KEY); "" byte-level */
    /* Ed25519 public keys, hex (common/sign.h): the aggregator's, which signs every
     * INDEX and REJECTED, and each facility's (same order as facilities), which signs
     * its COMMITs. "" everywhere: an unsigned federation (init --insecure). */
    char aggregator_key[XFFL_SIGN_PUB_HEX];
    char facility_keys[PIPE_MAX_FACILITIES][XFFL_SIGN_PUB_HEX];
} pipe_federation;

/* 1 when the federation's manifests are signed (it records an aggregator key). */
int pipe_federation_signed(const pipe_federation *f);
/* 1 when f has a setting a reader of versions 1-3 would ignore (PIPE_FEDERATION_FORMAT_VERSION). */
int pipe_federation_newer_settings(const pipe_federation *f);
/* The k round `round` encodes with: encoding_k, or the whole block in the last
 * encoding_flush rounds of inner.total_rounds; 0 for an encoding without a k. */
int pipe_federation_round_k(const pipe_federation *f, int64_t round);
/* How round `round`'s deltas are encoded, into m: codec, block, k (round_k), index gaps
 * and residual decay; the writer, the re-run of reproduce and the aggregator's reader
 * all take them from here. The rest of m is the caller's. */
void pipe_federation_delta_codec(const pipe_federation *f, int64_t round, ckpt_delta_meta *m);

/* Defaults for everything (one facility "local", fedavg, H=100, quorum 1, seed 0) and
 * the model of preset with vocab (0 = preset default). USAGE naming an unknown preset. */
XFFL_MUST_USE xffl_status pipe_federation_default(const char *preset, int vocab, pipe_federation *f);
/* The same defaults around a model given whole (a Hugging Face config): name is the
 * preset it equals, or PIPE_CUSTOM_MODEL. The model's every field is an attribute of
 * federation.h5 already, so a custom model needs no other layout. INVALID from
 * ckpt_model_validate. */
#define PIPE_CUSTOM_MODEL "custom"
XFFL_MUST_USE xffl_status pipe_federation_default_model(const char *name, const ckpt_model_config *model,
                                                        pipe_federation *f);
/* Sets the algorithm and resets its parameters to that algorithm's defaults. */
void pipe_federation_set_algo(pipe_federation *f, pipe_algo_kind kind);
/* Parses "a,b,c" into the sorted facility list; USAGE naming a bad or repeated name. */
XFFL_MUST_USE xffl_status pipe_federation_set_facilities(pipe_federation *f, const char *csv);
/* Index of a facility in the sorted list, or -1. */
int pipe_federation_facility_index(const pipe_federation *f, const char *name);
/* Ranges and consistency (quorum ≤ facilities, seq_len ≤ max_seq_len, ...):
 * INVALID naming the setting. */
XFFL_MUST_USE xffl_status pipe_federation_validate(const pipe_federation *f);

/* The local steps of round `round` (>= 1): its step-schedule phase's, else local_steps. */
int pipe_federation_round_steps(const pipe_federation *f, int64_t round);
/* The local steps of rounds 1..round-1 together: where round `round`'s first step sits
 * on a schedule that spans rounds (pipe_inner_schedule). */
int64_t pipe_federation_steps_before(const pipe_federation *f, int64_t round);
/* Parses a local-step schedule "SxR[,SxR...]" (R rounds of S steps each, from round 1)
 * into f's phases; "" or "none" clears it. USAGE naming the spec. */
XFFL_MUST_USE xffl_status pipe_federation_parse_steps(const char *spec, pipe_federation *f);
/* f's local-step schedule as parse_steps reads it ("" when it has none). */
void pipe_federation_format_steps(const pipe_federation *f, char out[PIPE_STEP_SCHEDULE_MAX]);

/* Tokens one facility trains in round `round`: its local steps x batch x seq_len. The
 * fedavg weight of every delta and what tokens_seen grows by: a COMMIT's tokens= is a
 * claim and is never used for either. INVALID when it overflows int64. */
XFFL_MUST_USE xffl_status pipe_federation_round_tokens(const pipe_federation *f, int64_t round, int64_t *tokens);

/* Writes federation.h5 at a local path (deterministic bytes). */
XFFL_MUST_USE xffl_status pipe_federation_write_file(const pipe_federation *f, const char *path);
/* Reads and validates a local federation.h5; INVALID/CORRUPT naming path and attribute. */
XFFL_MUST_USE xffl_status pipe_federation_read_file(const char *path, pipe_federation *f);

/* Publishes federation.h5 to a store, once: EXISTS naming the key if the store
 * already has one. sha_hex (may be NULL) receives its SHA-256. */
XFFL_MUST_USE xffl_status pipe_federation_publish(store *s, const pipe_federation *f, char sha_hex[XFFL_SHA256_HEX]);
/* Downloads and reads federation.h5 of a store; sha_hex (may be NULL) receives its
 * SHA-256. If expect_sha is non-NULL it must match (CORRUPT naming the key).
 * NOT_FOUND naming the store when absent. */
XFFL_MUST_USE xffl_status pipe_federation_load(store *s, const char *expect_sha, pipe_federation *f,
                                 char sha_hex[XFFL_SHA256_HEX]);
/* federation.h5 as a version uses it: ref's INDEX (checked against ref->index_sha, or
 * its content name when that is "") records `federation=<sha256>`, and federation.h5
 * must have that digest before anything in it is read. A mismatch is CORRUPT naming
 * federation.h5 and the INDEX: a damaged or replaced file is never used, so no good
 * delta is ever judged against it (docs/design.md "Trust"). */
XFFL_MUST_USE xffl_status pipe_federation_load_for(store *s, const pipe_version_ref *ref, pipe_federation *f,
                                                   char sha_hex[XFFL_SHA256_HEX]);
/* The same for LATEST's version, which *latest (may be NULL) receives: what train and
 * aggregate start from. NOT_FOUND naming the store when it has no federation.h5 or
 * no LATEST. */
XFFL_MUST_USE xffl_status pipe_federation_load_latest(store *s, pipe_version_ref *latest, pipe_federation *f,
                                                      char sha_hex[XFFL_SHA256_HEX]);

#endif
