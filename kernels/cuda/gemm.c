/* cuBLAS GEMMs and the attention built on them (contracts in gemm.h). */
#include "kernels/cuda/gemm.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>

#include "kernels/cuda/ops.h"

#define OP(expr, what)                                                                          \
    do {                                                                                        \
        int e_ = (expr);                                                                        \
        if (e_ != 0)                                                                            \
            return xffl_fail(XFFL_ERR_BACKEND, "cuda kernel %s: %s", (what),                   \
                             cudaGetErrorString((cudaError_t)e_));                              \
    } while (0)

xffl_status kcu_mm(const kcu_gemm *g, const char *what, int ta, int tb, int M, int N, int K, const float *A,
                   const uint16_t *A16, const float *B, const uint16_t *B16, float *C, float beta, int batch,
                   int64_t sA, int64_t sB, int64_t sC)
{
    const float one = 1.0f;
    cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    int lda = ta ? M : K, ldb = tb ? K : N;
    const void *a = A, *bp = B;
    cudaDataType_t ty = CUDA_R_32F;
    cublasComputeType_t ct = CUBLAS_COMPUTE_32F_PEDANTIC;
    if (g->prec == KCU_BF16) {
        ty = CUDA_R_16BF;
        ct = CUBLAS_COMPUTE_32F;
        int64_t na = batch > 1 ? sA * batch : (int64_t)M * K, nb = batch > 1 ? sB * batch : (int64_t)K * N;
        if (!A16) {
            XFFL_RETURN_IF(na > g->cast_elems, XFFL_ERR_INTERNAL, "cuda backend: %s: operand A too big for staging", what);
            OP(kcu_to_bf16(g->castA, A, na, g->stream), what);
            A16 = g->castA;
        }
        if (!B16) {
            XFFL_RETURN_IF(nb > g->cast_elems, XFFL_ERR_INTERNAL, "cuda backend: %s: operand B too big for staging", what);
            OP(kcu_to_bf16(g->castB, B, nb, g->stream), what);
            B16 = g->castB;
        }
        a = A16;
        bp = B16;
    }
    cublasStatus_t st;
    if (batch <= 1)
        st = cublasGemmEx((cublasHandle_t)g->blas, opB, opA, N, M, K, &one, bp, ty, ldb, a, ty, lda, &beta, C,
                          CUDA_R_32F, N, ct, CUBLAS_GEMM_DEFAULT);
    else
        st = cublasGemmStridedBatchedEx((cublasHandle_t)g->blas, opB, opA, N, M, K, &one, bp, ty, ldb, sB, a, ty, lda,
                                        sA, &beta, C, CUDA_R_32F, N, sC, batch, ct, CUBLAS_GEMM_DEFAULT);
    XFFL_RETURN_IF(st != CUBLAS_STATUS_SUCCESS, XFFL_ERR_BACKEND, "cublas %s (%dx%dx%d, batch %d): %s", what, M, N, K,
                   batch, cublasGetStatusString(st));
    return XFFL_OK;
}

/* bf16 mode: the A staging buffer, where the softmax kernels write the bf16 copy of the
 * (B,H,T,T) matrix the next GEMMs read; NULL (those GEMMs cast it themselves) in fp32 mode
 * or if it does not fit. */
static uint16_t *attention_staging(const kcu_gemm *g, int B, int H, int T)
{
    return g->prec == KCU_BF16 && (int64_t)B * H * T * T <= g->cast_elems ? g->castA : NULL;
}

xffl_status kcu_attention_fwd(const kcu_gemm *g, float *out, float *qh, float *kh, float *vh, float *P,
                              float *scratch, const float *q, const float *k, const float *v, int B, int T, int H,
                              int KV, int hd)
{
    void *s = g->stream;
    int64_t sQ = (int64_t)T * hd, sP = (int64_t)T * T;
    OP(kcu_to_heads(qh, q, B, T, H, H, hd, s), "to_heads (q)");
    OP(kcu_to_heads(kh, k, B, T, H, KV, hd, s), "to_heads (k)");
    OP(kcu_to_heads(vh, v, B, T, H, KV, hd, s), "to_heads (v)");
    /* scores(T,T) = q(T,hd) k^T per (b,h) */
    XFFL_FORWARD(kcu_mm(g, "attention scores", 0, 1, T, T, hd, qh, NULL, kh, NULL, P, 0.0f, B * H, sQ, sQ, sP));
    uint16_t *P16 = attention_staging(g, B, H, T);
    OP(kcu_softmax_causal_fwd(P, P16, B * H, T, 1.0f / sqrtf((float)hd), s), "softmax_causal_fwd");
    /* o(T,hd) = P(T,T) v(T,hd) */
    XFFL_FORWARD(kcu_mm(g, "attention values", 0, 0, T, hd, T, P, P16, vh, NULL, scratch, 0.0f, B * H, sP, sQ, sQ));
    OP(kcu_from_heads(out, scratch, B, T, H, H, hd, s), "from_heads (o)");
    return XFFL_OK;
}

xffl_status kcu_attention_bwd(const kcu_gemm *g, float *dq, float *dk, float *dv, const float *dout,
                              const float *qh, const float *kh, const float *vh, const float *P, float *dP, float *s1,
                              float *s2, float *s3, int B, int T, int H, int KV, int hd)
{
    void *s = g->stream;
    int64_t sQ = (int64_t)T * hd, sP = (int64_t)T * T;
    OP(kcu_to_heads(s1, dout, B, T, H, H, hd, s), "to_heads (dout)");
    /* dP(T,T) = do(T,hd) v^T ; dv(T,hd) = P^T do */
    XFFL_FORWARD(kcu_mm(g, "attention dP", 0, 1, T, T, hd, s1, NULL, vh, NULL, dP, 0.0f, B * H, sQ, sQ, sP));
    XFFL_FORWARD(kcu_mm(g, "attention dV", 1, 0, T, hd, T, P, NULL, s1, NULL, s2, 0.0f, B * H, sP, sQ, sQ));
    OP(kcu_from_heads(dv, s2, B, T, H, KV, hd, s), "from_heads (dv)");
    /* dS16 overwrites the P16 that "attention dV" read: the same stream orders them */
    uint16_t *dS16 = attention_staging(g, B, H, T);
    OP(kcu_softmax_causal_bwd(dP, dS16, P, B * H, T, 1.0f / sqrtf((float)hd), s), "softmax_causal_bwd");
    /* dq(T,hd) = dS k ; dk(T,hd) = dS^T q: both read dS16 (their B operands go to castB) */
    XFFL_FORWARD(kcu_mm(g, "attention dQ", 0, 0, T, hd, T, dP, dS16, kh, NULL, s3, 0.0f, B * H, sP, sQ, sQ));
    XFFL_FORWARD(kcu_mm(g, "attention dK", 1, 0, T, hd, T, dP, dS16, qh, NULL, s1, 0.0f, B * H, sP, sQ, sQ));
    OP(kcu_from_heads(dq, s3, B, T, H, H, hd, s), "from_heads (dq)");
    OP(kcu_from_heads(dk, s1, B, T, H, KV, hd, s), "from_heads (dk)");
    return XFFL_OK;
}
