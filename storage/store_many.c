/* Parallel transfers: up to opt.jobs objects at once, one thread each. Every worker
 * goes through the same single-object calls (and so the same retries and checks); the
 * first failure stops the handing out of new items and its message, which lives in the
 * worker's thread-local buffer, is copied to the caller's thread. The MD5s a backend
 * compares ETags with are computed for the whole batch on one more thread
 * (file_md5s.c), not in each transfer. */
#include "storage/store_impl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    store *s;
    const store_transfer *items;
    size_t n, next;
    int get;
    file_md5s *md5s;        /* put: the files' MD5s when the backend compares ETags with them */
    const char **md5_paths; /* the files asked for there (NULL: not asked) */
    pthread_mutex_t mu;
    xffl_status st;
    char msg[XFFL_ERRMSG_MAX];
} pool;

static void *worker(void *v)
{
    pool *p = v;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = p->st == XFFL_OK ? p->next++ : p->n;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n) break;
        const store_transfer *t = &p->items[i];
        xffl_status st;
        if (!p->get) {
            store_known kn = {.sha256_hex = t->sha256_hex, .md5s = p->md5_paths && p->md5_paths[i] ? p->md5s : NULL,
                              .md5_index = i};
            st = store_put_file_known(p->s, t->key, t->path, &kn);
        }
        else if (t->sha256_hex) st = store_get_file_verified(p->s, t->key, t->sha256_hex, t->path);
        else st = store_get_file(p->s, t->key, t->path);
        if (st != XFFL_OK) {
            pthread_mutex_lock(&p->mu);
            if (p->st == XFFL_OK) {
                p->st = st;
                snprintf(p->msg, sizeof p->msg, "%s", xffl_errmsg());
            }
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static XFFL_MUST_USE xffl_status run_pool(store *s, const store_transfer *items, size_t n, int get)
{
    if (n == 0) return XFFL_OK;
    for (size_t i = 0; i < n; i++)
        XFFL_RETURN_IF(!items[i].key || !items[i].path, XFFL_ERR_USAGE, "transfer %zu: key and path are required", i);
    pool p = {.s = s, .items = items, .n = n, .get = get, .st = XFFL_OK};
    const char **md5_paths = NULL;
    if (!get && s->ops->put_wants_md5) {
        size_t want = 0;
        md5_paths = calloc(n, sizeof *md5_paths);
        XFFL_RETURN_IF(!md5_paths, XFFL_ERR_NOMEM, "md5 of %zu files", n);
        for (size_t i = 0; i < n; i++) {
            struct stat sb; /* one that cannot be stat'ed fails in its put */
            if (!stat(items[i].path, &sb) && s->ops->put_wants_md5(s, (uint64_t)sb.st_size, items[i].sha256_hex))
                md5_paths[i] = items[i].path, want++;
        }
        xffl_status st = want ? file_md5s_start(md5_paths, n, &p.md5s) : XFFL_OK;
        p.md5_paths = md5_paths;
        if (st != XFFL_OK) {
            free(md5_paths);
            return st;
        }
    }
    pthread_mutex_init(&p.mu, NULL);
    size_t nt = (size_t)s->opt.jobs < n ? (size_t)s->opt.jobs : n;
    if (nt < 1) nt = 1;
    pthread_t *th = calloc(nt, sizeof *th);
    if (!th) {
        pthread_mutex_destroy(&p.mu);
        file_md5s_free(p.md5s);
        free(md5_paths);
        return xffl_fail(XFFL_ERR_NOMEM, "starting %zu transfer threads", nt);
    }
    size_t started = 0;
    for (; started < nt; started++)
        if (pthread_create(&th[started], NULL, worker, &p)) break;
    if (started == 0) worker(&p); /* no thread could start: do the work here */
    for (size_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_destroy(&p.mu);
    file_md5s_free(p.md5s);
    free(md5_paths);
    if (p.st != XFFL_OK) return xffl_fail(p.st, "%s", p.msg);
    return XFFL_OK;
}

xffl_status store_put_many(store *s, const store_transfer *items, size_t n) { return run_pool(s, items, n, 0); }
xffl_status store_get_many(store *s, const store_transfer *items, size_t n) { return run_pool(s, items, n, 1); }
