#include "pipelines/algo.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Fixed chunk size for norms: per-chunk sums are independent of how chunks are
 * spread over threads, and the chunk sums are then added in chunk order. */
enum { CHUNK = 1 << 16, MAX_SORT = 256 };

static const char *const names[] = {
    [PIPE_ALGO_FEDAVG] = "fedavg", [PIPE_ALGO_DILOCO] = "diloco", [PIPE_ALGO_FEDADAM] = "fedadam",
    [PIPE_ALGO_MEDIAN] = "median", [PIPE_ALGO_TRIMMED] = "trimmed",
};

void pipe_algo_default(pipe_algo_kind kind, pipe_algo_config *c)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->outer_lr = kind == PIPE_ALGO_FEDADAM ? 0.01 : kind == PIPE_ALGO_DILOCO ? 0.7 : 1.0;
    c->momentum = 0.9;
    c->beta1 = 0.9;
    c->beta2 = 0.99;
    c->eps = 1e-8;
    c->trim = 0.1;
    c->clip_norm = 0;
}

const char *pipe_algo_name(pipe_algo_kind kind)
{
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

xffl_status pipe_algo_parse(const char *name, pipe_algo_kind *kind)
{
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name && !strcmp(name, names[i])) {
            *kind = (pipe_algo_kind)i;
            return XFFL_OK;
        }
    return xffl_fail(XFFL_ERR_USAGE, "unknown algorithm '%s' (fedavg, diloco, fedadam, median, trimmed)",
                     name ? name : "");
}

xffl_status pipe_algo_validate(const pipe_algo_config *c)
{
    XFFL_RETURN_IF((unsigned)c->kind > PIPE_ALGO_TRIMMED, XFFL_ERR_INVALID, "algorithm %d unknown", (int)c->kind);
    XFFL_RETURN_IF(!(c->outer_lr > 0), XFFL_ERR_INVALID, "outer_lr %g must be > 0", c->outer_lr);
    XFFL_RETURN_IF(!(c->momentum >= 0 && c->momentum < 1), XFFL_ERR_INVALID, "momentum %g outside [0,1)", c->momentum);
    XFFL_RETURN_IF(!(c->beta1 >= 0 && c->beta1 < 1), XFFL_ERR_INVALID, "beta1 %g outside [0,1)", c->beta1);
    XFFL_RETURN_IF(!(c->beta2 >= 0 && c->beta2 < 1), XFFL_ERR_INVALID, "beta2 %g outside [0,1)", c->beta2);
    XFFL_RETURN_IF(!(c->eps > 0), XFFL_ERR_INVALID, "eps %g must be > 0", c->eps);
    XFFL_RETURN_IF(!(c->trim >= 0 && c->trim < 0.5), XFFL_ERR_INVALID, "trim %g outside [0,0.5)", c->trim);
    XFFL_RETURN_IF(!(c->clip_norm >= 0), XFFL_ERR_INVALID, "clip_norm %g must be >= 0", c->clip_norm);
    return XFFL_OK;
}

int pipe_algo_state_count(pipe_algo_kind kind)
{
    return kind == PIPE_ALGO_DILOCO ? 1 : kind == PIPE_ALGO_FEDADAM ? 2 : 0;
}

const char *pipe_algo_state_group(pipe_algo_kind kind, int i)
{
    if (kind == PIPE_ALGO_DILOCO && i == 0) return "outer";
    if (kind == PIPE_ALGO_FEDADAM && i == 0) return "outer/m";
    if (kind == PIPE_ALGO_FEDADAM && i == 1) return "outer/v";
    return NULL;
}

int64_t pipe_algo_first_nonfinite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

static int nthreads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

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
#pragma omp parallel for schedule(static) num_threads(nthreads(threads))
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

/* Combined delta d̄ at element i (step 1). */
static double combine_one(const pipe_algo_config *c, const pipe_algo_input *in, const double *w, double wsum,
                          int64_t i, double *scratch)
{
    int k = in->k;
    if (c->kind == PIPE_ALGO_MEDIAN || c->kind == PIPE_ALGO_TRIMMED) {
        for (int j = 0; j < k; j++) scratch[j] = in->deltas[j][i];
        sort_small(scratch, k);
        if (c->kind == PIPE_ALGO_MEDIAN)
            return (k & 1) ? scratch[k / 2] : (scratch[k / 2 - 1] + scratch[k / 2]) / 2.0;
        int cut = (int)(c->trim * k);
        if (k - 2 * cut < 1) cut = (k - 1) / 2;
        double s = 0;
        for (int j = cut; j < k - cut; j++) s += scratch[j];
        return s / (double)(k - 2 * cut);
    }
    double s = 0;
    for (int j = 0; j < k; j++) s += w[j] * (double)in->deltas[j][i];
    return s / wsum;
}

xffl_status pipe_algo_apply(const pipe_algo_config *c, const pipe_algo_input *in, float *out, pipe_algo_stats *stats)
{
    XFFL_FORWARD(pipe_algo_validate(c));
    XFFL_RETURN_IF(in->k < 1, XFFL_ERR_INVALID, "aggregation needs at least one delta, got %d", in->k);
    XFFL_RETURN_IF(in->k > MAX_SORT, XFFL_ERR_INVALID, "at most %d contributors per round, got %d", MAX_SORT, in->k);
    XFFL_RETURN_IF(in->round < 1, XFFL_ERR_INVALID, "round %lld must be >= 1", (long long)in->round);
    XFFL_RETURN_IF(out == in->base, XFFL_ERR_INTERNAL, "aggregation output aliases the base");
    for (int s = 0; s < pipe_algo_state_count(c->kind); s++)
        XFFL_RETURN_IF(!in->state || !in->state[s], XFFL_ERR_INTERNAL, "%s needs outer state buffer %d",
                       pipe_algo_name(c->kind), s);
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
    const int nt = nthreads(in->threads);
    /* Step 1: d̄ into out (used as scratch until step 3 overwrites it element-wise). */
#pragma omp parallel num_threads(nt)
    {
        double scratch[MAX_SORT];
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = (float)combine_one(c, in, w, wsum, i, scratch);
    }
    /* Step 2: clip the pseudo-gradient's global norm (‖g‖ = ‖d̄‖). */
    double pg2 = pipe_algo_sqnorm(out, n, nt);
    double pg = sqrt(pg2);
    double scale = 1.0;
    if (c->clip_norm > 0 && pg > c->clip_norm) scale = c->clip_norm / pg;

    /* Step 3: outer step. Powers by repeated multiplication: no libm pow(). */
    double b1t = 1, b2t = 1;
    if (c->kind == PIPE_ALGO_FEDADAM)
        for (int64_t t = 0; t < in->round; t++) {
            b1t *= c->beta1;
            b2t *= c->beta2;
        }
    const double lr = c->outer_lr, mu = c->momentum;
    float *m = pipe_algo_state_count(c->kind) > 0 ? in->state[0] : NULL;
    float *v = pipe_algo_state_count(c->kind) > 1 ? in->state[1] : NULL;
    int64_t nchunks = (n + CHUNK - 1) / CHUNK;
    double *part = calloc(nchunks ? (size_t)nchunks : 1, sizeof *part);
    XFFL_RETURN_IF(!part, XFFL_ERR_NOMEM, "aggregation: %lld chunk sums", (long long)nchunks);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t ch = 0; ch < nchunks; ch++) {
        int64_t end = (ch + 1) * CHUNK < n ? (ch + 1) * CHUNK : n;
        double s2 = 0;
        for (int64_t i = ch * CHUNK; i < end; i++) {
            double g = -(double)out[i] * scale;
            double b = in->base[i], nb;
            switch (c->kind) {
            case PIPE_ALGO_DILOCO: {
                double mi = mu * (double)m[i] + g;
                m[i] = (float)mi;
                nb = c->heavy_ball ? b - lr * mi : b - lr * (g + mu * mi);
                break;
            }
            case PIPE_ALGO_FEDADAM: {
                double mi = c->beta1 * (double)m[i] + (1.0 - c->beta1) * g;
                double vi = c->beta2 * (double)v[i] + (1.0 - c->beta2) * g * g;
                m[i] = (float)mi;
                v[i] = (float)vi;
                double mh = mi / (1.0 - b1t), vh = vi / (1.0 - b2t);
                nb = b - lr * mh / (sqrt(vh) + c->eps);
                break;
            }
            default: nb = b - g; break;
            }
            out[i] = (float)nb;
            double d = (double)out[i] - b;
            s2 += d * d;
        }
        part[ch] = s2;
    }
    double up2 = 0;
    for (int64_t ch = 0; ch < nchunks; ch++) up2 += part[ch];
    free(part);
    if (stats) {
        stats->pg_norm = pg;
        stats->clip_scale = scale;
        stats->update_norm = sqrt(up2);
    }
    return XFFL_OK;
}
