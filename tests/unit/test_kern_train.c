/* The training loop (pipe_loop_run, one rank), kern_eval and kern_sample on the tiny
 * model: a repeating text is learnt, the loss trace and progress log lines are
 * complete, greedy sampling then continues the text and is deterministic, seeded
 * sampling too. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/train.h"
#include "pipelines/loop.h"
#include "text/tokenizer.h"
#include "tests/unit/unit.h"

#pragma GCC diagnostic ignored "-Walloc-size-larger-than="

static const char text[] = "the cat sat on the mat. ";

typedef struct {
    int64_t pos;
} text_src;

static XFFL_MUST_USE xffl_status next_text(void *ctx, int B, int T, int32_t *in, int32_t *tg)
{
    text_src *s = ctx;
    int n = (int)strlen(text);
    for (int b = 0; b < B; b++, s->pos += 7)
        for (int t = 0; t < T; t++) {
            in[b * T + t] = (unsigned char)text[(s->pos + t) % n];
            tg[b * T + t] = (unsigned char)text[(s->pos + t + 1) % n];
        }
    return XFFL_OK;
}

/* The same stream by position: sequence i starts at byte 7 i. */
static XFFL_MUST_USE xffl_status seq_text(void *ctx, int64_t seq, int B, int T, int32_t *in, int32_t *tg)
{
    text_src s = {.pos = seq * 7};
    (void)ctx;
    return next_text(&s, B, T, in, tg);
}

/* Checks the progress lines the loop logged into f: "train: step S/steps ..." with S
 * rising by one from 1 (one per step at a tiny interval); returns how many. */
static int check_progress(FILE *f, int steps)
{
    char line[256];
    int n = 0;
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        int s = 0, of = 0;
        double tps = 0;
        const char *p = strstr(line, "train: step ");
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL(sscanf(p, "train: step %d/%d loss %*f (%lf tokens/s)", &s, &of, &tps), 3);
        CU_ASSERT_EQUAL(s, n + 1);
        CU_ASSERT_EQUAL(of, steps);
        CU_ASSERT(tps > 0);
        n++;
    }
    return n;
}

static void test_train_eval_sample(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_model_preset("tiny", 0, &cfg), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(ckpt_param_table_create(&cfg, &t), XFFL_OK);
    float *p = malloc((size_t)t->total * 4), *after = malloc((size_t)t->total * 4);
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 3, p + t->params[i].offset);
    enum { B = 4, T = 32, STEPS = 60 };
    pipe_loop_options o = {.model = &cfg, .backend = "cpu", .threads = 2, .steps = STEPS, .batch = B, .seq_len = T,
                           .next_batch = seq_text, .label = "train", .progress = XFFL_LOG_INFO, .progress_every = 1};
    kern_adamw_default(&o.adamw);
    o.adamw.lr = 3e-3f;
    o.adamw.min_lr = 3e-4f;
    o.adamw.total_steps = STEPS;
    float losses[STEPS];
    pipe_loop_result r;
    memcpy(after, p, (size_t)t->total * 4);
    FILE *logf = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(logf);
    xffl_log_config was = xffl_log_setup(&(xffl_log_config){.level = XFFL_LOG_INFO, .stream = logf});
    xffl_status ts = pipe_loop_run(NULL, &o, after, NULL, losses, &r);
    xffl_log_setup(&was);
    CU_ASSERT_EQUAL_FATAL(ts, XFFL_OK);
    kern_options ko = {.backend = "cpu", .threads = 2, .batch = B, .seq_len = T};
    kern_model *m = NULL;
    CU_ASSERT_EQUAL_FATAL(kern_model_create(&cfg, &ko, &m), XFFL_OK);
    T_OK(kern_set_params(m, after));
    CU_ASSERT_EQUAL(r.steps, STEPS);
    CU_ASSERT_EQUAL(r.tokens, (int64_t)STEPS * B * T);
    CU_ASSERT_EQUAL(check_progress(logf, STEPS), STEPS); /* a line every step at this interval */
    fclose(logf);
    CU_ASSERT_EQUAL(losses[STEPS - 1], r.loss_last);
    CU_ASSERT_EQUAL(losses[0], r.loss_first);
    CU_ASSERT(fabs(losses[0] - log(256.0)) < 0.2);
    printf(" [loss %.3f -> %.3f]", losses[0], losses[STEPS - 1]);
    CU_ASSERT(r.loss_last < 0.5);

    /* eval over the same source: its mean matches a forward by hand */
    double ev = 0;
    text_src e1 = {5}, e2 = {5};
    CU_ASSERT_EQUAL(kern_eval(m, B, T, 2, next_text, &e1, &ev), XFFL_OK);
    int32_t in[B * T], tg[B * T];
    float l1, l2;
    T_OK(next_text(&e2, B, T, in, tg));
    T_OK(kern_forward(m, in, tg, B, T, &l1));
    T_OK(next_text(&e2, B, T, in, tg));
    T_OK(kern_forward(m, in, tg, B, T, &l2));
    CU_ASSERT(fabs(ev - (l1 + l2) / 2) < 1e-6);

    /* greedy continues the learnt text, the same way twice */
    const char *prompt = "the cat sat on";
    int32_t pr[32], out1[16], out2[16];
    int np = (int)text_byte_encode(prompt, strlen(prompt), pr);
    kern_sample_options so = {.temperature = 0, .seed = 1, .tokens = 16};
    CU_ASSERT_EQUAL(kern_sample(m, T, pr, np, &so, out1), XFFL_OK);
    CU_ASSERT_EQUAL(kern_sample(m, T, pr, np, &so, out2), XFFL_OK);
    CU_ASSERT_EQUAL(memcmp(out1, out2, sizeof out1), 0);
    char s[17] = {0};
    text_byte_decode(out1, 16, s);
    printf(" [greedy: '%s']", s);
    CU_ASSERT_STRING_EQUAL(s, " the mat. the ca");
    /* seeded sampling: same seed same bytes */
    so.temperature = 1.0f;
    so.seed = 42;
    CU_ASSERT_EQUAL(kern_sample(m, T, pr, np, &so, out1), XFFL_OK);
    CU_ASSERT_EQUAL(kern_sample(m, T, pr, np, &so, out2), XFFL_OK);
    CU_ASSERT_EQUAL(memcmp(out1, out2, sizeof out1), 0);
    CU_ASSERT_EQUAL(kern_sample(m, T, pr, 0, &so, out1), XFFL_ERR_USAGE);

    /* the same training again from the same start: identical parameters */
    CU_ASSERT_EQUAL(pipe_loop_run(NULL, &o, p, NULL, NULL, &r), XFFL_OK);
    CU_ASSERT_EQUAL(memcmp(p, after, (size_t)t->total * 4), 0);
    kern_model_free(m);
    free(p), free(after);
    ckpt_param_table_free(t);
}

void suite_kern_train(void)
{
    CU_pSuite s = CU_add_suite("kern_train", NULL, NULL);
    CU_add_test(s, "training loop trace and progress, eval, greedy/seeded sampling, repeatable", test_train_eval_sample);
}
