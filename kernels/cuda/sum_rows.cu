// The rank-ordered sum (sum_rows.h). Compiled with -ffp-contract=off on the host side;
// on the device the adds are __fadd_rn/__dadd_rn, which nvcc never fuses into an FMA.
#include "kernels/cuda/sum_rows.h"

#include <cuda_runtime.h>
#include <stdint.h>

namespace {

__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ int64_t add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
__device__ __forceinline__ uint8_t add(uint8_t a, uint8_t b) { return (uint8_t)(a + b); }

template <typename T>
__global__ void sum_rows_k(const T *rows, T *out, int nrows, size_t stride, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        T acc = rows[i];
        for (int k = 1; k < nrows; k++) acc = add(acc, rows[(size_t)k * stride + i]);
        out[i] = acc;
    }
}

template <typename T>
int launch(const void *rows, void *out, int nrows, size_t stride, size_t n, cudaStream_t s)
{
    const int block = 256;
    size_t g = (n + block - 1) / block;
    if (g > 65535u * 32) g = 65535u * 32; // the grid-stride loop covers the rest
    sum_rows_k<T><<<(unsigned)g, block, 0, s>>>((const T *)rows, (T *)out, nrows, stride, n);
    return (int)cudaGetLastError();
}

} // namespace

extern "C" int kcu_sum_rows(const void *rows, void *out, int nrows, size_t stride, size_t n, int dtype, void *stream)
{
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    switch (dtype) {
    case KCU_SUM_F32: return launch<float>(rows, out, nrows, stride, n, s);
    case KCU_SUM_F64: return launch<double>(rows, out, nrows, stride, n, s);
    case KCU_SUM_I64: return launch<int64_t>(rows, out, nrows, stride, n, s);
    case KCU_SUM_U8: return launch<uint8_t>(rows, out, nrows, stride, n, s);
    }
    return (int)cudaErrorInvalidValue;
}
