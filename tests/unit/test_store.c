/* The store suite: the same tests against file:// (always) and s3:// (when
 * XFFL_TEST_S3_URL=s3://bucket/prefix and the XFFL_S3_* / AWS_* variables are set,
 * e.g. by tests/it/test-s3.sh with s3rver running). */
#include <CUnit/CUnit.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/digest.h"
#include "common/util.h"
#include "storage/file_md5s.h"
#include "storage/md5x4.h"
#include "storage/store.h"
#include "tests/unit/unit.h"

static char *file_root;  /* temp dir for file:// stores */
static int test_seq;

/* Opens a fresh, empty store for one test of the given backend; NULL + SKIP if absent. */
static store *fresh_store(int s3, const char *name, int jobs)
{
    char url[1024];
    if (s3) {
        const char *base = getenv("XFFL_TEST_S3_URL");
        if (!base || !*base) {
            printf("SKIP: %s on s3 (XFFL_TEST_S3_URL not set; tests/it/test-s3.sh sets it) ", name);
            return NULL;
        }
        snprintf(url, sizeof url, "%s/u%d-%d-%s", base, (int)getpid(), test_seq++, name);
    } else {
        if (!file_root && xffl_mkdtemp("storetest", &file_root) != XFFL_OK) return NULL;
        snprintf(url, sizeof url, "%s%s/%s-%d", test_seq % 2 ? "file://" : "", file_root, name, test_seq);
        test_seq++;
    }
    store_options o;
    store_options_default(&o);
    o.jobs = jobs;
    o.retries = 3;
    o.retry_deadline = 20;
    store *s = NULL;
    xffl_status st = store_open(url, &o, &s);
    if (st != XFFL_OK) fprintf(stderr, "store_open %s: %s\n", url, xffl_errmsg());
    CU_ASSERT_EQUAL_FATAL(st, XFFL_OK);
    return s;
}

static void fill_random(void *buf, size_t n, unsigned seed)
{
    unsigned char *p = buf;
    uint64_t x = 0x9E3779B97F4A7C15ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = (unsigned char)(x >> 24);
    }
}

static void basic(int s3)
{
    store *s = fresh_store(s3, "basic", 2);
    if (!s) return;
    const char *msg = "hello store";
    CU_ASSERT_EQUAL(store_put(s, "a/b/hello", msg, strlen(msg)), XFFL_OK);
    void *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(store_get(s, "a/b/hello", &d, &n), XFFL_OK);
    CU_ASSERT_EQUAL(n, strlen(msg));
    CU_ASSERT(memcmp(d, msg, n) == 0);
    CU_ASSERT_EQUAL(((char *)d)[n], 0); /* NUL-terminated for text users */
    free(d);
    uint64_t size = 0;
    int64_t mtime = 0;
    CU_ASSERT_EQUAL(store_head(s, "a/b/hello", &size, &mtime), XFFL_OK);
    CU_ASSERT_EQUAL(size, strlen(msg));
    CU_ASSERT(mtime > 1600000000);
    /* overwrite, empty object */
    CU_ASSERT_EQUAL(store_put(s, "a/b/hello", "", 0), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(store_get(s, "a/b/hello", &d, &n), XFFL_OK);
    CU_ASSERT_EQUAL(n, 0);
    free(d);
    /* missing keys: NOT_FOUND naming the key, quickly (no retries) */
    double t0 = xffl_now();
    CU_ASSERT_EQUAL(store_get(s, "a/b/nope", &d, &n), XFFL_ERR_NOT_FOUND);
    CU_ASSERT(strstr(xffl_errmsg(), "a/b/nope") != NULL);
    CU_ASSERT_EQUAL(store_head(s, "a/b/nope", &size, NULL), XFFL_ERR_NOT_FOUND);
    CU_ASSERT(xffl_now() - t0 < 5);
    CU_ASSERT_EQUAL(store_delete(s, "a/b/hello"), XFFL_OK);
    CU_ASSERT_EQUAL(store_head(s, "a/b/hello", &size, NULL), XFFL_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(store_delete(s, "a/b/hello"), XFFL_OK); /* absent: fine */
    /* keys that could escape or alias are refused before any I/O */
    CU_ASSERT_EQUAL(store_put(s, "../x", "x", 1), XFFL_ERR_USAGE);
    CU_ASSERT_EQUAL(store_put(s, "/x", "x", 1), XFFL_ERR_USAGE);
    CU_ASSERT_EQUAL(store_put(s, "a//x", "x", 1), XFFL_ERR_USAGE);
    CU_ASSERT_EQUAL(store_put(s, "a/x.tmp.1", "x", 1), XFFL_ERR_USAGE);
    store_close(s);
}

static void listing(int s3)
{
    store *s = fresh_store(s3, "list", 2);
    if (!s) return;
    const char *keys[] = {"w", "v/a2/x", "va/y", "v/a1", "v/a2/z/deep"};
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(store_put(s, keys[i], keys[i], strlen(keys[i])), XFFL_OK);
    store_listing l;
    CU_ASSERT_EQUAL_FATAL(store_list(s, "v/", &l), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(l.count, 3);
    CU_ASSERT_STRING_EQUAL(l.items[0].key, "v/a1");
    CU_ASSERT_STRING_EQUAL(l.items[1].key, "v/a2/x");
    CU_ASSERT_STRING_EQUAL(l.items[2].key, "v/a2/z/deep");
    CU_ASSERT_EQUAL(l.items[1].size, strlen("v/a2/x"));
    store_listing_free(&l);
    CU_ASSERT_EQUAL_FATAL(store_list(s, "v", &l), XFFL_OK);
    CU_ASSERT_EQUAL(l.count, 4);
    store_listing_free(&l);
    CU_ASSERT_EQUAL_FATAL(store_list(s, "v/a2/", &l), XFFL_OK);
    CU_ASSERT_EQUAL(l.count, 2);
    store_listing_free(&l);
    CU_ASSERT_EQUAL_FATAL(store_list(s, "", &l), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(l.count, 5);
    for (size_t i = 1; i < l.count; i++) CU_ASSERT(strcmp(l.items[i - 1].key, l.items[i].key) < 0);
    store_listing_free(&l);
    CU_ASSERT_EQUAL_FATAL(store_list(s, "nothing/", &l), XFFL_OK);
    CU_ASSERT_EQUAL(l.count, 0);
    store_listing_free(&l);
    store_close(s);
}

/* More than one page of S3 listing (1000 keys). */
static void many_keys(int s3)
{
    store *s = fresh_store(s3, "many", 4);
    if (!s) return;
    enum { N = 1234 };
    char key[64];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k/%05d", i);
        if (store_put(s, key, key, strlen(key)) != XFFL_OK) {
            CU_FAIL("put");
            fprintf(stderr, "%s\n", xffl_errmsg());
            break;
        }
    }
    T_OK(store_put(s, "other", "x", 1));
    store_listing l;
    CU_ASSERT_EQUAL_FATAL(store_list(s, "k/", &l), XFFL_OK);
    CU_ASSERT_EQUAL(l.count, N);
    int ok = 1;
    for (size_t i = 0; i < l.count && ok; i++) {
        snprintf(key, sizeof key, "k/%05zu", i);
        ok = !strcmp(l.items[i].key, key) && l.items[i].size == strlen(key);
    }
    CU_ASSERT(ok);
    store_listing_free(&l);
    store_close(s);
}

/* A "version" of three parts plus an index goes up and comes back bit-exact in parallel. */
static void version_roundtrip(int s3)
{
    store *s = fresh_store(s3, "version", 3);
    if (!s) return;
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("storever", &dir), XFFL_OK);
    enum { P = 4 };
    size_t sizes[P] = {3u << 20, (1u << 20) + 7, 1, 2u << 20};
    char src[P][512], dst[P][512], keys[P][64], hex[P][XFFL_SHA256_HEX];
    store_transfer up[P], down[P];
    for (int i = 0; i < P; i++) {
        void *buf = malloc(sizes[i]);
        fill_random(buf, sizes[i], (unsigned)i + 1);
        snprintf(src[i], sizeof src[i], "%s/src-%d", dir, i);
        snprintf(dst[i], sizeof dst[i], "%s/dst-%d", dir, i);
        snprintf(keys[i], sizeof keys[i], "versions/v000001/part-%03d.h5", i);
        xffl_sha256_hex(buf, sizes[i], hex[i]);
        CU_ASSERT_EQUAL(xffl_write_file_atomic(src[i], buf, sizes[i]), XFFL_OK);
        free(buf);
        /* half with the file's digest (V4 signs it), half without (hashed on their own) */
        up[i] = (store_transfer){keys[i], src[i], i % 2 ? hex[i] : NULL};
        down[i] = (store_transfer){keys[i], dst[i], hex[i]};
    }
    xffl_status st = store_put_many(s, up, P);
    if (st) fprintf(stderr, "%s\n", xffl_errmsg());
    CU_ASSERT_EQUAL_FATAL(st, XFFL_OK);
    st = store_get_many(s, down, P);
    if (st) fprintf(stderr, "%s\n", xffl_errmsg());
    CU_ASSERT_EQUAL_FATAL(st, XFFL_OK);
    for (int i = 0; i < P; i++) {
        char got[XFFL_SHA256_HEX];
        uint64_t n = 0;
        CU_ASSERT_EQUAL(xffl_sha256_file(dst[i], got, &n), XFFL_OK);
        CU_ASSERT_EQUAL(n, sizes[i]);
        CU_ASSERT_STRING_EQUAL(got, hex[i]);
    }
    /* a wrong digest: CORRUPT naming the key, nothing left at the destination */
    char bad[XFFL_SHA256_HEX];
    memcpy(bad, hex[1], sizeof bad);
    bad[0] = bad[0] == '0' ? '1' : '0';
    unlink(dst[1]);
    down[1].sha256_hex = bad;
    st = store_get_many(s, down, P);
    CU_ASSERT_EQUAL(st, XFFL_ERR_CORRUPT);
    CU_ASSERT(strstr(xffl_errmsg(), keys[1]) != NULL);
    CU_ASSERT(access(dst[1], F_OK) != 0);
    /* a missing part: its worker's message reaches this thread */
    down[1].sha256_hex = hex[1];
    down[2].key = "versions/v000001/part-999.h5";
    xffl_errmsg_clear();
    st = store_get_many(s, down, P);
    CU_ASSERT_EQUAL(st, XFFL_ERR_NOT_FOUND);
    CU_ASSERT(strstr(xffl_errmsg(), "part-999") != NULL);
    /* verified reads into memory */
    void *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(store_get_verified(s, keys[0], hex[0], &d, &n), XFFL_OK);
    CU_ASSERT_EQUAL(n, sizes[0]);
    free(d);
    d = NULL;
    CU_ASSERT_EQUAL(store_get_verified(s, keys[0], bad, &d, &n), XFFL_ERR_CORRUPT);
    CU_ASSERT(strstr(xffl_errmsg(), keys[0]) != NULL);
    CU_ASSERT_PTR_NULL(d);
    /* a put whose digest is not the file's: over http a V4 server refuses the body (what
     * a body damaged on its way looks like to it) and nothing is stored; elsewhere the
     * digest is not sent */
    const char *sig = getenv("XFFL_S3_SIGNATURE"), *https = getenv("XFFL_S3_HTTPS");
    if (s3 && !(sig && !strcmp(sig, "v2")) && !(https && !strcmp(https, "1"))) {
        store_transfer wrong = {"versions/v000002/part-000.h5", src[0], bad};
        xffl_errmsg_clear();
        CU_ASSERT_NOT_EQUAL(store_put_many(s, &wrong, 1), XFFL_OK);
        CU_ASSERT(strstr(xffl_errmsg(), "XAmzContentSHA256Mismatch") != NULL);
        uint64_t size;
        int64_t mtime;
        CU_ASSERT_EQUAL(store_head(s, wrong.key, &size, &mtime), XFFL_ERR_NOT_FOUND);
    }
    xffl_rmtree_cleanup(dir);
    free(dir);
    store_close(s);
}

/* The MD5s of a batch, on their own thread (storage/file_md5s.c), against OpenSSL's. */
static void file_md5_batch(void)
{
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("storemd5", &dir), XFFL_OK);
    enum { N = 7 }; /* more files than lanes, of sizes that end lanes at different times */
    size_t sizes[N] = {0, 1, (3u << 20) + 7, 64, 1u << 20, 100000, (1u << 20) + 63};
    char paths[N][512], want[N][STORE_MD5_HEX];
    const char *ask[N];
    for (int i = 0; i < N; i++) {
        void *buf = malloc(sizes[i] ? sizes[i] : 1);
        fill_random(buf, sizes[i], (unsigned)i + 11);
        snprintf(paths[i], sizeof paths[i], "%s/f-%d", dir, i);
        CU_ASSERT_EQUAL(xffl_write_file_atomic(paths[i], buf, sizes[i]), XFFL_OK);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        EVP_Digest(buf, sizes[i], md, &len, EVP_md5(), NULL);
        xffl_hex_encode(md, len, want[i]);
        free(buf);
        ask[i] = i == 3 ? NULL : paths[i]; /* one not asked for */
    }
    CU_ASSERT_STRING_EQUAL(want[0], "d41d8cd98f00b204e9800998ecf8427e"); /* MD5 of nothing */
    file_md5s *m = NULL;
    CU_ASSERT_EQUAL_FATAL(file_md5s_start(ask, N, &m), XFFL_OK);
    for (int i = N - 1; i >= 0; i--) { /* any order */
        char got[STORE_MD5_HEX];
        if (i == 3) {
            CU_ASSERT_EQUAL(file_md5s_get(m, (size_t)i, got), XFFL_ERR_INTERNAL);
            continue;
        }
        CU_ASSERT_EQUAL(file_md5s_get(m, (size_t)i, got), XFFL_OK);
        CU_ASSERT_STRING_EQUAL(got, want[i]);
    }
    file_md5s_free(m);
    /* a file that cannot be read: IO naming it; freeing while the thread works is fine */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none", dir);
    const char *two[2] = {missing, paths[2]};
    CU_ASSERT_EQUAL_FATAL(file_md5s_start(two, 2, &m), XFFL_OK);
    char got[STORE_MD5_HEX];
    CU_ASSERT_EQUAL(file_md5s_get(m, 0, got), XFFL_ERR_IO);
    CU_ASSERT(strstr(xffl_errmsg(), missing) != NULL);
    file_md5s_free(m);
    CU_ASSERT_EQUAL_FATAL(file_md5s_start(two + 1, 1, &m), XFFL_OK);
    file_md5s_free(m);
    file_md5s_free(NULL);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

enum { MD5_TEST_MAX = 1000 };

/* md5x4's four lanes (as md5x4_set_avx512 left them) and the scalar reference against
 * OpenSSL, over lengths around the block and padding edges, and with lanes that share a
 * state and input. */
static void md5_lanes_check(uint8_t data[4][MD5_TEST_MAX])
{
    const size_t lens[] = {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 999};
    for (size_t t = 0; t < sizeof lens / sizeof *lens; t++) {
        size_t len = lens[t], nb = len / MD5_BLOCK;
        md5_state st[4], ref;
        md5_state *sp[4] = {&st[0], &st[1], &st[2], &st[3]};
        const uint8_t *p[4] = {data[0], data[1], data[2], data[3]};
        for (int j = 0; j < 4; j++) md5_init(&st[j]);
        md5x4_blocks(sp, p, nb);
        for (int j = 0; j < 4; j++) {
            uint8_t got[16], want[16], one[16];
            unsigned wl = 0;
            EVP_Digest(data[j], len, want, &wl, EVP_md5(), NULL);
            md5_finish(&st[j], data[j] + nb * MD5_BLOCK, len % MD5_BLOCK, len, got);
            CU_ASSERT_EQUAL(memcmp(got, want, 16), 0);
            md5_init(&ref);
            md5_blocks(&ref, data[j], nb);
            md5_finish(&ref, data[j] + nb * MD5_BLOCK, len % MD5_BLOCK, len, one);
            CU_ASSERT_EQUAL(memcmp(one, want, 16), 0);
        }
    }
    /* lanes 1-3 repeat lane 0 into one scratch state: lane 0's result is untouched */
    md5_state a, scratch;
    md5_init(&a);
    md5_init(&scratch);
    md5_state *sp[4] = {&a, &scratch, &scratch, &scratch};
    const uint8_t *p[4] = {data[0], data[0], data[0], data[0]};
    md5x4_blocks(sp, p, 15);
    uint8_t got[16], want[16];
    unsigned wl = 0;
    md5_finish(&a, data[0] + 15 * MD5_BLOCK, 999 - 15 * MD5_BLOCK, 999, got);
    EVP_Digest(data[0], 999, want, &wl, EVP_md5(), NULL);
    CU_ASSERT_EQUAL(memcmp(got, want, 16), 0);
}

static void md5_lanes(void)
{
    static uint8_t data[4][MD5_TEST_MAX];
    for (int j = 0; j < 4; j++) fill_random(data[j], MD5_TEST_MAX, (unsigned)j + 3);
    if (md5x4_set_avx512(1)) md5_lanes_check(data); /* where the CPU has AVX-512VL */
    md5x4_set_avx512(0);
    md5_lanes_check(data);
    md5x4_set_avx512(1);
}

static void file_basic(void) { basic(0); }
static void file_listing(void) { listing(0); }
static void file_many_keys(void) { many_keys(0); }
static void file_version(void) { version_roundtrip(0); }
static void s3_basic(void) { basic(1); }
static void s3_listing(void) { listing(1); }
static void s3_many_keys(void) { many_keys(1); }
static void s3_version(void) { version_roundtrip(1); }

/* file:// only: a killed writer's temporary file is never a key, but gc can find it. */
static void file_partials(void)
{
    store *s = fresh_store(0, "partial", 1);
    if (!s) return;
    CU_ASSERT_EQUAL(store_put(s, "versions/v000001/INDEX-abc", "x", 1), XFFL_OK);
    char path[1024];
    const char *root = store_endpoint(s);
    snprintf(path, sizeof path, "%s/versions/v000001/part-000.h5.tmp.999.1", root);
    CU_ASSERT_EQUAL(xffl_write_file_atomic(path, "partial", 7), XFFL_OK);
    store_listing l;
    CU_ASSERT_EQUAL_FATAL(store_list(s, "", &l), XFFL_OK);
    CU_ASSERT_EQUAL(l.count, 1);
    store_listing_free(&l);
    CU_ASSERT_EQUAL_FATAL(store_list_partial(s, "versions/", &l), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(l.count, 1);
    CU_ASSERT_STRING_EQUAL(l.items[0].key, "versions/v000001/part-000.h5.tmp.999.1");
    CU_ASSERT_EQUAL(store_delete(s, l.items[0].key), XFFL_OK);
    store_listing_free(&l);
    CU_ASSERT_EQUAL_FATAL(store_list_partial(s, "", &l), XFFL_OK);
    CU_ASSERT_EQUAL(l.count, 0);
    store_listing_free(&l);
    store_close(s);
}

static void file_urls(void)
{
    store *s = NULL;
    CU_ASSERT_EQUAL(store_open("file://relative/path", NULL, &s), XFFL_ERR_USAGE);
    CU_ASSERT_EQUAL(store_open("ftp://x/y", NULL, &s), XFFL_ERR_USAGE);
    CU_ASSERT_EQUAL(store_open("", NULL, &s), XFFL_ERR_USAGE);
    CU_ASSERT_EQUAL(store_open("file:///tmp", NULL, &s), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(store_scheme(s), "file");
    store_close(s);
    store_close(NULL);
    store_listing_free(NULL);
}

/* No server needed: retries against a port nobody listens on end in UNREACHABLE naming
 * the endpoint within the deadline; a missing variable is USAGE naming it. */
static void save_env(const char *name, char **old)
{
    const char *v = getenv(name);
    *old = v ? strdup(v) : NULL;
}

static void restore_env(const char *name, char *old)
{
    if (old) setenv(name, old, 1);
    else unsetenv(name);
    free(old);
}

static void s3_offline(void)
{
    const char *names[] = {"XFFL_S3_ENDPOINT", "XFFL_S3_HTTPS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"};
    char *old[4];
    for (int i = 0; i < 4; i++) save_env(names[i], &old[i]);
    /* port 9 (discard) on loopback: nothing listens there in a test environment */
    setenv("XFFL_S3_ENDPOINT", "127.0.0.1:9", 1);
    setenv("XFFL_S3_HTTPS", "0", 1);
    setenv("AWS_ACCESS_KEY_ID", "k", 1);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    store *s = NULL;
    CU_ASSERT_EQUAL(store_open("s3://bucket/p", NULL, &s), XFFL_ERR_USAGE);
    CU_ASSERT(strstr(xffl_errmsg(), "AWS_SECRET_ACCESS_KEY") != NULL);
    setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
    setenv("XFFL_S3_HTTPS", "maybe", 1);
    CU_ASSERT_EQUAL(store_open("s3://bucket/p", NULL, &s), XFFL_ERR_USAGE);
    setenv("XFFL_S3_HTTPS", "0", 1);
    CU_ASSERT_EQUAL(store_open("s3:///p", NULL, &s), XFFL_ERR_USAGE);
    setenv("XFFL_S3_ENDPOINT", "http://127.0.0.1:9", 1);
    CU_ASSERT_EQUAL(store_open("s3://bucket/p", NULL, &s), XFFL_ERR_USAGE);
    CU_ASSERT(strstr(xffl_errmsg(), "host:port") != NULL);
    setenv("XFFL_S3_ENDPOINT", "127.0.0.1:9", 1);
    store_options o;
    store_options_default(&o);
    o.retries = 50;
    o.retry_deadline = 1.0;
    CU_ASSERT_EQUAL_FATAL(store_open("s3://bucket/p", &o, &s), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(store_scheme(s), "s3");
    double t0 = xffl_now();
    void *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(store_get(s, "versions/x", &d, &n), XFFL_ERR_UNREACHABLE);
    double el = xffl_now() - t0;
    CU_ASSERT(strstr(xffl_errmsg(), "127.0.0.1:9") != NULL);
    CU_ASSERT(strstr(xffl_errmsg(), "versions/x") != NULL);
    CU_ASSERT(el < 2.5);
    /* with retries 0 it is one attempt */
    store_close(s);
    o.retries = 0;
    o.retry_deadline = 100;
    CU_ASSERT_EQUAL_FATAL(store_open("s3://bucket/p", &o, &s), XFFL_OK);
    CU_ASSERT_EQUAL(store_put(s, "k", "x", 1), XFFL_ERR_UNREACHABLE);
    CU_ASSERT(strstr(xffl_errmsg(), "after 1 attempt ") != NULL);
    store_close(s);
    for (int i = 0; i < 4; i++) restore_env(names[i], old[i]);
}

/* store_get_immutable keeps verified copies of small objects and serves them again. To
 * see whether a request was made, the test does what cannot happen to a content-named
 * key: it overwrites the object; a request then finds the new bytes (CORRUPT). */
static void memo(int s3)
{
    store *s = fresh_store(s3, "memo", 2);
    if (!s) return;
    char a[1000], b[1000], hex[XFFL_SHA256_HEX];
    fill_random(a, sizeof a, 1);
    fill_random(b, sizeof b, 2);
    xffl_sha256_hex(a, sizeof a, hex);
    void *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(store_put(s, "m/a", a, sizeof a), XFFL_OK);
    CU_ASSERT_EQUAL(store_get_immutable(s, "m/a", hex, &d, &n), XFFL_OK);
    CU_ASSERT(n == sizeof a && d && !memcmp(d, a, n));
    free(d);
    CU_ASSERT_EQUAL_FATAL(store_put(s, "m/a", b, sizeof b), XFFL_OK);
    d = NULL;
    CU_ASSERT_EQUAL(store_get_immutable(s, "m/a", hex, &d, &n), XFFL_OK); /* the kept copy */
    CU_ASSERT(n == sizeof a && d && !memcmp(d, a, n) && ((char *)d)[n] == 0);
    free(d);
    d = NULL;
    CU_ASSERT_EQUAL(store_get_verified(s, "m/a", hex, &d, &n), XFFL_ERR_CORRUPT); /* always asks */
    CU_ASSERT(strstr(xffl_errmsg(), "m/a") != NULL);
    /* another handle has no copy */
    store *s2 = NULL;
    CU_ASSERT_EQUAL_FATAL(store_open(store_url(s), NULL, &s2), XFFL_OK);
    CU_ASSERT_EQUAL(store_get_immutable(s2, "m/a", hex, &d, &n), XFFL_ERR_CORRUPT);
    store_close(s2);
    /* over 1 MiB: not kept */
    size_t bign = (1u << 20) + 1;
    char *big = malloc(bign), bighex[XFFL_SHA256_HEX];
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    fill_random(big, bign, 3);
    xffl_sha256_hex(big, bign, bighex);
    CU_ASSERT_EQUAL_FATAL(store_put(s, "m/big", big, bign), XFFL_OK);
    CU_ASSERT_EQUAL(store_get_immutable(s, "m/big", bighex, &d, &n), XFFL_OK);
    free(d);
    big[0] ^= 1;
    CU_ASSERT_EQUAL_FATAL(store_put(s, "m/big", big, bign), XFFL_OK);
    CU_ASSERT_EQUAL(store_get_immutable(s, "m/big", bighex, &d, &n), XFFL_ERR_CORRUPT);
    free(big);
    /* nine more objects in eight slots: the least recently used (m/a, then o0) go */
    char ohex[9][XFFL_SHA256_HEX], key[16];
    for (int i = 0; i < 9; i++) {
        fill_random(a, sizeof a, 10 + (unsigned)i);
        xffl_sha256_hex(a, sizeof a, ohex[i]);
        snprintf(key, sizeof key, "m/o%d", i);
        CU_ASSERT_EQUAL_FATAL(store_put(s, key, a, sizeof a), XFFL_OK);
        CU_ASSERT_EQUAL(store_get_immutable(s, key, ohex[i], &d, &n), XFFL_OK);
        free(d);
    }
    CU_ASSERT_EQUAL_FATAL(store_put(s, "m/o0", b, sizeof b), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(store_put(s, "m/o8", b, sizeof b), XFFL_OK);
    CU_ASSERT_EQUAL(store_get_immutable(s, "m/o8", ohex[8], &d, &n), XFFL_OK);
    free(d);
    CU_ASSERT_EQUAL(store_get_immutable(s, "m/o0", ohex[0], &d, &n), XFFL_ERR_CORRUPT);
    CU_ASSERT_EQUAL(store_get_immutable(s, "m/a", hex, &d, &n), XFFL_ERR_CORRUPT);
    store_close(s);
}
static void file_memo(void) { memo(0); }
static void s3_memo(void) { memo(1); }

static int cleanup(void)
{
    if (file_root) xffl_rmtree_cleanup(file_root);
    free(file_root);
    file_root = NULL;
    return 0;
}

void suite_store(void)
{
    CU_pSuite f = CU_add_suite("store_file", NULL, cleanup);
    CU_add_test(f, "put/get/head/delete", file_basic);
    CU_add_test(f, "list by prefix, sorted", file_listing);
    CU_add_test(f, "list past 1000 keys", file_many_keys);
    CU_add_test(f, "version of 4 parts via put_many/get_many", file_version);
    CU_add_test(f, "partial writes hidden, listed for gc", file_partials);
    CU_add_test(f, "URLs", file_urls);
    CU_add_test(f, "MD5 in four lanes = the reference = OpenSSL", md5_lanes);
    CU_add_test(f, "MD5s of a batch on their own thread", file_md5_batch);
    CU_add_test(f, "verified copies of small named objects kept per handle", file_memo);
    CU_pSuite s = CU_add_suite("store_s3", NULL, NULL);
    CU_add_test(s, "put/get/head/delete", s3_basic);
    CU_add_test(s, "list by prefix, sorted", s3_listing);
    CU_add_test(s, "list past 1000 keys", s3_many_keys);
    CU_add_test(s, "version of 4 parts via put_many/get_many", s3_version);
    CU_add_test(s, "verified copies of small named objects kept per handle", s3_memo);
    CU_add_test(s, "no server: unreachable within the deadline; missing variable", s3_offline);
}
