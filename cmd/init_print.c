/* What `xffl init` prints on stdout, as text or (--json) one object: the plan of a
 * --dry-run (the model, its parameter count and version 0's parts), or the version it
 * wrote. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"
#include "pipelines/init.h"

/* 6738415616 -> "6,738,415,616" */
static void group_digits(int64_t v, char *out, size_t cap)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%" PRId64, v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0) out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = 0;
}

void cli_print_init_plan(const struct pipe_init_result *r)
{
    const pipe_federation *f = &r->f;
    const ckpt_param_table *t = r->t;
    const pipe_part_plan *plan = &r->plan;
    char n[40], ne[40];
    group_digits(t->total, n, sizeof n);
    group_digits(ckpt_param_count_nonembedding(t), ne, sizeof ne);
    const ckpt_model_config *c = &f->model;
    if (cli_json) {
        printf("{\"model\":\"%s\",\"dim\":%d,\"n_layers\":%d,\"n_heads\":%d,\"n_kv_heads\":%d,\"hidden_dim\":%d,"
               "\"vocab_size\":%d,\"max_seq_len\":%d,\"parameters\":%" PRId64 ",\"tensors\":%d,\"groups\":%d,"
               "\"part_size\":%" PRIu64 ",\"parts\":[",
               f->preset, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size, c->max_seq_len,
               t->total, t->count, r->n_groups, f->part_size);
        for (int p = 0; p < plan->n_parts; p++)
            printf("%s{\"part\":%d,\"first\":\"%s\",\"last\":\"%s\",\"tensors\":%d,\"bytes\":%" PRIu64 "}", p ? "," : "",
                   p, t->params[plan->first[p]].name, t->params[plan->first[p] + plan->count[p] - 1].name,
                   plan->count[p], plan->raw_bytes[p]);
        printf("]}\n");
        return;
    }
    printf("model %s: dim %d, %d layers, %d heads (%d kv), hidden %d, vocab %d, max_seq_len %d\n", f->preset, c->dim,
           c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size, c->max_seq_len);
    printf("parameters: %s (%s without the embedding table), %d tensors\n", n, ne, t->count);
    printf("groups per part:");
    for (int g = 0; g < r->n_groups; g++) printf(" /%s", r->groups[g]);
    printf("   (float32, chunked, shuffle + zstd level %d)\n", f->zstd_level);
    uint64_t total = 0;
    for (int p = 0; p < plan->n_parts; p++) total += plan->raw_bytes[p];
    printf("part plan: %d parts of at most %" PRIu64 " bytes (%" PRIu64 " bytes uncompressed in all)\n", plan->n_parts,
           f->part_size, total);
    for (int p = 0; p < plan->n_parts; p++)
        printf("  versions/v000000/part-%03d-<sha>.h5  %12" PRIu64 " bytes  %3d tensors  %s .. %s\n", p,
               plan->raw_bytes[p], plan->count[p], t->params[plan->first[p]].name,
               t->params[plan->first[p] + plan->count[p] - 1].name);
    printf("facilities: ");
    for (int i = 0; i < f->n_facilities; i++) printf("%s%s", i ? "," : "", f->facilities[i]);
    char k[48] = "";
    if (f->encoding_k) snprintf(k, sizeof k, ":%d", f->encoding_k);
    if (f->encoding_flush) snprintf(k + strlen(k), sizeof k - strlen(k), " (flush %d)", f->encoding_flush);
    char sched[PIPE_STEP_SCHEDULE_MAX + 8] = "";
    if (f->n_step_phases) {
        strcpy(sched, " after ");
        pipe_federation_format_steps(f, sched + strlen(sched));
    }
    printf("  algorithm %s  H %d%s  quorum %d  seed %" PRIu64 "  encoding %s%s%s\n", pipe_algo_name(f->algo.kind),
           f->local_steps, sched, f->quorum, f->seed, ckpt_codec_name(f->encoding), k,
           f->data_strided ? "  data order strided" : "");
}

void cli_print_init_result(const char *url, const struct pipe_init_result *r)
{
    const pipe_version_result *v = &r->version;
    if (cli_json)
        printf("{\"store\":\"%s\",\"version\":0,\"index\":\"%s\",\"index_sha256\":\"%s\",\"federation_sha256\":\"%s\","
               "\"parameters\":%" PRId64 ",\"parts\":%d,\"raw_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64
               ",\"seconds\":%.3f}\n",
               url, v->ref.index_key, v->ref.index_sha, r->federation_sha256, r->t->total, v->n_parts, v->raw_bytes,
               v->stored_bytes, r->seconds);
    else
        printf("%s: v000000 %s  %d parts, %" PRIu64 " bytes stored (%.2fx compression), %.1f s\n", url,
               v->ref.index_key, v->n_parts, v->stored_bytes,
               v->stored_bytes ? (double)v->raw_bytes / (double)v->stored_bytes : 0.0, r->seconds);
}
