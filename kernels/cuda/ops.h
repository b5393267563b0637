/* CUDA kernels of the LLaMA-2 forward/backward, callable from C.
 *
 * Every pointer is device memory; every launch is asynchronous on `stream` (a
 * cudaStream_t passed as void * so this header needs no CUDA include). Shapes are
 * row-major; N = B*T tokens, D = model width, hd = head size, H = query heads,
 * KV = key/value heads, Hd = SwiGLU hidden width, V = vocabulary.
 * The launchers return 0 or the cudaError_t of the launch, so callers can name the op
 * that failed (kcu_ops_check turns it into an xffl_status). Matmuls are not here: they
 * go through cuBLAS in model.c. */
#ifndef XFFL_KCU_OPS_H
#define XFFL_KCU_OPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *kcu_stream;

/* out[N,D] = E[tok[n], :]. Tokens outside [0,V) give a zero row (the caller checks). */
int kcu_embedding_fwd(float *out, const int32_t *tok, const float *E, int N, int D, int V, kcu_stream s);
/* dE[tok[n], :] += dout[n, :] (atomic adds: rows sharing a token are summed in any order). */
int kcu_embedding_bwd(float *dE, const int32_t *tok, const float *dout, int N, int D, int V, kcu_stream s);

/* out[N,D] = x * rstd * g, rstd[N] = 1/sqrt(mean(x^2) + eps). */
int kcu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *g, int N, int D, float eps, kcu_stream s);
/* The same, and out16[N,D] = bf16(out) (the next GEMM's operand, what kcu_to_bf16 of out
 * gives, without its pass); out16 NULL: kcu_rmsnorm_fwd. */
int kcu_rmsnorm_fwd16(float *out, uint16_t *out16, float *rstd, const float *x, const float *g, int N, int D, float eps,
                      kcu_stream s);
/* dx[N,D] += d/dx, dg[D] += d/dg, given dout[N,D] and the forward's x, g, rstd. */
int kcu_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x, const float *g, const float *rstd,
                    int N, int D, kcu_stream s);

/* RoPE in place on x[B,T,nh,hd]: pairs (2i, 2i+1) rotated by t * theta^(-2i/hd) (Meta/llama2.c
 * interleaved layout); inverse = 1 rotates by the negative angle, which is the backward. */
int kcu_rope(float *x, int B, int T, int nh, int hd, float theta, int inverse, kcu_stream s);

/* src[B,T,nh,hd] -> dst[B,H,T,hd], head h of dst reading head h / (H/nh) of src (GQA repeat). */
int kcu_to_heads(float *dst, const float *src, int B, int T, int H, int nh, int hd, kcu_stream s);
/* Inverse of kcu_to_heads: dst[B,T,nh,hd] = sum over the H/nh query heads of each group of
 * src[B,H,T,hd] (the gradient of the repeat); with nh == H it is a plain transpose. */
int kcu_from_heads(float *dst, const float *src, int B, int T, int H, int nh, int hd, kcu_stream s);

/* In place on att[BH,T,T] holding raw scores q.k: att = softmax(scale * att) over the causal
 * prefix of each row (entries past the diagonal become 0). att16 (BH*T*T bf16, or NULL)
 * also receives bf16(att), what a bf16 GEMM would otherwise cast in a pass of its own. */
int kcu_softmax_causal_fwd(float *att, uint16_t *att16, int BH, int T, float scale, kcu_stream s);
/* In place: datt[BH,T,T] (= dL/dP) becomes dL/d(raw scores) = scale * P * (dP - sum(dP*P));
 * datt16 (or NULL) also receives its bf16 copy. */
int kcu_softmax_causal_bwd(float *datt, uint16_t *datt16, const float *P, int BH, int T, float scale, kcu_stream s);

/* g[N,Hd] = silu(h1) * h3. */
int kcu_swiglu_fwd(float *g, const float *h1, const float *h3, int64_t n, kcu_stream s);
/* The same, and g16 = bf16(g) (w2's operand); g16 NULL: kcu_swiglu_fwd. */
int kcu_swiglu_fwd16(float *g, uint16_t *g16, const float *h1, const float *h3, int64_t n, kcu_stream s);
/* dh1 = dg * h3 * silu'(h1), dh3 = dg * silu(h1) (overwritten, not accumulated). */
int kcu_swiglu_bwd(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3, int64_t n, kcu_stream s);

/* Per row n of logits[N,V]: lse[n] = logsumexp, loss[n] = lse - logits[n, tgt[n]]. */
int kcu_xent_fwd(float *loss, float *lse, const float *logits, const int32_t *tgt, int N, int V, kcu_stream s);
/* dlogits[N,V] = scale * (softmax(logits) - onehot(tgt)) (overwritten); scale = 1/N for a mean. */
int kcu_xent_bwd(float *dlogits, const float *logits, const float *lse, const int32_t *tgt, int N, int V,
                 float scale, kcu_stream s);

/* acc[0] += sum x^2 over n floats (double accumulator). */
int kcu_sumsq(double *acc, const float *x, int64_t n, kcu_stream s);
/* x *= a over n floats. */
int kcu_scale(float *x, float a, int64_t n, kcu_stream s);
/* dst = bf16(src) / dst = float(src); bf16 is stored as uint16 (round to nearest even). */
int kcu_to_bf16(uint16_t *dst, const float *src, int64_t n, kcu_stream s);
int kcu_from_bf16(float *dst, const uint16_t *src, int64_t n, kcu_stream s);

/* One AdamW step over n floats of one tensor. g is multiplied by gscale (clipping) first;
 * bc1 = 1 - beta1^t, bc2 = 1 - beta2^t; decoupled decay p -= lr * wd * p. When p16 is not
 * NULL the bf16 copy of the updated p is written there too. */
int kcu_adamw(float *p, uint16_t *p16, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
              float beta2, float eps, float wd, float bc1, float bc2, float gscale, kcu_stream s);
/* kcu_adamw over the whole slab of n floats in one launch: the tensors are nseg segments,
 * segment j ending (exclusive) at seg_end[j] (ascending, the last = n) with decay wd *
 * seg_wd[j] (1 or 0: norm gains); device arrays. The same bits as one kcu_adamw per tensor. */
int kcu_adamw_slab(float *p, uint16_t *p16, const float *g, float *m, float *v, int64_t n, const int64_t *seg_end,
                   const float *seg_wd, int nseg, float lr, float beta1, float beta2, float eps, float wd, float bc1,
                   float bc2, float gscale, kcu_stream s);

#ifdef __cplusplus
}
#endif

#endif
