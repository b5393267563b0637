/* comm.h in one process: the transport table (unknown names, transports this build
 * lacks), "auto" without a launcher, the launcher's rank count from the environment,
 * and self's collectives. The mpi transport's collectives run under mpirun in
 * tests/it/test-comm-mpi.sh: opening it here would initialise MPI in the test runner. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "tests/unit/unit.h"

static const char *LAUNCH_VARS[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_ID",
                                    "SLURM_NTASKS"};

static void clear_launch_env(void)
{
    for (size_t i = 0; i < sizeof LAUNCH_VARS / sizeof LAUNCH_VARS[0]; i++) unsetenv(LAUNCH_VARS[i]);
}

static void test_table(void)
{
    xffl_comm *c = (xffl_comm *)1;
    CU_ASSERT_EQUAL(comm_open("carrier-pigeon", NULL, &c), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "carrier-pigeon"));
#ifndef XFFL_WITH_CUDA
    CU_ASSERT_EQUAL(comm_open("nccl", "/tmp", &c), XFFL_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "built without CUDA"));
#endif
    clear_launch_env();
    T_OK(comm_open("auto", NULL, &c));
    CU_ASSERT_STRING_EQUAL(comm_transport(c), "self");
    CU_ASSERT_EQUAL(comm_rank(c), 0);
    CU_ASSERT_EQUAL(comm_size(c), 1);
    comm_close(c);
    comm_close(NULL);
}

static void test_launcher_ranks(void)
{
    clear_launch_env();
    CU_ASSERT_EQUAL(comm_launcher_ranks(), 0);
    setenv("SLURM_NTASKS", "4", 1); /* a batch script's allocation, not a step: no launcher */
    CU_ASSERT_EQUAL(comm_launcher_ranks(), 0);
    setenv("SLURM_STEP_ID", "0", 1); /* an srun step of an older Slurm */
    CU_ASSERT_EQUAL(comm_launcher_ranks(), 4);
    setenv("SLURM_STEP_NUM_TASKS", "2", 1);
    CU_ASSERT_EQUAL(comm_launcher_ranks(), 2);
    setenv("PMI_SIZE", "3", 1);
    CU_ASSERT_EQUAL(comm_launcher_ranks(), 3);
    setenv("OMPI_COMM_WORLD_SIZE", "5", 1); /* mpirun's own count wins */
    CU_ASSERT_EQUAL(comm_launcher_ranks(), 5);
    clear_launch_env();
}

static void test_self(void)
{
    xffl_comm *c;
    T_OK(comm_open("self", NULL, &c));
    double x[3] = {1.5, -2, 1e300}, y[3];
    T_OK(comm_allreduce_sum(c, x, 3, COMM_F64));
    CU_ASSERT(x[0] == 1.5 && x[1] == -2 && x[2] == 1e300);
    T_OK(comm_reduce_scatter_sum(c, x, y, 3, COMM_F64));
    CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0);
    T_OK(comm_allgather(c, x, y, 3, COMM_F64));
    CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0);
    T_OK(comm_broadcast(c, x, 3, COMM_F64, 0));
    T_OK(comm_barrier(c));
    CU_ASSERT_EQUAL(comm_dtype_size(COMM_F32), 4);
    CU_ASSERT_EQUAL(comm_dtype_size(COMM_I64), 8);
    CU_ASSERT_EQUAL(comm_dtype_size(COMM_BYTE), 1);
    comm_close(c);
}

void suite_comm(void)
{
    CU_pSuite s = CU_add_suite("comm", NULL, NULL);
    CU_add_test(s, "transport table: unknown, absent from this build, auto without a launcher", test_table);
    CU_add_test(s, "the launcher's rank count: mpirun, PMI, srun step, not a batch script", test_launcher_ranks);
    CU_add_test(s, "self: every collective is the identity or a copy", test_self);
}
