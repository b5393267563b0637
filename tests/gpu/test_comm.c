/* comm.h's nccl transport on one GPU: the device rank-ordered sum against the same loop
 * on the CPU, bit for bit, and the collectives of a one-rank job equal to "self". */
#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "common/util.h"
#include "kernels/cuda/sum_rows.h"
#include "tests/gpu/gpu_test.h"

/* Rows of values 2^-20..2^20 of both signs: a sum in another order changes the bits. */
static void mixed(float *x, int64_t n, uint64_t seed)
{
    gt_fill(x, n, seed, -1.0f, 1.0f);
    for (int64_t i = 0; i < n; i++) x[i] *= (float)(1 << (i * 7 % 21)) / (float)(1 << (i * 3 % 21));
}

void test_comm_sum_rows_order(void)
{
    enum { R = 5 };
    const size_t n = 1000003;
    float *h = malloc(R * n * 4), *want = malloc(n * 4), *got = malloc(n * 4);
    void *d = NULL;
    GT_CHECK(h && want && got, "out of memory");
    if (!h || !want || !got) goto out;
    mixed(h, (int64_t)(R * n), 11);
    for (size_t i = 0; i < n; i++) {
        float acc = h[i];
        for (int k = 1; k < R; k++) acc += h[(size_t)k * n + i];
        want[i] = acc;
    }
    GT_CHECK(cudaMalloc(&d, R * n * 4) == cudaSuccess, "cudaMalloc");
    if (!d) goto out;
    cudaMemcpy(d, h, R * n * 4, cudaMemcpyHostToDevice);
    GT_CHECK(kcu_sum_rows(d, d, R, n, n, KCU_SUM_F32, NULL) == 0, "kcu_sum_rows launch");
    GT_CHECK(cudaDeviceSynchronize() == cudaSuccess, "kcu_sum_rows");
    cudaMemcpy(got, d, n * 4, cudaMemcpyDeviceToHost);
    GT_CHECK(!memcmp(got, want, n * 4), "device rank-ordered sum differs from the CPU loop's bits");
out:
    cudaFree(d);
    free(h);
    free(want);
    free(got);
}

void test_comm_nccl_one_rank(void)
{
    char *dir = NULL;
    GT_OK(xffl_mkdtemp("gpu-comm", &dir));
    xffl_comm *c = NULL, *s = NULL;
    GT_OK(comm_open("nccl", dir, &c));
    GT_OK(comm_open("self", NULL, &s));
    GT_CHECK(comm_size(c) == 1 && comm_rank(c) == 0, "rank %d of %d", comm_rank(c), comm_size(c));
    const size_t n = 300007;
    float *h = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
    float *d = NULL, *d2 = NULL;
    cudaMalloc((void **)&d, n * 4);
    cudaMalloc((void **)&d2, n * 4);
    GT_CHECK(h && ref && got && d && d2, "out of memory");
    if (h && ref && got && d && d2) {
        mixed(h, (int64_t)n, 5);
        memcpy(ref, h, n * 4);
        GT_OK(comm_allreduce_sum(s, ref, n, COMM_F32));
        cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice);
        GT_OK(comm_allreduce_sum(c, d, n, COMM_F32));
        cudaMemcpy(got, d, n * 4, cudaMemcpyDeviceToHost);
        GT_CHECK(!memcmp(got, ref, n * 4), "all-reduce: nccl and self differ");
        GT_OK(comm_reduce_scatter_sum(c, d, d2, n, COMM_F32));
        cudaMemcpy(got, d2, n * 4, cudaMemcpyDeviceToHost);
        GT_CHECK(!memcmp(got, ref, n * 4), "reduce-scatter: nccl and self differ");
        GT_OK(comm_allgather(c, d2, d, n, COMM_F32));
        GT_OK(comm_broadcast(c, d, n, COMM_F32, 0));
        cudaMemcpy(got, d, n * 4, cudaMemcpyDeviceToHost);
        GT_CHECK(!memcmp(got, ref, n * 4), "all-gather and broadcast: nccl and self differ");
        /* the strided forms (one rank: chunk 0 alone, through the grouped path) */
        GT_OK(comm_reduce_scatter_sum_strided(c, d, n + 5, d2, n, COMM_F32));
        GT_OK(comm_allgather_strided(c, d2, d, n + 5, n, COMM_F32));
        cudaMemcpy(got, d, n * 4, cudaMemcpyDeviceToHost);
        GT_CHECK(!memcmp(got, ref, n * 4), "strided reduce-scatter and all-gather: nccl and self differ");
        GT_OK(comm_barrier(c));
    }
    cudaFree(d);
    cudaFree(d2);
    free(h);
    free(ref);
    free(got);
    comm_close(c);
    comm_close(s);
    xffl_rmtree_cleanup(dir);
    free(dir);
}
