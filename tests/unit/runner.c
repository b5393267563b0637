/* CUnit runner for every suite in tests/unit/test_<name>.c. Each such file defines
 * `void suite_<name>(void)`, which adds its CU suite and tests. The Makefile lists the
 * suites in build/gen/suites.h. Usage: xffl_tests [SUITE...] (default: all).
 * Tests that need something absent print "SKIP: why" and pass. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"

#define XFFL_SUITE(name) void suite_##name(void);
#include "suites.h"
#undef XFFL_SUITE

static const struct {
    const char *name;
    void (*add)(void);
} suites[] = {
#define XFFL_SUITE(name) {#name, suite_##name},
#include "suites.h"
#undef XFFL_SUITE
    {NULL, NULL},
};

static int wanted(const char *name, int argc, char **argv)
{
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    /* The pipelines' progress lines would interleave with CUnit's; XFFL_TEST_LOG=1 keeps them. */
    if (!getenv("XFFL_TEST_LOG")) xffl_log_setup(&(xffl_log_config){.level = XFFL_LOG_WARN});
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    int added = 0;
    for (int i = 0; suites[i].name; i++) {
        if (!wanted(suites[i].name, argc, argv)) continue;
        suites[i].add();
        added++;
    }
    if (!added) {
        fprintf(stderr, "xffl_tests: no suite matches\n");
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned run = CU_get_number_of_tests_run();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned asserts_failed = CU_get_number_of_failures();
    printf("\n%u passed, %u failed\n", run - failed, failed);
    CU_cleanup_registry();
    return (failed || asserts_failed) ? 1 : 0;
}
