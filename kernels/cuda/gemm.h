/* Row-major GEMMs through cuBLAS for the CUDA engine: C = op(A) op(B) + beta C, optionally
 * strided-batched. In bf16 mode the operands are bf16 (a ready copy, or cast into staging)
 * with fp32 accumulation and fp32 C; in fp32 mode cuBLAS runs pedantic fp32 (no TF32).
 * cuBLAS is column-major, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T. */
#ifndef XFFL_KCU_GEMM_H
#define XFFL_KCU_GEMM_H

#include <stdint.h>
#include "common/status.h"
#include "kernels/cuda/model.h"

typedef struct {
    void *blas;               /* cublasHandle_t, bound to stream */
    void *stream;             /* cudaStream_t */
    kcu_precision prec;
    uint16_t *castA, *castB;  /* bf16 staging, cast_elems each (bf16 mode) */
    int64_t cast_elems;
} kcu_gemm;

/* op(A) is M x K, op(B) is K x N, C is M x N (row-major). ta: A stored (K,M); tb: B stored
 * (N,K). A16/B16: bf16 copies of A/B, or NULL to cast into staging (bf16 mode only).
 * batch > 1: strides sA, sB, sC in elements. BACKEND naming `what` on a cuBLAS error. */
XFFL_MUST_USE xffl_status kcu_mm(const kcu_gemm *g, const char *what, int ta, int tb, int M, int N, int K, const float *A,
                   const uint16_t *A16, const float *B, const uint16_t *B16, float *C, float beta, int batch,
                   int64_t sA, int64_t sB, int64_t sC);

/* Causal GQA attention, the three-GEMM form around a fused softmax (kernels/backend.h):
 * q[B,T,H,hd] (post-RoPE), k, v[B,T,KV,hd] -> out[B,T,H,hd]. Keeps for the backward
 * qh, kh, vh[B,H,T,hd] (k, v repeated over each group) and P[B,H,T,T]; scratch: B*T*H*hd. */
XFFL_MUST_USE xffl_status kcu_attention_fwd(const kcu_gemm *g, float *out, float *qh, float *kh, float *vh, float *P,
                              float *scratch, const float *q, const float *k, const float *v, int B, int T, int H,
                              int KV, int hd);
/* dq[B,T,H,hd], dk, dv[B,T,KV,hd] (overwritten) from dout[B,T,H,hd] and the forward's
 * qh, kh, vh, P. dP: B*H*T*T scratch; s1..s3: B*T*H*hd scratch each. */
XFFL_MUST_USE xffl_status kcu_attention_bwd(const kcu_gemm *g, float *dq, float *dk, float *dv, const float *dout,
                              const float *qh, const float *kh, const float *vh, const float *P, float *dP, float *s1,
                              float *s2, float *s3, int B, int T, int H, int KV, int hd);

#endif
