/* The MD5s of a batch of files, on one thread of their own while the files go up.
 *
 * Why a thread of its own: an S3 PUT's ETag is the MD5 of what the server stored, and
 * comparing it with the MD5 of the file is what catches a body altered on its way up
 * (store_s3.c, store_s3v4.c). Hashed inside each transfer's read callback, a batch had
 * --jobs threads of MD5 (~0.85 GB/s each) competing for the cores with everything else
 * the transfers need. One thread hashes four files at once (md5x4.c), at a lower
 * priority, and is done long before the uploads; the transfer threads only move bytes
 * (docs/storage.md "Benchmark" has the figures). The digest is of the file, read once
 * more from the page cache, not of the bytes handed to the transport: the property
 * wanted is "what is stored is the file", and a file that changes under an upload shows
 * as a mismatch either way. */
#include "storage/file_md5s.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include "common/digest.h"
#include "storage/md5x4.h"

#define CHUNK (1u << 20) /* bytes read at a time per file */

typedef struct {
    const char *path; /* NULL: not wanted */
    int done;         /* 1: hex or err is set */
    int err;          /* errno of a failed open or read */
    char hex[STORE_MD5_HEX];
} item;

struct file_md5s {
    item *items;
    size_t n;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int started; /* the thread runs */
    int ran;     /* without it: a caller of file_md5s_get ran the batch */
};

/* One file being hashed in a lane. */
typedef struct {
    size_t item; /* m->items index */
    int fd;      /* -1: the lane is free */
    uint8_t *buf;
    size_t len, pos; /* bytes in buf, bytes of them hashed */
    uint64_t total;  /* bytes read so far */
    int eof;
    md5_state st;
} lane;

static void publish(file_md5s *m, size_t i, int err, const char *hex)
{
    pthread_mutex_lock(&m->mu);
    if (hex) memcpy(m->items[i].hex, hex, STORE_MD5_HEX);
    m->items[i].err = err;
    m->items[i].done = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void lane_close(lane *l)
{
    if (l->fd >= 0) close(l->fd);
    l->fd = -1;
}

/* Tops up a lane holding less than a block: 0, or an errno. */
static int lane_fill(lane *l)
{
    memmove(l->buf, l->buf + l->pos, l->len - l->pos);
    l->len -= l->pos;
    l->pos = 0;
    while (!l->eof && l->len < CHUNK) {
        ssize_t got = read(l->fd, l->buf + l->len, CHUNK - l->len);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return errno;
        if (got == 0) l->eof = 1;
        l->len += (size_t)got;
        l->total += (uint64_t)got;
    }
    return 0;
}

/* Up to four files at a time, one per lane of md5x4_blocks; a lane whose file ends takes
 * the next one. A lane without a file repeats lane 0's input into a scratch state. */
static void *run(void *v)
{
    file_md5s *m = v;
    lane ln[4];
    for (int j = 0; j < 4; j++) {
        ln[j] = (lane){.fd = -1, .buf = malloc(CHUNK)};
        if (!ln[j].buf) { /* hash nothing: each wait reports it */
            for (int k = 0; k < j; k++) free(ln[k].buf);
            for (size_t i = 0; i < m->n; i++)
                if (m->items[i].path) publish(m, i, ENOMEM, NULL);
            return NULL;
        }
    }
    size_t next = 0;
    while (!__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
        int active = 0;
        for (int j = 0; j < 4; j++) {
            lane *l = &ln[j];
            while (l->fd < 0 && next < m->n) { /* a free lane takes the next file */
                size_t i = next++;
                if (!m->items[i].path) continue;
                int fd = open(m->items[i].path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                    publish(m, i, errno, NULL);
                    continue;
                }
                *l = (lane){.item = i, .fd = fd, .buf = l->buf};
                md5_init(&l->st);
            }
            if (l->fd < 0) continue;
            int err = l->len - l->pos < MD5_BLOCK ? lane_fill(l) : 0;
            if (err || (l->eof && l->len - l->pos < MD5_BLOCK)) {
                char hex[STORE_MD5_HEX] = "";
                uint8_t md[16];
                if (!err) {
                    md5_finish(&l->st, l->buf + l->pos, l->len - l->pos, l->total, md);
                    xffl_hex_encode(md, sizeof md, hex);
                }
                publish(m, l->item, err, err ? NULL : hex);
                lane_close(l);
                j--; /* the lane is free again: take the next file now */
                continue;
            }
            active++;
        }
        if (!active) break;
        size_t nb = SIZE_MAX;
        int first = -1;
        for (int j = 0; j < 4; j++)
            if (ln[j].fd >= 0) {
                size_t b = (ln[j].len - ln[j].pos) / MD5_BLOCK;
                if (b < nb) nb = b;
                if (first < 0) first = j;
            }
        md5_state scratch;
        md5_state *st[4];
        const uint8_t *p[4];
        for (int j = 0; j < 4; j++) {
            const lane *l = ln[j].fd >= 0 ? &ln[j] : &ln[first];
            st[j] = ln[j].fd >= 0 ? &ln[j].st : &scratch;
            p[j] = l->buf + l->pos;
        }
        md5x4_blocks(st, p, nb);
        for (int j = 0; j < 4; j++)
            if (ln[j].fd >= 0) ln[j].pos += nb * MD5_BLOCK;
    }
    for (int j = 0; j < 4; j++) {
        lane_close(&ln[j]);
        free(ln[j].buf);
    }
    return NULL;
}

static void *thread_main(void *v)
{
    /* The MD5s are wanted only when each upload is done, and a batch hashes in a small
     * part of its upload's time: 10 nice levels down, the hashing takes a core when the
     * transfers (and TLS, and on a shared node the server) leave one free. Best effort:
     * Linux gives each thread its own nice value. */
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, 0);
    if (errno == 0) (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice_now + 10 > 19 ? 19 : nice_now + 10);
    return run(v);
}

xffl_status file_md5s_start(const char *const *paths, size_t n, file_md5s **out)
{
    *out = NULL;
    file_md5s *m = calloc(1, sizeof *m);
    XFFL_RETURN_IF(!m, XFFL_ERR_NOMEM, "md5 of %zu files", n);
    m->items = calloc(n ? n : 1, sizeof *m->items);
    if (!m->items) {
        free(m);
        return xffl_fail(XFFL_ERR_NOMEM, "md5 of %zu files", n);
    }
    m->n = n;
    for (size_t i = 0; i < n; i++) m->items[i].path = paths[i];
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->started = !pthread_create(&m->th, NULL, thread_main, m);
    *out = m;
    return XFFL_OK;
}

xffl_status file_md5s_get(file_md5s *m, size_t i, char hex[STORE_MD5_HEX])
{
    XFFL_RETURN_IF(i >= m->n || !m->items[i].path, XFFL_ERR_INTERNAL, "md5 of file %zu: not asked for", i);
    item *it = &m->items[i];
    if (!m->started) { /* no thread could start: the first caller hashes the batch */
        pthread_mutex_lock(&m->mu);
        int mine = !m->ran;
        m->ran = 1;
        pthread_mutex_unlock(&m->mu);
        if (mine) run(m);
    }
    pthread_mutex_lock(&m->mu);
    while (!it->done) pthread_cond_wait(&m->cv, &m->mu);
    int err = it->err;
    memcpy(hex, it->hex, STORE_MD5_HEX);
    pthread_mutex_unlock(&m->mu);
    XFFL_RETURN_IF(err == ENOMEM, XFFL_ERR_NOMEM, "md5 of %s", it->path);
    XFFL_RETURN_IF(err, XFFL_ERR_IO, "md5 of %s: %s", it->path, strerror(err));
    return XFFL_OK;
}

void file_md5s_free(file_md5s *m)
{
    if (!m) return;
    if (m->started) {
        __atomic_store_n(&m->stop, 1, __ATOMIC_RELAXED);
        pthread_join(m->th, NULL);
    }
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m->items);
    free(m);
}
