/* make test-gpu: runs every tests/gpu test on CUDA device 0 (or prints SKIP: no GPU visible).
 * Usage: xffl_gpu_tests [SUBSTRING]  (runs the tests whose name contains it)
 *        xffl_gpu_tests --dp-rank R W TAG STATE_DIR   (one rank of the multi-GPU test) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/model.h"
#include "tests/gpu/gpu_test.h"

#define GPU_TESTS(X)                      \
    X(op_embedding)                       \
    X(op_rmsnorm)                         \
    X(op_rope)                            \
    X(op_attention)                       \
    X(flash_attention_vs_reference)       \
    X(op_matmul)                          \
    X(op_swiglu)                          \
    X(op_xent)                            \
    X(op_adamw)                           \
    X(op_bf16_cast)                       \
    X(op_fused_casts)                     \
    X(op_adamw_slab)                      \
    X(model_forward_backward_fp32)        \
    X(model_forward_backward_bf16)        \
    X(model_fused_vs_reference_attention) \
    X(model_recompute_same_bits)          \
    X(train_small_50_steps_vs_cpu)        \
    X(grad_accumulation_equivalence)      \
    X(nccl_one_rank)                      \
    X(nccl_multi_gpu)                     \
    X(comm_sum_rows_order)                \
    X(comm_nccl_one_rank)               \
    X(memplan_matches_cuda)               \
    X(memplan_7b_peak)

#define DECL(n) void test_##n(void);
GPU_TESTS(DECL)
#undef DECL

int gpu_dp_rank_main(int argc, char **argv); /* test_dist.c */

static int fails, skipped;
static char skip_reason[512];

void gt_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fails++;
}

void gt_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
    va_end(ap);
    skipped = 1;
}

int gt_failed(void) { return fails; }

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--dp-rank") == 0) return gpu_dp_rank_main(argc, argv);
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: xffl_gpu_tests [SUBSTRING]\n"
               "Runs the CUDA backend tests (ops vs the CPU reference, training vs the CPU run,\n"
               "NCCL) on device 0; prints SKIP and exits 0 where no GPU is visible.\n"
               "Exit codes: 0 all passed or skipped, 1 a test failed.\n");
        return 0;
    }
    int n = 0;
    if (kcu_device_count(&n) != XFFL_OK || n == 0) {
        printf("SKIP: no GPU visible (%s)\n0 passed, 0 failed\n", xffl_errmsg());
        return 0;
    }
    char dev[256];
    if (kcu_device_name(0, dev, sizeof dev) == XFFL_OK) printf("device 0: %s (%d visible)\n", dev, n);
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skips = 0;
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
#define ENTRY(n) {#n, test_##n},
        GPU_TESTS(ENTRY)
#undef ENTRY
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        fails = 0;
        skipped = 0;
        xffl_errmsg_clear();
        printf("%-40s ", tests[i].name);
        fflush(stdout);
        tests[i].fn();
        if (fails) {
            printf("FAIL\n");
            failed++;
        } else if (skipped) {
            printf("SKIP: %s\n", skip_reason);
            skips++;
        } else {
            printf("ok\n");
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed%s\n", passed, failed, skips ? "" : "");
    if (skips) printf("(%d skipped)\n", skips);
    return failed ? 1 : 0;
}
