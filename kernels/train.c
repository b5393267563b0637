/* kern_eval, kern_sample (contract in train.h). */
#include "kernels/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


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
