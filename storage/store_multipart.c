/* Multipart uploads, driven from here so that every step is one backend attempt inside
 * store.c's retry loop (store_impl.h says why): begin, the parts on up to opt.jobs
 * threads (each part retried on its own), complete. A failure that is final aborts the
 * upload, so nothing half-written stays behind on the server (S3 never shows an
 * unfinished multipart upload as an object). */
#include "storage/store_impl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"

typedef struct {
    store *s;
    const char *key, *path, *upload_id;
    uint64_t size, part_size;
    int nparts, next;
    char **etags;
    pthread_mutex_t mu;
    xffl_status st;
    char msg[XFFL_ERRMSG_MAX];
} mpu;

struct part_arg {
    mpu *m;
    int n; /* from 1 */
};

static XFFL_MUST_USE xffl_status a_part(store *s, void *v)
{
    struct part_arg *a = v;
    mpu *m = a->m;
    uint64_t off = (uint64_t)(a->n - 1) * m->part_size;
    uint64_t len = m->size - off < m->part_size ? m->size - off : m->part_size;
    return s->ops->mpu_part(s, m->key, m->upload_id, a->n, m->path, off, len, m->etags[a->n - 1], 128);
}

static void *part_worker(void *v)
{
    mpu *m = v;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        int n = m->st == XFFL_OK && m->next < m->nparts ? ++m->next : 0;
        pthread_mutex_unlock(&m->mu);
        if (!n) break;
        char what[40];
        snprintf(what, sizeof what, "put part %d/%d of", n, m->nparts);
        struct part_arg a = {m, n};
        xffl_status st = store_with_retries(m->s, what, m->key, a_part, &a);
        if (st != XFFL_OK) {
            pthread_mutex_lock(&m->mu);
            if (m->st == XFFL_OK) {
                m->st = st;
                snprintf(m->msg, sizeof m->msg, "%s", xffl_errmsg());
            }
            pthread_mutex_unlock(&m->mu);
        }
    }
    return NULL;
}

struct begin_arg {
    const char *key;
    char *id;
};

static XFFL_MUST_USE xffl_status a_begin(store *s, void *v)
{
    struct begin_arg *a = v;
    free(a->id);
    a->id = NULL;
    return s->ops->mpu_begin(s, a->key, &a->id);
}

static XFFL_MUST_USE xffl_status a_complete(store *s, void *v)
{
    mpu *m = v;
    return s->ops->mpu_complete(s, m->key, m->upload_id, m->etags, m->nparts, m->size);
}

static XFFL_MUST_USE xffl_status a_abort(store *s, void *v)
{
    mpu *m = v;
    return s->ops->mpu_abort(s, m->key, m->upload_id);
}

xffl_status store_put_file_multipart(store *s, const char *key, const char *path, uint64_t size, uint64_t part_size)
{
    uint64_t np = (size + part_size - 1) / part_size;
    XFFL_RETURN_IF(np > 10000 || np < 1, XFFL_ERR_INTERNAL, "put %s: %llu parts", key, (unsigned long long)np);
    struct begin_arg b = {key, NULL};
    XFFL_FORWARD(store_with_retries(s, "start multipart upload of", key, a_begin, &b));
    mpu m = {.s = s, .key = key, .path = path, .upload_id = b.id, .size = size, .part_size = part_size,
             .nparts = (int)np, .st = XFFL_OK};
    xffl_status st = XFFL_OK;
    m.etags = calloc((size_t)np, sizeof *m.etags);
    for (int i = 0; m.etags && i < m.nparts; i++)
        if (!(m.etags[i] = calloc(1, 128))) { st = xffl_fail(XFFL_ERR_NOMEM, "put %s", key); break; }
    if (!m.etags) st = xffl_fail(XFFL_ERR_NOMEM, "put %s", key);
    xffl_log(XFFL_LOG_DEBUG, "store %s: put %s: multipart upload of %llu bytes in %d parts of %llu", s->endpoint, key,
             (unsigned long long)size, m.nparts, (unsigned long long)part_size);
    if (st == XFFL_OK) {
        pthread_mutex_init(&m.mu, NULL);
        size_t nt = (size_t)s->opt.jobs < np ? (size_t)s->opt.jobs : (size_t)np;
        pthread_t th[64];
        if (nt > 64) nt = 64;
        size_t started = 0;
        for (; started < nt; started++)
            if (pthread_create(&th[started], NULL, part_worker, &m)) break;
        if (started == 0) part_worker(&m);
        for (size_t i = 0; i < started; i++) pthread_join(th[i], NULL);
        pthread_mutex_destroy(&m.mu);
        if (m.st != XFFL_OK) st = xffl_fail(m.st, "%s", m.msg);
    }
    if (st == XFFL_OK) st = store_with_retries(s, "complete multipart upload of", key, a_complete, &m);
    if (st != XFFL_OK) {
        /* keep the first failure's message; the abort is best effort (gc finds what stays) */
        char msg[XFFL_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", xffl_errmsg());
        /* s->opt is shared with the other transfers' threads: bounds of its own */
        xffl_status as = store_with_retries_bounded(s, "abort multipart upload of", key, a_abort, &m,
                                                    s->opt.retries < 3 ? s->opt.retries : 3,
                                                    s->opt.retry_deadline < 10 ? s->opt.retry_deadline : 10);
        if (as != XFFL_OK)
            xffl_log(XFFL_LOG_DEBUG, "store %s: put %s: aborting the multipart upload failed (%s); xffl gc removes it",
                     s->endpoint, key, xffl_errmsg());
        st = xffl_fail(st, "%s", msg);
    }
    for (int i = 0; m.etags && i < m.nparts; i++) free(m.etags[i]);
    free(m.etags);
    free(b.id);
    return st;
}
