/* The compute-backend vtable behind kernels/kern.h. Implemented by kernels/cpu/
 * (kern_cpu_backend, always built) and kernels/cuda/ (kern_cuda_backend, built only
 * with CUDA: cuda.mk adds -DXFFL_WITH_CUDA to CFLAGS, which makes kernels/kern.c
 * reference it; a weak symbol would not pull the object out of libxffl.a).
 *
 * Every backend holds, for one model configuration and micro-batches of at most
 * Bmax x Tmax tokens, fp32 slabs laid out from the parameter table (params, grads,
 * AdamW m and v, all table->total floats in table order) and the activations of one
 * micro-batch. Host slabs cross this interface in table order.
 *
 * The computation (N = B*T tokens, D = dim, H = n_heads, KV = n_kv_heads,
 * hd = D/H, F = hidden_dim, V = vocab; matrices W[out,in], y = x W^T):
 *   x = tok_embeddings[inputs]                                  (N,D)
 *   per layer:
 *     xn = rmsnorm(x, attention_norm, eps)                      (N,D)
 *     q = xn wq^T (N,H*hd), k = xn wk^T, v = xn wv^T (N,KV*hd)
 *     q, k = rope(q), rope(k): pairs (2i,2i+1) of each head rotated by
 *            t * theta^(-2i/hd), t the position in the sequence (Meta/llama2.c layout)
 *     att[b,t,h] = sum_{s<=t} softmax_s(q[b,t,h].k[b,s,h/(H/KV)] / sqrt(hd)) v[b,s,h/(H/KV)]
 *     x = x + att wo^T
 *     xn = rmsnorm(x, ffn_norm, eps)
 *     x = x + (silu(xn w1^T) * (xn w3^T)) w2^T                  (N,F) -> (N,D)
 *   logits = rmsnorm(x, norm, eps) output^T                     (N,V)
 *   loss = mean over the N positions of -log softmax(logits)[target]
 * kernels/cpu/ref.h has one naive double-precision function per op: the meaning of
 * each op, and what backend tests compare against.
 *
 * AdamW (decoupled weight decay, not applied to CKPT_KIND_NORM tensors):
 *   gnorm = ||g||_2 over the whole slab (pre-clip, reported);
 *   g *= min(1, clip/gnorm) when clip > 0;
 *   step += 1; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   p -= lr * (m/(1-b1^step) / (sqrt(v/(1-b2^step)) + eps) + wd p)
 * The learning rate schedule is kern.c's (kern_lr_at); a backend gets the rate. */
#ifndef XFFL_KERN_BACKEND_H
#define XFFL_KERN_BACKEND_H

#include <stdint.h>
#include "common/status.h"
#include "kernels/kern.h"
#include "libckpt/model.h"

typedef struct {
    float lr; /* this step's rate (schedule applied by the caller) */
    float beta1, beta2, eps;
    float weight_decay;
    float grad_clip; /* 0 = off */
} kern_adamw_args;

typedef struct kern_backend {
    const char *name; /* "cpu", "cuda" */
    /* 1 when the backend can run here (cuda: a device is visible). */
    int (*available)(void);
    /* Allocates every slab for cfg and opt->batch x opt->seq_len; parameters zero.
     * *impl owned by the caller, released with destroy (which accepts NULL). */
    xffl_status (*create)(const ckpt_model_config *cfg, const ckpt_param_table *t, const kern_options *opt,
                          void **impl);
    void (*destroy)(void *impl);
    /* Host slabs, t->total floats each. */
    xffl_status (*set_params)(void *impl, const float *params);
    xffl_status (*get_params)(void *impl, float *params);
    xffl_status (*get_grads)(void *impl, float *grads);
    /* [off, off+n) of the slabs (checked by the caller); last: the update is complete */
    xffl_status (*get_grads_range)(void *impl, int64_t off, int64_t n, float *out);
    xffl_status (*set_params_range)(void *impl, int64_t off, int64_t n, const float *in, int last);
    /* Optional (NULL where the slabs are not host memory, as on cuda): the parameter and
     * gradient slabs themselves, and the call that follows writes through the former. */
    void (*host_slabs)(void *impl, float **params, float **grads);
    void (*params_written)(void *impl);
    /* Optional (kern.h kern_param_bf16): NULL where the backend keeps no bf16 weights;
     * param_bf16 may still answer 0 for all (cpu at fp32). */
    int (*param_bf16)(void *impl, int i);
    xffl_status (*set_params_bf16_range)(void *impl, int64_t off, int64_t n, const uint16_t *in, int last);
    xffl_status (*reset_optimizer)(void *impl);
    xffl_status (*get_optimizer)(void *impl, float *mom, float *var, int64_t *step);
    xffl_status (*set_optimizer)(void *impl, const float *mom, const float *var, int64_t step);
    /* inputs/targets: host (B,T) ids, B <= opt->batch, T <= opt->seq_len. loss may be NULL;
     * targets NULL: logits only. INVALID naming the position when an id is >= V. */
    xffl_status (*forward)(void *impl, const int32_t *inputs, const int32_t *targets, int B, int T, float *loss);
    /* grads += d(loss of the last forward with targets) / d(params). */
    xffl_status (*backward)(void *impl);
    xffl_status (*zero_grad)(void *impl);
    /* One AdamW step as above; *grad_norm = pre-clip global norm (may be NULL). */
    xffl_status (*adamw)(void *impl, const kern_adamw_args *a, float *grad_norm);
    /* Logits of the last forward at (b, t): V floats into host out. */
    xffl_status (*logits)(void *impl, int b, int t, float *out);
    /* Bytes held by the backend's slabs (params, grads, m, v, activations). */
    uint64_t (*bytes)(void *impl);
    int recompute; /* 1: create honours kern_options.recompute */
} kern_backend;

const kern_backend *kern_cpu_backend(void);
#ifdef XFFL_WITH_CUDA
const kern_backend *kern_cuda_backend(void); /* kernels/cuda/backend.c */
#endif

/* The backend's handle of m (the impl from create), for kernels/cuda/dist.c, which
 * all-reduces the cuda backend's device gradient slab in place. NULL for NULL. */
void *kern_model_impl(kern_model *m);

#endif
