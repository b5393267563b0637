/* Several rounds of a facility's training in one process (pipelines/train.h,
 * pipe_train_rounds): the job of each round, run back to back, with a wait for the
 * version between them. */
#include <stdio.h>
#include "common/log.h"
#include "common/util.h"
#include "pipelines/train.h"
#include "pipelines/train_job.h"
#include "pipelines/version.h"

/* Rank 0: until LATEST is version v or later (o->wait at most). */
static XFFL_MUST_USE xffl_status wait_version(store *s, const pipe_train_options *o, int64_t v)
{
    const double until = xffl_now() + pipe_train_wait(o);
    xffl_backoff pause;
    xffl_backoff_init(&pause, o->poll);
    for (int waited = 0;; waited = 1) {
        pipe_version_ref ref;
        xffl_status st = pipe_version_resolve(s, -1, &ref);
        if (st != XFFL_OK && st != XFFL_ERR_NOT_FOUND) return st;
        if (st == XFFL_OK && ref.version >= v) return XFFL_OK;
        XFFL_RETURN_IF(xffl_now() > until, XFFL_ERR_NOT_YET, "version %lld not published after %.0f s",
                       (long long)v, pipe_train_wait(o));
        if (!waited) xffl_log(XFFL_LOG_INFO, "%s: waiting for version %lld", o->facility, (long long)v);
        xffl_backoff_sleep(&pause);
    }
}

xffl_status pipe_train_rounds(store *s, const pipe_train_options *o, int n,
                              void (*on_round)(void *ctx, const pipe_train_result *r), void *ctx)
{
    xffl_comm *c = o->comm, *own = NULL;
    if (!c) {
        XFFL_FORWARD(comm_open("self", NULL, &own));
        c = own;
    }
    const int root = comm_rank(c) == 0;
    pipe_train_options one = *o;
    one.carry = n > 1 ? train_carry_create() : NULL; /* NULL: each round as a job of its own */
    /* the model-sized arrays a round frees (its job's and its replay's) serve the next round's */
    xffl_big_keep(n > 1);
    xffl_status st = XFFL_OK;
    for (int k = 0; k < n && st == XFFL_OK; k++) {
        pipe_train_result r;
        if ((st = pipe_train(s, &one, &r)) != XFFL_OK) break;
        if (root && on_round) on_round(ctx, &r);
        one.round = r.round + 1;
        if (k + 1 == n || o->ahead) continue; /* ahead: round r+1's job waits for the deltas itself */
        /* every rank waits with rank 0, which alone reads the store */
        int64_t wst = root ? wait_version(s, o, r.round) : XFFL_OK;
        if ((st = comm_broadcast(c, &wst, 1, COMM_I64, 0)) != XFFL_OK) break;
        if (wst != XFFL_OK)
            st = root ? (xffl_status)wst : xffl_fail((xffl_status)wst, "rank 0 stopped waiting for version %lld",
                                                      (long long)r.round);
    }
    train_carry_free(one.carry);
    xffl_big_keep(0);
    comm_close(own);
    return st;
}
