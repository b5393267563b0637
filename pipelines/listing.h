/* What a store holds, grouped the way the layout is (pipelines/keys.h): federation.h5,
 * tokenizer.model, LATEST, versions/vNNNNNN/, rounds/rNNNNNN/<facility>/a<N>/, the rest, and partial
 * writes left by killed writers. `xffl ls` prints it. */
#ifndef XFFL_PIPE_LISTING_H
#define XFFL_PIPE_LISTING_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"
#include "pipelines/keys.h"
#include "storage/store.h"

/* The objects of one folder: a version's or an attempt's. */
typedef struct {
    int64_t number;                       /* the version, or the attempt's round */
    char facility[PIPE_KEY_FACILITY_MAX]; /* attempt */
    int attempt;                          /* attempt: N */
    size_t objects;
    uint64_t bytes;
    char index[128];                      /* version: its INDEX's name ("" when none) */
    uint64_t update_bytes;                /* version: bytes of its updates (UPDATE-* and update-*.h5),
                                           * within objects/bytes */
    int is_latest;                        /* version: LATEST names its number */
    int commit, rejected;                 /* attempt: holds a COMMIT / a REJECTED */
} pipe_listing_folder;

typedef struct {
    store_listing all;              /* every key (sorted) */
    size_t n_partial;               /* partial writes */
    uint64_t total_bytes;
    int have_federation;
    uint64_t federation_bytes;
    int have_tokenizer;             /* PIPE_TOKENIZER_KEY (init --tokenizer) */
    uint64_t tokenizer_bytes;
    char *latest;                   /* LATEST's first line, or NULL when there is none */
    pipe_listing_folder *versions;  /* in key order */
    size_t n_versions;
    pipe_listing_folder *attempts;  /* in key order */
    size_t n_attempts;
    size_t n_other;                 /* keys outside those folders */
    uint64_t other_bytes;
} pipe_store_listing;

/* Lists the whole store once (and reads LATEST). Free with pipe_store_listing_free. */
XFFL_MUST_USE xffl_status pipe_store_listing_load(store *s, pipe_store_listing *out);
void pipe_store_listing_free(pipe_store_listing *l);

#endif
