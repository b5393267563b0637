/* Fused causal GQA attention (contract in attn_fused.h, algorithm in kernels/cpu/flash.h).
 *
 * mma.sync.m16n8k16 bf16 fragments (PTX ISA), lane = 4 g + t (g = lane / 4, t = lane % 4),
 * each 32-bit register two bf16, the lower column (or k) in the low half:
 *   A 16x16 row-major: a0 (row g, k 2t..2t+1), a1 (row g+8, k 2t..), a2 (row g, k 2t+8..),
 *                      a3 (row g+8, k 2t+8..)
 *   B 16x8  (k x n):   b0 (k 2t..2t+1, col g), b1 (k 2t+8..2t+9, col g)
 *   C 16x8  fp32:      c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, cols 2t, 2t+1)
 * So two C tiles of a score row block (cols 16kk..16kk+7 and +8..+15) are, packed to bf16,
 * exactly the A fragment of the k-chunk kk of the next product: scores never leave registers.
 * Shared-memory tiles are row-major with rows of HD + 8 bf16 (16 bytes of padding: 16-byte
 * aligned rows, and the 8 rows x 4 words an A or B fragment load touches fall in 32 banks).
 *
 * KFA_EMU: tests/emu/flash_emu.cc includes this file into a host program that runs the
 * kernels below unchanged, one CPU thread per CUDA thread, with the MMA, the shuffles and the
 * barriers emulated (tests/emu/cuda_emu.h): a check of the indexing without a GPU. */
#ifndef KFA_EMU
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#define KFA_DYN_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/flash.h"
#include "kernels/cuda/attn_fused.h"

typedef __nv_bfloat16 bf16;

#define LOG2E_F 1.4426950408889634f
#define LN2_F 0.6931471805599453f
#define NWARPS 4
#define NTHREADS (NWARPS * 32)

static_assert(FA_FWD_BR == NWARPS * 16 && FA_BWD_BKV == NWARPS * 16 && FA_DQ_BR == NWARPS * 16,
              "one warp per 16 rows of a block");
static_assert(FA_FWD_BC % 16 == 0 && FA_BWD_BQ % 16 == 0 && FA_DQ_BC % 16 == 0, "k-chunks of 16");

namespace {

__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], const uint32_t b[2])
{
#ifdef KFA_EMU
    kfa_emu_mma16816(c, a, b);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x = lo: the low half */
    uint32_t r;
    memcpy(&r, &v, 4);
    return r;
}

__device__ __forceinline__ uint32_t pack2h(bf16 lo, bf16 hi)
{
    __nv_bfloat162 v;
    v.x = lo;
    v.y = hi;
    uint32_t r;
    memcpy(&r, &v, 4);
    return r;
}

__device__ __forceinline__ uint32_t ld32(const bf16 *p) { return *reinterpret_cast<const uint32_t *>(p); }

/* A fragment of rows r0..r0+15, k columns k0..k0+15 of a row-major tile X (row stride LD). */
template <int LD>
__device__ __forceinline__ void frag_a(uint32_t a[4], const bf16 *X, int r0, int k0, int g, int t)
{
    const bf16 *p = X + (r0 + g) * LD + k0 + 2 * t;
    a[0] = ld32(p);
    a[1] = ld32(p + 8 * LD);
    a[2] = ld32(p + 8);
    a[3] = ld32(p + 8 * LD + 8);
}

/* B fragment with B[k][n] = X[n0 + n][k0 + k] (X^T: K in Q K^T, dO in V dO^T, ...). */
template <int LD>
__device__ __forceinline__ void frag_bt(uint32_t b[2], const bf16 *X, int n0, int k0, int g, int t)
{
    const bf16 *p = X + (n0 + g) * LD + k0 + 2 * t;
    b[0] = ld32(p);
    b[1] = ld32(p + 8);
}

/* B fragment with B[k][n] = X[k0 + k][n0 + n] (X as stored: V in P V, dO in P^T dO, ...). */
template <int LD>
__device__ __forceinline__ void frag_b(uint32_t b[2], const bf16 *X, int k0, int n0, int g, int t)
{
    const bf16 *p = X + (k0 + 2 * t) * LD + n0 + g;
    b[0] = pack2h(p[0], p[LD]);
    b[1] = pack2h(p[8 * LD], p[9 * LD]);
}

/* A fragment of k-chunk kk from C tiles c[2kk], c[2kk+1] (bf16-rounded: flash.h's rounding). */
__device__ __forceinline__ void c_to_a(uint32_t a[4], const float c0[4], const float c1[4])
{
    a[0] = pack2(c0[0], c0[1]);
    a[1] = pack2(c0[2], c0[3]);
    a[2] = pack2(c1[0], c1[1]);
    a[3] = pack2(c1[2], c1[3]);
}

/* Rows r0..r0+R-1 of head hh of a [B,T,nh,HD] bf16 tensor into a tile; rows past T zero. */
template <int HD>
__device__ __forceinline__ void load_tile(bf16 *s, const bf16 *g, int b, int r0, int R, int T, int nh, int hh)
{
    constexpr int LD = HD + 8, CH = HD / 8;
    for (int i = threadIdx.x; i < R * CH; i += NTHREADS) {
        int r = i / CH, cc = i % CH, tt = r0 + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (tt < T) v = *reinterpret_cast<const uint4 *>(g + (((int64_t)b * T + tt) * nh + hh) * HD + cc * 8);
        *reinterpret_cast<uint4 *>(s + r * LD + cc * 8) = v;
    }
}

/* ---- forward ------------------------------------------------------------------------------ */

template <int HD>
__global__ void __launch_bounds__(NTHREADS) flash_fwd_k(float *out, float *lse, const bf16 *q, const bf16 *k,
                                                        const bf16 *v, int T, int H, int KV, float sl2)
{
    constexpr int LD = HD + 8, BR = FA_FWD_BR, BC = FA_FWD_BC;
    KFA_DYN_SMEM(smem);
    bf16 *sQ = reinterpret_cast<bf16 *>(smem), *sK = sQ + BR * LD, *sV = sK + BC * LD;
    const int i0 = (gridDim.x - 1 - blockIdx.x) * BR; /* the longest (last) tiles first */
    const int b = blockIdx.y / H, h = blockIdx.y % H, kvh = h / (H / KV);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int wr = warp * 16, row0 = i0 + wr + g, row1 = row0 + 8;
    const int last = min(i0 + BR, T) - 1;

    load_tile<HD>(sQ, q, b, i0, BR, T, H, h);
    __syncthreads();
    uint32_t qa[HD / 16][4];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) frag_a<LD>(qa[kk], sQ, wr, kk * 16, g, t);
    float o[HD / 8][4];
#pragma unroll
    for (int dn = 0; dn < HD / 8; dn++) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    for (int j0 = 0; j0 <= last; j0 += BC) {
        __syncthreads(); /* the previous tile's K, V are read */
        load_tile<HD>(sK, k, b, j0, BC, T, KV, kvh);
        load_tile<HD>(sV, v, b, j0, BC, T, KV, kvh);
        __syncthreads();
        if (j0 > i0 + wr + 15) continue; /* every row of this warp is before the tile: all masked */
        float s[BC / 8][4];
#pragma unroll
        for (int nn = 0; nn < BC / 8; nn++) s[nn][0] = s[nn][1] = s[nn][2] = s[nn][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++)
#pragma unroll
            for (int nn = 0; nn < BC / 8; nn++) {
                uint32_t bb[2];
                frag_bt<LD>(bb, sK, nn * 8, kk * 16, g, t);
                mma16816(s[nn], qa[kk], bb);
            }
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int nn = 0; nn < BC / 8; nn++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = j0 + nn * 8 + 2 * t + (e & 1), row = e < 2 ? row0 : row1;
                float x = (col > row || col >= T) ? -INFINITY : s[nn][e] * sl2;
                s[nn][e] = x;
                if (e < 2) mx0 = fmaxf(mx0, x);
                else mx1 = fmaxf(mx1, x);
            }
        /* a row's 64 columns are spread over the 4 lanes of its quad */
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float a0 = m0 == -INFINITY ? 0.0f : exp2f(m0 - mx0), a1 = m1 == -INFINITY ? 0.0f : exp2f(m1 - mx1);
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int nn = 0; nn < BC / 8; nn++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float mx = e < 2 ? mx0 : mx1;
                float p = s[nn][e] == -INFINITY ? 0.0f : exp2f(s[nn][e] - mx);
                s[nn][e] = p;
                if (e < 2) sum0 += p;
                else sum1 += p;
            }
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1);
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);
        l0 = a0 * l0 + sum0;
        l1 = a1 * l1 + sum1;
        m0 = mx0;
        m1 = mx1;
#pragma unroll
        for (int dn = 0; dn < HD / 8; dn++) {
            o[dn][0] *= a0;
            o[dn][1] *= a0;
            o[dn][2] *= a1;
            o[dn][3] *= a1;
        }
        /* O += bf16(P) V */
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            uint32_t pa[4];
            c_to_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
            for (int dn = 0; dn < HD / 8; dn++) {
                uint32_t bb[2];
                frag_b<LD>(bb, sV, kk * 16, dn * 8, g, t);
                mma16816(o[dn], pa, bb);
            }
        }
    }
    const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
#pragma unroll
    for (int dn = 0; dn < HD / 8; dn++) {
        int col = dn * 8 + 2 * t;
        if (row0 < T) {
            float *p = out + (((int64_t)b * T + row0) * H + h) * HD + col;
            p[0] = o[dn][0] * inv0;
            p[1] = o[dn][1] * inv0;
        }
        if (row1 < T) {
            float *p = out + (((int64_t)b * T + row1) * H + h) * HD + col;
            p[0] = o[dn][2] * inv1;
            p[1] = o[dn][3] * inv1;
        }
    }
    if (t == 0) {
        if (row0 < T) lse[((int64_t)b * H + h) * T + row0] = (m0 + log2f(l0)) * LN2_F;
        if (row1 < T) lse[((int64_t)b * H + h) * T + row1] = (m1 + log2f(l1)) * LN2_F;
    }
}

/* ---- backward: preparation ------------------------------------------------------------------ */

/* One warp per (b, t, h) row: do16 = bf16(dout), Dr = sum_d bf16(dout) out. */
__global__ void __launch_bounds__(NTHREADS) flash_bwd_prep_k(bf16 *do16, float *Dr, const float *dout,
                                                             const float *out, int64_t rows, int T, int H, int hd)
{
    int64_t r = (int64_t)blockIdx.x * NWARPS + threadIdx.x / 32;
    if (r >= rows) return;
    int lane = threadIdx.x % 32;
    const float *x = dout + r * hd, *o = out + r * hd;
    float s = 0.0f;
    for (int d = lane; d < hd; d += 32) {
        bf16 xb = __float2bfloat16_rn(x[d]);
        do16[r * hd + d] = xb;
        s += __bfloat162float(xb) * o[d];
    }
#pragma unroll
    for (int w = 16; w > 0; w /= 2) s += __shfl_xor_sync(0xffffffffu, s, w);
    if (lane == 0) {
        /* r = (b T + t) H + h -> Dr[(b H + h) T + t] */
        int64_t bt = r / H;
        int h = (int)(r % H), tt = (int)(bt % T);
        int64_t b = bt / T;
        Dr[(b * H + h) * T + tt] = s;
    }
}

/* ---- backward: dK, dV ------------------------------------------------------------------------ */

template <int HD>
__global__ void __launch_bounds__(NTHREADS) flash_bwd_dkdv_k(float *dk, float *dv, const bf16 *q, const bf16 *k,
                                                             const bf16 *v, const bf16 *dO, const float *lse,
                                                             const float *Dr, int T, int H, int KV, float sl2, float c)
{
    constexpr int LD = HD + 8, BKV = FA_BWD_BKV, BQ = FA_BWD_BQ;
    KFA_DYN_SMEM(smem);
    bf16 *sK = reinterpret_cast<bf16 *>(smem), *sV = sK + BKV * LD, *sQ = sV + BKV * LD, *sdO = sQ + BQ * LD;
    float *sL = reinterpret_cast<float *>(sdO + BQ * LD), *sD = sL + BQ;
    const int j0 = blockIdx.x * BKV; /* the first kv tiles see the most query tiles: they start first */
    const int b = blockIdx.y / KV, kvh = blockIdx.y % KV, group = H / KV;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int wr = warp * 16, kv0 = j0 + wr + g, kv1 = kv0 + 8;

    load_tile<HD>(sK, k, b, j0, BKV, T, KV, kvh);
    load_tile<HD>(sV, v, b, j0, BKV, T, KV, kvh);
    float dka[HD / 8][4], dva[HD / 8][4];
#pragma unroll
    for (int dn = 0; dn < HD / 8; dn++)
#pragma unroll
        for (int e = 0; e < 4; e++) dka[dn][e] = dva[dn][e] = 0.0f;

    for (int h = kvh * group; h < (kvh + 1) * group; h++)
        for (int i0 = j0 / BQ * BQ; i0 < T; i0 += BQ) {
            __syncthreads(); /* the previous step's Q, dO are read (and K, V are loaded) */
            load_tile<HD>(sQ, q, b, i0, BQ, T, H, h);
            load_tile<HD>(sdO, dO, b, i0, BQ, T, H, h);
            for (int r = threadIdx.x; r < BQ; r += NTHREADS) {
                int tt = i0 + r;
                sL[r] = tt < T ? lse[((int64_t)b * H + h) * T + tt] * LOG2E_F : 0.0f;
                sD[r] = tt < T ? Dr[((int64_t)b * H + h) * T + tt] : 0.0f;
            }
            __syncthreads();
            if (j0 + wr > min(i0 + BQ, T) - 1) continue; /* this warp's kv rows are after every query row */
            /* S^T = K_w Q^T (16 kv rows x BQ query columns) and dP^T = V_w dO^T */
            float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
            for (int nn = 0; nn < BQ / 8; nn++)
#pragma unroll
                for (int e = 0; e < 4; e++) st[nn][e] = dpt[nn][e] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                uint32_t ka[4], va[4];
                frag_a<LD>(ka, sK, wr, kk * 16, g, t);
                frag_a<LD>(va, sV, wr, kk * 16, g, t);
#pragma unroll
                for (int nn = 0; nn < BQ / 8; nn++) {
                    uint32_t bq[2], bo[2];
                    frag_bt<LD>(bq, sQ, nn * 8, kk * 16, g, t);
                    frag_bt<LD>(bo, sdO, nn * 8, kk * 16, g, t);
                    mma16816(st[nn], ka, bq);
                    mma16816(dpt[nn], va, bo);
                }
            }
            /* P^T = exp2(S^T c log2e - lse log2e) on the causal prefix; dS^T = P^T (dP^T - Dr) */
#pragma unroll
            for (int nn = 0; nn < BQ / 8; nn++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int qc = nn * 8 + 2 * t + (e & 1), qrow = i0 + qc, kvrow = e < 2 ? kv0 : kv1;
                    float p = (qrow < T && kvrow <= qrow) ? exp2f(st[nn][e] * sl2 - sL[qc]) : 0.0f;
                    st[nn][e] = p;
                    dpt[nn][e] = p * (dpt[nn][e] - sD[qc]);
                }
            /* dV += bf16(P^T) dO, dK += bf16(dS^T) Q */
#pragma unroll
            for (int kk = 0; kk < BQ / 16; kk++) {
                uint32_t pa[4], sa[4];
                c_to_a(pa, st[2 * kk], st[2 * kk + 1]);
                c_to_a(sa, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
                for (int dn = 0; dn < HD / 8; dn++) {
                    uint32_t bo[2], bq[2];
                    frag_b<LD>(bo, sdO, kk * 16, dn * 8, g, t);
                    frag_b<LD>(bq, sQ, kk * 16, dn * 8, g, t);
                    mma16816(dva[dn], pa, bo);
                    mma16816(dka[dn], sa, bq);
                }
            }
        }
#pragma unroll
    for (int dn = 0; dn < HD / 8; dn++) {
        int col = dn * 8 + 2 * t;
        if (kv0 < T) {
            int64_t at = (((int64_t)b * T + kv0) * KV + kvh) * HD + col;
            dk[at] = dka[dn][0] * c;
            dk[at + 1] = dka[dn][1] * c;
            dv[at] = dva[dn][0];
            dv[at + 1] = dva[dn][1];
        }
        if (kv1 < T) {
            int64_t at = (((int64_t)b * T + kv1) * KV + kvh) * HD + col;
            dk[at] = dka[dn][2] * c;
            dk[at + 1] = dka[dn][3] * c;
            dv[at] = dva[dn][2];
            dv[at + 1] = dva[dn][3];
        }
    }
}

/* ---- backward: dQ ----------------------------------------------------------------------------- */

template <int HD>
__global__ void __launch_bounds__(NTHREADS) flash_bwd_dq_k(float *dq, const bf16 *q, const bf16 *k, const bf16 *v,
                                                           const bf16 *dO, const float *lse, const float *Dr, int T,
                                                           int H, int KV, float sl2, float c)
{
    constexpr int LD = HD + 8, BR = FA_DQ_BR, BC = FA_DQ_BC;
    KFA_DYN_SMEM(smem);
    bf16 *sQ = reinterpret_cast<bf16 *>(smem), *sdO = sQ + BR * LD, *sK = sdO + BR * LD, *sV = sK + BC * LD;
    const int i0 = (gridDim.x - 1 - blockIdx.x) * BR;
    const int b = blockIdx.y / H, h = blockIdx.y % H, kvh = h / (H / KV);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int wr = warp * 16, row0 = i0 + wr + g, row1 = row0 + 8;
    const int last = min(i0 + BR, T) - 1;
    const float L0 = row0 < T ? lse[((int64_t)b * H + h) * T + row0] * LOG2E_F : 0.0f;
    const float L1 = row1 < T ? lse[((int64_t)b * H + h) * T + row1] * LOG2E_F : 0.0f;
    const float D0 = row0 < T ? Dr[((int64_t)b * H + h) * T + row0] : 0.0f;
    const float D1 = row1 < T ? Dr[((int64_t)b * H + h) * T + row1] : 0.0f;

    load_tile<HD>(sQ, q, b, i0, BR, T, H, h);
    load_tile<HD>(sdO, dO, b, i0, BR, T, H, h);
    float dqa[HD / 8][4];
#pragma unroll
    for (int dn = 0; dn < HD / 8; dn++) dqa[dn][0] = dqa[dn][1] = dqa[dn][2] = dqa[dn][3] = 0.0f;

    for (int j0 = 0; j0 <= last; j0 += BC) {
        __syncthreads();
        load_tile<HD>(sK, k, b, j0, BC, T, KV, kvh);
        load_tile<HD>(sV, v, b, j0, BC, T, KV, kvh);
        __syncthreads();
        if (j0 > i0 + wr + 15) continue;
        float s[BC / 8][4], dp[BC / 8][4];
#pragma unroll
        for (int nn = 0; nn < BC / 8; nn++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[nn][e] = dp[nn][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t qa[4], oa[4];
            frag_a<LD>(qa, sQ, wr, kk * 16, g, t);
            frag_a<LD>(oa, sdO, wr, kk * 16, g, t);
#pragma unroll
            for (int nn = 0; nn < BC / 8; nn++) {
                uint32_t bk[2], bv[2];
                frag_bt<LD>(bk, sK, nn * 8, kk * 16, g, t);
                frag_bt<LD>(bv, sV, nn * 8, kk * 16, g, t);
                mma16816(s[nn], qa, bk);
                mma16816(dp[nn], oa, bv);
            }
        }
#pragma unroll
        for (int nn = 0; nn < BC / 8; nn++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = j0 + nn * 8 + 2 * t + (e & 1), row = e < 2 ? row0 : row1;
                float p = (row < T && col <= row) ? exp2f(s[nn][e] * sl2 - (e < 2 ? L0 : L1)) : 0.0f;
                s[nn][e] = p * (dp[nn][e] - (e < 2 ? D0 : D1)); /* dS */
            }
        /* dQ += bf16(dS) K */
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            uint32_t sa[4];
            c_to_a(sa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
            for (int dn = 0; dn < HD / 8; dn++) {
                uint32_t bk[2];
                frag_b<LD>(bk, sK, kk * 16, dn * 8, g, t);
                mma16816(dqa[dn], sa, bk);
            }
        }
    }
#pragma unroll
    for (int dn = 0; dn < HD / 8; dn++) {
        int col = dn * 8 + 2 * t;
        if (row0 < T) {
            float *p = dq + (((int64_t)b * T + row0) * H + h) * HD + col;
            p[0] = dqa[dn][0] * c;
            p[1] = dqa[dn][1] * c;
        }
        if (row1 < T) {
            float *p = dq + (((int64_t)b * T + row1) * H + h) * HD + col;
            p[0] = dqa[dn][2] * c;
            p[1] = dqa[dn][3] * c;
        }
    }
}

/* ---- launchers ---------------------------------------------------------------------------- */

constexpr size_t fwd_smem(int hd) { return (size_t)(FA_FWD_BR + 2 * FA_FWD_BC) * (hd + 8) * sizeof(bf16); }
constexpr size_t dkdv_smem(int hd)
{
    return (size_t)(2 * FA_BWD_BKV + 2 * FA_BWD_BQ) * (hd + 8) * sizeof(bf16) + 2 * FA_BWD_BQ * sizeof(float);
}
constexpr size_t dq_smem(int hd) { return (size_t)(2 * FA_DQ_BR + 2 * FA_DQ_BC) * (hd + 8) * sizeof(bf16); }

int cdiv(int a, int b) { return (a + b - 1) / b; }

#ifndef KFA_EMU

template <int HD>
int fwd(float *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int B, int T, int H, int KV,
        cudaStream_t s)
{
    size_t sm = fwd_smem(HD);
    cudaError_t e = cudaFuncSetAttribute(flash_fwd_k<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm);
    if (e != cudaSuccess) return (int)e;
    dim3 grid((unsigned)cdiv(T, FA_FWD_BR), (unsigned)(B * H));
    flash_fwd_k<HD><<<grid, NTHREADS, sm, s>>>(out, lse, q, k, v, T, H, KV, LOG2E_F / sqrtf((float)HD));
    return (int)cudaGetLastError();
}

template <int HD>
int bwd(float *dq, float *dk, float *dv, const bf16 *q, const bf16 *k, const bf16 *v, const bf16 *dO,
        const float *lse, const float *Dr, int B, int T, int H, int KV, cudaStream_t s)
{
    const float c = 1.0f / sqrtf((float)HD), sl2 = c * LOG2E_F;
    size_t sm1 = dkdv_smem(HD), sm2 = dq_smem(HD);
    cudaError_t e = cudaFuncSetAttribute(flash_bwd_dkdv_k<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm1);
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(flash_bwd_dq_k<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm2);
    if (e != cudaSuccess) return (int)e;
    dim3 g1((unsigned)cdiv(T, FA_BWD_BKV), (unsigned)(B * KV)), g2((unsigned)cdiv(T, FA_DQ_BR), (unsigned)(B * H));
    flash_bwd_dkdv_k<HD><<<g1, NTHREADS, sm1, s>>>(dk, dv, q, k, v, dO, lse, Dr, T, H, KV, sl2, c);
    if ((e = cudaGetLastError()) != cudaSuccess) return (int)e;
    flash_bwd_dq_k<HD><<<g2, NTHREADS, sm2, s>>>(dq, q, k, v, dO, lse, Dr, T, H, KV, sl2, c);
    return (int)cudaGetLastError();
}

#endif /* KFA_EMU */
} // namespace

#ifndef KFA_EMU

extern "C" int kcu_flash_fwd(float *out, float *lse, const uint16_t *q16, const uint16_t *k16, const uint16_t *v16,
                             int B, int T, int H, int KV, int hd, void *stream)
{
    if (B <= 0 || T <= 0 || H <= 0 || KV <= 0 || H % KV || !kflash_head_supported(hd)) return (int)cudaErrorInvalidValue;
    const bf16 *q = reinterpret_cast<const bf16 *>(q16), *k = reinterpret_cast<const bf16 *>(k16),
               *v = reinterpret_cast<const bf16 *>(v16);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (hd) {
    case 16: return fwd<16>(out, lse, q, k, v, B, T, H, KV, s);
    case 32: return fwd<32>(out, lse, q, k, v, B, T, H, KV, s);
    case 48: return fwd<48>(out, lse, q, k, v, B, T, H, KV, s);
    case 64: return fwd<64>(out, lse, q, k, v, B, T, H, KV, s);
    default: return fwd<128>(out, lse, q, k, v, B, T, H, KV, s);
    }
}

extern "C" int kcu_flash_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                             const uint16_t *q16, const uint16_t *k16, const uint16_t *v16, uint16_t *do16, float *Dr,
                             int B, int T, int H, int KV, int hd, void *stream)
{
    if (B <= 0 || T <= 0 || H <= 0 || KV <= 0 || H % KV || !kflash_head_supported(hd)) return (int)cudaErrorInvalidValue;
    const bf16 *q = reinterpret_cast<const bf16 *>(q16), *k = reinterpret_cast<const bf16 *>(k16),
               *v = reinterpret_cast<const bf16 *>(v16);
    bf16 *dO = reinterpret_cast<bf16 *>(do16);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    int64_t rows = (int64_t)B * T * H;
    flash_bwd_prep_k<<<(unsigned)((rows + NWARPS - 1) / NWARPS), NTHREADS, 0, s>>>(dO, Dr, dout, out, rows, T, H, hd);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return (int)e;
    switch (hd) {
    case 16: return bwd<16>(dq, dk, dv, q, k, v, dO, lse, Dr, B, T, H, KV, s);
    case 32: return bwd<32>(dq, dk, dv, q, k, v, dO, lse, Dr, B, T, H, KV, s);
    case 48: return bwd<48>(dq, dk, dv, q, k, v, dO, lse, Dr, B, T, H, KV, s);
    case 64: return bwd<64>(dq, dk, dv, q, k, v, dO, lse, Dr, B, T, H, KV, s);
    default: return bwd<128>(dq, dk, dv, q, k, v, dO, lse, Dr, B, T, H, KV, s);
    }
}
#endif /* KFA_EMU */
