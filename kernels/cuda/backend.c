/* The "cuda" entry of kernels/backend.h: a thin adapter over kernels/cuda/model.c.
 * Precision comes from XFFL_CUDA_PRECISION (bf16, the default, or fp32), since
 * kern_options has no field for it and only tests and comparisons want fp32. */
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/cuda/model.h"

static int cuda_available(void)
{
    int n = 0;
    xffl_status s = kcu_device_count(&n);
    xffl_errmsg_clear();
    return s == XFFL_OK && n > 0;
}

static XFFL_MUST_USE xffl_status cuda_create(const ckpt_model_config *cfg, const ckpt_param_table *t, const kern_options *opt,
                               void **impl)
{
    (void)t; /* the engine builds the same table from cfg */
    *impl = NULL;
    kcu_precision prec = KCU_BF16;
    const char *p = getenv("XFFL_CUDA_PRECISION");
    if (p && *p) {
        if (strcmp(p, "fp32") == 0) prec = KCU_FP32;
        else XFFL_RETURN_IF(strcmp(p, "bf16") != 0, XFFL_ERR_USAGE, "XFFL_CUDA_PRECISION '%s' is not bf16 or fp32", p);
    }
    kcu_model *m = NULL;
    XFFL_FORWARD(kcu_model_create_ex(cfg, opt->batch, opt->seq_len, opt->device, prec, opt->recompute, &m));
    *impl = m;
    return XFFL_OK;
}

static void cuda_destroy(void *impl) { kcu_model_free(impl); }
static XFFL_MUST_USE xffl_status cuda_set_params(void *impl, const float *p) { return kcu_set_params(impl, p); }
static XFFL_MUST_USE xffl_status cuda_get_params(void *impl, float *p) { return kcu_get_params(impl, p); }
static XFFL_MUST_USE xffl_status cuda_get_grads(void *impl, float *g) { return kcu_get_grads(impl, g); }
static XFFL_MUST_USE xffl_status cuda_get_grads_range(void *impl, int64_t off, int64_t n, float *out)
{
    return kcu_get_grads_range(impl, off, n, out);
}
static XFFL_MUST_USE xffl_status cuda_set_params_range(void *impl, int64_t off, int64_t n, const float *in, int last)
{
    return kcu_set_params_range(impl, off, n, in, last);
}
static XFFL_MUST_USE xffl_status cuda_reset_optimizer(void *impl) { return kcu_reset_optimizer(impl); }
static XFFL_MUST_USE xffl_status cuda_get_optimizer(void *impl, float *m, float *v, int64_t *step)
{
    return kcu_get_optimizer(impl, m, v, step);
}
static XFFL_MUST_USE xffl_status cuda_set_optimizer(void *impl, const float *m, const float *v, int64_t step)
{
    return kcu_set_optimizer(impl, m, v, step);
}
static XFFL_MUST_USE xffl_status cuda_forward(void *impl, const int32_t *in, const int32_t *tg, int B, int T, float *loss)
{
    return kcu_forward(impl, in, tg, B, T, loss);
}
static XFFL_MUST_USE xffl_status cuda_backward(void *impl) { return kcu_backward(impl); }
static XFFL_MUST_USE xffl_status cuda_zero_grad(void *impl) { return kcu_zero_grad(impl); }
static XFFL_MUST_USE xffl_status cuda_adamw(void *impl, const kern_adamw_args *a, float *grad_norm)
{
    kcu_adamw_args k = {a->lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->grad_clip};
    return kcu_adamw_step(impl, &k, grad_norm);
}
static XFFL_MUST_USE xffl_status cuda_logits(void *impl, int b, int t, float *out) { return kcu_logits(impl, b, t, out); }
static uint64_t cuda_bytes(void *impl) { return kcu_model_bytes(impl); }

static const kern_backend cuda_backend = {
    .name = "cuda",
    .available = cuda_available,
    .create = cuda_create,
    .destroy = cuda_destroy,
    .set_params = cuda_set_params,
    .get_params = cuda_get_params,
    .get_grads = cuda_get_grads,
    .get_grads_range = cuda_get_grads_range,
    .set_params_range = cuda_set_params_range,
    .reset_optimizer = cuda_reset_optimizer,
    .get_optimizer = cuda_get_optimizer,
    .set_optimizer = cuda_set_optimizer,
    .forward = cuda_forward,
    .backward = cuda_backward,
    .zero_grad = cuda_zero_grad,
    .adamw = cuda_adamw,
    .logits = cuda_logits,
    .bytes = cuda_bytes,
    .recompute = 1,
};

const kern_backend *kern_cuda_backend(void) { return &cuda_backend; }
