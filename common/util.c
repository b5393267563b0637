#include "common/util.h"
#include "common/digest.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

xffl_status xffl_parse_size(const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    XFFL_RETURN_IF(errno || end == text || text[0] == '-', XFFL_ERR_USAGE, "bad size '%s' (expected e.g. 512M, 1G)", text);
    uint64_t mult = 1;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': mult = 1ull << 10; end++; break;
    case 'm': case 'M': mult = 1ull << 20; end++; break;
    case 'g': case 'G': mult = 1ull << 30; end++; break;
    case 't': case 'T': mult = 1ull << 40; end++; break;
    default: return xffl_fail(XFFL_ERR_USAGE, "bad size '%s' (suffix must be K, M, G or T)", text);
    }
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    XFFL_RETURN_IF(*end, XFFL_ERR_USAGE, "bad size '%s'", text);
    XFFL_RETURN_IF(v > UINT64_MAX / mult, XFFL_ERR_USAGE, "size '%s' too large", text);
    *out = v * mult;
    return XFFL_OK;
}

xffl_status xffl_parse_long(const char *what, const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text ? text : "", &end, 10);
    XFFL_RETURN_IF(!text || errno || end == text || *end, XFFL_ERR_USAGE, "%s: '%s' is not an integer", what,
                   text ? text : "");
    XFFL_RETURN_IF(v < min || v > max, XFFL_ERR_USAGE, "%s: %ld is out of range [%ld, %ld]", what, v, min, max);
    *out = v;
    return XFFL_OK;
}

xffl_status xffl_parse_double(const char *what, const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text ? text : "", &end);
    XFFL_RETURN_IF(!text || errno || end == text || *end, XFFL_ERR_USAGE, "%s: '%s' is not a number", what,
                   text ? text : "");
    *out = v;
    return XFFL_OK;
}

int xffl_threads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

xffl_status xffl_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    XFFL_RETURN_IF(strlen(path) >= sizeof buf, XFFL_ERR_USAGE, "path too long: %s", path);
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return xffl_fail(XFFL_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return xffl_fail(XFFL_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
    struct stat st; /* EEXIST is also a file of that name */
    XFFL_RETURN_IF(stat(buf, &st) != 0, XFFL_ERR_IO, "%s: %s", buf, strerror(errno));
    XFFL_RETURN_IF(!S_ISDIR(st.st_mode), XFFL_ERR_USAGE, "%s exists and is not a directory", buf);
    return XFFL_OK;
}

xffl_status xffl_rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT) return XFFL_OK;
        if (errno == ENOTDIR) return unlink(path) ? xffl_fail(XFFL_ERR_IO, "unlink %s: %s", path, strerror(errno)) : XFFL_OK;
        return xffl_fail(XFFL_ERR_IO, "opendir %s: %s", path, strerror(errno));
    }
    struct dirent *e;
    xffl_status s = XFFL_OK;
    while (s == XFFL_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *child = NULL;
        if (asprintf(&child, "%s/%s", path, e->d_name) < 0) { s = xffl_fail(XFFL_ERR_NOMEM, "rmtree %s", path); break; }
        struct stat st;
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
            s = xffl_rmtree(child);
        else if (unlink(child) && errno != ENOENT)
            s = xffl_fail(XFFL_ERR_IO, "unlink %s: %s", child, strerror(errno));
        free(child);
    }
    closedir(d);
    if (s == XFFL_OK && rmdir(path) && errno != ENOENT) s = xffl_fail(XFFL_ERR_IO, "rmdir %s: %s", path, strerror(errno));
    return s;
}

#define HUGE_BYTES ((size_t)2 << 20)
/* Blocks xffl_free_big kept: a replay holds about four model-sized arrays at once. */
#define BIG_KEPT 8
static struct {
    pthread_mutex_t mu;
    int on;
    void *p[BIG_KEPT];
    size_t n[BIG_KEPT]; /* bytes usable in it, rounded down to HUGE_BYTES */
} big = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* A kept block of n bytes (up to one HUGE_BYTES more: malloc may hand out a little
 * more than asked), taken out of the list; NULL if none. */
static void *big_take(size_t n)
{
    void *p = NULL;
    pthread_mutex_lock(&big.mu);
    for (int i = 0; i < BIG_KEPT && !p; i++)
        if (big.p[i] && big.n[i] >= n && big.n[i] <= n + HUGE_BYTES) {
            p = big.p[i];
            big.p[i] = NULL;
        }
    pthread_mutex_unlock(&big.mu);
    return p;
}

void *xffl_alloc_big(size_t bytes)
{
    if (bytes < HUGE_BYTES) return aligned_alloc(64, bytes ? (bytes + 63) / 64 * 64 : 64);
    size_t n = (bytes + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES; /* C11: a multiple of the alignment */
    void *p = big_take(n);
    if (p) return p;
    p = aligned_alloc(HUGE_BYTES, n);
    if (p) (void)madvise(p, n, MADV_HUGEPAGE); /* advice only: without THP nothing changes */
    return p;
}

void xffl_free_big(void *p)
{
    if (!p) return;
    /* what the block holds, from malloc: at least what was asked (a block under
     * HUGE_BYTES is never kept) */
    size_t n = malloc_usable_size(p) / HUGE_BYTES * HUGE_BYTES;
    if ((uintptr_t)p % HUGE_BYTES) n = 0; /* not from xffl_alloc_big: never handed out again */
    pthread_mutex_lock(&big.mu);
    for (int i = 0; big.on && n && i < BIG_KEPT; i++)
        if (!big.p[i]) {
            big.p[i] = p;
            big.n[i] = n;
            p = NULL;
            break;
        }
    pthread_mutex_unlock(&big.mu);
    free(p);
}

void xffl_big_keep(int on)
{
    void *drop[BIG_KEPT] = {0};
    pthread_mutex_lock(&big.mu);
    big.on = on;
    for (int i = 0; !on && i < BIG_KEPT; i++) {
        drop[i] = big.p[i];
        big.p[i] = NULL;
    }
    pthread_mutex_unlock(&big.mu);
    for (int i = 0; i < BIG_KEPT; i++) free(drop[i]);
}

xffl_status xffl_read_file(const char *path, void **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    XFFL_RETURN_IF(!f, errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    /* a regular file's size first: one buffer of the right size, read in one pass */
    struct stat sb;
    size_t cap = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) ? (size_t)sb.st_size + 1 : 1 << 16, n = 0;
    char *buf = xffl_alloc_big(cap + 1);
    for (;;) {
        if (!buf) { fclose(f); return xffl_fail(XFFL_ERR_NOMEM, "reading %s", path); }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) free(buf);
        buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return xffl_fail(XFFL_ERR_IO, "reading %s", path); }
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return XFFL_OK;
}

xffl_status xffl_read_file_parts(const char *path, void *const *parts, const size_t *lens, int n, char *hex)
{
    int fd = open(path, O_RDONLY);
    XFFL_RETURN_IF(fd < 0, errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    size_t want = 0;
    for (int i = 0; i < n; i++) want += lens[i];
    xffl_status st = XFFL_OK;
    xffl_sha256_ctx *sha = NULL;
    if (fstat(fd, &sb)) {
        st = xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if ((size_t)sb.st_size != want) {
        st = xffl_fail(XFFL_ERR_INVALID, "%s: %lld bytes, expected %zu", path, (long long)sb.st_size, want);
        goto done;
    }
    if (hex && !(sha = xffl_sha256_create())) {
        st = xffl_fail(XFFL_ERR_NOMEM, "hashing %s", path);
        goto done;
    }
    for (int i = 0; i < n && !st; i++) {
        char *p = parts[i];
        size_t left = lens[i];
        while (left) {
            ssize_t r = read(fd, p, left);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                st = r ? xffl_fail(XFFL_ERR_IO, "read %s: %s", path, strerror(errno))
                       : xffl_fail(XFFL_ERR_INVALID, "%s: shorter than %zu bytes", path, want);
                break;
            }
            if (sha) xffl_sha256_update(sha, p, (size_t)r);
            p += r;
            left -= (size_t)r;
        }
    }
    if (!st && sha) {
        uint8_t d[XFFL_SHA256_LEN];
        xffl_sha256_final(sha, d);
        xffl_hex_encode(d, XFFL_SHA256_LEN, hex);
    }
done:
    xffl_sha256_free(sha);
    close(fd);
    return st;
}

xffl_status xffl_fsync_parent_dir(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return xffl_fail(XFFL_ERR_IO, "open %s: %s", dir, strerror(errno));
    fsync(fd);
    close(fd);
    return XFFL_OK;
}

xffl_status xffl_write_file_atomic(const char *path, const void *data, size_t len)
{
    return xffl_write_file_atomic_parts(path, &data, &len, 1);
}

static XFFL_MUST_USE xffl_status write_replace(const char *path, const void *const *parts, const size_t *lens, int n,
                                               int sync)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%lx", path, (int)getpid(), (unsigned long)(uintptr_t)&tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    XFFL_RETURN_IF(fd < 0, XFFL_ERR_IO, "create %s: %s", tmp, strerror(errno));
    for (int i = 0; i < n; i++) {
        const char *p = parts[i];
        size_t left = lens[i];
        while (left) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int e = errno;
                close(fd);
                unlink(tmp);
                return xffl_fail(XFFL_ERR_IO, "write %s: %s", path, strerror(e));
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if ((sync && fsync(fd)) || close(fd)) {
        int e = errno;
        unlink(tmp);
        return xffl_fail(XFFL_ERR_IO, "%s %s: %s", sync ? "fsync" : "close", path, strerror(e));
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return xffl_fail(XFFL_ERR_IO, "rename to %s: %s", path, strerror(e));
    }
    return sync ? xffl_fsync_parent_dir(path) : XFFL_OK;
}

xffl_status xffl_write_file_atomic_parts(const char *path, const void *const *parts, const size_t *lens, int n)
{
    return write_replace(path, parts, lens, n, 1);
}

xffl_status xffl_write_cache_file(const char *path, const void *data, size_t len)
{
    return write_replace(path, &data, &len, 1, 0);
}

xffl_status xffl_link_or_copy(const char *src, const char *dst)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%lx", dst, (int)getpid(), (unsigned long)(uintptr_t)&tmp);
    if (link(src, tmp) == 0) {
        if (rename(tmp, dst)) {
            int e = errno;
            unlink(tmp);
            return xffl_fail(XFFL_ERR_IO, "rename to %s: %s", dst, strerror(e));
        }
        return xffl_fsync_parent_dir(dst);
    }
    XFFL_RETURN_IF(errno != EPERM && errno != EXDEV && errno != ENOTSUP && errno != EMLINK, XFFL_ERR_IO,
                   "link %s to %s: %s", src, dst, strerror(errno));
    void *data = NULL;
    size_t len = 0;
    XFFL_FORWARD(xffl_read_file(src, &data, &len));
    xffl_status st = xffl_write_file_atomic(dst, data, len);
    free(data);
    return st;
}

xffl_status xffl_mkdtemp(const char *tag, char **path)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = NULL;
    if (asprintf(&tmpl, "%s/xffl-%s-XXXXXX", base && *base ? base : "/tmp", tag) < 0)
        return xffl_fail(XFFL_ERR_NOMEM, "temporary directory name");
    if (!mkdtemp(tmpl)) {
        int e = errno;
        free(tmpl);
        return xffl_fail(XFFL_ERR_IO, "mkdtemp for %s: %s", tag, strerror(e));
    }
    *path = tmpl;
    return XFFL_OK;
}

void xffl_sleep(double seconds)
{
    if (seconds <= 0) return;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

void xffl_backoff_init(xffl_backoff *b, double max)
{
    b->max = max > 0 ? max : 1.0;
    b->next = b->max < 0.05 ? b->max : 0.05;
}

void xffl_backoff_sleep(xffl_backoff *b)
{
    xffl_sleep(b->next);
    b->next = b->next * 2 < b->max ? b->next * 2 : b->max;
}

double xffl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void xffl_rmtree_cleanup(const char *path)
{
    if (xffl_rmtree(path) != XFFL_OK) xffl_log(XFFL_LOG_WARN, "cannot remove temporary %s: %s", path, xffl_errmsg());
}

uint64_t xffl_splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
