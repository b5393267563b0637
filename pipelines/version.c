/* Versions: LATEST, part plan, model attributes and publish. Fetch and verification
 * live in version_read.c. See version.h. */
#include "pipelines/version.h"
#include "common/sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "pipelines/update.h"

xffl_status pipe_version_plan(const ckpt_param_table *t, int n_groups, uint64_t part_size, pipe_part_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    XFFL_RETURN_IF(n_groups < 1 || n_groups > PIPE_MAX_GROUPS, XFFL_ERR_INTERNAL, "part plan: %d groups", n_groups);
    if (part_size == 0) part_size = (uint64_t)1 << 30;
    plan->first = calloc((size_t)t->count, sizeof *plan->first);
    plan->count = calloc((size_t)t->count, sizeof *plan->count);
    plan->raw_bytes = calloc((size_t)t->count, sizeof *plan->raw_bytes);
    if (!plan->first || !plan->count || !plan->raw_bytes) {
        pipe_part_plan_free(plan);
        return xffl_fail(XFFL_ERR_NOMEM, "part plan");
    }
    int p = -1;
    for (int i = 0; i < t->count; i++) {
        uint64_t b = (uint64_t)t->params[i].numel * 4u * (uint64_t)n_groups;
        if (p < 0 || plan->raw_bytes[p] + b > part_size) {
            p++;
            plan->first[p] = i;
        }
        plan->count[p]++;
        plan->raw_bytes[p] += b;
    }
    plan->n_parts = p + 1;
    return XFFL_OK;
}

void pipe_part_plan_free(pipe_part_plan *plan)
{
    if (!plan) return;
    free(plan->first);
    free(plan->count);
    free(plan->raw_bytes);
    memset(plan, 0, sizeof *plan);
}

xffl_status pipe_model_attrs_write(ckpt_h5_writer *w, const ckpt_model_config *c)
{
    XFFL_FORWARD(ckpt_h5_attr_int(w, "dim", c->dim));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "n_layers", c->n_layers));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "n_heads", c->n_heads));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "n_kv_heads", c->n_kv_heads));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "hidden_dim", c->hidden_dim));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "vocab_size", c->vocab_size));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "max_seq_len", c->max_seq_len));
    XFFL_FORWARD(ckpt_h5_attr_double(w, "norm_eps", c->norm_eps));
    XFFL_FORWARD(ckpt_h5_attr_double(w, "rope_theta", c->rope_theta));
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status int_attr(ckpt_h5_reader *r, const char *name, int *out)
{
    int64_t v;
    XFFL_FORWARD(ckpt_h5_get_attr_int(r, name, &v));
    XFFL_RETURN_IF(v < INT32_MIN || v > INT32_MAX, XFFL_ERR_INVALID, "%s: attribute %s = %lld out of range",
                   ckpt_h5_reader_path(r), name, (long long)v);
    *out = (int)v;
    return XFFL_OK;
}

xffl_status pipe_model_attrs_read(ckpt_h5_reader *r, ckpt_model_config *c)
{
    double eps, theta;
    XFFL_FORWARD(int_attr(r, "dim", &c->dim));
    XFFL_FORWARD(int_attr(r, "n_layers", &c->n_layers));
    XFFL_FORWARD(int_attr(r, "n_heads", &c->n_heads));
    XFFL_FORWARD(int_attr(r, "n_kv_heads", &c->n_kv_heads));
    XFFL_FORWARD(int_attr(r, "hidden_dim", &c->hidden_dim));
    XFFL_FORWARD(int_attr(r, "vocab_size", &c->vocab_size));
    XFFL_FORWARD(int_attr(r, "max_seq_len", &c->max_seq_len));
    XFFL_FORWARD(ckpt_h5_get_attr_double(r, "norm_eps", &eps));
    XFFL_FORWARD(ckpt_h5_get_attr_double(r, "rope_theta", &theta));
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    xffl_status s = ckpt_model_validate(c);
    if (s != XFFL_OK) return xffl_wrap(s, "%s", ckpt_h5_reader_path(r));
    return XFFL_OK;
}

/* Writes part p of the plan to path; adds its tensor lines to the INDEX. */
static XFFL_MUST_USE xffl_status write_part(const ckpt_param_table *t, const pipe_version_spec *sp, const pipe_part_plan *plan, int p,
                              const char *path, pipe_tensor_fn fn, void *ctx, float *buf, ckpt_manifest *index)
{
    ckpt_h5_options opt = {.level = sp->level, .threads = sp->threads};
    ckpt_h5_writer *w;
    XFFL_FORWARD(ckpt_h5_writer_create(path, &opt, &w));
    char contributors[4096] = "", groups[256] = "";
    for (int i = 0; i < sp->n_contributors; i++)
        snprintf(contributors + strlen(contributors), sizeof contributors - strlen(contributors), "%s%s", i ? "," : "",
                 sp->contributor_facility[i]);
    for (int g = 0; g < sp->n_groups; g++)
        snprintf(groups + strlen(groups), sizeof groups - strlen(groups), "%s%s", g ? "," : "", sp->groups[g]);
    xffl_status s = XFFL_OK;
#define W(expr) if (s == XFFL_OK) s = (expr)
    W(ckpt_h5_attr_str(w, "format", PIPE_CKPT_FORMAT));
    W(ckpt_h5_attr_int(w, "format_version", PIPE_CKPT_FORMAT_VERSION));
    W(ckpt_h5_attr_int(w, "version", sp->version));
    W(ckpt_h5_attr_int(w, "parent", sp->parent));
    W(ckpt_h5_attr_int(w, "round", sp->round));
    W(ckpt_h5_attr_str(w, "algorithm", sp->algorithm));
    W(ckpt_h5_attr_str(w, "contributors", contributors));
    W(ckpt_h5_attr_int(w, "tokens_seen", sp->tokens_seen));
    W(ckpt_h5_attr_str(w, "groups", groups));
    W(ckpt_h5_attr_int(w, "part", p));
    W(ckpt_h5_attr_int(w, "parts", plan->n_parts));
    W(ckpt_h5_attr_int(w, "first_tensor", plan->first[p]));
    W(ckpt_h5_attr_int(w, "n_tensors", plan->count[p]));
    W(pipe_model_attrs_write(w, &t->cfg));
#undef W
    for (int g = 0; g < sp->n_groups && s == XFFL_OK; g++) {
        for (int i = plan->first[p]; i < plan->first[p] + plan->count[p] && s == XFFL_OK; i++) {
            const ckpt_param *pr = &t->params[i];
            char name[CKPT_NAME_MAX + 64], sha[XFFL_SHA256_HEX];
            snprintf(name, sizeof name, "%s/%s", sp->groups[g], pr->name);
            s = fn(ctx, g, i, buf);
            if (s != XFFL_OK) {
                xffl_wrap(s, "tensor %s", name);
                break;
            }
            s = ckpt_h5_write(w, name, CKPT_DT_F32, pr->ndim, pr->shape, buf, sha, NULL);
            if (s == XFFL_OK) s = ckpt_manifest_add_tensor(index, name, CKPT_DT_F32, pr->ndim, pr->shape, sha);
        }
    }
    if (s != XFFL_OK) {
        ckpt_h5_writer_abort(w);
        return s;
    }
    return ckpt_h5_writer_close(w);
}

/* Moves LATEST to ref unless it already names this version or a later one. */
static XFFL_MUST_USE xffl_status move_latest(store *s, const pipe_version_ref *ref, int *written)
{
    *written = 0;
    pipe_version_ref now;
    xffl_status st = pipe_latest_read(s, &now);
    if (st == XFFL_OK && now.version >= ref->version) return XFFL_OK;
    if (st != XFFL_OK && st != XFFL_ERR_NOT_FOUND && st != XFFL_ERR_CORRUPT) return st;
    char line[PIPE_KEY_MAX + 100];
    int n = pipe_latest_format(ref, line, sizeof line);
    XFFL_FORWARD(store_put(s, PIPE_LATEST_KEY, line, (size_t)n));
    *written = 1;
    return XFFL_OK;
}

enum { UPLOAD_BATCH = 4 };

xffl_status pipe_version_publish(store *s, const ckpt_param_table *t, const pipe_version_spec *sp, pipe_tensor_fn fn,
                                 void *ctx, pipe_version_result *res)
{
    XFFL_RETURN_IF(sp->n_groups < 1 || sp->n_groups > PIPE_MAX_GROUPS || strcmp(sp->groups[0], "model") != 0,
                   XFFL_ERR_INTERNAL, "version spec: groups must start with \"model\" (1..%d)", PIPE_MAX_GROUPS);
    XFFL_RETURN_IF(sp->version < 0, XFFL_ERR_INTERNAL, "version spec: version %lld", (long long)sp->version);
    pipe_part_plan plan;
    XFFL_FORWARD(pipe_version_plan(t, sp->n_groups, sp->part_size, &plan));
    int64_t maxn = 0;
    for (int i = 0; i < t->count; i++)
        if (t->params[i].numel > maxn) maxn = t->params[i].numel;
    float *buf = malloc((size_t)maxn * sizeof *buf);
    ckpt_manifest *index = NULL;
    char *dir = NULL, *text = NULL;
    char prefix[40];
    pipe_version_prefix(sp->version, prefix, sizeof prefix);
    char (*paths)[4096] = calloc(UPLOAD_BATCH, sizeof *paths);
    char (*keys)[PIPE_KEY_MAX] = calloc(UPLOAD_BATCH, sizeof *keys);
    uint64_t stored = 0, raw = 0;
    xffl_status st = XFFL_OK;
    if (!buf || !paths || !keys) {
        st = xffl_fail(XFFL_ERR_NOMEM, "buffer for one tensor (%lld floats)", (long long)maxn);
        goto done;
    }
    XFFL_CHECK_GOTO(st, ckpt_manifest_create(&index), done);
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("version", &dir), done);
    for (int b0 = 0; b0 < plan.n_parts; b0 += UPLOAD_BATCH) {
        int nb = plan.n_parts - b0 < UPLOAD_BATCH ? plan.n_parts - b0 : UPLOAD_BATCH;
        store_transfer tr[UPLOAD_BATCH];
        char shas[UPLOAD_BATCH][XFFL_SHA256_HEX];
        for (int k = 0; k < nb; k++) {
            int p = b0 + k;
            snprintf(paths[k], sizeof paths[k], "%s/part-%03d.h5", dir, p);
            XFFL_CHECK_GOTO(st, write_part(t, sp, &plan, p, paths[k], fn, ctx, buf, index), done);
            char *sha = shas[k];
            uint64_t size;
            XFFL_CHECK_GOTO(st, xffl_sha256_file(paths[k], sha, &size), done);
            XFFL_CHECK_GOTO(st, pipe_part_key(prefix, p, sha, keys[k], sizeof keys[k]), done);
            XFFL_CHECK_GOTO(st, ckpt_manifest_add_object(index, keys[k], size, sha), done);
            tr[k] = (store_transfer){.key = keys[k], .path = paths[k], .sha256_hex = sha};
            stored += size;
            raw += plan.raw_bytes[p];
        }
        XFFL_CHECK_GOTO(st, store_put_many(s, tr, (size_t)nb), done);
        for (int k = 0; k < nb; k++) unlink(paths[k]);
    }
    /* Header lines first (manifest.h keeps insertion order), then the body. */
    ckpt_manifest *hdr;
    XFFL_CHECK_GOTO(st, ckpt_manifest_create(&hdr), done);
    char groups[256] = "";
    for (int g = 0; g < sp->n_groups; g++)
        snprintf(groups + strlen(groups), sizeof groups - strlen(groups), "%s%s", g ? "," : "", sp->groups[g]);
#define H(expr) if (st == XFFL_OK) st = (expr)
    H(ckpt_manifest_set(hdr, "format", PIPE_INDEX_FORMAT));
    H(ckpt_manifest_set_int(hdr, "format_version", PIPE_INDEX_FORMAT_VERSION));
    H(ckpt_manifest_set_int(hdr, "version", sp->version));
    H(ckpt_manifest_set_int(hdr, "parent", sp->parent));
    H(ckpt_manifest_set_int(hdr, "round", sp->round));
    H(ckpt_manifest_set(hdr, "algorithm", sp->algorithm));
    H(ckpt_manifest_set(hdr, "federation", sp->federation_sha256));
    H(ckpt_manifest_set_int(hdr, "tokens_seen", sp->tokens_seen));
    H(ckpt_manifest_set(hdr, "groups", groups));
    H(ckpt_manifest_set_int(hdr, "parts", plan.n_parts));
    for (int i = 0; i < sp->n_extra; i++) H(ckpt_manifest_set(hdr, sp->extra_keys[i], sp->extra_values[i]));
    for (int i = 0; i < sp->n_contributors; i++)
        H(ckpt_manifest_add_contributor(hdr, sp->contributor_facility[i], sp->contributor_commit[i]));
#undef H
    /* Move the body built while writing parts behind the header. */
    if (st == XFFL_OK) {
        hdr->objects = index->objects, hdr->n_objects = index->n_objects;
        hdr->tensors = index->tensors, hdr->n_tensors = index->n_tensors;
        index->objects = NULL, index->n_objects = 0;
        index->tensors = NULL, index->n_tensors = 0;
    }
    ckpt_manifest_free(index);
    index = hdr;
    XFFL_CHECK_GOTO(st, st, done);
    size_t len;
    XFFL_CHECK_GOTO(st, ckpt_manifest_format(index, &text, &len), done);
    /* the signature line is part of the INDEX's bytes, so of its name and LATEST's digest */
    XFFL_CHECK_GOTO(st, xffl_sign_append(sp->signer, &text, &len), done);
    pipe_version_ref ref = {.version = sp->version};
    xffl_sha256_hex(text, len, ref.index_sha);
    XFFL_CHECK_GOTO(st, pipe_content_key(prefix, PIPE_INDEX_STEM, ref.index_sha, NULL, ref.index_key, sizeof ref.index_key), done);
    XFFL_CHECK_GOTO(st, store_put(s, ref.index_key, text, len), done);
    pipe_update_result ur = {0};
    if (sp->update_from && sp->update_base) {
        pipe_update_spec us = {.target = &ref, .base = sp->update_from, .federation_sha256 = sp->federation_sha256,
                               .base_model = sp->update_base, .fn = fn, .ctx = ctx, .part_size = sp->part_size,
                               .level = sp->level, .threads = sp->threads, .signer = sp->signer};
        if (pipe_update_publish(s, t, &us, &ur) != XFFL_OK) {
            xffl_log(XFFL_LOG_WARN, "warning: %s (facilities will download version %lld in full)", xffl_errmsg(),
                     (long long)sp->version);
            memset(&ur, 0, sizeof ur);
        } else
            xffl_log(XFFL_LOG_INFO, "wrote %s: %llu bytes (the version's parts: %llu), %d of %d tensors as XOR words",
                     ur.key, (unsigned long long)ur.stored_bytes, (unsigned long long)stored, ur.n_xor, ur.n_tensors);
    }
    int written = 0;
    XFFL_CHECK_GOTO(st, move_latest(s, &ref, &written), done);
    if (res) {
        res->ref = ref;
        res->n_parts = plan.n_parts;
        res->raw_bytes = raw;
        res->stored_bytes = stored;
        res->latest_written = written;
        snprintf(res->update_key, sizeof res->update_key, "%s", ur.key);
        res->update_bytes = ur.stored_bytes;
    }
done:
    if (st != XFFL_OK) xffl_wrap(st, "publishing version %lld to %s", (long long)sp->version, store_url(s));
    if (dir) xffl_rmtree_cleanup(dir);
    free(dir);
    free(text);
    free(paths);
    free(keys);
    free(buf);
    ckpt_manifest_free(index);
    pipe_part_plan_free(&plan);
    return st;
}
