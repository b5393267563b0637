/* Versions: resolve a number to its INDEX, fetch with every digest verified, and
 * verify one part file on its own. See version.h. */
#include "pipelines/version.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

xffl_status pipe_version_resolve(store *s, int64_t version, pipe_version_ref *ref)
{
    pipe_version_ref latest;
    xffl_status st = pipe_latest_read(s, &latest);
    if (version < 0) {
        if (st == XFFL_OK) *ref = latest;
        return st;
    }
    int have_latest = st == XFFL_OK;
    if (st != XFFL_OK && st != XFFL_ERR_NOT_FOUND && st != XFFL_ERR_CORRUPT) return st;
    char prefix[40];
    pipe_version_prefix(version, prefix, sizeof prefix);
    store_listing l = {0};
    XFFL_FORWARD(store_list(s, prefix, &l));
    int found = 0;
    const char *one = NULL;
    for (size_t i = 0; i < l.count; i++) {
        pipe_key k;
        if (pipe_key_parse(l.items[i].key, &k) != PIPE_KEY_VERSION || k.number != version || k.obj != PIPE_OBJ_INDEX)
            continue;
        found++;
        if (!one) one = l.items[i].key;
        if (have_latest && strcmp(l.items[i].key, latest.index_key) == 0) {
            *ref = latest;
            store_listing_free(&l);
            return XFFL_OK;
        }
    }
    if (found == 1) {
        memset(ref, 0, sizeof *ref);
        ref->version = version;
        snprintf(ref->index_key, sizeof ref->index_key, "%s", one);
    }
    store_listing_free(&l);
    XFFL_RETURN_IF(found == 0, XFFL_ERR_NOT_FOUND, "%s: version %lld does not exist (no %sINDEX-*)", store_url(s),
                   (long long)version, prefix);
    XFFL_RETURN_IF(found > 1, XFFL_ERR_INVALID,
                   "%s: version %lld has %d INDEX objects and LATEST names none of them (a lost race: run xffl gc)",
                   store_url(s), (long long)version, found);
    return XFFL_OK;
}

void pipe_version_info_clear(pipe_version_info *info)
{
    if (!info) return;
    ckpt_manifest_free(info->index);
    memset(info, 0, sizeof *info);
}

static int split_groups(char *csv, char **out)
{
    int n = 0;
    char *save = NULL;
    for (char *g = strtok_r(csv, ",", &save); g && n < PIPE_MAX_GROUPS; g = strtok_r(NULL, ",", &save)) out[n++] = g;
    return n;
}

static XFFL_MUST_USE xffl_status check_model_attrs(ckpt_h5_reader *r, const ckpt_model_config *want)
{
    ckpt_model_config c;
    xffl_status s = pipe_model_attrs_read(r, &c);
    if (s == XFFL_ERR_NOT_FOUND) s = XFFL_ERR_INVALID;
    XFFL_FORWARD(s);
    XFFL_RETURN_IF(c.dim != want->dim || c.n_layers != want->n_layers || c.n_heads != want->n_heads ||
                       c.n_kv_heads != want->n_kv_heads || c.hidden_dim != want->hidden_dim ||
                       c.vocab_size != want->vocab_size || c.max_seq_len != want->max_seq_len,
                   XFFL_ERR_INVALID, "%s: model config (dim %d, layers %d, vocab %d) differs from the federation's (dim %d, layers %d, vocab %d)",
                   ckpt_h5_reader_path(r), c.dim, c.n_layers, c.vocab_size, want->dim, want->n_layers, want->vocab_size);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status get_range(ckpt_h5_reader *r, const ckpt_param_table *t, int *first, int *count)
{
    int64_t f, n;
    xffl_status s = ckpt_h5_get_attr_int(r, "first_tensor", &f);
    if (s == XFFL_OK) s = ckpt_h5_get_attr_int(r, "n_tensors", &n);
    if (s == XFFL_ERR_NOT_FOUND) s = XFFL_ERR_INVALID;
    XFFL_FORWARD(s);
    XFFL_RETURN_IF(f < 0 || n < 1 || f + n > t->count, XFFL_ERR_INVALID, "%s: tensors %lld..%lld outside the table of %d",
                   ckpt_h5_reader_path(r), (long long)f, (long long)(f + n - 1), t->count);
    *first = (int)f;
    *count = (int)n;
    return XFFL_OK;
}

/* A part repeats its INDEX's round, parent, tokens_seen, algorithm and contributors,
 * and its own place (part k of parts): an INDEX edited afterwards (a contributor line
 * deleted, a count changed), even when renamed to its new content, disagrees with the
 * parts whose digests it carries. INVALID naming the attribute. */
static XFFL_MUST_USE xffl_status check_part_agrees(ckpt_h5_reader *r, const ckpt_manifest *idx, const char *key, int k)
{
    static const char *const ints[] = {"round", "parent", "tokens_seen", "parts", "part"};
    const char *path = ckpt_h5_reader_path(r);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t pv, iv = k;
        xffl_status s = ckpt_h5_get_attr_int(r, ints[i], &pv);
        XFFL_FORWARD(s == XFFL_ERR_NOT_FOUND ? XFFL_ERR_INVALID : s);
        if (i < 4) XFFL_FORWARD(ckpt_manifest_require_int(idx, key, ints[i], &iv));
        XFFL_RETURN_IF(pv != iv, XFFL_ERR_INVALID, "%s: %s %lld, but %s says %lld", path, ints[i], (long long)pv, key,
                       (long long)iv);
    }
    char want[4096] = "", *got = NULL; /* as write_part joins them */
    for (int i = 0; i < idx->n_contributors; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", i ? "," : "", idx->contributors[i].facility);
    for (int a = 0; a < 2; a++) {
        const char *name = a ? "algorithm" : "contributors", *iv = want;
        if (a) XFFL_FORWARD(ckpt_manifest_require(idx, key, name, &iv));
        xffl_status s = ckpt_h5_get_attr_str(r, name, &got);
        XFFL_FORWARD(s == XFFL_ERR_NOT_FOUND ? XFFL_ERR_INVALID : s);
        int same = !strcmp(got, iv);
        s = same ? XFFL_OK : xffl_fail(XFFL_ERR_INVALID, "%s: %s '%s', but %s says '%s'", path, name, got, key, iv);
        free(got);
        XFFL_FORWARD(s);
    }
    return XFFL_OK;
}

typedef char tensor_name[CKPT_NAME_MAX + 64];
typedef char tensor_digest[XFFL_SHA256_HEX];

/* Reads tensors [i0, i0+n) of group into slab (at their offsets) or, without a
 * slab, the one tensor (n == 1) into tmp; names[] and got[] receive each one's
 * dataset path and digest. "Absent" is INVALID: in a checkpoint it is damage. */
static XFFL_MUST_USE xffl_status read_tensors(ckpt_h5_reader *r, const ckpt_param_table *t, const char *group, int i0, int n,
                                float *slab, float *tmp, tensor_name *names, tensor_digest *got)
{
    ckpt_h5_request *q = calloc((size_t)n, sizeof *q);
    XFFL_RETURN_IF(!q, XFFL_ERR_NOMEM, "%s: reading %d tensors", ckpt_h5_reader_path(r), n);
    for (int k = 0; k < n; k++) {
        const ckpt_param *p = &t->params[i0 + k];
        snprintf(names[k], sizeof names[k], "%s/%s", group, p->name);
        q[k] = (ckpt_h5_request){names[k], CKPT_DT_F32, p->ndim, p->shape, slab ? slab + p->offset : tmp, 0, got[k]};
    }
    xffl_status s = ckpt_h5_read_many(r, n, q);
    free(q);
    return s == XFFL_ERR_NOT_FOUND ? XFFL_ERR_INVALID : s;
}

xffl_status pipe_version_fetch(store *s, const pipe_version_ref *ref, const ckpt_param_table *t, int n_groups,
                               const char *const *groups, float *const *slabs, pipe_version_info *info)
{
    ckpt_manifest *idx = NULL;
    char sha[XFFL_SHA256_HEX];
    pipe_manifest_bytes raw;
    XFFL_FORWARD(pipe_manifest_load(s, ref->index_key, ref->index_sha, &idx, &raw));
    free(raw.text);
    memcpy(sha, raw.sha256, XFFL_SHA256_HEX);
    xffl_status st = XFFL_OK;
    char *dir = NULL, gbuf[256] = "";
    float *tmp = NULL;
    tensor_name *names = NULL;
    tensor_digest *got = NULL;
    const char *v;
    char *igroups[PIPE_MAX_GROUPS];
    int n_igroups = 0;
    XFFL_CHECK_GOTO(st, ckpt_manifest_require(idx, ref->index_key, "groups", &v), done);
    snprintf(gbuf, sizeof gbuf, "%s", v);
    n_igroups = split_groups(gbuf, igroups);
    const char *want[PIPE_MAX_GROUPS];
    int n_want = groups ? n_groups : n_igroups;
    for (int g = 0; g < n_want; g++) {
        want[g] = groups ? groups[g] : igroups[g];
        int have = 0;
        for (int k = 0; k < n_igroups; k++) have |= strcmp(want[g], igroups[k]) == 0;
        if (!have) {
            st = xffl_fail(XFFL_ERR_NOT_FOUND, "%s: version %lld has no group /%s (groups: %s)", ref->index_key,
                           (long long)ref->version, want[g], v);
            goto done;
        }
    }
    int64_t maxn = 0;
    for (int i = 0; i < t->count; i++)
        if (t->params[i].numel > maxn) maxn = t->params[i].numel;
    if (!(tmp = malloc((size_t)maxn * sizeof *tmp))) {
        st = xffl_fail(XFFL_ERR_NOMEM, "buffer for one tensor");
        goto done;
    }
    if (!(names = calloc((size_t)t->count, sizeof *names)) || !(got = calloc((size_t)t->count, sizeof *got))) {
        st = xffl_fail(XFFL_ERR_NOMEM, "tensor names");
        goto done;
    }
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("fetch", &dir), done);
    int *seen = calloc((size_t)idx->n_tensors + 1, sizeof *seen);
    if (!seen) {
        st = xffl_fail(XFFL_ERR_NOMEM, "tensor table");
        goto done;
    }
    uint64_t stored = 0;
    int checked = 0;
    /* Parts come down a few at a time: local disk holds a handful, not the model. */
    for (int b0 = 0; b0 < idx->n_objects && st == XFFL_OK; b0 += 4) {
        int nb = idx->n_objects - b0 < 4 ? idx->n_objects - b0 : 4;
        store_transfer tr[4];
        char paths[4][4096];
        for (int k = 0; k < nb; k++) {
            snprintf(paths[k], sizeof paths[k], "%s/part-%d.h5", dir, b0 + k);
            tr[k] = (store_transfer){.key = idx->objects[b0 + k].name, .path = paths[k], .sha256_hex = idx->objects[b0 + k].sha256};
            stored += idx->objects[b0 + k].bytes;
        }
        XFFL_CHECK_GOTO(st, store_get_many(s, tr, (size_t)nb), parts_done);
        /* verifying (no slabs: verify, verify --all): each part parsed in a child first,
         * docs/design.md "HDF5 files" */
        for (int k = 0; k < nb && st == XFFL_OK && !slabs; k++)
            if ((st = ckpt_h5_probe_isolated(paths[k], (uint64_t)maxn * sizeof(float))) != XFFL_OK)
                xffl_wrap(st, "%s", idx->objects[b0 + k].name);
        for (int k = 0; k < nb && st == XFFL_OK; k++) {
            ckpt_h5_reader *r = NULL;
            const char *key = idx->objects[b0 + k].name;
            int first = 0, count = 0;
            int64_t pv;
            st = ckpt_h5_reader_open(paths[k], NULL, &r);
            if (st == XFFL_OK) st = ckpt_h5_check_format(r, PIPE_CKPT_FORMAT, PIPE_CKPT_FORMAT_VERSION);
            if (st == XFFL_OK) st = ckpt_h5_get_attr_int(r, "version", &pv);
            if (st == XFFL_OK && pv != ref->version)
                st = xffl_fail(XFFL_ERR_INVALID, "part says version %lld, INDEX %lld", (long long)pv, (long long)ref->version);
            if (st == XFFL_OK) st = check_model_attrs(r, &t->cfg);
            if (st == XFFL_OK) st = check_part_agrees(r, idx, ref->index_key, b0 + k);
            if (st == XFFL_OK) st = get_range(r, t, &first, &count);
            for (int g = 0; g < n_want && st == XFFL_OK; g++) {
                /* Into the caller's slab: the whole part as one batch (digests overlap
                 * decoding); without one, tensor by tensor through tmp. */
                const int batch = slabs && slabs[g] ? count : 1;
                for (int i0 = first; i0 < first + count && st == XFFL_OK; i0 += batch) {
                    const int nb_t = first + count - i0 < batch ? first + count - i0 : batch;
                    st = read_tensors(r, t, want[g], i0, nb_t, slabs && slabs[g] ? slabs[g] : NULL, tmp, names, got);
                    for (int q = 0; q < nb_t && st == XFFL_OK; q++) {
                        const char *name = names[q];
                        int ti = ckpt_manifest_find_tensor(idx, name);
                        if (ti < 0) st = xffl_fail(XFFL_ERR_INVALID, "tensor %s is not listed in %s", name, ref->index_key);
                        else if (strcmp(idx->tensors[ti].sha256, got[q]) != 0)
                            st = xffl_fail(XFFL_ERR_CORRUPT, "tensor %s: digest %.12s differs from %s (%.12s)", name,
                                           got[q], ref->index_key, idx->tensors[ti].sha256);
                        else if (!seen[ti]++)
                            checked++;
                    }
                }
            }
            ckpt_h5_reader_close(r);
            unlink(paths[k]);
            if (st != XFFL_OK) {
                /* The part was verified against the INDEX: name its store key. */
                char msg[XFFL_ERRMSG_MAX];
                snprintf(msg, sizeof msg, "%s", xffl_errmsg());
                const char *tail = strstr(msg, ".h5: ");
                xffl_fail(st, "%s: %s", key, tail ? tail + 5 : msg);
            }
        }
    }
parts_done:
    free(seen);
    if (st == XFFL_OK) {
        int expected = 0;
        for (int i = 0; i < idx->n_tensors; i++)
            for (int g = 0; g < n_want; g++) {
                size_t gl = strlen(want[g]);
                const char *tn = idx->tensors[i].name;
                /* "outer/x" must not count "outer/m/x" as its own */
                if (strncmp(tn, want[g], gl) == 0 && tn[gl] == '/' && ckpt_param_find(t, tn + gl + 1) >= 0) expected++;
            }
        if (checked != n_want * t->count || expected != checked)
            st = xffl_fail(XFFL_ERR_INVALID, "%s: parts hold %d of the %d tensors the version needs", ref->index_key,
                           checked, n_want * t->count);
    }
    if (st == XFFL_OK && info) {
        memset(info, 0, sizeof *info);
        info->ref = *ref;
        memcpy(info->ref.index_sha, sha, XFFL_SHA256_HEX);
        info->stored_bytes = stored;
        const char *a = ckpt_manifest_get(idx, "algorithm"), *f = ckpt_manifest_get(idx, "federation");
        snprintf(info->algorithm, sizeof info->algorithm, "%s", a ? a : "");
        snprintf(info->federation_sha, sizeof info->federation_sha, "%s", f ? f : "");
        if (ckpt_manifest_require_int(idx, ref->index_key, "parent", &info->parent) != XFFL_OK) info->parent = -1;
        /* a version the store wrote has both; a damaged INDEX must not pass as round 0 */
        st = ckpt_manifest_require_int(idx, ref->index_key, "round", &info->round);
        if (st == XFFL_OK) st = ckpt_manifest_require_int(idx, ref->index_key, "tokens_seen", &info->tokens_seen);
        if (st == XFFL_OK) {
            info->index = idx;
            idx = NULL;
        }
    }
done:
    if (dir) xffl_rmtree_cleanup(dir);
    free(dir);
    free(tmp);
    free(names);
    free(got);
    ckpt_manifest_free(idx);
    return st;
}

xffl_status pipe_part_verify_file(const char *path, int *n_checked)
{
    ckpt_h5_reader *r;
    XFFL_FORWARD(ckpt_h5_reader_open(path, NULL, &r));
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    float *buf = NULL;
    char *gattr = NULL;
    int first = 0, count = 0, checked = 0;
    xffl_status st = ckpt_h5_check_format(r, PIPE_CKPT_FORMAT, PIPE_CKPT_FORMAT_VERSION);
    if (st == XFFL_OK) {
        st = pipe_model_attrs_read(r, &cfg);
        if (st == XFFL_ERR_NOT_FOUND) st = XFFL_ERR_INVALID;
    }
    if (st == XFFL_OK) st = ckpt_param_table_create(&cfg, &t);
    if (st == XFFL_OK) st = get_range(r, t, &first, &count);
    if (st == XFFL_OK) {
        st = ckpt_h5_get_attr_str(r, "groups", &gattr);
        if (st == XFFL_ERR_NOT_FOUND) st = XFFL_ERR_INVALID;
    }
    int64_t maxn = 0;
    for (int i = first; st == XFFL_OK && i < first + count; i++)
        if (t->params[i].numel > maxn) maxn = t->params[i].numel;
    if (st == XFFL_OK && !(buf = malloc((size_t)maxn * sizeof *buf))) st = xffl_fail(XFFL_ERR_NOMEM, "tensor buffer");
    char *groups[PIPE_MAX_GROUPS];
    int ng = st == XFFL_OK ? split_groups(gattr, groups) : 0;
    if (st == XFFL_OK && (ng < 1 || strcmp(groups[0], "model") != 0))
        st = xffl_fail(XFFL_ERR_INVALID, "%s: groups attribute must start with model", path);
    for (int g = 0; g < ng && st == XFFL_OK; g++) {
        /* Every dataset in the group must be one the part promises. */
        char **names = NULL;
        int n = 0;
        st = ckpt_h5_list(r, groups[g], &names, &n);
        if (st == XFFL_ERR_NOT_FOUND) st = XFFL_ERR_INVALID;
        for (int k = 0; k < n && st == XFFL_OK; k++) {
            int i = ckpt_param_find(t, names[k]);
            if (i < first || i >= first + count)
                st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s/%s does not belong in this part", path, groups[g], names[k]);
        }
        ckpt_h5_names_free(names, n);
        for (int i = first; i < first + count && st == XFFL_OK; i++) {
            tensor_name name;
            tensor_digest got;
            st = read_tensors(r, t, groups[g], i, 1, NULL, buf, &name, &got);
            checked++;
        }
    }
    free(gattr);
    free(buf);
    ckpt_param_table_free(t);
    ckpt_h5_reader_close(r);
    if (st == XFFL_OK && n_checked) *n_checked = checked;
    return st;
}
