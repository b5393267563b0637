/* xffl submit: a facility's (or the aggregator's) chain of Slurm jobs, one per round
 * (the job itself: pipelines/submit.c). */
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"
#include "pipelines/submit.h"

static const char *help =
    "usage: xffl submit --scheduler slurm --role train|aggregate --rounds N --store URL\n"
    "                   [--first-round R] [--facility NAME --data GLOB --state DIR]\n"
    "                   [--rounds-per-job K]\n"
    "                   [--partition P] [--account A] [--gpus-per-node N] [--nodes N]\n"
    "                   [--tasks-per-node N] [--time T]\n"
    "                   [--requeue-delay S] [--deadline S] [--log-dir DIR] [--after JOBID]\n"
    "                   [--env-hook FILE] [--credentials FILE] [--key FILE] [--keys DIR]\n"
    "                   [--sbatch-arg ARG]...\n"
    "                   [--templates DIR] [--dry-run] [-- STEP ARGS...]\n"
    "\n"
    "Submits a chain of N sbatch jobs, one per round R, R+1, ... (one per K rounds with\n"
    "--rounds-per-job K): `xffl train ... --round R`\n"
    "(role train: nodes x tasks per node, one rank per task through srun) or `xffl aggregate\n"
    "... --round R` (role aggregate, one CPU task). Each job depends on the one before it\n"
    "(afterok, with --kill-on-invalid-dep=yes). A job whose step exits 75 (base version or\n"
    "quorum not there yet) or 74 (store unreachable) requeues itself to start again\n"
    "--requeue-delay seconds later, until --deadline seconds after its first attempt; then\n"
    "it fails and the rest of its chain is cancelled. Submitting again later resumes: a\n"
    "round already done is a no-op job.\n"
    "\n"
    "  --scheduler slurm      the only scheduler so far (cron: pipelines/cron/)\n"
    "  --role train|aggregate which job to chain\n"
    "  --rounds N             jobs in the chain\n"
    "  --first-round R        round of the first job (default: LATEST + 1, read from the store)\n"
    "  --store URL            s3://bucket/prefix, file:///path or a plain path\n"
    "  --facility NAME        train: this facility's name in the federation\n"
    "  --data GLOB            train: this facility's token shards\n"
    "  --state DIR            train: the facility's local state directory; aggregate\n"
    "                         (optional): the aggregator's cache of the version it wrote\n"
    "                         (aggregate --state), on a file system every job's node sees\n"
    "  --rounds-per-job K     each job runs K rounds in one process (train --rounds K,\n"
    "                         aggregate --rounds K): N/K jobs, one queue wait for K rounds\n"
    "  --partition P          Slurm partition (default: the cluster's default)\n"
    "  --account A            Slurm account to charge\n"
    "  --gpus-per-node N      train: GPUs (and tasks) per node (default 0: one CPU task)\n"
    "  --nodes N              train: nodes of each job (default 1)\n"
    "  --tasks-per-node N     train: ranks per node (default: one per GPU; one without)\n"
    "  --time T               Slurm time limit of each job (e.g. 2:00:00)\n"
    "  --requeue-delay S      seconds between attempts of a job that is not ready (default 60)\n"
    "  --deadline S           a job fails this long after its first attempt (default 86400)\n"
    "  --log-dir DIR          job logs <DIR>/<job name>-<job id>.out (default ./xffl-logs)\n"
    "  --after JOBID          the first job also waits for JOBID (afterok)\n"
    "  --env-hook FILE        sourced at the start of each job (module load ...; default:\n"
    "                         env.sh beside the templates)\n"
    "  --credentials FILE     store credentials (KEY=VALUE lines, mode 600) read by each job\n"
    "  --key FILE             the private key each step signs with (mode 600, yours), passed\n"
    "                         to every step as --key (default: the step's own key directory)\n"
    "  --keys DIR             the key directory of every step (--keys)\n"
    "  --sbatch-arg ARG       one more sbatch option, verbatim (repeatable)\n"
    "  --templates DIR        train.sbatch, aggregate.sbatch and xffl-step (default:\n"
    "                         $XFFL_SLURM_DIR, else ../pipelines/slurm or\n"
    "                         ../share/xffl/slurm beside the xffl binary)\n"
    "  --dry-run              print the sbatch command lines, submit nothing\n"
    "  -- STEP ARGS           passed to every `xffl train` / `xffl aggregate` as they are\n"
    "\n"
    "stdout: one line per job, '<job id> <job name> round <R>' ('rounds <R>-<S>' for a job of\n"
    "several; with --json one object per job, with round and rounds).\n"
    "exit codes: 0 every job submitted, 1 sbatch failed (the jobs submitted before are\n"
    "listed and stay queued), 2 usage, 65 bad LATEST, 74 store unreachable.\n";

static int parse_args(int argc, char **argv, pipe_submit_options *o, store_options *so)
{
    const char *cmd = "submit", *scheduler = NULL;
    /* Empty strings refused (lo 1): they would become empty sbatch or step arguments. */
    const cli_opt opts[] = {{"--scheduler", CLI_STR, &scheduler, 1, 0, NULL},
                            {"--role", CLI_STR, &o->role, 1, 0, NULL},
                            {"--store", CLI_STR, &o->store_url, 1, 0, NULL},
                            {"--facility", CLI_STR, &o->facility, 1, 0, NULL},
                            {"--data", CLI_STR, &o->data, 1, 0, NULL},
                            {"--state", CLI_STR, &o->state, 1, 0, NULL},
                            {"--partition", CLI_STR, &o->partition, 1, 0, NULL},
                            {"--account", CLI_STR, &o->account, 1, 0, NULL},
                            {"--time", CLI_STR, &o->time_limit, 1, 0, NULL},
                            {"--log-dir", CLI_STR, &o->log_dir, 1, 0, NULL},
                            {"--after", CLI_STR, &o->after, 1, 0, NULL},
                            {"--env-hook", CLI_STR, &o->env_hook, 1, 0, NULL},
                            {"--credentials", CLI_STR, &o->credentials, 1, 0, NULL},
                            {"--key", CLI_STR, &o->key_file, 1, 0, NULL},
                            {"--keys", CLI_STR, &o->keys_dir, 1, 0, NULL},
                            {"--templates", CLI_STR, &o->templates, 1, 0, NULL},
                            {"--rounds", CLI_LONG, &o->rounds, 1, 10000, NULL},
                            {"--rounds-per-job", CLI_LONG, &o->rounds_per_job, 1, 10000, NULL},
                            {"--first-round", CLI_LONG, &o->first_round, 1, 999999, NULL},
                            {"--gpus-per-node", CLI_LONG, &o->gpus, 0, 64, NULL},
                            {"--nodes", CLI_LONG, &o->nodes, 1, 100000, NULL},
                            {"--tasks-per-node", CLI_LONG, &o->tasks_per_node, 1, 1024, NULL},
                            {"--requeue-delay", CLI_LONG, &o->delay, 0, 86400 * 7, NULL},
                            {"--deadline", CLI_LONG, &o->deadline, 0, 86400 * 365, NULL},
                            {"--dry-run", CLI_FLAG, &o->dry_run, 0, 0, NULL},
                            {"--sbatch-arg", CLI_LIST, o->sbatch_args, 0, PIPE_SUBMIT_MAX_EXTRA, &o->n_sbatch_args},
                            {0}};
    cli_args args = {.dashdash = 1};
    int rc = cli_parse(cmd, argc, argv, opts, so, &args);
    if (rc) return rc;
    o->step_args = argv + args.rest;
    o->n_step_args = argc - args.rest;
    if (o->n_step_args > PIPE_SUBMIT_MAX_EXTRA) return cli_usage_error(cmd, "too many step arguments (at most %d)", PIPE_SUBMIT_MAX_EXTRA);
    if (!scheduler) return cli_usage_error(cmd, "--scheduler slurm is required");
    if (strcmp(scheduler, "slurm"))
        return cli_usage_error(cmd, "unknown scheduler '%s' (slurm; for cron see pipelines/cron/)", scheduler);
    if (!o->role) return cli_usage_error(cmd, "--role train|aggregate is required");
    if (strcmp(o->role, "train") && strcmp(o->role, "aggregate"))
        return cli_usage_error(cmd, "--role must be train or aggregate, not '%s'", o->role);
    if (!o->rounds) return cli_usage_error(cmd, "--rounds N is required");
    if (!o->store_url) return cli_usage_error(cmd, "--store URL is required");
    int train = !strcmp(o->role, "train");
    if (train && (!o->facility || !o->data || !o->state))
        return cli_usage_error(cmd, "--role train needs --facility NAME, --data GLOB and --state DIR");
    if (!train && (o->facility || o->data || o->gpus || o->nodes || o->tasks_per_node))
        return cli_usage_error(cmd, "--facility, --data, --gpus-per-node, --nodes and --tasks-per-node are for "
                                    "--role train");
    if (train && strspn(o->facility, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
                     strlen(o->facility))
        return cli_usage_error(cmd, "--facility '%s': letters, digits, '_', '.', '-' only", o->facility);
    if (o->after && strspn(o->after, "0123456789") != strlen(o->after))
        return cli_usage_error(cmd, "--after needs a job id, not '%s'", o->after);
    return 0;
}

static void print_job(void *ctx, const pipe_submit_job *j)
{
    if (!j->job_id) {
        for (int i = 0; i < j->argc; i++) cli_put_shell_word(stdout, j->argv[i], i + 1 == j->argc ? "\n" : " ");
        return;
    }
    if (cli_json)
        printf("{\"job\": %s, \"name\": \"%s\", \"round\": %ld, \"rounds\": %ld, \"after\": %s}\n", j->job_id, j->name,
               j->round, j->rounds, j->after ? j->after : "null");
    else if (j->rounds > 1)
        printf("%s %s rounds %ld-%ld\n", j->job_id, j->name, j->round, j->round + j->rounds - 1);
    else
        printf("%s %s round %ld\n", j->job_id, j->name, j->round);
    fflush(stdout);
    fprintf(stderr, "xffl submit: job %s: %s round %ld%s%s\n", j->job_id, (const char *)ctx, j->round,
            j->after ? " after job " : "", j->after ? j->after : "");
}

int cmd_submit(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    pipe_submit_options o = {.delay = 60, .deadline = 86400, .log_dir = "xffl-logs"};
    store_options so;
    store_options_default(&so);
    int rc = parse_args(argc, argv, &o, &so);
    if (rc) return rc;
    store *s = NULL; /* read only for the default first round */
    if (!o.first_round && (rc = cli_open_store("submit", o.store_url, &so, &s))) return rc;
    pipe_submit_result r;
    xffl_status st = pipe_submit(s, &o, print_job, (void *)o.role, &r);
    store_close(s);
    if (st == XFFL_OK) return 0;
    if (!r.refused) return cli_report("submit", st);
    fprintf(stderr, "xffl submit: %s\n", xffl_errmsg());
    if (r.failed_round)
        fprintf(stderr, "xffl submit: round %ld not submitted; %ld of %ld jobs are queued%s%s\n", r.failed_round,
                r.submitted, r.jobs, r.submitted ? ", the last is job " : "", r.last_job);
    return xffl_exit_code(st);
}
