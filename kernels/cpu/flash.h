/* Fused causal attention, FlashAttention-2 manner: the algorithm, its tiling, and a plain C
 * implementation of it that the CUDA kernels (kernels/cuda/attn_fused.cu) mirror loop for
 * loop. The C one exists to prove the algorithm and its backward formulas on any machine
 * (tests/unit/test_flash.c checks it against kernels/cpu/ref.h's double attention) and to be
 * the bit-level model the GPU tests compare the device kernels to; it is not a fast path
 * (the CPU's fast one is kcpu_bf16_flash_fwd/bwd in kernels/cpu/bf16_attn.c: the same
 * algorithm on AMX tiles, used by the cpu backend's bf16 mode).
 *
 * Shapes (row-major, as everywhere in kernels/): q[B,T,H,hd] (post-RoPE), k, v[B,T,KV,hd],
 * out[B,T,H,hd], lse[B,H,T]; query head h reads kv head h / (H/KV); scale c = 1/sqrt(hd).
 *
 * Forward, per (b, h) and query tile i of FA_FWD_BR rows, kv tiles j = 0 .. the diagonal
 * tile, FA_FWD_BC columns each (kv columns past the row's position or past T masked):
 *   S = c Q_i K_j^T;  m' = max(m, rowmax S);  p = exp(S - m');  a = exp(m - m')
 *   l = a l + rowsum p;  O = a O + bf16(p) V_j;       after the last tile: O /= l,
 *   lse = m + log l  (the only softmax statistic kept; no B*H*T*T buffer exists).
 * Backward (dO = dL/dout), with Dr = rowsum(dO o out) per query row and P = exp(c Q K^T - lse):
 *   dV = P^T dO;  dP = dO V^T;  dS = P o (dP - Dr);  dQ = c dS K;  dK = c dS^T Q
 * in two passes, each owning what it writes (no atomics, deterministic):
 *   dK/dV: per (b, kv head) and kv tile of FA_BWD_BKV rows, loop over the group's H/KV query
 *          heads and the query tiles (FA_BWD_BQ rows) from the diagonal on; sums dV, dK.
 *   dQ:    per (b, h) and query tile of FA_DQ_BR rows, loop over kv tiles (FA_DQ_BC) up to
 *          the diagonal, recomputing S and dP (two more T^2 products than FA-2's one pass
 *          with atomic dQ, the price of a fixed summation order).
 * Exponentials are exp2 of log2(e)-scaled scores, as on the GPU.
 *
 * bf16 = 1 rounds exactly what the GPU kernels feed their bf16 tensor-core MMAs (q, k, v, dO
 * on load, p before P V, P and dS before their products), every sum in fp32 as the MMAs
 * accumulate: the CPU model of the device numerics. bf16 = 0: the same algorithm in fp32. */
#ifndef XFFL_KCPU_FLASH_H
#define XFFL_KCPU_FLASH_H

#define FA_FWD_BR 64  /* forward: query rows per tile (4 warps x 16) */
#define FA_FWD_BC 64  /* forward: kv columns per tile */
#define FA_BWD_BKV 64 /* dK/dV pass: kv rows per block (4 warps x 16) */
#define FA_BWD_BQ 32  /* dK/dV pass: query rows per step */
#define FA_DQ_BR 64   /* dQ pass: query rows per block (4 warps x 16) */
#define FA_DQ_BC 64   /* dQ pass: kv columns per step */

/* 1 when the device kernels are built for head size hd (a multiple of 16 they are
 * instantiated for); other head sizes take the three-GEMM attention. */
static inline int kflash_head_supported(int hd)
{
    return hd == 16 || hd == 32 || hd == 48 || hd == 64 || hd == 128;
}

#ifdef __cplusplus
extern "C" { /* tests/emu/flash_emu.cc is C++ */
#endif

/* out, lse from q, k, v (shapes above). */
void kflash_fwd(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T, int H, int KV,
                int hd, int bf16);
/* dq[B,T,H,hd], dk, dv[B,T,KV,hd] (overwritten) from dout and the forward's out and lse. */
void kflash_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse, const float *q,
                const float *k, const float *v, int B, int T, int H, int KV, int hd, int bf16);

#ifdef __cplusplus
}
#endif

#endif
