#include "pipelines/algo.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* Fixed chunk size for norms: per-chunk sums are independent of how chunks are
 * spread over threads, and the chunk sums are then added in chunk order. */
enum { CHUNK = 1 << 16, MAX_SORT = PIPE_ALGO_MAX_K };

#define P(attr, type, field, optional) {attr, PIPE_ALGO_PARAM_##type, offsetof(pipe_algo_config, field), optional}
static const pipe_algo_param params[] = {
    P("unweighted", FLAG, unweighted, 0),     P("outer_lr", DOUBLE, outer_lr, 0),
    P("outer_momentum", DOUBLE, momentum, 0), P("nesterov", FLAG, nesterov, 0),
    P("adam_beta1", DOUBLE, beta1, 0),        P("adam_beta2", DOUBLE, beta2, 0),
    P("adam_eps", DOUBLE, eps, 0),            P("trim_fraction", DOUBLE, trim, 0),
    P("clip_norm", DOUBLE, clip_norm, 0),     P("delta_clip", DOUBLE, delta_clip, 1),
    P("delta_filter", DOUBLE, delta_filter, 1), P("outer_warmup", DOUBLE, outer_warmup, 1),
};
#undef P

const pipe_algo_param *pipe_algo_params(int *n)
{
    *n = (int)(sizeof params / sizeof params[0]);
    return params;
}

void pipe_algo_default(pipe_algo_kind kind, pipe_algo_config *c)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->outer_lr = 1.0;
    c->momentum = 0.9;
    c->nesterov = 1;
    c->beta1 = 0.9;
    c->beta2 = 0.99;
    c->eps = 1e-8;
    c->trim = 0.1;
    c->clip_norm = 0;
    const pipe_algo_def *d = pipe_algo_get(kind);
    if (d && d->defaults) d->defaults(c);
}

const char *pipe_algo_name(pipe_algo_kind kind)
{
    const pipe_algo_def *d = pipe_algo_get(kind);
    return d ? d->name : "unknown";
}

xffl_status pipe_algo_parse(const char *name, pipe_algo_kind *kind)
{
    for (int i = 0; i < pipe_algo_count(); i++)
        if (name && !strcmp(name, pipe_algo_name((pipe_algo_kind)i))) {
            *kind = (pipe_algo_kind)i;
            return XFFL_OK;
        }
    char choices[512];
    pipe_algo_list(choices, sizeof choices, NULL);
    return xffl_fail(XFFL_ERR_USAGE, "unknown algorithm '%s' (%s)", name ? name : "", choices);
}

xffl_status pipe_algo_validate(const pipe_algo_config *c)
{
    const pipe_algo_def *d = pipe_algo_get(c->kind);
    XFFL_RETURN_IF(!d, XFFL_ERR_INVALID, "algorithm %d unknown", (int)c->kind);
    XFFL_RETURN_IF(!(c->outer_lr > 0), XFFL_ERR_INVALID, "outer_lr %g must be > 0", c->outer_lr);
    XFFL_RETURN_IF(!(c->momentum >= 0 && c->momentum < 1), XFFL_ERR_INVALID, "momentum %g outside [0,1)", c->momentum);
    XFFL_RETURN_IF(!(c->beta1 >= 0 && c->beta1 < 1), XFFL_ERR_INVALID, "beta1 %g outside [0,1)", c->beta1);
    XFFL_RETURN_IF(!(c->beta2 >= 0 && c->beta2 < 1), XFFL_ERR_INVALID, "beta2 %g outside [0,1)", c->beta2);
    XFFL_RETURN_IF(!(c->eps > 0), XFFL_ERR_INVALID, "eps %g must be > 0", c->eps);
    XFFL_RETURN_IF(!(c->trim >= 0 && c->trim < 0.5), XFFL_ERR_INVALID, "trim %g outside [0,0.5)", c->trim);
    XFFL_RETURN_IF(!(c->clip_norm >= 0), XFFL_ERR_INVALID, "clip_norm %g must be >= 0", c->clip_norm);
    XFFL_RETURN_IF(!(c->delta_clip >= 0) || !isfinite(c->delta_clip), XFFL_ERR_INVALID,
                   "delta_clip %g must be >= 0 (a multiple of the median delta norm)", c->delta_clip);
    XFFL_RETURN_IF(c->delta_clip > 0 && !d->per_delta, XFFL_ERR_INVALID, "algorithm %s does not clip deltas (delta_clip)",
                   d->name);
    XFFL_RETURN_IF(!(c->delta_filter == 0 || (c->delta_filter >= 1 && isfinite(c->delta_filter))), XFFL_ERR_INVALID,
                   "delta_filter %g must be 0 or >= 1 (a multiple of the median distance from the median delta)",
                   c->delta_filter);
    XFFL_RETURN_IF(c->nesterov != 0 && c->nesterov != 1, XFFL_ERR_INVALID, "nesterov %d must be 0 or 1", c->nesterov);
    XFFL_RETURN_IF(!(c->outer_warmup >= 0 && c->outer_warmup <= 1e8), XFFL_ERR_INVALID,
                   "outer_warmup %g outside [0, 1e8] rounds", c->outer_warmup);
    XFFL_RETURN_IF(c->outer_warmup > 0 && c->kind != PIPE_ALGO_DILOCO, XFFL_ERR_INVALID,
                   "outer_warmup is diloco's (algorithm %s)", d->name);
    return d->validate ? d->validate(c) : XFFL_OK;
}

int pipe_algo_state_count(pipe_algo_kind kind)
{
    const pipe_algo_def *d = pipe_algo_get(kind);
    return d ? d->n_state : 0;
}

const char *pipe_algo_state_group(pipe_algo_kind kind, int i)
{
    const pipe_algo_def *d = pipe_algo_get(kind);
    return d && i >= 0 && i < d->n_state ? d->state_groups[i] : NULL;
}

int64_t pipe_algo_first_nonfinite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}


double pipe_algo_sqnorm(const float *x, int64_t n, int threads)
{
    int64_t nchunks = (n + CHUNK - 1) / CHUNK;
    double *part = calloc(nchunks ? (size_t)nchunks : 1, sizeof *part);
    if (!part) { /* sequential fallback gives the same bits: same chunking */
        double total = 0;
        for (int64_t c = 0; c < nchunks; c++) {
            double s = 0;
            int64_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
            for (int64_t i = c * CHUNK; i < end; i++) s += (double)x[i] * (double)x[i];
            total += s;
        }
        return total;
    }
#pragma omp parallel for schedule(static) num_threads(xffl_threads(threads))
    for (int64_t c = 0; c < nchunks; c++) {
        double s = 0;
        int64_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (int64_t i = c * CHUNK; i < end; i++) s += (double)x[i] * (double)x[i];
        part[c] = s;
    }
    double total = 0;
    for (int64_t c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return total;
}

static void sort_small(double *v, int k)
{
    for (int i = 1; i < k; i++) {
        double x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

/* Step 1 of the builtins. */
void pipe_algo_combine_mean(const pipe_algo_config *c, const pipe_algo_input *in, const double *w, double wsum,
                            int64_t lo, int64_t hi, float *out)
{
    (void)c;
    const double *sc = in->delta_scale;
    for (int64_t i = lo; i < hi; i++) {
        double s = 0;
        /* × 1.0 is exact: without step 0 the bits are those of the plain mean */
        for (int j = 0; j < in->k; j++) s += w[j] * ((double)in->deltas[j][i] * (sc ? sc[j] : 1.0));
        out[i] = (float)(s / wsum);
    }
}

static void combine_median(const pipe_algo_config *c, const pipe_algo_input *in, const double *w, double wsum,
                           int64_t lo, int64_t hi, float *out)
{
    (void)c, (void)w, (void)wsum;
    const int k = in->k;
    const double *sc = in->delta_scale;
    double v[MAX_SORT];
    for (int64_t i = lo; i < hi; i++) {
        for (int j = 0; j < k; j++) v[j] = (double)in->deltas[j][i] * (sc ? sc[j] : 1.0);
        sort_small(v, k);
        out[i] = (float)((k & 1) ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2.0);
    }
}

/* median of k: all but the middle one (odd) or two (even) */
static int median_excludes(const pipe_algo_config *c, int k)
{
    (void)c;
    return k < 3 ? 0 : k - 2 + (k & 1);
}

static int trim_cut(const pipe_algo_config *c, int k)
{
    int cut = (int)(c->trim * k);
    return k - 2 * cut < 1 ? (k - 1) / 2 : cut;
}

static int trimmed_excludes(const pipe_algo_config *c, int k) { return 2 * trim_cut(c, k); }

static void combine_trimmed(const pipe_algo_config *c, const pipe_algo_input *in, const double *w, double wsum,
                            int64_t lo, int64_t hi, float *out)
{
    (void)w, (void)wsum;
    const int k = in->k;
    const int cut = trim_cut(c, k);
    const double *sc = in->delta_scale;
    double v[MAX_SORT];
    for (int64_t i = lo; i < hi; i++) {
        for (int j = 0; j < k; j++) v[j] = (double)in->deltas[j][i] * (sc ? sc[j] : 1.0);
        sort_small(v, k);
        double s = 0;
        for (int j = cut; j < k - cut; j++) s += v[j];
        out[i] = (float)(s / (double)(k - 2 * cut));
    }
}

/* Step 2 of the builtins: bound ‖g‖ by clip_norm when it is set. */
double pipe_algo_clip_to_norm(const pipe_algo_config *c, double pg_norm)
{
    return c->clip_norm > 0 && pg_norm > c->clip_norm ? c->clip_norm / pg_norm : 1.0;
}

void pipe_algo_clip_deltas(const pipe_algo_config *c, const pipe_algo_input *in, const double *norms, double *scale)
{
    double v[MAX_SORT];
    const int k = in->k;
    for (int j = 0; j < k; j++) v[j] = norms[j];
    sort_small(v, k);
    const double bound = c->delta_clip * ((k & 1) ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2.0);
    for (int j = 0; j < k; j++) scale[j] = norms[j] > bound ? bound / norms[j] : 1.0;
}

void pipe_algo_filter_deltas(const pipe_algo_config *c, int k, const double *dist, const double *dot, int *keep)
{
    double v[MAX_SORT];
    int nearest = 0, kept = 0;
    for (int j = 0; j < k; j++) {
        v[j] = dist[j];
        if (dist[j] < dist[nearest]) nearest = j;
    }
    sort_small(v, k);
    const double bound = c->delta_filter * ((k & 1) ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2.0);
    for (int j = 0; j < k; j++) kept += keep[j] = dist[j] <= bound && dot[j] >= 0;
    if (!kept) keep[nearest] = 1;
}

/* Step 0a's figures: per delta j, ‖d_j − m‖², d_j · m and ‖d_j‖², and ‖m‖², m the
 * coordinate-wise median (as combine_median computes it), each a double sum per fixed
 * chunk added in chunk order. sums: 3k + 1 doubles (dist², dot, norm² per j; then ‖m‖²). */
static XFFL_MUST_USE xffl_status filter_sums(const pipe_algo_input *in, int nt, double *sums)
{
    const int k = in->k, w = 3 * k + 1;
    const int64_t n = in->n, nchunks = (n + CHUNK - 1) / CHUNK;
    double *part = calloc(nchunks ? (size_t)(nchunks * w) : 1, sizeof *part);
    XFFL_RETURN_IF(!part, XFFL_ERR_NOMEM, "delta filter: %lld chunk sums", (long long)nchunks);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t ch = 0; ch < nchunks; ch++) {
        double v[MAX_SORT], *p = part + ch * w;
        int64_t end = (ch + 1) * CHUNK < n ? (ch + 1) * CHUNK : n;
        for (int64_t i = ch * CHUNK; i < end; i++) {
            for (int j = 0; j < k; j++) v[j] = in->deltas[j][i];
            sort_small(v, k);
            double m = (k & 1) ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2.0;
            for (int j = 0; j < k; j++) {
                double d = in->deltas[j][i];
                p[3 * j] += (d - m) * (d - m);
                p[3 * j + 1] += d * m;
                p[3 * j + 2] += d * d;
            }
            p[3 * k] += m * m;
        }
    }
    for (int x = 0; x < w; x++) sums[x] = 0;
    for (int64_t ch = 0; ch < nchunks; ch++)
        for (int x = 0; x < w; x++) sums[x] += part[ch * w + x];
    free(part);
    return XFFL_OK;
}

/* Step 3. g = −d̄·scale at each element; every step computes in double. */
static void outer_plain(const pipe_algo_round *r, const float *base, int64_t lo, int64_t hi, float *out)
{
    for (int64_t i = lo; i < hi; i++) {
        double g = -(double)out[i] * r->scale;
        double b = base[i];
        out[i] = (float)(b - g);
    }
}

/* The round's outer learning rate: outer_lr, ramped linearly over outer_warmup rounds. */
static void diloco_prepare(const pipe_algo_config *c, const pipe_algo_input *in, pipe_algo_round *r)
{
    r->aux[0] = c->outer_lr;
    if (c->outer_warmup > 0 && (double)in->round < c->outer_warmup)
        r->aux[0] = c->outer_lr * (double)in->round / c->outer_warmup;
}

static void outer_diloco(const pipe_algo_round *r, const float *base, int64_t lo, int64_t hi, float *out)
{
    const double lr = r->aux[0], mu = r->c->momentum;
    float *m = r->state[0];
    for (int64_t i = lo; i < hi; i++) {
        double g = -(double)out[i] * r->scale;
        double b = base[i];
        double mi = mu * (double)m[i] + g;
        m[i] = (float)mi;
        out[i] = (float)(r->c->nesterov ? b - lr * (g + mu * mi) : b - lr * mi);
    }
}

static void diloco_defaults(pipe_algo_config *c) { c->outer_lr = 0.7; }

/* β1^t and β2^t by repeated multiplication: no libm pow(). */
static void fedadam_prepare(const pipe_algo_config *c, const pipe_algo_input *in, pipe_algo_round *r)
{
    double b1t = 1, b2t = 1;
    for (int64_t t = 0; t < in->round; t++) {
        b1t *= c->beta1;
        b2t *= c->beta2;
    }
    r->aux[0] = b1t;
    r->aux[1] = b2t;
}

static void outer_fedadam(const pipe_algo_round *r, const float *base, int64_t lo, int64_t hi, float *out)
{
    const pipe_algo_config *c = r->c;
    const double lr = c->outer_lr, b1t = r->aux[0], b2t = r->aux[1];
    float *m = r->state[0], *v = r->state[1];
    for (int64_t i = lo; i < hi; i++) {
        double g = -(double)out[i] * r->scale;
        double b = base[i];
        double mi = c->beta1 * (double)m[i] + (1.0 - c->beta1) * g;
        double vi = c->beta2 * (double)v[i] + (1.0 - c->beta2) * g * g;
        m[i] = (float)mi;
        v[i] = (float)vi;
        double mh = mi / (1.0 - b1t), vh = vi / (1.0 - b2t);
        out[i] = (float)(b - lr * mh / (sqrt(vh) + c->eps));
    }
}

static void fedadam_defaults(pipe_algo_config *c) { c->outer_lr = 0.01; }

static const pipe_algo_def fedavg = {.name = "fedavg", .per_delta = pipe_algo_clip_deltas,
                                     .combine = pipe_algo_combine_mean, .clip = pipe_algo_clip_to_norm,
                                     .outer = outer_plain};
static const pipe_algo_def diloco = {.name = "diloco", .defaults = diloco_defaults, .n_state = 1,
                                     .state_groups = {"outer"}, .per_delta = pipe_algo_clip_deltas,
                                     .combine = pipe_algo_combine_mean, .clip = pipe_algo_clip_to_norm,
                                     .prepare = diloco_prepare, .outer = outer_diloco};
static const pipe_algo_def fedadam = {.name = "fedadam", .defaults = fedadam_defaults, .n_state = 2,
                                      .state_groups = {"outer/m", "outer/v"}, .per_delta = pipe_algo_clip_deltas,
                                      .combine = pipe_algo_combine_mean, .clip = pipe_algo_clip_to_norm,
                                      .prepare = fedadam_prepare, .outer = outer_fedadam};
static void robust_defaults(pipe_algo_config *c) { c->delta_filter = PIPE_ALGO_ROBUST_FILTER; }

static const pipe_algo_def median = {.name = "median", .defaults = robust_defaults, .excludes = median_excludes,
                                     .per_delta = pipe_algo_clip_deltas, .combine = combine_median,
                                     .clip = pipe_algo_clip_to_norm, .outer = outer_plain};
static const pipe_algo_def trimmed = {.name = "trimmed", .defaults = robust_defaults, .excludes = trimmed_excludes,
                                      .per_delta = pipe_algo_clip_deltas, .combine = combine_trimmed,
                                      .clip = pipe_algo_clip_to_norm, .outer = outer_plain};
/* The builtins, in pipe_algo_kind order; registered entries follow them. */
static const pipe_algo_def *const builtins[] = {
    [PIPE_ALGO_FEDAVG] = &fedavg, [PIPE_ALGO_DILOCO] = &diloco,   [PIPE_ALGO_FEDADAM] = &fedadam,
    [PIPE_ALGO_MEDIAN] = &median, [PIPE_ALGO_TRIMMED] = &trimmed,
};
enum { N_BUILTINS = sizeof builtins / sizeof builtins[0] };
static const pipe_algo_def *registered[PIPE_ALGO_MAX - N_BUILTINS];
static int n_registered;

const pipe_algo_def *pipe_algo_get(pipe_algo_kind kind)
{
    if ((unsigned)kind < N_BUILTINS) return builtins[kind];
    if ((unsigned)kind - N_BUILTINS < (unsigned)n_registered) return registered[kind - N_BUILTINS];
    return NULL;
}

int pipe_algo_count(void) { return N_BUILTINS + n_registered; }

xffl_status pipe_algo_register(const pipe_algo_def *def, pipe_algo_kind *kind)
{
    XFFL_RETURN_IF(!def || !def->name || !def->combine || !def->outer || def->n_state < 0 ||
                       def->n_state > PIPE_ALGO_MAX_STATE,
                   XFFL_ERR_USAGE, "algorithm '%s': name, combine, outer and 0-%d state groups needed",
                   def && def->name ? def->name : "", PIPE_ALGO_MAX_STATE);
    for (int i = 0; i < def->n_state; i++)
        XFFL_RETURN_IF(!def->state_groups[i], XFFL_ERR_USAGE, "algorithm '%s': state group %d unnamed", def->name, i);
    for (int i = 0; i < pipe_algo_count(); i++)
        XFFL_RETURN_IF(!strcmp(pipe_algo_name((pipe_algo_kind)i), def->name), XFFL_ERR_EXISTS,
                       "algorithm '%s' exists already", def->name);
    XFFL_RETURN_IF(pipe_algo_count() == PIPE_ALGO_MAX, XFFL_ERR_USAGE, "algorithm '%s': the table holds %d already",
                   def->name, PIPE_ALGO_MAX);
    registered[n_registered++] = def;
    *kind = (pipe_algo_kind)(pipe_algo_count() - 1);
    return XFFL_OK;
}

void pipe_algo_list(char *buf, size_t cap, const char *first_note)
{
    size_t o = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < pipe_algo_count() && o < cap; i++) {
        int w = snprintf(buf + o, cap - o, "%s%s%s", i ? ", " : "", pipe_algo_name((pipe_algo_kind)i),
                         i == 0 && first_note ? first_note : "");
        if (w < 0) break;
        o += (size_t)w;
    }
}


xffl_status pipe_algo_apply(const pipe_algo_config *c, const pipe_algo_input *in, float *out, pipe_algo_stats *stats)
{
    XFFL_FORWARD(pipe_algo_validate(c));
    const pipe_algo_def *def = pipe_algo_get(c->kind);
    XFFL_RETURN_IF(in->k < 1, XFFL_ERR_INVALID, "aggregation needs at least one delta, got %d", in->k);
    XFFL_RETURN_IF(in->k > MAX_SORT, XFFL_ERR_INVALID, "at most %d contributors per round, got %d", MAX_SORT, in->k);
    XFFL_RETURN_IF(in->round < 1, XFFL_ERR_INVALID, "round %lld must be >= 1", (long long)in->round);
    XFFL_RETURN_IF(out == in->base, XFFL_ERR_INTERNAL, "aggregation output aliases the base");
    for (int s = 0; s < def->n_state; s++)
        XFFL_RETURN_IF(!in->state || !in->state[s], XFFL_ERR_INTERNAL, "%s needs outer state buffer %d", def->name, s);
    double w[MAX_SORT], wsum = 0;
    for (int j = 0; j < in->k; j++) {
        w[j] = c->unweighted ? 1.0 : in->tokens[j];
        XFFL_RETURN_IF(!(w[j] >= 0) || !isfinite(w[j]), XFFL_ERR_INVALID, "contributor %d has weight %g", j, w[j]);
        wsum += w[j];
    }
    XFFL_RETURN_IF(!(wsum > 0), XFFL_ERR_INVALID, "contributors trained on zero tokens in all");
    for (int j = 0; j < in->k; j++) {
        int64_t bad = pipe_algo_first_nonfinite(in->deltas[j], in->n);
        XFFL_RETURN_IF(bad >= 0, XFFL_ERR_INVALID, "contributor %d: non-finite delta at element %lld", j,
                       (long long)bad);
    }

    const int64_t n = in->n;
    const int nt = xffl_threads(in->threads);
    const int64_t nchunks = (n + CHUNK - 1) / CHUNK;
    /* Step 0a: the deltas kept, with their weights (in input order). */
    pipe_algo_input kept_in = *in;
    const float *kept_deltas[MAX_SORT];
    double kept_tok[MAX_SORT], fdist[MAX_SORT] = {0}, fcos[MAX_SORT] = {0};
    int keep[MAX_SORT], dropped = 0;
    if (c->delta_filter > 0) {
        double sums[3 * MAX_SORT + 1], dist[MAX_SORT], dot[MAX_SORT];
        XFFL_FORWARD(filter_sums(in, nt, sums));
        const double mm = sums[3 * in->k];
        for (int j = 0; j < in->k; j++) {
            dist[j] = sqrt(sums[3 * j]);
            dot[j] = sums[3 * j + 1];
            fcos[j] = sums[3 * j + 2] > 0 && mm > 0 ? dot[j] / sqrt(sums[3 * j + 2] * mm) : 0;
        }
        pipe_algo_filter_deltas(c, in->k, dist, dot, keep);
        double v[MAX_SORT];
        for (int j = 0; j < in->k; j++) v[j] = dist[j];
        sort_small(v, in->k);
        const double med = (in->k & 1) ? v[in->k / 2] : (v[in->k / 2 - 1] + v[in->k / 2]) / 2.0;
        int kk = 0;
        wsum = 0;
        for (int j = 0; j < in->k; j++) {
            fdist[j] = med > 0 ? dist[j] / med : 0;
            if (!keep[j]) {
                dropped++;
                continue;
            }
            kept_deltas[kk] = in->deltas[j];
            kept_tok[kk] = in->tokens ? in->tokens[j] : 0;
            w[kk] = w[j];
            wsum += w[kk++];
        }
        XFFL_RETURN_IF(!(wsum > 0), XFFL_ERR_INVALID, "the deltas the filter kept trained on zero tokens in all");
        kept_in.k = kk;
        kept_in.deltas = kept_deltas;
        kept_in.tokens = in->tokens ? kept_tok : NULL;
        in = &kept_in;
    }
    /* Step 0: each delta's factor from the deltas' norms (chunked sums: same bits for
     * any thread count); combine reads the deltas through it. */
    double norms[MAX_SORT], scale[MAX_SORT];
    pipe_algo_input step = *in;
    int clipped = 0;
    if (c->delta_clip > 0) {
        for (int j = 0; j < in->k; j++) norms[j] = sqrt(pipe_algo_sqnorm(in->deltas[j], n, nt));
        def->per_delta(c, in, norms, scale);
        for (int j = 0; j < in->k; j++) clipped += scale[j] != 1.0;
        step.delta_scale = scale;
    }
    in = &step;
    /* Step 1: d̄ into out (used as scratch until step 3 overwrites it element-wise). */
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t ch = 0; ch < nchunks; ch++)
        def->combine(c, in, w, wsum, ch * CHUNK, (ch + 1) * CHUNK < n ? (ch + 1) * CHUNK : n, out);
    /* Step 2: the pseudo-gradient's global norm (‖g‖ = ‖d̄‖) and the factor on it. */
    double pg = sqrt(pipe_algo_sqnorm(out, n, nt));
    pipe_algo_round r = {.c = c, .state = in->state, .scale = def->clip ? def->clip(c, pg) : 1.0};
    if (def->prepare) def->prepare(c, in, &r);

    /* Step 3: the outer step, then ‖θ_{v+1} − θ_v‖² per chunk, added in chunk order. */
    double *part = calloc(nchunks ? (size_t)nchunks : 1, sizeof *part);
    XFFL_RETURN_IF(!part, XFFL_ERR_NOMEM, "aggregation: %lld chunk sums", (long long)nchunks);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t ch = 0; ch < nchunks; ch++) {
        int64_t lo = ch * CHUNK, end = (ch + 1) * CHUNK < n ? (ch + 1) * CHUNK : n;
        def->outer(&r, in->base, lo, end, out);
        double s2 = 0;
        for (int64_t i = lo; i < end; i++) {
            double d = (double)out[i] - (double)in->base[i];
            s2 += d * d;
        }
        part[ch] = s2;
    }
    double up2 = 0;
    for (int64_t ch = 0; ch < nchunks; ch++) up2 += part[ch];
    free(part);
    if (stats) {
        memset(stats, 0, sizeof *stats); /* padding too: callers compare stats bytewise */
        stats->pg_norm = pg;
        stats->clip_scale = r.scale;
        stats->update_norm = sqrt(up2);
        stats->deltas_clipped = clipped;
        stats->deltas_dropped = dropped;
        if (c->delta_filter > 0)
            for (int j = 0; j < kept_in.k + dropped && j < MAX_SORT; j++) {
                stats->filter_distance[j] = fdist[j];
                stats->filter_cosine[j] = fcos[j];
                stats->filter_dropped[j] = (unsigned char)!keep[j];
            }
    }
    return XFFL_OK;
}
