/* tests/it/test-hf.sh's view of what xffl computes: the logits of a store's latest
 * version on one sequence, through the CPU backend xffl trains and samples with.
 *   hf_logits STORE OUT.f32 ID...   writes float32 [T, vocab] (T = number of ids)
 * Exit 0 done, 1 failed (message on stderr). */
#include <stdio.h>
#include <stdlib.h>

#include "kernels/kern.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"

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
    pipe_federation f;
    pipe_version_ref ref;
    ckpt_param_table *t;
    if (store_open(argv[1], &so, &s) != XFFL_OK) return fail("store");
    if (pipe_federation_load(s, NULL, &f, NULL) != XFFL_OK) return fail("federation.h5");
    if (pipe_version_resolve(s, -1, &ref) != XFFL_OK) return fail("LATEST");
    if (ckpt_param_table_create(&f.model, &t) != XFFL_OK) return fail("table");
    float *params = malloc((size_t)t->total * sizeof *params);
    const char *groups[] = {"model"};
    float *slabs[] = {params};
    if (pipe_version_fetch(s, &ref, t, 1, groups, slabs, NULL) != XFFL_OK) return fail("version");
    kern_options ko = {.backend = "cpu", .threads = 1, .batch = 1, .seq_len = T};
    kern_model *m;
    if (kern_model_create(&f.model, &ko, &m) != XFFL_OK || kern_set_params(m, params) != XFFL_OK) return fail("model");
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    for (int i = 0; i < T; i++) ids[i] = atoi(argv[3 + i]);
    float loss;
    if (kern_forward(m, ids, NULL, 1, T, &loss) != XFFL_OK) return fail("forward");
    int V = f.model.vocab_size;
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
