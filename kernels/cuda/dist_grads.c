/* kern_dist_allreduce_grads (kernels/cuda/dist.h): the bridge from kern_model to the cuda
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

