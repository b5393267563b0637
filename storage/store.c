/* Store front end: URL dispatch, key checks, the one retry loop, digest checks and
 * atomic local files. Backends (store_file.c, store_s3.c, store_s3v4.c) only make single
 * attempts; multipart uploads are driven from store_multipart.c. */
#include "storage/store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "storage/s3_settings.h"

void store_options_default(store_options *o)
{
    o->jobs = 4;
    o->retries = 8;
    o->retry_deadline = 120.0;
}

xffl_status store_open(const char *url, const store_options *opt, store **out)
{
    *out = NULL;
    XFFL_RETURN_IF(!url || !*url, XFFL_ERR_USAGE, "empty store URL");
    store *s = calloc(1, sizeof *s);
    XFFL_RETURN_IF(!s, XFFL_ERR_NOMEM, "opening store %s", url);
    if (opt) s->opt = *opt;
    else store_options_default(&s->opt);
    if (s->opt.jobs < 1) s->opt.jobs = 1;
    if (s->opt.retries < 0) s->opt.retries = 0;
    s->url = strdup(url);
    if (!s->url) { free(s); return xffl_fail(XFFL_ERR_NOMEM, "opening store %s", url); }
    pthread_mutex_init(&s->memo_mu, NULL);
    xffl_status st;
    if (!strncmp(url, "s3://", 5)) {
        s3_settings cfg;
        st = s3_settings_load(url, &cfg);
        if (st == XFFL_OK) st = cfg.v2 ? store_s3v2_open(s, url + 5, &cfg) : store_s3v4_open(s, url + 5, &cfg);
    }
    else if (!strncmp(url, "file://", 7)) {
        /* Only local files: "file:///abs" (empty host) or "file://localhost/abs". */
        const char *p = url + 7;
        if (!strncmp(p, "localhost/", 10)) p += 9;
        st = p[0] == '/' ? store_file_open(s, p)
                         : xffl_fail(XFFL_ERR_USAGE, "store URL %s: file:// needs an absolute path (file:///path)", url);
    } else if (strstr(url, "://"))
        st = xffl_fail(XFFL_ERR_USAGE, "store URL %s: unknown scheme (use s3://bucket/prefix, file:///path or a path)", url);
    else
        st = store_file_open(s, url);
    if (st != XFFL_OK) {
        pthread_mutex_destroy(&s->memo_mu);
        free(s->endpoint);
        free(s->url);
        free(s);
        return st;
    }
    *out = s;
    return XFFL_OK;
}

void store_close(store *s)
{
    if (!s) return;
    if (s->ops && s->ops->close) s->ops->close(s);
    for (int i = 0; i < STORE_MEMO_SLOTS; i++) {
        free(s->memo[i].key);
        free(s->memo[i].data);
    }
    pthread_mutex_destroy(&s->memo_mu);
    free(s->endpoint);
    free(s->url);
    free(s);
}

const char *store_url(const store *s) { return s ? s->url : ""; }
const char *store_endpoint(const store *s) { return s ? s->endpoint : ""; }
const char *store_scheme(const store *s) { return s && s->ops ? s->ops->scheme : ""; }

/* Keys are relative '/'-separated names; the file backend maps them to paths, so
 * anything that could climb out of the root or alias another key is refused. */
static XFFL_MUST_USE xffl_status check_key(const store *s, const char *key, int writing)
{
    XFFL_RETURN_IF(!key || !*key, XFFL_ERR_USAGE, "%s: empty key", s->url);
    XFFL_RETURN_IF(strlen(key) > 900, XFFL_ERR_USAGE, "%s: key too long: %.60s...", s->url, key);
    XFFL_RETURN_IF(key[0] == '/' || key[strlen(key) - 1] == '/' || strstr(key, "//"), XFFL_ERR_USAGE,
                   "%s: bad key '%s' (relative, no empty components)", s->url, key);
    for (const char *c = key; *c; c++)
        XFFL_RETURN_IF((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\', XFFL_ERR_USAGE,
                       "%s: bad character in key '%s'", s->url, key);
    for (const char *p = key; p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        XFFL_RETURN_IF((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'), XFFL_ERR_USAGE,
                       "%s: bad key '%s' ('.' and '..' are not allowed)", s->url, key);
        p = e ? e + 1 : NULL;
    }
    /* ".tmp." marks a file:// writer's temporary name: such keys would vanish from listings. */
    XFFL_RETURN_IF(writing && strstr(key, ".tmp."), XFFL_ERR_USAGE,
                   "%s: key '%s' contains '.tmp.', which is reserved for partial writes", s->url, key);
    return XFFL_OK;
}

/* ---- the one retry loop ---------------------------------------------------------- */


static double jitter_unit(void)
{
    static _Thread_local unsigned seed;
    if (!seed) seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed ^ (unsigned)getpid();
    return (double)rand_r(&seed) / ((double)RAND_MAX + 1.0);
}

static void sleep_s(double sec)
{
    if (sec <= 0) return;
    struct timespec ts = {(time_t)sec, (long)((sec - (double)(time_t)sec) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

/* Runs fn until it succeeds, fails for good, or the retries or the deadline are spent.
 * Backoff: 0.1 s doubling up to 5 s, each delay drawn uniformly from [d/2, d] so that
 * parallel workers hitting the same outage do not come back in lockstep. */
xffl_status store_with_retries_bounded(store *s, const char *what, const char *key, store_attempt_fn fn, void *arg,
                                       int retries, double deadline)
{
    double start = xffl_now(), d = 0.1;
    for (int attempt = 1;; attempt++) {
        xffl_status st = fn(s, arg);
        if (st != XFFL_ERR_TRANSIENT) return st;
        double elapsed = xffl_now() - start;
        double delay = d * (0.5 + 0.5 * jitter_unit());
        d = d * 2 > 5.0 ? 5.0 : d * 2;
        if (attempt > retries || elapsed + delay > deadline)
            return xffl_wrap(XFFL_ERR_UNREACHABLE, "%s %s: store %s unreachable after %d attempt%s in %.1f s", what,
                             key, s->endpoint, attempt, attempt == 1 ? "" : "s", elapsed);
        xffl_log(XFFL_LOG_DEBUG, "store %s: %s %s failed (%s), retry %d/%d in %.2f s", s->endpoint, what, key,
                 xffl_errmsg(), attempt, retries, delay);
        sleep_s(delay);
    }
}

xffl_status store_with_retries(store *s, const char *what, const char *key, store_attempt_fn fn, void *arg)
{
    return store_with_retries_bounded(s, what, key, fn, arg, s->opt.retries, s->opt.retry_deadline);
}

/* ---- simple operations ----------------------------------------------------------- */

struct op_args {
    const char *key;
    const char *path;
    const void *cdata;
    size_t len;
    uint64_t size;
    int64_t mtime;
    void *data;
    int fd;
    xffl_sha256_ctx *ctx;
    const char *prefix;
    int partial;
    const store_known *known;
    store_listing *listing;
};

static XFFL_MUST_USE xffl_status a_put(store *s, void *v)
{
    struct op_args *a = v;
    return s->ops->put_mem(s, a->key, a->cdata, a->len);
}

xffl_status store_put(store *s, const char *key, const void *data, size_t len)
{
    XFFL_FORWARD(check_key(s, key, 1));
    struct op_args a = {.key = key, .cdata = data, .len = len};
    return store_with_retries(s, "put", key, a_put, &a);
}

struct unless_args {
    const char *key, *prefix;
    const void *data;
    size_t len;
};

static XFFL_MUST_USE xffl_status a_put_unless(store *s, void *v)
{
    struct unless_args *a = v;
    return s->ops->put_unless(s, a->key, a->data, a->len, a->prefix);
}

xffl_status store_put_unless(store *s, const char *key, const void *data, size_t len, const char *unless_prefix)
{
    XFFL_FORWARD(check_key(s, key, 1));
    if (s->ops->put_unless) {
        struct unless_args a = {key, unless_prefix, data, len};
        return store_with_retries(s, "put", key, a_put_unless, &a);
    }
    store_listing l = {0};
    XFFL_FORWARD(store_list(s, unless_prefix, &l));
    const char *other = NULL; /* the same key again is a retry of this put, not another writer */
    for (size_t i = 0; i < l.count && !other; i++)
        if (strcmp(l.items[i].key, key)) other = l.items[i].key;
    xffl_status st = other ? xffl_fail(XFFL_ERR_EXISTS, "put %s: %s exists already", key, other)
                           : store_put(s, key, data, len);
    store_listing_free(&l);
    return st;
}

/* 64 hex digits: a SHA-256 as manifests write it */
static int hex_ok(const char *h)
{
    if (!h || strlen(h) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f') || (h[i] >= 'A' && h[i] <= 'F'))) return 0;
    return 1;
}

static XFFL_MUST_USE xffl_status a_put_file(store *s, void *v)
{
    struct op_args *a = v;
    return s->ops->put_file(s, a->key, a->path, a->size, a->known);
}

xffl_status store_put_file(store *s, const char *key, const char *path) { return store_put_file_known(s, key, path, NULL); }

xffl_status store_put_file_known(store *s, const char *key, const char *path, const store_known *kn)
{
    XFFL_FORWARD(check_key(s, key, 1));
    struct stat st;
    XFFL_RETURN_IF(stat(path, &st), errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "put %s: %s: %s", key, path,
                   strerror(errno));
    XFFL_RETURN_IF(!S_ISREG(st.st_mode), XFFL_ERR_USAGE, "put %s: %s is not a regular file", key, path);
    XFFL_RETURN_IF(kn && kn->sha256_hex && !hex_ok(kn->sha256_hex), XFFL_ERR_USAGE,
                   "put %s: the file's digest '%s' is not 64 hex digits", key, kn->sha256_hex);
    uint64_t part = s->ops->mpu_part_size ? s->ops->mpu_part_size(s, (uint64_t)st.st_size) : 0;
    if (part) return store_put_file_multipart(s, key, path, (uint64_t)st.st_size, part);
    struct op_args a = {.key = key, .path = path, .size = (uint64_t)st.st_size, .known = kn};
    return store_with_retries(s, "put", key, a_put_file, &a);
}

static XFFL_MUST_USE xffl_status a_get(store *s, void *v)
{
    struct op_args *a = v;
    return s->ops->get_mem(s, a->key, &a->data, &a->len);
}

xffl_status store_get(store *s, const char *key, void **data, size_t *len)
{
    XFFL_FORWARD(check_key(s, key, 0));
    struct op_args a = {.key = key};
    XFFL_FORWARD(store_with_retries(s, "get", key, a_get, &a));
    *data = a.data;
    if (len) *len = a.len;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status a_head(store *s, void *v)
{
    struct op_args *a = v;
    return s->ops->head(s, a->key, &a->size, &a->mtime);
}

xffl_status store_head(store *s, const char *key, uint64_t *size, int64_t *mtime)
{
    XFFL_FORWARD(check_key(s, key, 0));
    struct op_args a = {.key = key};
    XFFL_FORWARD(store_with_retries(s, "head", key, a_head, &a));
    if (size) *size = a.size;
    if (mtime) *mtime = a.mtime;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status a_del(store *s, void *v)
{
    struct op_args *a = v;
    return s->ops->del(s, a->key);
}

xffl_status store_delete(store *s, const char *key)
{
    XFFL_FORWARD(check_key(s, key, 0));
    struct op_args a = {.key = key};
    return store_with_retries(s, "delete", key, a_del, &a);
}

/* ---- listings -------------------------------------------------------------------- */

xffl_status store_listing_push(store_listing *l, size_t *cap, const char *key, uint64_t size, int64_t mtime)
{
    if (l->count == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        store_entry *ni = realloc(l->items, nc * sizeof *ni);
        XFFL_RETURN_IF(!ni, XFFL_ERR_NOMEM, "listing %zu keys", l->count);
        l->items = ni;
        *cap = nc;
    }
    char *k = strdup(key);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "listing key %s", key);
    l->items[l->count++] = (store_entry){k, size, mtime};
    return XFFL_OK;
}

void store_listing_free(store_listing *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->count; i++) free(l->items[i].key);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const store_entry *)a)->key, ((const store_entry *)b)->key);
}

static XFFL_MUST_USE xffl_status a_list(store *s, void *v)
{
    struct op_args *a = v;
    /* A failed attempt may have collected some pages: start over clean. */
    store_listing_free(a->listing);
    return s->ops->list(s, a->prefix, a->partial, a->listing);
}

static XFFL_MUST_USE xffl_status list_common(store *s, const char *prefix, int partial, store_listing *out)
{
    out->items = NULL;
    out->count = 0;
    if (!prefix) prefix = "";
    XFFL_RETURN_IF(prefix[0] == '/' || strstr(prefix, ".."), XFFL_ERR_USAGE, "%s: bad prefix '%s'", s->url, prefix);
    struct op_args a = {.prefix = prefix, .partial = partial, .listing = out};
    xffl_status st = store_with_retries(s, "list", prefix[0] ? prefix : "(all keys)", a_list, &a);
    if (st != XFFL_OK) {
        store_listing_free(out);
        return st;
    }
    if (out->count > 1) qsort(out->items, out->count, sizeof *out->items, entry_cmp);
    return XFFL_OK;
}

xffl_status store_list(store *s, const char *prefix, store_listing *out) { return list_common(s, prefix, 0, out); }
xffl_status store_list_partial(store *s, const char *prefix, store_listing *out)
{
    return list_common(s, prefix, 1, out);
}

xffl_status store_check_put_etag(const store *s, const char *key, const char *etag, const char *md5_hex,
                                 const char *what_hashed)
{
    const char *e = etag[0] == '"' ? etag + 1 : etag;
    XFFL_RETURN_IF(strlen(e) >= 32 && strspn(e, "0123456789abcdefABCDEF") == 32 && strncasecmp(e, md5_hex, 32),
                   XFFL_ERR_TRANSIENT, "put %s to %s: the stored object's ETag %.32s is not the MD5 %s of %s", key,
                   s->endpoint, e, md5_hex, what_hashed);
    return XFFL_OK;
}

/* ---- verified reads -------------------------------------------------------------- */

/* DEBUG like a retry: a refetch that then matches changes nothing for the caller. */
static void refetch_note(const store *s, const char *key)
{
    xffl_log(XFFL_LOG_DEBUG, "store %s: %s: sha256 mismatch, fetching again", s->endpoint, key);
}

xffl_status store_get_verified(store *s, const char *key, const char *sha256_hex, void **data, size_t *len)
{
    XFFL_RETURN_IF(!hex_ok(sha256_hex), XFFL_ERR_USAGE, "get %s: expected digest '%s' is not 64 hex digits", key,
                   sha256_hex ? sha256_hex : "(null)");
    char got[XFFL_SHA256_HEX];
    /* A mismatch may be a transfer that went wrong on the way: one more full try. */
    for (int round = 0; round < 2; round++) {
        void *d = NULL;
        size_t n = 0;
        XFFL_FORWARD(store_get(s, key, &d, &n));
        xffl_sha256_hex(d, n, got);
        if (!strcasecmp(got, sha256_hex)) {
            *data = d;
            if (len) *len = n;
            return XFFL_OK;
        }
        free(d);
        if (round == 0) refetch_note(s, key);
    }
    return xffl_fail(XFFL_ERR_CORRUPT, "%s: sha256 mismatch in %s (expected %s, got %s)", key, s->url, sha256_hex, got);
}

/* A copy of the memo's verified bytes for key and digest into *data: 1, or 0 when it has none. */
static int memo_find(store *s, const char *key, const char *sha256_hex, void **data, size_t *len)
{
    int found = 0;
    pthread_mutex_lock(&s->memo_mu);
    for (int i = 0; i < STORE_MEMO_SLOTS && !found; i++) {
        store_memo *m = &s->memo[i];
        if (!m->key || strcmp(m->key, key) || strcasecmp(m->sha256, sha256_hex)) continue;
        char *d = malloc(m->len + 1);
        if (!d) break; /* then a request, as without the memo */
        memcpy(d, m->data, m->len);
        d[m->len] = 0;
        *data = d;
        if (len) *len = m->len;
        m->used = ++s->memo_clock;
        found = 1;
    }
    pthread_mutex_unlock(&s->memo_mu);
    return found;
}

/* Keeps a copy of data (verified against sha256_hex) in the least recently used slot. */
static void memo_keep(store *s, const char *key, const char *sha256_hex, const void *data, size_t len)
{
    if (len > STORE_MEMO_MAX) return;
    char *k = strdup(key), *d = malloc(len ? len : 1);
    if (!k || !d) { /* the memo only saves requests: without it nothing is lost */
        free(k);
        free(d);
        return;
    }
    memcpy(d, data, len);
    pthread_mutex_lock(&s->memo_mu);
    store_memo *m = &s->memo[0];
    for (int i = 1; i < STORE_MEMO_SLOTS; i++)
        if (s->memo[i].used < m->used) m = &s->memo[i];
    free(m->key);
    free(m->data);
    m->key = k;
    m->data = d;
    m->len = len;
    snprintf(m->sha256, sizeof m->sha256, "%s", sha256_hex);
    m->used = ++s->memo_clock;
    pthread_mutex_unlock(&s->memo_mu);
}

xffl_status store_get_immutable(store *s, const char *key, const char *sha256_hex, void **data, size_t *len)
{
    XFFL_RETURN_IF(!hex_ok(sha256_hex), XFFL_ERR_USAGE, "get %s: expected digest '%s' is not 64 hex digits", key,
                   sha256_hex ? sha256_hex : "(null)");
    if (memo_find(s, key, sha256_hex, data, len)) {
        xffl_log(XFFL_LOG_DEBUG, "store %s: %s: the copy verified earlier in this process", s->endpoint, key);
        return XFFL_OK;
    }
    size_t n = 0;
    XFFL_FORWARD(store_get_verified(s, key, sha256_hex, data, &n));
    memo_keep(s, key, sha256_hex, *data, n);
    if (len) *len = n;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status a_get_fd(store *s, void *v)
{
    struct op_args *a = v;
    /* Start each attempt from an empty file and a fresh digest. */
    if (ftruncate(a->fd, 0) || lseek(a->fd, 0, SEEK_SET) < 0)
        return xffl_fail(XFFL_ERR_IO, "get %s: truncating %s: %s", a->key, a->path, strerror(errno));
    xffl_sha256_reset(a->ctx);
    a->size = 0;
    return s->ops->get_fd(s, a->key, a->fd, a->ctx, &a->size);
}

static XFFL_MUST_USE xffl_status get_file_common(store *s, const char *key, const char *sha256_hex, const char *path)
{
    XFFL_FORWARD(check_key(s, key, 0));
    XFFL_RETURN_IF(sha256_hex && !hex_ok(sha256_hex), XFFL_ERR_USAGE,
                   "get %s: expected digest '%s' is not 64 hex digits", key, sha256_hex);
    static unsigned counter;
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", path, (int)getpid(), __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    XFFL_RETURN_IF(n < 0 || (size_t)n >= sizeof tmp, XFFL_ERR_USAGE, "path too long: %s", path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    XFFL_RETURN_IF(fd < 0, XFFL_ERR_IO, "get %s: create %s: %s", key, tmp, strerror(errno));
    xffl_sha256_ctx *ctx = xffl_sha256_create();
    xffl_status st = XFFL_OK;
    if (!ctx) { st = xffl_fail(XFFL_ERR_NOMEM, "get %s", key); goto out; }
    struct op_args a = {.key = key, .path = tmp, .fd = fd, .ctx = ctx};
    char got[XFFL_SHA256_HEX] = "";
    for (int round = 0; round < (sha256_hex ? 2 : 1); round++) {
        XFFL_CHECK_GOTO(st, store_with_retries(s, "get", key, a_get_fd, &a), out);
        if (!sha256_hex) break;
        uint8_t dg[XFFL_SHA256_LEN];
        xffl_sha256_final(ctx, dg);
        xffl_hex_encode(dg, sizeof dg, got);
        if (!strcasecmp(got, sha256_hex)) break;
        if (round == 1) {
            st = xffl_fail(XFFL_ERR_CORRUPT, "%s: sha256 mismatch in %s (expected %s, got %s)", key, s->url,
                           sha256_hex, got);
            goto out;
        }
        refetch_note(s, key);
    }
    if (fsync(fd)) { st = xffl_fail(XFFL_ERR_IO, "get %s: fsync %s: %s", key, tmp, strerror(errno)); goto out; }
    if (close(fd)) { fd = -1; st = xffl_fail(XFFL_ERR_IO, "get %s: close %s: %s", key, tmp, strerror(errno)); goto out; }
    fd = -1;
    if (rename(tmp, path)) { st = xffl_fail(XFFL_ERR_IO, "get %s: rename to %s: %s", key, path, strerror(errno)); goto out; }
    st = xffl_fsync_parent_dir(path);
out:
    xffl_sha256_free(ctx);
    if (fd >= 0) close(fd);
    if (st != XFFL_OK) unlink(tmp);
    return st;
}

xffl_status store_get_file(store *s, const char *key, const char *path)
{
    return get_file_common(s, key, NULL, path);
}

xffl_status store_get_file_verified(store *s, const char *key, const char *sha256_hex, const char *path)
{
    XFFL_RETURN_IF(!sha256_hex, XFFL_ERR_USAGE, "get %s: no expected digest", key);
    return get_file_common(s, key, sha256_hex, path);
}
