/* A facility's (or the aggregator's) chain of Slurm jobs, one per round (xffl submit).
 *
 * Builds one sbatch command line per round around pipelines/slurm/<role>.sbatch, runs
 * sbatch --parsable and chains each job on the previous one with afterok, so a round's
 * job starts only once this scheduler finished the round before. Across facilities
 * nothing is chained: the store is the only thing they share, and a job whose base
 * version or quorum is missing requeues itself (xffl-step) instead of failing. */
#ifndef XFFL_PIPE_SUBMIT_H
#define XFFL_PIPE_SUBMIT_H

#include "common/status.h"
#include "pipelines/round.h"
#include "storage/store.h"

enum { PIPE_SUBMIT_MAX_EXTRA = 32 }; /* sbatch options, step arguments */

/* What one chain is made of; the command has checked the combination (role, the train
 * role's facility, data and state, a numeric --after). */
typedef struct {
    const char *role; /* "train" or "aggregate" */
    const char *store_url, *facility, *data, *state, *partition, *account, *time_limit;
    const char *log_dir, *after, *env_hook, *credentials, *templates; /* NULL: not given */
    const char *key_file, *keys_dir; /* --key FILE (mode 600, the user's), --keys DIR: each
                                      * step gets them as absolute paths; NULL: not given */
    long rounds, first_round;        /* first_round 0: LATEST + 1, read from the store */
    long rounds_per_job;             /* train: rounds each job trains in one process (train
                                      * --rounds; 0 or 1: one), so rounds/K jobs, the last
                                      * with what is left */
    long gpus, delay, deadline;      /* --gpus-per-node, --requeue-delay, --deadline */
    long nodes;                      /* train: --nodes (0 or 1: one node) */
    long tasks_per_node;             /* train: ranks per node, one per GPU (0: the GPUs per
                                      * node, or one task without GPUs) */
    int dry_run;                     /* build the command lines, submit nothing */
    const char *sbatch_args[PIPE_SUBMIT_MAX_EXTRA]; /* more sbatch options, verbatim */
    int n_sbatch_args;
    char *const *step_args;          /* passed to every xffl train / aggregate */
    int n_step_args;
} pipe_submit_options;

/* One job of the chain, as submitted (or, in a dry run, as it would be). */
typedef struct {
    long round;         /* its first round */
    long rounds;        /* rounds it trains (1 but with rounds_per_job) */
    const char *name;   /* its Slurm job name: xffl-train-<facility>-r<R>, xffl-aggregate-r<R> */
    const char *job_id; /* NULL in a dry run */
    const char *after;  /* the job it waits for: an id, "<job of round R>" in a dry run, NULL */
    char *const *argv;  /* the sbatch command line */
    int argc;
} pipe_submit_job;
typedef void (*pipe_submit_job_fn)(void *ctx, const pipe_submit_job *job);

typedef struct {
    long first_round;  /* the chain's first round */
    long jobs;         /* jobs in the chain (rounds, or rounds / rounds_per_job rounded up) */
    long submitted;    /* jobs queued (they stay queued when a later one fails) */
    char last_job[32]; /* the id of the last one queued, "" when none */
    long failed_round; /* on failure: the round whose sbatch failed, 0 otherwise */
    int refused;       /* on failure: 1 when submit itself refused (templates, credentials,
                        * environment, sbatch): the message says it all; 0 for a store or
                        * file system failure */
} pipe_submit_result;

/* Submits the chain, calling on_job after each job is queued (each dry-run command
 * line). s is read only when o->first_round is 0 (LATEST + 1; NOT_FOUND when the store
 * has no LATEST) and may be NULL otherwise. Exports XFFL_BIN, XFFL_STEP, XFFL_LOG_DIR,
 * XFFL_REQUEUE_DELAY, XFFL_DEADLINE, XFFL_ENV_HOOK and XFFL_CREDENTIALS into this
 * process's environment, which every job inherits (sbatch --export=ALL). Refuses a
 * credentials file that is not the caller's own with mode 600 or stricter. */
XFFL_MUST_USE xffl_status pipe_submit(store *s, const pipe_submit_options *o, pipe_submit_job_fn on_job, void *ctx,
                                      pipe_submit_result *res);

#endif
