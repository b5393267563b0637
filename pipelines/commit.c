#include "pipelines/commit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/digest.h"
#include "common/log.h"
#include "common/sign.h"
#include "common/util.h"
#include "libckpt/delta.h"

/* The attempt's one COMMIT, signed by the facility (signer NULL: an --insecure
 * federation): a second train job of the facility that chose the same attempt gets
 * EXISTS instead of a second COMMIT beside the first. */
static XFFL_MUST_USE xffl_status put_commit(store *s, const ckpt_manifest *m, const char *prefix,
                                           const xffl_signer *signer, char *key)
{
    char *text = NULL, unless[PIPE_KEY_MAX];
    size_t len = 0;
    char hex[XFFL_SHA256_HEX];
    int n = snprintf(unless, sizeof unless, "%s%s-", prefix, PIPE_COMMIT_STEM);
    xffl_status st = n < 0 || (size_t)n >= sizeof unless ? xffl_fail(XFFL_ERR_USAGE, "key %s too long", prefix) : XFFL_OK;
    if (st == XFFL_OK) st = ckpt_manifest_format(m, &text, &len);
    if (st == XFFL_OK) st = xffl_sign_append(signer, &text, &len);
    if (st == XFFL_OK) xffl_sha256_hex(text, len, hex);
    if (st == XFFL_OK) st = pipe_content_key(prefix, PIPE_COMMIT_STEM, hex, NULL, key, PIPE_KEY_MAX);
    if (st == XFFL_OK) st = store_put_unless(s, key, text, len, unless);
    if (st == XFFL_ERR_EXISTS)
        st = xffl_wrap(st, "another train job committed this attempt first; its delta stands");
    free(text);
    return st;
}

/* The committed part files into dir, replacing what it held (see keep_dir). */
static void keep_parts(const char *dir, const ckpt_delta_file *files, int nf)
{
    xffl_status st = xffl_rmtree(dir);
    if (st == XFFL_OK) st = xffl_mkdirs(dir);
    for (int i = 0; i < nf && st == XFFL_OK; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, files[i].name);
        if (rename(files[i].path, p) != 0) st = xffl_link_or_copy(files[i].path, p);
    }
    if (st != XFFL_OK) {
        xffl_log(XFFL_LOG_WARN, "warning: keeping the sent delta in %s: %s (the next replay downloads it)", dir,
                 xffl_errmsg());
        xffl_rmtree_cleanup(dir);
    }
}

/* before_commit on a thread of its own (its message travels back with it) */
typedef struct {
    const pipe_commit_spec *c;
    pthread_t th;
    int started;
    xffl_status st;
    char msg[XFFL_ERRMSG_MAX];
} beside;

static void *beside_main(void *v)
{
    beside *b = v;
    b->st = b->c->before_commit(b->c->before_commit_ctx);
    if (b->st != XFFL_OK) snprintf(b->msg, sizeof b->msg, "%s", xffl_errmsg());
    return NULL;
}

static void beside_start(beside *b)
{
    if (!b->c->before_commit) return;
    b->started = !pthread_create(&b->th, NULL, beside_main, b);
    if (!b->started) beside_main(b); /* no thread: here, before the upload */
}

static XFFL_MUST_USE xffl_status beside_join(beside *b)
{
    if (b->started) pthread_join(b->th, NULL);
    b->started = 0;
    return b->st == XFFL_OK ? XFFL_OK : xffl_fail(b->st, "%s", b->msg);
}

xffl_status pipe_commit_delta(store *s, const pipe_commit_spec *c, char *commit_key, uint64_t *bytes)
{
    char prefix[PIPE_KEY_MAX];
    pipe_attempt_prefix(c->round, c->facility, c->attempt, prefix, sizeof prefix);
    ckpt_manifest *m = NULL;
    XFFL_FORWARD(ckpt_manifest_create(&m));
    char *tmp = NULL;
    ckpt_delta_file *files = NULL;
    store_transfer *tr = NULL;
    int nf = 0;
    uint64_t total = 0;
    xffl_status st = XFFL_OK;
    /* headers first: the manifest keeps them in the order set */
#define H(expr) XFFL_CHECK_GOTO(st, (expr), done)
    H(ckpt_manifest_set(m, "format", PIPE_COMMIT_FORMAT));
    H(ckpt_manifest_set_int(m, "format_version", PIPE_COMMIT_FORMAT_VERSION));
    H(ckpt_manifest_set_int(m, "round", c->round));
    H(ckpt_manifest_set(m, "facility", c->facility));
    H(ckpt_manifest_set_int(m, "attempt", c->attempt));
    H(ckpt_manifest_set_int(m, "base_version", c->base->version));
    H(ckpt_manifest_set(m, "base_index", c->base->index_key));
    H(ckpt_manifest_set(m, "federation", c->fed_sha));
    H(ckpt_manifest_set(m, "encoding", ckpt_codec_name(c->f->encoding)));
    H(ckpt_manifest_set_int(m, "block", CKPT_CODEC_BLOCK_DEFAULT));
    H(ckpt_manifest_set_int(m, "tokens", c->tokens));
    H(ckpt_manifest_set_int(m, "steps", c->steps));
    H(ckpt_manifest_setf(m, "loss_first", "%.9g", c->loss_first));
    H(ckpt_manifest_setf(m, "loss_last", "%.9g", c->loss_last));
    H(ckpt_manifest_setf(m, "loss_mean", "%.9g", c->loss_mean));
    H(ckpt_manifest_setf(m, "seconds", "%.3f", c->seconds));
    H(xffl_mkdtemp("xffl-train", &tmp));
    ckpt_delta_meta meta = {.round = c->round, .base_version = c->base->version, .base_index = c->base->index_key,
                            .facility = c->facility, .tokens = c->tokens, .steps = c->steps,
                            .loss_first = c->loss_first, .loss_last = c->loss_last, .loss_mean = c->loss_mean};
    pipe_federation_delta_codec(c->f, c->round, &meta);
    ckpt_h5_options opt = {.level = c->f->zstd_level, .threads = c->threads};
    /* the object lines come after the headers: write parts into a side manifest */
    ckpt_manifest *lines = NULL;
    H(ckpt_manifest_create(&lines));
    st = ckpt_delta_write(tmp, c->t, c->delta, &meta, c->residual, c->f->part_size, &opt, prefix, lines, &files, &nf);
    if (st == XFFL_OK) {
        for (int i = 0; i < nf; i++) total += files[i].bytes;
        st = ckpt_manifest_set_int(m, "bytes", (int64_t)total);
        for (int i = 0; i < c->n_extra && st == XFFL_OK; i++)
            st = ckpt_manifest_set(m, c->extra_keys[i], c->extra_values[i]);
        for (int i = 0; i < lines->n_objects && st == XFFL_OK; i++)
            st = ckpt_manifest_add_object(m, lines->objects[i].name, lines->objects[i].bytes, lines->objects[i].sha256);
        for (int i = 0; i < lines->n_tensors && st == XFFL_OK; i++) {
            const ckpt_manifest_tensor *tl = &lines->tensors[i];
            st = ckpt_manifest_add_tensor(m, tl->name, tl->dtype, tl->ndim, tl->shape, tl->sha256);
        }
    }
    ckpt_manifest_free(lines);
    if (st != XFFL_OK) goto done;
    tr = calloc((size_t)nf, sizeof *tr);
    if (!tr) {
        st = xffl_fail(XFFL_ERR_NOMEM, "upload list");
        goto done;
    }
    char (*keys)[PIPE_KEY_MAX] = calloc((size_t)nf, PIPE_KEY_MAX);
    if (!keys) {
        st = xffl_fail(XFFL_ERR_NOMEM, "upload list");
        goto done;
    }
    for (int i = 0; i < nf; i++) {
        size_t pl = strlen(prefix), nl = strnlen(files[i].name, sizeof files[i].name);
        if (pl + nl >= PIPE_KEY_MAX) {
            free(keys);
            st = xffl_fail(XFFL_ERR_USAGE, "key %s%s too long", prefix, files[i].name);
            goto done;
        }
        memcpy(keys[i], prefix, pl);
        memcpy(keys[i] + pl, files[i].name, nl + 1);
        tr[i] = (store_transfer){.key = keys[i], .path = files[i].path, .sha256_hex = files[i].sha256};
    }
    beside b = {.c = c};
    beside_start(&b);
    st = store_put_many(s, tr, (size_t)nf);
    xffl_status bst = beside_join(&b);
    if (st == XFFL_OK) st = bst;
    free(keys);
    if (st != XFFL_OK) goto done;
    /* COMMIT last: the attempt exists for readers only from here on */
    H(put_commit(s, m, prefix, c->signer, commit_key));
    if (bytes) *bytes = total;
    if (c->keep_dir) keep_parts(c->keep_dir, files, nf);
#undef H
done:
    free(tr);
    free(files);
    if (tmp) {
        xffl_rmtree_cleanup(tmp);
        free(tmp);
    }
    ckpt_manifest_free(m);
    return st;
}
