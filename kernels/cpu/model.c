/* The CPU backend (kernels/backend.h): fp32, OpenMP + OpenBLAS; or, with
 * kern_options.precision bf16, the GEMMs in bf16 through oneDNN (kernels/cpu/bf16.h; the
 * bf16 copies are listed at lin_fwd and layer_ab).
 *
 * One slab holds params, grads, AdamW m, v (table order) and then the activations of
 * a Bmax x Tmax micro-batch, planned once. Per layer l (N = Bmax*Tmax, Dqkv = (H+2KV)*hd):
 *   x[l] (N,D) layer input; xn1 (N,D), rstd1 (N); qkv (N,Dqkv) with q and k after RoPE (bf16 mode: before;
 *   the bf16 copy in the attention's head-major layout is after);
 *   P (B,H,T,T) causal softmax; att (N,D) before wo; mid (N,D) = x + att wo^T;
 *   xn2 (N,D), rstd2 (N); h13 (N,2F) = [w1 out | w3 out]; g (N,F).
 * then x[L] (N,D), xnf (N,D), rstdf (N), logits (N,V) (turned into dlogits by backward),
 * lse, losses (N), and backward scratch: dx, dxn, datt (N,D), dqkv (N,Dqkv), dg (N,F), dh13 (N,2F),
 * w13, dw13 (2F,D): w1 and w3 side by side,
 * dS (threads,T,T). Allocating it all once is what keeps training free of malloc.
 *
 * wq, wk, wv are adjacent in the table ([Dqkv, D] together), so q, k and v come out of one
 * sgemm, and their gradients go back through one. w1 and w3 are not adjacent (w2 sits
 * between): they are copied side by side into w13 so both projections are one sgemm and
 * the input gradient one sgemm with an inner dimension of 2F; their weight gradient goes
 * through dw13 and is added back to w1's and w3's slots. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "kernels/backend.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/prof.h"

#ifdef XFFL_OPPROF
static struct {
    const char *name;
    double s;
    long n;
} prof[64];
void kcpu_prof_add(const char *name, double s)
{
    int i = 0;
    while (i < 63 && prof[i].name && strcmp(prof[i].name, name)) i++;
    prof[i].name = name, prof[i].s += s, prof[i].n++;
}
void kcpu_prof_print(void)
{
    double tot = 0;
    for (int i = 0; i < 64 && prof[i].name; i++) tot += prof[i].s;
    for (int i = 0; i < 64 && prof[i].name; i++)
        fprintf(stderr, "prof %-16s %8.3f s %5.1f%% %ld\n", prof[i].name, prof[i].s, 100 * prof[i].s / tot, prof[i].n);
    fprintf(stderr, "prof %-16s %8.3f s\n", "total", tot);
}
#endif

typedef struct {
    float *x, *xn1, *rstd1, *qkv, *P, *att, *mid, *xn2, *rstd2, *h13, *g;
} layer_acts;

/* bf16 mode: one layer's weights in bf16, w1 and w3 side by side (one GEMM for both),
 * and the bf16 copies of its GEMM inputs, made once in the forward and read again by
 * the weight gradients (the attention's q, k, v too). */
typedef struct {
    kcpu_bf16_t *qkv, *wo, *w13, *w2;
} layer_wb;
typedef struct {
    kcpu_bf16_t *xn1, *qkv, *att, *xn2, *g;
} layer_ab;

typedef struct {
    ckpt_model_config cfg;
    const ckpt_param_table *t;
    int Bmax, Tmax, threads;
    int recompute;    /* 1: one layer's activations, recomputed in the backward (only x kept per layer) */
    int no_optimizer; /* 1: no m, v slabs (the optimizer runs outside: pipelines/loop.h) */
    int D, H, KV, hd, F, V, L, Dqkv;
    float *slab;
    uint64_t bytes;
    float *params, *grads, *mom, *var;
    int64_t step;
    layer_acts *la; /* L + 1 (only x of the last) */
    float *xnf, *rstdf, *logits, *lse, *losses;
    float *dx, *dxn, *datt, *dqkv, *dg, *dh13, *w13, *dw13, *dS;
    float *rope_cos, *rope_sin;
    int32_t *tok, *tgt;
    int B, T, have_targets, have_logits;
    /* bf16 mode (kcpu_bf16_*): the weights' bf16 copy, remade on the first forward after
     * the parameters change; the staging buffer of output gradients (gb) */
    kcpu_bf16_ctx *bf;
    kcpu_bf16_t *wb, *outb, *gb;
    kcpu_bf16_t *Pb;  /* attention: each layer's P in bf16, (B,H,T,T) (one with recompute) */
    kcpu_bf16_t *dSb; /* attention backward: dS in bf16 (B,H,T,T) */
    float *dP;        /* attention backward: dP, then dS, (B,H,T,T) */
    float *hs;        /* attention: O (forward), dq|dk|dv (backward) head-major, N*Dqh (not with flash) */
    int Dqh;          /* (H+2KV)*hp: q|k|v in the attention's padded head-major layout */
    int pbT;          /* the T whose causal zeros Pb and dSb hold (0: none yet) */
    int flash;        /* 1: the fused AMX attention (kcpu_bf16_flash_*): no Pb, dSb, dP; the
                       * layer's P region holds the log-sum-exp per query row, (B,H,T) */
    void *fscr;       /* its per-thread scratch */
    layer_wb *lw;
    layer_ab *lab;     /* L (all alike with recompute) */
    kcpu_bf16_t *abuf; /* their storage; then the final norm's output */
    kcpu_bf16_t *xnfb;
    int wdirty;
    /* bf16 mode: zero_grad only marks the gradients zero; the next backward writes the
     * GEMMs' weight gradients instead of adding to them and zeroes the rest first (the
     * embedding's, the norms'), which saves a pass over every gradient per step. A -0 that
     * adding to +0 would have made +0 leaves AdamW's results unchanged. */
    int gzero;
} cpu_model;

static int cpu_available(void) { return 1; }

static void set_threads(cpu_model *m)
{
    omp_set_num_threads(m->threads);
    openblas_set_num_threads(m->threads);
}

static void cpu_destroy(void *impl)
{
    cpu_model *m = impl;
    if (!m) return;
#ifdef XFFL_OPPROF
    kcpu_prof_print();
#endif
    free(m->slab);
    kcpu_bf16_free(m->bf);
    free(m->wb);
    free(m->gb);
    free(m->Pb);
    free(m->dSb);
    free(m->dP);
    free(m->fscr);
    free(m->hs);
    free(m->lw);
    free(m->lab);
    free(m->abuf);
    free(m->la);
    free(m->tok);
    free(m->tgt);
    free(m);
}

static XFFL_MUST_USE xffl_status cpu_create(const ckpt_model_config *cfg, const ckpt_param_table *t, const kern_options *opt,
                              void **impl)
{
    *impl = NULL;
    cpu_model *m = calloc(1, sizeof *m);
    if (!m) return xffl_fail(XFFL_ERR_NOMEM, "cpu backend");
    m->cfg = *cfg;
    m->t = t;
    m->Bmax = opt->batch;
    m->Tmax = opt->seq_len;
    m->threads = opt->threads > 0 ? opt->threads : omp_get_num_procs();
    m->recompute = opt->recompute;
    m->no_optimizer = opt->no_optimizer;
    m->D = cfg->dim;
    m->H = cfg->n_heads;
    m->KV = cfg->n_kv_heads;
    m->hd = cfg->dim / cfg->n_heads;
    m->F = cfg->hidden_dim;
    m->V = cfg->vocab_size;
    m->L = cfg->n_layers;
    m->Dqkv = (m->H + 2 * m->KV) * m->hd;
    xffl_status st = XFFL_OK;
    m->la = calloc((size_t)m->L + 1, sizeof *m->la);
    int64_t N = (int64_t)m->Bmax * m->Tmax;
    m->tok = malloc((size_t)N * sizeof *m->tok);
    m->tgt = malloc((size_t)N * sizeof *m->tgt);
    if (!m->la || !m->tok || !m->tgt) {
        st = xffl_fail(XFFL_ERR_NOMEM, "cpu backend tables");
        goto fail;
    }
    for (int l = 0; l < m->L; l++) {
        const ckpt_param *q = &t->params[ckpt_param_index(t, CKPT_SLOT_WQ, l)];
        const ckpt_param *k = &t->params[ckpt_param_index(t, CKPT_SLOT_WK, l)];
        const ckpt_param *v = &t->params[ckpt_param_index(t, CKPT_SLOT_WV, l)];
        if (k->offset != q->offset + q->numel || v->offset != k->offset + k->numel) {
            st = xffl_fail(XFFL_ERR_INTERNAL, "parameter table: layer %d's wq, wk, wv are not adjacent", l);
            goto fail;
        }
    }
    /* plan: sizes in floats, each region rounded up to 16 floats (64-byte alignment) */
    int64_t P = t->total, D = m->D, F = m->F, V = m->V, Dq = m->Dqkv;
    int64_t TT = (int64_t)m->Tmax * m->Tmax;
#define R16(n) (((n) + 15) / 16 * 16)
#define R16x(n) (((n) + 31) / 32 * 32)
    int64_t per_layer = R16(N * D) * 5 + R16(N) * 2 + R16(N * Dq) + R16((int64_t)m->Bmax * m->H * TT) + R16(N * F) * 3;
    int64_t kept = m->recompute ? R16(N * D) : per_layer; /* per layer; the first layer holds the shared set */
    int64_t tail = R16(N * D) * 2 + R16(N) * 3 + R16(N * V) + R16(N * D) * 3 + R16(N * Dq) + R16(N * F) * 3 + R16(2 * F * D) * 2 +
                   R16((int64_t)m->threads * TT) + R16((int64_t)m->Tmax * m->hd / 2) * 2;
    int64_t total = R16(P) * (m->no_optimizer ? 2 : 4) + per_layer + kept * (m->L - 1) + tail;
    m->bytes = (uint64_t)total * sizeof(float);
    m->slab = xffl_alloc_big((size_t)m->bytes);
    if (!m->slab) {
        st = xffl_fail(XFFL_ERR_NOMEM, "cpu backend slab (%.1f MiB)", m->bytes / 1048576.0);
        goto fail;
    }
    float *p = m->slab;
#define TAKE(n) (p += R16(n), p - R16(n))
    m->params = TAKE(P);
    m->grads = TAKE(P);
    if (!m->no_optimizer) {
        m->mom = TAKE(P);
        m->var = TAKE(P);
    }
    for (int l = 0; l <= m->L; l++) {
        layer_acts *a = &m->la[l];
        a->x = TAKE(N * D);
        if (l == m->L) break;
        if (m->recompute && l > 0) { /* the shared set of layer 0 */
            layer_acts *s0 = &m->la[0];
            a->xn1 = s0->xn1, a->rstd1 = s0->rstd1, a->qkv = s0->qkv, a->P = s0->P, a->att = s0->att;
            a->mid = s0->mid, a->xn2 = s0->xn2, a->rstd2 = s0->rstd2, a->h13 = s0->h13, a->g = s0->g;
            continue;
        }
        a->xn1 = TAKE(N * D);
        a->rstd1 = TAKE(N);
        a->qkv = TAKE(N * Dq);
        a->P = TAKE((int64_t)m->Bmax * m->H * TT);
        a->att = TAKE(N * D);
        a->mid = TAKE(N * D);
        a->xn2 = TAKE(N * D);
        a->rstd2 = TAKE(N);
        a->h13 = TAKE(2 * N * F);
        a->g = TAKE(N * F);
    }
    m->xnf = TAKE(N * D);
    m->rstdf = TAKE(N);
    m->logits = TAKE(N * V);
    m->lse = TAKE(N);
    m->losses = TAKE(N);
    m->dx = TAKE(N * D);
    m->dxn = TAKE(N * D);
    m->datt = TAKE(N * D);
    m->dqkv = TAKE(N * Dq);
    m->dg = TAKE(N * F);
    m->dh13 = TAKE(2 * N * F);
    m->w13 = TAKE(2 * F * D);
    m->dw13 = TAKE(2 * F * D);
    m->dS = TAKE((int64_t)m->threads * TT);
    m->rope_cos = TAKE((int64_t)m->Tmax * m->hd / 2);
    m->rope_sin = TAKE((int64_t)m->Tmax * m->hd / 2);
#undef TAKE
    /* first touch by the threads that will use the pages, and a defined starting state */
    set_threads(m);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < total; i++) m->slab[i] = 0;
    kcpu_rope_table(m->rope_cos, m->rope_sin, m->Tmax, m->hd, cfg->rope_theta);
    if (opt->precision == KERN_PREC_BF16) {
        XFFL_CHECK_GOTO(st, kcpu_bf16_create(&m->bf), fail);
        int64_t per = Dq * D + D * D + 3 * F * D, nw = per * m->L + V * D;
        int64_t hp = kcpu_bf16_head_pad(m->hd), Dqh = (m->H + 2 * m->KV) * hp;
        m->Dqh = (int)Dqh;
        /* the staging buffer holds any GEMM's output gradient, (N, max(Dq, 2F, D, V)), and
         * the attention's head-major dO (N, H*hp) */
        int64_t wide = Dq > 2 * F ? Dq : 2 * F;
        wide = wide > m->H * hp ? wide : m->H * hp;
        int64_t ng = N * (wide > V ? (wide > D ? wide : D) : (V > D ? V : D));
        m->wb = xffl_alloc_big((size_t)R16x(nw) * 2);
        m->gb = xffl_alloc_big((size_t)R16x(ng) * 2);
        m->lw = calloc((size_t)m->L, sizeof *m->lw);
        int64_t np = (int64_t)m->Bmax * m->H * TT;
        int nPb = m->recompute ? 1 : m->L;
        int64_t per_ab = R16x(N * D) * 3 + R16x(N * Dqh) + R16x(N * F);
        m->lab = calloc((size_t)m->L, sizeof *m->lab);
        m->abuf = xffl_alloc_big((size_t)(per_ab * nPb + R16x(N * D)) * 2);
        if (m->lab && m->abuf) {
            for (int l = 0; l < m->L; l++) {
                kcpu_bf16_t *q = m->abuf + per_ab * (m->recompute ? 0 : l);
                m->lab[l] = (layer_ab){q, q + R16x(N * D), q + R16x(N * D) + R16x(N * Dqh),
                                       q + R16x(N * D) * 2 + R16x(N * Dqh), q + R16x(N * D) * 3 + R16x(N * Dqh)};
            }
            m->xnfb = m->abuf + per_ab * nPb;
        }
        m->flash = kcpu_bf16_flash_available();
        size_t fs = m->flash ? kcpu_bf16_flash_scratch(m->Tmax, m->hd) * (size_t)m->threads : 0;
        if (m->flash) { /* the T x T buffers are not needed */
            np = 0;
            m->fscr = xffl_alloc_big(fs);
        } else {
            m->Pb = xffl_alloc_big((size_t)R16x(np) * 2 * nPb);
            m->dSb = xffl_alloc_big((size_t)R16x(np) * 2);
            m->dP = xffl_alloc_big((size_t)R16x(np) * 4);
        }
        if (!m->flash) m->hs = xffl_alloc_big((size_t)R16(N * Dqh) * 4);
        if (!m->wb || !m->gb || !m->lw || (m->flash ? !m->fscr : !m->Pb || !m->dSb || !m->dP || !m->hs) || !m->lab ||
            !m->abuf) {
            st = xffl_fail(XFFL_ERR_NOMEM, "cpu backend bf16 copies");
            goto fail;
        }
        kcpu_bf16_t *w = m->wb;
        for (int l = 0; l < m->L; l++) {
            m->lw[l] = (layer_wb){w, w + Dq * D, w + Dq * D + D * D, w + Dq * D + D * D + 2 * F * D};
            w += per;
        }
        m->outb = w;
        m->bytes += (uint64_t)(R16x(nw) + R16x(ng) + (np ? R16x(np) * (nPb + 1) : 0) + per_ab * nPb + R16x(N * D)) * 2 +
                    (uint64_t)(R16x(np) + (m->flash ? 0 : R16(N * Dqh))) * 4 + fs;
        m->wdirty = 1;
    }
#undef R16
#undef R16x
    *impl = m;
    return XFFL_OK;
fail:
    cpu_destroy(m);
    return st;
}

static XFFL_MUST_USE xffl_status cpu_set_params(void *impl, const float *p)
{
    cpu_model *m = impl;
    memcpy(m->params, p, (size_t)m->t->total * sizeof *p);
    m->wdirty = 1;
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status cpu_get_params(void *impl, float *p)
{
    cpu_model *m = impl;
    memcpy(p, m->params, (size_t)m->t->total * sizeof *p);
    return XFFL_OK;
}
/* The gradients as zero_grad left them, before anything reads them as a whole. */
static void grads_materialize(cpu_model *m)
{
    if (!m->gzero) return;
    int64_t n = m->t->total;
    float *g = m->grads;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] = 0;
    m->gzero = 0;
}

static XFFL_MUST_USE xffl_status cpu_get_grads(void *impl, float *g)
{
    cpu_model *m = impl;
    grads_materialize(m);
    memcpy(g, m->grads, (size_t)m->t->total * sizeof *g);
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status cpu_get_grads_range(void *impl, int64_t off, int64_t n, float *out)
{
    cpu_model *m = impl;
    grads_materialize(m);
    memcpy(out, m->grads + off, (size_t)n * sizeof *out);
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status cpu_set_params_range(void *impl, int64_t off, int64_t n, const float *in, int last)
{
    cpu_model *m = impl;
    (void)last;
    memcpy(m->params + off, in, (size_t)n * sizeof *in);
    m->wdirty = 1;
    return XFFL_OK;
}
static void cpu_host_slabs(void *impl, float **params, float **grads)
{
    cpu_model *m = impl;
    grads_materialize(m); /* the caller reads the slab itself; only a backward clears gzero again */
    *params = m->params;
    *grads = m->grads;
}
static void cpu_params_written(void *impl) { ((cpu_model *)impl)->wdirty = 1; }
static XFFL_MUST_USE xffl_status no_optimizer(const char *what)
{
    return xffl_fail(XFFL_ERR_USAGE, "%s: this model was created without optimizer state (no_optimizer)", what);
}
static XFFL_MUST_USE xffl_status cpu_reset_optimizer(void *impl)
{
    cpu_model *m = impl;
    m->step = 0;
    if (m->no_optimizer) return XFFL_OK;
    memset(m->mom, 0, (size_t)m->t->total * sizeof *m->mom);
    memset(m->var, 0, (size_t)m->t->total * sizeof *m->var);
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status cpu_get_optimizer(void *impl, float *mom, float *var, int64_t *step)
{
    cpu_model *m = impl;
    if (m->no_optimizer) return no_optimizer("get_optimizer");
    if (mom) memcpy(mom, m->mom, (size_t)m->t->total * sizeof *mom);
    if (var) memcpy(var, m->var, (size_t)m->t->total * sizeof *var);
    if (step) *step = m->step;
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status cpu_set_optimizer(void *impl, const float *mom, const float *var, int64_t step)
{
    cpu_model *m = impl;
    if (m->no_optimizer) return no_optimizer("set_optimizer");
    memcpy(m->mom, mom, (size_t)m->t->total * sizeof *mom);
    memcpy(m->var, var, (size_t)m->t->total * sizeof *var);
    m->step = step;
    return XFFL_OK;
}
static XFFL_MUST_USE xffl_status cpu_zero_grad(void *impl)
{
    cpu_model *m = impl;
    set_threads(m);
    m->gzero = 1;
    if (!m->bf) KPROF("zero_grad", grads_materialize(m)); /* the fp32 path's bits, -0 included */
    return XFFL_OK;
}

/* Weights and gradients of slot s in layer l (ignored outside the layers). */
static float *W(cpu_model *m, ckpt_slot s, int l)
{
    return m->params + m->t->params[ckpt_param_index(m->t, s, l)].offset;
}
static float *G(cpu_model *m, ckpt_slot s, int l)
{
    return m->grads + m->t->params[ckpt_param_index(m->t, s, l)].offset;
}

static void fuse_w13(cpu_model *m, int l)
{
    size_t n = (size_t)m->F * m->D;
    memcpy(m->w13, W(m, CKPT_SLOT_W1, l), n * sizeof(float));
    memcpy(m->w13 + n, W(m, CKPT_SLOT_W3, l), n * sizeof(float));
}

static void unfuse_dw13(cpu_model *m, int l)
{
    int64_t n = (int64_t)m->F * m->D;
    float *g1 = G(m, CKPT_SLOT_W1, l), *g3 = G(m, CKPT_SLOT_W3, l), *d = m->dw13;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        g1[i] += d[i];
        g3[i] += d[n + i];
    }
}

/* ---- linear layers: y = x W^T and its two gradients, fp32 (OpenBLAS) or bf16 (oneDNN) ----
 * bf16: x and dy are rounded to bf16 per call into the staging buffers (ab, gb), W comes
 * from the step's bf16 copy; products accumulate in fp32 into fp32 outputs. */

/* Where parameter p's bf16 copy lives (NULL: it has none; norms and the embedding are
 * used in fp32): wq|wk|wv and w1|w3 are each one fused matrix. */
static kcpu_bf16_t *wb_of(cpu_model *m, const ckpt_param *p)
{
    const layer_wb *w = p->layer >= 0 ? &m->lw[p->layer] : NULL;
    int64_t D = m->D, F = m->F, Dkv = (int64_t)m->KV * m->hd;
    switch (p->slot) {
    case CKPT_SLOT_WQ: return w->qkv;
    case CKPT_SLOT_WK: return w->qkv + D * D;
    case CKPT_SLOT_WV: return w->qkv + (D + Dkv) * D;
    case CKPT_SLOT_WO: return w->wo;
    case CKPT_SLOT_W1: return w->w13;
    case CKPT_SLOT_W3: return w->w13 + F * D;
    case CKPT_SLOT_W2: return w->w2;
    case CKPT_SLOT_OUTPUT: return m->outb;
    default: return NULL;
    }
}

/* The bf16 copy of the weights after a parameter change that AdamW did not make (AdamW
 * writes it in its own pass). */
static void refresh_wb(cpu_model *m)
{
    if (!m->bf || !m->wdirty) return;
    for (int i = 0; i < m->t->count; i++) {
        const ckpt_param *p = &m->t->params[i];
        kcpu_bf16_t *b = wb_of(m, p);
        if (b) kcpu_to_bf16(b, m->params + p->offset, p->numel);
    }
    m->wdirty = 0;
}

static int cpu_param_bf16(void *impl, int i)
{
    cpu_model *m = impl;
    return m->bf && wb_of(m, &m->t->params[i]) != NULL;
}

/* The bf16 copies of the weights in [off, off+n) from slab-order bf16 values; the
 * caller wrote the other parameters' fp32 values (kern.h), so after the last piece the
 * copies are current and the fp32 values of these weights are not consulted. */
static XFFL_MUST_USE xffl_status cpu_set_params_bf16_range(void *impl, int64_t off, int64_t n, const uint16_t *in,
                                                           int last)
{
    cpu_model *m = impl;
    XFFL_RETURN_IF(!m->bf, XFFL_ERR_USAGE, "set_params_bf16_range: the cpu backend runs fp32 here");
    for (int i = 0; i < m->t->count && n > 0; i++) {
        const ckpt_param *p = &m->t->params[i];
        int64_t lo = off > p->offset ? off : p->offset, hi = p->offset + p->numel < off + n ? p->offset + p->numel
                                                                                            : off + n;
        kcpu_bf16_t *b = hi > lo ? wb_of(m, p) : NULL;
        if (b) memcpy(b + (lo - p->offset), in + (lo - off), (size_t)(hi - lo) * sizeof *b);
    }
    if (last) m->wdirty = 0;
    return XFFL_OK;
}

/* out[N,O] (ldo) = beta out + x[N,K] W[O,K]^T. bf16 mode: x rounded into xb (x NULL: xb
 * holds it already), Wb: W's bf16 copy. */
static XFFL_MUST_USE xffl_status lin_fwd(cpu_model *m, float *out, int ldo, const float *x, kcpu_bf16_t *xb,
                                         const float *Wf, const kcpu_bf16_t *Wb, int N, int K, int O, float beta)
{
    if (!m->bf) {
        kcpu_matmul_fwd(out, ldo, x, Wf, N, K, O, beta);
        return XFFL_OK;
    }
    if (x) KPROF("cast_act", kcpu_to_bf16(xb, x, (int64_t)N * K));
    KPROF("gemm_fwd", XFFL_FORWARD(kcpu_bf16_gemm(m->bf, 0, 1, N, O, K, xb, K, Wb, K, beta, out, ldo)));
    return XFFL_OK;
}

/* dx[N,K] = beta_dx dx + dout W (dx may be NULL); dW[O,K] += dout^T x. dout: [N,O] (row
 * stride O). bf16 mode: dout rounded into the staging buffer (dout NULL: it holds it
 * already), x's bf16 copy xb from the forward; with dW2, W is two stacked [O/2,K]
 * halves whose gradients go to dW and dW2 (w1 and w3 of the fused SwiGLU projection). */
static XFFL_MUST_USE xffl_status lin_bwd(cpu_model *m, float *dx, float beta_dx, float *dW, float *dW2,
                                         const float *dout, const float *x, const kcpu_bf16_t *xb, const float *Wf,
                                         const kcpu_bf16_t *Wb, int N, int K, int O)
{
    if (!m->bf) {
        kcpu_matmul_bwd(dx, beta_dx, dW, dout, x, Wf, N, K, O);
        return XFFL_OK;
    }
    if (dout) KPROF("cast_grad", kcpu_to_bf16(m->gb, dout, (int64_t)N * O));
    if (dx) KPROF("gemm_dx", XFFL_FORWARD(kcpu_bf16_gemm(m->bf, 0, 0, N, K, O, m->gb, O, Wb, K, beta_dx, dx, K)));
    if (!dW2) {
        KPROF("gemm_dw", XFFL_FORWARD(kcpu_bf16_gemm(m->bf, 1, 0, O, K, N, m->gb, O, xb, K, m->gzero ? 0.0f : 1.0f,
                                                     dW, K)));
        return XFFL_OK;
    }
    /* one GEMM into dw13, then added to the two halves' slots: a GEMM per half would read
     * dout's columns with a row stride of O, a layout oneDNN's AMX brgemm does not take */
    int64_t h = (int64_t)(O / 2) * K;
    float *d = m->dw13;
    KPROF("gemm_dw", XFFL_FORWARD(kcpu_bf16_gemm(m->bf, 1, 0, O, K, N, m->gb, O, xb, K, 0.0f, d, K)));
    KPROF_BEGIN(t0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < h; i++) {
        dW[i] = m->gzero ? d[i] : dW[i] + d[i];
        dW2[i] = m->gzero ? d[h + i] : dW2[i] + d[h + i];
    }
    KPROF_END("dw13_add", t0);
    return XFFL_OK;
}

static void rmsnorm_bwd(cpu_model *m, float *dx, float *dg, const float *dout, const float *x, const float *g,
                        const float *rstd, int N, int D)
{
    if (m->bf) KPROF("rmsnorm_bwd", kcpu_bf16_rmsnorm_bwd(dx, dg, dout, x, g, rstd, N, D));
    else kcpu_rmsnorm_bwd(dx, dg, dout, x, g, rstd, N, D);
}

/* Layer l's bf16 copy of P (B,H,T,T) */
static kcpu_bf16_t *layer_Pb(cpu_model *m, int l)
{
    return m->recompute ? m->Pb : m->Pb + (((int64_t)m->Bmax * m->H * m->Tmax * m->Tmax + 31) / 32 * 32) * l;
}

/* Layer l's forward from x[l] into its activations and x[l+1] (the last forward's B x T). */
static XFFL_MUST_USE xffl_status layer_fwd(cpu_model *m, int l)
{
    int B = m->B, T = m->T, N = B * T, D = m->D, H = m->H, KV = m->KV, hd = m->hd, F = m->F, Dq = m->Dqkv;
    float eps = m->cfg.norm_eps;
    layer_acts *a = &m->la[l];
    layer_wb *lw = m->bf ? &m->lw[l] : &(layer_wb){0};
    layer_ab *lb = m->bf ? &m->lab[l] : &(layer_ab){0};
    /* mid = x + att wo^T and x[l+1] = mid + g w2^T accumulate into copies of x and mid,
     * which the bf16 mode makes in its norms' passes over them */
    if (m->bf) KPROF("rmsnorm_fwd", kcpu_bf16_rmsnorm_fwd(lb->xn1, a->xn1, a->rstd1, a->mid, a->x, W(m, CKPT_SLOT_ATTN_NORM, l), N, D, eps));
    else kcpu_rmsnorm_fwd(a->xn1, a->rstd1, a->x, W(m, CKPT_SLOT_ATTN_NORM, l), N, D, eps);
    XFFL_FORWARD(lin_fwd(m, a->qkv, Dq, m->bf ? NULL : a->xn1, lb->xn1, W(m, CKPT_SLOT_WQ, l), lw->qkv, N, D, Dq, 0.0f));
    if (m->bf) { /* RoPE, rounding and the head-major move in one pass; att comes out in bf16 */
        KPROF("att_move", kcpu_bf16_qkv_heads(lb->qkv, a->qkv, Dq, B, T, H, KV, hd, m->rope_cos, m->rope_sin));
        if (m->flash) /* a->P: the log-sum-exp per query row */
            KPROF("flash_fwd", kcpu_bf16_flash_fwd(lb->att, D, a->P, lb->qkv, B, T, H, KV, hd, m->fscr, m->threads));
        else
            XFFL_FORWARD(kcpu_bf16_attention_fwd(m->bf, lb->att, D, m->hs, a->P, lb->qkv, B, T, H, KV, hd, layer_Pb(m, l)));
    } else {
        kcpu_rope(a->qkv, Dq, B, T, H, hd, m->rope_cos, m->rope_sin, 0);
        kcpu_rope(a->qkv + H * hd, Dq, B, T, KV, hd, m->rope_cos, m->rope_sin, 0);
        kcpu_attention_fwd(a->att, D, a->P, a->qkv, Dq, a->qkv + H * hd, a->qkv + (H + KV) * hd, Dq, B, T, H, KV, hd);
    }
    if (!m->bf) memcpy(a->mid, a->x, (size_t)N * D * sizeof(float));
    XFFL_FORWARD(lin_fwd(m, a->mid, D, m->bf ? NULL : a->att, lb->att, W(m, CKPT_SLOT_WO, l), lw->wo, N, D, D, 1.0f));
    float *next = m->la[l + 1].x;
    if (m->bf) KPROF("rmsnorm_fwd", kcpu_bf16_rmsnorm_fwd(lb->xn2, a->xn2, a->rstd2, next, a->mid, W(m, CKPT_SLOT_FFN_NORM, l), N, D, eps));
    else kcpu_rmsnorm_fwd(a->xn2, a->rstd2, a->mid, W(m, CKPT_SLOT_FFN_NORM, l), N, D, eps);
    if (!m->bf) fuse_w13(m, l);
    XFFL_FORWARD(lin_fwd(m, a->h13, 2 * F, m->bf ? NULL : a->xn2, lb->xn2, m->w13, lw->w13, N, D, 2 * F, 0.0f));
    if (m->bf) KPROF("swiglu_fwd", kcpu_bf16_swiglu13_fwd(lb->g, a->g, a->h13, N, F)); /* g straight to bf16 */
    else kcpu_swiglu13_fwd(a->g, a->h13, N, F);
    if (!m->bf) memcpy(next, a->mid, (size_t)N * D * sizeof(float));
    return lin_fwd(m, next, D, m->bf ? NULL : a->g, lb->g, W(m, CKPT_SLOT_W2, l), lw->w2, N, F, D, 1.0f);
}

static XFFL_MUST_USE xffl_status cpu_forward(void *impl, const int32_t *inputs, const int32_t *targets, int B, int T, float *loss)
{
    cpu_model *m = impl;
    if (B < 1 || T < 1 || B > m->Bmax || T > m->Tmax)
        return xffl_fail(XFFL_ERR_USAGE, "forward: micro-batch %d x %d outside the planned %d x %d", B, T, m->Bmax,
                         m->Tmax);
    int N = B * T, D = m->D, V = m->V;
    for (int n = 0; n < N; n++) {
        if (inputs[n] < 0 || inputs[n] >= V)
            return xffl_fail(XFFL_ERR_INVALID, "forward: input token %d at (%d,%d) outside vocabulary %d", inputs[n],
                             n / T, n % T, V);
        if (targets && (targets[n] < 0 || targets[n] >= V))
            return xffl_fail(XFFL_ERR_INVALID, "forward: target token %d at (%d,%d) outside vocabulary %d",
                             targets[n], n / T, n % T, V);
    }
    set_threads(m);
    KPROF("cast_weights", refresh_wb(m));
    if (m->bf && !m->flash && m->pbT != T) { /* the attention writes only the causal part of Pb, dSb */
        int64_t np = ((int64_t)m->Bmax * m->H * m->Tmax * m->Tmax + 31) / 32 * 32;
        memset(m->Pb, 0, (size_t)np * 2 * (m->recompute ? 1 : m->L));
        memset(m->dSb, 0, (size_t)np * 2);
        m->pbT = T;
    }
    memcpy(m->tok, inputs, (size_t)N * sizeof *inputs);
    if (targets) memcpy(m->tgt, targets, (size_t)N * sizeof *targets);
    m->B = B;
    m->T = T;
    m->have_logits = m->have_targets = 0;
    float eps = m->cfg.norm_eps;
    KPROF("embedding", kcpu_embedding_fwd(m->la[0].x, m->tok, W(m, CKPT_SLOT_EMBEDDING, 0), N, D));
    for (int l = 0; l < m->L; l++) XFFL_FORWARD(layer_fwd(m, l));
    if (m->bf) KPROF("rmsnorm_fwd", kcpu_bf16_rmsnorm_fwd(m->xnfb, m->xnf, m->rstdf, NULL, m->la[m->L].x, W(m, CKPT_SLOT_NORM, 0), N, D, eps));
    else kcpu_rmsnorm_fwd(m->xnf, m->rstdf, m->la[m->L].x, W(m, CKPT_SLOT_NORM, 0), N, D, eps);
    XFFL_FORWARD(lin_fwd(m, m->logits, V, m->bf ? NULL : m->xnf, m->xnfb, W(m, CKPT_SLOT_OUTPUT, 0), m->outb, N, D, V, 0.0f));
    m->have_logits = 1;
    m->have_targets = targets != NULL;
    if (targets) {
        double mean;
        KPROF("xent", mean = kcpu_xent_fwd(m->losses, m->lse, m->logits, m->tgt, N, V));
        if (loss) *loss = (float)mean;
    } else if (loss) {
        *loss = 0;
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status cpu_backward(void *impl)
{
    cpu_model *m = impl;
    if (!m->have_targets || !m->have_logits)
        return xffl_fail(XFFL_ERR_USAGE, "backward: needs a forward with targets first (once per forward)");
    set_threads(m);
    int B = m->B, T = m->T, N = B * T, D = m->D, H = m->H, KV = m->KV, hd = m->hd, F = m->F, V = m->V, Dq = m->Dqkv;
    float *dlog = m->logits;
    if (m->gzero) { /* what the backward adds to rather than writes: the embedding's and the norms' gradients */
        KPROF_BEGIN(t0);
        for (int i = 0; i < m->t->count; i++) {
            const ckpt_param *p = &m->t->params[i];
            if (p->slot == CKPT_SLOT_EMBEDDING || p->kind == CKPT_KIND_NORM)
                memset(m->grads + p->offset, 0, (size_t)p->numel * sizeof(float));
        }
        KPROF_END("zero_grad", t0);
    }
    KPROF("xent", kcpu_xent_bwd(dlog, m->lse, m->tgt, N, V, 1.0f / (float)N));
    m->have_logits = 0;
    m->have_targets = 0;
    XFFL_FORWARD(lin_bwd(m, m->dxn, 0.0f, G(m, CKPT_SLOT_OUTPUT, 0), NULL, dlog, m->xnf, m->xnfb,
                         W(m, CKPT_SLOT_OUTPUT, 0), m->outb, N, D, V));
    KPROF("copy", memset(m->dx, 0, (size_t)N * D * sizeof(float)));
    rmsnorm_bwd(m, m->dx, G(m, CKPT_SLOT_NORM, 0), m->dxn, m->la[m->L].x, W(m, CKPT_SLOT_NORM, 0), m->rstdf, N, D);
    for (int l = m->L - 1; l >= 0; l--) {
        layer_acts *a = &m->la[l];
        layer_wb *lw = m->bf ? &m->lw[l] : &(layer_wb){0};
        layer_ab *lb = m->bf ? &m->lab[l] : &(layer_ab){0};
        if (m->recompute && l < m->L - 1) XFFL_FORWARD(layer_fwd(m, l)); /* the same ops on the same x[l]: the same bits */
        /* x[l+1] = mid + g w2^T */
        XFFL_FORWARD(lin_bwd(m, m->dg, 0.0f, G(m, CKPT_SLOT_W2, l), NULL, m->dx, a->g, lb->g, W(m, CKPT_SLOT_W2, l),
                             lw->w2, N, F, D));
        if (m->bf) KPROF("swiglu_bwd", kcpu_bf16_swiglu13_bwd(m->gb, m->dh13, m->dg, a->h13, N, F)); /* straight to the staging buffer */
        else kcpu_swiglu13_bwd(m->dh13, m->dg, a->h13, N, F);
        if (!m->bf) {
            fuse_w13(m, l);
            memset(m->dw13, 0, (size_t)2 * F * D * sizeof(float));
            kcpu_matmul_bwd(m->dxn, 0.0f, m->dw13, m->dh13, a->xn2, m->w13, N, D, 2 * F);
            unfuse_dw13(m, l);
        } else {
            XFFL_FORWARD(lin_bwd(m, m->dxn, 0.0f, G(m, CKPT_SLOT_W1, l), G(m, CKPT_SLOT_W3, l), NULL, a->xn2, lb->xn2,
                                 NULL, lw->w13, N, D, 2 * F));
        }
        rmsnorm_bwd(m, m->dx, G(m, CKPT_SLOT_FFN_NORM, l), m->dxn, a->mid, W(m, CKPT_SLOT_FFN_NORM, l), a->rstd2, N,
                         D);
        /* mid = x + att wo^T */
        XFFL_FORWARD(lin_bwd(m, m->datt, 0.0f, G(m, CKPT_SLOT_WO, l), NULL, m->dx, a->att, lb->att,
                             W(m, CKPT_SLOT_WO, l), lw->wo, N, D, D));
        if (m->flash) {
            KPROF("flash_bwd", XFFL_FORWARD(kcpu_bf16_flash_bwd(m->gb, Dq, m->datt, D, lb->att, a->P, lb->qkv, B, T, H,
                                                                KV, hd, m->rope_cos, m->rope_sin, m->fscr, m->threads)));
        } else if (m->bf) { /* d(q|k|v) come back in bf16 rows, RoPE undone, in the staging buffer */
            XFFL_FORWARD(kcpu_bf16_attention_bwd(m->bf, m->gb, Dq, m->hs, m->datt, D, a->P, layer_Pb(m, l), lb->qkv,
                                                 B, T, H, KV, hd, m->rope_cos, m->rope_sin, m->gb, m->dSb, m->dP));
        } else {
            kcpu_attention_bwd(m->dqkv, m->dqkv + H * hd, m->dqkv + (H + KV) * hd, m->datt, D, a->P, a->qkv, Dq,
                               a->qkv + H * hd, a->qkv + (H + KV) * hd, Dq, B, T, H, KV, hd, m->dS);
            kcpu_rope(m->dqkv, Dq, B, T, H, hd, m->rope_cos, m->rope_sin, 1);
            kcpu_rope(m->dqkv + H * hd, Dq, B, T, KV, hd, m->rope_cos, m->rope_sin, 1);
        }
        XFFL_FORWARD(lin_bwd(m, m->dxn, 0.0f, G(m, CKPT_SLOT_WQ, l), NULL, m->bf ? NULL : m->dqkv, a->xn1, lb->xn1,
                             W(m, CKPT_SLOT_WQ, l), lw->qkv, N, D, Dq));
        rmsnorm_bwd(m, m->dx, G(m, CKPT_SLOT_ATTN_NORM, l), m->dxn, a->x, W(m, CKPT_SLOT_ATTN_NORM, l), a->rstd1, N,
                         D);
    }
    KPROF("embedding", kcpu_embedding_bwd(G(m, CKPT_SLOT_EMBEDDING, 0), m->tok, m->dx, N, D));
    m->gzero = 0;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status cpu_adamw(void *impl, const kern_adamw_args *a, float *grad_norm)
{
    cpu_model *m = impl;
    if (m->no_optimizer) return no_optimizer("adamw");
    set_threads(m);
    grads_materialize(m);
    double norm;
    KPROF("grad_norm", norm = sqrt(kcpu_sumsq(m->grads, m->t->total)));
    if (grad_norm) *grad_norm = (float)norm;
    if (!isfinite(norm)) return xffl_fail(XFFL_ERR_INVALID, "adamw: gradient norm is %g", norm);
    float gscale = a->grad_clip > 0 && norm > a->grad_clip ? (float)(a->grad_clip / norm) : 1.0f;
    m->step++;
    double bc1 = 1.0 - pow(a->beta1, (double)m->step), bc2 = 1.0 - pow(a->beta2, (double)m->step);
    KPROF_BEGIN(t0);
    for (int i = 0; i < m->t->count; i++) {
        const ckpt_param *p = &m->t->params[i];
        float wd = p->kind == CKPT_KIND_NORM ? 0.0f : a->weight_decay;
        kcpu_adamw(m->params + p->offset, m->bf ? wb_of(m, p) : NULL, m->grads + p->offset, m->mom + p->offset,
                   m->var + p->offset, p->numel, a->lr, a->beta1, a->beta2, a->eps, wd, bc1, bc2, gscale);
    }
    KPROF_END("adamw", t0);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status cpu_logits(void *impl, int b, int t, float *out)
{
    cpu_model *m = impl;
    if (!m->have_logits)
        return xffl_fail(XFFL_ERR_USAGE, "logits: no forward since the last backward (backward reuses the buffer)");
    if (b < 0 || b >= m->B || t < 0 || t >= m->T)
        return xffl_fail(XFFL_ERR_USAGE, "logits: position (%d,%d) outside the last forward's %d x %d", b, t, m->B,
                         m->T);
    memcpy(out, m->logits + ((int64_t)b * m->T + t) * m->V, (size_t)m->V * sizeof *out);
    return XFFL_OK;
}

static uint64_t cpu_bytes(void *impl) { return ((cpu_model *)impl)->bytes; }

static const kern_backend cpu_backend = {
    .name = "cpu",
    .available = cpu_available,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .set_params = cpu_set_params,
    .get_params = cpu_get_params,
    .get_grads = cpu_get_grads,
    .get_grads_range = cpu_get_grads_range,
    .set_params_range = cpu_set_params_range,
    .host_slabs = cpu_host_slabs,
    .params_written = cpu_params_written,
    .param_bf16 = cpu_param_bf16,
    .set_params_bf16_range = cpu_set_params_bf16_range,
    .reset_optimizer = cpu_reset_optimizer,
    .get_optimizer = cpu_get_optimizer,
    .set_optimizer = cpu_set_optimizer,
    .forward = cpu_forward,
    .backward = cpu_backward,
    .zero_grad = cpu_zero_grad,
    .adamw = cpu_adamw,
    .logits = cpu_logits,
    .bytes = cpu_bytes,
    .recompute = 1,
};

const kern_backend *kern_cpu_backend(void) { return &cpu_backend; }
