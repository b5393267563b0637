/* The store suite: the same tests against file:// (always) and s3:// (when
 * XFFL_TEST_S3_URL=s3://bucket/prefix and the XFFL_S3_* / AWS_* variables are set,
 * e.g. by tests/it/test-s3.sh with s3rver running). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/digest.h"
#include "common/util.h"
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
        up[i] = (store_transfer){keys[i], src[i], NULL};
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
    xffl_rmtree_cleanup(dir);
    free(dir);
    store_close(s);
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
    CU_pSuite s = CU_add_suite("store_s3", NULL, NULL);
    CU_add_test(s, "put/get/head/delete", s3_basic);
    CU_add_test(s, "list by prefix, sorted", s3_listing);
    CU_add_test(s, "list past 1000 keys", s3_many_keys);
    CU_add_test(s, "version of 4 parts via put_many/get_many", s3_version);
    CU_add_test(s, "no server: unreachable within the deadline; missing variable", s3_offline);
}
