/* bf16 compute on CPUs with bf16 matrix units (AVX-512 BF16, AMX-BF16): GEMMs with bf16
 * operands and fp32 accumulation through oneDNN's matmul primitive (Debian's libdnnl,
 * the C API of dnnl.h), primitives cached per shape and transpose layout. The CPU
 * backend's bf16 mode (kernels/cpu/model.c) runs its linear layers through it and keeps
 * everything else in fp32: master weights, gradients, AdamW state, norms, softmax, loss
 * (the precision design of kernels/cuda). Detection is at run time (oneDNN's effective
 * ISA); nothing is compiled for the build machine's CPU.
 *
 * XFFL_CPU_BF16=0 in the environment hides the units (tests of the fp32 fallback and of
 * the "no bf16 units" paths on a machine that has them). */
#ifndef XFFL_KCPU_BF16_H
#define XFFL_KCPU_BF16_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

typedef uint16_t kcpu_bf16_t; /* the upper half of an IEEE fp32 */

/* 1 when oneDNN runs bf16 matmul on native units here (and XFFL_CPU_BF16 is not 0). */
int kcpu_bf16_available(void);
/* The instruction set oneDNN dispatches to: "avx512_core_amx", "avx512_core_bf16",
 * "avx512_core", "avx2", ... (what a COMMIT records). */
const char *kcpu_bf16_isa(void);
/* "2.6.3" (oneDNN's run-time version). */
const char *kcpu_onednn_version(void);

/* dst[i] = src[i] rounded to the nearest bf16 (ties to even; NaN stays NaN). Parallel
 * (OpenMP), AVX-512 BF16 instructions when the CPU has them, else the same rounding in
 * scalar code: the same bits either way. Call outside a parallel region. */
void kcpu_to_bf16(kcpu_bf16_t *dst, const float *src, int64_t n);
/* The same on the calling thread alone (inside a parallel region). */
void kcpu_to_bf16_serial(kcpu_bf16_t *dst, const float *src, int64_t n);
/* Rows of a strided matrix: dst[r*ldd + c] = bf16(src[r*lds + c]), c < cols. */
void kcpu_to_bf16_2d(kcpu_bf16_t *dst, int ldd, const float *src, int lds, int64_t rows, int cols);
static inline float kcpu_bf16_to_f32(kcpu_bf16_t h)
{
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)h << 16};
    return v.f;
}

typedef struct kcpu_bf16_ctx kcpu_bf16_ctx;
/* UNSUPPORTED when kcpu_bf16_available() is 0. *out freed with kcpu_bf16_free (NULL ok). */
XFFL_MUST_USE xffl_status kcpu_bf16_create(kcpu_bf16_ctx **out);
void kcpu_bf16_free(kcpu_bf16_ctx *c);

/* C[M,N] (row stride ldc) = beta*C + op(A) op(B), beta 0 or 1, fp32 accumulation.
 * op(A) is M x K: A stored row-major [M,K] (lda) or, with ta, [K,M] (op = transpose);
 * op(B) is K x N: B stored [K,N] (ldb) or, with tb, [N,K]. Threads: OpenMP's current
 * setting (oneDNN shares the OpenMP runtime). Call outside a parallel region. */
XFFL_MUST_USE xffl_status kcpu_bf16_gemm(kcpu_bf16_ctx *c, int ta, int tb, int M, int N, int K, const kcpu_bf16_t *A,
                                         int lda, const kcpu_bf16_t *B, int ldb, float beta, float *C, int ldc);
/* Batched: for i < b0, j < b1: C[i,j] = beta*C[i,j] + A[i,j] B[i,j], A[i,j] M x K, B[i,j]
 * K x N, C[i,j] M x N; as, bs, cs: element strides of (i, j, row, column) of A, B and C
 * (a transpose is a stride: A^T of a row-major [K,M] has strides {.., .., 1, M}). */
XFFL_MUST_USE xffl_status kcpu_bf16_bgemm(kcpu_bf16_ctx *c, int b0, int b1, int M, int N, int K,
                                          const kcpu_bf16_t *A, const int64_t as[4], const kcpu_bf16_t *B,
                                          const int64_t bs[4], float beta, float *C, const int64_t cs[4]);
/* The attention's head-major layout: each head's T x hd block contiguous, its rows
 * padded to hp = kcpu_bf16_head_pad(hd) columns (zeros): what oneDNN's AMX brgemm takes.
 * qkvh = q [B,H,T,hp], then k and v [B,KV,T,hp] each: N * (H + 2 KV) * hp values. */
/* inline: the memory plan (pipelines/memplan.c) uses it in builds without oneDNN */
static inline int kcpu_bf16_head_pad(int hd) { return (hd + 31) / 32 * 32; }
/* qkvh (bf16, head-major) = the rows of qkv (fp32 [B*T, ld]: q H*hd, k KV*hd, v KV*hd side
 * by side, before RoPE) with kcpu_rope's rotation on q and k (cos/sin tables of
 * kcpu_rope_table), rounded to bf16. */
void kcpu_bf16_qkv_heads(kcpu_bf16_t *qkvh, const float *qkv, int ld, int B, int T, int H, int KV, int hd,
                         const float *cosv, const float *sinv);
/* Causal GQA attention (kcpu_attention_fwd's meaning, kernels/cpu/ops.h) with bf16
 * products and fp32 softmax, from qkvh (kcpu_bf16_qkv_heads). outb (bf16, rows [B*T,
 * ldo]) gets the heads' outputs (the input of the output projection), P [B,H,T,T] the
 * fp32 probabilities on and below the diagonal (above it: the raw scores, never read), Pb
 * their bf16 copy (kept for the backward). Pb must hold zeros above the diagonal of each
 * T x T block (zero it once per T): only the causal part is written. O: scratch of
 * B*H*T*hp floats. */
XFFL_MUST_USE xffl_status kcpu_bf16_attention_fwd(kcpu_bf16_ctx *c, kcpu_bf16_t *outb, int ldo, float *O, float *P,
                                                  const kcpu_bf16_t *qkvh, int B, int T, int H, int KV, int hd,
                                                  kcpu_bf16_t *Pb);
/* dqkvb (bf16, rows [B*T, ld] like qkv) = the gradients of q, k, v before RoPE (the
 * rotation's inverse applied in fp32, then rounded: the input of the qkv projection's
 * backward) given dout (fp32 rows, ldo) and the forward's P, Pb and qkvh. dSb: B*H*T*T
 * bf16, zeros above the diagonals like Pb. Scratch: dh N*(H+2KV)*hp floats, dob B*H*T*hp
 * bf16 (may share dqkvb's memory: it is read only before dqkvb is written), dP B*H*T*T
 * floats. */
XFFL_MUST_USE xffl_status kcpu_bf16_attention_bwd(kcpu_bf16_ctx *c, kcpu_bf16_t *dqkvb, int ld, float *dh,
                                                  const float *dout, int ldo, const float *P, const kcpu_bf16_t *Pb,
                                                  const kcpu_bf16_t *qkvh, int B, int T, int H, int KV, int hd,
                                                  const float *cosv, const float *sinv, kcpu_bf16_t *dob,
                                                  kcpu_bf16_t *dSb, float *dP);
/* Fused (flash) causal GQA attention on AMX (kernels/cpu/bf16_attn.c): the T x T scores,
 * P, dP and dS stay in 16 x 32 tiles, never in memory; tiles above the diagonal are
 * skipped. 1 where the CPU has AMX-BF16 (oneDNN's ISA avx512_core_amx, the tile state
 * granted by Linux) and XFFL_CPU_FLASH is not 0 (tests, comparisons); elsewhere the bf16
 * mode keeps kcpu_bf16_attention_fwd/bwd. Its bits do not depend on the thread count. */
int kcpu_bf16_flash_available(void);
/* bytes of scratch per thread for sequence length T and head size hd (64-byte multiple):
 * 11 bf16 and 3 fp32 [tp, hp] blocks (tp = T rounded up to 32), 2 tp-vectors, the 16 x 32
 * tiles and alignment (inline: the memory plan uses it) */
static inline size_t kcpu_bf16_flash_scratch(int T, int hd)
{
    int64_t tp = ((int64_t)T + 31) / 32 * 32, hp = kcpu_bf16_head_pad(hd);
    int64_t n = 11 * tp * hp * 2 + 3 * tp * hp * 4 + 2 * tp * 4 + 16 * hp * 4 + 4 * 16 * 32 * 4 + 4096;
    return (size_t)(n + 63) / 64 * 64;
}
/* outb (bf16 rows [B*T, ldo]) = the heads' outputs, lse [B,H,T] = each query row's
 * log-sum-exp of its scaled scores, from qkvh (kcpu_bf16_qkv_heads). scratch: threads *
 * kcpu_bf16_flash_scratch(T, hd) bytes, 64-byte aligned. Call outside a parallel region. */
void kcpu_bf16_flash_fwd(kcpu_bf16_t *outb, int ldo, float *lse, const kcpu_bf16_t *qkvh, int B, int T, int H, int KV,
                         int hd, void *scratch, int threads);
/* dqkvb (bf16 rows [B*T, ld], kcpu_bf16_attention_bwd's output: q, k, v's gradients with
 * RoPE's inverse applied) from dout (fp32 rows, ldo), the forward's outb and lse, and
 * qkvh: P recomputed from lse tile by tile (FlashAttention-2's backward: Dr =
 * rowsum(bf16(dO) o outb), dS = P o (dP - Dr) / sqrt(hd)). */
XFFL_MUST_USE xffl_status kcpu_bf16_flash_bwd(kcpu_bf16_t *dqkvb, int ld, const float *dout, int ldo,
                                              const kcpu_bf16_t *outb, const float *lse, const kcpu_bf16_t *qkvh, int B,
                                              int T, int H, int KV, int hd, const float *cosv, const float *sinv,
                                              void *scratch, int threads);
/* kcpu_swiglu13_fwd/bwd (ops.h) vectorised with AVX-512 and a polynomial exp (about 2
 * ulp from libm's expf: the bf16 mode's bits, not the fp32 path's), writing their
 * outputs in bf16 (what the next GEMM reads). scratch: the fp32 output's size, used
 * only by the scalar fallback. */
void kcpu_bf16_swiglu13_fwd(kcpu_bf16_t *g, float *scratch, const float *h13, int N, int F);
void kcpu_bf16_swiglu13_bwd(kcpu_bf16_t *dh13, float *scratch, const float *dg, const float *h13, int N, int F);
/* kcpu_rmsnorm_fwd/bwd (ops.h) for the bf16 mode, vectorised (sums in another order than
 * the fp32 path: the bf16 mode's bits). The forward writes its output in bf16 (only a
 * GEMM reads it); scratch: N*D floats for the scalar fallback. xcopy (NULL: none): a copy
 * of x made in the same pass (the residual add that follows starts from x). */
void kcpu_bf16_rmsnorm_fwd(kcpu_bf16_t *out, float *scratch, float *rstd, float *xcopy, const float *x, const float *g,
                           int N, int D, float eps);
void kcpu_bf16_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x, const float *g, const float *rstd,
                           int N, int D);
/* The implementation oneDNN picked for the last primitive created ("brg:avx512_core_amx", ...). */
const char *kcpu_bf16_impl(const kcpu_bf16_ctx *c);

#endif
