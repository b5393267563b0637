/* xffl init: create a federation (federation.h5, version 0, LATEST). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "cmd/cli_model.h"
#include "common/digest.h"
#include "common/util.h"
#include "kernels/export.h"
#include "libckpt/h5part.h"
#include "libckpt/model.h"
#include "libckpt/zstd_filter.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"

static void help(void)
{
    printf("usage: xffl init --store URL --model PRESET [options]\n"
           "\n"
           "Creates a federation in an empty store: federation.h5 (every setting that\n"
           "changes a round's result; train and aggregate read them from there), version 0\n"
           "(the initial weights from --seed or --from, split into parts) and LATEST. Refuses a store\n"
           "that already holds federation.h5. Same flags give byte-identical stores.\n"
           "\n"
           "model and federation:\n"
           "  --store URL             s3://bucket/prefix, file:///path or a plain path\n"
           "  --model PRESET          %s\n"
           "  --vocab N               vocabulary size (default: 256 byte-level for tiny/small/base)\n"
           "  --facilities a,b        facility names (default: local)\n"
           "  --algo A                fedavg (default), diloco, fedadam, median, trimmed\n"
           "  --local-steps H         optimizer steps per facility per round (100)\n"
           "  --quorum K              deltas needed per round (default: all facilities)\n"
           "  --seed S                initialisation seed (0)\n"
           "  --from URL|FILE.bin     version 0's weights from a version of another store\n"
           "                          (fine-tuning, or continuing a central pre-training run;\n"
           "                          every digest verified) or from a llama2.c checkpoint file\n"
           "                          (e.g. LLaMA-2 through llama2.c's export.py); the model must\n"
           "                          match --model/--vocab; version 0's INDEX names it (init_from)\n"
           "  --from-version V        which version of the --from store (latest)\n"
           "  --part-size N           uncompressed bytes per version part, K/M/G (1G)\n"
           "  --level L               zstd level of every part, not 0 (%d: entropy coding only,\n"
           "                          as small as level 1 for float weights at twice the speed)\n"
           "  --dry-run               print the layout, parameter count and part plan; write nothing\n"
           "algorithm (defaults depend on --algo):\n"
           "  --unweighted            plain mean of deltas instead of token-weighted (the XFFL paper)\n"
           "  --outer-lr X            outer learning rate (diloco 0.7, fedadam 0.01, others 1)\n"
           "  --outer-momentum X      diloco momentum (0.9)\n"
           "  --no-nesterov           diloco: heavy-ball instead of Nesterov momentum\n"
           "  --adam-beta1 X --adam-beta2 X --adam-eps X   fedadam (0.9, 0.99, 1e-8)\n"
           "  --trim-fraction X       trimmed: fraction cut from each end (0.1)\n"
           "  --clip-norm X           pseudo-gradient L2 norm bound, 0 = none (0)\n"
           "facility training:\n"
           "  --lr X --min-lr X       AdamW peak and cosine-floor learning rates (3e-4, 3e-5)\n"
           "  --warmup N              warm-up steps (10)\n"
           "  --total-rounds R        rounds the run is planned for: the learning-rate schedule\n"
           "                          (warm-up, then cosine to --min-lr) spans all R*H steps of a\n"
           "                          facility instead of restarting every round (0: restart, default)\n"
           "  --weight-decay X        (0.1)\n"
           "  --grad-clip X           gradient norm clip, 0 = none (1.0)\n"
           "  --beta1 X --beta2 X     AdamW betas (0.9, 0.95)\n"
           "  --batch B --seq-len T   sequences per step, tokens per sequence (4, min(256, max_seq_len))\n"
           "  --encoding E            delta encoding: fp32 (default), bf16, int8, int4\n"
           "  --keep-inner-state      keep AdamW state across rounds in the facility's --state DIR\n"
           "store I/O:\n" CLI_STORE_FLAGS_HELP
           "  --threads N             compression threads (default: all cores)\n"
           "\n"
           "Prints the version it wrote on stdout (--json: one object).\n"
           "exit codes: 0 done, 1 failed (store already a federation, I/O, --from missing),\n"
           "2 usage, 65 --from's model is another, fails a digest or is not a whole llama2.c file,\n"
           "74 store unreachable.\n",
           ckpt_model_preset_names(), CKPT_ZSTD_DEFAULT_LEVEL);
}

static void commas(int64_t v, char *out, size_t cap)
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

typedef struct {
    const ckpt_param_table *t;
    uint64_t seed;
    const float *from; /* --from's model slab, or NULL: initialise from seed */
} init_src;

static xffl_status init_tensor(void *ctx, int group, int index, float *out)
{
    init_src *src = ctx;
    const ckpt_param *p = &src->t->params[index];
    if (group == 0 && src->from)
        memcpy(out, src->from + p->offset, (size_t)p->numel * sizeof *out);
    else if (group == 0)
        ckpt_param_init(src->t, index, src->seed, out);
    else /* outer optimizer state starts at zero */
        memset(out, 0, (size_t)p->numel * sizeof *out);
    return XFFL_OK;
}

/* --from's model must be the one --model/--vocab describe: INVALID naming both. */
static xffl_status check_same_model(const char *from, const ckpt_model_config *a, const pipe_federation *f)
{
    const ckpt_model_config *b = &f->model;
    if (a->dim == b->dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads &&
        a->hidden_dim == b->hidden_dim && a->vocab_size == b->vocab_size && a->max_seq_len == b->max_seq_len &&
        a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta)
        return XFFL_OK;
    return xffl_fail(XFFL_ERR_INVALID,
                     "--from %s: its model (dim %d, %d layers, %d/%d heads, hidden %d, vocab %d, max_seq_len %d) "
                     "is not --model %s (dim %d, %d layers, %d/%d heads, hidden %d, vocab %d, max_seq_len %d)",
                     from, a->dim, a->n_layers, a->n_heads, a->n_kv_heads, a->hidden_dim, a->vocab_size,
                     a->max_seq_len, f->preset, b->dim, b->n_layers, b->n_heads, b->n_kv_heads, b->hidden_dim,
                     b->vocab_size, b->max_seq_len);
}

static void print_plan(const pipe_federation *f, const ckpt_param_table *t, int n_groups, const char *const *groups,
                       const pipe_part_plan *plan)
{
    char n[40], ne[40];
    commas(t->total, n, sizeof n);
    commas(ckpt_param_count_nonembedding(t), ne, sizeof ne);
    const ckpt_model_config *c = &f->model;
    if (cli_json) {
        printf("{\"model\":\"%s\",\"dim\":%d,\"n_layers\":%d,\"n_heads\":%d,\"n_kv_heads\":%d,\"hidden_dim\":%d,"
               "\"vocab_size\":%d,\"max_seq_len\":%d,\"parameters\":%" PRId64 ",\"tensors\":%d,\"groups\":%d,"
               "\"part_size\":%" PRIu64 ",\"parts\":[",
               f->preset, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size, c->max_seq_len,
               t->total, t->count, n_groups, f->part_size);
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
    for (int g = 0; g < n_groups; g++) printf(" /%s", groups[g]);
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
    printf("  algorithm %s  H %d  quorum %d  seed %" PRIu64 "  encoding %s\n", pipe_algo_name(f->algo.kind),
           f->local_steps, f->quorum, f->seed, pipe_encoding_name(f->encoding));
}

int cmd_init(int argc, char **argv)
{
    const char *C = "init";
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    store_options sopt;
    store_options_default(&sopt);
    const char *url = NULL, *preset = NULL, *facilities = NULL, *algo = NULL, *encoding = NULL;
    const char *from = NULL, *from_version = NULL;
    long vocab = 0, local_steps = -1, quorum = -1, warmup = -1, total_rounds = -1, batch = -1, seq_len = -1, threads = 0, level = 0;
    long seed = 0;
    uint64_t part_size = 0;
    int dry = 0, unweighted = 0, no_nesterov = 0, keep_inner = 0;
    /* Doubles are staged until --model and --algo have set the defaults; dset says which were given. */
    enum { OUTER_LR, MOMENTUM, ABETA1, ABETA2, AEPS, TRIM, CLIP, LR, MIN_LR, WD, GCLIP, BETA1, BETA2, NDBL };
    double dv[NDBL] = {0};
    int dset[NDBL] = {0};
    const cli_opt opts[] = {
        {"--store", CLI_STR, &url, 0, 0, NULL},
        {"--model", CLI_STR, &preset, 0, 0, NULL},
        {"--facilities", CLI_STR, &facilities, 0, 0, NULL},
        {"--algo", CLI_STR, &algo, 0, 0, NULL},
        {"--encoding", CLI_STR, &encoding, 0, 0, NULL},
        {"--from", CLI_STR, &from, 0, 0, NULL},
        {"--from-version", CLI_STR, &from_version, 0, 0, NULL},
        {"--vocab", CLI_LONG, &vocab, 1, 65536, NULL},
        {"--local-steps", CLI_LONG, &local_steps, 1, 100000000, NULL},
        {"--quorum", CLI_LONG, &quorum, 1, PIPE_MAX_FACILITIES, NULL},
        {"--seed", CLI_LONG, &seed, 0, INT64_MAX, NULL},
        {"--warmup", CLI_LONG, &warmup, 0, 100000000, NULL},
        {"--total-rounds", CLI_LONG, &total_rounds, 0, 100000000, NULL},
        {"--batch", CLI_LONG, &batch, 1, 1000000, NULL},
        {"--seq-len", CLI_LONG, &seq_len, 1, 1000000, NULL},
        {"--threads", CLI_LONG, &threads, 1, 1024, NULL},
        {"--level", CLI_LONG, &level, CKPT_ZSTD_MIN_LEVEL, CKPT_ZSTD_MAX_LEVEL, NULL},
        {"--part-size", CLI_SIZE, &part_size, 0, 0, NULL},
        {"--dry-run", CLI_FLAG, &dry, 0, 0, NULL},
        {"--unweighted", CLI_FLAG, &unweighted, 0, 0, NULL},
        {"--no-nesterov", CLI_FLAG, &no_nesterov, 0, 0, NULL},
        {"--keep-inner-state", CLI_FLAG, &keep_inner, 0, 0, NULL},
        {"--outer-lr", CLI_DOUBLE, &dv[OUTER_LR], 0, 0, &dset[OUTER_LR]},
        {"--outer-momentum", CLI_DOUBLE, &dv[MOMENTUM], 0, 0, &dset[MOMENTUM]},
        {"--adam-beta1", CLI_DOUBLE, &dv[ABETA1], 0, 0, &dset[ABETA1]},
        {"--adam-beta2", CLI_DOUBLE, &dv[ABETA2], 0, 0, &dset[ABETA2]},
        {"--adam-eps", CLI_DOUBLE, &dv[AEPS], 0, 0, &dset[AEPS]},
        {"--trim-fraction", CLI_DOUBLE, &dv[TRIM], 0, 0, &dset[TRIM]},
        {"--clip-norm", CLI_DOUBLE, &dv[CLIP], 0, 0, &dset[CLIP]},
        {"--lr", CLI_DOUBLE, &dv[LR], 0, 0, &dset[LR]},
        {"--min-lr", CLI_DOUBLE, &dv[MIN_LR], 0, 0, &dset[MIN_LR]},
        {"--weight-decay", CLI_DOUBLE, &dv[WD], 0, 0, &dset[WD]},
        {"--grad-clip", CLI_DOUBLE, &dv[GCLIP], 0, 0, &dset[GCLIP]},
        {"--beta1", CLI_DOUBLE, &dv[BETA1], 0, 0, &dset[BETA1]},
        {"--beta2", CLI_DOUBLE, &dv[BETA2], 0, 0, &dset[BETA2]},
        {0}};
    int rc = cli_parse(C, argc, argv, opts, &sopt, NULL);
    if (rc) return rc;
    if (!preset) return cli_usage_error(C, "--model PRESET is required (%s)", ckpt_model_preset_names());
    if (!url && !dry) return cli_usage_error(C, "--store URL is required (or --dry-run)");
    if (from_version && !from) return cli_usage_error(C, "--from-version needs --from URL");

    pipe_federation f;
    xffl_status st = pipe_federation_default(preset, (int)vocab, &f);
    if (st != XFFL_OK) return cli_report(C, st);
    if (facilities && (st = pipe_federation_set_facilities(&f, facilities)) != XFFL_OK) return cli_report(C, st);
    if (algo) {
        pipe_algo_kind kind;
        if ((st = pipe_algo_parse(algo, &kind)) != XFFL_OK) return cli_report(C, st);
        pipe_federation_set_algo(&f, kind);
    }
    if (encoding && (st = pipe_encoding_parse(encoding, &f.encoding)) != XFFL_OK) return cli_report(C, st);
    f.quorum = quorum > 0 ? (int)quorum : f.n_facilities;
    if (local_steps > 0) f.local_steps = (int)local_steps;
    f.seed = (uint64_t)seed;
    if (part_size) f.part_size = part_size;
    if (level) f.zstd_level = (int)level;
    if (warmup >= 0) f.inner.warmup = (int)warmup;
    if (total_rounds >= 0) f.inner.total_rounds = (int)total_rounds;
    if (batch > 0) f.batch = (int)batch;
    if (seq_len > 0) f.seq_len = (int)seq_len;
    f.algo.unweighted = unweighted;
    f.nesterov = !no_nesterov;
    f.keep_inner_state = keep_inner;
    double *targets[NDBL] = {&f.algo.outer_lr, &f.algo.momentum,  &f.algo.beta1,  &f.algo.beta2,      &f.algo.eps,
                             &f.algo.trim,     &f.algo.clip_norm, &f.inner.lr,    &f.inner.min_lr,    &f.inner.weight_decay,
                             &f.inner.grad_clip, &f.inner.beta1,  &f.inner.beta2};
    for (int k = 0; k < NDBL; k++)
        if (dset[k]) *targets[k] = dv[k];
    if (dset[LR] && !dset[MIN_LR] && f.inner.min_lr > f.inner.lr) f.inner.min_lr = f.inner.lr / 10;
    if ((st = pipe_federation_validate(&f)) != XFFL_OK) {
        fprintf(stderr, "xffl init: %s\n", xffl_errmsg());
        return 2;
    }

    ckpt_param_table *t = NULL, *from_t = NULL;
    float *from_slab = NULL;
    pipe_part_plan plan = {0};
    store *s = NULL;
    int n_groups = 1 + pipe_algo_state_count(f.algo.kind);
    const char *groups[PIPE_MAX_GROUPS] = {"model"};
    for (int g = 1; g < n_groups; g++) groups[g] = pipe_algo_state_group(f.algo.kind, g - 1);
    XFFL_CHECK_GOTO(st, ckpt_param_table_create(&f.model, &t), out);
    XFFL_CHECK_GOTO(st, pipe_version_plan(t, n_groups, f.part_size, &plan), out);
    if (dry) {
        print_plan(&f, t, n_groups, groups, &plan);
        goto out;
    }
    char from_line[PIPE_KEY_MAX + 1024] = "";
    struct stat from_st;
    if (from && stat(from, &from_st) == 0 && S_ISREG(from_st.st_mode)) {
        /* a file: a llama2.c checkpoint (what its export.py makes of Meta's LLaMA-2) */
        if (from_version) {
            st = xffl_fail(XFFL_ERR_USAGE, "--from-version names a version of a store; %s is a file", from);
            goto out;
        }
        char file_sha[XFFL_SHA256_HEX];
        fprintf(stderr, "xffl init: reading version 0's weights from %s (llama2.c checkpoint)\n", from);
        XFFL_CHECK_GOTO(st, kern_import_llama2c(from, &from_t, &from_slab), out);
        XFFL_CHECK_GOTO(st, xffl_sha256_file(from, file_sha, NULL), out);
        snprintf(from_line, sizeof from_line, "%s llama2c %s", from, file_sha);
    } else if (from) {
        pipe_version_ref from_ref;
        fprintf(stderr, "xffl init: reading version 0's weights from %s (%s)\n", from,
                from_version ? from_version : "latest");
        XFFL_CHECK_GOTO(st, cli_model_load(from, &sopt, from_version, &from_t, &from_slab, &from_ref), out);
        snprintf(from_line, sizeof from_line, "%s v%06lld %s %s", from, (long long)from_ref.version,
                 from_ref.index_key, from_ref.index_sha);
    }
    if (from) XFFL_CHECK_GOTO(st, check_same_model(from, &from_t->cfg, &f), out);
    XFFL_CHECK_GOTO(st, store_open(url, &sopt, &s), out);
    char fed_sha[XFFL_SHA256_HEX];
    double t0 = xffl_now();
    XFFL_CHECK_GOTO(st, pipe_federation_publish(s, &f, fed_sha), out);
    xffl_log(XFFL_LOG_DEBUG, "wrote %s (sha256 %s)", PIPE_FEDERATION_KEY, fed_sha);
    init_src src = {t, f.seed, from_slab};
    const char *ek[] = {"init_from"}, *ev[] = {from_line};
    pipe_version_spec spec = {.version = 0,
                              .parent = -1,
                              .round = 0,
                              .algorithm = pipe_algo_name(f.algo.kind),
                              .federation_sha256 = fed_sha,
                              .tokens_seen = 0,
                              .n_groups = n_groups,
                              .groups = groups,
                              .part_size = f.part_size,
                              .level = f.zstd_level,
                              .threads = (int)threads,
                              .n_extra = from ? 1 : 0,
                              .extra_keys = ek,
                              .extra_values = ev};
    fprintf(stderr, "xffl init: writing version 0 of %s (%d parts) to %s\n", f.preset, plan.n_parts, store_url(s));
    pipe_version_result res;
    XFFL_CHECK_GOTO(st, pipe_version_publish(s, t, &spec, init_tensor, &src, &res), out);
    double dt = xffl_now() - t0;
    if (cli_json)
        printf("{\"store\":\"%s\",\"version\":0,\"index\":\"%s\",\"index_sha256\":\"%s\",\"federation_sha256\":\"%s\","
               "\"parameters\":%" PRId64 ",\"parts\":%d,\"raw_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64
               ",\"seconds\":%.3f}\n",
               store_url(s), res.ref.index_key, res.ref.index_sha, fed_sha, t->total, res.n_parts, res.raw_bytes,
               res.stored_bytes, dt);
    else
        printf("%s: v000000 %s  %d parts, %" PRIu64 " bytes stored (%.2fx compression), %.1f s\n", store_url(s),
               res.ref.index_key, res.n_parts, res.stored_bytes,
               res.stored_bytes ? (double)res.raw_bytes / (double)res.stored_bytes : 0.0, dt);
out:
    pipe_part_plan_free(&plan);
    free(from_slab);
    ckpt_param_table_free(from_t);
    ckpt_param_table_free(t);
    store_close(s);
    return cli_report(C, st);
}
