/* pipelines/submit.c: the chain's command lines in a dry run, and its refusals. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipelines/submit.h"
#include "tests/unit/unit.h"

typedef struct {
    int n;
    long round[8];
    char after[8][32];
    char last_arg[8][64];
    int has_round_arg[8];
    long rounds[8]; /* the --rounds argument, 0 without */
} seen_jobs;

static void on_job(void *ctx, const pipe_submit_job *j)
{
    seen_jobs *s = ctx;
    if (s->n >= 8) return;
    s->round[s->n] = j->round;
    snprintf(s->after[s->n], sizeof s->after[s->n], "%s", j->after ? j->after : "");
    snprintf(s->last_arg[s->n], sizeof s->last_arg[s->n], "%s", j->argv[j->argc - 1]);
    for (int i = 0; i + 1 < j->argc; i++)
    {
        if (!strcmp(j->argv[i], "--round") && atol(j->argv[i + 1]) == j->round) s->has_round_arg[s->n] = 1;
        if (!strcmp(j->argv[i], "--rounds")) s->rounds[s->n] = atol(j->argv[i + 1]);
    }
    CU_ASSERT_PTR_NULL(j->job_id);
    CU_ASSERT_PTR_NULL(j->argv[j->argc]);
    s->n++;
}

static void test_dry_run_chain(void)
{
    char *step_args[] = {"--threads", "2"};
    pipe_submit_options o = {.role = "aggregate", .store_url = "file:///nowhere", .rounds = 3, .first_round = 4,
                             .delay = 60, .deadline = 86400, .log_dir = "xffl-logs", .after = "123",
                             .templates = "pipelines/slurm", .dry_run = 1, .step_args = step_args, .n_step_args = 2};
    seen_jobs s = {0};
    pipe_submit_result r;
    xffl_status st = pipe_submit(NULL, &o, on_job, &s, &r);
    CU_ASSERT_EQUAL_FATAL(st, XFFL_OK);
    CU_ASSERT_EQUAL(r.first_round, 4);
    CU_ASSERT_EQUAL(r.submitted, 0);
    CU_ASSERT_EQUAL_FATAL(s.n, 3);
    CU_ASSERT_EQUAL(s.round[0], 4);
    CU_ASSERT_EQUAL(s.round[2], 6);
    CU_ASSERT_STRING_EQUAL(s.after[0], "123");
    CU_ASSERT_STRING_EQUAL(s.after[1], "<job of round 4>");
    CU_ASSERT_STRING_EQUAL(s.after[2], "<job of round 5>");
    CU_ASSERT_STRING_EQUAL(s.last_arg[1], "2");
    CU_ASSERT(s.has_round_arg[0] && s.has_round_arg[1] && s.has_round_arg[2]);
}

static void test_refusals(void)
{
    pipe_submit_options o = {.role = "aggregate", .store_url = "file:///nowhere", .rounds = 1, .first_round = 1,
                             .log_dir = "xffl-logs", .templates = "/nonexistent/templates", .dry_run = 1};
    pipe_submit_result r;
    xffl_status st = pipe_submit(NULL, &o, NULL, NULL, &r);
    CU_ASSERT_EQUAL(st, XFFL_ERR_NOT_FOUND);
    CU_ASSERT(r.refused);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "give --templates DIR"));

    /* no --first-round and a store without LATEST: refused, naming the store */
    char dir[] = "/tmp/xffl-test-submit-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(store_open(dir, NULL, &s), XFFL_OK);
    o.templates = "pipelines/slurm";
    o.first_round = 0;
    o.store_url = dir;
    st = pipe_submit(s, &o, NULL, NULL, &r);
    CU_ASSERT_EQUAL(st, XFFL_ERR_NOT_FOUND);
    CU_ASSERT(r.refused);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "has no LATEST"));
    store_close(s);
    rmdir(dir);
}

/* Joins a job's sbatch options (up to the template) with spaces. */
static void on_job_line(void *ctx, const pipe_submit_job *j)
{
    char *line = ctx;
    line[0] = 0;
    for (int i = 0; i < j->argc && !strstr(j->argv[i], ".sbatch"); i++) {
        strncat(line, j->argv[i], 1023 - strlen(line));
        strncat(line, " ", 1023 - strlen(line));
    }
}

/* nodes x tasks per node reach sbatch; without them one task, as before. */
static void test_nodes_and_tasks(void)
{
    pipe_submit_options o = {.role = "train", .store_url = "file:///nowhere", .facility = "leo", .data = "d/*.bin",
                             .state = "st", .rounds = 1, .first_round = 2, .log_dir = "xffl-logs",
                             .templates = "pipelines/slurm", .dry_run = 1};
    char line[1024];
    pipe_submit_result r;
    T_OK(pipe_submit(NULL, &o, on_job_line, line, &r));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " --nodes=1 --ntasks=1 "));
    CU_ASSERT_PTR_NULL(strstr(line, "ntasks-per-node"));
    o.gpus = 4; /* one task per GPU */
    T_OK(pipe_submit(NULL, &o, on_job_line, line, &r));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " --nodes=1 --gpus-per-node=4 --ntasks-per-node=4 "));
    o.nodes = 2;
    T_OK(pipe_submit(NULL, &o, on_job_line, line, &r));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " --nodes=2 --gpus-per-node=4 --ntasks-per-node=4 "));
    o.gpus = 0; /* cpu ranks */
    o.tasks_per_node = 2;
    T_OK(pipe_submit(NULL, &o, on_job_line, line, &r));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " --nodes=2 --ntasks-per-node=2 "));
    CU_ASSERT_PTR_NULL(strstr(line, "--ntasks=1"));
    CU_ASSERT_PTR_NULL(strstr(line, "gpus"));
}

/* Joins a job's whole command line (template and step arguments too) with spaces. */
static void on_job_all(void *ctx, const pipe_submit_job *j)
{
    char *line = ctx;
    line[0] = 0;
    for (int i = 0; i < j->argc; i++) {
        strncat(line, j->argv[i], 4095 - strlen(line));
        strncat(line, " ", 4095 - strlen(line));
    }
}

/* --rounds-per-job K, either role: train, 7 rounds from 4 in threes, jobs for 4-6, 7-9
 * and 10; aggregate, 3 rounds from 1 in twos, jobs for 1-2 and 3. Each job
 * `--round R --rounds K` (no --rounds for a one-round job), each after the one before. */
static void test_rounds_per_job(void)
{
    const struct {
        const char *role;
        long rounds, per, first;
        int jobs;
        long round[3], count[3]; /* count 0: no --rounds */
    } cases[] = {{"train", 7, 3, 4, 3, {4, 7, 10}, {3, 3, 0}}, {"aggregate", 3, 2, 1, 2, {1, 3}, {2, 0}}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const int train = !strcmp(cases[c].role, "train");
        pipe_submit_options o = {.role = cases[c].role, .store_url = "file:///nowhere",
                                 .facility = train ? "leo" : NULL, .data = train ? "d/*.bin" : NULL,
                                 .state = train ? "st" : NULL, .rounds = cases[c].rounds,
                                 .rounds_per_job = cases[c].per, .first_round = cases[c].first,
                                 .log_dir = "xffl-logs", .templates = "pipelines/slurm", .dry_run = 1};
        seen_jobs s = {0};
        pipe_submit_result r;
        T_OK(pipe_submit(NULL, &o, on_job, &s, &r));
        CU_ASSERT_EQUAL_FATAL(s.n, cases[c].jobs);
        CU_ASSERT_EQUAL(r.jobs, cases[c].jobs);
        for (int k = 0; k < s.n; k++) {
            CU_ASSERT_EQUAL(s.round[k], cases[c].round[k]);
            CU_ASSERT_EQUAL(s.rounds[k], cases[c].count[k]);
            CU_ASSERT(s.has_round_arg[k]);
            char after[64];
            snprintf(after, sizeof after, "<job of round %ld>", k ? cases[c].round[k - 1] : 0);
            if (k) CU_ASSERT_STRING_EQUAL(s.after[k], after);
        }
    }
}

/* --key and --keys reach every step as absolute paths; a key others can read is refused. */
static void test_key(void)
{
    char dir[] = "/tmp/xffl-test-submit-XXXXXX", key[64], want[4200];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(key, sizeof key, "%s/leo.key", dir);
    FILE *fp = fopen(key, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("not read by submit\n", fp);
    fclose(fp);
    CU_ASSERT_EQUAL_FATAL(chmod(key, 0600), 0);
    pipe_submit_options o = {.role = "train", .store_url = "file:///nowhere", .facility = "leo", .data = "d/*.bin",
                             .state = "st", .rounds = 2, .first_round = 2, .log_dir = "xffl-logs",
                             .templates = "pipelines/slurm", .dry_run = 1, .key_file = key, .keys_dir = dir};
    char line[4096];
    pipe_submit_result r;
    T_OK(pipe_submit(NULL, &o, on_job_all, line, &r));
    snprintf(want, sizeof want, " --round 3 --key %s --keys %s ", key, dir);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, want));
    o.role = "aggregate", o.facility = o.data = o.state = NULL, o.keys_dir = NULL;
    T_OK(pipe_submit(NULL, &o, on_job_all, line, &r));
    snprintf(want, sizeof want, " --round 3 --key %s ", key);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, want));
    CU_ASSERT_PTR_NULL(strstr(line, "--keys"));
    CU_ASSERT_PTR_NULL(strstr(line, "--state"));
    o.state = "agg-cache"; /* the aggregator's cache, when given */
    T_OK(pipe_submit(NULL, &o, on_job_all, line, &r));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "aggregate.sbatch --store file:///nowhere --state agg-cache --round 3 "));
    o.state = NULL;
    o.key_file = NULL; /* not given: nothing added, the step finds its own */
    T_OK(pipe_submit(NULL, &o, on_job_all, line, &r));
    CU_ASSERT_PTR_NULL(strstr(line, "--key"));
    CU_ASSERT_EQUAL_FATAL(chmod(key, 0644), 0);
    o.key_file = key;
    CU_ASSERT_EQUAL(pipe_submit(NULL, &o, on_job_all, line, &r), XFFL_ERR_AUTH);
    CU_ASSERT(r.refused);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "private key file"));
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), key));
    unlink(key);
    rmdir(dir);
}

void suite_submit(void)
{
    CU_pSuite s = CU_add_suite("submit", NULL, NULL);
    CU_add_test(s, "dry run: one command line per round, chained afterok", test_dry_run_chain);
    CU_add_test(s, "no templates, no LATEST: refused with the message that says so", test_refusals);
    CU_add_test(s, "dry run: nodes x tasks per node, one task by default", test_nodes_and_tasks);
    CU_add_test(s, "--rounds-per-job (train, aggregate): one job per K rounds, the last with the rest",
                test_rounds_per_job);
    CU_add_test(s, "--key and --keys reach every step; a readable key refused", test_key);
}
