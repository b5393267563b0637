/* Versions in a file:// store (multi-part round trip, outer state, LATEST rules),
 * federation.h5, and every kind of damaged part file refused with a named tensor. */
#include <CUnit/CUnit.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/util.h"
#include "libckpt/h5part.h"
#include "libckpt/model.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"
#include "storage/store.h"
#include "tests/unit/unit.h"

static char *root;
static int seq;

static store *fresh(void)
{
    if (!root) CU_ASSERT_FATAL(xffl_mkdtemp("ckptver", &root) == XFFL_OK);
    char url[1024];
    snprintf(url, sizeof url, "%s/s%d", root, seq++);
    store *s = NULL;
    CU_ASSERT_FATAL(store_open(url, NULL, &s) == XFFL_OK);
    return s;
}

typedef struct {
    const ckpt_param_table *t;
    uint64_t seed;
} src_ctx;

/* group 0: the seeded init; other groups: a value pattern that differs per group */
static XFFL_MUST_USE xffl_status src(void *ctx, int group, int index, float *out)
{
    src_ctx *c = ctx;
    ckpt_param_init(c->t, index, c->seed + (uint64_t)group * 1000, out);
    return XFFL_OK;
}

static ckpt_param_table *tiny_table(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    CU_ASSERT_FATAL(ckpt_model_preset("tiny", 0, &cfg) == XFFL_OK);
    CU_ASSERT_FATAL(ckpt_param_table_create(&cfg, &t) == XFFL_OK);
    return t;
}

static XFFL_MUST_USE xffl_status publish(store *s, const ckpt_param_table *t, int64_t version, int n_groups, uint64_t seed,
                           uint64_t part_size, pipe_version_result *res)
{
    static const char *groups[] = {"model", "outer/m", "outer/v"};
    char fed[XFFL_SHA256_HEX];
    xffl_sha256_hex("federation", 10, fed);
    src_ctx c = {t, seed};
    pipe_version_spec sp = {.version = version, .parent = version - 1, .round = version, .algorithm = "fedadam",
                            .federation_sha256 = fed, .tokens_seen = 1000 * version, .n_groups = n_groups,
                            .groups = groups, .part_size = part_size, .threads = 2};
    return pipe_version_publish(s, t, &sp, src, &c, res);
}

static void test_plan(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    CU_ASSERT_FATAL(ckpt_model_preset("7b", 0, &cfg) == XFFL_OK);
    CU_ASSERT_FATAL(ckpt_param_table_create(&cfg, &t) == XFFL_OK);
    pipe_part_plan p;
    CU_ASSERT_EQUAL_FATAL(pipe_version_plan(t, 1, (uint64_t)1 << 30, &p), XFFL_OK);
    uint64_t sum = 0;
    int tensors = 0;
    for (int i = 0; i < p.n_parts; i++) {
        sum += p.raw_bytes[i];
        tensors += p.count[i];
        CU_ASSERT(p.raw_bytes[i] <= ((uint64_t)1 << 30));
        if (i) CU_ASSERT_EQUAL(p.first[i], p.first[i - 1] + p.count[i - 1]);
    }
    CU_ASSERT_EQUAL(sum, (uint64_t)t->total * 4);
    CU_ASSERT_EQUAL(tensors, t->count);
    pipe_part_plan_free(&p);
    /* a tensor bigger than the part size gets a part of its own */
    CU_ASSERT_EQUAL_FATAL(pipe_version_plan(t, 2, (uint64_t)100 << 20, &p), XFFL_OK);
    CU_ASSERT_EQUAL(p.count[0], 1); /* tok_embeddings: 2 x 524 MB */
    CU_ASSERT(p.raw_bytes[0] > ((uint64_t)100 << 20));
    pipe_part_plan_free(&p);
    ckpt_param_table_free(t);
}

static void test_roundtrip_multipart(void)
{
    store *s = fresh();
    ckpt_param_table *t = tiny_table();
    pipe_version_result res;
    /* 3 groups and 64 KiB parts: many parts, tensors with their state together */
    CU_ASSERT_EQUAL_FATAL(publish(s, t, 0, 3, 5, 64 << 10, &res), XFFL_OK);
    CU_ASSERT(res.n_parts >= 3);
    CU_ASSERT_EQUAL(res.latest_written, 1);
    CU_ASSERT_EQUAL(res.raw_bytes, (uint64_t)t->total * 4 * 3);
    pipe_version_ref ref;
    CU_ASSERT_EQUAL_FATAL(pipe_latest_read(s, &ref), XFFL_OK);
    CU_ASSERT_EQUAL(ref.version, 0);
    CU_ASSERT_STRING_EQUAL(ref.index_key, res.ref.index_key);
    float *slab[3], *want = malloc((size_t)t->total * sizeof(float));
    for (int g = 0; g < 3; g++) slab[g] = calloc((size_t)t->total, sizeof(float));
    const char *groups[] = {"model", "outer/m", "outer/v"};
    pipe_version_info info;
    CU_ASSERT_EQUAL_FATAL(pipe_version_fetch(s, &ref, t, 3, groups, slab, &info), XFFL_OK);
    CU_ASSERT_EQUAL(info.index->n_objects, res.n_parts);
    CU_ASSERT_EQUAL(info.index->n_tensors, 3 * t->count);
    CU_ASSERT_STRING_EQUAL(info.algorithm, "fedadam");
    pipe_version_info_clear(&info);
    for (int g = 0; g < 3; g++) {
        for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 5 + (uint64_t)g * 1000, want + t->params[i].offset);
        CU_ASSERT(memcmp(want, slab[g], (size_t)t->total * sizeof(float)) == 0); /* bit-exact */
    }
    /* only the model, into one slab; verify-only with every group */
    const char *only[] = {"model"};
    memset(slab[0], 0, (size_t)t->total * sizeof(float));
    CU_ASSERT_EQUAL(pipe_version_fetch(s, &ref, t, 1, only, slab, NULL), XFFL_OK);
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 5, want + t->params[i].offset);
    CU_ASSERT(memcmp(want, slab[0], (size_t)t->total * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(pipe_version_fetch(s, &ref, t, 0, NULL, NULL, NULL), XFFL_OK);
    const char *absent[] = {"outer"};
    CU_ASSERT_EQUAL(pipe_version_fetch(s, &ref, t, 1, absent, NULL, NULL), XFFL_ERR_NOT_FOUND);

    /* LATEST only moves forward */
    CU_ASSERT_EQUAL(publish(s, t, 2, 1, 7, 0, &res), XFFL_OK);
    CU_ASSERT_EQUAL(res.latest_written, 1);
    CU_ASSERT_EQUAL(publish(s, t, 1, 1, 8, 0, &res), XFFL_OK);
    CU_ASSERT_EQUAL(res.latest_written, 0);
    CU_ASSERT_EQUAL(pipe_latest_read(s, &ref), XFFL_OK);
    CU_ASSERT_EQUAL(ref.version, 2);
    /* a number resolves through its folder; its INDEX is checked by content name */
    CU_ASSERT_EQUAL(pipe_version_resolve(s, 1, &ref), XFFL_OK);
    CU_ASSERT_EQUAL(ref.version, 1);
    CU_ASSERT_STRING_EQUAL(ref.index_key, res.ref.index_key);
    CU_ASSERT_EQUAL(pipe_version_fetch(s, &ref, t, 1, only, slab, NULL), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_version_resolve(s, 9, &ref), XFFL_ERR_NOT_FOUND);
    /* two INDEX objects for one version, LATEST naming neither: refused */
    CU_ASSERT_EQUAL(publish(s, t, 1, 1, 9, 0, &res), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_version_resolve(s, 1, &ref), XFFL_ERR_INVALID);
    /* damaged INDEX or part: CORRUPT naming the key */
    CU_ASSERT_EQUAL(pipe_version_resolve(s, 2, &ref), XFFL_OK);
    void *data;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(store_get(s, ref.index_key, &data, &len), XFFL_OK);
    ckpt_manifest *m;
    CU_ASSERT_EQUAL_FATAL(ckpt_manifest_parse(data, len, "INDEX", &m), XFFL_OK);
    CU_ASSERT_EQUAL(store_put(s, m->objects[0].name, "junk", 4), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_version_fetch(s, &ref, t, 1, only, slab, NULL), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), m->objects[0].name));
    ((char *)data)[0] ^= 1;
    CU_ASSERT_EQUAL(store_put(s, ref.index_key, data, len), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_version_fetch(s, &ref, t, 1, only, slab, NULL), XFFL_ERR_CORRUPT);
    ckpt_manifest_free(m);
    free(data);
    for (int g = 0; g < 3; g++) free(slab[g]);
    free(want);
    ckpt_param_table_free(t);
    store_close(s);
}

static XFFL_MUST_USE xffl_status failing_src(void *ctx, int group, int index, float *out)
{
    const ckpt_param_table *t = ctx;
    (void)group;
    if (index == 5) return xffl_fail(XFFL_ERR_BACKEND, "source gave up");
    memset(out, 0, (size_t)t->params[index].numel * sizeof *out);
    return XFFL_OK;
}

/* A source that fails mid-way leaves no INDEX and no LATEST: readers see nothing. */
static void test_publish_failure(void)
{
    store *s = fresh();
    ckpt_param_table *t = tiny_table();
    static const char *groups[] = {"model"};
    char fed[XFFL_SHA256_HEX];
    xffl_sha256_hex("f", 1, fed);
    pipe_version_spec sp = {.version = 0, .parent = -1, .algorithm = "fedavg", .federation_sha256 = fed,
                            .n_groups = 1, .groups = groups, .part_size = 64 << 10};
    CU_ASSERT_EQUAL(pipe_version_publish(s, t, &sp, failing_src, t, NULL), XFFL_ERR_BACKEND);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "source gave up"));
    pipe_version_ref ref;
    CU_ASSERT_EQUAL(pipe_latest_read(s, &ref), XFFL_ERR_NOT_FOUND);
    store_listing l;
    CU_ASSERT_EQUAL(store_list(s, "versions/v000000/INDEX", &l), XFFL_OK);
    CU_ASSERT_EQUAL(l.count, 0);
    store_listing_free(&l);
    ckpt_param_table_free(t);
    store_close(s);
}

static void test_latest_parse(void)
{
    pipe_version_ref r;
    const char *ok = "v000004 INDEX-3f9a0c12d4e1 3f9a0c12d4e1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
    CU_ASSERT_EQUAL(pipe_latest_parse(ok, strlen(ok), &r), XFFL_OK);
    CU_ASSERT_EQUAL(r.version, 4);
    CU_ASSERT_STRING_EQUAL(r.index_key, "versions/v000004/INDEX-3f9a0c12d4e1");
    const char *bad[] = {"", "v4\n", "v000004 INDEX-3f9a0c12d4e1\n",
                         "v000004 INDEX-3f9a0c12d4e1 ffffffffffffaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                         "x000004 INDEX-3f9a0c12d4e1 3f9a0c12d4e1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(pipe_latest_parse(bad[i], strlen(bad[i]), &r), XFFL_ERR_CORRUPT);
}

static void test_federation(void)
{
    pipe_federation f, g;
    CU_ASSERT_EQUAL_FATAL(pipe_federation_default("tiny", 300, &f), XFFL_OK);
    CU_ASSERT_EQUAL(f.model.vocab_size, 300);
    CU_ASSERT_EQUAL(pipe_federation_set_facilities(&f, "leonardo,karolina,lumi"), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(f.facilities[0], "karolina"); /* sorted */
    CU_ASSERT_EQUAL(pipe_federation_facility_index(&f, "lumi"), 2);
    CU_ASSERT_EQUAL(pipe_federation_set_facilities(&f, "a,a"), XFFL_ERR_USAGE);
    CU_ASSERT_EQUAL(pipe_federation_set_facilities(&f, "Bad Name"), XFFL_ERR_USAGE);
    CU_ASSERT_EQUAL(pipe_federation_set_facilities(&f, "leonardo,karolina,lumi"), XFFL_OK);
    pipe_federation_set_algo(&f, PIPE_ALGO_DILOCO);
    CU_ASSERT_EQUAL(f.algo.outer_lr, 0.7);
    f.quorum = 2;
    f.seed = 12345;
    f.encoding = CKPT_CODEC_INT4;
    f.inner.lr = 1e-3;
    f.keep_inner_state = 1;
    f.algo.clip_norm = 2.5;
    f.algo.nesterov = 0;
    store *s = fresh();
    char sha[XFFL_SHA256_HEX], sha2[XFFL_SHA256_HEX];
    CU_ASSERT_EQUAL_FATAL(pipe_federation_publish(s, &f, sha), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_federation_publish(s, &f, NULL), XFFL_ERR_EXISTS);
    CU_ASSERT_EQUAL_FATAL(pipe_federation_load(s, sha, &g, sha2), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(sha, sha2);
    CU_ASSERT(memcmp(&f.model, &g.model, sizeof f.model) == 0);
    CU_ASSERT_EQUAL(g.n_facilities, 3);
    CU_ASSERT_STRING_EQUAL(g.facilities[1], "leonardo");
    CU_ASSERT_EQUAL(g.algo.kind, PIPE_ALGO_DILOCO);
    CU_ASSERT_EQUAL(g.algo.clip_norm, 2.5);
    CU_ASSERT_EQUAL(g.quorum, 2);
    CU_ASSERT_EQUAL(g.seed, 12345);
    CU_ASSERT_EQUAL(g.encoding, CKPT_CODEC_INT4);
    CU_ASSERT_EQUAL(g.inner.lr, 1e-3);
    CU_ASSERT_EQUAL(g.keep_inner_state, 1);
    CU_ASSERT_EQUAL(g.algo.nesterov, 0);
    CU_ASSERT_EQUAL(g.seq_len, f.seq_len);
    CU_ASSERT_STRING_EQUAL(g.preset, "tiny");
    char other[XFFL_SHA256_HEX];
    xffl_sha256_hex("other", 5, other);
    CU_ASSERT_EQUAL(pipe_federation_load(s, other, &g, NULL), XFFL_ERR_CORRUPT);
    f.quorum = 4;
    CU_ASSERT_EQUAL(pipe_federation_validate(&f), XFFL_ERR_INVALID);
    store_close(s);
    store *e = fresh();
    CU_ASSERT_EQUAL(pipe_federation_load(e, NULL, &g, NULL), XFFL_ERR_NOT_FOUND);
    store_close(e);
}

/* ---- damaged part files: each refused as bad data naming file and tensor ---- */

static char good_part[1024];

static void make_good_part(void)
{
    if (good_part[0]) return;
    store *s = fresh();
    ckpt_param_table *t = tiny_table();
    pipe_version_result res;
    CU_ASSERT_FATAL(publish(s, t, 0, 1, 1, 0, &res) == XFFL_OK);
    void *data;
    size_t len;
    CU_ASSERT_FATAL(store_get(s, res.ref.index_key, &data, &len) == XFFL_OK);
    ckpt_manifest *m;
    CU_ASSERT_FATAL(ckpt_manifest_parse(data, len, "INDEX", &m) == XFFL_OK);
    snprintf(good_part, sizeof good_part, "%s/good.h5", root);
    CU_ASSERT_FATAL(store_get_file(s, m->objects[0].name, good_part) == XFFL_OK);
    ckpt_manifest_free(m);
    free(data);
    ckpt_param_table_free(t);
    store_close(s);
}

static void copy_part(const char *name, char *out, size_t cap)
{
    make_good_part();
    snprintf(out, cap, "%s/%s", root, name);
    void *data;
    size_t len;
    CU_ASSERT_FATAL(xffl_read_file(good_part, &data, &len) == XFFL_OK);
    CU_ASSERT_FATAL(xffl_write_file_atomic(out, data, len) == XFFL_OK);
    free(data);
}

static void expect_bad(const char *path, xffl_status want, const char *tensor)
{
    int n = 0;
    xffl_status s = pipe_part_verify_file(path, &n);
    CU_ASSERT_EQUAL(s, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), path));
    if (tensor) CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), tensor));
    CU_ASSERT_PTR_NULL(strchr(xffl_errmsg(), '\n'));
    if (s != want || (tensor && !strstr(xffl_errmsg(), tensor))) fprintf(stderr, "\n  got: %s\n", xffl_errmsg());
}

static void set_str_attr(hid_t obj, const char *name, const char *value)
{
    H5Adelete(obj, name);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value));
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT(H5Awrite(a, t, value) >= 0);
    H5Aclose(a), H5Sclose(sp), H5Tclose(t);
}

static void test_damaged_parts(void)
{
    char p[1024];
    make_good_part();
    int n = 0;
    CU_ASSERT_EQUAL(pipe_part_verify_file(good_part, &n), XFFL_OK);
    CU_ASSERT_EQUAL(n, 21);
    const char *W = "model/layers.1.feed_forward.w1.weight";

    /* a flipped byte inside a compressed chunk */
    copy_part("flip.h5", p, sizeof p);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, W, H5P_DEFAULT);
    hsize_t off[2] = {0, 0}, size = 0;
    haddr_t addr = 0;
    unsigned mask;
    CU_ASSERT(H5Dget_chunk_info_by_coord(ds, off, &mask, &addr, &size) >= 0);
    H5Dclose(ds), H5Fclose(f);
    CU_ASSERT_FATAL(size > 100);
    FILE *fp = fopen(p, "r+b");
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
    expect_bad(p, XFFL_ERR_CORRUPT, W);

    /* wrong format attribute */
    copy_part("format.h5", p, sizeof p);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    set_str_attr(f, "format", "xffl-something");
    H5Fclose(f);
    expect_bad(p, XFFL_ERR_INVALID, "format");

    /* missing tensor */
    copy_part("missing.h5", p, sizeof p);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT(H5Ldelete(f, "model/norm.weight", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_bad(p, XFFL_ERR_INVALID, "model/norm.weight");

    /* wrong shape: wq (64x64) copied over wk (32x64), digest attribute and all */
    copy_part("shape.h5", p, sizeof p);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT(H5Ldelete(f, "model/layers.0.attention.wk.weight", H5P_DEFAULT) >= 0);
    CU_ASSERT(H5Ocopy(f, "model/layers.0.attention.wq.weight", f, "model/layers.0.attention.wk.weight", H5P_DEFAULT,
                      H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_bad(p, XFFL_ERR_INVALID, "model/layers.0.attention.wk.weight");

    /* digest mismatch: the attribute no longer matches the values */
    copy_part("digest.h5", p, sizeof p);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    ds = H5Dopen2(f, "model/output.weight", H5P_DEFAULT);
    char sha[XFFL_SHA256_HEX];
    xffl_sha256_hex("not the values", 14, sha);
    set_str_attr(ds, "sha256", sha);
    H5Dclose(ds), H5Fclose(f);
    expect_bad(p, XFFL_ERR_CORRUPT, "model/output.weight");

    /* truncated part */
    copy_part("trunc.h5", p, sizeof p);
    void *data;
    size_t len;
    CU_ASSERT_FATAL(xffl_read_file(p, &data, &len) == XFFL_OK);
    CU_ASSERT(xffl_write_file_atomic(p, data, len * 2 / 3) == XFFL_OK);
    free(data);
    expect_bad(p, XFFL_ERR_CORRUPT, NULL);

    /* empty, not HDF5, missing */
    snprintf(p, sizeof p, "%s/empty.h5", root);
    CU_ASSERT(xffl_write_file_atomic(p, "", 0) == XFFL_OK);
    expect_bad(p, XFFL_ERR_CORRUPT, NULL);
    snprintf(p, sizeof p, "%s/text.h5", root);
    CU_ASSERT(xffl_write_file_atomic(p, "hello\n", 6) == XFFL_OK);
    expect_bad(p, XFFL_ERR_CORRUPT, NULL);
    snprintf(p, sizeof p, "%s/absent.h5", root);
    expect_bad(p, XFFL_ERR_NOT_FOUND, NULL);
}

static int suite_clean(void)
{
    if (root) xffl_rmtree_cleanup(root);
    free(root);
    root = NULL;
    good_part[0] = 0;
    return 0;
}

void suite_ckpt_version(void)
{
    CU_pSuite s = CU_add_suite("ckpt_version", NULL, suite_clean);
    CU_add_test(s, "part plan: tensor boundaries, size bound, big tensors alone", test_plan);
    CU_add_test(s, "version round trip: >= 3 parts, outer groups, bit-exact; LATEST forward only", test_roundtrip_multipart);
    CU_add_test(s, "LATEST parse", test_latest_parse);
    CU_add_test(s, "a failing tensor source publishes no INDEX and no LATEST", test_publish_failure);
    CU_add_test(s, "federation.h5 round trip, write once", test_federation);
    CU_add_test(s, "damaged parts: flipped chunk byte, format, missing tensor, shape, digest, truncated, empty, not HDF5, missing", test_damaged_parts);
}
