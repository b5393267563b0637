/* file:// backend: a key is a path under the root directory. Writes go to
 * "<path>.tmp.<pid>.<n>" in the same directory, are fsynced and renamed into place,
 * then the directory is fsynced: a reader sees the old object, the new one, or none.
 * A killed writer leaves its ".tmp." file behind; listings skip those names and
 * store_list_partial() reports them for gc. */
#include "storage/store_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/util.h"

typedef struct {
    char *root; /* no trailing '/' (except "/" itself) */
} file_store;

static XFFL_MUST_USE xffl_status key_path(const store *s, const char *key, char *buf, size_t cap)
{
    const file_store *f = s->impl;
    int n = snprintf(buf, cap, "%s/%s", f->root, key);
    XFFL_RETURN_IF(n < 0 || (size_t)n >= cap, XFFL_ERR_USAGE, "%s: path for key %s too long", s->url, key);
    /* Nothing inside the store is followed: a symbolic link there (rounds/r000003 ->
     * elsewhere) would make a job read or write outside it. The root itself may be one. */
    size_t root = strlen(f->root);
    for (char *c = buf + root + 1;; c++) {
        c = strchr(c, '/');
        if (c) *c = 0;
        struct stat sb;
        int link = lstat(buf, &sb) == 0 && S_ISLNK(sb.st_mode);
        XFFL_RETURN_IF(link, XFFL_ERR_INVALID, "%s: key %s: %s is a symbolic link (a store follows none)", s->url, key,
                       buf + root + 1);
        if (!c) break;
        *c = '/';
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status make_parent(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return XFFL_OK;
    *slash = 0;
    return xffl_mkdirs(dir);
}

static XFFL_MUST_USE xffl_status f_put_mem(store *s, const char *key, const void *data, size_t len)
{
    char path[PATH_MAX];
    XFFL_FORWARD(key_path(s, key, path, sizeof path));
    XFFL_FORWARD(make_parent(path));
    xffl_status st = xffl_write_file_atomic(path, data, len);
    return st == XFFL_OK ? st : xffl_wrap(st, "put %s", key);
}

static XFFL_MUST_USE xffl_status write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return XFFL_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status f_put_file(store *s, const char *key, const char *src, uint64_t size,
                                            const store_known *kn)
{
    (void)kn; /* a local copy is checked by its byte count and fsync */
    static unsigned counter;
    char path[PATH_MAX], tmp[PATH_MAX + 64];
    XFFL_FORWARD(key_path(s, key, path, sizeof path));
    XFFL_FORWARD(make_parent(path));
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", path, (int)getpid(), __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    int in = open(src, O_RDONLY | O_CLOEXEC);
    XFFL_RETURN_IF(in < 0, errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "put %s: open %s: %s", key, src,
                   strerror(errno));
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return xffl_fail(XFFL_ERR_IO, "put %s: create %s: %s", key, tmp, strerror(e));
    }
    xffl_status st = XFFL_OK;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    uint64_t total = 0;
    if (!buf) st = xffl_fail(XFFL_ERR_NOMEM, "put %s", key);
    while (st == XFFL_OK) {
        ssize_t r = read(in, buf, cap);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { st = xffl_fail(XFFL_ERR_IO, "put %s: read %s: %s", key, src, strerror(errno)); break; }
        if (r == 0) break;
        if (write_all(out, buf, (size_t)r)) st = xffl_fail(XFFL_ERR_IO, "put %s: write %s: %s", key, tmp, strerror(errno));
        total += (uint64_t)r;
    }
    free(buf);
    close(in);
    if (st == XFFL_OK && total != size)
        st = xffl_fail(XFFL_ERR_IO, "put %s: %s changed while being copied (%llu bytes, expected %llu)", key, src,
                       (unsigned long long)total, (unsigned long long)size);
    if (st == XFFL_OK && fsync(out)) st = xffl_fail(XFFL_ERR_IO, "put %s: fsync %s: %s", key, tmp, strerror(errno));
    if (close(out) && st == XFFL_OK) st = xffl_fail(XFFL_ERR_IO, "put %s: close %s: %s", key, tmp, strerror(errno));
    if (st == XFFL_OK && rename(tmp, path)) st = xffl_fail(XFFL_ERR_IO, "put %s: rename %s: %s", key, path, strerror(errno));
    if (st != XFFL_OK) {
        unlink(tmp);
        return st;
    }
    return xffl_fsync_parent_dir(path);
}

static XFFL_MUST_USE xffl_status not_found(const store *s, const char *key)
{
    return xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such key in %s", key, s->url);
}

static XFFL_MUST_USE xffl_status f_get_mem(store *s, const char *key, void **data, size_t *len)
{
    char path[PATH_MAX];
    XFFL_FORWARD(key_path(s, key, path, sizeof path));
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode)) return not_found(s, key);
    xffl_status r = xffl_read_file(path, data, len);
    if (r == XFFL_ERR_NOT_FOUND) return not_found(s, key);
    return r == XFFL_OK ? r : xffl_wrap(r, "get %s", key);
}

static XFFL_MUST_USE xffl_status f_get_fd(store *s, const char *key, int fd, xffl_sha256_ctx *ctx, uint64_t *written)
{
    char path[PATH_MAX];
    XFFL_FORWARD(key_path(s, key, path, sizeof path));
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0 && errno == ENOENT) return not_found(s, key);
    XFFL_RETURN_IF(in < 0, XFFL_ERR_IO, "get %s: open %s: %s", key, path, strerror(errno));
    struct stat sb;
    if (fstat(in, &sb) || !S_ISREG(sb.st_mode)) {
        close(in);
        return not_found(s, key);
    }
    xffl_status st = XFFL_OK;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    if (!buf) st = xffl_fail(XFFL_ERR_NOMEM, "get %s", key);
    while (st == XFFL_OK) {
        ssize_t r = read(in, buf, cap);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { st = xffl_fail(XFFL_ERR_IO, "get %s: read %s: %s", key, path, strerror(errno)); break; }
        if (r == 0) break;
        xffl_sha256_update(ctx, buf, (size_t)r);
        if (write_all(fd, buf, (size_t)r)) st = xffl_fail(XFFL_ERR_IO, "get %s: write: %s", key, strerror(errno));
        *written += (uint64_t)r;
    }
    free(buf);
    close(in);
    return st;
}

static XFFL_MUST_USE xffl_status f_head(store *s, const char *key, uint64_t *size, int64_t *mtime)
{
    char path[PATH_MAX];
    XFFL_FORWARD(key_path(s, key, path, sizeof path));
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode)) return not_found(s, key);
    *size = (uint64_t)st.st_size;
    *mtime = (int64_t)st.st_mtime;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status f_del(store *s, const char *key)
{
    char path[PATH_MAX];
    XFFL_FORWARD(key_path(s, key, path, sizeof path));
    if (unlink(path) && errno != ENOENT) return xffl_fail(XFFL_ERR_IO, "delete %s: %s: %s", key, path, strerror(errno));
    /* Empty directories are not keys; drop them so a store gc'ed to nothing is clean. */
    const file_store *f = s->impl;
    size_t rootlen = strlen(f->root);
    for (char *slash = strrchr(path, '/'); slash && (size_t)(slash - path) > rootlen; slash = strrchr(path, '/')) {
        *slash = 0;
        if (rmdir(path)) break;
    }
    return XFFL_OK;
}

/* Depth-first walk of dir (relative name rel) collecting regular files whose key starts
 * with prefix; skip subtrees that cannot match. */
static XFFL_MUST_USE xffl_status walk(const store *s, const char *dir, const char *rel, const char *prefix, int partial,
                        store_listing *out, size_t *cap)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) return XFFL_OK;
        return xffl_fail(XFFL_ERR_IO, "list %s: opendir %s: %s", s->url, dir, strerror(errno));
    }
    xffl_status st = XFFL_OK;
    struct dirent *e;
    size_t plen = strlen(prefix);
    while (st == XFFL_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char key[PATH_MAX], path[PATH_MAX];
        int n1 = snprintf(key, sizeof key, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        int n2 = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof key || (size_t)n2 >= sizeof path) continue;
        struct stat sb;
        if (lstat(path, &sb)) continue; /* vanished meanwhile */
        size_t klen = strlen(key);
        if (S_ISDIR(sb.st_mode)) {
            /* descend only if "key/" and the prefix agree on their common length */
            size_t m = klen < plen ? klen : plen;
            if (strncmp(key, prefix, m)) continue;
            if (klen < plen && prefix[klen] != '/') continue;
            st = walk(s, path, key, prefix, partial, out, cap);
        } else if (S_ISREG(sb.st_mode) && !strncmp(key, prefix, plen)) {
            int is_tmp = strstr(e->d_name, ".tmp.") != NULL;
            if (is_tmp == partial) st = store_listing_push(out, cap, key, (uint64_t)sb.st_size, (int64_t)sb.st_mtime);
        }
    }
    closedir(d);
    return st;
}

static XFFL_MUST_USE xffl_status f_list(store *s, const char *prefix, int partial, store_listing *out)
{
    const file_store *f = s->impl;
    size_t cap = 0;
    /* Start from the deepest directory the prefix names completely. */
    char rel[PATH_MAX], dir[PATH_MAX];
    snprintf(rel, sizeof rel, "%s", prefix);
    char *slash = strrchr(rel, '/');
    if (slash) *slash = 0;
    else rel[0] = 0;
    int n = snprintf(dir, sizeof dir, "%s%s%s", f->root, rel[0] ? "/" : "", rel);
    XFFL_RETURN_IF(n < 0 || (size_t)n >= sizeof dir, XFFL_ERR_USAGE, "%s: prefix too long", s->url);
    return walk(s, dir, rel, prefix, partial, out, &cap);
}

/* The lock is a file beside the keys whose name holds ".tmp.": listings skip it and gc
 * removes it once old, like a killed writer's leftovers. */
static XFFL_MUST_USE xffl_status f_put_unless(store *s, const char *key, const void *data, size_t len,
                                              const char *unless_prefix)
{
    char path[PATH_MAX], lock[PATH_MAX + 32];
    XFFL_FORWARD(key_path(s, key, path, sizeof path));
    XFFL_FORWARD(make_parent(path));
    char *slash = strrchr(path, '/');
    snprintf(lock, sizeof lock, "%.*s/put.tmp.lock", (int)(slash - path), path);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    XFFL_RETURN_IF(fd < 0, XFFL_ERR_IO, "put %s: lock %s: %s", key, lock, strerror(errno));
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR) {
    }
    store_listing l = {0};
    xffl_status st = f_list(s, unless_prefix, 0, &l);
    /* the same key again is a retry of this put, not another writer */
    for (size_t i = 0; i < l.count && st == XFFL_OK; i++)
        if (strcmp(l.items[i].key, key)) st = xffl_fail(XFFL_ERR_EXISTS, "put %s: %s exists already", key, l.items[i].key);
    if (st == XFFL_OK) st = f_put_mem(s, key, data, len);
    store_listing_free(&l);
    close(fd); /* releases the lock */
    return st;
}

static void f_close(store *s)
{
    file_store *f = s->impl;
    if (f) free(f->root);
    free(f);
    s->impl = NULL;
}

static const store_ops file_ops = {
    .scheme = "file",
    .put_mem = f_put_mem,
    .put_file = f_put_file,
    .get_mem = f_get_mem,
    .get_fd = f_get_fd,
    .head = f_head,
    .del = f_del,
    .list = f_list,
    .put_unless = f_put_unless,
    .close = f_close,
};

xffl_status store_file_open(store *s, const char *root)
{
    XFFL_RETURN_IF(!*root, XFFL_ERR_USAGE, "store %s: empty path", s->url);
    file_store *f = calloc(1, sizeof *f);
    XFFL_RETURN_IF(!f, XFFL_ERR_NOMEM, "opening %s", s->url);
    f->root = strdup(root);
    s->endpoint = strdup(root);
    if (!f->root || !s->endpoint) {
        free(f->root);
        free(f);
        return xffl_fail(XFFL_ERR_NOMEM, "opening %s", s->url);
    }
    size_t n = strlen(f->root);
    while (n > 1 && f->root[n - 1] == '/') f->root[--n] = 0;
    struct stat st;
    if (stat(f->root, &st) == 0 && !S_ISDIR(st.st_mode)) {
        free(f->root);
        free(f);
        return xffl_fail(XFFL_ERR_USAGE, "store %s: %s is a file, not a directory", s->url, root);
    }
    s->impl = f;
    s->ops = &file_ops;
    return XFFL_OK;
}
