/* The LLaMA-2 model on one CUDA device: fp32 master weights, gradients and AdamW moments,
 * activations planned from the parameter table into one cudaMalloc slab, matmuls through
 * cuBLAS either in bf16 (fp32 accumulation and output) or in plain fp32 (no TF32), the
 * mode the tests compare to the CPU reference at 1e-4.
 *
 * This is the CUDA backend's engine; kernels/cuda/backend.c adapts it to kernels/backend.h
 * and kernels/cuda/dist.c all-reduces its gradient slab. Only compiled with CUDA. */
#ifndef XFFL_KCU_MODEL_H
#define XFFL_KCU_MODEL_H

#include <stdint.h>
#include "common/status.h"
#include "libckpt/model.h"

typedef struct kcu_model kcu_model; /* opaque */

typedef enum {
    KCU_BF16 = 0, /* bf16 GEMM operands, fp32 accumulate, fp32 everything else (default) */
    KCU_FP32 = 1, /* fp32 GEMMs with CUBLAS_COMPUTE_32F_PEDANTIC (no TF32): reference mode */
} kcu_precision;

/* Number of visible CUDA devices; UNSUPPORTED naming the CUDA error when none. */
XFFL_MUST_USE xffl_status kcu_device_count(int *count);
/* "NVIDIA H100 80GB HBM3, sm_90" for device ordinal dev into buf. */
XFFL_MUST_USE xffl_status kcu_device_name(int dev, char *buf, int len);

/* Plans and allocates a model for micro-batches of at most B sequences of at most T
 * tokens on device ordinal dev. Parameters are zero until kcu_set_params. Caller owns
 * *out; kcu_model_free accepts NULL. Bytes of device memory used are in *bytes if not NULL. */
XFFL_MUST_USE xffl_status kcu_model_create(const ckpt_model_config *cfg, int B, int T, int dev, kcu_precision prec,
                             kcu_model **out);
/* The same; recompute = 1 keeps only each layer's input and runs the layer's forward again
 * in the backward (same bits, one more forward per step; kern_options.recompute). */
XFFL_MUST_USE xffl_status kcu_model_create_ex(const ckpt_model_config *cfg, int B, int T, int dev, kcu_precision prec,
                                int recompute, kcu_model **out);
void kcu_model_free(kcu_model *m);
const ckpt_param_table *kcu_model_table(const kcu_model *m);
/* Device bytes held by the model's slab. */
uint64_t kcu_model_bytes(const kcu_model *m);
kcu_precision kcu_model_precision(const kcu_model *m);
/* 1 when attention runs the fused kernels (kernels/cuda/attn_fused.h): bf16 mode, a head
 * size they are built for, and XFFL_CUDA_ATTENTION not "reference" at create time. */
int kcu_model_fused(const kcu_model *m);

/* Host slabs in table order, table->total floats. */
XFFL_MUST_USE xffl_status kcu_set_params(kcu_model *m, const float *params);
XFFL_MUST_USE xffl_status kcu_get_params(kcu_model *m, float *params);
XFFL_MUST_USE xffl_status kcu_get_grads(kcu_model *m, float *grads);
/* [off, off+n) of the gradient slab out / the parameter slab in; last: make the bf16 copy. */
XFFL_MUST_USE xffl_status kcu_get_grads_range(kcu_model *m, int64_t off, int64_t n, float *out);
XFFL_MUST_USE xffl_status kcu_set_params_range(kcu_model *m, int64_t off, int64_t n, const float *in, int last);
XFFL_MUST_USE xffl_status kcu_set_grads(kcu_model *m, const float *grads);
XFFL_MUST_USE xffl_status kcu_reset_optimizer(kcu_model *m);
XFFL_MUST_USE xffl_status kcu_get_optimizer(kcu_model *m, float *mom, float *var, int64_t *step);
XFFL_MUST_USE xffl_status kcu_set_optimizer(kcu_model *m, const float *mom, const float *var, int64_t step);

/* inputs, targets: host (B,T) token ids, B and T at most the planned ones. Mean loss over
 * the B*T targets in *loss (when targets and loss are not NULL). */
XFFL_MUST_USE xffl_status kcu_forward(kcu_model *m, const int32_t *inputs, const int32_t *targets, int B, int T, float *loss);
/* Adds the gradients of the last forward's loss to the gradient slab. */
XFFL_MUST_USE xffl_status kcu_backward(kcu_model *m);
XFFL_MUST_USE xffl_status kcu_zero_grad(kcu_model *m);
/* Logits of the last forward at (b, t), vocab floats into host out. */
XFFL_MUST_USE xffl_status kcu_logits(kcu_model *m, int b, int t, float *out);

typedef struct {
    float lr, beta1, beta2, eps, weight_decay; /* weight decay skipped on norm gains */
    float grad_clip;                           /* clip the global L2 norm to this; 0 = off */
} kcu_adamw_args;
/* One AdamW step with learning rate a->lr; the optimizer's own step counter (bias
 * correction) advances by one. The pre-clip global gradient norm goes to *grad_norm. */
XFFL_MUST_USE xffl_status kcu_adamw_step(kcu_model *m, const kcu_adamw_args *a, float *grad_norm);

/* For the NCCL all-reduce (kernels/cuda/dist.c): the device gradient slab (total floats)
 * and the model's cudaStream_t. */
float *kcu_grad_slab(kcu_model *m);
/* The device parameter and AdamW moment slabs (total floats each), for broadcasts. After
 * writing the parameter slab directly, call kcu_params_changed to refresh the bf16 copy. */
float *kcu_param_slab(kcu_model *m);
float *kcu_mom_slab(kcu_model *m);
float *kcu_var_slab(kcu_model *m);
XFFL_MUST_USE xffl_status kcu_params_changed(kcu_model *m);
/* The AdamW step counter alone (the moments stay). */
int64_t kcu_opt_step(const kcu_model *m);
void kcu_set_opt_step(kcu_model *m, int64_t step);
void *kcu_model_stream(kcu_model *m);
/* Waits for the model's stream; BACKEND naming the first asynchronous failure. */
XFFL_MUST_USE xffl_status kcu_sync(kcu_model *m, const char *what);

#endif
