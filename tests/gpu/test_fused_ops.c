/* The fused element-wise paths of issue 19 against the unfused ops they replace, bit for bit:
 * RMSNorm writing the bf16 copy its GEMMs read (kcu_rmsnorm_fwd16 vs kcu_rmsnorm_fwd then
 * kcu_to_bf16), SwiGLU writing w2's bf16 operand (kcu_swiglu_fwd16), and AdamW over the
 * whole slab in one launch (kcu_adamw_slab vs one kcu_adamw per tensor, a norm gain without
 * decay among them). The unfused ops are checked against the double reference in test_ops. */
#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/ops.h"
#include "tests/gpu/gpu_test.h"

static void *dev_copy(const void *h, size_t bytes)
{
    void *d = NULL;
    if (cudaMalloc(&d, bytes) != cudaSuccess) return NULL;
    if (h) cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    else cudaMemset(d, 0, bytes);
    return d;
}

static int same_on_host(const void *a, const void *b, size_t bytes)
{
    char *x = malloc(bytes), *y = malloc(bytes);
    int ok = x && y && cudaDeviceSynchronize() == cudaSuccess &&
             cudaMemcpy(x, a, bytes, cudaMemcpyDeviceToHost) == cudaSuccess &&
             cudaMemcpy(y, b, bytes, cudaMemcpyDeviceToHost) == cudaSuccess && !memcmp(x, y, bytes);
    free(x), free(y);
    return ok;
}

void test_op_fused_casts(void)
{
    enum { N = 37, D = 288, NH = 5003 };
    float *x = malloc(4 * N * D), *g = malloc(4 * D), *h1 = malloc(4 * NH), *h3 = malloc(4 * NH);
    gt_fill(x, N * D, 31, -2, 2);
    gt_fill(g, D, 32, 0.5f, 1.5f);
    gt_fill(h1, NH, 33, -6, 6);
    gt_fill(h3, NH, 34, -2, 2);
    float *dx = dev_copy(x, 4 * N * D), *dg = dev_copy(g, 4 * D), *o1 = dev_copy(NULL, 4 * N * D),
          *o2 = dev_copy(NULL, 4 * N * D), *r1 = dev_copy(NULL, 4 * N), *r2 = dev_copy(NULL, 4 * N);
    uint16_t *c1 = dev_copy(NULL, 2 * N * D), *c2 = dev_copy(NULL, 2 * N * D);
    float *dh1 = dev_copy(h1, 4 * NH), *dh3 = dev_copy(h3, 4 * NH), *g1 = dev_copy(NULL, 4 * NH),
          *g2 = dev_copy(NULL, 4 * NH);
    uint16_t *s1 = dev_copy(NULL, 2 * NH), *s2 = dev_copy(NULL, 2 * NH);
    GT_CHECK(dx && dg && o1 && o2 && r1 && r2 && c1 && c2 && dh1 && dh3 && g1 && g2 && s1 && s2, "cudaMalloc");
    if (s2) {
        GT_CHECK(kcu_rmsnorm_fwd(o1, r1, dx, dg, N, D, 1e-5f, NULL) == 0 && kcu_to_bf16(c1, o1, N * D, NULL) == 0 &&
                     kcu_rmsnorm_fwd16(o2, c2, r2, dx, dg, N, D, 1e-5f, NULL) == 0,
                 "rmsnorm launches");
        GT_CHECK(same_on_host(o1, o2, 4 * N * D) && same_on_host(r1, r2, 4 * N), "rmsnorm_fwd16: out/rstd differ");
        GT_CHECK(same_on_host(c1, c2, 2 * N * D), "rmsnorm_fwd16: bf16 copy differs from to_bf16(out)");
        GT_CHECK(kcu_swiglu_fwd(g1, dh1, dh3, NH, NULL) == 0 && kcu_to_bf16(s1, g1, NH, NULL) == 0 &&
                     kcu_swiglu_fwd16(g2, s2, dh1, dh3, NH, NULL) == 0,
                 "swiglu launches");
        GT_CHECK(same_on_host(g1, g2, 4 * NH), "swiglu_fwd16: g differs");
        GT_CHECK(same_on_host(s1, s2, 2 * NH), "swiglu_fwd16: bf16 copy differs from to_bf16(g)");
    }
    void *all[] = {dx, dg, o1, o2, r1, r2, c1, c2, dh1, dh3, g1, g2, s1, s2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) cudaFree(all[i]);
    free(x), free(g), free(h1), free(h3);
}

void test_op_adamw_slab(void)
{
    /* 5 tensors of odd sizes, the second a norm gain (no decay) */
    enum { NSEG = 5 };
    const int64_t len[NSEG] = {1000, 77, 4096, 3, 2500};
    const float wdf[NSEG] = {1, 0, 1, 1, 1};
    int64_t ends[NSEG], n = 0;
    for (int i = 0; i < NSEG; i++) ends[i] = n += len[i];
    float *p = malloc(4 * n), *g = malloc(4 * n), *mm = malloc(4 * n), *v = malloc(4 * n);
    gt_fill(p, n, 41, -1, 1);
    gt_fill(g, n, 42, -1, 1);
    gt_fill(mm, n, 43, -0.1f, 0.1f);
    gt_fill(v, n, 44, 0, 0.01f);
    float *P[2], *G = dev_copy(g, 4 * n), *M[2], *Vv[2];
    uint16_t *P16[2];
    for (int k = 0; k < 2; k++) {
        P[k] = dev_copy(p, 4 * n);
        M[k] = dev_copy(mm, 4 * n);
        Vv[k] = dev_copy(v, 4 * n);
        P16[k] = dev_copy(NULL, 2 * n);
    }
    int64_t *dends = dev_copy(ends, sizeof ends);
    float *dwd = dev_copy(wdf, sizeof wdf);
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, bc1 = 0.19f, bc2 = 0.0975f, gs = 0.5f;
    int ok = 1;
    for (int i = 0; i < NSEG; i++) {
        int64_t o = ends[i] - len[i];
        ok &= kcu_adamw(P[0] + o, P16[0] + o, G + o, M[0] + o, Vv[0] + o, len[i], lr, b1, b2, eps, wd * wdf[i], bc1,
                        bc2, gs, NULL) == 0;
    }
    ok &= kcu_adamw_slab(P[1], P16[1], G, M[1], Vv[1], n, dends, dwd, NSEG, lr, b1, b2, eps, wd, bc1, bc2, gs, NULL) ==
          0;
    GT_CHECK(ok, "adamw launches");
    GT_CHECK(same_on_host(P[0], P[1], 4 * n), "adamw_slab: parameters differ from per-tensor adamw");
    GT_CHECK(same_on_host(P16[0], P16[1], 2 * n), "adamw_slab: bf16 copies differ");
    GT_CHECK(same_on_host(M[0], M[1], 4 * n) && same_on_host(Vv[0], Vv[1], 4 * n), "adamw_slab: moments differ");
    for (int k = 0; k < 2; k++) cudaFree(P[k]), cudaFree(M[k]), cudaFree(Vv[k]), cudaFree(P16[k]);
    cudaFree(G), cudaFree(dends), cudaFree(dwd);
    free(p), free(g), free(mm), free(v);
}
