/* kern_train, kern_eval, kern_sample (contract in train.h). */
#include "kernels/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

xffl_status kern_train(kern_model *m, const kern_train_options *o, float *losses, kern_train_result *r)
{
    memset(r, 0, sizeof *r);
    int B = o->batch, T = o->seq_len;
    if (o->steps < 0 || B < 1 || T < 1 || !o->next_batch)
        return xffl_fail(XFFL_ERR_USAGE, "train: steps %d, batch %d x %d, batch source %s", o->steps, B, T,
                         o->next_batch ? "set" : "missing");
    double every = o->progress_seconds > 0 ? o->progress_seconds : 2.0;
    double t0 = xffl_now(), last_report = t0, sum = 0;
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    xffl_status st = XFFL_OK;
    if (!in || !tg) {
        st = xffl_fail(XFFL_ERR_NOMEM, "train: batch buffers %d x %d", B, T);
        goto done;
    }
    for (int s = 0; s < o->steps; s++) {
        float loss = 0, gn = 0;
        XFFL_CHECK_GOTO(st, o->next_batch(o->batch_ctx, B, T, in, tg), done);
        XFFL_CHECK_GOTO(st, kern_zero_grad(m), done);
        XFFL_CHECK_GOTO(st, kern_forward(m, in, tg, B, T, &loss), done);
        if (!isfinite(loss)) {
            st = xffl_fail(XFFL_ERR_INVALID, "train: loss is %g at step %d", loss, s);
            goto done;
        }
        XFFL_CHECK_GOTO(st, kern_backward(m), done);
        st = kern_adamw_step(m, &o->adamw, s, &gn);
        if (st != XFFL_OK) {
            xffl_wrap(st, "train: step %d", s);
            goto done;
        }
        if (losses) losses[s] = loss;
        if (s == 0) r->loss_first = loss;
        r->loss_last = loss;
        r->grad_norm_last = gn;
        sum += loss;
        r->steps = s + 1;
        r->tokens += (int64_t)B * T;
        double now = xffl_now();
        if (s == 0 || s + 1 == o->steps || now - last_report >= every) {
            xffl_log(XFFL_LOG_INFO, "train: step %d/%d loss %.4f (%.0f tokens/s)", s + 1, o->steps, loss,
                     (double)r->tokens / (now - t0));
            last_report = now;
        }
    }
    r->loss_mean = r->steps ? (float)(sum / r->steps) : 0;
done:
    r->seconds = xffl_now() - t0;
    free(in);
    free(tg);
    return st;
}

xffl_status kern_eval(kern_model *m, int B, int T, int n_batches, kern_batch_fn next_batch, void *ctx,
                      double *mean_loss)
{
    *mean_loss = 0;
    if (n_batches < 1) return xffl_fail(XFFL_ERR_USAGE, "eval: %d batches", n_batches);
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    xffl_status st = XFFL_OK;
    if (!in || !tg) {
        st = xffl_fail(XFFL_ERR_NOMEM, "eval: batch buffers %d x %d", B, T);
        goto done;
    }
    double sum = 0;
    for (int i = 0; i < n_batches; i++) {
        float loss = 0;
        XFFL_CHECK_GOTO(st, next_batch(ctx, B, T, in, tg), done);
        XFFL_CHECK_GOTO(st, kern_forward(m, in, tg, B, T, &loss), done);
        sum += loss;
    }
    *mean_loss = sum / n_batches;
done:
    free(in);
    free(tg);
    return st;
}

static double uniform(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

xffl_status kern_sample(kern_model *m, int seq_len, const int32_t *prompt, int n_prompt, const kern_sample_options *o,
                        int32_t *out)
{
    if (n_prompt < 1) return xffl_fail(XFFL_ERR_USAGE, "sample: empty prompt");
    int V = kern_model_table(m)->cfg.vocab_size, total = n_prompt + o->tokens;
    int32_t *ctx = malloc((size_t)total * sizeof *ctx);
    float *logits = malloc((size_t)V * sizeof *logits);
    xffl_status st = XFFL_OK;
    if (!ctx || !logits) {
        st = xffl_fail(XFFL_ERR_NOMEM, "sample buffers");
        goto done;
    }
    memcpy(ctx, prompt, (size_t)n_prompt * sizeof *ctx);
    uint64_t rng = o->seed;
    for (int n = n_prompt; n < total; n++) {
        int start = n > seq_len ? n - seq_len : 0, T = n - start;
        XFFL_CHECK_GOTO(st, kern_forward(m, ctx + start, NULL, 1, T, NULL), done);
        XFFL_CHECK_GOTO(st, kern_logits(m, 0, T - 1, logits), done);
        int pick = 0;
        if (o->temperature <= 0) {
            for (int v = 1; v < V; v++)
                if (logits[v] > logits[pick]) pick = v;
        } else {
            double mx = logits[0], sum = 0;
            for (int v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
            for (int v = 0; v < V; v++) sum += exp((logits[v] - mx) / o->temperature);
            double u = uniform(&rng) * sum, c = 0;
            pick = V - 1;
            for (int v = 0; v < V; v++) {
                c += exp((logits[v] - mx) / o->temperature);
                if (u < c) {
                    pick = v;
                    break;
                }
            }
        }
        ctx[n] = pick;
        out[n - n_prompt] = pick;
    }
done:
    free(ctx);
    free(logits);
    return st;
}
