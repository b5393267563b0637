/* A whole federation on one machine (xffl simulate): every job is this binary run as its
 * own process, as a scheduler would run it, so a simulation exercises the same commands,
 * exit codes and store protocol as a real deployment.
 *
 * 'xffl init' when the store has no federation yet, then for each round up to the last
 * every facility's 'xffl train' concurrently, then 'xffl aggregate'. Rounds already done
 * are skipped, so running it again resumes. */
#ifndef XFFL_PIPE_SIMULATE_H
#define XFFL_PIPE_SIMULATE_H

#include "common/status.h"
#include "pipelines/round.h"
#include "storage/store.h"

typedef struct {
    const char *store_url;     /* passed to every job */
    const char *facilities;    /* init's --facilities: "a,b", or N for f1..fN */
    const char *data, *state;  /* each facility's --data and --state (NULL: none); {facility}
                                * stands for its name */
    const char *deadline;      /* aggregate's --deadline, as given */
    long rounds;               /* run until version `rounds` exists */
    long threads;              /* --threads of each train; 0: cores / facilities */
    char *const *init_args;    /* more flags for init */
    int n_init_args;
} pipe_simulate_options;

/* Called after each round's aggregate made version `round`, seconds after the round began. */
typedef void (*pipe_simulate_round_fn)(void *ctx, long round, double seconds);

typedef struct {
    long rounds_done; /* rounds this call ran */
    int failed;       /* 1: a job exited non-zero (logged with its exit code); nothing ran after */
} pipe_simulate_result;

/* Runs the federation in s (the store at o->store_url). A job that fails is a result
 * (res->failed), not a status: the status says why the simulation itself could not go on
 * (the federation or LATEST unreadable). */
XFFL_MUST_USE xffl_status pipe_simulate(store *s, const pipe_simulate_options *o, pipe_simulate_round_fn on_round,
                                        void *ctx, pipe_simulate_result *res);

#endif
