// CUDA kernels of the LLaMA-2 forward/backward (shapes and contracts in ops.h).
// Compiled without --use_fast_math: the fp32 mode is compared to the CPU reference at 1e-4.
#include "kernels/cuda/ops.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace {

constexpr int kBlock = 256;

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ float block_sum(float v)
{
    __shared__ float part[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float x = lane < nw ? part[lane] : 0.0f;
        x = warp_sum(x);
        if (lane == 0) total = x;
    }
    __syncthreads();
    float r = total;
    __syncthreads(); // part/total are reused by the next call in the same kernel
    return r;
}

__device__ float block_max(float v)
{
    __shared__ float part[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float x = lane < nw ? part[lane] : -INFINITY;
        x = warp_max(x);
        if (lane == 0) total = x;
    }
    __syncthreads();
    float r = total;
    __syncthreads();
    return r;
}

int grid_for(int64_t n, int block = kBlock)
{
    int64_t g = (n + block - 1) / block;
    if (g > 65535LL * 32) g = 65535LL * 32; // grid-stride loops cover the rest
    return g < 1 ? 1 : (int)g;
}

int launched() { return (int)cudaGetLastError(); }

// ---- embedding ------------------------------------------------------------------------

// grid (N), block: D in strides. out[N,D], tok[N], E[V,D]
__global__ void embedding_fwd_k(float *out, const int32_t *tok, const float *E, int D, int V)
{
    int n = blockIdx.x;
    int t = tok[n];
    float *o = out + (int64_t)n * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = (t >= 0 && t < V) ? E[(int64_t)t * D + i] : 0.0f;
}

// dE[V,D] += rows of dout[N,D] by token
__global__ void embedding_bwd_k(float *dE, const int32_t *tok, const float *dout, int D, int V)
{
    int n = blockIdx.x;
    int t = tok[n];
    if (t < 0 || t >= V) return;
    const float *d = dout + (int64_t)n * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) atomicAdd(&dE[(int64_t)t * D + i], d[i]);
}

// ---- RMSNorm --------------------------------------------------------------------------

// grid (N), one block per row. x,out [N,D]; g[D]; rstd[N]
__global__ void rmsnorm_fwd_k(float *out, __nv_bfloat16 *out16, float *rstd, const float *x, const float *g, int D,
                              float eps)
{
    int64_t n = blockIdx.x;
    const float *xr = x + n * D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)D + eps);
    if (threadIdx.x == 0) rstd[n] = r;
    float *o = out + n * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float y = xr[i] * r * g[i];
        o[i] = y;
        if (out16) out16[n * D + i] = __float2bfloat16_rn(y); /* the next GEMM's operand */
    }
}

// y = x r g with r = (mean x^2 + eps)^-1/2:
//   dx_i = r g_i dy_i - x_i r^3 / D * sum_j(dy_j g_j x_j),  dg_i = sum_n dy_i x_i r
// grid (ceil(N / kNormRows)), shared sdg[D]: a block walks kNormRows rows, adding its rows'
// dg terms in shared memory (each thread owns its columns), then one atomic per column, so
// N/kNormRows (not N) atomics land on each dg element. 32 rows a block left an H200 with
// 128 blocks for 4096 rows (12 % occupancy, 6.5 % of a 1b step); 8 gives 4 blocks an SM.
constexpr int kNormRows = 8;
__global__ void rmsnorm_bwd_k(float *dx, float *dg, const float *dout, const float *x, const float *g,
                              const float *rstd, int N, int D)
{
    extern __shared__ float sdg[];
    for (int i = threadIdx.x; i < D; i += blockDim.x) sdg[i] = 0.0f;
    int64_t n0 = (int64_t)blockIdx.x * kNormRows;
    for (int64_t n = n0; n < n0 + kNormRows && n < N; n++) {
        const float *xr = x + n * D, *dy = dout + n * D;
        float r = rstd[n];
        float dot = 0.0f;
        for (int i = threadIdx.x; i < D; i += blockDim.x) dot += dy[i] * g[i] * xr[i];
        dot = block_sum(dot);
        float c = dot * r * r * r / (float)D;
        float *dxr = dx + n * D;
        for (int i = threadIdx.x; i < D; i += blockDim.x) {
            dxr[i] += r * g[i] * dy[i] - xr[i] * c;
            sdg[i] += dy[i] * xr[i] * r;
        }
    }
    for (int i = threadIdx.x; i < D; i += blockDim.x) atomicAdd(&dg[i], sdg[i]);
}

// ---- RoPE -----------------------------------------------------------------------------

// x[B,T,nh,hd], one thread per pair: (B*T*nh*hd/2) threads
__global__ void rope_k(float *x, int64_t pairs, int T, int nh, int hd, float theta, int inverse)
{
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < pairs; p += (int64_t)gridDim.x * blockDim.x) {
        int half = hd / 2;
        int i = (int)(p % half);                    // pair within the head
        int64_t bt = p / ((int64_t)half * nh);      // token index b*T + t
        int t = (int)(bt % T);
        float freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        float ang = (float)t * freq;
        float c = cosf(ang), s = sinf(ang);
        if (inverse) s = -s;
        float *v = x + 2 * p;
        float a = v[0], b = v[1];
        v[0] = a * c - b * s;
        v[1] = a * s + b * c;
    }
}

// ---- head layout ----------------------------------------------------------------------

// dst[B,H,T,hd] <- src[B,T,nh,hd]; one thread per dst element
__global__ void to_heads_k(float *dst, const float *src, int64_t total, int T, int H, int nh, int hd)
{
    int rep = H / nh;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int d = (int)(e % hd);
        int64_t r = e / hd;
        int t = (int)(r % T);
        r /= T;
        int h = (int)(r % H);
        int64_t b = r / H;
        dst[e] = src[((b * T + t) * nh + h / rep) * hd + d];
    }
}

// dst[B,T,nh,hd] <- sum over group of src[B,H,T,hd]; one thread per dst element (no atomics)
__global__ void from_heads_k(float *dst, const float *src, int64_t total, int T, int H, int nh, int hd)
{
    int rep = H / nh;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int d = (int)(e % hd);
        int64_t r = e / hd;
        int kh = (int)(r % nh);
        r /= nh;
        int t = (int)(r % T);
        int64_t b = r / T;
        float acc = 0.0f;
        for (int j = 0; j < rep; j++) acc += src[((b * H + kh * rep + j) * T + t) * hd + d];
        dst[e] = acc;
    }
}

// ---- causal softmax -------------------------------------------------------------------

// grid (BH*T): one block per row; row t of its (T,T) matrix keeps columns 0..t.
// att16 (or NULL): the bf16 copy the P.V GEMM reads, written here instead of by a separate
// cast pass over the (BH,T,T) matrix (those casts were 30 % of a 1b step on an H200).
__global__ void softmax_causal_fwd_k(float *att, __nv_bfloat16 *att16, int T, float scale)
{
    int64_t row = blockIdx.x;
    int t = (int)(row % T);
    float *a = att + row * T;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) mx = fmaxf(mx, a[j] * scale);
    mx = block_max(mx);
    float sum = 0.0f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) {
        float e = expf(a[j] * scale - mx);
        a[j] = e;
        sum += e;
    }
    sum = block_sum(sum);
    float inv = 1.0f / sum;
    __nv_bfloat16 *a16 = att16 ? att16 + row * T : NULL;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        float p = j <= t ? a[j] * inv : 0.0f;
        a[j] = p;
        if (a16) a16[j] = __float2bfloat16_rn(p);
    }
}

// datt16 (or NULL): the bf16 copy of dL/d(scores) that the dQ and dK GEMMs both read.
__global__ void softmax_causal_bwd_k(float *datt, __nv_bfloat16 *datt16, const float *P, int T, float scale)
{
    int64_t row = blockIdx.x;
    int t = (int)(row % T);
    float *d = datt + row * T;
    const float *p = P + row * T;
    float dot = 0.0f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) dot += d[j] * p[j];
    dot = block_sum(dot);
    __nv_bfloat16 *d16 = datt16 ? datt16 + row * T : NULL;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        float g = j <= t ? scale * p[j] * (d[j] - dot) : 0.0f;
        d[j] = g;
        if (d16) d16[j] = __float2bfloat16_rn(g);
    }
}

// ---- SwiGLU ---------------------------------------------------------------------------

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void swiglu_fwd_k(float *g, __nv_bfloat16 *g16, const float *h1, const float *h3, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float a = h1[i];
        float y = a * sigmoidf(a) * h3[i];
        g[i] = y;
        if (g16) g16[i] = __float2bfloat16_rn(y); /* w2's operand */
    }
}

// silu(a) = a s(a); silu'(a) = s(a) (1 + a (1 - s(a)))
__global__ void swiglu_bwd_k(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float a = h1[i], s = sigmoidf(a), d = dg[i];
        dh1[i] = d * h3[i] * s * (1.0f + a * (1.0f - s));
        dh3[i] = d * a * s;
    }
}

// ---- cross-entropy --------------------------------------------------------------------

// grid (N): one block per row of logits[N,V]
__global__ void xent_fwd_k(float *loss, float *lse, const float *logits, const int32_t *tgt, int V)
{
    int64_t n = blockIdx.x;
    const float *l = logits + n * V;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, l[j]);
    mx = block_max(mx);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) sum += expf(l[j] - mx);
    sum = block_sum(sum);
    if (threadIdx.x == 0) {
        float z = mx + logf(sum);
        lse[n] = z;
        int t = tgt[n];
        loss[n] = (t >= 0 && t < V) ? z - l[t] : 0.0f;
    }
}

__global__ void xent_bwd_k(float *dlogits, const float *logits, const float *lse, const int32_t *tgt, int V, float scale)
{
    int64_t n = blockIdx.x;
    const float *l = logits + n * V;
    float *d = dlogits + n * V;
    float z = lse[n];
    int t = tgt[n];
    for (int j = threadIdx.x; j < V; j += blockDim.x) d[j] = scale * (expf(l[j] - z) - (j == t ? 1.0f : 0.0f));
}

// ---- reductions, casts, optimizer -----------------------------------------------------

__global__ void sumsq_k(double *acc, const float *x, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        s += x[i] * x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) atomicAdd(acc, (double)s);
}

__global__ void scale_k(float *x, float a, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] *= a;
}

__global__ void to_bf16_k(__nv_bfloat16 *dst, const float *src, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

// 4 floats a thread: 16-byte loads and two 4-byte stores. The casts are memory-bound and
// the one-float loop above moved ~2 TB/s on an H200 (of ~4.8).
__global__ void to_bf16_x4_k(__nv_bfloat162 *dst, const float4 *src, int64_t n4)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
        float4 v = src[i];
        dst[2 * i] = __floats2bfloat162_rn(v.x, v.y);
        dst[2 * i + 1] = __floats2bfloat162_rn(v.z, v.w);
    }
}

__global__ void from_bf16_k(float *dst, const __nv_bfloat16 *src, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(src[i]);
}

__device__ __forceinline__ void adamw_one(float *p, __nv_bfloat16 *p16, const float *g, float *m, float *v, int64_t i,
                                          float lr, float b1, float b2, float eps, float wd, float bc1, float bc2,
                                          float gscale)
{
    float gi = g[i] * gscale;
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float mhat = mi / bc1, vhat = vi / bc2;
    float pi = p[i];
    pi -= lr * (mhat / (sqrtf(vhat) + eps) + wd * pi);
    p[i] = pi;
    if (p16) p16[i] = __float2bfloat16_rn(pi);
}

// The whole slab in one launch: element i's tensor is the first segment whose end exceeds i
// (binary search over nseg sorted ends), whose decay is seg_wd[]; the same arithmetic as
// adamw_k, so the same bits as one launch per tensor.
__global__ void adamw_slab_k(float *p, __nv_bfloat16 *p16, const float *g, float *m, float *v, int64_t n,
                             const int64_t *seg_end, const float *seg_wd, int nseg, float lr, float b1, float b2,
                             float eps, float wd, float bc1, float bc2, float gscale)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int lo = 0, hi = nseg - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (seg_end[mid] > i) hi = mid;
            else lo = mid + 1;
        }
        adamw_one(p, p16, g, m, v, i, lr, b1, b2, eps, wd * seg_wd[lo], bc1, bc2, gscale);
    }
}

__global__ void adamw_k(float *p, __nv_bfloat16 *p16, const float *g, float *m, float *v, int64_t n, float lr,
                        float b1, float b2, float eps, float wd, float bc1, float bc2, float gscale)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        adamw_one(p, p16, g, m, v, i, lr, b1, b2, eps, wd, bc1, bc2, gscale);
    }
}

cudaStream_t S(kcu_stream s) { return (cudaStream_t)s; }

int row_block(int width)
{
    // One block per row; narrow rows do not need 256 idle threads.
    int b = 32;
    while (b < width && b < 1024) b <<= 1;
    return b > 256 ? 256 : b;
}

} // namespace

extern "C" {

int kcu_embedding_fwd(float *out, const int32_t *tok, const float *E, int N, int D, int V, kcu_stream s)
{
    embedding_fwd_k<<<N, row_block(D), 0, S(s)>>>(out, tok, E, D, V);
    return launched();
}

int kcu_embedding_bwd(float *dE, const int32_t *tok, const float *dout, int N, int D, int V, kcu_stream s)
{
    embedding_bwd_k<<<N, row_block(D), 0, S(s)>>>(dE, tok, dout, D, V);
    return launched();
}

int kcu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *g, int N, int D, float eps, kcu_stream s)
{
    rmsnorm_fwd_k<<<N, row_block(D), 0, S(s)>>>(out, nullptr, rstd, x, g, D, eps);
    return launched();
}

int kcu_rmsnorm_fwd16(float *out, uint16_t *out16, float *rstd, const float *x, const float *g, int N, int D, float eps,
                      kcu_stream s)
{
    rmsnorm_fwd_k<<<N, row_block(D), 0, S(s)>>>(out, (__nv_bfloat16 *)out16, rstd, x, g, D, eps);
    return launched();
}

int kcu_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x, const float *g, const float *rstd,
                    int N, int D, kcu_stream s)
{
    int blocks = (N + kNormRows - 1) / kNormRows;
    rmsnorm_bwd_k<<<blocks, row_block(D), (size_t)D * sizeof(float), S(s)>>>(dx, dg, dout, x, g, rstd, N, D);
    return launched();
}

int kcu_rope(float *x, int B, int T, int nh, int hd, float theta, int inverse, kcu_stream s)
{
    int64_t pairs = (int64_t)B * T * nh * (hd / 2);
    rope_k<<<grid_for(pairs), kBlock, 0, S(s)>>>(x, pairs, T, nh, hd, theta, inverse);
    return launched();
}

int kcu_to_heads(float *dst, const float *src, int B, int T, int H, int nh, int hd, kcu_stream s)
{
    int64_t total = (int64_t)B * H * T * hd;
    to_heads_k<<<grid_for(total), kBlock, 0, S(s)>>>(dst, src, total, T, H, nh, hd);
    return launched();
}

int kcu_from_heads(float *dst, const float *src, int B, int T, int H, int nh, int hd, kcu_stream s)
{
    int64_t total = (int64_t)B * T * nh * hd;
    from_heads_k<<<grid_for(total), kBlock, 0, S(s)>>>(dst, src, total, T, H, nh, hd);
    return launched();
}

int kcu_softmax_causal_fwd(float *att, uint16_t *att16, int BH, int T, float scale, kcu_stream s)
{
    softmax_causal_fwd_k<<<(unsigned)((int64_t)BH * T), row_block(T), 0, S(s)>>>(att, (__nv_bfloat16 *)att16, T,
                                                                                  scale);
    return launched();
}

int kcu_softmax_causal_bwd(float *datt, uint16_t *datt16, const float *P, int BH, int T, float scale, kcu_stream s)
{
    softmax_causal_bwd_k<<<(unsigned)((int64_t)BH * T), row_block(T), 0, S(s)>>>(datt, (__nv_bfloat16 *)datt16, P, T,
                                                                                  scale);
    return launched();
}

int kcu_swiglu_fwd(float *g, const float *h1, const float *h3, int64_t n, kcu_stream s)
{
    swiglu_fwd_k<<<grid_for(n), kBlock, 0, S(s)>>>(g, nullptr, h1, h3, n);
    return launched();
}

int kcu_swiglu_fwd16(float *g, uint16_t *g16, const float *h1, const float *h3, int64_t n, kcu_stream s)
{
    swiglu_fwd_k<<<grid_for(n), kBlock, 0, S(s)>>>(g, (__nv_bfloat16 *)g16, h1, h3, n);
    return launched();
}

int kcu_swiglu_bwd(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3, int64_t n, kcu_stream s)
{
    swiglu_bwd_k<<<grid_for(n), kBlock, 0, S(s)>>>(dh1, dh3, dg, h1, h3, n);
    return launched();
}

int kcu_xent_fwd(float *loss, float *lse, const float *logits, const int32_t *tgt, int N, int V, kcu_stream s)
{
    xent_fwd_k<<<N, row_block(V), 0, S(s)>>>(loss, lse, logits, tgt, V);
    return launched();
}

int kcu_xent_bwd(float *dlogits, const float *logits, const float *lse, const int32_t *tgt, int N, int V,
                 float scale, kcu_stream s)
{
    xent_bwd_k<<<N, row_block(V), 0, S(s)>>>(dlogits, logits, lse, tgt, V, scale);
    return launched();
}

int kcu_sumsq(double *acc, const float *x, int64_t n, kcu_stream s)
{
    int g = grid_for(n);
    if (g > 1024) g = 1024; // few atomics; the loop strides over the rest
    sumsq_k<<<g, kBlock, 0, S(s)>>>(acc, x, n);
    return launched();
}

int kcu_scale(float *x, float a, int64_t n, kcu_stream s)
{
    scale_k<<<grid_for(n), kBlock, 0, S(s)>>>(x, a, n);
    return launched();
}

int kcu_to_bf16(uint16_t *dst, const float *src, int64_t n, kcu_stream s)
{
    int64_t n4 = ((uintptr_t)src % 16 == 0 && (uintptr_t)dst % 8 == 0) ? n / 4 : 0;
    if (n4 > 0)
        to_bf16_x4_k<<<grid_for(n4), kBlock, 0, S(s)>>>((__nv_bfloat162 *)dst, (const float4 *)src, n4);
    if (4 * n4 < n) // unaligned, or the last n % 4
        to_bf16_k<<<grid_for(n - 4 * n4), kBlock, 0, S(s)>>>((__nv_bfloat16 *)dst + 4 * n4, src + 4 * n4, n - 4 * n4);
    return launched();
}

int kcu_from_bf16(float *dst, const uint16_t *src, int64_t n, kcu_stream s)
{
    from_bf16_k<<<grid_for(n), kBlock, 0, S(s)>>>(dst, (const __nv_bfloat16 *)src, n);
    return launched();
}

int kcu_adamw(float *p, uint16_t *p16, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
              float beta2, float eps, float wd, float bc1, float bc2, float gscale, kcu_stream s)
{
    adamw_k<<<grid_for(n), kBlock, 0, S(s)>>>(p, (__nv_bfloat16 *)p16, g, m, v, n, lr, beta1, beta2, eps, wd, bc1,
                                               bc2, gscale);
    return launched();
}

int kcu_adamw_slab(float *p, uint16_t *p16, const float *g, float *m, float *v, int64_t n, const int64_t *seg_end,
                   const float *seg_wd, int nseg, float lr, float beta1, float beta2, float eps, float wd, float bc1,
                   float bc2, float gscale, kcu_stream s)
{
    if (nseg <= 0) return (int)cudaErrorInvalidValue;
    adamw_slab_k<<<grid_for(n), kBlock, 0, S(s)>>>(p, (__nv_bfloat16 *)p16, g, m, v, n, seg_end, seg_wd, nseg, lr,
                                                    beta1, beta2, eps, wd, bc1, bc2, gscale);
    return launched();
}

} // extern "C"
