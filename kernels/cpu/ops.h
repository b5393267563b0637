/* Fast fp32 CPU ops of the LLaMA-2 model (OpenMP + OpenBLAS sgemm). Same meaning as the
 * double-precision reference ops of kernels/cpu/ref.h, which the tests compare them to.
 * Row-major; N = B*T tokens; "ld" arguments are row strides in floats (so q, k and v can
 * live side by side in one fused (N, H*hd + 2*KV*hd) buffer). Every reduction runs in a
 * fixed order (no atomics, no OpenMP reduction clauses), so results are identical run to
 * run for a given thread count. Call from outside an OpenMP parallel region. */
#ifndef XFFL_KCPU_OPS_H
#define XFFL_KCPU_OPS_H

#include <stdint.h>
#include "kernels/cpu/bf16.h"

/* out[N,D] = E[tok[n], :] */
void kcpu_embedding_fwd(float *out, const int32_t *tok, const float *E, int N, int D);
/* dE[tok[n], :] += dout[n, :]  (threads own column ranges, rows summed in order n) */
void kcpu_embedding_bwd(float *dE, const int32_t *tok, const float *dout, int N, int D);

/* out[N,D] = x * rstd * g; rstd[N] = 1/sqrt(mean(x^2) + eps) */
void kcpu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *g, int N, int D, float eps);
/* dx[N,D] += , dg[D] += gradients given dout[N,D] and the forward's rstd */
void kcpu_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x, const float *g, const float *rstd,
                      int N, int D);

/* out[N,O] (row stride ldo) = beta*out + x[N,K] W[O,K]^T  (beta 0 or 1) */
void kcpu_matmul_fwd(float *out, int ldo, const float *x, const float *W, int N, int K, int O, float beta);
/* dx[N,K] = beta_dx*dx + dout W  (dx may be NULL); dW[O,K] += dout^T x.  dout row stride O */
void kcpu_matmul_bwd(float *dx, float beta_dx, float *dW, const float *dout, const float *x, const float *W, int N,
                     int K, int O);

/* cos/sin tables [T, hd/2]: angle t * theta^(-2i/hd), computed in double. */
void kcpu_rope_table(float *cosv, float *sinv, int T, int hd, float theta);
/* In place on x[B,T,nh,hd] with row (b,t) stride ld: pairs (2i,2i+1) rotated by the
 * table's angle for t; inverse = 1 rotates back (the backward). cos/sin from a table
 * with at least T rows. */
void kcpu_rope(float *x, int ld, int B, int T, int nh, int hd, const float *cosv, const float *sinv, int inverse);

/* Causal GQA attention. q[B,T,H,hd] (row stride ldq), k,v[B,T,KV,hd] (ldkv) ->
 * out[B,T,H,hd] (ldo); P[B,H,T,T] gets the softmax probabilities (zero above the diagonal). */
void kcpu_attention_fwd(float *out, int ldo, float *P, const float *q, int ldq, const float *k, const float *v,
                        int ldkv, int B, int T, int H, int KV, int hd);
/* dq (ldq), dk, dv (ldkv) OVERWRITTEN with the gradients given dout (ldo) and the
 * forward's P. scratch: nthreads * T * T floats (nthreads = omp_get_max_threads()). */
void kcpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout, int ldo, const float *P, const float *q,
                        int ldq, const float *k, const float *v, int ldkv, int B, int T, int H, int KV, int hd,
                        float *scratch);

/* g[n] = silu(a) * b */
void kcpu_swiglu_fwd(float *g, const float *a, const float *b, int64_t n);
/* da = dg * b * silu'(a), db = dg * silu(a): OVERWRITTEN; da may alias dg */
void kcpu_swiglu_bwd(float *da, float *db, const float *dg, const float *a, const float *b, int64_t n);

/* Fused halves: h13[N, 2F] holds w1's output in columns [0,F) and w3's in [F,2F)
 * (one sgemm for both); g[N,F] = silu(h13[:, :F]) * h13[:, F:]. */
void kcpu_swiglu13_fwd(float *g, const float *h13, int N, int F);
/* dh13[N,2F] OVERWRITTEN with the gradients of both halves given dg[N,F]. */
void kcpu_swiglu13_bwd(float *dh13, const float *dg, const float *h13, int N, int F);

/* Per row: lse[n] = logsumexp(logits[n,:]), loss[n] = lse - logits[n, tgt[n]];
 * returns the mean of loss[] summed in order (double). */
double kcpu_xent_fwd(float *loss, float *lse, const float *logits, const int32_t *tgt, int N, int V);
/* In place: logits[N,V] becomes scale * (softmax - onehot(tgt)). */
void kcpu_xent_bwd(float *logits, const float *lse, const int32_t *tgt, int N, int V, float scale);

/* Sum of squares of x[n] in double, in fixed-size chunks summed in order (same result
 * for any thread count). */
double kcpu_sumsq(const float *x, int64_t n);
/* parts[c] = chunk c's sum of squares (the same chunks; kernels/shard.h). */
void kcpu_sumsq_parts(const float *x, int64_t n, double *parts);
/* AdamW on n values: g scaled by gscale first; bc1 = 1-beta1^step, bc2 = 1-beta2^step.
 * pb (NULL: none): the new p rounded to bf16 as kcpu_to_bf16 rounds it, in the same pass
 * over memory (the bf16 mode's weight copy, which would otherwise be a pass of its own). */
void kcpu_adamw(float *p, kcpu_bf16_t *pb, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
                float beta2, float eps, float wd, double bc1, double bc2, float gscale);

#endif
