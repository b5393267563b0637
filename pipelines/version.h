/* Versions in a store: publish (parts, INDEX, then LATEST) and fetch (LATEST or a
 * number, every digest verified). docs/design.md "Store layout" and "HDF5 files".
 *
 *   versions/v000004/part-000-<12hex>.h5   /model/<tensor> and /<group>/<tensor> for
 *                                          each outer-state group, tensors in table
 *                                          order, ≤ part_size uncompressed bytes per part
 *                                          (a bigger tensor gets a part of its own)
 *   versions/v000004/INDEX-<12hex>         manifest: format=xffl-index, version, parent,
 *                                          round, algorithm, federation, tokens_seen,
 *                                          groups, then contributor/object/tensor lines
 *                                          (tensor names "<group>/<tensor>")
 *   LATEST                                 "v000004 INDEX-<12hex> <sha256 of INDEX>\n"
 *
 * Part root attributes: format="xffl-checkpoint", format_version, version, parent,
 * round, algorithm, contributors (comma list), tokens_seen, part, parts, first_tensor,
 * n_tensors (its slice of the table), the model config (dim, n_layers, n_heads,
 * n_kv_heads, hidden_dim, vocab_size, max_seq_len, norm_eps, rope_theta). */
#ifndef XFFL_PIPE_VERSION_H
#define XFFL_PIPE_VERSION_H

#include <stdint.h>
#include "common/status.h"
#include "common/digest.h"
#include "libckpt/h5part.h"
#include "libckpt/manifest.h"
#include "libckpt/model.h"
#include "pipelines/keys.h"
#include "storage/store.h"

#define PIPE_CKPT_FORMAT "xffl-checkpoint"
#define PIPE_CKPT_FORMAT_VERSION 1
enum { PIPE_MAX_GROUPS = 4 };

/* version < 0: LATEST. Otherwise lists versions/v%06d/ for its INDEX: exactly one, or
 * the one LATEST names when several; NOT_FOUND naming the version when none, INVALID
 * when several and LATEST names none of them. The INDEX sha comes from LATEST when it
 * names that INDEX, else from the INDEX key's own content name (checked on fetch). */
XFFL_MUST_USE xffl_status pipe_version_resolve(store *s, int64_t version, pipe_version_ref *ref);

/* Part plan: tensors in table order, each with its state in every group, cut so a part
 * holds ≤ part_size uncompressed bytes (a tensor bigger than that alone). */
typedef struct {
    int n_parts;
    int *first;          /* n_parts: first tensor index */
    int *count;          /* n_parts: tensors in the part */
    uint64_t *raw_bytes; /* n_parts: uncompressed bytes (all groups) */
} pipe_part_plan;
XFFL_MUST_USE xffl_status pipe_version_plan(const ckpt_param_table *t, int n_groups, uint64_t part_size, pipe_part_plan *plan);
void pipe_part_plan_free(pipe_part_plan *plan);

/* Streaming tensor source: fill out (t->params[index].numel floats) with tensor
 * `index` of group `group` (0 = "model", then the outer-state groups). Called from
 * the publishing thread in part order, each (group, index) once. */
typedef xffl_status (*pipe_tensor_fn)(void *ctx, int group, int index, float *out);

typedef struct {
    int64_t version;                 /* number to publish */
    int64_t parent;                  /* -1 for version 0 */
    int64_t round;                   /* 0 for init; version == round after aggregation */
    const char *algorithm;           /* "fedavg", ... */
    const char *federation_sha256;   /* hex of federation.h5 */
    int64_t tokens_seen;             /* cumulative */
    int n_contributors;              /* sorted by facility */
    const char *const *contributor_facility;
    const char *const *contributor_commit; /* COMMIT keys */
    int n_groups;                    /* 1 + outer state groups */
    const char *const *groups;       /* groups[0] = "model"; then e.g. "outer" or "outer/m","outer/v" */
    uint64_t part_size;              /* 0 = 1 GiB */
    int level;                       /* zstd level; 0 = default */
    int threads;                     /* 0 = OpenMP default */
    int n_extra;                     /* extra INDEX header lines (e.g. aggregation stats) */
    const char *const *extra_keys;
    const char *const *extra_values;
    const struct xffl_signer *signer; /* the aggregator's key: signs the INDEX (NULL: unsigned) */
    /* When both are set, an update from update_from (version − 1) is written after the
     * INDEX and before LATEST moves (pipelines/update.h); a failure there is a
     * warning: facilities then download the version in full. */
    const pipe_version_ref *update_from;
    const float *update_base;         /* update_from's model, t->total floats */
} pipe_version_spec;

typedef struct {
    pipe_version_ref ref;     /* what was published */
    int n_parts;
    uint64_t raw_bytes;       /* uncompressed tensor bytes */
    uint64_t stored_bytes;    /* bytes of the part objects */
    int latest_written;       /* 0 when LATEST already named this version or a later one */
    char update_key[PIPE_KEY_MAX]; /* the UPDATE written beside it ("" when none) */
    uint64_t update_bytes;    /* bytes of its parts */
} pipe_version_result;

/* Writes each part to a temporary file, uploads parts (store_put_many, a few at a
 * time so local disk holds at most `jobs` parts), then the INDEX, then LATEST
 * (re-read just before; never moved backwards). Memory: one tensor at a time
 * (plus the chunk buffers). res may be NULL. */
XFFL_MUST_USE xffl_status pipe_version_publish(store *s, const ckpt_param_table *t, const pipe_version_spec *spec,
                                 pipe_tensor_fn fn, void *ctx, pipe_version_result *res);

typedef struct {
    pipe_version_ref ref;
    ckpt_manifest *index;     /* owned: the parsed INDEX */
    int64_t parent, round, tokens_seen;
    char algorithm[32];
    char federation_sha[XFFL_SHA256_HEX];
    uint64_t stored_bytes;    /* sum of part objects */
} pipe_version_info;
void pipe_version_info_clear(pipe_version_info *info); /* frees info->index; accepts zeroed */

/* Fetches and verifies a version: the INDEX against ref->index_sha, each part against
 * its object line, each part's structure and attributes against the table (format,
 * model config, shapes), each tensor's digest against its attribute and its INDEX
 * tensor line. slabs[g] (t->total floats, table order) receives group groups[g];
 * a NULL slab (or slabs == NULL) means verify without keeping. groups == NULL means
 * every group the INDEX lists (n_groups ignored; use with slabs == NULL). A group the
 * version lacks: NOT_FOUND naming INDEX and group. info may be NULL (else the caller
 * clears it with pipe_version_info_clear). CORRUPT/INVALID name the key and tensor. */
XFFL_MUST_USE xffl_status pipe_version_fetch(store *s, const pipe_version_ref *ref, const ckpt_param_table *t, int n_groups,
                               const char *const *groups, float *const *slabs, pipe_version_info *info);

/* Verifies one local checkpoint part on its own: format attribute, model config,
 * the tensors its part/first_tensor/n_tensors attributes promise in /model (and in
 * any other group present), shapes, every digest. Table built from its attributes.
 * On success *n_checked = datasets verified (may be NULL). */
XFFL_MUST_USE xffl_status pipe_part_verify_file(const char *path, int *n_checked);

/* Writes / reads the model config as root attributes (dim, n_layers, ...). */
XFFL_MUST_USE xffl_status pipe_model_attrs_write(ckpt_h5_writer *w, const ckpt_model_config *cfg);
XFFL_MUST_USE xffl_status pipe_model_attrs_read(ckpt_h5_reader *r, ckpt_model_config *cfg);

#endif
