/* kern_* front end: picks a backend (kernels/backend.h), owns the parameter table and
 * applies the learning-rate schedule; everything else is the backend's. */
#include "kernels/kern.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/cpu/bf16.h"

struct kern_model {
    const kern_backend *be;
    kern_precision precision; /* resolved: fp32 or bf16 */
    void *impl;
    ckpt_param_table *table;
};

void kern_adamw_default(kern_adamw_config *c)
{
    *c = (kern_adamw_config){.lr = 3e-4f, .min_lr = 3e-5f, .warmup_steps = 10, .total_steps = 1000,
                             .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .grad_clip = 1.0f};
}

float kern_lr_at(const kern_adamw_config *c, int step)
{
    if (c->warmup_steps > 0 && step < c->warmup_steps)
        return c->lr * (float)(step + 1) / (float)c->warmup_steps;
    int span = c->total_steps - c->warmup_steps;
    if (span <= 0 || step >= c->total_steps) return step >= c->total_steps && span > 0 ? c->min_lr : c->lr;
    double frac = (double)(step - c->warmup_steps) / span;
    double cosine = 0.5 * (1.0 + cos(M_PI * frac));
    return (float)(c->min_lr + (c->lr - c->min_lr) * cosine);
}

xffl_status kern_precision_parse(const char *s, kern_precision *out)
{
    if (s && !strcmp(s, "fp32")) *out = KERN_PREC_FP32;
    else if (s && !strcmp(s, "bf16")) *out = KERN_PREC_BF16;
    else if (s && !strcmp(s, "auto")) *out = KERN_PREC_AUTO;
    else return xffl_fail(XFFL_ERR_USAGE, "precision '%s': expected auto, fp32 or bf16", s ? s : "");
    return XFFL_OK;
}

const char *kern_precision_name(kern_precision p)
{
    return p == KERN_PREC_BF16 ? "bf16" : p == KERN_PREC_AUTO ? "auto" : "fp32";
}

kern_precision kern_precision_auto(void) { return kcpu_bf16_available() ? KERN_PREC_BF16 : KERN_PREC_FP32; }
const char *kern_cpu_isa(void)
{
    /* the fused attention changes bf16's bits on the same ISA (XFFL_CPU_FLASH=0 turns it
     * off), so the COMMIT's isa line names it too */
    static _Thread_local char buf[64];
    snprintf(buf, sizeof buf, "%s%s", kcpu_bf16_isa(), kcpu_bf16_flash_available() ? "+flash" : "");
    return buf;
}
const char *kern_onednn_version(void) { return kcpu_onednn_version(); }

static const kern_backend *pick(const char *name)
{
#ifdef XFFL_WITH_CUDA
    const kern_backend *cuda = kern_cuda_backend();
#else
    const kern_backend *cuda = NULL;
#endif
    if (!name || !*name || strcmp(name, "auto") == 0)
        return cuda && cuda->available() ? cuda : kern_cpu_backend();
    if (strcmp(name, "cpu") == 0) return kern_cpu_backend();
    if (strcmp(name, "cuda") == 0) return cuda;
    return NULL;
}

xffl_status kern_model_create(const ckpt_model_config *cfg, const kern_options *opt, kern_model **out)
{
    *out = NULL;
    const kern_backend *be = pick(opt->backend);
    if (!be) {
        if (opt->backend && strcmp(opt->backend, "cuda") == 0)
            return xffl_fail(XFFL_ERR_UNSUPPORTED, "backend cuda: this build has no CUDA (make cuda)");
        return xffl_fail(XFFL_ERR_USAGE, "backend '%s': expected cpu, cuda or auto", opt->backend);
    }
    if (!be->available())
        return xffl_fail(XFFL_ERR_UNSUPPORTED, "backend %s: not available on this machine", be->name);
    if (opt->recompute && !be->recompute)
        return xffl_fail(XFFL_ERR_UNSUPPORTED, "backend %s: no activation recomputation (--recompute)", be->name);
    XFFL_FORWARD(ckpt_model_validate(cfg));
    if (opt->batch < 1 || opt->seq_len < 1 || opt->seq_len > cfg->max_seq_len)
        return xffl_fail(XFFL_ERR_USAGE, "micro-batch %d x %d: need batch >= 1 and 1 <= seq_len <= %d", opt->batch,
                         opt->seq_len, cfg->max_seq_len);
    kern_options o = *opt;
    const int cpu = be == kern_cpu_backend();
    if (!cpu) {
        if (o.precision != KERN_PREC_AUTO && o.precision != KERN_PREC_FP32)
            return xffl_fail(XFFL_ERR_USAGE, "precision %s: the %s backend's precision is set by XFFL_CUDA_PRECISION",
                             kern_precision_name(o.precision), be->name);
    } else if (o.precision == KERN_PREC_AUTO) {
        o.precision = kern_precision_auto();
    } else if (o.precision == KERN_PREC_BF16 && !kcpu_bf16_available()) {
        return xffl_fail(XFFL_ERR_UNSUPPORTED,
                         "precision bf16: this cpu has no bf16 units (needs avx512_bf16 or amx_bf16; onednn %s runs "
                         "%s here%s); use --precision fp32 or auto",
                         kcpu_onednn_version(), kcpu_bf16_isa(),
                         getenv("XFFL_CPU_BF16") && !strcmp(getenv("XFFL_CPU_BF16"), "0") ? ", XFFL_CPU_BF16=0" : "");
    }
    kern_model *m = calloc(1, sizeof *m);
    if (!m) return xffl_fail(XFFL_ERR_NOMEM, "kern_model");
    m->be = be;
    if (cpu) m->precision = o.precision;
    else {
        const char *p = getenv("XFFL_CUDA_PRECISION");
        m->precision = p && !strcmp(p, "fp32") ? KERN_PREC_FP32 : KERN_PREC_BF16;
    }
    xffl_status st = ckpt_param_table_create(cfg, &m->table);
    if (st == XFFL_OK) st = be->create(cfg, m->table, &o, &m->impl);
    if (st != XFFL_OK) {
        kern_model_free(m);
        return st;
    }
    *out = m;
    return XFFL_OK;
}

void kern_model_free(kern_model *m)
{
    if (!m) return;
    if (m->impl) m->be->destroy(m->impl);
    ckpt_param_table_free(m->table);
    free(m);
}

const char *kern_model_backend(const kern_model *m) { return m->be->name; }
const char *kern_model_precision(const kern_model *m) { return kern_precision_name(m->precision); }
void *kern_model_impl(kern_model *m) { return m ? m->impl : NULL; }
const ckpt_param_table *kern_model_table(const kern_model *m) { return m->table; }
uint64_t kern_model_bytes(const kern_model *m) { return m->be->bytes(m->impl); }

xffl_status kern_set_params(kern_model *m, const float *p) { return m->be->set_params(m->impl, p); }
xffl_status kern_get_params(kern_model *m, float *p) { return m->be->get_params(m->impl, p); }
xffl_status kern_get_grads(kern_model *m, float *g) { return m->be->get_grads(m->impl, g); }
static XFFL_MUST_USE xffl_status check_range(const kern_model *m, int64_t off, int64_t n, const char *what)
{
    XFFL_RETURN_IF(off < 0 || n < 0 || off + n > m->table->total, XFFL_ERR_USAGE,
                   "%s: range [%lld, %lld) outside the %lld-element slab", what, (long long)off, (long long)(off + n),
                   (long long)m->table->total);
    return XFFL_OK;
}
xffl_status kern_get_grads_range(kern_model *m, int64_t off, int64_t n, float *out)
{
    XFFL_FORWARD(check_range(m, off, n, "get_grads_range"));
    return m->be->get_grads_range(m->impl, off, n, out);
}
xffl_status kern_set_params_range(kern_model *m, int64_t off, int64_t n, const float *in, int last)
{
    XFFL_FORWARD(check_range(m, off, n, "set_params_range"));
    return m->be->set_params_range(m->impl, off, n, in, last);
}
void kern_host_slabs(kern_model *m, float **params, float **grads)
{
    *params = *grads = NULL;
    if (m->be->host_slabs) m->be->host_slabs(m->impl, params, grads);
}
void kern_params_written(kern_model *m)
{
    if (m->be->params_written) m->be->params_written(m->impl);
}
int kern_param_bf16(const kern_model *m, int i)
{
    return m->be->param_bf16 && i >= 0 && i < m->table->count && m->be->param_bf16(m->impl, i);
}
void kern_round_bf16(uint16_t *dst, const float *src, int64_t n) { kcpu_to_bf16(dst, src, n); }
xffl_status kern_set_params_bf16_range(kern_model *m, int64_t off, int64_t n, const uint16_t *in, int last)
{
    XFFL_FORWARD(check_range(m, off, n, "set_params_bf16_range"));
    XFFL_RETURN_IF(!m->be->set_params_bf16_range, XFFL_ERR_USAGE, "set_params_bf16_range: the %s backend keeps no "
                   "bf16 weights", m->be->name);
    return m->be->set_params_bf16_range(m->impl, off, n, in, last);
}
xffl_status kern_reset_optimizer(kern_model *m) { return m->be->reset_optimizer(m->impl); }
xffl_status kern_get_optimizer(kern_model *m, float *mom, float *var, int64_t *step)
{
    return m->be->get_optimizer(m->impl, mom, var, step);
}
xffl_status kern_set_optimizer(kern_model *m, const float *mom, const float *var, int64_t step)
{
    return m->be->set_optimizer(m->impl, mom, var, step);
}
xffl_status kern_forward(kern_model *m, const int32_t *inputs, const int32_t *targets, int B, int T, float *loss)
{
    return m->be->forward(m->impl, inputs, targets, B, T, loss);
}
xffl_status kern_backward(kern_model *m) { return m->be->backward(m->impl); }
xffl_status kern_zero_grad(kern_model *m) { return m->be->zero_grad(m->impl); }
xffl_status kern_logits(kern_model *m, int b, int t, float *out) { return m->be->logits(m->impl, b, t, out); }

xffl_status kern_adamw_step(kern_model *m, const kern_adamw_config *c, int step, float *grad_norm)
{
    kern_adamw_args a = {.lr = kern_lr_at(c, step), .beta1 = c->beta1, .beta2 = c->beta2, .eps = c->eps,
                         .weight_decay = c->weight_decay, .grad_clip = c->grad_clip};
    return m->be->adamw(m->impl, &a, grad_norm);
}
