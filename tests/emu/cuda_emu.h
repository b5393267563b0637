/* Just enough of CUDA to run kernels/cuda/attn_fused.cu's kernels on the CPU, unchanged: one
 * POSIX thread per CUDA thread of a block (blocks run one after another), __syncthreads a
 * barrier of the block, __shfl_xor_sync and mma.sync.m16n8k16 warp collectives through a
 * per-warp exchange buffer and barrier. The MMA rebuilds the 16x16 A and 16x8 B tiles from
 * the 32 lanes' registers by the PTX ISA fragment layout (attn_fused.cu's header) and sums
 * in fp32. bf16 is round to nearest even, as __float2bfloat16_rn.
 * This checks the kernels' indexing, masking, tile loops, barriers and fragment reuse; it
 * cannot check the hardware (the layout is this file's reading of the PTX ISA, the
 * summation order inside an MMA is not the tensor core's). */
#ifndef XFFL_CUDA_EMU_H
#define XFFL_CUDA_EMU_H

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define KFA_DYN_SMEM(name) unsigned char *name = kfa_emu_smem

struct kfa_dim3 {
    unsigned x, y, z;
};
extern thread_local kfa_dim3 threadIdx;
extern kfa_dim3 blockIdx, gridDim;
extern unsigned char *kfa_emu_smem;

struct uint4 {
    unsigned x, y, z, w;
};
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
static inline int min(int a, int b) { return a < b ? a : b; }

struct __nv_bfloat16 {
    uint16_t bits;
};
struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
static inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = u + 0x7fffu + ((u >> 16) & 1u);
    return __nv_bfloat16{(uint16_t)(u >> 16)};
}
static inline float __bfloat162float(__nv_bfloat16 h)
{
    uint32_t u = (uint32_t)h.bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi)
{
    return __nv_bfloat162{__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}

void __syncthreads();
float __shfl_xor_sync(unsigned mask, float v, int lane_mask);
void kfa_emu_mma16816(float c[4], const uint32_t a[4], const uint32_t b[2]);

#endif
