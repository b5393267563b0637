/* What one round of pipe_train_rounds hands the next in the same process (train_job.h):
 * on every rank the backend's model (pipelines/loop.h, pipe_loop_keep), and on rank 0
 * the state below.
 *
 * A job of its own reads the facility's AdamW state and residual back from --state DIR
 * into fresh memory and hashes the AdamW state (its digest goes into the COMMIT): for
 * `base` 1 GB a round, about a fifth of what a round costs beyond its steps
 * (docs/federation.md "What a round costs beyond training"). The round before wrote
 * those files from buffers it still holds, so the next round of the same process takes
 * the buffers instead, when each file is still the one written: same device, inode,
 * size and modification time (every write of the state is a new file renamed into
 * place). Otherwise (a crashed job's staged state moved in, another process, a round
 * that failed after taking them) the round reads DIR as a job of its own does. The
 * bytes are the file's either way, so a round's bits never depend on it. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/log.h"
#include "common/util.h"
#include "pipelines/train_job.h"

typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id;

struct train_carry {
    pipe_loop_keep loop;     /* every rank: the backend's model */
    int64_t n;               /* floats of each slab */
    file_id inner_id, residual_id; /* of the files m, v and residual were written to (when not NULL) */
    int64_t step;            /* the AdamW state as inner.bin holds it: step, m, v */
    float *m, *v, *residual;
};

static int file_id_of(const char *path, file_id *id)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    *id = (file_id){sb.st_dev, sb.st_ino, sb.st_size, sb.st_mtim};
    return 1;
}

static int file_id_same(const file_id *a, const file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void drop_inner(train_carry *c)
{
    xffl_free_big(c->m);
    xffl_free_big(c->v);
    c->m = c->v = NULL;
}

static void drop_residual(train_carry *c)
{
    xffl_free_big(c->residual);
    c->residual = NULL;
}

train_carry *train_carry_create(void) { return calloc(1, sizeof(train_carry)); }

pipe_loop_keep *train_carry_loop(train_carry *c) { return c ? &c->loop : NULL; }

void train_carry_free(train_carry *c)
{
    if (!c) return;
    pipe_loop_keep_free(&c->loop);
    drop_inner(c);
    drop_residual(c);
    free(c);
}

void train_carry_keep(train_carry *c, const char *state_dir, int64_t n, inner_state *inner, float **residual)
{
    if (!c) return;
    drop_inner(c);
    drop_residual(c);
    c->n = n;
    char p[4200];
    snprintf(p, sizeof p, "%s/inner.bin", state_dir);
    if (inner && inner->m && inner->v && file_id_of(p, &c->inner_id)) {
        c->step = inner->step;
        c->m = inner->m;
        c->v = inner->v;
        inner->m = inner->v = NULL;
    }
    snprintf(p, sizeof p, "%s/residual.f32", state_dir);
    if (residual && *residual && file_id_of(p, &c->residual_id)) {
        c->residual = *residual;
        *residual = NULL;
    }
}

int train_carry_take_inner(train_carry *c, const char *path, int64_t n, inner_state *s)
{
    file_id now;
    if (!c || !c->m) return 0;
    if (c->n != n || !file_id_of(path, &now) || !file_id_same(&now, &c->inner_id)) {
        drop_inner(c);
        return 0;
    }
    /* the digest train_inner_load takes of the file: the same bytes, in its order */
    xffl_sha256_ctx *h = xffl_sha256_create();
    if (!h) {
        drop_inner(c);
        return 0; /* then read, as without the carry */
    }
    xffl_sha256_update(h, &c->step, 8);
    xffl_sha256_update(h, c->m, (size_t)n * 4);
    xffl_sha256_update(h, c->v, (size_t)n * 4);
    uint8_t d[XFFL_SHA256_LEN];
    xffl_sha256_final(h, d);
    xffl_sha256_free(h);
    train_inner_free(s);
    xffl_hex_encode(d, XFFL_SHA256_LEN, s->sha);
    s->step = c->step;
    s->m = c->m;
    s->v = c->v;
    s->present = 1;
    c->m = c->v = NULL;
    xffl_log(XFFL_LOG_DEBUG, "%s: the round before's AdamW state, in memory (the file is the one it wrote)", path);
    return 1;
}

int train_carry_take_floats(train_carry *c, const char *path, int64_t n, float **buf)
{
    file_id now;
    if (!c || !c->residual) return 0;
    if (c->n != n || !file_id_of(path, &now) || !file_id_same(&now, &c->residual_id)) {
        drop_residual(c);
        return 0;
    }
    free(*buf);
    *buf = c->residual;
    c->residual = NULL;
    xffl_log(XFFL_LOG_DEBUG, "%s: the round before's residual, in memory (the file is the one it wrote)", path);
    return 1;
}
