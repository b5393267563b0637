/* Fused causal GQA attention on the GPU, FlashAttention-2 manner (the CUDA backend's bf16
 * attention; kernels/cuda/gemm.h's three-GEMM form stays as the reference it is tested
 * against, and the fp32 mode keeps that exact path).
 *
 * Algorithm, tiles and rounding points: kernels/cpu/flash.h, whose C implementation these
 * kernels mirror loop for loop. Shapes (row-major, device memory):
 *   q16[B,T,H,hd], k16, v16[B,T,KV,hd]: bf16 (post-RoPE) operands, stored as uint16;
 *   out[B,T,H,hd] fp32; lse[B,H,T] fp32, the natural-log log-sum-exp of each row's scaled
 *   scores, the only softmax statistic kept (no B*H*T*T buffer exists).
 * One CTA of 4 warps per tile; each warp owns 16 rows and runs bf16 mma.sync.m16n8k16
 * tensor-core MMAs with fp32 accumulation, Q, K, V, dO tiles staged in shared memory, the
 * score tile kept in registers and reused as the A operand of the next MMA (FA-2's trick).
 * Head sizes: kflash_head_supported (16, 32, 48, 64, 128); sm_80 and later.
 * Launchers return 0 or the cudaError_t of the launch, as kernels/cuda/ops.h's do. */
#ifndef XFFL_KCU_ATTN_FUSED_H
#define XFFL_KCU_ATTN_FUSED_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out, lse from q16, k16, v16. */
int kcu_flash_fwd(float *out, float *lse, const uint16_t *q16, const uint16_t *k16, const uint16_t *v16, int B, int T,
                  int H, int KV, int hd, void *stream);
/* dq[B,T,H,hd], dk, dv[B,T,KV,hd] fp32 (overwritten) from dout[B,T,H,hd] fp32 and the
 * forward's out, lse, q16, k16, v16. Scratch: do16 (B*T*H*hd bf16) receives bf16(dout),
 * Dr (B*H*T floats) rowsum(bf16(dout) o out). Three launches: that preparation, the dK/dV
 * pass, the dQ pass (flash.h: no atomics, deterministic). */
int kcu_flash_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                  const uint16_t *q16, const uint16_t *k16, const uint16_t *v16, uint16_t *do16, float *Dr, int B,
                  int T, int H, int KV, int hd, void *stream);

#ifdef __cplusplus
}
#endif

#endif
