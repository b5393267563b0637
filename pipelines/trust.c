/* Signing keys, INDEX signatures and federation.h5 pins (pipelines/trust.h). */
#include "pipelines/trust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"

static XFFL_MUST_USE xffl_status keys_dir(const pipe_trust_options *t, char *out, size_t cap)
{
    if (t && t->keys_dir) {
        int n = snprintf(out, cap, "%s", t->keys_dir);
        XFFL_RETURN_IF(n < 0 || (size_t)n >= cap, XFFL_ERR_USAGE, "--keys path too long");
        return XFFL_OK;
    }
    return xffl_keys_dir_default(out, cap);
}

xffl_status pipe_trust_signer(const pipe_trust_options *t, const pipe_federation *f, const char *name,
                              xffl_signer **out)
{
    *out = NULL;
    if (!pipe_federation_signed(f)) return XFFL_OK;
    const char *want = f->aggregator_key;
    if (strcmp(name, PIPE_AGGREGATOR_KEY_NAME) != 0) {
        int i = pipe_federation_facility_index(f, name);
        XFFL_RETURN_IF(i < 0, XFFL_ERR_USAGE, "facility '%s' is not in the federation", name);
        want = f->facility_keys[i];
    }
    char path[XFFL_KEYS_PATH_MAX];
    if (t && t->key_file) snprintf(path, sizeof path, "%s", t->key_file);
    else {
        char dir[XFFL_KEYS_PATH_MAX];
        XFFL_FORWARD(keys_dir(t, dir, sizeof dir));
        XFFL_FORWARD(xffl_key_path(dir, name, "key", path, sizeof path));
    }
    xffl_signer *sg = NULL;
    XFFL_FORWARD(xffl_signer_load(path, &sg));
    char pub[XFFL_SIGN_PUB_HEX], have[XFFL_SIGN_KEYID_HEX], need[XFFL_SIGN_KEYID_HEX];
    xffl_signer_public(sg, pub);
    if (strcmp(pub, want) != 0) {
        xffl_signer_free(sg);
        xffl_key_id(pub, have);
        xffl_key_id(want, need);
        return xffl_fail(XFFL_ERR_AUTH, "%s holds key %s, but federation.h5 records key %s for %s", path, have, need,
                         name);
    }
    *out = sg;
    return XFFL_OK;
}

xffl_status pipe_trust_pin(store *s, const pipe_trust_options *t, const char *fed_sha)
{
    if (t && t->federation) {
        XFFL_RETURN_IF(strcmp(t->federation, fed_sha) != 0, XFFL_ERR_CORRUPT,
                       "federation.h5 has sha256 %s, not the %s given with --federation", fed_sha, t->federation);
        return XFFL_OK;
    }
    char path[XFFL_KEYS_PATH_MAX];
    if (t && t->pin_file) snprintf(path, sizeof path, "%s", t->pin_file);
    else {
        char dir[XFFL_KEYS_PATH_MAX];
        XFFL_FORWARD(keys_dir(t, dir, sizeof dir));
        XFFL_FORWARD(xffl_pin_path(dir, store_url(s), path, sizeof path));
    }
    int pinned = 0;
    XFFL_FORWARD(xffl_pin_check(path, fed_sha, &pinned));
    if (pinned) xffl_log(XFFL_LOG_DEBUG, "pinned federation.h5 %.12s for %s in %s", fed_sha, store_url(s), path);
    return XFFL_OK;
}

xffl_status pipe_trust_check_index(store *s, const pipe_federation *f, const pipe_version_ref *ref,
                                   char body_sha[XFFL_SHA256_HEX])
{
    ckpt_manifest *m = NULL;
    pipe_manifest_bytes raw;
    XFFL_FORWARD(pipe_manifest_load_signed(s, ref->index_key, ref->index_sha,
                                           pipe_federation_signed(f) ? f->aggregator_key : NULL, &m, &raw));
    ckpt_manifest_free(m);
    if (body_sha) xffl_sha256_hex(raw.text, xffl_signed_body_len(raw.text, raw.len), body_sha);
    free(raw.text);
    return XFFL_OK;
}

/* dir/<name>.pub, made with its private half when absent (a concurrent init that
 * made it first wins: its public half is read). */
static XFFL_MUST_USE xffl_status ensure_pair(const char *dir, const char *name, char pub[XFFL_SIGN_PUB_HEX])
{
    char kp[XFFL_KEYS_PATH_MAX], pp[XFFL_KEYS_PATH_MAX];
    XFFL_FORWARD(xffl_key_path(dir, name, "key", kp, sizeof kp));
    XFFL_FORWARD(xffl_key_path(dir, name, "pub", pp, sizeof pp));
    xffl_status st = xffl_public_load(pp, pub);
    if (st != XFFL_ERR_NOT_FOUND) return st;
    xffl_errmsg_clear();
    st = xffl_key_generate(kp, pp, pub);
    if (st == XFFL_OK) xffl_log(XFFL_LOG_INFO, "generated key pair %s (public half %s)", kp, pp);
    if (st == XFFL_ERR_EXISTS) {
        xffl_errmsg_clear();
        st = xffl_public_load(pp, pub);
    }
    return st;
}

xffl_status pipe_trust_init_keys(const pipe_trust_options *t, pipe_federation *f, int n_specs,
                                 const char *const *specs, const char *aggregator_pub, xffl_signer **aggregator)
{
    *aggregator = NULL;
    char given[PIPE_MAX_FACILITIES] = {0};
    for (int k = 0; k < n_specs; k++) {
        const char *eq = strchr(specs[k], '=');
        char name[PIPE_FACILITY_MAX] = "";
        if (eq && (size_t)(eq - specs[k]) < sizeof name) memcpy(name, specs[k], (size_t)(eq - specs[k]));
        int i = name[0] ? pipe_federation_facility_index(f, name) : -1;
        XFFL_RETURN_IF(i < 0, XFFL_ERR_USAGE, "--facility-key %s: expected NAME=PUBFILE with NAME a facility", specs[k]);
        XFFL_FORWARD(xffl_public_load(eq + 1, f->facility_keys[i]));
        given[i] = 1;
    }
    char dir[XFFL_KEYS_PATH_MAX];
    XFFL_FORWARD(keys_dir(t, dir, sizeof dir));
    int need_dir = !aggregator_pub || !(t && t->key_file);
    for (int i = 0; i < f->n_facilities; i++) need_dir |= !given[i];
    if (need_dir) XFFL_FORWARD(xffl_keys_dir_make(dir));
    for (int i = 0; i < f->n_facilities; i++) {
        if (given[i]) continue;
        XFFL_RETURN_IF(!strcmp(f->facilities[i], PIPE_AGGREGATOR_KEY_NAME), XFFL_ERR_USAGE,
                       "facility '%s' would share the aggregator's key file in %s: give --facility-key %s=PUBFILE",
                       f->facilities[i], dir, f->facilities[i]);
        XFFL_FORWARD(ensure_pair(dir, f->facilities[i], f->facility_keys[i]));
    }
    if (aggregator_pub) XFFL_FORWARD(xffl_public_load(aggregator_pub, f->aggregator_key));
    else XFFL_FORWARD(ensure_pair(dir, PIPE_AGGREGATOR_KEY_NAME, f->aggregator_key));
    pipe_trust_options o = t ? *t : (pipe_trust_options){0};
    o.keys_dir = dir;
    return pipe_trust_signer(&o, f, PIPE_AGGREGATOR_KEY_NAME, aggregator);
}

xffl_status pipe_trust_pin_new(store *s, const pipe_trust_options *t, const char *fed_sha)
{
    if (t && t->federation) return pipe_trust_pin(s, t, fed_sha);
    char dir[XFFL_KEYS_PATH_MAX], path[XFFL_KEYS_PATH_MAX];
    if (t && t->pin_file) snprintf(path, sizeof path, "%s", t->pin_file);
    else {
        XFFL_FORWARD(keys_dir(t, dir, sizeof dir));
        XFFL_FORWARD(xffl_pin_path(dir, store_url(s), path, sizeof path));
    }
    return xffl_pin_set(path, fed_sha);
}
