#include "pipelines/train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/log.h"
#include "common/util.h"
#include "kernels/kern.h"
#include "libckpt/delta.h"
#include "pipelines/aggregate.h"
#include "pipelines/bench_attack.h"
#include "pipelines/commit.h"
#include "pipelines/loop.h"
#include "pipelines/download.h"
#include "pipelines/train_job.h"
#include "text/loader.h"

void pipe_train_options_default(pipe_train_options *o)
{
    memset(o, 0, sizeof *o);
    o->round = -1;
    o->keep_rounds = -1;
    o->backend = "cpu";
    o->precision = KERN_PREC_AUTO;
}


void train_inner_free(inner_state *s)
{
    xffl_free_big(s->m);
    xffl_free_big(s->v);
    memset(s, 0, sizeof *s);
}

/* The file straight into step, m and v (no copy of 8n bytes through a buffer), its
 * digest taken as it is read. */
XFFL_MUST_USE xffl_status train_inner_load(const char *path, int64_t n, inner_state *s)
{
    s->m = xffl_alloc_big((size_t)n * 4);
    s->v = xffl_alloc_big((size_t)n * 4);
    XFFL_RETURN_IF(!s->m || !s->v, XFFL_ERR_NOMEM, "inner state %s", path);
    void *parts[3] = {&s->step, s->m, s->v};
    const size_t lens[3] = {8, (size_t)n * 4, (size_t)n * 4};
    XFFL_FORWARD(xffl_read_file_parts(path, parts, lens, 3, s->sha)); /* a wrong size names the file */
    s->present = 1;
    return XFFL_OK;
}

int train_file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

void pipe_inner_schedule(const pipe_federation *f, int64_t round, kern_adamw_config *ac, int64_t *step0)
{
    kern_adamw_default(ac);
    ac->lr = (float)f->inner.lr;
    ac->min_lr = (float)f->inner.min_lr;
    ac->warmup_steps = f->inner.warmup;
    /* one schedule over rounds 1..total_rounds counts their steps (total_rounds x H
     * unless a local-step schedule varies H), so a round's steps sit where they would in
     * one run of that many steps; else it restarts every round, over the round's steps */
    int64_t total = f->inner.total_rounds > 0 ? pipe_federation_steps_before(f, (int64_t)f->inner.total_rounds + 1)
                                              : pipe_federation_round_steps(f, round);
    ac->total_steps = total < INT32_MAX ? (int)total : INT32_MAX;
    ac->beta1 = (float)f->inner.beta1;
    ac->beta2 = (float)f->inner.beta2;
    ac->eps = (float)f->inner.eps;
    ac->weight_decay = (float)f->inner.weight_decay;
    ac->grad_clip = (float)f->inner.grad_clip;
    *step0 = f->inner.total_rounds > 0 ? pipe_federation_steps_before(f, round) : 0;
}

static XFFL_MUST_USE xffl_status loader_batch(void *ctx, int64_t seq, int B, int T, int32_t *in, int32_t *tg)
{
    text_cursor c = {.seq = seq};
    return text_loader_next(ctx, &c, B, T, in, tg);
}

/* The loop's options for round `round` of f from cursor start (the job's and
 * reproduce's: one place, so that both run the same steps). */
static void loop_options(const pipe_federation *f, int64_t round, const pipe_train_options *o, text_loader *sh,
                         text_cursor start, xffl_log_level progress, pipe_loop_options *lo)
{
    memset(lo, 0, sizeof *lo);
    lo->model = &f->model;
    lo->backend = o->backend;
    lo->threads = o->threads;
    lo->steps = pipe_federation_round_steps(f, round);
    lo->batch = f->batch;
    lo->seq_len = f->seq_len;
    lo->accumulate = o->accumulate;
    lo->recompute = o->recompute;
    lo->precision = o->precision;
    lo->optimizer = o->optimizer;
    pipe_inner_schedule(f, round, &lo->adamw, &lo->step0);
    lo->cursor = start.seq;
    lo->next_batch = loader_batch;
    lo->batch_ctx = sh;
    lo->label = o->facility;
    lo->progress = progress;
}

/* Cursor to start from: --state DIR/cursor, else this facility's latest COMMIT. */
static XFFL_MUST_USE xffl_status find_cursor(store *s, const pipe_train_options *o, int64_t round, text_cursor *c)
{
    memset(c, 0, sizeof *c);
    if (o->state_dir) {
        char p[4096];
        snprintf(p, sizeof p, "%s/cursor", o->state_dir);
        if (train_file_exists(p)) {
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

XFFL_MUST_USE xffl_status train_load_floats(const char *path, int64_t n, float *out)
{
    void *parts[1] = {out};
    const size_t lens[1] = {(size_t)n * 4};
    return xffl_read_file_parts(path, parts, lens, 1, NULL);
}



void train_job_free(round_job *j)
{
    text_loader_close(j->sh);
    train_inner_free(&j->inner);
    xffl_free_big(j->theta);
    xffl_free_big(j->base_theta);
    xffl_free_big(j->residual);
    xffl_free_big(j->outer);
    ckpt_param_table_free(j->t);
    xffl_signer_free(j->signer);
}

/* Before anything is trained: federation.h5 is the one pinned (in --state DIR when
 * there is one), LATEST's INDEX is the aggregator's, and this facility's key is at hand
 * (a missing key fails now, not after the round's training). */
static XFFL_MUST_USE xffl_status trust_round(store *s, const pipe_train_options *o, round_job *j)
{
    pipe_trust_options t = o->trust ? *o->trust : (pipe_trust_options){0};
    char pin[4200];
    if (!t.pin_file && o->state_dir) {
        snprintf(pin, sizeof pin, "%s/federation.sha256", o->state_dir);
        t.pin_file = pin;
    }
    XFFL_FORWARD(pipe_trust_pin(s, &t, j->fed_sha));
    XFFL_FORWARD(pipe_trust_check_index(s, &j->f, &j->base, NULL));
    if (pipe_federation_facility_index(&j->f, o->facility) < 0) return XFFL_OK; /* refused next, by name */
    return pipe_trust_signer(&t, &j->f, o->facility, &j->signer);
}

/* The facility's shards, read in the federation's order (data_strided: text/loader.h). */
XFFL_MUST_USE xffl_status train_open_shards(const char *glob, const pipe_federation *f, text_loader **out)
{
    XFFL_FORWARD(text_loader_open(glob, f->model.vocab_size, f->tokenizer_sha256, out));
    if (f->data_strided) text_loader_stride(*out, f->seed);
    return XFFL_OK;
}

/* the COMMIT keys a round trained ahead was replayed from, as the list download.h takes */
static void ahead_key_list(const round_job *j, const char **keys)
{
    for (int i = 0; i < j->n_ahead; i++) keys[i] = j->ahead_keys[i];
}

double pipe_train_wait(const pipe_train_options *o)
{
    return o->wait > 0 ? o->wait : 600;
}

/* Training ahead (train.h): whether round `round` (v+1) has every facility's pending
 * attempt, waiting for them; *go = 1 with their COMMIT keys in j when it does, 0 when
 * LATEST moved on meanwhile (the ordinary job then finds round v+1 accepted). */
static XFFL_MUST_USE xffl_status ahead_ready(store *s, const pipe_train_options *o, round_job *j, int64_t round,
                                             int *go)
{
    const pipe_federation *f = &j->f;
    const double until = xffl_now() + pipe_train_wait(o);
    xffl_backoff pause;
    xffl_backoff_init(&pause, o->poll);
    *go = 0;
    for (int waited = 0;; waited = 1) {
        pipe_round_listing l;
        XFFL_FORWARD(pipe_round_list_signed(s, round, NULL, f->aggregator_key, &l));
        int k = 0;
        xffl_status st = XFFL_OK;
        for (int i = 0; st == XFFL_OK && i < f->n_facilities; i++) {
            const pipe_attempt *a = pipe_round_latest_attempt(&l, f->facilities[i]);
            int usable = 0;
            if (a && a->state == PIPE_ATTEMPT_PENDING)
                st = pipe_contrib_usable(s, f, j->fed_sha, round, &j->base, a->commit_key, &usable);
            if (st == XFFL_OK && usable) snprintf(j->ahead_keys[k++], PIPE_KEY_MAX, "%s", a->commit_key);
        }
        pipe_round_listing_free(&l);
        XFFL_FORWARD(st);
        if (k == f->n_facilities) {
            j->n_ahead = k;
            *go = 1;
            return XFFL_OK;
        }
        pipe_version_ref now;
        st = pipe_version_resolve(s, -1, &now);
        if (st != XFFL_OK && st != XFFL_ERR_NOT_FOUND) return st;
        if (st == XFFL_OK && now.version >= round) return XFFL_OK;
        XFFL_RETURN_IF(xffl_now() > until, XFFL_ERR_NOT_YET,
                       "round %lld: %d of %d facilities have a delta after %.0f s; nothing to train ahead from",
                       (long long)round, k, f->n_facilities, pipe_train_wait(o));
        if (!waited)
            xffl_log(XFFL_LOG_INFO, "%s: round %lld: %d of %d deltas; waiting for the rest to train ahead", o->facility,
                     (long long)round, k, f->n_facilities);
        xffl_backoff_sleep(&pause);
    }
}

/* Before the COMMIT of a round trained ahead: wait for version base.version, check it
 * is the replay, and make it the base (its INDEX key is what the COMMIT names).
 * j->ahead_missed when it is not. */
static XFFL_MUST_USE xffl_status ahead_confirm(store *s, const pipe_train_options *o, round_job *j)
{
    const double until = xffl_now() + pipe_train_wait(o);
    xffl_backoff pause;
    xffl_backoff_init(&pause, o->poll);
    pipe_version_ref ref;
    xffl_status st;
    /* published: LATEST names it (the aggregation job writes the INDEX before) */
    while ((st = pipe_version_resolve(s, -1, &ref)) == XFFL_OK && ref.version < j->base.version) {
        XFFL_RETURN_IF(xffl_now() > until, XFFL_ERR_NOT_YET, "version %lld, trained ahead from, not published after %.0f s",
                       (long long)j->base.version, pipe_train_wait(o));
        xffl_backoff_sleep(&pause);
    }
    XFFL_FORWARD(st);
    if (ref.version != j->base.version) XFFL_FORWARD(pipe_version_resolve(s, j->base.version, &ref));
    const char *keys[PIPE_MAX_FACILITIES];
    ahead_key_list(j, keys);
    pipe_download_options dopt = {.f = &j->f, .fed_sha = j->fed_sha, .state_dir = o->state_dir, .threads = o->threads};
    st = pipe_download_matches(s, &ref, &dopt, j->n_ahead, keys, j->t, j->base_theta, j->outer);
    if (st == XFFL_ERR_INVALID || st == XFFL_ERR_CORRUPT) {
        j->ahead_missed = 1;
        xffl_log(XFFL_LOG_WARN, "warning: %s: version %lld is not the replay round %lld was trained from (%s); "
                 "training it again from the published version", o->facility, (long long)ref.version,
                 (long long)ref.version + 1, xffl_errmsg());
        return st;
    }
    XFFL_FORWARD(st);
    XFFL_FORWARD(pipe_trust_check_index(s, &j->f, &ref, NULL));
    j->base = ref;
    j->ahead = 0;
    xffl_log(XFFL_LOG_INFO, "%s: v%06lld (%s) is the replay round %lld was trained from", o->facility,
             (long long)ref.version, ref.index_key, (long long)ref.version + 1);
    return XFFL_OK;
}

/* Rank 0: the round, the attempt, version v's weights, the cursor, the inner state and
 * the residual; plan->skipped (with res filled) when there is nothing to do. */
static XFFL_MUST_USE xffl_status prepare(store *s, const pipe_train_options *o, round_job *j, round_plan *plan,
                                         pipe_train_result *res)
{
    pipe_federation *f = &j->f;
    pipe_version_ref *base = &j->base;
    XFFL_FORWARD(pipe_federation_load_latest(s, base, f, j->fed_sha));
    XFFL_FORWARD(trust_round(s, o, j));
    if (o->state_dir) XFFL_FORWARD(train_state_recover(s, o->state_dir, o->facility));
    if (pipe_federation_facility_index(f, o->facility) < 0) {
        char list[PIPE_MAX_FACILITIES * (PIPE_FACILITY_MAX + 1)] = "";
        for (int i = 0; i < f->n_facilities; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", f->facilities[i]);
        return xffl_fail(XFFL_ERR_USAGE, "facility '%s' is not in the federation (%s)", o->facility, list);
    }
    int64_t round = base->version + 1;
    if (o->round >= 0) {
        if (o->round <= base->version) {
            res->skipped = plan->skipped = 1;
            res->round = plan->round = o->round;
            snprintf(res->why, sizeof res->why, "version %lld exists already", (long long)o->round);
            return XFFL_OK;
        }
        /* ahead, round v+2 may start from a replay of v+1 */
        XFFL_RETURN_IF(o->round > round + (o->ahead ? 1 : 0), XFFL_ERR_NOT_YET,
                       "round %lld needs version %lld; LATEST is v%06lld", (long long)o->round,
                       (long long)o->round - 1, (long long)base->version);
    }
    const int want_ahead = o->ahead && (o->round < 0 || o->round == round + 1);
    res->round = plan->round = round;
    pipe_round_listing l;
    XFFL_FORWARD(pipe_round_list_signed(s, round, NULL, f->aggregator_key, &l));
    const pipe_attempt *a = pipe_round_latest_attempt(&l, o->facility);
    int attempt = 1, usable = 1; /* a pending attempt that aggregate would reject is no reason to stop */
    xffl_status ust = a && a->state == PIPE_ATTEMPT_PENDING
                          ? pipe_contrib_usable(s, f, j->fed_sha, round, base, a->commit_key, &usable) : XFFL_OK;
    if (ust == XFFL_OK && want_ahead && a && a->state == PIPE_ATTEMPT_PENDING && usable) {
        ust = ahead_ready(s, o, j, round, &j->ahead);
        if (ust == XFFL_OK && !j->ahead) { /* LATEST moved on: an ordinary job from the new version */
            pipe_round_listing_free(&l);
            train_job_free(j);
            memset(j, 0, sizeof *j);
            memset(plan, 0, sizeof *plan);
            return prepare(s, o, j, plan, res);
        }
        if (ust == XFFL_OK) {
            /* round v+2 has no COMMIT of ours: none can name v+1's INDEX before it exists */
            pipe_round_listing_free(&l);
            ust = pipe_round_list_signed(s, ++round, NULL, f->aggregator_key, &l);
            if (ust == XFFL_OK) {
                a = pipe_round_latest_attempt(&l, o->facility);
                attempt = !a ? 1 : a->state == PIPE_ATTEMPT_PARTIAL ? a->attempt : a->attempt + 1;
                a = NULL;
            }
        }
    }
    if (ust == XFFL_OK && o->round >= 0 && o->round != round)
        ust = xffl_fail(XFFL_ERR_NOT_YET, "round %lld needs version %lld, or %s's delta for round %lld to train ahead",
                        (long long)o->round, (long long)o->round - 1, o->facility, (long long)o->round - 1);
    if (ust != XFFL_OK) {
        pipe_round_listing_free(&l);
        return ust;
    }
    res->round = plan->round = round;
    if (a) {
        if ((a->state == PIPE_ATTEMPT_PENDING && usable) || a->state == PIPE_ATTEMPT_ACCEPTED) {
            res->skipped = plan->skipped = 1;
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
    res->attempt = plan->attempt = attempt;

    XFFL_FORWARD(ckpt_param_table_create(&f->model, &j->t));
    const int64_t n = j->t->total;
    j->theta = xffl_alloc_big((size_t)n * 4);
    j->base_theta = xffl_alloc_big((size_t)n * 4);
    XFFL_RETURN_IF(!j->theta || !j->base_theta, XFFL_ERR_NOMEM, "model slabs (%lld floats)", (long long)n);
    if (j->ahead) {
        base->version = round - 1;
        snprintf(base->index_key, sizeof base->index_key, "(v%06lld replayed ahead)", (long long)round - 1);
        base->index_sha[0] = 0;
    }
    xffl_log(XFFL_LOG_INFO, "%s: round %lld attempt a%d from v%06lld (%s)", o->facility, (long long)round, attempt,
             (long long)base->version, base->index_key);
    /* replayed or as an update from the base cached in --state DIR when it can, else in full */
    const int ns = pipe_download_state_count(f);
    if (o->state_dir && ns > 0) {
        j->outer = xffl_alloc_big((size_t)ns * (size_t)n * 4);
        XFFL_RETURN_IF(!j->outer, XFFL_ERR_NOMEM, "outer optimizer state (%d x %lld floats)", ns, (long long)n);
    }
    pipe_download_options dopt = {.f = f, .fed_sha = j->fed_sha, .state_dir = o->state_dir, .threads = o->threads};
    if (j->ahead) {
        XFFL_RETURN_IF(!o->state_dir, XFFL_ERR_USAGE, "--ahead needs --state DIR");
        const char *keys[PIPE_MAX_FACILITIES];
        ahead_key_list(j, keys);
        xffl_status ast = pipe_download_ahead(s, base->version, &dopt, j->n_ahead, keys, j->t, j->base_theta,
                                              j->outer, &j->download);
        if (ast != XFFL_OK) { /* no cache of v, a delta that does not load: the job an ordinary one would be */
            xffl_log(ast == XFFL_ERR_NOT_FOUND ? XFFL_LOG_INFO : XFFL_LOG_WARN,
                     "%s%s: cannot train round %lld ahead (%s); as without --ahead",
                     ast == XFFL_ERR_NOT_FOUND ? "" : "warning: ", o->facility, (long long)round, xffl_errmsg());
            train_job_free(j);
            memset(j, 0, sizeof *j);
            memset(plan, 0, sizeof *plan);
            memset(res, 0, sizeof *res);
            pipe_train_options plain = *o;
            plain.ahead = 0;
            return prepare(s, &plain, j, plan, res);
        }
    } else
        XFFL_FORWARD(pipe_model_download(s, base, &dopt, j->t, j->base_theta, j->outer, &j->download));
    memcpy(j->theta, j->base_theta, (size_t)n * 4);
    XFFL_FORWARD(train_open_shards(o->data_glob, f, &j->sh));
    text_cursor start;
    XFFL_FORWARD(find_cursor(s, o, round, &start));
    plan->cursor = start.seq;
    const int keep = plan->keep = o->keep_inner_state || f->keep_inner_state;
    j->lossy = ckpt_codec_lossy(f->encoding);
    char p[4200];
    if (o->state_dir) {
        snprintf(j->sd, sizeof j->sd, "%s/r%06lld", o->state_dir, (long long)round);
        XFFL_FORWARD(xffl_mkdirs(j->sd));
    }
    snprintf(j->inner_sha, sizeof j->inner_sha, "none");
    if (keep && o->state_dir) {
        snprintf(p, sizeof p, "%s/inner.bin", o->state_dir);
        if (train_file_exists(p)) {
            if (!train_carry_take_inner(o->carry, p, n, &j->inner)) XFFL_FORWARD(train_inner_load(p, n, &j->inner));
            snprintf(j->inner_sha, sizeof j->inner_sha, "%s", j->inner.sha);
            /* the round's input, for reproduce --train: a second name of the file, which
             * the commit replaces by rename (a copy was 47 MB of fsync'd writes a round
             * for `small`) */
            char in[4200];
            snprintf(in, sizeof in, "%s/inner.bin", j->sd);
            XFFL_FORWARD(xffl_link_or_copy(p, in));
        }
    }
    plan->inner_present = j->inner.present;
    plan->inner_step = j->inner.step;
    if (j->lossy) {
        j->residual = calloc((size_t)n, 4);
        XFFL_RETURN_IF(!j->residual, XFFL_ERR_NOMEM, "residual");
        if (o->state_dir) {
            char in[4200];
            snprintf(p, sizeof p, "%s/residual.f32", o->state_dir);
            snprintf(in, sizeof in, "%s/residual.f32", j->sd);
            if (train_file_exists(p)) {
                if (!train_carry_take_floats(o->carry, p, n, &j->residual))
                    XFFL_FORWARD(train_load_floats(p, n, j->residual));
                XFFL_FORWARD(xffl_link_or_copy(p, in));
            } else
                XFFL_FORWARD(xffl_write_file_atomic(in, j->residual, (size_t)n * 4));
        }
    }
    /* a checkpoint is resumed only by a run from the same inputs (ahead: the same deltas) */
    char from[PIPE_KEY_MAX + 8];
    snprintf(from, sizeof from, "%s", base->index_key);
    if (j->ahead) {
        xffl_sha256_ctx *h = xffl_sha256_create();
        XFFL_RETURN_IF(!h, XFFL_ERR_NOMEM, "checkpoint tag");
        for (int i = 0; i < j->n_ahead; i++) xffl_sha256_update(h, j->ahead_keys[i], strlen(j->ahead_keys[i]) + 1);
        uint8_t d[XFFL_SHA256_LEN];
        xffl_sha256_final(h, d);
        xffl_sha256_free(h);
        memcpy(from, "ahead:", 6);
        xffl_hex_encode(d, 16, from + 6);
    }
    snprintf(plan->tag, sizeof plan->tag, "%s %s %lld %s %s %d %s", from, j->fed_sha, (long long)start.seq,
             j->inner_sha, o->backend ? o->backend : "auto", o->threads, kern_precision_name(o->precision));
    return XFFL_OK;
}

/* Every rank: rank 0's plan and inputs, so all start the loop from the same state. */
static XFFL_MUST_USE xffl_status share(xffl_comm *c, const pipe_train_options *o, round_job *j, round_plan *plan)
{
    const int root = comm_rank(c) == 0;
    XFFL_FORWARD(comm_broadcast(c, &j->f, sizeof j->f, COMM_BYTE, 0));
    if (!root) {
        XFFL_FORWARD(ckpt_param_table_create(&j->f.model, &j->t));
        j->theta = xffl_alloc_big((size_t)j->t->total * 4);
        XFFL_RETURN_IF(!j->theta, XFFL_ERR_NOMEM, "model slab (%lld floats)", (long long)j->t->total);
        XFFL_FORWARD(train_open_shards(o->data_glob, &j->f, &j->sh));
        if (o->state_dir) snprintf(j->sd, sizeof j->sd, "%s/r%06lld", o->state_dir, (long long)plan->round);
    }
    const size_t n = (size_t)j->t->total;
    XFFL_FORWARD(comm_broadcast(c, j->theta, n, COMM_F32, 0));
    if (plan->keep) {
        if (!j->inner.m) j->inner.m = xffl_alloc_big(n * 4);
        if (!j->inner.v) j->inner.v = xffl_alloc_big(n * 4);
        XFFL_RETURN_IF(!j->inner.m || !j->inner.v, XFFL_ERR_NOMEM, "inner state");
        if (plan->inner_present) {
            XFFL_FORWARD(comm_broadcast(c, j->inner.m, n, COMM_F32, 0));
            XFFL_FORWARD(comm_broadcast(c, j->inner.v, n, COMM_F32, 0));
            j->inner.step = plan->inner_step;
            j->inner.present = 1;
        }
    }
    return XFFL_OK;
}

/* Rank 0, after the loop: delta = θ_local − θ_v, encoded and committed; then the
 * facility's state moves on. */
static XFFL_MUST_USE xffl_status commit_round(store *s, const pipe_train_options *o, round_job *j,
                                              const round_plan *plan, int ranks, const pipe_loop_result *lr,
                                              pipe_train_result *res)
{
    const int64_t n = j->t->total;
    if (j->ahead) XFFL_FORWARD(ahead_confirm(s, o, j));
    for (int64_t i = 0; i < n; i++) j->theta[i] -= j->base_theta[i];
    XFFL_FORWARD(pipe_bench_attack(o->facility, plan->round, j->theta, n)); /* benchmark only: off unless set */
    text_cursor start = {.seq = plan->cursor}, end = {.seq = lr->cursor_end};
    text_cursor_format(&start, res->cursor_start, sizeof res->cursor_start);
    text_cursor_format(&end, res->cursor_end, sizeof res->cursor_end);
    char threads[16], bt[16], tt[16], rk[16], acc[16], dl[24];
    snprintf(threads, sizeof threads, "%d", o->threads);
    snprintf(bt, sizeof bt, "%d", j->f.batch);
    snprintf(tt, sizeof tt, "%d", j->f.seq_len);
    snprintf(rk, sizeof rk, "%d", ranks);
    snprintf(acc, sizeof acc, "%d", o->accumulate > 0 ? o->accumulate : 1);
    snprintf(dl, sizeof dl, "%llu", (unsigned long long)j->download.bytes);
    /* the precision changes the delta's bits: recorded with what decides them (oneDNN, ISA) */
    const char *ek[] = {"cursor", "cursor_end", "backend", "threads", "batch", "seq_len", "inner_state", "shards",
                        "ranks", "accumulate", "download", "download_bytes", "precision", "onednn", "isa"};
    const char *ev[] = {res->cursor_start, res->cursor_end, o->backend ? o->backend : "auto", threads, bt, tt,
                        j->inner_sha, text_loader_digests(j->sh), rk, acc,
                        pipe_download_route_name(j->download.route), dl, lr->precision, kern_onednn_version(),
                        kern_cpu_isa()};
    pipe_commit_spec cs = {.f = &j->f, .fed_sha = j->fed_sha, .t = j->t, .base = &j->base, .round = plan->round,
                           .facility = o->facility, .attempt = (int)plan->attempt, .delta = j->theta,
                           .residual = j->residual, .tokens = lr->tokens, .steps = lr->steps,
                           .loss_first = lr->loss_first, .loss_last = lr->loss_last, .loss_mean = lr->loss_mean,
                           .seconds = lr->seconds, .n_extra = 15, .extra_keys = ek, .extra_values = ev,
                           .threads = o->zstd_threads, .signer = j->signer};
    char sent[4200];
    train_next_state next = {.state_dir = o->state_dir, .round = plan->round, .attempt = (int)plan->attempt,
                             .cursor_end = res->cursor_end, .inner = plan->keep ? &j->inner : NULL,
                             .residual = j->lossy ? j->residual : NULL, .n = n};
    if (o->state_dir) {
        snprintf(sent, sizeof sent, "%s/%s", o->state_dir, PIPE_DOWNLOAD_SENT_DIR);
        cs.keep_dir = sent;
        cs.before_commit = train_state_stage;
        cs.before_commit_ctx = &next;
    }
    xffl_log(XFFL_LOG_INFO, "%s: uploading delta (%s)", o->facility, ckpt_codec_name(j->f.encoding));
    XFFL_FORWARD(pipe_commit_delta(s, &cs, res->commit_key, &res->bytes));
    /* committed: only now does the facility's state move on */
    if (o->state_dir) {
        if (o->kill_after_commit) raise(SIGKILL); /* tests: a job killed right here */
        XFFL_FORWARD(train_state_promote(o->state_dir));
        /* version v's model and outer state, for the next round's download (pipelines/download.h) */
        XFFL_FORWARD(pipe_base_save(o->state_dir, &j->base, j->t, j->base_theta,
                                    j->download.state_known ? j->outer : NULL, pipe_download_state_count(&j->f)));
        train_carry_keep(o->carry, o->state_dir, n, plan->keep ? &j->inner : NULL, j->lossy ? &j->residual : NULL);
    }
    res->download_route = j->download.route;
    res->download_bytes = j->download.bytes;
    res->tokens = lr->tokens;
    res->steps = lr->steps;
    res->loss_first = lr->loss_first;
    res->loss_last = lr->loss_last;
    res->loss_mean = lr->loss_mean;
    res->train_seconds = lr->seconds;
    res->step_seconds_median = lr->step_seconds_median;
    return XFFL_OK;
}

/* The loop on every rank, with the job's inner state. */
XFFL_MUST_USE xffl_status train_run_loop(xffl_comm *c, const pipe_train_options *o, round_job *j,
                                          const round_plan *plan, int64_t round, const char *tag,
                                          xffl_log_level progress, pipe_loop_result *lr)
{
    pipe_loop_options lo;
    loop_options(&j->f, round, o, j->sh, (text_cursor){.seq = plan->cursor}, progress, &lo);
    if (o->state_dir && o->checkpoint_every > 0 && tag) {
        lo.checkpoint_dir = j->sd;
        lo.checkpoint_every = o->checkpoint_every;
        lo.checkpoint_tag = tag;
        lo.halt_after = o->halt_after;
    }
    lo.stop_at = o->stop_at;
    lo.keep = train_carry_loop(o->carry);
    pipe_loop_inner li = {.m = j->inner.m, .v = j->inner.v, .step = j->inner.step, .present = j->inner.present};
    XFFL_FORWARD(pipe_loop_run(c, &lo, j->theta, plan->keep ? &li : NULL, NULL, lr));
    j->inner.step = li.step;
    j->inner.present = li.present;
    return XFFL_OK;
}

xffl_status pipe_train(store *s, const pipe_train_options *o, pipe_train_result *res)
{
    memset(res, 0, sizeof *res);
    double t0 = xffl_now();
    xffl_comm *c = o->comm, *own = NULL;
    if (!c) {
        XFFL_FORWARD(comm_open("self", NULL, &own));
        c = own;
    }
    const int root = comm_rank(c) == 0;
    round_job j;
    round_plan plan;
    memset(&j, 0, sizeof j);
    memset(&plan, 0, sizeof plan);
    /* rank 0 alone reads the store; the others wait for its plan */
    xffl_status st = root ? prepare(s, o, &j, &plan, res) : XFFL_OK, st2;
    plan.status = st;
    XFFL_CHECK_GOTO(st2, comm_broadcast(c, &plan, sizeof plan, COMM_BYTE, 0), fail);
    if (plan.status != XFFL_OK) {
        if (!root) st = xffl_fail((xffl_status)plan.status, "rank 0 could not start the round (its log says why)");
        goto done;
    }
    if (plan.skipped) {
        res->skipped = 1;
        res->round = plan.round;
        if (!root) snprintf(res->why, sizeof res->why, "rank 0: nothing to do");
        goto done;
    }
    res->round = plan.round;
    res->attempt = (int)plan.attempt;
    XFFL_CHECK_GOTO(st, share(c, o, &j, &plan), done);
    pipe_loop_result lr;
    XFFL_CHECK_GOTO(st, train_run_loop(c, o, &j, &plan, plan.round, plan.tag, XFFL_LOG_INFO, &lr), done);
    /* every rank finished the loop (it ends with collectives): only now may rank 0 commit */
    int64_t cst = root ? commit_round(s, o, &j, &plan, comm_size(c), &lr, res) : XFFL_OK;
    if (root && j.ahead_missed) cst = -1;
    XFFL_CHECK_GOTO(st2, comm_broadcast(c, &cst, 1, COMM_I64, 0), fail);
    if (cst == -1) { /* trained ahead from a replay the published version is not: again, from it */
        pipe_loop_checkpoint_clear(c, j.sd[0] ? j.sd : NULL);
        train_job_free(&j);
        comm_close(own);
        pipe_train_options again = *o;
        again.ahead = 0;
        again.round = plan.round;
        return pipe_train(s, &again, res);
    }
    if (cst != XFFL_OK) {
        st = root ? (xffl_status)cst : xffl_fail((xffl_status)cst, "rank 0 could not commit (its log says why)");
        goto done;
    }
    pipe_loop_checkpoint_clear(c, j.sd[0] ? j.sd : NULL);
    /* the round is committed: a round's inputs that cannot be removed cost disk, not it */
    if (root && o->state_dir && o->keep_rounds >= 0 && train_state_prune(o->state_dir, plan.round, o->keep_rounds))
        xffl_log(XFFL_LOG_WARN, "warning: %s: %s", o->facility, xffl_errmsg());
    goto done;
fail:
    st = st2;
done:
    train_job_free(&j);
    comm_close(own);
    res->seconds = xffl_now() - t0;
    return st;
}
