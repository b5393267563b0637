/* The rank-ordered sum of comm.h on the device (comm/comm_nccl.c): NCCL moves the rows,
 * this adds them up in one fixed order. Callable from C; no CUDA include needed. */
#ifndef XFFL_KCU_SUM_ROWS_H
#define XFFL_KCU_SUM_ROWS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, numbered as comm.h's comm_dtype: f32, f64, i64, u8 (wrapping). */
enum { KCU_SUM_F32 = 0, KCU_SUM_F64 = 1, KCU_SUM_I64 = 2, KCU_SUM_U8 = 3 };

/* out[i] = ((rows[0][i] + rows[1][i]) + rows[2][i]) + ... for i < n, the rows `stride`
 * elements apart in device memory: each element by one thread, in row order, with plain
 * adds (no FMA contraction, no atomics), so the bits are those of the same loop on a CPU.
 * out may alias rows[0]. Asynchronous on stream (a cudaStream_t; NULL: the default
 * stream); returns 0 or the launch's cudaError_t. */
int kcu_sum_rows(const void *rows, void *out, int nrows, size_t stride, size_t n, int dtype, void *stream);

#ifdef __cplusplus
}
#endif

#endif
