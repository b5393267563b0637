/* pipe_init (contract in init.h). */
#include "pipelines/init.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"
#include "formats/hf.h"
#include "formats/llama2c.h"
#include "pipelines/model.h"
#include "pipelines/tokenizer.h"

static XFFL_MUST_USE xffl_status check_same_model(const char *from, const ckpt_model_config *a,
                                                 const pipe_federation *f);

/* The federation set describes: defaults, then what was given. hf_model: the model of
 * a Hugging Face --from, which --model/--vocab (when given) must agree with. */
static XFFL_MUST_USE xffl_status build_federation(const pipe_init_settings *set,
                                                 const ckpt_model_config *hf_model, pipe_federation *f)
{
    if (set->preset) {
        XFFL_FORWARD(pipe_federation_default(set->preset, set->vocab, f));
        if (hf_model) XFFL_FORWARD(check_same_model(set->from, hf_model, f));
    } else {
        XFFL_RETURN_IF(!hf_model, XFFL_ERR_USAGE,
                       "--model PRESET is required (%s) unless --from names a Hugging Face directory",
                       ckpt_model_preset_names());
        XFFL_RETURN_IF(set->vocab, XFFL_ERR_USAGE, "--vocab needs --model (a Hugging Face --from sets the vocabulary)");
        const char *name = ckpt_model_preset_match(hf_model);
        XFFL_FORWARD(pipe_federation_default_model(name ? name : PIPE_CUSTOM_MODEL, hf_model, f));
    }
    if (set->facilities) XFFL_FORWARD(pipe_federation_set_facilities(f, set->facilities));
    if (set->algo) {
        pipe_algo_kind kind;
        XFFL_FORWARD(pipe_algo_parse(set->algo, &kind));
        pipe_federation_set_algo(f, kind);
    }
    if (set->encoding) XFFL_FORWARD(ckpt_codec_parse_spec(set->encoding, &f->encoding, &f->encoding_k));
    f->quorum = set->quorum > 0 ? set->quorum : f->n_facilities;
    if (set->local_steps > 0) f->local_steps = set->local_steps;
    if (set->local_steps_schedule) XFFL_FORWARD(pipe_federation_parse_steps(set->local_steps_schedule, f));
    f->seed = (uint64_t)set->seed;
    if (set->part_size) f->part_size = set->part_size;
    if (set->level) f->zstd_level = set->level;
    if (set->warmup >= 0) f->inner.warmup = set->warmup;
    if (set->total_rounds >= 0) f->inner.total_rounds = set->total_rounds;
    f->encoding_flush = set->encoding_flush;
    f->encoding_gaps = ckpt_codec_takes_k(f->encoding); /* a new federation's topk indices go as gaps */
    if (set->batch > 0) f->batch = set->batch;
    if (set->seq_len > 0) f->seq_len = set->seq_len;
    f->algo.unweighted = set->unweighted;
    f->algo.nesterov = !set->no_nesterov;
    f->keep_inner_state = set->keep_inner_state;
    if (set->data_order) {
        XFFL_RETURN_IF(strcmp(set->data_order, "files") && strcmp(set->data_order, "strided"), XFFL_ERR_USAGE,
                       "--data-order '%s': choose files or strided", set->data_order);
        f->data_strided = !strcmp(set->data_order, "strided");
    }
    for (int k = 0; k < PIPE_INIT_NDBL; k++)
        if (set->dbl_set[k]) *(double *)((char *)f + pipe_init_numbers[k].field) = set->dbl[k];
    /* asking for robustness with --delta-clip gets the filter the robust algorithms have
     * (pipelines/algo.h: PIPE_ALGO_ROBUST_FILTER says why) */
    if (set->dbl_set[PIPE_INIT_DELTA_CLIP] && f->algo.delta_clip > 0 && !set->dbl_set[PIPE_INIT_DELTA_FILTER])
        f->algo.delta_filter = PIPE_ALGO_ROBUST_FILTER;
    /* a peak below the default floor takes the floor down with it */
    if (set->dbl_set[PIPE_INIT_LR] && !set->dbl_set[PIPE_INIT_MIN_LR] && f->inner.min_lr > f->inner.lr)
        f->inner.min_lr = f->inner.lr / 10;
    /* the vocabulary is --from's, or --vocab's, when given; else the tokenizer's */
    if (set->tokenizer) XFFL_FORWARD(pipe_tokenizer_set(f, set->tokenizer, set->vocab || set->from || !set->preset));
    return XFFL_OK;
}

#define NUM(id, flag, sec, field, help) [id] = {flag, sec, help, offsetof(pipe_federation, field)}
const pipe_init_number pipe_init_numbers[PIPE_INIT_NDBL] = {
    NUM(PIPE_INIT_OUTER_LR, "--outer-lr", "algorithm", algo.outer_lr, "outer learning rate (diloco 0.7, fedadam 0.01, others 1)"),
    NUM(PIPE_INIT_MOMENTUM, "--outer-momentum", "algorithm", algo.momentum, "diloco momentum (0.9)"),
    NUM(PIPE_INIT_OUTER_WARMUP, "--outer-warmup", "algorithm", algo.outer_warmup,
        "diloco: ramp the outer learning rate linearly over the first R rounds, 0 = none (0)"),
    NUM(PIPE_INIT_ADAM_BETA1, "--adam-beta1", "algorithm", algo.beta1, "fedadam beta1 (0.9)"),
    NUM(PIPE_INIT_ADAM_BETA2, "--adam-beta2", "algorithm", algo.beta2, "fedadam beta2 (0.99)"),
    NUM(PIPE_INIT_ADAM_EPS, "--adam-eps", "algorithm", algo.eps, "fedadam epsilon (1e-8)"),
    NUM(PIPE_INIT_TRIM, "--trim-fraction", "algorithm", algo.trim, "trimmed: fraction cut from each end (0.1)"),
    NUM(PIPE_INIT_CLIP_NORM, "--clip-norm", "algorithm", algo.clip_norm, "pseudo-gradient L2 norm bound, 0 = none (0)"),
    NUM(PIPE_INIT_DELTA_CLIP, "--delta-clip", "algorithm", algo.delta_clip,
        "clip each delta to X times the median delta norm before combining, 0 = none (0)"),
    NUM(PIPE_INIT_DELTA_FILTER, "--delta-filter", "algorithm", algo.delta_filter,
        "leave out each delta farther than X times the median distance from the coordinate-wise median delta, "
        "or pointing away from it (X >= 1), 0 = none (3 for median, trimmed and with --delta-clip; else 0)"),
    NUM(PIPE_INIT_ENCODING_DECAY, "--encoding-decay", "algorithm", encoding_decay,
        "a lossy encoding's error feedback: multiply the residual carried to the next round by X in (0, 1] "
        "(SparseLoCo's beta), 1 = keep it whole (1)"),
    NUM(PIPE_INIT_LR, "--lr", "facility training", inner.lr, "AdamW peak learning rate (3e-4)"),
    NUM(PIPE_INIT_MIN_LR, "--min-lr", "facility training", inner.min_lr, "cosine floor of the learning rate (3e-5)"),
    NUM(PIPE_INIT_WEIGHT_DECAY, "--weight-decay", "facility training", inner.weight_decay, "AdamW decoupled decay (0.1)"),
    NUM(PIPE_INIT_GRAD_CLIP, "--grad-clip", "facility training", inner.grad_clip, "gradient norm clip, 0 = none (1.0)"),
    NUM(PIPE_INIT_BETA1, "--beta1", "facility training", inner.beta1, "AdamW beta1 (0.9)"),
    NUM(PIPE_INIT_BETA2, "--beta2", "facility training", inner.beta2, "AdamW beta2 (0.95)"),
};
#undef NUM

typedef struct {
    const ckpt_param_table *t;
    uint64_t seed;
    const float *from;        /* --from's model slab, or NULL: initialise from seed */
    const fmt_hf_reader *hf;  /* or a Hugging Face --from, read tensor by tensor */
} init_src;

static XFFL_MUST_USE xffl_status init_tensor(void *ctx, int group, int index, float *out)
{
    init_src *src = ctx;
    const ckpt_param *p = &src->t->params[index];
    if (group == 0 && src->hf)
        return fmt_hf_read(src->hf, index, out); /* same config, so the same table indexes */
    if (group == 0 && src->from)
        memcpy(out, src->from + p->offset, (size_t)p->numel * sizeof *out);
    else if (group == 0)
        ckpt_param_init(src->t, index, src->seed, out);
    else /* outer optimizer state starts at zero */
        memset(out, 0, (size_t)p->numel * sizeof *out);
    return XFFL_OK;
}

/* --from's model must be the one --model/--vocab describe: INVALID naming both. */
static XFFL_MUST_USE xffl_status check_same_model(const char *from, const ckpt_model_config *a, const pipe_federation *f)
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

/* Version 0's weights from --from (a llama2.c file or a version of another store), and
 * the init_from line that names them. */
static XFFL_MUST_USE xffl_status load_from(const pipe_init_settings *set, ckpt_param_table **t, float **slab, char *line,
                             size_t cap)
{
    struct stat st;
    if (stat(set->from, &st) == 0 && S_ISREG(st.st_mode)) {
        /* a file: a llama2.c checkpoint (what its export.py makes of Meta's LLaMA-2) */
        XFFL_RETURN_IF(set->from_version, XFFL_ERR_USAGE, "--from-version names a version of a store; %s is a file",
                       set->from);
        char file_sha[XFFL_SHA256_HEX];
        xffl_log(XFFL_LOG_INFO, "reading version 0's weights from %s (llama2.c checkpoint)", set->from);
        XFFL_FORWARD(fmt_llama2c_import(set->from, t, slab));
        XFFL_FORWARD(xffl_sha256_file(set->from, file_sha, NULL));
        snprintf(line, cap, "%s llama2c %s", set->from, file_sha);
        return XFFL_OK;
    }
    pipe_version_ref ref;
    long v = -1;
    if (set->from_version && strcmp(set->from_version, "latest") != 0)
        XFFL_FORWARD(xffl_parse_long("--from-version", set->from_version, 0, 999999, &v));
    xffl_log(XFFL_LOG_INFO, "reading version 0's weights from %s (%s)", set->from,
             set->from_version ? set->from_version : "latest");
    store *from = NULL;
    XFFL_FORWARD(store_open(set->from, set->from_options, &from));
    xffl_status s = pipe_model_load(from, v, t, slab, &ref);
    store_close(from);
    XFFL_FORWARD(s);
    snprintf(line, cap, "%s v%06lld %s %s", set->from, (long long)ref.version, ref.index_key, ref.index_sha);
    return XFFL_OK;
}

/* A Hugging Face --from: its headers checked against its config.json before anything is
 * written; its weights are read tensor by tensor while version 0 is published. */
static XFFL_MUST_USE xffl_status open_hf(const pipe_init_settings *set, fmt_hf_reader **hf)
{
    *hf = NULL;
    if (!set->from || !fmt_hf_is_dir(set->from)) return XFFL_OK;
    XFFL_RETURN_IF(set->from_version, XFFL_ERR_USAGE,
                   "--from-version names a version of a store; %s is a Hugging Face directory", set->from);
    xffl_log(XFFL_LOG_INFO, "reading %s (Hugging Face checkpoint)", set->from);
    return fmt_hf_open(set->from, hf);
}

/* A robust algorithm must be able to leave out a facility at the smallest round it may
 * see (quorum deltas): trimmed of 3 at 0.1 cuts nothing, the median of 2 is the mean.
 * USAGE naming the algorithm and the quorum. */
static XFFL_MUST_USE xffl_status check_robust(const pipe_federation *f)
{
    const pipe_algo_def *ad = pipe_algo_get(f->algo.kind);
    XFFL_RETURN_IF(ad->excludes && ad->excludes(&f->algo, f->quorum) < 1, XFFL_ERR_USAGE,
                   "--algo %s with quorum %d excludes no facility's value (trim fraction %g of %d cuts %d from each "
                   "end; a median needs 3 or more): raise --quorum or --trim-fraction, or use another --algo",
                   ad->name, f->quorum, f->algo.trim, f->quorum, (int)(f->algo.trim * f->quorum));
    return XFFL_OK;
}

/* pipe_init once the federation is built and valid. */
static XFFL_MUST_USE xffl_status init_job(store *s, const pipe_init_settings *set, const fmt_hf_reader *hf, pipe_init_result *res)
{
    pipe_federation *f = &res->f;
    xffl_status st;
    res->n_groups = 1 + pipe_algo_state_count(f->algo.kind);
    res->groups[0] = "model";
    for (int g = 1; g < res->n_groups; g++) res->groups[g] = pipe_algo_state_group(f->algo.kind, g - 1);
    XFFL_FORWARD(ckpt_param_table_create(&f->model, &res->t));
    XFFL_FORWARD(pipe_version_plan(res->t, res->n_groups, f->part_size, &res->plan));
    if (set->dry_run) return XFFL_OK;

    ckpt_param_table *from_t = NULL;
    float *from_slab = NULL;
    xffl_signer *signer = NULL;
    char from_line[PIPE_KEY_MAX + 1024] = "";
    if (hf) {
        char digest[XFFL_SHA256_HEX];
        XFFL_CHECK_GOTO(st, fmt_hf_digest(hf, digest), out);
        snprintf(from_line, sizeof from_line, "%s hf %s", set->from, digest);
    } else if (set->from) {
        XFFL_CHECK_GOTO(st, load_from(set, &from_t, &from_slab, from_line, sizeof from_line), out);
        XFFL_CHECK_GOTO(st, check_same_model(set->from, &from_t->cfg, f), out);
    }
    double t0 = xffl_now();
    if (!set->insecure)
        XFFL_CHECK_GOTO(st, pipe_trust_init_keys(set->trust, f, set->n_facility_keys, set->facility_keys,
                                                 set->aggregator_key, &signer), out);
    XFFL_CHECK_GOTO(st, pipe_federation_publish(s, f, res->federation_sha256), out);
    XFFL_CHECK_GOTO(st, pipe_trust_pin_new(s, set->trust, res->federation_sha256), out);
    if (set->tokenizer) XFFL_CHECK_GOTO(st, pipe_tokenizer_publish(s, set->tokenizer, f->tokenizer_sha256), out);
    xffl_log(XFFL_LOG_DEBUG, "wrote %s (sha256 %s)", PIPE_FEDERATION_KEY, res->federation_sha256);
    init_src src = {res->t, f->seed, from_slab, hf};
    const char *ek[] = {"init_from"}, *ev[] = {from_line};
    pipe_version_spec spec = {.version = 0,
                              .parent = -1,
                              .round = 0,
                              .algorithm = pipe_algo_name(f->algo.kind),
                              .federation_sha256 = res->federation_sha256,
                              .tokens_seen = 0,
                              .n_groups = res->n_groups,
                              .groups = res->groups,
                              .part_size = f->part_size,
                              .level = f->zstd_level,
                              .threads = set->threads,
                              .n_extra = set->from ? 1 : 0,
                              .extra_keys = ek,
                              .extra_values = ev,
                              .signer = signer};
    xffl_log(XFFL_LOG_INFO, "writing version 0 of %s (%d parts) to %s", f->preset, res->plan.n_parts, store_url(s));
    XFFL_CHECK_GOTO(st, pipe_version_publish(s, res->t, &spec, init_tensor, &src, &res->version), out);
    res->seconds = xffl_now() - t0;
out:
    xffl_signer_free(signer);
    free(from_slab);
    ckpt_param_table_free(from_t);
    return st;
}

xffl_status pipe_init(store *s, const pipe_init_settings *set, pipe_init_result *res)
{
    memset(res, 0, sizeof *res);
    pipe_federation *f = &res->f;
    fmt_hf_reader *hf = NULL;
    XFFL_FORWARD(open_hf(set, &hf));
    xffl_status st = build_federation(set, hf ? &fmt_hf_table(hf)->cfg : NULL, f);
    if (st == XFFL_OK) {
        st = pipe_federation_validate(f);
        if (st == XFFL_OK) st = check_robust(f);
        res->bad_settings = st != XFFL_OK;
    }
    if (st == XFFL_OK) st = init_job(s, set, hf, res);
    fmt_hf_close(hf);
    return st;
}

void pipe_init_result_free(pipe_init_result *res)
{
    pipe_part_plan_free(&res->plan);
    ckpt_param_table_free(res->t);
    res->t = NULL;
}
