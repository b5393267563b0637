/* Issue 14's checks as units: canonical integers and repeated lines in manifests, the
 * INDEX's own consistency, per-delta clipping (step 0, bit-deterministic), what robust
 * algorithms exclude, the delta filter (step 0a), the optional delta_clip/delta_filter attributes, REJECTED verdicts, and the
 * tokens a round is worth. The CLI side is tests/it/test-trust.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "libckpt/h5part.h"
#include "libckpt/manifest.h"
#include "pipelines/algo.h"
#include "pipelines/federation.h"
#include "pipelines/keys.h"
#include "pipelines/round.h"
#include "tests/unit/unit.h"

static void test_canonical_ints(void)
{
    static const char *const bad[] = {"2AAAA", "02", "+2", " 2", "2 ", "-0", "", "-", "9223372036854775808",
                                      "0x10", "1e3", "--1"};
    static const struct { const char *text; int64_t v; } good[] = {
        {"0", 0}, {"42", 42}, {"-1", -1}, {"9223372036854775807", INT64_MAX}, {"-9223372036854775808", INT64_MIN}};
    int64_t v;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CU_ASSERT_FALSE(ckpt_manifest_int_parse(bad[i], &v));
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CU_ASSERT_TRUE(ckpt_manifest_int_parse(good[i].text, &v));
        CU_ASSERT_EQUAL(v, good[i].v);
    }
    ckpt_manifest *m = NULL;
    const char *text = "round=2AAAA\n";
    T_OK(ckpt_manifest_parse(text, strlen(text), "INDEX", &m));
    CU_ASSERT_EQUAL(ckpt_manifest_require_int(m, "INDEX", "round", &v), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "round=2AAAA"));
    ckpt_manifest_free(m);
}

static void test_repeated_lines(void)
{
    const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char text[1024];
    static const char *const bodies[] = {
        "object a 1 %s\nobject a 1 %s\n",                       /* the same object twice */
        "object a 1 %s\nobject a 2 %s\n",                       /* the same name, other bytes */
        "tensor x float32 2x2 %s\ntensor x float32 2x2 %s\n",   /* a tensor twice */
        "contributor f r/a%.0s\ncontributor f r/b%.0s\n",     /* one facility twice */
        "contributor f r/a%.0s\ncontributor g r/a%.0s\n",     /* one COMMIT for two */
        "object a 01 %s\n%.0s",                                 /* a byte count with a leading zero */
        "object a -1 %s\n%.0s",                                 /* a negative byte count */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        int n = snprintf(text, sizeof text, "format=x\n");
        snprintf(text + n, sizeof text - (size_t)n, bodies[i], sha, sha);
        ckpt_manifest *m = NULL;
        CU_ASSERT_EQUAL(ckpt_manifest_parse(text, strlen(text), "M", &m), XFFL_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "M line"));
        CU_ASSERT_PTR_NULL(m);
    }
    const char *hdr = "a=1\nb=2\na=3\n";
    ckpt_manifest *m = NULL;
    CU_ASSERT_EQUAL(ckpt_manifest_parse(hdr, strlen(hdr), "M", &m), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "repeated"));
}

/* Puts text at <dir>INDEX-<its content name> and loads it. */
static XFFL_MUST_USE xffl_status put_index(store *s, const char *text)
{
    char hex[XFFL_SHA256_HEX], key[PIPE_KEY_MAX];
    xffl_sha256_hex(text, strlen(text), hex);
    XFFL_FORWARD(pipe_content_key("versions/v000002/", PIPE_INDEX_STEM, hex, NULL, key, sizeof key));
    XFFL_FORWARD(store_put(s, key, text, strlen(text)));
    ckpt_manifest *m = NULL;
    xffl_status st = pipe_manifest_load(s, key, NULL, &m, NULL);
    ckpt_manifest_free(m);
    return st;
}

static void test_index_consistency(void)
{
    char *root = NULL;
    store *s = NULL;
    T_OK(xffl_mkdtemp("trust", &root));
    T_OK(store_open(root, NULL, &s));
    const char *head = "format=xffl-index\nformat_version=1\nversion=2\n";
    const char *a = "contributor a rounds/r000002/a/a1/COMMIT-000000000000\n";
    const char *b = "contributor b rounds/r000002/b/a3/COMMIT-111111111111\n";
    char text[2048];
    struct { const char *hdr, *c1, *c2; xffl_status want; const char *msg; } cases[] = {
        {"parent=1\nround=2\ntokens_seen=5\nparts=0\n", a, b, XFFL_OK, NULL},
        {"parent=1\nround=3\ntokens_seen=5\nparts=0\n", a, b, XFFL_ERR_INVALID, "round=3"},
        {"parent=1\nround=2AAAA\ntokens_seen=5\nparts=0\n", a, b, XFFL_ERR_INVALID, "round=2AAAA"},
        {"parent=0\nround=2\ntokens_seen=5\nparts=0\n", a, b, XFFL_ERR_INVALID, "parent=0"},
        {"parent=1\nround=2\ntokens_seen=-5\nparts=0\n", a, b, XFFL_ERR_INVALID, "negative"},
        {"parent=1\nround=2\ntokens_seen=5\nparts=1\n", a, b, XFFL_ERR_INVALID, "parts=1"},
        {"parent=1\nround=2\ntokens_seen=5\nparts=0\n", b, a, XFFL_ERR_INVALID, "order"},
        {"parent=1\nround=2\ntokens_seen=5\nparts=0\n", "contributor a rounds/r000001/a/a1/COMMIT-000000000000\n", "",
         XFFL_ERR_INVALID, "not a COMMIT of round 2"},
        {"parent=1\nround=2\ntokens_seen=5\nparts=0\n", "contributor b rounds/r000002/a/a1/COMMIT-000000000000\n", "",
         XFFL_ERR_INVALID, "not a COMMIT of round 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s%s%s", head, cases[i].hdr, cases[i].c1, cases[i].c2);
        CU_ASSERT_EQUAL(put_index(s, text), cases[i].want);
        if (cases[i].msg) CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), cases[i].msg));
    }
    store_close(s);
    xffl_ignore(xffl_rmtree(root));
    free(root);
}

enum { N = 3000, K = 3 };

static XFFL_MUST_USE xffl_status run(const pipe_algo_config *c, float *const *d, int k, int threads, float *out,
                                     pipe_algo_stats *st)
{
    static float base[N], m[N], v[N];
    float *state[2] = {m, v};
    memset(m, 0, sizeof m);
    memset(v, 0, sizeof v);
    double tok[K] = {1, 2, 3};
    pipe_algo_input in = {.k = k, .deltas = (const float *const *)d, .tokens = tok, .base = base, .n = N,
                          .state = state, .round = 1, .threads = threads};
    return pipe_algo_apply(c, &in, out, st);
}

static void test_delta_clip(void)
{
    float *d[K], *o1 = malloc(N * sizeof *o1), *o2 = malloc(N * sizeof *o2), *o3 = malloc(N * sizeof *o3);
    for (int j = 0; j < K; j++) {
        d[j] = malloc(N * sizeof *d[j]);
        for (int i = 0; i < N; i++) d[j][i] = (float)(((i * 7 + j * 13) % 17) - 8) * 1e-3f * (j == 2 ? 1000.0f : 1.0f);
    }
    for (int a = 0; a < 5; a++) {
        pipe_algo_config c;
        pipe_algo_default((pipe_algo_kind)a, &c);
        c.delta_filter = 0; /* step 0 alone (median's and trimmed's default filter drops the huge one) */
        pipe_algo_stats st;
        /* off: the same bits as before step 0 existed, whatever the thread count */
        T_OK(run(&c, d, K, 1, o1, &st));
        CU_ASSERT_EQUAL(st.deltas_clipped, 0);
        c.delta_clip = 1.0;
        T_OK(run(&c, d, K, 1, o2, &st));
        T_OK(run(&c, d, K, 4, o3, &st));
        CU_ASSERT(memcmp(o2, o3, N * sizeof *o2) == 0); /* bit-deterministic */
        CU_ASSERT_EQUAL(st.deltas_clipped, 1);          /* only the huge one */
        if (a == PIPE_ALGO_FEDAVG) {
            /* the huge delta scaled to the median norm: the mean moves far less */
            double n1 = 0, n2 = 0;
            for (int i = 0; i < N; i++) n1 += (double)o1[i] * o1[i], n2 += (double)o2[i] * o2[i];
            CU_ASSERT(n2 < n1 / 100);
            /* and exactly as if that delta had been scaled by hand */
            double sq[K] = {0};
            for (int j = 0; j < K; j++)
                for (int i = 0; i < N; i++) sq[j] += (double)d[j][i] * d[j][i];
            double med = sqrt(sq[0]) < sqrt(sq[1]) ? sqrt(sq[1]) : sqrt(sq[0]);
            double s = med / sqrt(sq[2]);
            int same = 1;
            for (int i = 0; i < N; i++) {
                double m = (1 * (double)d[0][i] + 2 * (double)d[1][i] + 3 * ((double)d[2][i] * s)) / 6;
                same &= fabsf(o2[i] - (float)m) <= 1e-6f * (fabsf((float)m) + 1e-6f);
            }
            CU_ASSERT(same);
        }
    }
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_FEDAVG, &c);
    c.delta_clip = -1;
    CU_ASSERT_EQUAL(pipe_algo_validate(&c), XFFL_ERR_INVALID);
    c.delta_clip = NAN;
    CU_ASSERT_EQUAL(pipe_algo_validate(&c), XFFL_ERR_INVALID);
    for (int j = 0; j < K; j++) free(d[j]);
    free(o1);
    free(o2);
    free(o3);
}

/* k deltas with tokens tok through one algorithm, the outer state zeroed. */
static XFFL_MUST_USE xffl_status run_k(const pipe_algo_config *c, const float *const *d, const double *tok, int k,
                                       int threads, float *out, pipe_algo_stats *st)
{
    static float base[N], m[N], v[N];
    float *state[2] = {m, v};
    memset(m, 0, sizeof m);
    memset(v, 0, sizeof v);
    pipe_algo_input in = {.k = k, .deltas = d, .tokens = tok, .base = base, .n = N, .state = state, .round = 1,
                          .threads = threads};
    return pipe_algo_apply(c, &in, out, st);
}

static void test_delta_filter(void)
{
    enum { KF = 4 };
    float *d[KF], *o1 = malloc(N * sizeof *o1), *o2 = malloc(N * sizeof *o2), *o3 = malloc(N * sizeof *o3);
    const double tok[KF] = {1, 2, 3, 4};
    for (int j = 0; j < KF; j++) {
        d[j] = malloc(N * sizeof *d[j]);
        for (int i = 0; i < N; i++) /* three honest deltas: one pattern, each its own noise */
            d[j][i] = (float)(((i * 7) % 17) - 8) * 1e-3f + (float)(((i * 13 + j * 29) % 11) - 5) * 1.5e-3f;
    }
    for (int a = 0; a < 5; a++) {
        pipe_algo_config c;
        pipe_algo_default((pipe_algo_kind)a, &c);
        c.trim = 0.25;
        pipe_algo_stats st;
        /* all honest: nothing left out, the same bits as without the filter */
        T_OK(run_k(&c, (const float *const *)d, tok, KF, 1, o1, &st));
        c.delta_filter = 3;
        T_OK(run_k(&c, (const float *const *)d, tok, KF, 1, o2, &st));
        CU_ASSERT_EQUAL(st.deltas_dropped, 0);
        CU_ASSERT(memcmp(o1, o2, N * sizeof *o1) == 0);
        for (int kind = 0; kind < 2; kind++) {
            /* the fourth: the third x -100 (far), or x -1 (as long as the others, pointing away) */
            for (int i = 0; i < N; i++) d[3][i] = d[2][i] * (kind ? -1.0f : -100.0f);
            c.delta_filter = 0;
            T_OK(run_k(&c, (const float *const *)d, tok, 3, 1, o1, &st)); /* the three honest alone */
            c.delta_filter = 3;
            T_OK(run_k(&c, (const float *const *)d, tok, KF, 1, o2, &st));
            T_OK(run_k(&c, (const float *const *)d, tok, KF, 4, o3, &st));
            CU_ASSERT(memcmp(o2, o3, N * sizeof *o2) == 0); /* bit-deterministic */
            CU_ASSERT_EQUAL(st.deltas_dropped, 1);
            CU_ASSERT(st.filter_dropped[3] && !st.filter_dropped[0] && !st.filter_dropped[1] && !st.filter_dropped[2]);
            CU_ASSERT(st.filter_cosine[3] < 0 && st.filter_cosine[0] > 0.5);
            if (!kind) CU_ASSERT(st.filter_distance[3] > 30);
            if (kind) CU_ASSERT(st.filter_distance[3] <= 3); /* the direction, not the distance, left it out */
            CU_ASSERT(memcmp(o1, o2, N * sizeof *o1) == 0);  /* exactly the round without it */
        }
        /* and without the filter the far one moves the result */
        c.delta_filter = 0;
        for (int i = 0; i < N; i++) d[3][i] = d[2][i] * -100.0f;
        T_OK(run_k(&c, (const float *const *)d, tok, KF, 1, o2, &st));
        if (a != PIPE_ALGO_MEDIAN && a != PIPE_ALGO_TRIMMED) CU_ASSERT(memcmp(o1, o2, N * sizeof *o1) != 0);
        for (int i = 0; i < N; i++) d[3][i] = d[0][i];
    }
    /* every delta pointing away: the one nearest the median stays */
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_FEDAVG, &c);
    c.delta_filter = 2;
    const double dist[3] = {3, 1, 2}, dot[3] = {-1, -1, -1};
    int keep[3];
    pipe_algo_filter_deltas(&c, 3, dist, dot, keep);
    CU_ASSERT(!keep[0] && keep[1] && !keep[2]);
    const double dist2[4] = {1, 1, 1, 2.5}, dot2[4] = {1, 1, 0, 1};
    int keep2[4];
    pipe_algo_filter_deltas(&c, 4, dist2, dot2, keep2);
    CU_ASSERT(keep2[0] && keep2[1] && keep2[2] && !keep2[3]); /* 2.5 > 2 x median 1; a dot of 0 stays */
    for (double bad = -1; bad < 1; bad += 0.5) {
        c.delta_filter = bad == 0 ? 0.5 : bad;
        CU_ASSERT_EQUAL(pipe_algo_validate(&c), XFFL_ERR_INVALID);
    }
    c.delta_filter = NAN;
    CU_ASSERT_EQUAL(pipe_algo_validate(&c), XFFL_ERR_INVALID);
    c.delta_filter = INFINITY;
    CU_ASSERT_EQUAL(pipe_algo_validate(&c), XFFL_ERR_INVALID);
    c.delta_filter = 1;
    T_OK(pipe_algo_validate(&c));
    for (int j = 0; j < KF; j++) free(d[j]);
    free(o1);
    free(o2);
    free(o3);
}

static void test_excludes(void)
{
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_MEDIAN, &c);
    const pipe_algo_def *m = pipe_algo_get(PIPE_ALGO_MEDIAN), *t = pipe_algo_get(PIPE_ALGO_TRIMMED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->excludes);
    CU_ASSERT_EQUAL(m->excludes(&c, 1), 0);
    CU_ASSERT_EQUAL(m->excludes(&c, 2), 0); /* the median of 2 is their mean */
    CU_ASSERT_EQUAL(m->excludes(&c, 3), 2);
    CU_ASSERT_EQUAL(m->excludes(&c, 4), 2);
    pipe_algo_default(PIPE_ALGO_TRIMMED, &c);
    CU_ASSERT_EQUAL(t->excludes(&c, 3), 0); /* ⌊0.1 · 3⌋ = 0 */
    CU_ASSERT_EQUAL(t->excludes(&c, 10), 2);
    c.trim = 0.25;
    CU_ASSERT_EQUAL(t->excludes(&c, 4), 2);
    CU_ASSERT_PTR_NULL(pipe_algo_get(PIPE_ALGO_FEDAVG)->excludes);
}

static void test_delta_clip_attribute(void)
{
    char *dir = NULL;
    T_OK(xffl_mkdtemp("trust", &dir));
    char p0[4200], p1[4200];
    snprintf(p0, sizeof p0, "%s/off.h5", dir);
    snprintf(p1, sizeof p1, "%s/on.h5", dir);
    pipe_federation f, g;
    T_OK(pipe_federation_default("tiny", 0, &f));
    T_OK(pipe_federation_write_file(&f, p0));
    f.algo.delta_clip = 2.5;
    f.algo.delta_filter = 3;
    T_OK(pipe_federation_write_file(&f, p1));
    T_OK(pipe_federation_read_file(p1, &g));
    CU_ASSERT_EQUAL(g.algo.delta_clip, 2.5);
    CU_ASSERT_EQUAL(g.algo.delta_filter, 3);
    T_OK(pipe_federation_read_file(p0, &g));
    CU_ASSERT_EQUAL(g.algo.delta_clip, 0);
    CU_ASSERT_EQUAL(g.algo.delta_filter, 0);
    ckpt_h5_reader *r = NULL;
    T_OK(ckpt_h5_reader_open(p0, NULL, &r));
    CU_ASSERT_FALSE(ckpt_h5_has_attr(r, "delta_clip")); /* unset: the bytes older xffl wrote */
    CU_ASSERT_FALSE(ckpt_h5_has_attr(r, "delta_filter"));
    ckpt_h5_reader_close(r);
    /* the robust algorithms filter by default; off stays off through the file, which
     * then lacks the attribute exactly as one written before the default existed */
    for (int kind = PIPE_ALGO_MEDIAN; kind <= PIPE_ALGO_TRIMMED; kind++) {
        pipe_federation_set_algo(&f, (pipe_algo_kind)kind);
        CU_ASSERT_EQUAL(f.algo.delta_filter, PIPE_ALGO_ROBUST_FILTER);
        f.algo.delta_filter = 0;
        T_OK(pipe_federation_write_file(&f, p0));
        T_OK(pipe_federation_read_file(p0, &g));
        CU_ASSERT_EQUAL(g.algo.kind, kind);
        CU_ASSERT_EQUAL(g.algo.delta_filter, 0);
    }
    pipe_federation_set_algo(&f, PIPE_ALGO_FEDAVG);
    CU_ASSERT_EQUAL(f.algo.delta_filter, 0);
    int64_t tok;
    T_OK(pipe_federation_round_tokens(&f, 1, &tok));
    CU_ASSERT_EQUAL(tok, (int64_t)f.local_steps * f.batch * f.seq_len);
    f.local_steps = INT32_MAX, f.batch = INT32_MAX, f.seq_len = INT32_MAX;
    CU_ASSERT_EQUAL(pipe_federation_round_tokens(&f, 1, &tok), XFFL_ERR_INVALID);
    xffl_ignore(xffl_rmtree(dir));
    free(dir);
}

static void test_rejected_check(void)
{
    char *root = NULL;
    store *s = NULL;
    T_OK(xffl_mkdtemp("trust", &root));
    T_OK(store_open(root, NULL, &s));
    const char *ck = "rounds/r000001/a/a1/COMMIT-000000000000";
    char rk[PIPE_KEY_MAX];
    T_OK(pipe_reject(s, ck, "bad\nreason", rk));
    T_OK(pipe_rejected_check(s, rk, ck));
    T_OK(pipe_rejected_check(s, rk, NULL));
    CU_ASSERT_EQUAL(pipe_rejected_check(s, rk, "rounds/r000001/a/a1/COMMIT-111111111111"), XFFL_ERR_INVALID);
    /* hand-written: not its content name; or its name, but for another attempt's COMMIT */
    const char *forged = "commit=rounds/r000001/a/a1/COMMIT-000000000000\nreason=forged\n";
    T_OK(store_put(s, "rounds/r000001/a/a1/REJECTED-000000000000", forged, strlen(forged)));
    CU_ASSERT_EQUAL(pipe_rejected_check(s, "rounds/r000001/a/a1/REJECTED-000000000000", ck), XFFL_ERR_CORRUPT);
    const char *other = "commit=rounds/r000001/b/a1/COMMIT-000000000000\nreason=forged\n";
    char hex[XFFL_SHA256_HEX], key[PIPE_KEY_MAX];
    xffl_sha256_hex(other, strlen(other), hex);
    T_OK(pipe_content_key("rounds/r000001/a/a1/", PIPE_REJECTED_STEM, hex, NULL, key, sizeof key));
    T_OK(store_put(s, key, other, strlen(other)));
    CU_ASSERT_EQUAL(pipe_rejected_check(s, key, NULL), XFFL_ERR_INVALID);
    /* the listing ignores both forgeries: the attempt stays rejected by the real one */
    pipe_round_listing l;
    T_OK(store_put(s, ck, "x", 1));
    T_OK(pipe_round_list(s, 1, NULL, &l));
    CU_ASSERT_EQUAL_FATAL(l.count, 1);
    CU_ASSERT_EQUAL(l.items[0].state, PIPE_ATTEMPT_REJECTED);
    CU_ASSERT_STRING_EQUAL(l.items[0].rejected_key, rk);
    pipe_round_listing_free(&l);
    T_OK(store_delete(s, rk));
    T_OK(pipe_round_list(s, 1, NULL, &l));
    CU_ASSERT_EQUAL_FATAL(l.count, 1);
    CU_ASSERT_EQUAL(l.items[0].state, PIPE_ATTEMPT_PENDING);
    pipe_round_listing_free(&l);
    store_close(s);
    xffl_ignore(xffl_rmtree(root));
    free(root);
}

void suite_trust(void)
{
    CU_pSuite s = CU_add_suite("trust", NULL, NULL);
    CU_add_test(s, "canonical integers only: 2AAAA, 02, +2 refused", test_canonical_ints);
    CU_add_test(s, "repeated objects, tensors, contributors, headers refused", test_repeated_lines);
    CU_add_test(s, "an INDEX agrees with itself: round, parent, counts, contributors", test_index_consistency);
    CU_add_test(s, "per-delta clipping: bounded, exact, bit-deterministic", test_delta_clip);
    CU_add_test(s, "delta filter: far or opposed deltas left out, exact, bit-deterministic", test_delta_filter);
    CU_add_test(s, "robust algorithms say what they exclude", test_excludes);
    CU_add_test(s, "delta_clip, delta_filter in federation.h5 only when set, filter default of median/trimmed; round tokens", test_delta_clip_attribute);
    CU_add_test(s, "a REJECTED counts only when it is aggregate's verdict", test_rejected_check);
}
