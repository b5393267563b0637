/* Reference ops of the LLaMA-2 model: naive loops in double precision, one function
 * per op, written for obviousness, not speed. They define what each op means
 * (kernels/backend.h lists the model); tests check them against finite differences and
 * check the fast CPU and CUDA kernels against them. Row-major; N = B*T tokens.
 * "+=" in a comment means the function accumulates into that output. */
#ifndef XFFL_KERN_REF_H
#define XFFL_KERN_REF_H

#include <stdint.h>
#include "libckpt/model.h"

/* out[N,D] = E[tok[n], :]   (E: [V,D]) */
void kref_embedding_fwd(double *out, const int32_t *tok, const double *E, int N, int D);
/* dE[tok[n], :] += dout[n, :] */
void kref_embedding_bwd(double *dE, const int32_t *tok, const double *dout, int N, int D);

/* out[N,D] = x * rstd[n] * g,  rstd[n] = 1/sqrt(mean_d x[n,d]^2 + eps) (rstd may be NULL) */
void kref_rmsnorm_fwd(double *out, double *rstd, const double *x, const double *g, int N, int D, double eps);
/* dx[N,D] +=, dg[D] += gradients of the above given dout[N,D] */
void kref_rmsnorm_bwd(double *dx, double *dg, const double *dout, const double *x, const double *g, int N, int D,
                      double eps);

/* out[N,O] = x[N,K] W[O,K]^T */
void kref_matmul_fwd(double *out, const double *x, const double *W, int N, int K, int O);
/* dx[N,K] += dout W, dW[O,K] += dout^T x  (dx or dW may be NULL) */
void kref_matmul_bwd(double *dx, double *dW, const double *dout, const double *x, const double *W, int N, int K,
                     int O);

/* In place on x[B,T,nh,hd]: pair (2i,2i+1) of each head rotated by angle
 * t * theta^(-2i/hd). Backward: the same with inverse = 1 (rotation by -angle). */
void kref_rope(double *x, int B, int T, int nh, int hd, double theta, int inverse);

/* Causal grouped-query attention. q[B,T,H,hd], k,v[B,T,KV,hd] -> out[B,T,H,hd];
 * query head h reads kv head h/(H/KV); scale 1/sqrt(hd). P[B,H,T,T] (may be NULL)
 * receives the softmax probabilities (zero above the diagonal). */
void kref_attention_fwd(double *out, double *P, const double *q, const double *k, const double *v, int B, int T, int H,
                        int KV, int hd);
/* dq, dk, dv += gradients given dout[B,T,H,hd] (recomputes P). */
void kref_attention_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q, const double *k,
                        const double *v, int B, int T, int H, int KV, int hd);

/* g[n] = silu(a[n]) * b[n], silu(a) = a / (1 + exp(-a)) */
void kref_swiglu_fwd(double *g, const double *a, const double *b, int64_t n);
/* da[n] +=, db[n] += given dg[n] */
void kref_swiglu_bwd(double *da, double *db, const double *dg, const double *a, const double *b, int64_t n);

/* mean over n of -log softmax(logits[n,:])[tgt[n]] */
double kref_xent_fwd(const double *logits, const int32_t *tgt, int N, int V);
/* dlogits[N,V] += (softmax(logits) - onehot(tgt)) / N */
void kref_xent_bwd(double *dlogits, const double *logits, const int32_t *tgt, int N, int V);

/* One AdamW element-wise update of n values (no clipping; step is the 1-based count
 * after this update; wd applies as p -= lr*wd*p). */
void kref_adamw(double *p, const double *g, double *m, double *v, int64_t n, double lr, double beta1, double beta2,
                double eps, double wd, int64_t step);

/* The whole model in double precision from the reference ops above: params and grads
 * are table-order slabs (t->total doubles). Returns the mean loss over (B,T) targets;
 * with grads != NULL, grads += d loss / d params. logits (may be NULL) gets [B*T,V]. */
double kref_model_loss(const ckpt_param_table *t, const double *params, const int32_t *inputs, const int32_t *targets,
                       int B, int T, double *grads, double *logits);

#endif
