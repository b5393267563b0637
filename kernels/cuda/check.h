/* Status checks for CUDA and NCCL calls in the backend's .c files: return BACKEND with
 * the library's own message and what was being done. Private to kernels/cuda/. */
#ifndef XFFL_KCU_CHECK_H
#define XFFL_KCU_CHECK_H

#include <cuda_runtime_api.h>
#include "common/status.h"

#define CU(expr, what)                                                                       \
    do {                                                                                     \
        cudaError_t e_ = (expr);                                                             \
        if (e_ != cudaSuccess)                                                               \
            return xffl_fail(XFFL_ERR_BACKEND, "cuda: %s: %s", (what), cudaGetErrorString(e_)); \
    } while (0)

#ifdef NCCL_H_
#define NC(expr, what)                                                                        \
    do {                                                                                      \
        ncclResult_t r_ = (expr);                                                             \
        if (r_ != ncclSuccess)                                                                \
            return xffl_fail(XFFL_ERR_BACKEND, "nccl: %s: %s", (what), ncclGetErrorString(r_)); \
    } while (0)
#endif

#endif
