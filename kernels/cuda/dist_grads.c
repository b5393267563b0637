/* kern_dist_allreduce_grads and kern_dist_broadcast_state (kernels/cuda/dist.h): the bridge from kern_model to the cuda
 * backend's gradient slab. Apart from dist.c because it needs kernels/kern.c, which the
 * standalone GPU test binary does not link. */
#include <string.h>

#include "kernels/backend.h"
#include "kernels/cuda/dist.h"
#include "kernels/cuda/model.h"

xffl_status kern_dist_allreduce_grads(kern_dist *d, kern_model *m)
{
    XFFL_RETURN_IF(!d || !m, XFFL_ERR_INTERNAL, "gradient all-reduce without a communicator or model");
    XFFL_RETURN_IF(strcmp(kern_model_backend(m), "cuda") != 0, XFFL_ERR_UNSUPPORTED,
                   "gradient all-reduce needs the cuda backend, not %s", kern_model_backend(m));
    kcu_model *km = kern_model_impl(m);
    xffl_status s = kern_dist_allreduce_device(d, kcu_grad_slab(km), kcu_model_table(km)->total, 1.0f / (float)kern_dist_world(d),
                                               kcu_model_stream(km));
    if (s != XFFL_OK) return xffl_wrap(s, "rank %d of %d: gradient all-reduce", kern_dist_rank(d), kern_dist_world(d));
    return XFFL_OK;
}


xffl_status kern_dist_broadcast_state(kern_dist *d, kern_model *m)
{
    XFFL_RETURN_IF(!d || !m, XFFL_ERR_INTERNAL, "state broadcast without a communicator or model");
    XFFL_RETURN_IF(strcmp(kern_model_backend(m), "cuda") != 0, XFFL_ERR_UNSUPPORTED,
                   "state broadcast needs the cuda backend, not %s", kern_model_backend(m));
    kcu_model *km = kern_model_impl(m);
    int64_t n = kcu_model_table(km)->total;
    void *st = kcu_model_stream(km);
    xffl_status s = kern_dist_broadcast_device(d, kcu_param_slab(km), n, st);
    if (s == XFFL_OK) s = kern_dist_broadcast_device(d, kcu_mom_slab(km), n, st);
    if (s == XFFL_OK) s = kern_dist_broadcast_device(d, kcu_var_slab(km), n, st);
    if (s == XFFL_OK) s = kcu_params_changed(km);
    float step = kern_dist_rank(d) == 0 ? (float)kcu_opt_step(km) : 0.0f; /* exact below 2^24 steps */
    if (s == XFFL_OK) s = kern_dist_allreduce_host(d, &step, 1, 1.0f);
    if (s == XFFL_OK) kcu_set_opt_step(km, (int64_t)step);
    if (s != XFFL_OK) return xffl_wrap(s, "rank %d of %d: broadcasting the model state", kern_dist_rank(d), kern_dist_world(d));
    return XFFL_OK;
}
