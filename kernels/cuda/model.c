/* LLaMA-2 forward/backward/AdamW on one CUDA device (contract in model.h).
 *
 * Memory: one cudaMalloc slab holds parameters, gradients, AdamW moments, the bf16 weight
 * copy and every activation of a micro-batch, planned once from the parameter table and
 * the largest B, T. Layout of the activations kept for the backward, per layer l:
 *   res[l] (N,D) layer input; xn1 (N,D), rstd1 (N); qh, kh, vh (B,H,T,hd) post-RoPE, K and V
 *   repeated to H heads; P (B,H,T,T) causal softmax; att (N,D) attention output before wo;
 *   mid (N,D) = res + att wo^T; xn2 (N,D), rstd2 (N); h1, h3, g (N,Hd) SwiGLU.
 * res[L] is the final stream; then xnf (N,D), rstdf (N), logits and dlogits (N,V), lse (N).
 * Attention, two paths:
 *  - fused (bf16 mode, the default there): kernels/cuda/attn_fused.h, FlashAttention-2 style;
 *    a layer keeps q16 (N,D), k16, v16 (N,KV*hd) bf16 post-RoPE and flse (B,H,T) instead of
 *    qh, kh, vh and P: no O(T^2) buffer; the backward's scratch is do16 (N,D) and Dr (B,H,T).
 *  - reference (fp32 mode; bf16 with XFFL_CUDA_ATTENTION=reference; head sizes the fused
 *    kernels are not built for): three cuBLAS strided-batched GEMMs around a fused causal
 *    softmax, exact, at the price of the (B,H,T,T) P and dP per layer.
 *
 * With recompute (kcu_model_create_ex), only res[l] is kept per layer: every layer's other
 * activations share layer 0's buffers, and the backward of layer l first runs layer l's
 * forward again from res[l] (the same kernels on the same input: the same bits).
 *
 * Matmuls and attention GEMMs: gemm.c. */
#include "kernels/cuda/model.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include "kernels/cuda/check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/flash.h"
#include "kernels/cuda/attn_fused.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/ops.h"

typedef struct {
    float *res, *xn1, *rstd1, *qh, *kh, *vh, *P, *att, *mid, *xn2, *rstd2, *h1, *h3, *g;
    uint16_t *q16, *k16, *v16; /* fused attention: bf16 post-RoPE q, k, v */
    float *flse;               /* fused attention: (B,H,T) log-sum-exp */
} layer_acts;

struct kcu_model {
    ckpt_param_table *table;
    ckpt_model_config cfg;
    kcu_precision prec;
    int fused;     /* attention through kernels/cuda/attn_fused.h (else the three GEMMs) */
    int recompute; /* one layer's activations, rebuilt in the backward (only res kept per layer) */
    int dev, Bmax, Tmax;
    cudaStream_t stream;
    cublasHandle_t blas;
    kcu_gemm gemm;
    void *slab;
    uint64_t slab_bytes;
    /* parameter-sized */
    float *params, *grads, *mom, *var;
    uint16_t *p16; /* bf16 copy of params (bf16 mode only) */
    int64_t opt_step;
    /* activations */
    layer_acts *L; /* n_layers + 1 entries (only res of the last is used) */
    float *xnf, *rstdf, *logits, *dlogits, *lse, *losses;
    int32_t *tok, *tgt;
    /* backward scratch */
    float *dres, *dxn, *sA, *sB, *sC, *sD, *dk, *dv, *dgb, *dh1, *dh3, *dP;
    uint16_t *castA, *castB; /* bf16 staging of activation operands */
    uint16_t *do16;          /* fused attention backward: bf16 dout */
    float *Dr;               /* fused attention backward: rowsum(dout o out), (B,H,T) */
    int64_t cast_elems;
    double *acc; /* grad-norm accumulator */
    int64_t *seg_end; /* AdamW in one launch: each tensor's end offset in the slab, table order */
    float *seg_wd;    /* 1, or 0 for norm gains (no weight decay) */
    int curB, curT, have_targets, have_forward;
    int debug_sync; /* XFFL_CUDA_DEBUG_SYNC=1 */
    float *host_losses;
};

/* Launch check; with XFFL_CUDA_DEBUG_SYNC=1 also waits for the kernel, so an asynchronous
 * fault (illegal address, ...) is reported under the op that caused it. */
#define OP(expr, what)                                                                          \
    do {                                                                                        \
        int e_ = (expr);                                                                        \
        if (e_ == 0 && m->debug_sync) e_ = (int)cudaStreamSynchronize(m->stream);               \
        if (e_ != 0)                                                                            \
            return xffl_fail(XFFL_ERR_BACKEND, "cuda kernel %s: %s", (what),                   \
                             cudaGetErrorString((cudaError_t)e_));                              \
    } while (0)

xffl_status kcu_device_count(int *count)
{
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        *count = 0;
        return xffl_fail(XFFL_ERR_UNSUPPORTED, "no CUDA device visible (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
    }
    XFFL_RETURN_IF(*count <= 0, XFFL_ERR_UNSUPPORTED, "no CUDA device visible (cudaGetDeviceCount: 0)");
    return XFFL_OK;
}

xffl_status kcu_device_name(int dev, char *buf, int len)
{
    struct cudaDeviceProp p;
    CU(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
    snprintf(buf, (size_t)len, "%s, sm_%d%d", p.name, p.major, p.minor);
    return XFFL_OK;
}

/* Bump allocator: first pass with base NULL counts bytes, second pass hands out pointers. */
typedef struct {
    char *base;
    uint64_t off;
} bump;

static void *take(bump *b, uint64_t bytes)
{
    uint64_t at = (b->off + 255) & ~(uint64_t)255; /* 256-byte alignment for cuBLAS and vector loads */
    b->off = at + bytes;
    return b->base ? b->base + at : NULL;
}

static void plan(kcu_model *m, bump *b)
{
    const ckpt_model_config *c = &m->cfg;
    int64_t P = m->table->total, N = (int64_t)m->Bmax * m->Tmax;
    int64_t D = c->dim, Hd = c->hidden_dim, V = c->vocab_size, H = c->n_heads;
    int64_t KVD = (int64_t)c->n_kv_heads * (c->dim / c->n_heads);
    int64_t att = m->fused ? 0 : (int64_t)m->Bmax * H * m->Tmax * m->Tmax;
    m->params = take(b, P * 4);
    m->grads = take(b, P * 4);
    m->mom = take(b, P * 4);
    m->var = take(b, P * 4);
    m->p16 = m->prec == KCU_BF16 ? take(b, P * 2) : NULL;
    for (int l = 0; l <= c->n_layers; l++) {
        layer_acts *a = &m->L[l];
        if (m->recompute && l > 0 && l < c->n_layers) { /* layer 0's set, with a res of its own */
            *a = m->L[0];
            a->res = take(b, N * D * 4);
            continue;
        }
        a->res = take(b, N * D * 4);
        if (l == c->n_layers) break;
        a->xn1 = take(b, N * D * 4);
        a->rstd1 = take(b, N * 4);
        if (m->fused) {
            a->q16 = take(b, N * D * 2);
            a->k16 = take(b, N * KVD * 2);
            a->v16 = take(b, N * KVD * 2);
            a->flse = take(b, N * H * 4);
        } else {
            a->qh = take(b, N * D * 4);
            a->kh = take(b, N * D * 4);
            a->vh = take(b, N * D * 4);
            a->P = take(b, att * 4);
        }
        a->att = take(b, N * D * 4);
        a->mid = take(b, N * D * 4);
        a->xn2 = take(b, N * D * 4);
        a->rstd2 = take(b, N * 4);
        a->h1 = take(b, N * Hd * 4);
        a->h3 = take(b, N * Hd * 4);
        a->g = take(b, N * Hd * 4);
    }
    m->xnf = take(b, N * D * 4);
    m->rstdf = take(b, N * 4);
    m->logits = take(b, N * V * 4);
    m->dlogits = take(b, N * V * 4);
    m->lse = take(b, N * 4);
    m->losses = take(b, N * 4);
    m->tok = take(b, N * 4);
    m->tgt = take(b, N * 4);
    m->dres = take(b, N * D * 4);
    m->dxn = take(b, N * D * 4);
    m->sA = take(b, N * D * 4);
    m->sB = take(b, N * D * 4);
    m->sC = take(b, N * D * 4);
    m->sD = take(b, N * D * 4);
    m->dk = take(b, N * KVD * 4);
    m->dv = take(b, N * KVD * 4);
    m->dgb = take(b, N * Hd * 4);
    m->dh1 = take(b, N * Hd * 4);
    m->dh3 = take(b, N * Hd * 4);
    if (m->fused) {
        m->do16 = take(b, N * D * 2);
        m->Dr = take(b, N * H * 4);
    } else {
        m->dP = take(b, att * 4);
    }
    int64_t ce = N * D;
    if (N * Hd > ce) ce = N * Hd;
    if (N * V > ce) ce = N * V;
    if (att > ce) ce = att;
    m->cast_elems = m->prec == KCU_BF16 ? ce : 0;
    m->castA = m->prec == KCU_BF16 ? take(b, ce * 2) : NULL;
    m->castB = m->prec == KCU_BF16 ? take(b, ce * 2) : NULL;
    m->acc = take(b, sizeof(double));
    m->seg_end = take(b, (uint64_t)m->table->count * 8);
    m->seg_wd = take(b, (uint64_t)m->table->count * 4);
}

xffl_status kcu_model_create(const ckpt_model_config *cfg, int B, int T, int dev, kcu_precision prec,
                             kcu_model **out)
{
    return kcu_model_create_ex(cfg, B, T, dev, prec, 0, out);
}

xffl_status kcu_model_create_ex(const ckpt_model_config *cfg, int B, int T, int dev, kcu_precision prec,
                                int recompute, kcu_model **out)
{
    *out = NULL;
    XFFL_FORWARD(ckpt_model_validate(cfg));
    XFFL_RETURN_IF(B <= 0 || T <= 0 || T > cfg->max_seq_len, XFFL_ERR_USAGE,
                   "cuda backend: batch %d x seq_len %d invalid (max_seq_len %d)", B, T, cfg->max_seq_len);
    int count = 0;
    XFFL_FORWARD(kcu_device_count(&count));
    XFFL_RETURN_IF(dev < 0 || dev >= count, XFFL_ERR_USAGE, "cuda backend: device %d not visible (%d devices)", dev,
                   count);
    kcu_model *m = calloc(1, sizeof *m);
    XFFL_RETURN_IF(!m, XFFL_ERR_NOMEM, "cuda backend: model struct");
    m->cfg = *cfg;
    m->prec = prec;
    const char *dbg = getenv("XFFL_CUDA_DEBUG_SYNC");
    m->debug_sync = dbg && *dbg && strcmp(dbg, "0") != 0;
    m->dev = dev;
    /* XFFL_CUDA_ATTENTION=reference keeps bf16 mode on the three-GEMM attention (tests, comparisons) */
    const char *att = getenv("XFFL_CUDA_ATTENTION");
    int want_ref = att && !strcmp(att, "reference");
    if (att && *att && !want_ref && strcmp(att, "fused") != 0) {
        free(m);
        return xffl_fail(XFFL_ERR_USAGE, "XFFL_CUDA_ATTENTION '%s' is not fused or reference", att);
    }
    m->fused = prec == KCU_BF16 && !want_ref && kflash_head_supported(cfg->dim / cfg->n_heads);
    m->recompute = recompute != 0;
    m->Bmax = B;
    m->Tmax = T;
    xffl_status s = ckpt_param_table_create(cfg, &m->table);
    if (s != XFFL_OK) goto fail;
    m->L = calloc((size_t)cfg->n_layers + 1, sizeof *m->L);
    m->host_losses = malloc((size_t)B * T * sizeof(float));
    if (!m->L || !m->host_losses) {
        s = xffl_fail(XFFL_ERR_NOMEM, "cuda backend: host bookkeeping");
        goto fail;
    }
    cudaError_t e = cudaSetDevice(dev);
    if (e != cudaSuccess) {
        s = xffl_fail(XFFL_ERR_BACKEND, "cuda: cudaSetDevice(%d): %s", dev, cudaGetErrorString(e));
        goto fail;
    }
    bump b = {NULL, 0};
    plan(m, &b);
    m->slab_bytes = b.off;
    e = cudaMalloc(&m->slab, b.off);
    if (e != cudaSuccess) {
        m->slab = NULL;
        s = xffl_fail(XFFL_ERR_NOMEM, "cuda: cudaMalloc of %.2f GiB for %d x %d tokens: %s", b.off / 1073741824.0, B, T,
                      cudaGetErrorString(e));
        goto fail;
    }
    b.base = m->slab;
    b.off = 0;
    plan(m, &b);
    if ((e = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        m->stream = NULL;
        s = xffl_fail(XFFL_ERR_BACKEND, "cuda: cudaStreamCreate: %s", cudaGetErrorString(e));
        goto fail;
    }
    cublasStatus_t bs = cublasCreate(&m->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        m->blas = NULL;
        s = xffl_fail(XFFL_ERR_BACKEND, "cublasCreate: %s", cublasGetStatusString(bs));
        goto fail;
    }
    cublasSetStream(m->blas, m->stream);
    /* fp32 mode must not silently use TF32 (10-bit mantissa) tensor cores. */
    cublasSetMathMode(m->blas, prec == KCU_FP32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH);
    m->gemm = (kcu_gemm){m->blas, m->stream, prec, m->castA, m->castB, m->cast_elems};
    if ((e = cudaMemsetAsync(m->slab, 0, m->slab_bytes, m->stream)) != cudaSuccess ||
        (e = cudaStreamSynchronize(m->stream)) != cudaSuccess) {
        s = xffl_fail(XFFL_ERR_BACKEND, "cuda: clearing the slab: %s", cudaGetErrorString(e));
        goto fail;
    }
    {
        int nt = m->table->count;
        int64_t *ends = malloc((size_t)nt * 8);
        float *wd = malloc((size_t)nt * 4);
        if (!ends || !wd) {
            free(ends), free(wd);
            s = xffl_fail(XFFL_ERR_NOMEM, "cuda backend: AdamW tensor table");
            goto fail;
        }
        for (int i = 0; i < nt; i++) { /* the table is in slab order (ckpt_param_table) */
            const ckpt_param *p = &m->table->params[i];
            ends[i] = p->offset + p->numel;
            wd[i] = p->kind == CKPT_KIND_NORM ? 0.0f : 1.0f;
        }
        e = cudaMemcpy(m->seg_end, ends, (size_t)nt * 8, cudaMemcpyHostToDevice);
        if (e == cudaSuccess) e = cudaMemcpy(m->seg_wd, wd, (size_t)nt * 4, cudaMemcpyHostToDevice);
        free(ends), free(wd);
        if (e != cudaSuccess) {
            s = xffl_fail(XFFL_ERR_BACKEND, "cuda: copying the AdamW tensor table: %s", cudaGetErrorString(e));
            goto fail;
        }
    }
    *out = m;
    return XFFL_OK;
fail:
    kcu_model_free(m);
    return s;
}

void kcu_model_free(kcu_model *m)
{
    if (!m) return;
    if (m->blas) cublasDestroy(m->blas);
    if (m->stream) cudaStreamDestroy(m->stream);
    if (m->slab) cudaFree(m->slab);
    ckpt_param_table_free(m->table);
    free(m->L);
    free(m->host_losses);
    free(m);
}

const ckpt_param_table *kcu_model_table(const kcu_model *m) { return m->table; }
uint64_t kcu_model_bytes(const kcu_model *m) { return m->slab_bytes; }
kcu_precision kcu_model_precision(const kcu_model *m) { return m->prec; }
int kcu_model_fused(const kcu_model *m) { return m->fused; }
float *kcu_grad_slab(kcu_model *m) { return m->grads; }
float *kcu_param_slab(kcu_model *m) { return m->params; }
float *kcu_mom_slab(kcu_model *m) { return m->mom; }
float *kcu_var_slab(kcu_model *m) { return m->var; }
int64_t kcu_opt_step(const kcu_model *m) { return m->opt_step; }
void kcu_set_opt_step(kcu_model *m, int64_t step) { m->opt_step = step; }
void *kcu_model_stream(kcu_model *m) { return m->stream; }

xffl_status kcu_sync(kcu_model *m, const char *what)
{
    cudaError_t e = cudaStreamSynchronize(m->stream);
    if (e == cudaSuccess) e = cudaGetLastError();
    XFFL_RETURN_IF(e != cudaSuccess, XFFL_ERR_BACKEND, "cuda: %s: %s", what, cudaGetErrorString(e));
    return XFFL_OK;
}

/* Offset of slot s of layer l (ignored outside the layers) into the parameter-sized slabs. */
static int64_t at(const kcu_model *m, ckpt_slot s, int l)
{
    return m->table->params[ckpt_param_index(m->table, s, l)].offset;
}
static float *P_(kcu_model *m, ckpt_slot s, int l) { return m->params + at(m, s, l); }
static float *G_(kcu_model *m, ckpt_slot s, int l) { return m->grads + at(m, s, l); }
static const uint16_t *P16_(kcu_model *m, ckpt_slot s, int l) { return m->p16 ? m->p16 + at(m, s, l) : NULL; }

static XFFL_MUST_USE xffl_status copy_in(kcu_model *m, float *dst, const float *src, const char *what)
{
    CU(cudaMemcpyAsync(dst, src, (size_t)m->table->total * 4, cudaMemcpyHostToDevice, m->stream), what);
    return kcu_sync(m, what);
}

static XFFL_MUST_USE xffl_status copy_out(kcu_model *m, float *dst, const float *src, const char *what)
{
    CU(cudaMemcpyAsync(dst, src, (size_t)m->table->total * 4, cudaMemcpyDeviceToHost, m->stream), what);
    return kcu_sync(m, what);
}

xffl_status kcu_params_changed(kcu_model *m)
{
    if (m->p16) OP(kcu_to_bf16(m->p16, m->params, m->table->total, m->stream), "to_bf16 (parameters)");
    return kcu_sync(m, "casting parameters to bf16");
}

xffl_status kcu_set_params(kcu_model *m, const float *params)
{
    XFFL_FORWARD(copy_in(m, m->params, params, "copying parameters to the device"));
    return kcu_params_changed(m);
}

xffl_status kcu_get_grads_range(kcu_model *m, int64_t off, int64_t n, float *out)
{
    CU(cudaMemcpyAsync(out, m->grads + off, (size_t)n * 4, cudaMemcpyDeviceToHost, m->stream),
       "copying a gradient range to the host");
    return kcu_sync(m, "copying a gradient range to the host");
}

xffl_status kcu_set_params_range(kcu_model *m, int64_t off, int64_t n, const float *in, int last)
{
    CU(cudaMemcpyAsync(m->params + off, in, (size_t)n * 4, cudaMemcpyHostToDevice, m->stream),
       "copying a parameter range to the device");
    XFFL_FORWARD(kcu_sync(m, "copying a parameter range to the device"));
    return last ? kcu_params_changed(m) : XFFL_OK;
}

xffl_status kcu_get_params(kcu_model *m, float *params) { return copy_out(m, params, m->params, "copying parameters to the host"); }
xffl_status kcu_get_grads(kcu_model *m, float *grads) { return copy_out(m, grads, m->grads, "copying gradients to the host"); }
xffl_status kcu_set_grads(kcu_model *m, const float *grads) { return copy_in(m, m->grads, grads, "copying gradients to the device"); }

xffl_status kcu_reset_optimizer(kcu_model *m)
{
    CU(cudaMemsetAsync(m->mom, 0, (size_t)m->table->total * 4, m->stream), "clearing AdamW moments");
    CU(cudaMemsetAsync(m->var, 0, (size_t)m->table->total * 4, m->stream), "clearing AdamW moments");
    m->opt_step = 0;
    return kcu_sync(m, "clearing AdamW moments");
}

xffl_status kcu_get_optimizer(kcu_model *m, float *mom, float *var, int64_t *step)
{
    XFFL_FORWARD(copy_out(m, mom, m->mom, "copying AdamW first moments to the host"));
    XFFL_FORWARD(copy_out(m, var, m->var, "copying AdamW second moments to the host"));
    *step = m->opt_step;
    return XFFL_OK;
}

xffl_status kcu_set_optimizer(kcu_model *m, const float *mom, const float *var, int64_t step)
{
    XFFL_RETURN_IF(step < 0, XFFL_ERR_INVALID, "cuda backend: optimizer step %lld is negative", (long long)step);
    XFFL_FORWARD(copy_in(m, m->mom, mom, "copying AdamW first moments to the device"));
    XFFL_FORWARD(copy_in(m, m->var, var, "copying AdamW second moments to the device"));
    m->opt_step = step;
    return XFFL_OK;
}

xffl_status kcu_zero_grad(kcu_model *m)
{
    CU(cudaMemsetAsync(m->grads, 0, (size_t)m->table->total * 4, m->stream), "clearing gradients");
    return XFFL_OK;
}

/* y(N,out) = x(N,in) W^T, W(out,in) a parameter. */
/* bf16 mode: x cast once into the B-side staging buffer, for the GEMMs that share an input
 * (q/k/v read xn1, w1/w3 read xn2). kcu_mm never writes castB while the weight operand has
 * its bf16 copy, so the cast stays valid across those calls. NULL in fp32 mode. */
static XFFL_MUST_USE xffl_status shared_x16(kcu_model *m, const float *x, int64_t n, const uint16_t **x16)
{
    *x16 = NULL;
    if (m->prec != KCU_BF16) return XFFL_OK;
    XFFL_RETURN_IF(n > m->cast_elems, XFFL_ERR_INTERNAL, "cuda backend: shared input too big for staging");
    OP(kcu_to_bf16(m->castB, x, n, m->stream), "to_bf16 (shared GEMM input)");
    *x16 = m->castB;
    return XFFL_OK;
}

/* y(N,out) = x(N,in) W^T, W(out,in) a parameter; x16: x's bf16 copy or NULL. */
static XFFL_MUST_USE xffl_status linear(kcu_model *m, const char *what, float *y, const float *x, const uint16_t *x16, ckpt_slot s,
                          int l, int Nt, float beta)
{
    const ckpt_param *p = &m->table->params[ckpt_param_index(m->table, s, l)];
    return kcu_mm(&m->gemm, what, 0, 1, Nt, (int)p->shape[0], (int)p->shape[1], x, x16, P_(m, s, l), P16_(m, s, l),
                  y, beta, 1, 0, 0, 0);
}

/* dx(N,in) (+)= dy(N,out) W; dW(out,in) += dy^T x. In bf16 mode dy is cast once (castA) for
 * both GEMMs; x16 as in linear(). */
static XFFL_MUST_USE xffl_status linear_bwd(kcu_model *m, const char *what, float *dx, float beta_dx, const float *dy,
                              const float *x, const uint16_t *x16, ckpt_slot s, int l, int Nt)
{
    const ckpt_param *p = &m->table->params[ckpt_param_index(m->table, s, l)];
    int out = (int)p->shape[0], in = (int)p->shape[1];
    const uint16_t *dy16 = NULL;
    if (m->prec == KCU_BF16) {
        OP(kcu_to_bf16(m->castA, dy, (int64_t)Nt * out, m->stream), what);
        dy16 = m->castA;
    }
    XFFL_FORWARD(
        kcu_mm(&m->gemm, what, 0, 0, Nt, in, out, dy, dy16, P_(m, s, l), P16_(m, s, l), dx, beta_dx, 1, 0, 0, 0));
    return kcu_mm(&m->gemm, what, 1, 0, out, in, Nt, dy, dy16, x, x16, G_(m, s, l), 1.0f, 1, 0, 0, 0);
}

/* Layer l's forward from res[l]: every activation the backward reads, and with next, the
 * next layer's input res[l+1]. */
static XFFL_MUST_USE xffl_status layer_fwd(kcu_model *m, int l, int B, int T, int next)
{
    const ckpt_model_config *c = &m->cfg;
    int N = B * T, D = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = D / H, Hd = c->hidden_dim;
    cudaStream_t s = m->stream;
    layer_acts *a = &m->L[l];
    /* bf16 mode: RMSNorm writes the bf16 copy its GEMMs read (castB; kcu_mm never writes
     * castB while the weight has its bf16 copy), SwiGLU w2's (castA) */
    const uint16_t *x16 = m->prec == KCU_BF16 ? m->castB : NULL;
    OP(kcu_rmsnorm_fwd16(a->xn1, m->castB, a->rstd1, a->res, P_(m, CKPT_SLOT_ATTN_NORM, l), N, D, c->norm_eps, s),
       "rmsnorm_fwd");
    XFFL_FORWARD(linear(m, "wq", m->sB, a->xn1, x16, CKPT_SLOT_WQ, l, N, 0.0f));
    XFFL_FORWARD(linear(m, "wk", m->dk, a->xn1, x16, CKPT_SLOT_WK, l, N, 0.0f));
    XFFL_FORWARD(linear(m, "wv", m->dv, a->xn1, x16, CKPT_SLOT_WV, l, N, 0.0f));
    OP(kcu_rope(m->sB, B, T, H, hd, c->rope_theta, 0, s), "rope (q)");
    OP(kcu_rope(m->dk, B, T, KV, hd, c->rope_theta, 0, s), "rope (k)");
    if (m->fused) {
        OP(kcu_to_bf16(a->q16, m->sB, (int64_t)N * D, s), "to_bf16 (q)");
        OP(kcu_to_bf16(a->k16, m->dk, (int64_t)N * KV * hd, s), "to_bf16 (k)");
        OP(kcu_to_bf16(a->v16, m->dv, (int64_t)N * KV * hd, s), "to_bf16 (v)");
        OP(kcu_flash_fwd(a->att, a->flse, a->q16, a->k16, a->v16, B, T, H, KV, hd, s), "flash attention forward");
    } else {
        XFFL_FORWARD(kcu_attention_fwd(&m->gemm, a->att, a->qh, a->kh, a->vh, a->P, m->sA, m->sB, m->dk, m->dv, B,
                                       T, H, KV, hd));
    }
    CU(cudaMemcpyAsync(a->mid, a->res, (size_t)N * D * 4, cudaMemcpyDeviceToDevice, s), "residual copy");
    XFFL_FORWARD(linear(m, "wo", a->mid, a->att, NULL, CKPT_SLOT_WO, l, N, 1.0f));
    OP(kcu_rmsnorm_fwd16(a->xn2, m->castB, a->rstd2, a->mid, P_(m, CKPT_SLOT_FFN_NORM, l), N, D, c->norm_eps, s),
       "rmsnorm_fwd");
    XFFL_FORWARD(linear(m, "w1", a->h1, a->xn2, x16, CKPT_SLOT_W1, l, N, 0.0f));
    XFFL_FORWARD(linear(m, "w3", a->h3, a->xn2, x16, CKPT_SLOT_W3, l, N, 0.0f));
    OP(kcu_swiglu_fwd16(a->g, next ? m->castA : NULL, a->h1, a->h3, (int64_t)N * Hd, s), "swiglu_fwd");
    if (!next) return XFFL_OK; /* a recomputation: res[l+1] exists and the backward needs no more */
    layer_acts *nx = &m->L[l + 1];
    CU(cudaMemcpyAsync(nx->res, a->mid, (size_t)N * D * 4, cudaMemcpyDeviceToDevice, s), "residual copy");
    XFFL_FORWARD(linear(m, "w2", nx->res, a->g, m->prec == KCU_BF16 ? m->castA : NULL, CKPT_SLOT_W2, l, N, 1.0f));
    return XFFL_OK;
}

xffl_status kcu_forward(kcu_model *m, const int32_t *inputs, const int32_t *targets, int B, int T, float *loss)
{
    const ckpt_model_config *c = &m->cfg;
    XFFL_RETURN_IF(B <= 0 || T <= 0 || B > m->Bmax || T > m->Tmax, XFFL_ERR_USAGE,
                   "cuda backend: forward of %d x %d tokens exceeds the planned %d x %d", B, T, m->Bmax, m->Tmax);
    int N = B * T, D = c->dim, V = c->vocab_size;
    for (int i = 0; i < N; i++) {
        XFFL_RETURN_IF(inputs[i] < 0 || inputs[i] >= V, XFFL_ERR_INVALID, "cuda backend: input token %d at %d outside vocab %d",
                       inputs[i], i, V);
        XFFL_RETURN_IF(targets && (targets[i] < 0 || targets[i] >= V), XFFL_ERR_INVALID,
                       "cuda backend: target token %d at %d outside vocab %d", targets[i], i, V);
    }
    cudaStream_t s = m->stream;
    m->curB = B;
    m->curT = T;
    m->have_forward = 0;
    m->have_targets = targets != NULL;
    CU(cudaMemcpyAsync(m->tok, inputs, (size_t)N * 4, cudaMemcpyHostToDevice, s), "copying input tokens");
    if (targets) CU(cudaMemcpyAsync(m->tgt, targets, (size_t)N * 4, cudaMemcpyHostToDevice, s), "copying target tokens");

    OP(kcu_embedding_fwd(m->L[0].res, m->tok, P_(m, CKPT_SLOT_EMBEDDING, 0), N, D, V, s), "embedding_fwd");
    for (int l = 0; l < c->n_layers; l++) XFFL_FORWARD(layer_fwd(m, l, B, T, 1));
    OP(kcu_rmsnorm_fwd(m->xnf, m->rstdf, m->L[c->n_layers].res, P_(m, CKPT_SLOT_NORM, 0), N, D, c->norm_eps, s),
       "rmsnorm_fwd (final)");
    XFFL_FORWARD(linear(m, "output", m->logits, m->xnf, NULL, CKPT_SLOT_OUTPUT, 0, N, 0.0f));
    if (targets) {
        OP(kcu_xent_fwd(m->losses, m->lse, m->logits, m->tgt, N, V, s), "xent_fwd");
        CU(cudaMemcpyAsync(m->host_losses, m->losses, (size_t)N * 4, cudaMemcpyDeviceToHost, s), "copying losses");
    }
    XFFL_FORWARD(kcu_sync(m, "forward"));
    if (targets && loss) {
        double sum = 0.0; /* fixed order on the host: the mean does not depend on the launch */
        for (int i = 0; i < N; i++) sum += m->host_losses[i];
        *loss = (float)(sum / N);
        XFFL_RETURN_IF(!isfinite(*loss), XFFL_ERR_INVALID, "cuda backend: loss is not finite (%g)", (double)*loss);
    }
    m->have_forward = 1;
    return XFFL_OK;
}

xffl_status kcu_backward(kcu_model *m)
{
    XFFL_RETURN_IF(!m->have_forward || !m->have_targets, XFFL_ERR_USAGE,
                   "cuda backend: backward needs a forward with targets first");
    const ckpt_model_config *c = &m->cfg;
    int B = m->curB, T = m->curT, N = B * T;
    int D = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = D / H, Hd = c->hidden_dim, V = c->vocab_size;
    cudaStream_t s = m->stream;

    CU(cudaMemsetAsync(m->dres, 0, (size_t)N * D * 4, s), "clearing the residual gradient");
    OP(kcu_xent_bwd(m->dlogits, m->logits, m->lse, m->tgt, N, V, 1.0f / N, s), "xent_bwd");
    XFFL_FORWARD(linear_bwd(m, "output (backward)", m->dxn, 0.0f, m->dlogits, m->xnf, NULL, CKPT_SLOT_OUTPUT, 0, N));
    OP(kcu_rmsnorm_bwd(m->dres, G_(m, CKPT_SLOT_NORM, 0), m->dxn, m->L[c->n_layers].res, P_(m, CKPT_SLOT_NORM, 0),
                       m->rstdf, N, D, s),
       "rmsnorm_bwd (final)");
    for (int l = c->n_layers - 1; l >= 0; l--) {
        layer_acts *a = &m->L[l];
        /* the shared buffers hold the last layer's forward; any other layer's is rebuilt */
        if (m->recompute && l < c->n_layers - 1) XFFL_FORWARD(layer_fwd(m, l, B, T, 0));
        /* FFN: res[l+1] = mid + (silu(xn2 w1^T) * xn2 w3^T) w2^T; dres holds dL/dres[l+1] */
        XFFL_FORWARD(linear_bwd(m, "w2 (backward)", m->dgb, 0.0f, m->dres, a->g, NULL, CKPT_SLOT_W2, l, N));
        OP(kcu_swiglu_bwd(m->dh1, m->dh3, m->dgb, a->h1, a->h3, (int64_t)N * Hd, s), "swiglu_bwd");
        const uint16_t *x16 = NULL;
        XFFL_FORWARD(shared_x16(m, a->xn2, (int64_t)N * D, &x16));
        XFFL_FORWARD(linear_bwd(m, "w1 (backward)", m->dxn, 0.0f, m->dh1, a->xn2, x16, CKPT_SLOT_W1, l, N));
        XFFL_FORWARD(linear_bwd(m, "w3 (backward)", m->dxn, 1.0f, m->dh3, a->xn2, x16, CKPT_SLOT_W3, l, N));
        OP(kcu_rmsnorm_bwd(m->dres, G_(m, CKPT_SLOT_FFN_NORM, l), m->dxn, a->mid, P_(m, CKPT_SLOT_FFN_NORM, l),
                           a->rstd2, N, D, s),
           "rmsnorm_bwd (ffn)");
        /* attention: mid = res + att wo^T; dres now holds dL/dmid */
        XFFL_FORWARD(linear_bwd(m, "wo (backward)", m->sA, 0.0f, m->dres, a->att, NULL, CKPT_SLOT_WO, l, N));
        if (m->fused)
            OP(kcu_flash_bwd(m->sB, m->dk, m->dv, m->sA, a->att, a->flse, a->q16, a->k16, a->v16, m->do16, m->Dr, B, T, H,
                             KV, hd, s),
               "flash attention backward");
        else
            XFFL_FORWARD(kcu_attention_bwd(&m->gemm, m->sB, m->dk, m->dv, m->sA, a->qh, a->kh, a->vh, a->P, m->dP,
                                           m->sD, m->sC, m->dxn, B, T, H, KV, hd));
        OP(kcu_rope(m->sB, B, T, H, hd, c->rope_theta, 1, s), "rope backward (q)");
        OP(kcu_rope(m->dk, B, T, KV, hd, c->rope_theta, 1, s), "rope backward (k)");
        XFFL_FORWARD(shared_x16(m, a->xn1, (int64_t)N * D, &x16));
        XFFL_FORWARD(linear_bwd(m, "wq (backward)", m->dxn, 0.0f, m->sB, a->xn1, x16, CKPT_SLOT_WQ, l, N));
        XFFL_FORWARD(linear_bwd(m, "wk (backward)", m->dxn, 1.0f, m->dk, a->xn1, x16, CKPT_SLOT_WK, l, N));
        XFFL_FORWARD(linear_bwd(m, "wv (backward)", m->dxn, 1.0f, m->dv, a->xn1, x16, CKPT_SLOT_WV, l, N));
        OP(kcu_rmsnorm_bwd(m->dres, G_(m, CKPT_SLOT_ATTN_NORM, l), m->dxn, a->res, P_(m, CKPT_SLOT_ATTN_NORM, l),
                           a->rstd1, N, D, s),
           "rmsnorm_bwd (attention)");
    }
    OP(kcu_embedding_bwd(G_(m, CKPT_SLOT_EMBEDDING, 0), m->tok, m->dres, N, D, V, s), "embedding_bwd");
    return kcu_sync(m, "backward");
}

xffl_status kcu_logits(kcu_model *m, int b, int t, float *out)
{
    XFFL_RETURN_IF(!m->have_forward, XFFL_ERR_USAGE, "cuda backend: logits need a forward first");
    XFFL_RETURN_IF(b < 0 || b >= m->curB || t < 0 || t >= m->curT, XFFL_ERR_USAGE,
                   "cuda backend: logits position (%d, %d) outside the last forward's %d x %d", b, t, m->curB, m->curT);
    int V = m->cfg.vocab_size;
    CU(cudaMemcpyAsync(out, m->logits + ((int64_t)b * m->curT + t) * V, (size_t)V * 4, cudaMemcpyDeviceToHost,
                       m->stream),
       "copying logits");
    return kcu_sync(m, "copying logits");
}

xffl_status kcu_adamw_step(kcu_model *m, const kcu_adamw_args *a, float *grad_norm)
{
    cudaStream_t s = m->stream;
    double ss = 0.0;
    CU(cudaMemsetAsync(m->acc, 0, sizeof(double), s), "clearing the norm accumulator");
    OP(kcu_sumsq(m->acc, m->grads, m->table->total, s), "sumsq (grad norm)");
    CU(cudaMemcpyAsync(&ss, m->acc, sizeof ss, cudaMemcpyDeviceToHost, s), "copying the grad norm");
    XFFL_FORWARD(kcu_sync(m, "grad norm"));
    float norm = (float)sqrt(ss);
    if (grad_norm) *grad_norm = norm;
    XFFL_RETURN_IF(!isfinite(norm), XFFL_ERR_INVALID, "cuda backend: gradient norm is not finite");
    float gscale = (a->grad_clip > 0 && norm > a->grad_clip) ? a->grad_clip / norm : 1.0f;
    m->opt_step++;
    float bc1 = 1.0f - powf(a->beta1, (float)m->opt_step), bc2 = 1.0f - powf(a->beta2, (float)m->opt_step);
    /* one launch over the slab; each tensor's decay from the table (none on norm gains) */
    OP(kcu_adamw_slab(m->params, m->p16, m->grads, m->mom, m->var, m->table->total, m->seg_end, m->seg_wd,
                      m->table->count, a->lr, a->beta1, a->beta2, a->eps, a->weight_decay, bc1, bc2, gscale, s),
       "adamw (whole slab)");
    return kcu_sync(m, "adamw");
}
