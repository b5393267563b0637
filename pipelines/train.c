#include "pipelines/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/log.h"
#include "common/util.h"
#include "kernels/kern.h"
#include "libckpt/delta.h"
#include "pipelines/aggregate.h"
#include "pipelines/commit.h"
#include "pipelines/reproduce.h"
#include "text/loader.h"

void pipe_train_options_default(pipe_train_options *o)
{
    memset(o, 0, sizeof *o);
    o->round = -1;
    o->backend = "cpu";
}

/* Inner optimizer state as one file: int64 step, then m and v slabs. */
typedef struct {
    int64_t step;
    float *m, *v;
    int present;
    char sha[XFFL_SHA256_HEX];
} inner_state;

static void inner_free(inner_state *s)
{
    free(s->m);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static XFFL_MUST_USE xffl_status inner_load(const char *path, int64_t n, inner_state *s)
{
    void *data = NULL;
    size_t len = 0;
    XFFL_FORWARD(xffl_read_file(path, &data, &len));
    xffl_status st = XFFL_OK;
    if (len != 8 + (size_t)n * 8) {
        st = xffl_fail(XFFL_ERR_INVALID, "inner state %s: %zu bytes, expected %lld for this model", path, len,
                       (long long)(8 + n * 8));
        goto done;
    }
    s->m = malloc((size_t)n * 4);
    s->v = malloc((size_t)n * 4);
    if (!s->m || !s->v) {
        st = xffl_fail(XFFL_ERR_NOMEM, "inner state %s", path);
        goto done;
    }
    memcpy(&s->step, data, 8);
    memcpy(s->m, (char *)data + 8, (size_t)n * 4);
    memcpy(s->v, (char *)data + 8 + (size_t)n * 4, (size_t)n * 4);
    xffl_sha256_hex(data, len, s->sha);
    s->present = 1;
done:
    free(data);
    return st;
}

static XFFL_MUST_USE xffl_status inner_save(const char *path, int64_t n, const inner_state *s, char sha[XFFL_SHA256_HEX])
{
    size_t len = 8 + (size_t)n * 8;
    char *buf = malloc(len);
    XFFL_RETURN_IF(!buf, XFFL_ERR_NOMEM, "inner state %s", path);
    memcpy(buf, &s->step, 8);
    memcpy(buf + 8, s->m, (size_t)n * 4);
    memcpy(buf + 8 + (size_t)n * 4, s->v, (size_t)n * 4);
    if (sha) xffl_sha256_hex(buf, len, sha);
    xffl_status st = xffl_write_file_atomic(path, buf, len);
    free(buf);
    return st;
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

void pipe_inner_schedule(const pipe_federation *f, int64_t round, kern_adamw_config *ac, int64_t *step0)
{
    const int H = f->local_steps;
    kern_adamw_default(ac);
    ac->lr = (float)f->inner.lr;
    ac->min_lr = (float)f->inner.min_lr;
    ac->warmup_steps = f->inner.warmup;
    ac->total_steps = f->inner.total_rounds > 0 ? f->inner.total_rounds * H : H;
    ac->beta1 = (float)f->inner.beta1;
    ac->beta2 = (float)f->inner.beta2;
    ac->eps = (float)f->inner.eps;
    ac->weight_decay = (float)f->inner.weight_decay;
    ac->grad_clip = (float)f->inner.grad_clip;
    *step0 = f->inner.total_rounds > 0 ? (round - 1) * (int64_t)H : 0;
}

typedef struct {
    int64_t tokens, steps;
    double loss_first, loss_last, loss_mean, seconds;
    text_cursor end;
} local_result;

/* Round round's H AdamW steps from theta (t->total floats) on sh from cursor start. theta becomes
 * θ_local. inner (may hold state) is used when use_inner and updated on return. Step lines
 * are logged at progress: INFO for a facility's job, DEBUG for reproduce's re-run. */
static XFFL_MUST_USE xffl_status train_local(const pipe_federation *f, int64_t round, const ckpt_param_table *t, float *theta,
                               text_loader *sh, text_cursor start, const pipe_train_options *o, int use_inner,
                               inner_state *inner, xffl_log_level progress, local_result *r)
{
    memset(r, 0, sizeof *r);
    double t0 = xffl_now();
    kern_options ko = {.backend = o->backend, .threads = o->threads, .batch = f->batch, .seq_len = f->seq_len};
    kern_model *m = NULL;
    XFFL_FORWARD(kern_model_create(&f->model, &ko, &m));
    int B = f->batch, T = f->seq_len, H = f->local_steps;
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    xffl_status st = XFFL_OK;
    if (!in || !tg) {
        st = xffl_fail(XFFL_ERR_NOMEM, "batch buffers (%d x %d)", B, T);
        goto done;
    }
    XFFL_CHECK_GOTO(st, kern_set_params(m, theta), done);
    if (use_inner && inner->present)
        XFFL_CHECK_GOTO(st, kern_set_optimizer(m, inner->m, inner->v, inner->step), done);
    else
        XFFL_CHECK_GOTO(st, kern_reset_optimizer(m), done);
    kern_adamw_config ac;
    int64_t step0;
    pipe_inner_schedule(f, round, &ac, &step0);
    text_cursor c = start;
    double sum = 0;
    int every = H >= 10 ? H / 5 : 1;
    for (int s = 0; s < H; s++) {
        float loss = 0, gn = 0;
        XFFL_CHECK_GOTO(st, text_loader_next(sh, &c, B, T, in, tg), done);
        XFFL_CHECK_GOTO(st, kern_zero_grad(m), done);
        XFFL_CHECK_GOTO(st, kern_forward(m, in, tg, B, T, &loss), done);
        XFFL_CHECK_GOTO(st, kern_backward(m), done);
        XFFL_CHECK_GOTO(st, kern_adamw_step(m, &ac, (int)(step0 + s), &gn), done);
        if (!isfinite(loss)) {
            st = xffl_fail(XFFL_ERR_INVALID, "training diverged: loss %g at step %d", loss, s);
            goto done;
        }
        if (s == 0) r->loss_first = loss;
        r->loss_last = loss;
        sum += loss;
        if ((s + 1) % every == 0 || s + 1 == H)
            xffl_log(progress, "%s: step %d/%d loss %.4f (%.0f tokens/s)", o->facility, s + 1, H, loss,
                     (double)(s + 1) * B * T / (xffl_now() - t0));
    }
    r->loss_mean = H ? sum / H : 0;
    r->steps = H;
    r->tokens = (int64_t)H * B * T;
    r->end = c;
    XFFL_CHECK_GOTO(st, kern_get_params(m, theta), done);
    if (use_inner) {
        if (!inner->m) inner->m = malloc((size_t)t->total * 4);
        if (!inner->v) inner->v = malloc((size_t)t->total * 4);
        if (!inner->m || !inner->v) {
            st = xffl_fail(XFFL_ERR_NOMEM, "inner state");
            goto done;
        }
        XFFL_CHECK_GOTO(st, kern_get_optimizer(m, inner->m, inner->v, &inner->step), done);
        inner->present = 1;
    }
done:
    free(in);
    free(tg);
    kern_model_free(m);
    r->seconds = xffl_now() - t0;
    return st;
}

/* Cursor to start from: --state DIR/cursor, else this facility's latest COMMIT. */
static XFFL_MUST_USE xffl_status find_cursor(store *s, const pipe_train_options *o, int64_t round, text_cursor *c)
{
    memset(c, 0, sizeof *c);
    if (o->state_dir) {
        char p[4096];
        snprintf(p, sizeof p, "%s/cursor", o->state_dir);
        if (file_exists(p)) {
            void *d = NULL;
            size_t l = 0;
            XFFL_FORWARD(xffl_read_file(p, &d, &l));
            char *txt = d;
            while (l && (txt[l - 1] == '\n' || txt[l - 1] == ' ')) txt[--l] = 0;
            xffl_status st = text_cursor_parse(txt, c);
            free(d);
            return st == XFFL_OK ? st : xffl_wrap(st, "%s", p);
        }
    }
    for (int64_t r = round - 1; r >= 1 && r >= round - 64; r--) {
        pipe_round_listing l;
        XFFL_FORWARD(pipe_round_list(s, r, NULL, &l));
        const pipe_attempt *a = NULL;
        for (int i = 0; i < l.count; i++)
            if (!strcmp(l.items[i].facility, o->facility) && l.items[i].commit_key[0]) a = &l.items[i];
        if (a) {
            ckpt_manifest *m = NULL;
            xffl_status st = pipe_manifest_load(s, a->commit_key, NULL, &m, NULL);
            const char *ce = st == XFFL_OK ? ckpt_manifest_get(m, "cursor_end") : NULL;
            if (ce) st = text_cursor_parse(ce, c);
            ckpt_manifest_free(m);
            pipe_round_listing_free(&l);
            if (ce || st != XFFL_OK) return st;
        } else
            pipe_round_listing_free(&l);
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status load_floats(const char *path, int64_t n, float *out)
{
    void *d = NULL;
    size_t l = 0;
    XFFL_FORWARD(xffl_read_file(path, &d, &l));
    xffl_status st = l == (size_t)n * 4 ? XFFL_OK
                                       : xffl_fail(XFFL_ERR_INVALID, "%s: %zu bytes, expected %lld", path, l,
                                                   (long long)n * 4);
    if (st == XFFL_OK) memcpy(out, d, l);
    free(d);
    return st;
}

xffl_status pipe_train(store *s, const pipe_train_options *o, pipe_train_result *res)
{
    memset(res, 0, sizeof *res);
    double t0 = xffl_now();
    pipe_federation f;
    char fed_sha[XFFL_SHA256_HEX];
    pipe_version_ref base;
    XFFL_FORWARD(pipe_federation_load_latest(s, &base, &f, fed_sha));
    if (pipe_federation_facility_index(&f, o->facility) < 0) {
        char list[PIPE_MAX_FACILITIES * (PIPE_FACILITY_MAX + 1)] = "";
        for (int i = 0; i < f.n_facilities; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", f.facilities[i]);
        return xffl_fail(XFFL_ERR_USAGE, "facility '%s' is not in the federation (%s)", o->facility, list);
    }
    int64_t round = base.version + 1;
    if (o->round >= 0) {
        if (o->round <= base.version) {
            res->skipped = 1;
            res->round = o->round;
            snprintf(res->why, sizeof res->why, "version %lld exists already", (long long)o->round);
            return XFFL_OK;
        }
        XFFL_RETURN_IF(o->round > round, XFFL_ERR_NOT_YET, "round %lld needs version %lld; LATEST is v%06lld",
                       (long long)o->round, (long long)o->round - 1, (long long)base.version);
    }
    res->round = round;
    pipe_round_listing l;
    XFFL_FORWARD(pipe_round_list(s, round, NULL, &l));
    const pipe_attempt *a = pipe_round_latest_attempt(&l, o->facility);
    int attempt = 1, usable = 1; /* a pending attempt that aggregate would reject is no reason to stop */
    xffl_status ust = a && a->state == PIPE_ATTEMPT_PENDING
                          ? pipe_contrib_usable(s, &f, fed_sha, round, &base, a->commit_key, &usable) : XFFL_OK;
    if (ust != XFFL_OK) pipe_round_listing_free(&l);
    XFFL_FORWARD(ust);
    if (a) {
        if ((a->state == PIPE_ATTEMPT_PENDING && usable) || a->state == PIPE_ATTEMPT_ACCEPTED) {
            res->skipped = 1;
            res->attempt = a->attempt;
            snprintf(res->commit_key, sizeof res->commit_key, "%s", a->commit_key);
            snprintf(res->why, sizeof res->why, "%s has a %s attempt a%d for round %lld", o->facility,
                     pipe_attempt_state_name(a->state), a->attempt, (long long)round);
            pipe_round_listing_free(&l);
            return XFFL_OK;
        }
        attempt = a->state == PIPE_ATTEMPT_REJECTED || !usable ? a->attempt + 1 : a->attempt;
    }
    pipe_round_listing_free(&l);
    res->attempt = attempt;

    ckpt_param_table *t = NULL;
    XFFL_FORWARD(ckpt_param_table_create(&f.model, &t));
    const int64_t n = t->total;
    float *theta = malloc((size_t)n * 4), *base_theta = malloc((size_t)n * 4), *residual = NULL;
    text_loader *sh = NULL;
    inner_state inner;
    memset(&inner, 0, sizeof inner);
    xffl_status st = XFFL_OK;
    if (!theta || !base_theta) {
        st = xffl_fail(XFFL_ERR_NOMEM, "model slabs (%lld floats)", (long long)n);
        goto done;
    }
    xffl_log(XFFL_LOG_INFO, "%s: round %lld attempt a%d from v%06lld (%s)", o->facility, (long long)round, attempt,
             (long long)base.version, base.index_key);
    {
        const char *groups[] = {"model"};
        float *slabs[] = {base_theta};
        XFFL_CHECK_GOTO(st, pipe_version_fetch(s, &base, t, 1, groups, slabs, NULL), done);
    }
    memcpy(theta, base_theta, (size_t)n * 4);
    XFFL_CHECK_GOTO(st, text_loader_open(o->data_glob, f.model.vocab_size, &sh), done);
    text_cursor start;
    XFFL_CHECK_GOTO(st, find_cursor(s, o, round, &start), done);
    const int keep = o->keep_inner_state || f.keep_inner_state;
    const int lossy = ckpt_codec_lossy(f.encoding);
    char sd[4096] = "", p[4200];
    if (o->state_dir) {
        snprintf(sd, sizeof sd, "%s/r%06lld", o->state_dir, (long long)round);
        XFFL_CHECK_GOTO(st, xffl_mkdirs(sd), done);
    }
    char inner_sha[XFFL_SHA256_HEX] = "none";
    if (keep && o->state_dir) {
        snprintf(p, sizeof p, "%s/inner.bin", o->state_dir);
        if (file_exists(p)) {
            XFFL_CHECK_GOTO(st, inner_load(p, n, &inner), done);
            snprintf(inner_sha, sizeof inner_sha, "%s", inner.sha);
            /* the round's input, for reproduce --train */
            snprintf(p, sizeof p, "%s/inner.bin", sd);
            XFFL_CHECK_GOTO(st, inner_save(p, n, &inner, NULL), done);
        }
    }
    if (lossy) {
        residual = calloc((size_t)n, 4);
        if (!residual) {
            st = xffl_fail(XFFL_ERR_NOMEM, "residual");
            goto done;
        }
        if (o->state_dir) {
            snprintf(p, sizeof p, "%s/residual.f32", o->state_dir);
            if (file_exists(p)) XFFL_CHECK_GOTO(st, load_floats(p, n, residual), done);
            snprintf(p, sizeof p, "%s/residual.f32", sd);
            XFFL_CHECK_GOTO(st, xffl_write_file_atomic(p, residual, (size_t)n * 4), done);
        }
    }
    local_result lr;
    XFFL_CHECK_GOTO(st, train_local(&f, round, t, theta, sh, start, o, keep, &inner, XFFL_LOG_INFO, &lr), done);
    for (int64_t i = 0; i < n; i++) theta[i] -= base_theta[i];
    text_cursor_format(&start, res->cursor_start, sizeof res->cursor_start);
    text_cursor_format(&lr.end, res->cursor_end, sizeof res->cursor_end);
    char threads[16], bt[16], tt[16];
    snprintf(threads, sizeof threads, "%d", o->threads);
    snprintf(bt, sizeof bt, "%d", f.batch);
    snprintf(tt, sizeof tt, "%d", f.seq_len);
    const char *ek[] = {"cursor", "cursor_end", "backend", "threads", "batch", "seq_len", "inner_state", "shards"};
    const char *ev[] = {res->cursor_start, res->cursor_end, o->backend ? o->backend : "auto", threads, bt, tt,
                        inner_sha, text_loader_digests(sh)};
    pipe_commit_spec cs = {.f = &f, .fed_sha = fed_sha, .t = t, .base = &base, .round = round,
                           .facility = o->facility, .attempt = attempt, .delta = theta, .residual = residual,
                           .tokens = lr.tokens, .steps = lr.steps, .loss_first = lr.loss_first,
                           .loss_last = lr.loss_last, .loss_mean = lr.loss_mean, .seconds = lr.seconds,
                           .n_extra = 8, .extra_keys = ek, .extra_values = ev, .threads = o->zstd_threads};
    xffl_log(XFFL_LOG_INFO, "%s: uploading delta (%s)", o->facility, ckpt_codec_name(f.encoding));
    XFFL_CHECK_GOTO(st, pipe_commit_delta(s, &cs, res->commit_key, &res->bytes), done);
    /* committed: only now does the facility's state move on */
    if (o->state_dir) {
        snprintf(p, sizeof p, "%s/cursor", o->state_dir);
        char line[80];
        snprintf(line, sizeof line, "%s\n", res->cursor_end);
        XFFL_CHECK_GOTO(st, xffl_write_file_atomic(p, line, strlen(line)), done);
        if (keep) {
            snprintf(p, sizeof p, "%s/inner.bin", o->state_dir);
            XFFL_CHECK_GOTO(st, inner_save(p, n, &inner, NULL), done);
        }
        if (lossy) {
            snprintf(p, sizeof p, "%s/residual.f32", o->state_dir);
            XFFL_CHECK_GOTO(st, xffl_write_file_atomic(p, residual, (size_t)n * 4), done);
        }
    }
    res->tokens = lr.tokens;
    res->steps = lr.steps;
    res->loss_first = lr.loss_first;
    res->loss_last = lr.loss_last;
    res->loss_mean = lr.loss_mean;
    res->train_seconds = lr.seconds;
done:
    text_loader_close(sh);
    inner_free(&inner);
    free(theta);
    free(base_theta);
    free(residual);
    ckpt_param_table_free(t);
    res->seconds = xffl_now() - t0;
    return st;
}

xffl_status pipe_train_reproduce(store *s, const pipe_train_options *o, pipe_train_reproduce_report *out)
{
    memset(out, 0, sizeof *out);
    pipe_federation f;
    char fed_sha[XFFL_SHA256_HEX];
    pipe_version_ref vref;
    ckpt_manifest *idx = NULL, *m = NULL, *mine = NULL;
    XFFL_FORWARD(pipe_reproduce_find_version(s, o->round, &vref, &idx));
    xffl_status fst = pipe_federation_load_for(s, &vref, &f, fed_sha);
    if (fst != XFFL_OK) ckpt_manifest_free(idx);
    XFFL_FORWARD(fst);
    const char *ck = NULL;
    for (int i = 0; i < idx->n_contributors; i++)
        if (!strcmp(idx->contributors[i].facility, o->facility)) ck = idx->contributors[i].key;
    ckpt_param_table *t = NULL;
    float *theta = NULL, *base_theta = NULL, *residual = NULL;
    text_loader *sh = NULL;
    inner_state inner;
    memset(&inner, 0, sizeof inner);
    char *tmp = NULL;
    ckpt_delta_file *files = NULL;
    int nf = 0;
    xffl_status st = XFFL_OK;
    if (!ck) {
        st = xffl_fail(XFFL_ERR_NOT_FOUND, "%s did not contribute to version %lld (%s)", o->facility,
                       (long long)o->round, vref.index_key);
        goto done;
    }
    XFFL_CHECK_GOTO(st, pipe_manifest_load(s, ck, NULL, &m, NULL), done);
    const char *bk, *cur, *isha, *shards;
    XFFL_CHECK_GOTO(st, ckpt_manifest_require(m, ck, "base_index", &bk), done);
    XFFL_CHECK_GOTO(st, ckpt_manifest_require(m, ck, "cursor", &cur), done);
    XFFL_CHECK_GOTO(st, ckpt_manifest_require(m, ck, "inner_state", &isha), done);
    XFFL_CHECK_GOTO(st, ckpt_manifest_require(m, ck, "shards", &shards), done);
    const char *thr = ckpt_manifest_get(m, "threads"), *be = ckpt_manifest_get(m, "backend");
    pipe_train_options oo = *o;
    /* by default, re-run with the thread count the COMMIT records */
    if (oo.threads == 0 && thr) oo.threads = atoi(thr);
    char othr[16];
    snprintf(othr, sizeof othr, "%d", oo.threads);
    if (thr && strcmp(thr, othr) != 0)
        xffl_log(XFFL_LOG_WARN, "note: %s trained with --threads %s, re-running with %s: bits may differ", ck, thr, othr);
    if (be && o->backend && strcmp(be, o->backend) != 0)
        xffl_log(XFFL_LOG_WARN, "note: %s trained on backend %s, re-running on %s: bits may differ", ck, be,
                 o->backend);
    pipe_version_ref base;
    XFFL_CHECK_GOTO(st, pipe_reproduce_find_version(s, o->round - 1, &base, NULL), done);
    if (strcmp(base.index_key, bk) != 0) {
        st = xffl_fail(XFFL_ERR_INVALID, "%s was built on %s, but version %lld is %s", ck, bk, (long long)o->round - 1,
                       base.index_key);
        goto done;
    }
    XFFL_CHECK_GOTO(st, ckpt_param_table_create(&f.model, &t), done);
    const int64_t n = t->total;
    theta = malloc((size_t)n * 4);
    base_theta = malloc((size_t)n * 4);
    if (!theta || !base_theta) {
        st = xffl_fail(XFFL_ERR_NOMEM, "model slabs");
        goto done;
    }
    {
        const char *groups[] = {"model"};
        float *slabs[] = {base_theta};
        XFFL_CHECK_GOTO(st, pipe_version_fetch(s, &base, t, 1, groups, slabs, NULL), done);
    }
    memcpy(theta, base_theta, (size_t)n * 4);
    XFFL_CHECK_GOTO(st, text_loader_open(o->data_glob, f.model.vocab_size, &sh), done);
    if (strcmp(text_loader_digests(sh), shards) != 0) {
        st = xffl_fail(XFFL_ERR_INVALID, "--data %s is not the data %s trained on (shards %s, COMMIT says %s)",
                       o->data_glob, ck, text_loader_digests(sh), shards);
        goto done;
    }
    text_cursor start;
    XFFL_CHECK_GOTO(st, text_cursor_parse(cur, &start), done);
    int keep = strcmp(isha, "none") != 0;
    char p[4200];
    if (keep) {
        if (!o->state_dir) {
            st = xffl_fail(XFFL_ERR_USAGE, "%s used kept inner state: --state DIR is needed", ck);
            goto done;
        }
        snprintf(p, sizeof p, "%s/r%06lld/inner.bin", o->state_dir, (long long)o->round);
        XFFL_CHECK_GOTO(st, inner_load(p, n, &inner), done);
        if (strcmp(inner.sha, isha) != 0) {
            st = xffl_fail(XFFL_ERR_INVALID, "%s: digest %.12s, but %s used inner state %.12s", p, inner.sha, ck, isha);
            goto done;
        }
    }
    if (ckpt_codec_lossy(f.encoding)) {
        residual = calloc((size_t)n, 4);
        if (!residual) {
            st = xffl_fail(XFFL_ERR_NOMEM, "residual");
            goto done;
        }
        if (o->state_dir) {
            snprintf(p, sizeof p, "%s/r%06lld/residual.f32", o->state_dir, (long long)o->round);
            if (file_exists(p)) XFFL_CHECK_GOTO(st, load_floats(p, n, residual), done);
        }
    }
    local_result lr;
    XFFL_CHECK_GOTO(st, train_local(&f, o->round, t, theta, sh, start, &oo, keep, &inner, XFFL_LOG_DEBUG, &lr), done);
    for (int64_t i = 0; i < n; i++) theta[i] -= base_theta[i];
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("xffl-retrain", &tmp), done);
    XFFL_CHECK_GOTO(st, ckpt_manifest_create(&mine), done);
    ckpt_delta_meta meta = {.round = o->round, .base_version = base.version, .base_index = base.index_key,
                            .facility = o->facility, .tokens = lr.tokens, .steps = lr.steps,
                            .codec = f.encoding, .block = CKPT_CODEC_BLOCK_DEFAULT};
    XFFL_CHECK_GOTO(st, ckpt_delta_write(tmp, t, theta, &meta, residual, 0, NULL, "", mine, &files, &nf), done);
    char first[128] = "";
    for (int i = 0; i < m->n_tensors; i++) {
        int j = ckpt_manifest_find_tensor(mine, m->tensors[i].name);
        out->tensors_compared++;
        if (j < 0 || strcmp(mine->tensors[j].sha256, m->tensors[i].sha256) != 0) {
            out->tensors_differ++;
            xffl_log(XFFL_LOG_ERROR, "differs: delta tensor %s of %s: stored %.12s, re-trained %.12s",
                     m->tensors[i].name, o->facility, m->tensors[i].sha256, j < 0 ? "(missing)" : mine->tensors[j].sha256);
            if (!first[0]) snprintf(first, sizeof first, "%s", m->tensors[i].name);
        }
    }
    if (out->tensors_differ)
        st = xffl_fail(XFFL_ERR_INVALID, "%s's training for round %lld does not reproduce: %d of %d delta tensors "
                       "differ (first: %s)", o->facility, (long long)o->round, out->tensors_differ,
                       out->tensors_compared, first);
done:
    free(files);
    if (tmp) {
        xffl_rmtree_cleanup(tmp);
        free(tmp);
    }
    text_loader_close(sh);
    inner_free(&inner);
    free(theta);
    free(base_theta);
    free(residual);
    ckpt_param_table_free(t);
    ckpt_manifest_free(idx);
    ckpt_manifest_free(m);
    ckpt_manifest_free(mine);
    return st;
}
