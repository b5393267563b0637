/* Who may write what (docs/design.md "Trust"): the private key a job signs with, the
 * signature every reader checks on the INDEX it starts from, and the federation.h5
 * digest every party pins on first use. */
#ifndef XFFL_PIPE_TRUST_H
#define XFFL_PIPE_TRUST_H

#include "common/sign.h"
#include "common/status.h"
#include "pipelines/federation.h"
#include "pipelines/keys.h"
#include "storage/store.h"

/* The aggregator's key file name in a key directory (facilities' are their names). */
#define PIPE_AGGREGATOR_KEY_NAME "aggregator"

typedef struct {
    const char *keys_dir;   /* --keys DIR (NULL: xffl_keys_dir_default) */
    const char *key_file;   /* --key FILE: the private key (NULL: <keys_dir>/<name>.key) */
    const char *federation; /* --federation SHA256: the digest to expect (NULL: pin on first use) */
    const char *pin_file;   /* where the first-use pin lives (NULL: <keys_dir>/pins/<url hash>) */
} pipe_trust_options;

/* The private key `name` ("aggregator" or a facility) signs with, for a signed
 * federation f (*out = NULL for an unsigned one): t->key_file or <keys_dir>/<name>.key.
 * AUTH naming the file when its public half is not the key f records for name, or
 * when group or world may read it; NOT_FOUND naming it when absent. */
XFFL_MUST_USE xffl_status pipe_trust_signer(const pipe_trust_options *t, const pipe_federation *f, const char *name,
                                            xffl_signer **out);

/* federation.h5's digest against t->federation, else against the pin for s's URL
 * (written on first use). CORRUPT naming federation.h5 and both digests on a change. */
XFFL_MUST_USE xffl_status pipe_trust_pin(store *s, const pipe_trust_options *t, const char *fed_sha);

/* ref's INDEX, signed by f's aggregator key (nothing to check for an unsigned f).
 * CORRUPT naming the INDEX and the key id, or "no signature". body_sha (may be NULL)
 * receives the SHA-256 of the INDEX without its signature line: what an unsigned
 * recomputation of the version (reproduce) has. */
XFFL_MUST_USE xffl_status pipe_trust_check_index(store *s, const pipe_federation *f, const pipe_version_ref *ref,
                                                 char body_sha[XFFL_SHA256_HEX]);

/* init's keys for f (signed unless the caller skips this: init --insecure): each
 * facility's public key from its NAME=PUBFILE in specs, else <keys_dir>/<name>.pub,
 * generated with its private half when absent; the aggregator's from aggregator_pub
 * or <keys_dir>/aggregator.pub likewise. *aggregator receives the aggregator's private
 * key (t->key_file or <keys_dir>/aggregator.key), which signs version 0's INDEX: the
 * job that runs init must hold it. USAGE naming a spec that is malformed or names no
 * facility, or a facility called "aggregator" that would share its key file. */
XFFL_MUST_USE xffl_status pipe_trust_init_keys(const pipe_trust_options *t, pipe_federation *f, int n_specs,
                                               const char *const *specs, const char *aggregator_pub,
                                               xffl_signer **aggregator);
/* init: the pin for s's URL becomes fed_sha (the store was empty; init made it). */
XFFL_MUST_USE xffl_status pipe_trust_pin_new(store *s, const pipe_trust_options *t, const char *fed_sha);

#endif
