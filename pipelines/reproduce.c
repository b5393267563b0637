#include "pipelines/reproduce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/util.h"
#include "pipelines/aggregate.h"

static XFFL_MUST_USE xffl_status ref_from_key(store *s, int64_t version, const char *key_in, pipe_version_ref *ref,
                                ckpt_manifest **idx)
{
    char key[PIPE_KEY_MAX]; /* key_in may live inside *ref */
    snprintf(key, sizeof key, "%s", key_in);
    ckpt_manifest *m = NULL;
    pipe_manifest_bytes raw;
    XFFL_FORWARD(pipe_manifest_load(s, key, NULL, &m, &raw));
    free(raw.text);
    memset(ref, 0, sizeof *ref);
    ref->version = version;
    snprintf(ref->index_key, sizeof ref->index_key, "%s", key);
    memcpy(ref->index_sha, raw.sha256, XFFL_SHA256_HEX);
    if (idx) *idx = m;
    else ckpt_manifest_free(m);
    return XFFL_OK;
}

xffl_status pipe_reproduce_find_version(store *s, int64_t version, pipe_version_ref *ref, ckpt_manifest **index)
{
    pipe_store_scan sc;
    XFFL_FORWARD(pipe_store_scan_run(s, &sc));
    const char *key = NULL;
    for (int k = 0; k < sc.n_kept; k++)
        if (sc.kept[k].version == version) key = sc.kept[k].index_key;
    xffl_status st;
    if (key)
        st = ref_from_key(s, version, key, ref, index);
    else {
        st = pipe_version_resolve(s, version, ref);
        if (st == XFFL_OK) st = ref_from_key(s, version, ref->index_key, ref, index);
    }
    pipe_store_scan_free(&sc);
    return st;
}

xffl_status pipe_reproduce_round(store *s, int64_t round, int threads, const pipe_trust_options *trust,
                                 pipe_reproduce_report *out)
{
    memset(out, 0, sizeof *out);
    out->round = round;
    double t0 = xffl_now();
    XFFL_RETURN_IF(round < 1, XFFL_ERR_USAGE, "--round %lld: version 0 is made by init, not by a round",
                   (long long)round);
    pipe_federation f;
    char fed_sha[XFFL_SHA256_HEX];
    pipe_version_ref vref, base;
    ckpt_manifest *idx = NULL, *re_idx = NULL;
    XFFL_FORWARD(pipe_reproduce_find_version(s, round, &vref, &idx));
    xffl_status fst = pipe_federation_load_for(s, &vref, &f, fed_sha);
    /* the stored INDEX must be the aggregator's; the unsigned recomputation is compared
     * with its bytes before the signature line */
    char stored_body[XFFL_SHA256_HEX];
    if (fst == XFFL_OK) fst = pipe_trust_pin(s, trust, fed_sha);
    if (fst == XFFL_OK) fst = pipe_trust_check_index(s, &f, &vref, stored_body);
    if (fst != XFFL_OK) ckpt_manifest_free(idx);
    XFFL_FORWARD(fst);
    snprintf(out->stored_index, sizeof out->stored_index, "%s", vref.index_key);
    ckpt_param_table *t = NULL;
    pipe_contrib c[PIPE_MAX_FACILITIES];
    memset(c, 0, sizeof c);
    char *tmp = NULL;
    store *scratch = NULL;
    xffl_status st = XFFL_OK;
    int n = idx->n_contributors;
    if (n < 1 || n > PIPE_MAX_FACILITIES) {
        st = xffl_fail(XFFL_ERR_INVALID, "%s names %d contributors", vref.index_key, n);
        goto done;
    }
    XFFL_CHECK_GOTO(st, ckpt_param_table_create(&f.model, &t), done);
    /* the base every contributor trained on: their COMMITs name its INDEX */
    {
        ckpt_manifest *m = NULL;
        XFFL_CHECK_GOTO(st, pipe_manifest_load(s, idx->contributors[0].key, NULL, &m, NULL), done);
        const char *bk = ckpt_manifest_get(m, "base_index");
        if (!bk) {
            ckpt_manifest_free(m);
            st = xffl_fail(XFFL_ERR_INVALID, "%s has no base_index", idx->contributors[0].key);
            goto done;
        }
        char key[PIPE_KEY_MAX];
        snprintf(key, sizeof key, "%s", bk);
        ckpt_manifest_free(m);
        XFFL_CHECK_GOTO(st, ref_from_key(s, round - 1, key, &base, NULL), done);
    }
    for (int i = 0; i < n; i++) {
        int bad = 0;
        st = pipe_contrib_load(s, &f, fed_sha, t, round, &base, idx->contributors[i].key, &c[i], &bad);
        if (st != XFFL_OK) goto done;
        out->n_contributors++;
    }
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("xffl-reproduce", &tmp), done);
    XFFL_CHECK_GOTO(st, store_open(tmp, NULL, &scratch), done);
    const pipe_publish_setting ps = {.f = &f, .fed_sha = fed_sha, .t = t, .threads = threads};
    pipe_publish_result pr;
    XFFL_CHECK_GOTO(st, pipe_combine_publish(s, scratch, &ps, &base, n, c, &pr), done);
    pipe_version_result vr = pr.version;
    snprintf(out->recomputed_index, sizeof out->recomputed_index, "%s", vr.ref.index_key);
    out->index_identical = !strcmp(vr.ref.index_sha, stored_body);
    XFFL_CHECK_GOTO(st, ref_from_key(scratch, round, vr.ref.index_key, &vr.ref, &re_idx), done);
    char first[512] = "";
    for (int i = 0; i < idx->n_tensors; i++) {
        const ckpt_manifest_tensor *a = &idx->tensors[i];
        int j = ckpt_manifest_find_tensor(re_idx, a->name);
        out->tensors_compared++;
        if (j < 0 || strcmp(re_idx->tensors[j].sha256, a->sha256) != 0) {
            out->tensors_differ++;
            xffl_log(XFFL_LOG_ERROR, "differs: tensor %s: stored %.12s, recomputed %.12s", a->name, a->sha256,
                     j < 0 ? "(missing)" : re_idx->tensors[j].sha256);
            if (!first[0]) snprintf(first, sizeof first, "tensor %s", a->name);
        }
    }
    if (re_idx->n_tensors != idx->n_tensors) {
        out->tensors_differ++;
        xffl_log(XFFL_LOG_ERROR, "differs: stored version has %d tensors, recomputed %d", idx->n_tensors,
                 re_idx->n_tensors);
        if (!first[0]) snprintf(first, sizeof first, "tensor count");
    }
    for (int i = 0; i < idx->n_objects; i++) {
        out->parts_compared++;
        if (i >= re_idx->n_objects || strcmp(idx->objects[i].sha256, re_idx->objects[i].sha256) != 0) {
            out->parts_differ++;
            xffl_log(XFFL_LOG_ERROR, "differs: part %s: bytes differ from the recomputed one", idx->objects[i].name);
        }
    }
    if (out->tensors_differ)
        st = xffl_fail(XFFL_ERR_INVALID, "round %lld does not reproduce: %d of %d tensor digests differ (first: %s)",
                       (long long)round, out->tensors_differ, out->tensors_compared, first);
done:
    for (int i = 0; i < PIPE_MAX_FACILITIES; i++) pipe_contrib_clear(&c[i]);
    store_close(scratch);
    if (tmp) {
        xffl_rmtree_cleanup(tmp);
        free(tmp);
    }
    ckpt_manifest_free(idx);
    ckpt_manifest_free(re_idx);
    ckpt_param_table_free(t);
    out->seconds = xffl_now() - t0;
    return st;
}

xffl_status pipe_reproduce(store *s, int64_t round, int threads, const pipe_trust_options *trust,
                           const pipe_train_options *train,
                           pipe_reproduce_report *rep,
                           pipe_train_reproduce_report *trep)
{
    memset(trep, 0, sizeof *trep);
    XFFL_FORWARD(pipe_reproduce_round(s, round, threads, trust, rep));
    xffl_log(XFFL_LOG_INFO, "round %lld: %d tensors, %d parts compared from %d deltas; INDEX %s (%.1fs)", (long long)round,
               rep->tensors_compared, rep->parts_compared, rep->n_contributors,
               rep->index_identical ? "identical" : "differs in bytes", rep->seconds);
    if (!train) return XFFL_OK;
    XFFL_FORWARD(pipe_train_reproduce(s, train, trep));
    xffl_log(XFFL_LOG_INFO, "round %lld: %s's training re-run, %d delta tensors match its COMMIT", (long long)round,
               train->facility, trep->tensors_compared);
    return XFFL_OK;
}
