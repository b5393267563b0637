/* tests/it/test-hf.sh's view of what xffl computes: the logits of a store's latest
 * version on one sequence, through the CPU backend xffl trains and samples with.
 *   hf_logits STORE OUT.f32 ID...   writes float32 [T, vocab] (T = number of ids)
 * Exit 0 done, 1 failed (message on stderr). */
#include <stdio.h>
#include <stdlib.h>

#include "kernels/kern.h"
#include "pipelines/model.h"

static int fail(const char *what)
{
    fprintf(stderr, "hf_logits: %s: %s\n", what, xffl_errmsg());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: hf_logits STORE OUT.f32 ID...\n");
        return 2;
    }
    int T = argc - 3;
    store_options so;
    store_options_default(&so);
    store *s;
    ckpt_param_table *t;
    float *params;
    if (store_open(argv[1], &so, &s) != XFFL_OK) return fail("store");
    if (pipe_model_load(s, -1, &t, &params, NULL) != XFFL_OK) return fail("latest version");
    kern_options ko = {.backend = "cpu", .threads = 1, .batch = 1, .seq_len = T};
    kern_model *m;
    if (kern_model_create(&t->cfg, &ko, &m) != XFFL_OK || kern_set_params(m, params) != XFFL_OK) return fail("model");
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    for (int i = 0; i < T; i++) ids[i] = atoi(argv[3 + i]);
    float loss;
    if (kern_forward(m, ids, NULL, 1, T, &loss) != XFFL_OK) return fail("forward");
    int V = t->cfg.vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    FILE *out = fopen(argv[2], "wb");
    if (!out) return fail(argv[2]);
    for (int p = 0; p < T; p++) {
        if (kern_logits(m, 0, p, logits) != XFFL_OK) return fail("logits");
        fwrite(logits, sizeof *logits, (size_t)V, out);
    }
    fclose(out);
    kern_model_free(m);
    ckpt_param_table_free(t);
    free(params), free(ids), free(logits);
    store_close(s);
    return 0;
}
