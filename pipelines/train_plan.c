/* pipe_train_plan (pipelines/memplan.h): the settings of a train job's memory plan from
 * federation.h5 or a preset, apart from the arithmetic (memplan.c), which the GPU test
 * binary links without HDF5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipelines/federation.h"
#include "kernels/cpu/bf16.h"
#include "pipelines/memplan.h"

void pipe_train_plan_options_default(pipe_train_plan_options *o)
{
    memset(o, 0, sizeof *o);
    o->ranks = 1;
    o->zero = -1;
    o->accumulate = 1;
    o->reserve = -1;
}

xffl_status pipe_train_plan(store *s, const pipe_train_plan_options *o, pipe_memplan *out)
{
    pipe_federation f;
    if (s) XFFL_FORWARD(pipe_federation_load(s, NULL, &f, NULL));
    else {
        XFFL_RETURN_IF(!o->preset, XFFL_ERR_USAGE, "memory plan: --model PRESET or --store URL is required");
        XFFL_FORWARD(pipe_federation_default(o->preset, 0, &f));
    }
    const char *be = o->backend && strcmp(o->backend, "auto") ? o->backend : "cpu";
    int cuda = !strcmp(be, "cuda");
    XFFL_RETURN_IF(o->ranks < 1 || o->accumulate < 1, XFFL_ERR_USAGE, "memory plan: ranks and accumulate must be positive");
    pipe_memplan_config c = {.model = f.model, .backend = be, .ranks = o->ranks, .recompute = o->recompute};
    int64_t split = (int64_t)o->ranks * o->accumulate;
    c.batch = o->batch > 0 ? o->batch : (int)((f.batch + split - 1) / split);
    c.seq_len = o->seq_len > 0 ? o->seq_len : f.seq_len;
    c.zero = o->zero >= 0 ? o->zero : 2;
    c.accumulate = o->accumulate;
    c.threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (c.threads < 1) c.threads = 1;
    /* the backend reads the same variable (kernels/cuda/backend.c) */
    const char *prec = getenv("XFFL_CUDA_PRECISION");
    c.fp32 = cuda && prec && !strcmp(prec, "fp32");
    const char *att = getenv("XFFL_CUDA_ATTENTION"); /* kernels/cuda/model.c reads it too */
    c.attn_reference = cuda && att && !strcmp(att, "reference");
    c.cpu_bf16 = !cuda && (o->precision == KERN_PREC_AUTO ? kern_precision_auto() : o->precision) == KERN_PREC_BF16;
    c.cpu_flash = c.cpu_bf16 && kcpu_bf16_flash_available();
    c.reserve = o->reserve >= 0 ? (uint64_t)o->reserve : cuda ? 1ull << 30 : 0;
    c.device_memory = o->device_memory;
    if (!c.device_memory) {
        XFFL_RETURN_IF(cuda, XFFL_ERR_USAGE, "memory plan: --device-memory SIZE is required with --backend cuda");
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0) c.device_memory = (uint64_t)pages * (uint64_t)page / (uint64_t)o->ranks;
    }
    XFFL_FORWARD(pipe_memplan_compute(&c, out));
    snprintf(out->model, sizeof out->model, "%s", f.preset);
    return XFFL_OK;
}
