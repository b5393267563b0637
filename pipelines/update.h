/* Version updates: version v's model as a lossless difference from version v−1's, so a
 * facility that still holds v−1 downloads less than the whole model.
 * docs/design.md "Store layout", "Updates" and "Facility state".
 *
 *   versions/v000005/UPDATE-from-v000004-<12hex>   manifest (format=xffl-update): version,
 *                                                  base_version, index (v's INDEX key),
 *                                                  base_index (v−1's), federation, groups
 *                                                  (model), encoding (xor), parts, then one
 *                                                  object line per part; signed by the
 *                                                  aggregator in a signed federation
 *   versions/v000005/update-000-<12hex>.h5         format="xffl-update": /xor/<tensor>,
 *                                                  uint32, table shape: the bits of v's
 *                                                  float XOR the bits of v−1's (byte
 *                                                  shuffle + zstd like every dataset);
 *                                                  or, for a tensor whose XOR would be
 *                                                  stored larger, /model/<tensor>: v's
 *                                                  floats themselves
 *
 * v−1 plus a float difference is not v in floating point; v−1's bits XOR these words
 * are, exactly. Close floats share sign and exponent, so the high bytes of their XOR
 * are mostly zero, which the shuffle puts in planes zstd all but removes.
 *
 * What a facility applies is checked against v's own INDEX (each model tensor's
 * SHA-256, the INDEX the aggregator signed): a wrong update, a wrong cached base or a
 * damaged part can never pass as v. Which route a facility takes, and its cached base,
 * are pipelines/download.h's. */
#ifndef XFFL_PIPE_UPDATE_H
#define XFFL_PIPE_UPDATE_H

#include <stdint.h>
#include "common/sign.h"
#include "common/status.h"
#include "libckpt/model.h"
#include "pipelines/version.h"
#include "storage/store.h"

#define PIPE_UPDATE_PART_FORMAT "xffl-update"
enum { PIPE_UPDATE_PART_FORMAT_VERSION = 1 };

typedef struct {
    const pipe_version_ref *target;  /* version v, its INDEX already written */
    const pipe_version_ref *base;    /* version v − 1 */
    const char *federation_sha256;
    const float *base_model;         /* v − 1's model, t->total floats in table order */
    pipe_tensor_fn fn;               /* v's model, tensor by tensor (group 0) */
    void *ctx;
    uint64_t part_size;              /* 0 = 1 GiB */
    int level, threads;              /* zstd level (0 = default), compression threads */
    const xffl_signer *signer;       /* the aggregator's key (NULL: unsigned federation) */
} pipe_update_spec;

typedef struct {
    char key[PIPE_KEY_MAX]; /* the UPDATE manifest */
    int n_parts;
    uint64_t stored_bytes;  /* bytes of the update parts */
    int n_xor, n_tensors;   /* tensors stored as XOR words, of all */
} pipe_update_result;

/* Writes the update (parts first, then the manifest) beside version target. res may
 * be NULL. */
XFFL_MUST_USE xffl_status pipe_update_publish(store *s, const ckpt_param_table *t, const pipe_update_spec *spec,
                                              pipe_update_result *res);

/* The UPDATE keys in version's folder that update it from version − 1 (sorted; free
 * with store_listing_free). */
XFFL_MUST_USE xffl_status pipe_update_list(store *s, int64_t version, store_listing *l);

/* The stored bytes of the update of target from base_index (*parts, its manifest
 * included), found as pipe_update_apply finds it; *fetched grows by the manifests read
 * to find it. NOT_FOUND when there is none. */
XFFL_MUST_USE xffl_status pipe_update_size(store *s, const pipe_version_ref *target, const char *base_index,
                                           const char *aggregator_key, uint64_t *parts, uint64_t *fetched);

/* Applies the update of version target from the version whose INDEX is base_index:
 * finds it (an UPDATE-from-v<target−1>-* of target's folder naming both INDEXes;
 * NOT_FOUND when there is none), checks its signature against aggregator_key (NULL or
 * "": unsigned federation), fetches its parts (digests from the manifest), XORs each
 * tensor into model (which holds the base's floats on entry) and checks every model
 * tensor against target's INDEX. On failure model holds no usable value; CORRUPT or
 * INVALID name the object. *bytes (may be NULL) gets the bytes downloaded (manifest
 * and parts), also on failure; used (PIPE_KEY_MAX, may be NULL) the UPDATE key. */
XFFL_MUST_USE xffl_status pipe_update_apply(store *s, const pipe_version_ref *target, const char *base_index,
                                            const char *aggregator_key, const ckpt_param_table *t, float *model,
                                            uint64_t *bytes, char *used);

/* Checks the update(s) of a stored version against its INDEX: with v−1's model
 * (base_model, NULL when v−1 is gone) applied and compared; without it, every part's
 * digest and structure. *n_checked counts the updates checked. */
XFFL_MUST_USE xffl_status pipe_update_verify(store *s, const pipe_version_ref *target, const ckpt_param_table *t,
                                             const char *aggregator_key, const float *base_model,
                                             const char *base_index, int *n_checked);

#endif
