/* Version updates (pipelines/update.h): the XOR update reproduces version v's exact
 * bits from v−1's, a facility's cached base is used only when it is whole and the right
 * version, and a wrong update or a damaged cache falls back to the full version. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/log.h"
#include "common/util.h"
#include "libckpt/h5part.h"
#include "libckpt/model.h"
#include "pipelines/download.h"
#include "pipelines/keys.h"
#include "pipelines/update.h"
#include "pipelines/version.h"
#include "storage/store.h"
#include "tests/unit/unit.h"

static char *root;
static int seq;

static char url[1024];

/* the facility's side: a diloco federation (one outer-state group, "outer", as the
 * versions below hold), unsigned */
static pipe_federation fed = {.algo = {.kind = PIPE_ALGO_DILOCO}};

static store *fresh(char *dir_out)
{
    if (!root) CU_ASSERT_FATAL(xffl_mkdtemp("update", &root) == XFFL_OK);
    snprintf(url, sizeof url, "%s/s%d", root, seq++);
    if (dir_out) snprintf(dir_out, 1024, "%s/state%d", root, seq);
    store *s = NULL;
    CU_ASSERT_FATAL(store_open(url, NULL, &s) == XFFL_OK);
    return s;
}

/* version k's model: the seeded init, each float moved by a small relative step per
 * version (up to 6e-4, as a round of fine-tuning moves it), so v−1 and v are close but
 * differ in nearly every element */
typedef struct {
    const ckpt_param_table *t;
    int version;
} src_ctx;

static void model_of(const ckpt_param_table *t, int version, float *slab)
{
    for (int i = 0; i < t->count; i++) {
        const ckpt_param *p = &t->params[i];
        /* the token embedding is drawn anew every version: a tensor that moved far */
        ckpt_param_init(t, i, i == 0 ? 11 + (uint64_t)version : 11, slab + p->offset);
        if (i == 0) continue;
        for (int64_t k = 0; k < p->numel; k++)
            for (int v = 1; v <= version; v++) slab[p->offset + k] *= 1.0f + 1e-4f * (float)(((k * 7 + v) % 13) - 6);
    }
}

static XFFL_MUST_USE xffl_status src(void *ctx, int group, int index, float *out)
{
    src_ctx *c = ctx;
    float *all = malloc((size_t)c->t->total * 4);
    XFFL_RETURN_IF(!all, XFFL_ERR_NOMEM, "test model");
    model_of(c->t, c->version, all);
    const ckpt_param *p = &c->t->params[index];
    memcpy(out, all + p->offset, (size_t)p->numel * 4);
    if (group) memset(out, 0, (size_t)p->numel * 4);
    free(all);
    return XFFL_OK;
}

/* Publishes version `version` (with an update from `from` when given, whose model is
 * from_model). */
static void publish(store *s, const ckpt_param_table *t, int version, const pipe_version_ref *from,
                    const float *from_model, pipe_version_result *res)
{
    static const char *groups[] = {"model", "outer"};
    char fed[XFFL_SHA256_HEX];
    xffl_sha256_hex("federation", 10, fed);
    src_ctx c = {t, version};
    pipe_version_spec sp = {.version = version, .parent = version - 1, .round = version, .algorithm = "diloco",
                            .federation_sha256 = fed, .tokens_seen = 100 * version, .n_groups = version ? 2 : 1,
                            .groups = groups, .part_size = 48 << 10, .threads = 2, .update_from = from,
                            .update_base = from_model};
    T_OK(pipe_version_publish(s, t, &sp, src, &c, res));
}

static void test_roundtrip(void)
{
    char sd[1024];
    store *s = fresh(sd);
    ckpt_param_table *t = t_tiny_table();
    CU_ASSERT_FATAL(t != NULL);
    const size_t nb = (size_t)t->total * 4;
    float *m0 = malloc(nb), *m1 = malloc(nb), *got = malloc(nb);
    model_of(t, 0, m0);
    model_of(t, 1, m1);
    CU_ASSERT_FATAL(memcmp(m0, m1, nb) != 0);
    pipe_version_result r0, r1;
    publish(s, t, 0, NULL, NULL, &r0);
    CU_ASSERT_STRING_EQUAL(r0.update_key, "");
    publish(s, t, 1, &r0.ref, m0, &r1);
    /* beside the version, named after the version it updates from, a manifest of its kind */
    CU_ASSERT(strncmp(r1.update_key, "versions/v000001/UPDATE-from-v000000-", 37) == 0);
    pipe_key k;
    CU_ASSERT_EQUAL(pipe_key_parse(r1.update_key, &k), PIPE_KEY_VERSION);
    CU_ASSERT_EQUAL(k.obj, PIPE_OBJ_UPDATE);
    ckpt_manifest *m = NULL;
    T_OK(pipe_manifest_load(s, r1.update_key, NULL, &m, NULL));
    CU_ASSERT_STRING_EQUAL(ckpt_manifest_get(m, "index"), r1.ref.index_key);
    CU_ASSERT_STRING_EQUAL(ckpt_manifest_get(m, "base_index"), r0.ref.index_key);
    CU_ASSERT(m->n_objects >= 2); /* 48 KiB parts: several */
    /* the far-moved embedding as v1's floats, the others as XOR words */
    char part[2048];
    snprintf(part, sizeof part, "%s/%s", url, m->objects[0].name);
    ckpt_h5_reader *r = NULL;
    T_OK(ckpt_h5_reader_open(part, NULL, &r));
    CU_ASSERT(ckpt_h5_has_dataset(r, "model/tok_embeddings.weight"));
    CU_ASSERT(!ckpt_h5_has_dataset(r, "xor/tok_embeddings.weight"));
    ckpt_h5_reader_close(r);
    snprintf(part, sizeof part, "%s/%s", url, m->objects[m->n_objects - 1].name);
    T_OK(ckpt_h5_reader_open(part, NULL, &r));
    CU_ASSERT(ckpt_h5_has_dataset(r, "xor/output.weight"));
    CU_ASSERT(!ckpt_h5_has_dataset(r, "model/output.weight"));
    ckpt_h5_reader_close(r);
    ckpt_manifest_free(m);
    /* close floats: the XOR words compress below the version's model (72 % of it here,
     * with the far-moved embedding stored whole) */
    CU_ASSERT(r1.update_bytes > 0 && r1.update_bytes < r0.stored_bytes * 8 / 10);

    /* applied to v0's floats it gives v1's bits exactly */
    memcpy(got, m0, nb);
    uint64_t bytes = 0;
    char used[PIPE_KEY_MAX];
    T_OK(pipe_update_apply(s, &r1.ref, r0.ref.index_key, NULL, t, got, &bytes, used));
    CU_ASSERT_EQUAL(memcmp(got, m1, nb), 0);
    CU_ASSERT_STRING_EQUAL(used, r1.update_key);
    CU_ASSERT(bytes > r1.update_bytes && bytes < r1.update_bytes + 4096); /* parts and the manifest */
    /* no update from another base */
    memcpy(got, m0, nb);
    CU_ASSERT_EQUAL(pipe_update_apply(s, &r1.ref, "versions/v000000/INDEX-000000000000", NULL, t, got, NULL, NULL),
                    XFFL_ERR_NOT_FOUND);

    /* the facility: no state, then state without a base: in full */
    pipe_download d;
    const pipe_download_options nostate = {.f = &fed}, withstate = {.f = &fed, .state_dir = sd};
    (void)nostate;
    T_OK(pipe_model_download(s, &r1.ref, &nostate, t, got, NULL, &d));
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_FULL);
    CU_ASSERT_EQUAL(d.bytes, r1.stored_bytes);
    CU_ASSERT_EQUAL(d.state_known, 0);
    /* in full, the outer state comes with the model (no extra bytes): v1's, zeros here;
     * v0 holds none, which is zeros too */
    float *outer = malloc(nb);
    memset(outer, 0x7f, nb);
    T_OK(pipe_model_download(s, &r1.ref, &nostate, t, got, outer, &d));
    CU_ASSERT_EQUAL(d.state_known, 1);
    CU_ASSERT_EQUAL(d.bytes, r1.stored_bytes);
    CU_ASSERT(outer[0] == 0.0f && outer[t->total - 1] == 0.0f);
    memset(outer, 0x7f, nb);
    T_OK(pipe_model_download(s, &r0.ref, &nostate, t, got, outer, &d));
    CU_ASSERT(d.state_known == 1 && outer[0] == 0.0f && outer[t->total - 1] == 0.0f);
    CU_ASSERT_EQUAL(memcmp(got, m0, nb), 0);
    free(outer);
    T_OK(xffl_mkdirs(sd));
    memset(got, 0, nb);
    T_OK(pipe_model_download(s, &r1.ref, &withstate, t, got, NULL, &d));
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_FULL);
    CU_ASSERT_EQUAL(memcmp(got, m1, nb), 0);
    /* with v0 kept: as an update, the same bits, fewer bytes */
    T_OK(pipe_base_save(sd, &r0.ref, t, m0, NULL, 0));
    memset(got, 0, nb);
    T_OK(pipe_model_download(s, &r1.ref, &withstate, t, got, NULL, &d));
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_UPDATE);
    CU_ASSERT_EQUAL(memcmp(got, m1, nb), 0);
    CU_ASSERT(d.bytes < d.full_bytes && d.full_bytes == r1.stored_bytes);
    /* the version itself kept (a retried round, the aggregation job's base): nothing
     * downloaded but the INDEX */
    T_OK(pipe_base_save(sd, &r1.ref, t, m1, NULL, 0));
    memset(got, 0, nb);
    T_OK(pipe_model_download(s, &r1.ref, &withstate, t, got, NULL, &d));
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_CACHED);
    CU_ASSERT_EQUAL(d.bytes, 0);
    CU_ASSERT_EQUAL(memcmp(got, m1, nb), 0);
    /* the .ref names the floats by the digest of their 64 MiB pieces; one written before
     * 2026-12-03 holds the SHA-256 of the whole file, which is still read */
    char refp[1200], line[512];
    snprintf(refp, sizeof refp, "%s/base.ref", sd);
    void *rd = NULL;
    size_t rn = 0;
    T_OK(xffl_read_file(refp, &rd, &rn));
    CU_ASSERT_PTR_NOT_NULL(strstr(rd, " sha256-64m:"));
    free(rd);
    char whole[XFFL_SHA256_HEX];
    xffl_sha256_hex(m1, nb, whole);
    int ln = snprintf(line, sizeof line, "v000001 %s %s\n", r1.ref.index_key, whole);
    T_OK(xffl_write_file_atomic(refp, line, (size_t)ln));
    memset(got, 0, nb);
    T_OK(pipe_model_download(s, &r1.ref, &withstate, t, got, NULL, &d));
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_CACHED);
    CU_ASSERT_EQUAL(memcmp(got, m1, nb), 0);
    /* a base of another version (a later one): in full */
    T_OK(pipe_model_download(s, &r0.ref, &withstate, t, got, NULL, &d));
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_FULL);
    CU_ASSERT_EQUAL(memcmp(got, m0, nb), 0);
    /* kept floats whose file matches its .ref but not the INDEX (written from other
     * floats): refused by the INDEX's digests, named, in full */
    float *other = malloc(nb);
    memcpy(other, m1, nb);
    other[t->params[2].offset] += 1.0f;
    T_OK(pipe_base_save(sd, &r1.ref, t, other, NULL, 0));
    free(other);
    xffl_log_config quiet0 = {.level = XFFL_LOG_ERROR}; /* the fallback's warning */
    xffl_log_config old0 = xffl_log_setup(&quiet0);
    xffl_status st0 = pipe_model_download(s, &r1.ref, &withstate, t, got, NULL, &d);
    xffl_log_setup(&old0);
    T_OK(st0);
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_FULL);
    CU_ASSERT(strstr(d.why_full, t->params[2].name) != NULL && strstr(d.why_full, "cached") != NULL);
    CU_ASSERT_EQUAL(memcmp(got, m1, nb), 0);
    /* a damaged cache (one bit of base.f32): named, in full, never wrong bits */
    T_OK(pipe_base_save(sd, &r0.ref, t, m0, NULL, 0));
    char p[1200];
    snprintf(p, sizeof p, "%s/base.f32", sd);
    float *bad = malloc(nb);
    memcpy(bad, m0, nb);
    ((unsigned char *)bad)[1000] ^= 1;
    T_OK(xffl_write_file_atomic(p, bad, nb));
    xffl_log_config quiet = {.level = XFFL_LOG_ERROR}; /* the fallback's warning */
    xffl_log_config old = xffl_log_setup(&quiet);
    xffl_status st = pipe_model_download(s, &r1.ref, &withstate, t, got, NULL, &d);
    xffl_log_setup(&old);
    T_OK(st);
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_FULL);
    CU_ASSERT(strstr(d.why_full, "base.f32") != NULL);
    CU_ASSERT_EQUAL(memcmp(got, m1, nb), 0);
    /* a half-written cache: base.f32 without base.ref (pipe_base_save removes it first) */
    T_OK(pipe_base_save(sd, &r0.ref, t, m0, NULL, 0));
    snprintf(p, sizeof p, "%s/base.ref", sd);
    CU_ASSERT_EQUAL(unlink(p), 0);
    T_OK(pipe_model_download(s, &r1.ref, &withstate, t, got, NULL, &d));
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_FULL);
    CU_ASSERT_EQUAL(memcmp(got, m1, nb), 0);

    /* verify --all's check: applied to v0 */
    int n = 0;
    T_OK(pipe_update_verify(s, &r1.ref, t, NULL, m0, r0.ref.index_key, &n));
    CU_ASSERT_EQUAL(n, 1);
    T_OK(pipe_update_verify(s, &r1.ref, t, NULL, NULL, NULL, &n));
    CU_ASSERT_EQUAL(n, 1);
    free(bad);
    free(m0);
    free(m1);
    free(got);
    ckpt_param_table_free(t);
    store_close(s);
}

/* An update whose parts are whole (their digests match the manifest) but whose words
 * were computed from other floats: applying it is refused by v's INDEX digests, naming
 * the part and the tensor, and the facility falls back to the full version. */
static void test_wrong_update(void)
{
    char sd[1024];
    store *s = fresh(sd);
    ckpt_param_table *t = t_tiny_table();
    CU_ASSERT_FATAL(t != NULL);
    const size_t nb = (size_t)t->total * 4;
    float *m0 = malloc(nb), *m1 = malloc(nb), *wrong = malloc(nb), *got = malloc(nb);
    model_of(t, 0, m0);
    model_of(t, 1, m1);
    memcpy(wrong, m0, nb);
    wrong[t->params[3].offset + 5] += 1e-3f; /* the aggregator's idea of v0 differs in one float */
    pipe_version_result r0, r1;
    publish(s, t, 0, NULL, NULL, &r0);
    publish(s, t, 1, &r0.ref, wrong, &r1);
    memcpy(got, m0, nb);
    CU_ASSERT_EQUAL(pipe_update_apply(s, &r1.ref, r0.ref.index_key, NULL, t, got, NULL, NULL), XFFL_ERR_CORRUPT);
    CU_ASSERT(strstr(xffl_errmsg(), "update-") != NULL);
    CU_ASSERT(strstr(xffl_errmsg(), "after the update") != NULL);
    CU_ASSERT(strstr(xffl_errmsg(), t->params[3].name) != NULL);
    T_OK(xffl_mkdirs(sd));
    T_OK(pipe_base_save(sd, &r0.ref, t, m0, NULL, 0));
    pipe_download d;
    const pipe_download_options nostate = {.f = &fed}, withstate = {.f = &fed, .state_dir = sd};
    (void)nostate;
    xffl_log_config quiet = {.level = XFFL_LOG_ERROR}; /* the fallback's warning */
    xffl_log_config old = xffl_log_setup(&quiet);
    xffl_status st = pipe_model_download(s, &r1.ref, &withstate, t, got, NULL, &d);
    xffl_log_setup(&old);
    T_OK(st);
    CU_ASSERT_EQUAL(d.route, PIPE_DOWNLOAD_FULL);
    CU_ASSERT(d.bytes > d.full_bytes); /* the update's bytes, then the version's */
    CU_ASSERT_EQUAL(memcmp(got, m1, nb), 0);
    int n = 0;
    CU_ASSERT_EQUAL(pipe_update_verify(s, &r1.ref, t, NULL, m0, r0.ref.index_key, &n), XFFL_ERR_CORRUPT);
    free(m0);
    free(m1);
    free(wrong);
    free(got);
    ckpt_param_table_free(t);
    store_close(s);
}

static int suite_clean(void)
{
    if (root) xffl_rmtree_cleanup(root);
    free(root);
    root = NULL;
    return 0;
}

void suite_update(void)
{
    CU_pSuite s = CU_add_suite("update", NULL, suite_clean);
    CU_add_test(s, "XOR update: v's exact bits from v-1, fewer bytes; cache used only when whole and of v-1 or v",
                test_roundtrip);
    CU_add_test(s, "a wrong update is refused by v's digests, naming part and tensor; the facility falls back",
                test_wrong_update);
}
