/* The store's key layout and the manifest loader. See keys.h. */
#include "pipelines/keys.h"
#include "common/sign.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pipe_version_prefix(int64_t version, char *out, size_t cap)
{
    snprintf(out, cap, PIPE_VERSIONS_DIR "v%06" PRId64 "/", version);
}

void pipe_round_prefix(int64_t round, char *out, size_t cap) { snprintf(out, cap, PIPE_ROUNDS_DIR "r%06" PRId64 "/", round); }

void pipe_facility_prefix(int64_t round, const char *facility, char *out, size_t cap)
{
    snprintf(out, cap, PIPE_ROUNDS_DIR "r%06" PRId64 "/%s/", round, facility);
}

void pipe_attempt_prefix(int64_t round, const char *facility, int attempt, char *out, size_t cap)
{
    snprintf(out, cap, PIPE_ROUNDS_DIR "r%06" PRId64 "/%s/a%d/", round, facility, attempt);
}

xffl_status pipe_content_key(const char *dir, const char *stem, const char *sha256, const char *ext, char *out,
                             size_t cap)
{
    size_t dl = strlen(dir);
    XFFL_RETURN_IF(dl >= cap, XFFL_ERR_INTERNAL, "key %s%s-…: longer than %zu bytes", dir, stem, cap);
    memcpy(out, dir, dl);
    return ckpt_content_name(stem, sha256, ext, out + dl, cap - dl);
}

xffl_status pipe_part_key(const char *dir, int part, const char *sha256, char *out, size_t cap)
{
    char stem[32];
    snprintf(stem, sizeof stem, "part-%03d", part);
    return pipe_content_key(dir, stem, sha256, ".h5", out, cap);
}

xffl_status pipe_update_part_key(const char *dir, int part, const char *sha256, char *out, size_t cap)
{
    char stem[32];
    snprintf(stem, sizeof stem, PIPE_UPDATE_PART_STEM "-%03d", part);
    return pipe_content_key(dir, stem, sha256, ".h5", out, cap);
}

void pipe_update_stem(int64_t from, char *out, size_t cap) { snprintf(out, cap, PIPE_UPDATE_STEM "-from-v%06" PRId64, from); }

/* The number p starts with, when it is followed by '/' and reads back in the form
 * fmt prints it ("%06" for versions and rounds, "%d" for attempts). Sets *end to the
 * '/'; -1 when not. */
static int64_t folder_number(const char *p, int min_digits, const char **end)
{
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n > 12 || p[n] != '/') return -1;
    if ((int)n > min_digits && p[0] == '0') return -1; /* only the zero padding may lead */
    if ((int)n < min_digits) return -1;
    *end = p + n;
    return strtoll(p, NULL, 10);
}

/* name starts with "<stem>-" */
static int has_stem(const char *name, const char *stem)
{
    size_t n = strlen(stem);
    return !strncmp(name, stem, n) && name[n] == '-';
}

static pipe_obj_kind object_kind(pipe_key_kind where, const char *name)
{
    if (strchr(name, '/')) return PIPE_OBJ_NONE;
    size_t n = strlen(name);
    if (has_stem(name, "part") && n > 8 && !strcmp(name + n - 3, ".h5")) return PIPE_OBJ_PART;
    if (where == PIPE_KEY_VERSION && has_stem(name, PIPE_INDEX_STEM) && !strchr(name, '.')) return PIPE_OBJ_INDEX;
    if (where == PIPE_KEY_VERSION && has_stem(name, PIPE_UPDATE_STEM) && !strchr(name, '.')) return PIPE_OBJ_UPDATE;
    if (where == PIPE_KEY_VERSION && has_stem(name, PIPE_UPDATE_PART_STEM) && n > 10 && !strcmp(name + n - 3, ".h5"))
        return PIPE_OBJ_UPDATE_PART;
    if (where == PIPE_KEY_ATTEMPT && has_stem(name, PIPE_COMMIT_STEM)) return PIPE_OBJ_COMMIT;
    if (where == PIPE_KEY_ATTEMPT && has_stem(name, PIPE_REJECTED_STEM)) return PIPE_OBJ_REJECTED;
    return PIPE_OBJ_NONE;
}

enum { VDIR_LEN = sizeof PIPE_VERSIONS_DIR "v" - 1, RDIR_LEN = sizeof PIPE_ROUNDS_DIR "r" - 1 };

pipe_key_kind pipe_key_parse(const char *key, pipe_key *k)
{
    memset(k, 0, sizeof *k);
    k->number = -1;
    k->name = key;
    const char *end;
    if (!strcmp(key, PIPE_LATEST_KEY)) k->kind = PIPE_KEY_LATEST;
    else if (!strcmp(key, PIPE_FEDERATION_KEY)) k->kind = PIPE_KEY_FEDERATION;
    else if (!strncmp(key, PIPE_VERSIONS_DIR "v", VDIR_LEN) && (k->number = folder_number(key + VDIR_LEN, 6, &end)) >= 0) {
        k->kind = PIPE_KEY_VERSION;
        k->dir_len = (size_t)(end + 1 - key);
    } else if (!strncmp(key, PIPE_ROUNDS_DIR "r", RDIR_LEN) && (k->number = folder_number(key + RDIR_LEN, 6, &end)) >= 0) {
        k->kind = PIPE_KEY_ROUND;
        k->dir_len = (size_t)(end + 1 - key);
        /* <facility>/a<N>/ below it makes an attempt folder */
        const char *fac = end + 1, *slash = strchr(fac, '/');
        const char *aend;
        int64_t a;
        if (slash && slash > fac && (size_t)(slash - fac) < sizeof k->facility && slash[1] == 'a' &&
            (a = folder_number(slash + 2, 1, &aend)) >= 1 && a <= INT32_MAX) {
            k->kind = PIPE_KEY_ATTEMPT;
            memcpy(k->facility, fac, (size_t)(slash - fac));
            k->facility[slash - fac] = 0;
            k->attempt = (int)a;
            k->dir_len = (size_t)(aend + 1 - key);
        }
    } else
        k->number = -1;
    if (k->dir_len) {
        k->name = key + k->dir_len;
        k->obj = object_kind(k->kind, k->name);
    }
    return k->kind;
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

int pipe_latest_format(const pipe_version_ref *ref, char *out, size_t cap)
{
    const char *idx = strrchr(ref->index_key, '/');
    return snprintf(out, cap, "v%06" PRId64 " %s %s\n", ref->version, idx ? idx + 1 : ref->index_key, ref->index_sha);
}

enum { IDX_STEM_LEN = sizeof PIPE_INDEX_STEM "-" - 1 };

xffl_status pipe_latest_parse(const char *text, size_t len, pipe_version_ref *ref)
{
    char buf[256];
    XFFL_RETURN_IF(len == 0 || len >= sizeof buf, XFFL_ERR_CORRUPT, "LATEST: %zu bytes, expected one short line", len);
    memcpy(buf, text, len);
    buf[len] = 0;
    if (buf[len - 1] == '\n') buf[--len] = 0;
    /* "v000004 INDEX-3f9a0c12d4e1 <64 hex>" */
    char *sp1 = strchr(buf, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    int ok = sp1 && sp2 && !strchr(sp2 + 1, ' ') && buf[0] == 'v' && sp1 - buf >= 7;
    if (ok) {
        *sp1 = *sp2 = 0;
        const char *num = buf + 1, *idx = sp1 + 1, *sha = sp2 + 1;
        ok = strspn(num, "0123456789") == strlen(num) && strlen(num) <= 12 && has_stem(idx, PIPE_INDEX_STEM) &&
             strlen(idx) == IDX_STEM_LEN + CKPT_CONTENT_HEX && is_hex(idx + IDX_STEM_LEN, CKPT_CONTENT_HEX) &&
             strlen(sha) == 64 && is_hex(sha, 64) && strncmp(idx + IDX_STEM_LEN, sha, CKPT_CONTENT_HEX) == 0;
        if (ok) {
            ref->version = strtoll(num, NULL, 10);
            char prefix[40];
            pipe_version_prefix(ref->version, prefix, sizeof prefix);
            snprintf(ref->index_key, sizeof ref->index_key, "%s%s", prefix, idx);
            memcpy(ref->index_sha, sha, XFFL_SHA256_HEX);
        }
    }
    XFFL_RETURN_IF(!ok, XFFL_ERR_CORRUPT, "LATEST is malformed (want 'v000004 INDEX-<12 hex> <sha256>')");
    return XFFL_OK;
}

xffl_status pipe_latest_read(store *s, pipe_version_ref *ref)
{
    void *data = NULL;
    size_t len = 0;
    xffl_status st = store_get(s, PIPE_LATEST_KEY, &data, &len);
    if (st == XFFL_ERR_NOT_FOUND)
        return xffl_fail(st, "%s has no LATEST (no version yet: run xffl init)", store_url(s));
    XFFL_FORWARD(st);
    st = pipe_latest_parse(data, len, ref);
    free(data);
    if (st != XFFL_OK) return xffl_wrap(st, "%s", store_url(s));
    return XFFL_OK;
}

/* An INDEX agrees with itself, whoever reads it (train, aggregate, verify, gc): its
 * round is its version and its parent the one before (init's: -1), tokens_seen and
 * parts are counts (parts = its object lines), and its contributor lines name, in
 * facility order, a COMMIT of this round in that facility's folder each (version 0:
 * none; a deleted line is found by the parts, which record the contributors). A damaged or hand-edited INDEX fails here even when its name was recomputed. */
static XFFL_MUST_USE xffl_status index_check(const ckpt_manifest *m, const char *key, int64_t version)
{
    int64_t v;
    XFFL_FORWARD(ckpt_manifest_require_int(m, key, "round", &v));
    XFFL_RETURN_IF(v != version, XFFL_ERR_INVALID, "%s: round=%lld, expected %lld (its version)", key, (long long)v,
                   (long long)version);
    XFFL_FORWARD(ckpt_manifest_require_int(m, key, "parent", &v));
    XFFL_RETURN_IF(v != version - 1, XFFL_ERR_INVALID, "%s: parent=%lld, expected %lld", key, (long long)v,
                   (long long)version - 1);
    XFFL_FORWARD(ckpt_manifest_require_int(m, key, "tokens_seen", &v));
    XFFL_RETURN_IF(v < 0, XFFL_ERR_INVALID, "%s: tokens_seen=%lld is negative", key, (long long)v);
    XFFL_FORWARD(ckpt_manifest_require_int(m, key, "parts", &v));
    XFFL_RETURN_IF(v != m->n_objects, XFFL_ERR_INVALID, "%s: parts=%lld, but %d object lines", key, (long long)v,
                   m->n_objects);
    XFFL_RETURN_IF(version == 0 && m->n_contributors, XFFL_ERR_INVALID, "%s: version 0 names %d contributors", key,
                   m->n_contributors);
    for (int i = 0; i < m->n_contributors; i++) {
        const ckpt_manifest_contributor *c = &m->contributors[i];
        pipe_key k;
        XFFL_RETURN_IF(pipe_key_parse(c->key, &k) != PIPE_KEY_ATTEMPT || k.obj != PIPE_OBJ_COMMIT ||
                           k.number != version || strcmp(k.facility, c->facility) != 0,
                       XFFL_ERR_INVALID, "%s: contributor %s names %s, not a COMMIT of round %lld in its folder", key,
                       c->facility, c->key, (long long)version);
        XFFL_RETURN_IF(i && strcmp(m->contributors[i - 1].facility, c->facility) >= 0, XFFL_ERR_INVALID,
                       "%s: contributor lines out of facility order at %s", key, c->facility);
    }
    return XFFL_OK;
}

/* An UPDATE agrees with itself and its name: it updates version `version` from version
 * − 1 (its stem says which), names an INDEX of each (`index`, `base_index`), and parts =
 * its object lines, each an update part of its own folder. */
static XFFL_MUST_USE xffl_status update_check(const ckpt_manifest *m, const char *key, int64_t version)
{
    int64_t v;
    XFFL_FORWARD(ckpt_manifest_require_int(m, key, "base_version", &v));
    XFFL_RETURN_IF(v != version - 1, XFFL_ERR_INVALID, "%s: base_version=%lld, expected %lld", key, (long long)v,
                   (long long)version - 1);
    char stem[48];
    pipe_update_stem(v, stem, sizeof stem);
    const char *slash = strrchr(key, '/');
    XFFL_RETURN_IF(!has_stem(slash ? slash + 1 : key, stem), XFFL_ERR_INVALID, "%s: not named %s-<12 hex>", key, stem);
    XFFL_FORWARD(ckpt_manifest_require_int(m, key, "parts", &v));
    XFFL_RETURN_IF(v != m->n_objects || v < 1, XFFL_ERR_INVALID, "%s: parts=%lld, but %d object lines", key,
                   (long long)v, m->n_objects);
    static const char *const refs[] = {"index", "base_index"};
    for (int i = 0; i < 2; i++) {
        const char *r;
        pipe_key k;
        XFFL_FORWARD(ckpt_manifest_require(m, key, refs[i], &r));
        XFFL_RETURN_IF(pipe_key_parse(r, &k) != PIPE_KEY_VERSION || k.obj != PIPE_OBJ_INDEX || k.number != version - i,
                       XFFL_ERR_INVALID, "%s: %s=%s is not an INDEX of version %lld", key, refs[i], r,
                       (long long)(version - i));
    }
    for (int i = 0; i < m->n_objects; i++) {
        pipe_key k;
        XFFL_RETURN_IF(pipe_key_parse(m->objects[i].name, &k) != PIPE_KEY_VERSION || k.obj != PIPE_OBJ_UPDATE_PART ||
                           k.number != version,
                       XFFL_ERR_INVALID, "%s: object %s is not an update part of its folder", key, m->objects[i].name);
    }
    return XFFL_OK;
}

/* Which format a manifest key holds: one entry per manifest kind. */
static const struct {
    pipe_obj_kind obj;
    const char *format;
    int64_t newest;
    const char *folder_header; /* header that must equal the folder's number, or NULL */
    /* the kind's own consistency, given the folder's number; NULL: none */
    xffl_status (*check)(const ckpt_manifest *m, const char *key, int64_t number);
} manifest_kinds[] = {
    {PIPE_OBJ_INDEX, PIPE_INDEX_FORMAT, PIPE_INDEX_FORMAT_VERSION, "version", index_check},
    /* a COMMIT's round and facility are aggregate's to judge: its reasons go into REJECTED */
    {PIPE_OBJ_COMMIT, PIPE_COMMIT_FORMAT, PIPE_COMMIT_FORMAT_VERSION, NULL, NULL},
    {PIPE_OBJ_UPDATE, PIPE_UPDATE_FORMAT, PIPE_UPDATE_FORMAT_VERSION, "version", update_check},
};

static XFFL_MUST_USE xffl_status check_format(const ckpt_manifest *m, const char *key)
{
    pipe_key k;
    pipe_key_parse(key, &k);
    for (size_t i = 0; i < sizeof manifest_kinds / sizeof manifest_kinds[0]; i++) {
        if (manifest_kinds[i].obj != k.obj) continue;
        const char *fmt;
        XFFL_FORWARD(ckpt_manifest_require(m, key, "format", &fmt));
        XFFL_RETURN_IF(strcmp(fmt, manifest_kinds[i].format) != 0, XFFL_ERR_INVALID, "%s: format=%s, expected %s", key,
                       fmt, manifest_kinds[i].format);
        /* written before format_version existed: version 1 */
        int64_t v = 1;
        if (ckpt_manifest_get(m, "format_version")) XFFL_FORWARD(ckpt_manifest_require_int(m, key, "format_version", &v));
        XFFL_RETURN_IF(v < 1 || v > manifest_kinds[i].newest, XFFL_ERR_INVALID,
                       "%s: format_version %lld is not one this xffl reads (1..%lld)", key, (long long)v,
                       (long long)manifest_kinds[i].newest);
        if (manifest_kinds[i].folder_header) {
            XFFL_FORWARD(ckpt_manifest_require_int(m, key, manifest_kinds[i].folder_header, &v));
            XFFL_RETURN_IF(v != k.number, XFFL_ERR_INVALID, "%s: %s=%lld, expected %lld", key,
                           manifest_kinds[i].folder_header, (long long)v, (long long)k.number);
        }
        return manifest_kinds[i].check ? manifest_kinds[i].check(m, key, k.number) : XFFL_OK;
    }
    return xffl_fail(XFFL_ERR_INVALID, "%s is not a manifest key (INDEX-*, COMMIT-* or UPDATE-* in its folder)", key);
}

xffl_status pipe_manifest_load(store *s, const char *key, const char *sha256, ckpt_manifest **out,
                               pipe_manifest_bytes *raw)
{
    *out = NULL;
    void *data = NULL;
    size_t len = 0;
    char sha[XFFL_SHA256_HEX];
    xffl_status st;
    if (sha256 && sha256[0]) {
        XFFL_FORWARD(store_get_immutable(s, key, sha256, &data, &len));
        memcpy(sha, sha256, XFFL_SHA256_HEX);
    } else {
        /* not named with a digest (found by listing, or a COMMIT): its content name is the check */
        XFFL_FORWARD(store_get(s, key, &data, &len));
        xffl_sha256_hex(data, len, sha);
        const char *base = strrchr(key, '/');
        st = ckpt_content_name_check(base ? base + 1 : key, sha, NULL);
        if (st != XFFL_OK) {
            free(data);
            return xffl_fail(st, "%s: content does not match its name", key);
        }
    }
    /* the signature line, when there is one, is not part of the grammar it signs */
    st = ckpt_manifest_parse(data, xffl_signed_body_len(data, len), key, out);
    if (st == XFFL_OK) st = check_format(*out, key);
    if (st != XFFL_OK) {
        ckpt_manifest_free(*out);
        *out = NULL;
        free(data);
        return st;
    }
    if (raw) {
        memcpy(raw->sha256, sha, XFFL_SHA256_HEX);
        raw->text = data;
        raw->len = len;
    } else
        free(data);
    return XFFL_OK;
}

xffl_status pipe_manifest_load_signed(store *s, const char *key, const char *sha256, const char *pub_hex,
                                      ckpt_manifest **out, pipe_manifest_bytes *raw)
{
    pipe_manifest_bytes b;
    XFFL_FORWARD(pipe_manifest_load(s, key, sha256, out, &b));
    xffl_status st = pub_hex && pub_hex[0] ? xffl_sign_verify(pub_hex, b.text, b.len, key) : XFFL_OK;
    if (st != XFFL_OK) {
        ckpt_manifest_free(*out);
        *out = NULL;
    }
    if (st == XFFL_OK && raw) *raw = b;
    else free(b.text);
    return st;
}

xffl_status pipe_manifest_put(store *s, const ckpt_manifest *m, const char *dir, const char *stem, char *key_out)
{
    return pipe_manifest_put_signed(s, m, dir, stem, NULL, key_out);
}

xffl_status pipe_manifest_put_signed(store *s, const ckpt_manifest *m, const char *dir, const char *stem,
                                     const xffl_signer *signer, char *key_out)
{
    char *text = NULL;
    size_t len = 0;
    XFFL_FORWARD(ckpt_manifest_format(m, &text, &len));
    xffl_status st = xffl_sign_append(signer, &text, &len);
    if (st != XFFL_OK) {
        free(text);
        return st;
    }
    char hex[XFFL_SHA256_HEX];
    xffl_sha256_hex(text, len, hex);
    st = pipe_content_key(dir, stem, hex, NULL, key_out, PIPE_KEY_MAX);
    if (st == XFFL_OK) st = store_put(s, key_out, text, len);
    free(text);
    return st;
}
