/* Round logic end to end on a file:// store, without training: real COMMITs made by
 * pipe_commit_delta (the same code `xffl train` uploads with), real aggregation. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "libckpt/delta.h"
#include "pipelines/aggregate.h"
#include "pipelines/commit.h"
#include "pipelines/inspect.h"
#include "pipelines/reproduce.h"
#include "pipelines/train.h"
#include "pipelines/train_job.h"
#include "tests/unit/unit.h"

typedef struct {
    char *dir;
    store *s;
    pipe_federation f;
    char fed_sha[XFFL_SHA256_HEX];
    ckpt_param_table *t;
} fixture;

static XFFL_MUST_USE xffl_status init_tensor(void *ctx, int group, int index, float *out)
{
    fixture *fx = ctx;
    if (group == 0) ckpt_param_init(fx->t, index, fx->f.seed, out);
    else memset(out, 0, (size_t)fx->t->params[index].numel * sizeof(float));
    return XFFL_OK;
}

static int setup(fixture *fx, const char *facilities, pipe_algo_kind algo, int quorum)
{
    memset(fx, 0, sizeof *fx);
    if (xffl_mkdtemp("xffl-round-test", &fx->dir)) return 0;
    if (store_open(fx->dir, NULL, &fx->s)) return 0;
    if (pipe_federation_default("tiny", 0, &fx->f)) return 0;
    if (pipe_federation_set_facilities(&fx->f, facilities)) return 0;
    pipe_federation_set_algo(&fx->f, algo);
    fx->f.quorum = quorum;
    fx->f.part_size = 1 << 20;
    if (pipe_federation_publish(fx->s, &fx->f, fx->fed_sha)) return 0;
    if (ckpt_param_table_create(&fx->f.model, &fx->t)) return 0;
    const char *groups[] = {"model"};
    pipe_version_spec v0 = {.version = 0, .parent = -1, .round = 0, .algorithm = pipe_algo_name(algo),
                            .federation_sha256 = fx->fed_sha, .n_groups = 1, .groups = groups,
                            .part_size = fx->f.part_size, .threads = 1};
    return pipe_version_publish(fx->s, fx->t, &v0, init_tensor, fx, NULL) == XFFL_OK;
}

static int setup_or_say(fixture *fx, const char *facilities, pipe_algo_kind algo, int quorum)
{
    int ok = setup(fx, facilities, algo, quorum);
    if (!ok) fprintf(stderr, "round fixture: %s\n", xffl_errmsg());
    return ok;
}

static void teardown(fixture *fx)
{
    store_close(fx->s);
    ckpt_param_table_free(fx->t);
    if (fx->dir) xffl_rmtree_cleanup(fx->dir);
    free(fx->dir);
}

static void fill(float *x, int64_t n, uint64_t seed, float scale)
{
    for (int64_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        x[i] = (float)(((double)(seed >> 11) / 9007199254740992.0 - 0.5) * scale);
    }
}

static XFFL_MUST_USE xffl_status commit(fixture *fx, const pipe_version_ref *base, int64_t round, const char *fac, int attempt,
                          const float *delta, int64_t tokens, char *key)
{
    pipe_commit_spec c = {.f = &fx->f, .fed_sha = fx->fed_sha, .t = fx->t, .base = base, .round = round,
                          .facility = fac, .attempt = attempt, .delta = delta, .tokens = tokens, .steps = 2,
                          .loss_first = 5.5, .loss_last = 5.0, .loss_mean = 5.2, .seconds = 1, .threads = 1};
    return pipe_commit_delta(fx->s, &c, key, NULL);
}

static void test_fedavg_round(void)
{
    fixture fx;
    CU_ASSERT_TRUE_FATAL(setup_or_say(&fx, "alpha,beta", PIPE_ALGO_FEDAVG, 2));
    pipe_version_ref v0;
    CU_ASSERT_EQUAL_FATAL(pipe_latest_read(fx.s, &v0), XFFL_OK);
    int64_t n = fx.t->total;
    float *da = malloc(n * 4), *db = malloc(n * 4), *base = malloc(n * 4), *want = malloc(n * 4),
          *got = malloc(n * 4);
    fill(da, n, 1, 1e-2f);
    fill(db, n, 2, 1e-2f);
    char ka[PIPE_KEY_MAX], kb[PIPE_KEY_MAX];
    CU_ASSERT_EQUAL_FATAL(commit(&fx, &v0, 1, "alpha", 1, da, 1000, ka), XFFL_OK);
    pipe_aggregate_options o = {.round = -1, .deadline = 0, .threads = 1};
    pipe_aggregate_result r;
    /* one of two: quorum not reached, nothing written */
    CU_ASSERT_EQUAL(pipe_aggregate(fx.s, &o, &r), XFFL_ERR_NOT_YET);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "quorum"));
    pipe_version_ref now;
    CU_ASSERT_EQUAL_FATAL(pipe_latest_read(fx.s, &now), XFFL_OK);
    CU_ASSERT_EQUAL(now.version, 0);
    CU_ASSERT_EQUAL_FATAL(commit(&fx, &v0, 1, "beta", 1, db, 3000, kb), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(pipe_aggregate(fx.s, &o, &r), XFFL_OK);
    CU_ASSERT_EQUAL(r.version, 1);
    CU_ASSERT_EQUAL(r.n_used, 2);
    /* the COMMITs claim 1000 and 3000 tokens; the weights are federation.h5's H·B·T each */
    int64_t w;
    T_OK(pipe_federation_round_tokens(&fx.f, 1, &w));
    CU_ASSERT_EQUAL(r.tokens, 2 * w);
    CU_ASSERT_STRING_EQUAL(r.used[0], "alpha");
    pipe_version_ref v1;
    CU_ASSERT_EQUAL_FATAL(pipe_latest_read(fx.s, &v1), XFFL_OK);
    CU_ASSERT_EQUAL(v1.version, 1);
    /* the stored model is exactly base + (w·da + w·db)/2w */
    const char *groups[] = {"model"};
    float *slabs[] = {base};
    CU_ASSERT_EQUAL(pipe_version_fetch(fx.s, &v0, fx.t, 1, groups, slabs, NULL), XFFL_OK);
    const float *ds[] = {da, db};
    double tok[] = {(double)w, (double)w};
    pipe_algo_input in = {.k = 2, .deltas = ds, .tokens = tok, .base = base, .n = n, .round = 1, .threads = 2};
    CU_ASSERT_EQUAL(pipe_algo_apply(&fx.f.algo, &in, want, NULL), XFFL_OK);
    slabs[0] = got;
    pipe_version_info info;
    memset(&info, 0, sizeof info);
    CU_ASSERT_EQUAL(pipe_version_fetch(fx.s, &v1, fx.t, 1, groups, slabs, &info), XFFL_OK);
    CU_ASSERT_EQUAL(memcmp(want, got, n * 4), 0);
    CU_ASSERT_EQUAL(info.index->n_contributors, 2);
    CU_ASSERT_STRING_EQUAL(info.index->contributors[0].key, ka);
    CU_ASSERT_EQUAL(info.tokens_seen, 2 * w);
    pipe_version_info_clear(&info);
    /* again: already there */
    o.round = 1;
    CU_ASSERT_EQUAL(pipe_aggregate(fx.s, &o, &r), XFFL_OK);
    CU_ASSERT_EQUAL(r.already, 1);
    /* round 3 before version 2: not yet */
    o.round = 3;
    CU_ASSERT_EQUAL(pipe_aggregate(fx.s, &o, &r), XFFL_ERR_NOT_YET);
    /* listing states: accepted for round 1 */
    pipe_round_listing l;
    ckpt_manifest *idx = NULL;
    void *txt;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(store_get(fx.s, v1.index_key, &txt, &len), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(ckpt_manifest_parse(txt, len, v1.index_key, &idx), XFFL_OK);
    free(txt);
    CU_ASSERT_EQUAL(pipe_round_list(fx.s, 1, idx, &l), XFFL_OK);
    CU_ASSERT_EQUAL(l.count, 2);
    CU_ASSERT_EQUAL(l.items[0].state, PIPE_ATTEMPT_ACCEPTED);
    CU_ASSERT_EQUAL(l.items[1].state, PIPE_ATTEMPT_ACCEPTED);
    pipe_round_listing_free(&l);
    ckpt_manifest_free(idx);
    free(da), free(db), free(base), free(want), free(got);
    teardown(&fx);
}

/* Stale base, unknown facility, NaN values, wrong shapes: each rejected with a reason
 * naming it; the round completes once good attempts arrive; identical bytes from a
 * second aggregator with another thread count (diloco, with outer state). */
static void test_rejections_and_determinism(void)
{
    fixture fx;
    CU_ASSERT_TRUE_FATAL(setup_or_say(&fx, "alpha,beta", PIPE_ALGO_DILOCO, 2));
    int64_t n = fx.t->total;
    float *d = malloc(n * 4);
    pipe_version_ref v0;
    CU_ASSERT_EQUAL_FATAL(pipe_latest_read(fx.s, &v0), XFFL_OK);
    char k[PIPE_KEY_MAX];
    /* stale: built on an INDEX that is not v0's */
    pipe_version_ref stale = v0;
    snprintf(stale.index_key, sizeof stale.index_key, "versions/v000000/INDEX-000000000000");
    fill(d, n, 5, 1e-2f);
    CU_ASSERT_EQUAL_FATAL(commit(&fx, &stale, 1, "alpha", 1, d, 100, k), XFFL_OK);
    /* unknown facility: a folder and a COMMIT for "gamma" */
    CU_ASSERT_EQUAL_FATAL(commit(&fx, &v0, 1, "gamma", 1, d, 100, k), XFFL_OK);
    /* NaN: a second federation-less table trick is impossible through the encoder,
     * so beta's a1 is a bigger model (wrong shapes) and its a2 carries a NaN */
    {
        fixture other = fx;
        ckpt_model_config cfg = fx.f.model;
        cfg.dim *= 2;
        cfg.hidden_dim *= 2;
        ckpt_param_table *big = NULL;
        CU_ASSERT_EQUAL_FATAL(ckpt_param_table_create(&cfg, &big), XFFL_OK);
        float *bd = calloc(big->total, 4);
        other.t = big;
        CU_ASSERT_EQUAL_FATAL(commit(&other, &v0, 1, "beta", 1, bd, 100, k), XFFL_OK);
        free(bd);
        ckpt_param_table_free(big);
    }
    pipe_aggregate_options o = {.round = -1, .deadline = 0, .threads = 1};
    pipe_aggregate_result r;
    CU_ASSERT_EQUAL(pipe_aggregate(fx.s, &o, &r), XFFL_ERR_NOT_YET);
    CU_ASSERT_EQUAL(r.n_rejected, 3);
    pipe_round_listing l;
    CU_ASSERT_EQUAL_FATAL(pipe_round_list(fx.s, 1, NULL, &l), XFFL_OK);
    CU_ASSERT_EQUAL(l.count, 3);
    const char *expect[][2] = {{"alpha", "stale base"}, {"beta", "shape"}, {"gamma", "not in the federation"}};
    for (int i = 0; i < l.count && i < 3; i++) {
        CU_ASSERT_STRING_EQUAL(l.items[i].facility, expect[i][0]);
        CU_ASSERT_EQUAL(l.items[i].state, PIPE_ATTEMPT_REJECTED);
        char *reason = NULL;
        CU_ASSERT_EQUAL(pipe_rejected_reason(fx.s, l.items[i].rejected_key, &reason), XFFL_OK);
        CU_ASSERT_PTR_NOT_NULL(reason && strstr(reason, expect[i][1]));
        if (reason && !strstr(reason, expect[i][1])) fprintf(stderr, "reason: %s\n", reason);
        free(reason);
    }
    pipe_round_listing_free(&l);
    /* beta a2 with a NaN, by hand-editing an fp32 delta part: the COMMIT digests match
     * the NaN bytes, so only the finite-value check can refuse it */
    {
        char *tmp = NULL;
        CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-nan", &tmp), XFFL_OK);
        ckpt_manifest *m = NULL;
        T_OK(ckpt_manifest_create(&m));
        T_OK(ckpt_manifest_set(m, "format", PIPE_COMMIT_FORMAT));
        T_OK(ckpt_manifest_set_int(m, "round", 1));
        T_OK(ckpt_manifest_set(m, "facility", "beta"));
        T_OK(ckpt_manifest_set_int(m, "base_version", 0));
        T_OK(ckpt_manifest_set(m, "base_index", v0.index_key));
        T_OK(ckpt_manifest_set(m, "federation", fx.fed_sha));
        T_OK(ckpt_manifest_set(m, "encoding", "fp32"));
        T_OK(ckpt_manifest_set_int(m, "tokens", 100));
        T_OK(ckpt_manifest_set_int(m, "steps", 1));
        char path[4200];
        snprintf(path, sizeof path, "%s/p.h5", tmp);
        ckpt_h5_writer *w = NULL;
        CU_ASSERT_EQUAL_FATAL(ckpt_h5_writer_create(path, NULL, &w), XFFL_OK);
        T_OK(ckpt_h5_attr_str(w, "format", CKPT_DELTA_FORMAT));
        T_OK(ckpt_h5_attr_int(w, "format_version", CKPT_DELTA_FORMAT_VERSION));
        T_OK(ckpt_h5_attr_int(w, "round", 1));
        T_OK(ckpt_h5_attr_int(w, "base_version", 0));
        T_OK(ckpt_h5_attr_str(w, "base_index", v0.index_key));
        T_OK(ckpt_h5_attr_str(w, "facility", "beta"));
        T_OK(ckpt_h5_attr_str(w, "encoding", "fp32"));
        T_OK(ckpt_h5_attr_int(w, "block", 256));
        d[fx.t->params[1].offset + 3] = NAN;
        for (int i = 0; i < fx.t->count; i++) {
            const ckpt_param *p = &fx.t->params[i];
            char name[128], hex[XFFL_SHA256_HEX];
            snprintf(name, sizeof name, "delta/%s", p->name);
            T_OK(ckpt_h5_write(w, name, CKPT_DT_F32, p->ndim, p->shape, d + p->offset, hex, NULL));
            T_OK(ckpt_manifest_add_tensor(m, p->name, CKPT_DT_F32, p->ndim, p->shape, hex));
        }
        d[fx.t->params[1].offset + 3] = 0;
        CU_ASSERT_EQUAL_FATAL(ckpt_h5_writer_close(w), XFFL_OK);
        char sha[XFFL_SHA256_HEX];
        uint64_t size;
        T_OK(xffl_sha256_file(path, sha, &size));
        const char *key = "rounds/r000001/beta/a2/part-000-nan.h5";
        CU_ASSERT_EQUAL(store_put_file(fx.s, key, path), XFFL_OK);
        T_OK(ckpt_manifest_add_object(m, key, size, sha));
        CU_ASSERT_EQUAL(pipe_manifest_put(fx.s, m, "rounds/r000001/beta/a2/", "COMMIT", k), XFFL_OK);
        ckpt_manifest_free(m);
        xffl_rmtree_cleanup(tmp);
        free(tmp);
    }
    CU_ASSERT_EQUAL(pipe_aggregate(fx.s, &o, &r), XFFL_ERR_NOT_YET);
    CU_ASSERT_EQUAL(r.n_rejected, 1);
    CU_ASSERT_EQUAL_FATAL(pipe_round_list(fx.s, 1, NULL, &l), XFFL_OK);
    const pipe_attempt *b2 = pipe_round_latest_attempt(&l, "beta");
    CU_ASSERT_TRUE_FATAL(b2 && b2->attempt == 2 && b2->state == PIPE_ATTEMPT_REJECTED);
    char *reason = NULL;
    T_OK(pipe_rejected_reason(fx.s, b2->rejected_key, &reason));
    CU_ASSERT_PTR_NOT_NULL(reason && strstr(reason, "non-finite"));
    CU_ASSERT_PTR_NOT_NULL(reason && strstr(reason, fx.t->params[1].name));
    free(reason);
    pipe_round_listing_free(&l);
    /* good attempts arrive: the round completes from alpha a2 and beta a3 */
    fill(d, n, 6, 1e-2f);
    CU_ASSERT_EQUAL_FATAL(commit(&fx, &v0, 1, "alpha", 2, d, 100, k), XFFL_OK);
    fill(d, n, 7, 1e-2f);
    CU_ASSERT_EQUAL_FATAL(commit(&fx, &v0, 1, "beta", 3, d, 300, k), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(pipe_aggregate(fx.s, &o, &r), XFFL_OK);
    CU_ASSERT_EQUAL(r.version, 1);
    CU_ASSERT_EQUAL(r.n_used, 2);
    pipe_version_ref v1;
    CU_ASSERT_EQUAL_FATAL(pipe_latest_read(fx.s, &v1), XFFL_OK);
    /* a second aggregator (2 threads) into a scratch store writes the same bytes */
    {
        char *d2 = NULL;
        store *s2 = NULL;
        CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-round-2", &d2), XFFL_OK);
        CU_ASSERT_EQUAL_FATAL(store_open(d2, NULL, &s2), XFFL_OK);
        CU_ASSERT_EQUAL_FATAL(pipe_round_list(fx.s, 1, NULL, &l), XFFL_OK);
        pipe_contrib c[2];
        int nc = 0;
        for (int i = 0; i < l.count; i++) {
            if (l.items[i].state != PIPE_ATTEMPT_PENDING) continue;
            int bad;
            CU_ASSERT_EQUAL_FATAL(pipe_contrib_load(fx.s, &fx.f, fx.fed_sha, fx.t, 1, &v0, l.items[i].commit_key,
                                                    &c[nc], &bad), XFFL_OK);
            nc++;
        }
        CU_ASSERT_EQUAL_FATAL(nc, 2);
        const pipe_publish_setting ps = {.f = &fx.f, .fed_sha = fx.fed_sha, .t = fx.t, .threads = 2,
                                         .with_update = 1};
        pipe_publish_result pr;
        CU_ASSERT_EQUAL(pipe_combine_publish(fx.s, s2, &ps, &v0, nc, c, &pr), XFFL_OK);
        const pipe_version_result vr = pr.version;
        CU_ASSERT_STRING_EQUAL(vr.ref.index_key, v1.index_key);
        CU_ASSERT_STRING_EQUAL(vr.ref.index_sha, v1.index_sha);
        for (int i = 0; i < nc; i++) pipe_contrib_clear(&c[i]);
        pipe_round_listing_free(&l);
        store_close(s2);
        xffl_rmtree_cleanup(d2);
        free(d2);
    }
    /* reproduce recomputes v1 from v0 and the accepted deltas: same INDEX bytes */
    pipe_reproduce_report rr;
    xffl_status rst = pipe_reproduce_round(fx.s, 1, 2, NULL, &rr);
    CU_ASSERT_EQUAL(rst, XFFL_OK);
    if (rst) fprintf(stderr, "reproduce: %s\n", xffl_errmsg());
    CU_ASSERT_TRUE(rr.index_identical);
    CU_ASSERT_EQUAL(rr.tensors_differ, 0);
    CU_ASSERT_EQUAL(rr.tensors_compared, 2 * fx.t->count); /* model + diloco momentum */
    CU_ASSERT_EQUAL(rr.parts_differ, 0);
    /* verify --all: no problem */
    pipe_verify_report vrep;
    CU_ASSERT_EQUAL(pipe_verify_all(fx.s, &vrep), XFFL_OK);
    CU_ASSERT_EQUAL(vrep.n_problems, 0);
    CU_ASSERT_EQUAL(vrep.versions_checked, 2);
    CU_ASSERT_EQUAL(vrep.commits_checked, 6); /* alpha a1 a2, beta a1 a2 a3, gamma a1 */
    free(d);
    teardown(&fx);
}

/* --total-rounds: one learning-rate schedule across rounds (warm-up once), kept in
 * federation.h5; 0 restarts it every round. */
static void test_inner_schedule_spans_rounds(void)
{
    fixture fx;
    CU_ASSERT_FATAL(setup_or_say(&fx, "a,b", PIPE_ALGO_DILOCO, 2));
    pipe_federation f = fx.f;
    f.local_steps = 50;
    f.inner.warmup = 10;
    f.inner.lr = 1e-3;
    f.inner.min_lr = 1e-4;
    kern_adamw_config ac;
    int64_t step0;
    pipe_inner_schedule(&f, 3, &ac, &step0); /* restarting: every round alike */
    CU_ASSERT_EQUAL(step0, 0);
    CU_ASSERT_EQUAL(ac.total_steps, 50);
    CU_ASSERT(kern_lr_at(&ac, (int)step0) < 2e-4f); /* warming up again */
    f.inner.total_rounds = 5;
    pipe_inner_schedule(&f, 1, &ac, &step0);
    CU_ASSERT_EQUAL(step0, 0);
    CU_ASSERT_EQUAL(ac.total_steps, 250);
    CU_ASSERT(kern_lr_at(&ac, 0) < 2e-4f);
    pipe_inner_schedule(&f, 2, &ac, &step0);
    CU_ASSERT_EQUAL(step0, 50);
    CU_ASSERT(kern_lr_at(&ac, (int)step0) > 9e-4f); /* no second warm-up */
    pipe_inner_schedule(&f, 5, &ac, &step0);
    CU_ASSERT(fabsf(kern_lr_at(&ac, (int)step0 + 49) - 1e-4f) < 1e-5f); /* the floor at the end of round 5 */
    pipe_inner_schedule(&f, 7, &ac, &step0);
    CU_ASSERT_EQUAL(kern_lr_at(&ac, (int)step0), 1e-4f); /* past the plan: the floor */
    /* kept in federation.h5 */
    fx.f.inner.total_rounds = 5;
    char dir2[4096], sha[XFFL_SHA256_HEX];
    snprintf(dir2, sizeof dir2, "%s/other", fx.dir);
    store *s2 = NULL;
    CU_ASSERT_EQUAL_FATAL(store_open(dir2, NULL, &s2), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_federation_publish(s2, &fx.f, sha), XFFL_OK);
    pipe_federation back;
    CU_ASSERT_EQUAL(pipe_federation_load(s2, NULL, &back, NULL), XFFL_OK);
    CU_ASSERT_EQUAL(back.inner.total_rounds, 5);
    store_close(s2);
    teardown(&fx);
}

/* train --keep-rounds: only DIR/r<digits> of rounds <= round - keep go, whatever else
 * is in DIR stays */
static void test_state_prune(void)
{
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-prune-test", &dir), XFFL_OK);
    const char *made[] = {"r000001", "r000002", "r000003", "r000004", "r1000000", "r000002.tmp", "rx", "r+00001",
                          "results", "next"};
    char p[4200];
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        snprintf(p, sizeof p, "%s/%s/inner.bin", dir, made[i]);
        CU_ASSERT_EQUAL(xffl_mkdirs(p), XFFL_OK); /* a directory in the file's place: rmtree removes both */
    }
    CU_ASSERT_EQUAL(train_state_prune(dir, 4, 2), XFFL_OK);
    const char *gone[] = {"r000001", "r000002"};
    const char *kept[] = {"r000003", "r000004", "r1000000", "r000002.tmp", "rx", "r+00001", "results", "next"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, gone[i]);
        CU_ASSERT_FALSE(train_file_exists(p));
    }
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, kept[i]);
        CU_ASSERT_TRUE(train_file_exists(p));
    }
    CU_ASSERT_EQUAL(train_state_prune(dir, 4, 0), XFFL_OK); /* keep 0: round 4's go too */
    snprintf(p, sizeof p, "%s/r000004", dir);
    CU_ASSERT_FALSE(train_file_exists(p));
    snprintf(p, sizeof p, "%s/r1000000", dir);
    CU_ASSERT_TRUE(train_file_exists(p));
    snprintf(p, sizeof p, "%s/none", dir);
    CU_ASSERT_EQUAL(train_state_prune(p, 4, 0), XFFL_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "none"));
    CU_ASSERT_EQUAL(xffl_rmtree(dir), XFFL_OK);
    free(dir);
}

/* train --rounds: the next round takes the state a round wrote only while DIR holds
 * that very file, and the AdamW state's digest is the file's */
static void test_carry(void)
{
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-carry-test", &dir), XFFL_OK);
    enum { N = 1000 };
    char pin[4200], pres[4200];
    snprintf(pin, sizeof pin, "%s/inner.bin", dir);
    snprintf(pres, sizeof pres, "%s/residual.f32", dir);
    inner_state a = {.step = 7, .m = malloc(N * 4), .v = malloc(N * 4), .present = 1};
    float *res = malloc(N * 4);
    CU_ASSERT_FATAL(a.m && a.v && res);
    for (int i = 0; i < N; i++) a.m[i] = (float)i, a.v[i] = (float)(2 * i), res[i] = -(float)i;
    CU_ASSERT_EQUAL(train_inner_save(pin, N, &a), XFFL_OK);
    CU_ASSERT_EQUAL(xffl_write_file_atomic(pres, res, N * 4), XFFL_OK);
    inner_state fromfile = {0};
    CU_ASSERT_EQUAL(train_inner_load(pin, N, &fromfile), XFFL_OK);

    train_carry *c = train_carry_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    train_carry_keep(c, dir, N, &a, &res);
    CU_ASSERT_PTR_NULL(a.m); /* taken */
    CU_ASSERT_PTR_NULL(res);
    inner_state b = {0};
    float *rb = calloc(N, 4);
    CU_ASSERT_EQUAL(train_carry_take_inner(c, pin, N + 1, &b), 0); /* another model: dropped */
    CU_ASSERT_EQUAL(train_carry_take_inner(c, pin, N, &b), 0);
    CU_ASSERT_EQUAL(train_carry_take_floats(c, pres, N, &rb), 1);
    CU_ASSERT_EQUAL(rb[5], -5.0f);
    CU_ASSERT_EQUAL(train_carry_take_floats(c, pres, N, &rb), 0); /* once */

    /* again, and the inner file replaced by an equal one: read back, not taken */
    train_carry_keep(c, dir, N, &fromfile, &rb);
    inner_state again = {.step = 7, .m = calloc(N, 4), .v = calloc(N, 4)};
    CU_ASSERT_EQUAL(train_inner_save(pin, N, &again), XFFL_OK);
    CU_ASSERT_EQUAL(train_carry_take_inner(c, pin, N, &b), 0);
    train_inner_free(&again);
    /* and once more, unchanged: taken, with the file's digest */
    CU_ASSERT_EQUAL(train_inner_load(pin, N, &again), XFFL_OK);
    train_carry_keep(c, dir, N, &again, NULL);
    inner_state fresh = {0};
    CU_ASSERT_EQUAL(train_inner_load(pin, N, &fresh), XFFL_OK);
    CU_ASSERT_EQUAL(train_carry_take_inner(c, pin, N, &b), 1);
    CU_ASSERT_STRING_EQUAL(b.sha, fresh.sha);
    CU_ASSERT_EQUAL(b.step, 7);
    CU_ASSERT_TRUE(b.present);
    CU_ASSERT_EQUAL(train_carry_take_inner(NULL, pin, N, &b), 0);
    train_carry_free(c);
    train_carry_free(NULL);
    train_inner_free(&b);
    train_inner_free(&fresh);
    train_inner_free(&again);
    train_inner_free(&a);
    free(rb);
    free(res);
    CU_ASSERT_EQUAL(xffl_rmtree(dir), XFFL_OK);
    free(dir);
}

void suite_round(void)
{
    CU_pSuite s = CU_add_suite("round", NULL, NULL);
    CU_add_test(s, "fedavg round: quorum, exact result, already-there, states", test_fedavg_round);
    CU_add_test(s, "stale/unknown/shape/NaN rejected; round completes; same bytes", test_rejections_and_determinism);
    CU_add_test(s, "--total-rounds: one inner schedule across rounds, kept in federation.h5", test_inner_schedule_spans_rounds);
    CU_add_test(s, "train --keep-rounds: only old rounds' DIR/r<R>/ removed", test_state_prune);
    CU_add_test(s, "train --rounds: a round's state handed to the next only while DIR holds it", test_carry);
}
