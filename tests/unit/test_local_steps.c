/* The local-step schedule (init --local-steps-schedule, federation.h5's
 * local_steps_schedule, issue 21): which H a round gets, where its steps sit on the
 * inner learning-rate schedule across rounds, its fedavg weight, and the round trip
 * through federation.h5 (absent: H every round, the bytes older xffl wrote). */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "libckpt/h5part.h"
#include "pipelines/federation.h"
#include "pipelines/train.h"
#include "tests/unit/unit.h"

static void test_round_steps(void)
{
    pipe_federation f;
    T_OK(pipe_federation_default("tiny", 0, &f));
    f.local_steps = 50;
    /* none: H every round, rounds before r x H */
    CU_ASSERT_EQUAL(f.n_step_phases, 0);
    CU_ASSERT_EQUAL(pipe_federation_round_steps(&f, 1), 50);
    CU_ASSERT_EQUAL(pipe_federation_round_steps(&f, 1000), 50);
    CU_ASSERT_EQUAL(pipe_federation_steps_before(&f, 1), 0);
    CU_ASSERT_EQUAL(pipe_federation_steps_before(&f, 21), 1000);
    /* 3 rounds of 10, 2 of 25, then 50 */
    T_OK(pipe_federation_parse_steps("10x3,25x2", &f));
    CU_ASSERT_EQUAL(f.n_step_phases, 2);
    const int want[] = {10, 10, 10, 25, 25, 50, 50, 50};
    int64_t before = 0;
    for (int r = 1; r <= 8; r++) {
        CU_ASSERT_EQUAL(pipe_federation_round_steps(&f, r), want[r - 1]);
        CU_ASSERT_EQUAL(pipe_federation_steps_before(&f, r), before);
        before += want[r - 1];
    }
    CU_ASSERT_EQUAL(pipe_federation_steps_before(&f, 101), 30 + 50 + 95 * 50);
    char txt[PIPE_STEP_SCHEDULE_MAX];
    pipe_federation_format_steps(&f, txt);
    CU_ASSERT_STRING_EQUAL(txt, "10x3,25x2");
    /* the fedavg weight follows the round's steps */
    int64_t tok;
    T_OK(pipe_federation_round_tokens(&f, 2, &tok));
    CU_ASSERT_EQUAL(tok, (int64_t)10 * f.batch * f.seq_len);
    T_OK(pipe_federation_round_tokens(&f, 6, &tok));
    CU_ASSERT_EQUAL(tok, (int64_t)50 * f.batch * f.seq_len);
    /* what is refused, and "none" clears it */
    const char *bad[] = {"10", "x3", "10x", "10x0", "0x3", "10x3,", ",10x3", "10x3;5x1", "-1x2", "10x3 ", "1x1,1x1,1x1,1x1,1x1,1x1,1x1,1x1,1x1",
                         "100000001x1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CU_ASSERT_EQUAL(pipe_federation_parse_steps(bad[i], &f), XFFL_ERR_USAGE);
    T_OK(pipe_federation_parse_steps("none", &f));
    CU_ASSERT_EQUAL(f.n_step_phases, 0);
    T_OK(pipe_federation_validate(&f));
    f.n_step_phases = 1, f.step_phases[0] = (pipe_step_phase){0, 3};
    CU_ASSERT_EQUAL(pipe_federation_validate(&f), XFFL_ERR_INVALID);
}

/* One inner schedule across rounds (--total-rounds) counts steps: with a schedule, round
 * r's step s sits at the steps of rounds 1..r-1 plus s, and the cosine ends with round R's
 * last step; the same learning rates as one run of that many steps. */
static void test_inner_schedule_counts_steps(void)
{
    pipe_federation f;
    T_OK(pipe_federation_default("tiny", 0, &f));
    f.local_steps = 50;
    f.inner.warmup = 10;
    f.inner.lr = 1e-3;
    f.inner.min_lr = 1e-4;
    f.inner.total_rounds = 28;
    T_OK(pipe_federation_parse_steps("10x10", &f)); /* 10 x 10 + 18 x 50 = 1000 steps */
    kern_adamw_config ac, one;
    int64_t step0;
    pipe_inner_schedule(&f, 1, &ac, &step0);
    CU_ASSERT_EQUAL(ac.total_steps, 1000);
    CU_ASSERT_EQUAL(step0, 0);
    pipe_inner_schedule(&f, 11, &ac, &step0);
    CU_ASSERT_EQUAL(step0, 100);
    pipe_inner_schedule(&f, 28, &ac, &step0);
    CU_ASSERT_EQUAL(step0, 950);
    CU_ASSERT(fabsf(kern_lr_at(&ac, (int)step0 + 49) - 1e-4f) < 1e-5f); /* the floor at the end of round 28 */
    /* the same horizon as 20 rounds of 50 without a schedule: equal tokens, equal lr */
    pipe_federation g = f;
    g.n_step_phases = 0;
    g.inner.total_rounds = 20;
    pipe_inner_schedule(&g, 1, &one, &step0);
    CU_ASSERT_EQUAL(one.total_steps, ac.total_steps);
    for (int s = 0; s < 1000; s += 37) CU_ASSERT_EQUAL(kern_lr_at(&ac, s), kern_lr_at(&one, s));
    /* restarting every round: over the round's own steps */
    f.inner.total_rounds = 0;
    pipe_inner_schedule(&f, 3, &ac, &step0);
    CU_ASSERT_EQUAL(step0, 0);
    CU_ASSERT_EQUAL(ac.total_steps, 10);
    pipe_inner_schedule(&f, 11, &ac, &step0);
    CU_ASSERT_EQUAL(ac.total_steps, 50);
}

static void test_round_trip(void)
{
    pipe_federation f, g;
    T_OK(pipe_federation_default("tiny", 0, &f));
    char *dir = NULL;
    T_OK(xffl_mkdtemp("xffl-steps", &dir));
    char path[4096];
    snprintf(path, sizeof path, "%s/federation.h5", dir);
    /* unset: no attribute (the bytes older xffl wrote), read back as none */
    T_OK(pipe_federation_write_file(&f, path));
    ckpt_h5_reader *r = NULL;
    T_OK(ckpt_h5_reader_open(path, NULL, &r));
    CU_ASSERT_FALSE(ckpt_h5_has_attr(r, "local_steps_schedule"));
    ckpt_h5_reader_close(r);
    g.n_step_phases = 3;
    T_OK(pipe_federation_read_file(path, &g));
    CU_ASSERT_EQUAL(g.n_step_phases, 0);
    /* set: the same phases back, and so the same H round by round */
    T_OK(pipe_federation_parse_steps("5x2,20x1,30x4", &f));
    T_OK(pipe_federation_write_file(&f, path));
    T_OK(ckpt_h5_reader_open(path, NULL, &r));
    char *txt = NULL;
    T_OK(ckpt_h5_get_attr_str(r, "local_steps_schedule", &txt));
    CU_ASSERT_STRING_EQUAL(txt, "5x2,20x1,30x4");
    free(txt);
    ckpt_h5_reader_close(r);
    T_OK(pipe_federation_read_file(path, &g));
    CU_ASSERT_EQUAL(g.n_step_phases, 3);
    for (int round = 1; round <= 10; round++)
        CU_ASSERT_EQUAL(pipe_federation_round_steps(&g, round), pipe_federation_round_steps(&f, round));
    xffl_rmtree_cleanup(dir);
    free(dir);
}

void suite_local_steps(void)
{
    CU_pSuite s = CU_add_suite("local_steps", NULL, NULL);
    CU_add_test(s, "local-step schedule: which H a round gets, its tokens, what is refused", test_round_steps);
    CU_add_test(s, "inner schedule across rounds counts steps under a local-step schedule",
                test_inner_schedule_counts_steps);
    CU_add_test(s, "local_steps_schedule: federation.h5 round trip, absent when unset", test_round_trip);
}
