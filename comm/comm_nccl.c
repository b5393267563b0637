/* The NCCL transport (comm.h): placeholder until the CUDA implementation. */
#include "comm/comm.h"

static XFFL_MUST_USE xffl_status nccl_open(const char *state_dir, void **impl, int *rank, int *size)
{
    (void)state_dir, (void)rank, (void)size;
    *impl = NULL;
    return xffl_fail(XFFL_ERR_UNSUPPORTED, "nccl transport: built without CUDA (rebuild with `make cuda`, see docs/gpu.md)");
}
static int nccl_launched(void) { return 0; }
const comm_transport_def comm_nccl = {.name = "nccl", .open = nccl_open, .launched = nccl_launched};
