/* libckpt: zstd filter and shuffle against HDF5's own pipeline, the part writer and
 * reader (round trips, determinism, foreign files), manifests. */
#include <CUnit/CUnit.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/util.h"
#include "libckpt/h5part.h"
#include "libckpt/manifest.h"
#include "libckpt/shuffle.h"
#include "libckpt/zstd_filter.h"
#include "tests/unit/unit.h"

static char *tmp_root;

static void tmp_path(const char *name, char *out, size_t cap)
{
    if (!tmp_root) CU_ASSERT_FATAL(xffl_mkdtemp("ckpttest", &tmp_root) == XFFL_OK);
    snprintf(out, cap, "%s/%s", tmp_root, name);
}

static void fill(void *buf, size_t n, uint64_t seed)
{
    uint8_t *p = buf;
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (uint8_t)(x >> 32);
    }
}

static void fill_floats(float *f, size_t n, uint64_t seed)
{
    uint64_t x = seed + 7;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        f[i] = (float)((double)(x >> 40) / (double)(1 << 24) - 0.5) * 0.04f;
    }
}

static void test_shuffle_inverse(void)
{
    uint8_t a[1003], b[1003], c[1003];
    fill(a, sizeof a, 1);
    for (size_t el = 1; el <= 8; el++) {
        ckpt_shuffle(a, b, sizeof a, el);
        ckpt_unshuffle(b, c, sizeof a, el);
        CU_ASSERT(memcmp(a, c, sizeof a) == 0);
    }
    /* byte j of element i lands at j*nelem + i */
    uint8_t in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
    ckpt_shuffle(in, out, 8, 4);
    uint8_t want[8] = {1, 5, 2, 6, 3, 7, 4, 8};
    CU_ASSERT(memcmp(out, want, 8) == 0);
}

/* The vector path for float32 against the portable loop, byte for byte, at sizes
 * around its 64-byte blocks (whole blocks, a tail of elements, a partial element). */
static void test_shuffle_fast_matches_reference(void)
{
    enum { MAX = 4096 + 67 };
    uint8_t a[MAX], fast[MAX], ref[MAX];
    fill(a, sizeof a, 3);
    const size_t sizes[] = {0, 3, 4, 60, 64, 65, 67, 128, 252, 1000, 1027, 4096, MAX};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        memset(fast, 0xa5, sizeof fast);
        memset(ref, 0x5a, sizeof ref);
        ckpt_shuffle(a, fast, n, 4);
        ckpt_shuffle_ref(a, ref, n, 4);
        CU_ASSERT(memcmp(fast, ref, n) == 0);
        ckpt_unshuffle(a, fast, n, 4);
        ckpt_unshuffle_ref(a, ref, n, 4);
        CU_ASSERT(memcmp(fast, ref, n) == 0);
    }
}

static void test_zstd_codec(void)
{
    size_t n = 100000;
    uint8_t *a = malloc(n), *z = malloc(ckpt_zstd_bound(n)), *b = malloc(n);
    fill(a, n / 2, 3);
    memset(a + n / 2, 0, n - n / 2);
    size_t zl = 0;
    CU_ASSERT_EQUAL(ckpt_zstd_compress(a, n, z, ckpt_zstd_bound(n), 1, &zl), XFFL_OK);
    CU_ASSERT(zl > 0 && zl < n);
    CU_ASSERT_EQUAL(ckpt_zstd_decompress(z, zl, b, n), XFFL_OK);
    CU_ASSERT(memcmp(a, b, n) == 0);
    /* wrong expected size and garbage are CORRUPT, not crashes */
    CU_ASSERT_EQUAL(ckpt_zstd_decompress(z, zl, b, n - 1), XFFL_ERR_CORRUPT);
    CU_ASSERT_EQUAL(ckpt_zstd_decompress(a, 64, b, n), XFFL_ERR_CORRUPT);
    free(a), free(z), free(b);
}

/* The default level Huffman-codes literals (zstd_filter.h): shuffled normal float32
 * weights must come out as small as at level 1 (zstd alone, without the forced
 * literal coding, stores them at 1.0x at this level), and all-equal chunks must still
 * collapse. */
static void test_zstd_default_level(void)
{
    const size_t n = (size_t)1 << 20, cap = ckpt_zstd_bound(n);
    float *f = malloc(n);
    uint8_t *sh = malloc(n), *z = malloc(cap), *b = malloc(n);
    uint64_t x = 11;
    for (size_t i = 0; i < n / 4; i++) { /* Irwin-Hall: near-normal, std 0.02 */
        double u = 0;
        for (int k = 0; k < 4; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            u += (double)(x >> 11) / 9007199254740992.0;
        }
        f[i] = (float)((u - 2.0) * 0.02 * 1.7320508);
    }
    ckpt_shuffle(f, sh, n, 4);
    size_t zd = 0, z1 = 0;
    CU_ASSERT_EQUAL(ckpt_zstd_compress(sh, n, z, cap, 1, &z1), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_zstd_compress(sh, n, z, cap, CKPT_ZSTD_DEFAULT_LEVEL, &zd), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_zstd_decompress(z, zd, b, n), XFFL_OK);
    CU_ASSERT(memcmp(sh, b, n) == 0);
    CU_ASSERT((double)n / (double)zd > 1.1);
    CU_ASSERT((double)zd <= 1.02 * (double)z1);
    for (size_t i = 0; i < n / 4; i++) f[i] = 1.0f;
    ckpt_shuffle(f, sh, n, 4);
    CU_ASSERT_EQUAL(ckpt_zstd_compress(sh, n, z, cap, CKPT_ZSTD_DEFAULT_LEVEL, &zd), XFFL_OK);
    CU_ASSERT(zd < n / 1000);
    CU_ASSERT_EQUAL(ckpt_zstd_decompress(z, zd, b, n), XFFL_OK);
    CU_ASSERT(memcmp(sh, b, n) == 0);
    free(f), free(sh), free(z), free(b);
}

/* Writes a few datasets of every dtype with small chunks (partial last chunk). */
static XFFL_MUST_USE xffl_status write_sample(const char *path, int threads, float *f, uint16_t *u, int8_t *i8, uint8_t *u8,
                                char sha_f[XFFL_SHA256_HEX])
{
    ckpt_h5_options o = {.level = 3, .threads = threads, .chunk_bytes = 1000};
    ckpt_h5_writer *w;
    XFFL_FORWARD(ckpt_h5_writer_create(path, &o, &w));
    int64_t s2[2] = {37, 19}, s1[1] = {1001}, s3[3] = {5, 3, 7};
    xffl_status s = XFFL_OK;
    if (s == XFFL_OK) s = ckpt_h5_attr_str(w, "format", "xffl-test");
    if (s == XFFL_OK) s = ckpt_h5_attr_int(w, "version", 42);
    if (s == XFFL_OK) s = ckpt_h5_attr_double(w, "eps", 1e-5);
    if (s == XFFL_OK) s = ckpt_h5_write(w, "model/a.weight", CKPT_DT_F32, 2, s2, f, sha_f, NULL);
    if (s == XFFL_OK) s = ckpt_h5_write(w, "delta/b", CKPT_DT_U16, 1, s1, u, NULL, NULL);
    if (s == XFFL_OK) s = ckpt_h5_write(w, "delta/c", CKPT_DT_I8, 3, s3, i8, NULL, NULL);
    if (s == XFFL_OK) s = ckpt_h5_write(w, "scale/d", CKPT_DT_U8, 1, s1, u8, NULL, NULL);
    if (s == XFFL_OK) s = ckpt_h5_dataset_attr_str(w, "delta/b", "encoding", "bf16");
    if (s != XFFL_OK) {
        ckpt_h5_writer_abort(w);
        return s;
    }
    return ckpt_h5_writer_close(w);
}

static void test_part_roundtrip(void)
{
    float f[37 * 19], f2[37 * 19];
    uint16_t u[1001], u2[1001];
    int8_t i8[105], i82[105];
    uint8_t u8[1001], u82[1001];
    fill_floats(f, 37 * 19, 1);
    fill(u, sizeof u, 2), fill(i8, sizeof i8, 3), fill(u8, sizeof u8, 4);
    char p1[512], p2[512], sha[XFFL_SHA256_HEX], got[XFFL_SHA256_HEX];
    tmp_path("rt1.h5", p1, sizeof p1);
    tmp_path("rt2.h5", p2, sizeof p2);
    CU_ASSERT_EQUAL_FATAL(write_sample(p1, 1, f, u, i8, u8, sha), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(write_sample(p2, 2, f, u, i8, u8, sha), XFFL_OK);
    /* same content, any thread count: same bytes */
    char h1[XFFL_SHA256_HEX], h2[XFFL_SHA256_HEX];
    CU_ASSERT_EQUAL(xffl_sha256_file(p1, h1, NULL), XFFL_OK);
    CU_ASSERT_EQUAL(xffl_sha256_file(p2, h2, NULL), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(h1, h2);
    char want[XFFL_SHA256_HEX];
    xffl_sha256_hex(f, sizeof f, want);
    CU_ASSERT_STRING_EQUAL(sha, want);

    ckpt_h5_reader *r;
    CU_ASSERT_EQUAL_FATAL(ckpt_h5_reader_open(p1, NULL, &r), XFFL_OK);
    int64_t s2[2] = {37, 19}, s1[1] = {1001}, s3[3] = {5, 3, 7};
    CU_ASSERT_EQUAL(ckpt_h5_read(r, "model/a.weight", CKPT_DT_F32, 2, s2, f2, 0, got), XFFL_OK);
    CU_ASSERT(memcmp(f, f2, sizeof f) == 0);
    CU_ASSERT_STRING_EQUAL(got, want);
    CU_ASSERT_EQUAL(ckpt_h5_read(r, "delta/b", CKPT_DT_U16, 1, s1, u2, 0, NULL), XFFL_OK);
    CU_ASSERT(memcmp(u, u2, sizeof u) == 0);
    CU_ASSERT_EQUAL(ckpt_h5_read(r, "delta/c", CKPT_DT_I8, 3, s3, i82, 0, NULL), XFFL_OK);
    CU_ASSERT(memcmp(i8, i82, sizeof i8) == 0);
    CU_ASSERT_EQUAL(ckpt_h5_read(r, "scale/d", CKPT_DT_U8, 0, NULL, u82, 0, NULL), XFFL_OK);
    CU_ASSERT(memcmp(u8, u82, sizeof u8) == 0);
    ckpt_h5_dataset_info info;
    CU_ASSERT_EQUAL(ckpt_h5_info(r, "model/a.weight", &info), XFFL_OK);
    CU_ASSERT(info.fast && info.has_sha256 && info.numel == 37 * 19 && info.stored_bytes > 0);
    char *v = NULL;
    CU_ASSERT_EQUAL(ckpt_h5_get_attr_str(r, "format", &v), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(v, "xffl-test");
    free(v);
    CU_ASSERT_EQUAL(ckpt_h5_get_dataset_attr_str(r, "delta/b", "encoding", &v), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(v, "bf16");
    free(v);
    int64_t iv;
    double dv;
    CU_ASSERT_EQUAL(ckpt_h5_get_attr_int(r, "version", &iv), XFFL_OK);
    CU_ASSERT_EQUAL(iv, 42);
    CU_ASSERT_EQUAL(ckpt_h5_get_attr_double(r, "eps", &dv), XFFL_OK);
    CU_ASSERT_EQUAL(dv, 1e-5);
    CU_ASSERT_EQUAL(ckpt_h5_get_attr_int(r, "nothere", &iv), XFFL_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(ckpt_h5_get_attr_int(r, "format", &iv), XFFL_ERR_INVALID);
    char **names;
    int n;
    CU_ASSERT_EQUAL(ckpt_h5_list(r, "delta", &names, &n), XFFL_OK);
    CU_ASSERT_EQUAL(n, 2);
    if (n == 2) CU_ASSERT(strcmp(names[0], "b") == 0 && strcmp(names[1], "c") == 0);
    ckpt_h5_names_free(names, n);
    CU_ASSERT_EQUAL(ckpt_h5_list(r, "outer", &names, &n), XFFL_ERR_NOT_FOUND);
    /* wrong expectations name file and tensor */
    int64_t bad[2] = {19, 37};
    CU_ASSERT_EQUAL(ckpt_h5_read(r, "model/a.weight", CKPT_DT_F32, 2, bad, f2, 0, NULL), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "model/a.weight"));
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "rt1.h5"));
    CU_ASSERT_EQUAL(ckpt_h5_read(r, "model/a.weight", CKPT_DT_U16, 2, s2, f2, 0, NULL), XFFL_ERR_INVALID);
    CU_ASSERT_EQUAL(ckpt_h5_read(r, "model/zz", CKPT_DT_F32, 2, s2, f2, 0, NULL), XFFL_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "model/zz"));
    ckpt_h5_reader_close(r);

    /* HDF5's own pipeline (shuffle filter + our registered zstd) decodes our chunks. */
    hid_t file = H5Fopen(p1, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "/model/a.weight", H5P_DEFAULT);
    memset(f2, 0, sizeof f2);
    CU_ASSERT(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, f2) >= 0);
    CU_ASSERT(memcmp(f, f2, sizeof f) == 0);
    H5Dclose(ds);
    H5Fclose(file);
}

/* A file written by HDF5's filter pipeline (2-D chunks, like h5py makes) reads back. */
static void test_foreign_layout(void)
{
    char p[512];
    tmp_path("foreign.h5", p, sizeof p);
    CU_ASSERT_EQUAL_FATAL(ckpt_zstd_register(), XFFL_OK);
    float f[50 * 40], g[50 * 40];
    fill_floats(f, 50 * 40, 9);
    hsize_t dims[2] = {50, 40}, chunk[2] = {16, 16}, rows[2] = {7, 40};
    /* 0: partial-row chunks (HDF5 decodes); 1: full rows, chunks read with O_DIRECT;
     * 2: the same behind a 512-byte user block, which shifts every chunk address;
     * 3: full rows read through the page cache (XFFL_NO_DIRECT_IO) */
    for (int variant = 0; variant < 4; variant++) {
        const int layout = variant > 0;
        hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
        if (variant == 2) H5Pset_userblock(fcpl, 512);
        if (variant == 3) setenv("XFFL_NO_DIRECT_IO", "1", 1);
        hid_t file = H5Fcreate(p, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
        H5Pclose(fcpl);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        unsigned level = 5;
        H5Pset_chunk(dcpl, 2, layout ? rows : chunk);
        if (layout) H5Pset_shuffle(dcpl);
        H5Pset_filter(dcpl, CKPT_ZSTD_FILTER_ID, H5Z_FLAG_MANDATORY, 1, &level);
        hid_t sp = H5Screate_simple(2, dims, NULL);
        hid_t ds = H5Dcreate2(file, "w", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        CU_ASSERT(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, f) >= 0);
        H5Dclose(ds), H5Sclose(sp), H5Pclose(dcpl), H5Fclose(file);
        ckpt_h5_reader *r;
        CU_ASSERT_EQUAL_FATAL(ckpt_h5_reader_open(p, NULL, &r), XFFL_OK);
        ckpt_h5_dataset_info info;
        CU_ASSERT_EQUAL(ckpt_h5_info(r, "w", &info), XFFL_OK);
        CU_ASSERT_EQUAL(info.fast, layout); /* full-row chunks take the threaded path */
        int64_t shape[2] = {50, 40};
        CU_ASSERT_EQUAL(ckpt_h5_read(r, "w", CKPT_DT_F32, 2, shape, g, 0, NULL), XFFL_ERR_INVALID); /* no digest */
        memset(g, 0, sizeof g);
        CU_ASSERT_EQUAL(ckpt_h5_read(r, "w", CKPT_DT_F32, 2, shape, g, 1, NULL), XFFL_OK);
        CU_ASSERT(memcmp(f, g, sizeof f) == 0);
        ckpt_h5_reader_close(r);
        unsetenv("XFFL_NO_DIRECT_IO");
    }
}

/* A chunk whose zstd stage was skipped (filter mask bit 1, as HDF5 records when an
 * optional filter declines) is read as stored, like HDF5's own pipeline does. */
static void test_skipped_filter_chunk(void)
{
    char p[512];
    tmp_path("mask.h5", p, sizeof p);
    CU_ASSERT_EQUAL_FATAL(ckpt_zstd_register(), XFFL_OK);
    enum { R = 8, C = 16 };
    float f[2 * R * C], g[2 * R * C], h[2 * R * C];
    fill_floats(f, 2 * R * C, 11);
    hsize_t dims[2] = {2 * R, C}, chunk[2] = {R, C};
    hid_t file = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    unsigned level = 1;
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_filter(dcpl, CKPT_ZSTD_FILTER_ID, H5Z_FLAG_OPTIONAL, 1, &level);
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(file, "w", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    uint8_t shuf[R * C * 4], z[2 * R * C * 4 + 1024];
    size_t zl = 0;
    hsize_t off0[2] = {0, 0}, off1[2] = {R, 0};
    ckpt_shuffle(f, shuf, sizeof shuf, 4);
    CU_ASSERT(H5Dwrite_chunk(ds, H5P_DEFAULT, 2u /* zstd skipped */, off0, sizeof shuf, shuf) >= 0);
    ckpt_shuffle(f + R * C, shuf, sizeof shuf, 4);
    CU_ASSERT_EQUAL(ckpt_zstd_compress(shuf, sizeof shuf, z, sizeof z, 1, &zl), XFFL_OK);
    CU_ASSERT(H5Dwrite_chunk(ds, H5P_DEFAULT, 0u, off1, zl, z) >= 0);
    CU_ASSERT(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, h) >= 0);
    CU_ASSERT(memcmp(f, h, sizeof f) == 0); /* HDF5's reading of it */
    H5Dclose(ds), H5Sclose(sp), H5Pclose(dcpl), H5Fclose(file);
    ckpt_h5_reader *r;
    CU_ASSERT_EQUAL_FATAL(ckpt_h5_reader_open(p, NULL, &r), XFFL_OK);
    int64_t shape[2] = {2 * R, C};
    memset(g, 0, sizeof g);
    CU_ASSERT_EQUAL(ckpt_h5_read(r, "w", CKPT_DT_F32, 2, shape, g, 1, NULL), XFFL_OK);
    CU_ASSERT(memcmp(f, g, sizeof f) == 0);
    ckpt_h5_reader_close(r);
}

static void test_open_errors(void)
{
    char p[512];
    ckpt_h5_reader *r = NULL;
    tmp_path("absent.h5", p, sizeof p);
    CU_ASSERT_EQUAL(ckpt_h5_reader_open(p, NULL, &r), XFFL_ERR_NOT_FOUND);
    tmp_path("empty.h5", p, sizeof p);
    CU_ASSERT_EQUAL(xffl_write_file_atomic(p, "", 0), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_h5_reader_open(p, NULL, &r), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "empty.h5"));
    tmp_path("text.h5", p, sizeof p);
    CU_ASSERT_EQUAL(xffl_write_file_atomic(p, "not hdf5 at all\n", 16), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_h5_reader_open(p, NULL, &r), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "text.h5"));
}

static void test_manifest(void)
{
    ckpt_manifest *m;
    CU_ASSERT_EQUAL_FATAL(ckpt_manifest_create(&m), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_manifest_set(m, "format", "xffl-index"), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_manifest_set_int(m, "version", 4), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_manifest_set(m, "note", "spaces = fine here"), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_manifest_set(m, "Bad Key", "x"), XFFL_ERR_INVALID);
    CU_ASSERT_EQUAL(ckpt_manifest_set(m, "k", "a\nb"), XFFL_ERR_INVALID);
    char sha[XFFL_SHA256_HEX];
    xffl_sha256_hex("x", 1, sha);
    int64_t shape[2] = {4096, 11008};
    CU_ASSERT_EQUAL(ckpt_manifest_add_contributor(m, "leonardo", "rounds/r000004/leonardo/a1/COMMIT-0123456789ab"), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_manifest_add_object(m, "versions/v000004/part-000-8b1e44a0c9d2.h5", 123456789012ull, sha), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_manifest_add_tensor(m, "model/layers.0.feed_forward.w2.weight", CKPT_DT_F32, 2, shape, sha), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_manifest_add_tensor(m, "bad name", CKPT_DT_F32, 2, shape, sha), XFFL_ERR_INVALID);
    char *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(ckpt_manifest_format(m, &text, &len), XFFL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "tensor model/layers.0.feed_forward.w2.weight float32 4096x11008 "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "object versions/v000004/part-000-8b1e44a0c9d2.h5 123456789012 "));
    ckpt_manifest *p;
    CU_ASSERT_EQUAL_FATAL(ckpt_manifest_parse(text, len, "INDEX-test", &p), XFFL_OK);
    char *text2;
    size_t len2;
    CU_ASSERT_EQUAL(ckpt_manifest_format(p, &text2, &len2), XFFL_OK);
    CU_ASSERT(len == len2 && memcmp(text, text2, len) == 0);
    CU_ASSERT_STRING_EQUAL(ckpt_manifest_get(p, "note"), "spaces = fine here");
    int64_t v;
    CU_ASSERT_EQUAL(ckpt_manifest_require_int(p, "INDEX-test", "version", &v), XFFL_OK);
    CU_ASSERT_EQUAL(v, 4);
    CU_ASSERT_EQUAL(ckpt_manifest_require_int(p, "INDEX-test", "note", &v), XFFL_ERR_INVALID);
    CU_ASSERT_EQUAL(p->n_tensors, 1);
    CU_ASSERT_EQUAL(p->tensors[0].shape[1], 11008);
    CU_ASSERT_EQUAL(ckpt_manifest_find_object(p, "versions/v000004/part-000-8b1e44a0c9d2.h5"), 0);
    free(text2);
    ckpt_manifest_free(p);
    /* Every malformed line is refused, naming the line. */
    const char *bad[] = {
        "format=x\nversion=1", /* no final newline */
        "format=x\ngarbage\n",
        "format=x\nobject a 12 zz\n",
        "format=x\nobject a -3 " "0000000000000000000000000000000000000000000000000000000000000000\n",
        "format=x\ntensor a float64 3 0000000000000000000000000000000000000000000000000000000000000000\n",
        "format=x\ntensor a float32 3x0 0000000000000000000000000000000000000000000000000000000000000000\n",
        "format=x\ntensor a float32 3 0000000000000000000000000000000000000000000000000000000000000000 extra\n",
        "format=x\ncontributor a\n",
        "format=x\ncontributor a b\nlate=header\n",
        "format=x\nformat=y\n",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ckpt_manifest *q = NULL;
        xffl_status s = ckpt_manifest_parse(bad[i], strlen(bad[i]), "COMMIT-bad", &q);
        CU_ASSERT_EQUAL(s, XFFL_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "COMMIT-bad"));
        if (i == 1) CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "line 2"));
        ckpt_manifest_free(q);
    }
    char name[64];
    CU_ASSERT_EQUAL(ckpt_content_name("INDEX", sha, NULL, name, sizeof name), XFFL_OK);
    CU_ASSERT_EQUAL(strlen(name), 6 + 12);
    CU_ASSERT_EQUAL(ckpt_content_name_check(name, sha, NULL), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_content_name("part-001", sha, ".h5", name, sizeof name), XFFL_OK);
    CU_ASSERT_EQUAL(ckpt_content_name_check(name, sha, ".h5"), XFFL_OK);
    char other[XFFL_SHA256_HEX];
    xffl_sha256_hex("y", 1, other);
    CU_ASSERT_EQUAL(ckpt_content_name_check(name, other, ".h5"), XFFL_ERR_CORRUPT);
    free(text);
    ckpt_manifest_free(m);
}

static void cleanup(void)
{
    if (tmp_root) xffl_rmtree_cleanup(tmp_root);
    free(tmp_root);
    tmp_root = NULL;
}

static int suite_clean(void)
{
    cleanup();
    return 0;
}

void suite_ckpt(void)
{
    CU_pSuite s = CU_add_suite("ckpt", NULL, suite_clean);
    CU_add_test(s, "shuffle is HDF5's and invertible", test_shuffle_inverse);
    CU_add_test(s, "float32 shuffle fast path equals the portable loop", test_shuffle_fast_matches_reference);
    CU_add_test(s, "zstd chunk codec round trip and refusals", test_zstd_codec);
    CU_add_test(s, "default zstd level: float weights as small as level 1, constant chunks collapse",
                test_zstd_default_level);
    CU_add_test(s, "part file round trip, all dtypes, thread-count independent bytes", test_part_roundtrip);
    CU_add_test(s, "datasets written through HDF5's filter pipeline read back (direct, user block, page cache)",
                test_foreign_layout);
    CU_add_test(s, "chunks with a skipped filter read as HDF5 reads them", test_skipped_filter_chunk);
    CU_add_test(s, "open: missing, empty, not HDF5", test_open_errors);
    CU_add_test(s, "manifest format/parse, strict errors, content names", test_manifest);
}
