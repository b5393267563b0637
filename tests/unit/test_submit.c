/* pipelines/submit.c: the chain's command lines in a dry run, and its refusals. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipelines/submit.h"

typedef struct {
    int n;
    long round[8];
    char after[8][32];
    char last_arg[8][64];
    int has_round_arg[8];
} seen_jobs;

static void on_job(void *ctx, const pipe_submit_job *j)
{
    seen_jobs *s = ctx;
    if (s->n >= 8) return;
    s->round[s->n] = j->round;
    snprintf(s->after[s->n], sizeof s->after[s->n], "%s", j->after ? j->after : "");
    snprintf(s->last_arg[s->n], sizeof s->last_arg[s->n], "%s", j->argv[j->argc - 1]);
    for (int i = 0; i + 1 < j->argc; i++)
        if (!strcmp(j->argv[i], "--round") && atol(j->argv[i + 1]) == j->round) s->has_round_arg[s->n] = 1;
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

void suite_submit(void)
{
    CU_pSuite s = CU_add_suite("submit", NULL, NULL);
    CU_add_test(s, "dry run: one command line per round, chained afterok", test_dry_run_chain);
    CU_add_test(s, "no templates, no LATEST: refused with the message that says so", test_refusals);
}
