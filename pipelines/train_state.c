/* The facility's --state DIR moving on with a COMMIT (train_job.h): what it becomes is
 * written to DIR/next/ beside the upload, before the COMMIT, and renamed into place
 * after it; the next job finishes or discards a move a stopped job left half done. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "pipelines/round.h"
#include "pipelines/train_job.h"

/* the files that move, in DIR and DIR/next/; "round" (next/ only) marks next/ complete */
static const char *const moved[] = {"cursor", "inner.bin", "residual.f32"};
enum { N_MOVED = sizeof moved / sizeof moved[0] };

static void path_of(char *out, size_t cap, const char *dir, const char *sub, const char *name)
{
    snprintf(out, cap, "%s/%s%s%s", dir, sub ? sub : "", sub ? "/" : "", name);
}

XFFL_MUST_USE xffl_status train_inner_save(const char *path, int64_t n, const inner_state *s)
{
    const void *parts[3] = {&s->step, s->m, s->v};
    const size_t lens[3] = {8, (size_t)n * 4, (size_t)n * 4};
    return xffl_write_file_atomic_parts(path, parts, lens, 3);
}

xffl_status train_state_stage(void *ctx)
{
    const train_next_state *x = ctx;
    char p[4200];
    path_of(p, sizeof p, x->state_dir, NULL, TRAIN_STATE_NEXT);
    XFFL_FORWARD(xffl_rmtree(p)); /* a move an earlier job began and recovery discarded */
    XFFL_FORWARD(xffl_mkdirs(p));
    char line[96];
    path_of(p, sizeof p, x->state_dir, TRAIN_STATE_NEXT, "cursor");
    snprintf(line, sizeof line, "%s\n", x->cursor_end);
    XFFL_FORWARD(xffl_write_file_atomic(p, line, strlen(line)));
    if (x->inner) {
        path_of(p, sizeof p, x->state_dir, TRAIN_STATE_NEXT, "inner.bin");
        XFFL_FORWARD(train_inner_save(p, x->n, x->inner));
    }
    if (x->residual) {
        path_of(p, sizeof p, x->state_dir, TRAIN_STATE_NEXT, "residual.f32");
        XFFL_FORWARD(xffl_write_file_atomic(p, x->residual, (size_t)x->n * 4));
    }
    path_of(p, sizeof p, x->state_dir, TRAIN_STATE_NEXT, "round");
    snprintf(line, sizeof line, "round %lld attempt %d\n", (long long)x->round, x->attempt);
    return xffl_write_file_atomic(p, line, strlen(line)); /* last: next/ is complete */
}

/* Renames are atomic one by one and a moved file is absent from next/, so a move
 * stopped halfway is finished by running it again. */
xffl_status train_state_promote(const char *state_dir)
{
    char from[4200], to[4200];
    for (int i = 0; i < N_MOVED; i++) {
        path_of(from, sizeof from, state_dir, TRAIN_STATE_NEXT, moved[i]);
        path_of(to, sizeof to, state_dir, NULL, moved[i]);
        XFFL_RETURN_IF(rename(from, to) != 0 && errno != ENOENT, XFFL_ERR_IO, "moving %s to %s: %s", from, to,
                       strerror(errno));
    }
    XFFL_FORWARD(xffl_fsync_parent_dir(to));
    path_of(from, sizeof from, state_dir, NULL, TRAIN_STATE_NEXT);
    return xffl_rmtree(from);
}

xffl_status train_state_recover(store *s, const char *state_dir, const char *facility)
{
    char p[4200];
    path_of(p, sizeof p, state_dir, TRAIN_STATE_NEXT, "round");
    void *d = NULL;
    size_t len = 0;
    xffl_status st = xffl_read_file(p, &d, &len);
    path_of(p, sizeof p, state_dir, NULL, TRAIN_STATE_NEXT);
    if (st == XFFL_ERR_NOT_FOUND) return xffl_rmtree(p); /* none, or one stopped before it was complete */
    XFFL_FORWARD(st);
    long long round = 0;
    int attempt = 0;
    const int ok = sscanf(d, "round %lld attempt %d", &round, &attempt) == 2 && round > 0 && attempt > 0;
    free(d);
    XFFL_RETURN_IF(!ok, XFFL_ERR_CORRUPT, "%s/round: not 'round R attempt A'", p);
    pipe_round_listing l;
    XFFL_FORWARD(pipe_round_list(s, round, NULL, &l));
    int committed = 0;
    for (int i = 0; i < l.count; i++)
        if (!strcmp(l.items[i].facility, facility) && l.items[i].attempt == attempt && l.items[i].commit_key[0])
            committed = 1;
    pipe_round_listing_free(&l);
    if (!committed) {
        xffl_log(XFFL_LOG_INFO, "%s: round %lld a%d has no COMMIT: its staged state in %s is dropped", facility,
                 round, attempt, p);
        return xffl_rmtree(p);
    }
    xffl_log(XFFL_LOG_INFO, "%s: round %lld a%d was committed by a job stopped before its state moved on: "
             "moving it now (%s)", facility, round, attempt, p);
    return train_state_promote(state_dir);
}

xffl_status train_state_prune(const char *state_dir, int64_t round, int keep)
{
    DIR *d = opendir(state_dir);
    XFFL_RETURN_IF(!d, XFFL_ERR_IO, "opendir %s: %s", state_dir, strerror(errno));
    xffl_status st = XFFL_OK;
    const struct dirent *e;
    while (st == XFFL_OK && (e = readdir(d))) {
        long long r = 0;
        int end = 0;
        /* exactly r<digits>, as prepare names them: nothing else in DIR is touched */
        const int ours = isdigit((unsigned char)e->d_name[1]) && sscanf(e->d_name, "r%lld%n", &r, &end) == 1 &&
                         !e->d_name[end] && end >= 7;
        if (!ours || r > round - keep) continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", state_dir, e->d_name);
        st = xffl_rmtree(p);
    }
    closedir(d);
    return st;
}
