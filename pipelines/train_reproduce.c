/* reproduce --train: a facility's round trained again from its COMMIT's inputs and
 * compared tensor by tensor (pipelines/train.h). */
#include "pipelines/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/util.h"
#include "kernels/kern.h"
#include "libckpt/delta.h"
#include "pipelines/reproduce.h"
#include "pipelines/train_job.h"
#include "pipelines/trust.h"

xffl_status pipe_train_reproduce(store *s, const pipe_train_options *o, pipe_train_reproduce_report *out)
{
    memset(out, 0, sizeof *out);
    round_job j;
    round_plan plan;
    memset(&j, 0, sizeof j);
    memset(&plan, 0, sizeof plan);
    pipe_federation *f = &j.f;
    pipe_version_ref vref;
    ckpt_manifest *idx = NULL, *m = NULL, *mine = NULL;
    XFFL_FORWARD(pipe_reproduce_find_version(s, o->round, &vref, &idx));
    xffl_status fst = pipe_federation_load_for(s, &vref, f, j.fed_sha);
    if (fst == XFFL_OK) fst = pipe_trust_check_index(s, f, &vref, NULL);
    if (fst != XFFL_OK) ckpt_manifest_free(idx);
    XFFL_FORWARD(fst);
    const char *ck = NULL;
    for (int i = 0; i < idx->n_contributors; i++)
        if (!strcmp(idx->contributors[i].facility, o->facility)) ck = idx->contributors[i].key;
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
    const char *rk = ckpt_manifest_get(m, "ranks"), *ac = ckpt_manifest_get(m, "accumulate");
    const char *pr = ckpt_manifest_get(m, "precision"), *isa = ckpt_manifest_get(m, "isa");
    pipe_train_options oo = *o;
    /* the recorded precision (a COMMIT without one predates the setting: fp32) */
    XFFL_CHECK_GOTO(st, kern_precision_parse(pr && *pr ? pr : "fp32", &oo.precision), done);
    if (isa && strcmp(isa, kern_cpu_isa()) != 0)
        xffl_log(XFFL_LOG_WARN, "note: %s trained on isa %s, re-running on %s: bits may differ", ck, isa,
                 kern_cpu_isa());
    /* by default, re-run with the thread count the COMMIT records */
    if (oo.threads == 0 && thr) oo.threads = atoi(thr);
    /* R ranks with K micro-batches each give the bits of one rank with R*K (loop.h) */
    int micro = (rk ? atoi(rk) : 1) * (ac ? atoi(ac) : 1);
    oo.accumulate = micro > 0 ? micro : 1;
    oo.comm = NULL;
    oo.checkpoint_every = 0;
    char othr[16];
    snprintf(othr, sizeof othr, "%d", oo.threads);
    if (thr && strcmp(thr, othr) != 0)
        xffl_log(XFFL_LOG_WARN, "note: %s trained with --threads %s, re-running with %s: bits may differ", ck, thr, othr);
    if (be && o->backend && strcmp(be, o->backend) != 0)
        xffl_log(XFFL_LOG_WARN, "note: %s trained on backend %s, re-running on %s: bits may differ", ck, be,
                 o->backend);
    XFFL_CHECK_GOTO(st, pipe_reproduce_find_version(s, o->round - 1, &j.base, NULL), done);
    if (strcmp(j.base.index_key, bk) != 0) {
        st = xffl_fail(XFFL_ERR_INVALID, "%s was built on %s, but version %lld is %s", ck, bk, (long long)o->round - 1,
                       j.base.index_key);
        goto done;
    }
    XFFL_CHECK_GOTO(st, ckpt_param_table_create(&f->model, &j.t), done);
    const int64_t n = j.t->total;
    j.theta = xffl_alloc_big((size_t)n * 4);
    j.base_theta = xffl_alloc_big((size_t)n * 4);
    if (!j.theta || !j.base_theta) {
        st = xffl_fail(XFFL_ERR_NOMEM, "model slabs");
        goto done;
    }
    {
        const char *groups[] = {"model"};
        float *slabs[] = {j.base_theta};
        XFFL_CHECK_GOTO(st, pipe_version_fetch(s, &j.base, j.t, 1, groups, slabs, NULL), done);
    }
    memcpy(j.theta, j.base_theta, (size_t)n * 4);
    XFFL_CHECK_GOTO(st, train_open_shards(o->data_glob, f, &j.sh), done);
    if (strcmp(text_loader_digests(j.sh), shards) != 0) {
        st = xffl_fail(XFFL_ERR_INVALID, "--data %s is not the data %s trained on (shards %s, COMMIT says %s)",
                       o->data_glob, ck, text_loader_digests(j.sh), shards);
        goto done;
    }
    text_cursor start;
    XFFL_CHECK_GOTO(st, text_cursor_parse(cur, &start), done);
    plan.cursor = start.seq;
    plan.keep = strcmp(isha, "none") != 0;
    char p[4200];
    if (o->state_dir && (plan.keep || ckpt_codec_lossy(f->encoding))) {
        snprintf(p, sizeof p, "%s/r%06lld", o->state_dir, (long long)o->round);
        if (!train_file_exists(p)) {
            st = xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no inputs of round %lld kept there (removed by train "
                           "--keep-rounds, or another facility's state)", p, (long long)o->round);
            goto done;
        }
    }
    if (plan.keep) {
        if (!o->state_dir) {
            st = xffl_fail(XFFL_ERR_USAGE, "%s used kept inner state: --state DIR is needed", ck);
            goto done;
        }
        snprintf(p, sizeof p, "%s/r%06lld/inner.bin", o->state_dir, (long long)o->round);
        XFFL_CHECK_GOTO(st, train_inner_load(p, n, &j.inner), done);
        if (strcmp(j.inner.sha, isha) != 0) {
            st = xffl_fail(XFFL_ERR_INVALID, "%s: digest %.12s, but %s used inner state %.12s", p, j.inner.sha, ck, isha);
            goto done;
        }
    }
    if (ckpt_codec_lossy(f->encoding)) {
        j.residual = calloc((size_t)n, 4);
        if (!j.residual) {
            st = xffl_fail(XFFL_ERR_NOMEM, "residual");
            goto done;
        }
        if (o->state_dir) {
            snprintf(p, sizeof p, "%s/r%06lld/residual.f32", o->state_dir, (long long)o->round);
            if (train_file_exists(p)) XFFL_CHECK_GOTO(st, train_load_floats(p, n, j.residual), done);
        }
    }
    if (plan.keep && !j.inner.m) {
        j.inner.m = xffl_alloc_big((size_t)n * 4);
        j.inner.v = xffl_alloc_big((size_t)n * 4);
        if (!j.inner.m || !j.inner.v) {
            st = xffl_fail(XFFL_ERR_NOMEM, "inner state");
            goto done;
        }
    }
    pipe_loop_result lr;
    XFFL_CHECK_GOTO(st, train_run_loop(NULL, &oo, &j, &plan, o->round, NULL, XFFL_LOG_DEBUG, &lr), done);
    for (int64_t i = 0; i < n; i++) j.theta[i] -= j.base_theta[i];
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("xffl-retrain", &tmp), done);
    XFFL_CHECK_GOTO(st, ckpt_manifest_create(&mine), done);
    ckpt_delta_meta meta = {.round = o->round, .base_version = j.base.version, .base_index = j.base.index_key,
                            .facility = o->facility, .tokens = lr.tokens, .steps = lr.steps};
    pipe_federation_delta_codec(f, o->round, &meta);
    XFFL_CHECK_GOTO(st, ckpt_delta_write(tmp, j.t, j.theta, &meta, j.residual, 0, NULL, "", mine, &files, &nf), done);
    char first[128] = "";
    for (int i = 0; i < m->n_tensors; i++) {
        int k = ckpt_manifest_find_tensor(mine, m->tensors[i].name);
        out->tensors_compared++;
        if (k < 0 || strcmp(mine->tensors[k].sha256, m->tensors[i].sha256) != 0) {
            out->tensors_differ++;
            xffl_log(XFFL_LOG_ERROR, "differs: delta tensor %s of %s: stored %.12s, re-trained %.12s",
                     m->tensors[i].name, o->facility, m->tensors[i].sha256, k < 0 ? "(missing)" : mine->tensors[k].sha256);
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
    train_job_free(&j);
    ckpt_manifest_free(idx);
    ckpt_manifest_free(m);
    ckpt_manifest_free(mine);
    return st;
}
