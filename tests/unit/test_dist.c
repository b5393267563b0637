/* kernels/cuda/dist.h on CPU: rank discovery from the environment and the NCCL-id
 * rendezvous file (with a fake payload: the exchange itself needs no GPU). The NCCL path
 * proper is in tests/gpu (make test-gpu). */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/status.h"
#include "common/util.h"
#include "kernels/cuda/dist.h"
#include "tests/unit/unit.h"

static const char *VARS[] = {"XFFL_RANK", "XFFL_WORLD", "XFFL_LOCAL_RANK", "XFFL_DIST_TAG", "SLURM_PROCID",
                             "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_ID", "SLURM_STEP_ID"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) unsetenv(VARS[i]);
}

static void test_env(void)
{
    kern_dist_env e;
    clear_env();
    CU_ASSERT_EQUAL_FATAL(kern_dist_env_read(&e), XFFL_OK);
    CU_ASSERT_EQUAL(e.rank, 0);
    CU_ASSERT_EQUAL(e.world, 1);
    CU_ASSERT_EQUAL(strncmp(e.tag, "single-", 7), 0);

    setenv("SLURM_PROCID", "3", 1);
    setenv("SLURM_NTASKS", "4", 1);
    setenv("SLURM_LOCALID", "1", 1);
    setenv("SLURM_JOB_ID", "777", 1);
    setenv("SLURM_STEP_ID", "2", 1);
    CU_ASSERT_EQUAL_FATAL(kern_dist_env_read(&e), XFFL_OK);
    CU_ASSERT_EQUAL(e.rank, 3);
    CU_ASSERT_EQUAL(e.world, 4);
    CU_ASSERT_EQUAL(e.local_rank, 1);
    CU_ASSERT_STRING_EQUAL(e.tag, "slurm-777-2");

    /* xffl's own variables (xffl train --gpus N) win over SLURM's */
    setenv("XFFL_RANK", "1", 1);
    setenv("XFFL_WORLD", "2", 1);
    setenv("XFFL_LOCAL_RANK", "1", 1);
    setenv("XFFL_DIST_TAG", "gpus-123", 1);
    CU_ASSERT_EQUAL_FATAL(kern_dist_env_read(&e), XFFL_OK);
    CU_ASSERT_EQUAL(e.rank, 1);
    CU_ASSERT_EQUAL(e.world, 2);
    CU_ASSERT_STRING_EQUAL(e.tag, "gpus-123");

    setenv("XFFL_RANK", "2", 1);
    CU_ASSERT_EQUAL(kern_dist_env_read(&e), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "rank 2"));
    setenv("XFFL_RANK", "x", 1);
    CU_ASSERT_EQUAL(kern_dist_env_read(&e), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "XFFL_RANK"));
    setenv("XFFL_RANK", "0", 1);
    setenv("XFFL_DIST_TAG", "../etc", 1);
    CU_ASSERT_EQUAL(kern_dist_env_read(&e), XFFL_ERR_USAGE);
    unsetenv("XFFL_DIST_TAG");
    CU_ASSERT_EQUAL(kern_dist_env_read(&e), XFFL_ERR_USAGE); /* two ranks, no tag, no SLURM job */
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "XFFL_DIST_TAG"));
    clear_env();
}

typedef struct {
    const char *dir, *tag;
    int world;
    unsigned char got[KERN_DIST_ID_BYTES];
    xffl_status s;
} waiter;

static void *wait_main(void *arg)
{
    waiter *w = arg;
    w->s = kern_dist_id_wait(w->dir, w->tag, w->world, w->got, sizeof w->got, 20.0);
    return NULL;
}

static void test_id_exchange(void)
{
    char *dir = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("dist", &dir), XFFL_OK);
    char state[4096];
    snprintf(state, sizeof state, "%s/state/facility-a", dir); /* created by publish */
    unsigned char id[KERN_DIST_ID_BYTES];
    for (int i = 0; i < KERN_DIST_ID_BYTES; i++) id[i] = (unsigned char)(i * 37 + 11);

    /* the waiters start first and poll, as ranks > 0 do */
    waiter w[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (waiter){state, "slurm-42-0", 4, {0}, XFFL_ERR_INTERNAL};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, wait_main, &w[i]), 0);
    }
    usleep(150 * 1000);
    CU_ASSERT_EQUAL(kern_dist_id_publish(state, "slurm-42-0", 4, id, sizeof id), XFFL_OK);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(w[i].s, XFFL_OK);
        CU_ASSERT_EQUAL(memcmp(w[i].got, id, sizeof id), 0);
    }

    /* an id file of an earlier run is never taken for this one's */
    unsigned char got[KERN_DIST_ID_BYTES];
    double t0 = xffl_now();
    CU_ASSERT_EQUAL(kern_dist_id_wait(state, "slurm-43-0", 4, got, sizeof got, 0.3), XFFL_ERR_NOT_YET);
    CU_ASSERT(xffl_now() - t0 >= 0.3);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "nccl-slurm-43-0.id"));

    /* a rank launched with another world size is refused, naming both */
    CU_ASSERT_EQUAL(kern_dist_id_wait(state, "slurm-42-0", 2, got, sizeof got, 1.0), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "expects 4 ranks"));

    /* a damaged file is refused, not misread */
    char path[4096];
    CU_ASSERT_EQUAL_FATAL(kern_dist_id_path(state, "t-bad", path, sizeof path), XFFL_OK);
    const char *bad = "xffl-nccl-id 1\nworld=1\ntag=t-bad\nbytes=128\nid=zz\n";
    CU_ASSERT_EQUAL(xffl_write_file_atomic(path, bad, strlen(bad)), XFFL_OK);
    CU_ASSERT_EQUAL(kern_dist_id_wait(state, "t-bad", 1, got, sizeof got, 1.0), XFFL_ERR_INVALID);
    CU_ASSERT_EQUAL(kern_dist_id_path(state, "a/b", path, sizeof path), XFFL_ERR_USAGE);
    xffl_rmtree_cleanup(dir);
    free(dir);
}

static void test_spawn_local(void)
{
    char *dir = NULL, out[4096], script[4400];
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("dist-spawn", &dir), XFFL_OK);
    snprintf(out, sizeof out, "%s/ranks", dir);
    snprintf(script, sizeof script,
             "test \"$XFFL_WORLD\" = 3 && test \"$XFFL_LOCAL_RANK\" = \"$XFFL_RANK\" && "
             "echo \"$XFFL_RANK $XFFL_DIST_TAG\" >> '%s'", out);
    setenv("XFFL_RANK", "9", 1); /* the caller's own rank variables do not leak into the ranks */
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    int code = -1;
    CU_ASSERT_EQUAL(kern_dist_spawn_local(3, argv, &code), XFFL_OK);
    CU_ASSERT_EQUAL(code, 0);
    void *data = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(xffl_read_file(out, &data, &len), XFFL_OK);
    int seen[3] = {0, 0, 0}, lines = 0;
    char tag0[256] = "";
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        int r = -1;
        char tag[256] = "";
        CU_ASSERT_EQUAL(sscanf(line, "%d %255s", &r, tag), 2);
        if (r >= 0 && r < 3) seen[r]++;
        if (!lines++) snprintf(tag0, sizeof tag0, "%s", tag);
        CU_ASSERT_STRING_EQUAL(tag, tag0); /* one run tag shared by every rank */
        CU_ASSERT_EQUAL(strncmp(tag, "gpus-", 5), 0);
    }
    CU_ASSERT_EQUAL(lines, 3);
    CU_ASSERT(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    free(data);

    /* rank 1 fails: the others (which would wait in NCCL) are stopped at once */
    char *fail[] = {"/bin/sh", "-c", "if [ \"$XFFL_RANK\" = 1 ]; then exit 7; fi; sleep 30", NULL};
    double t0 = xffl_now();
    CU_ASSERT_EQUAL(kern_dist_spawn_local(3, fail, &code), XFFL_ERR_BACKEND);
    CU_ASSERT(xffl_now() - t0 < 10.0);
    CU_ASSERT_EQUAL(code, 7);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "rank 1 of 3"));
    char *missing[] = {"/nonexistent/xffl", NULL};
    CU_ASSERT_NOT_EQUAL(kern_dist_spawn_local(2, missing, &code), XFFL_OK);
    CU_ASSERT_EQUAL(kern_dist_spawn_local(0, argv, &code), XFFL_ERR_USAGE);
    unsetenv("XFFL_RANK");
    xffl_rmtree_cleanup(dir);
    free(dir);
}

static void test_init_without_gpu(void)
{
    /* CPU-only builds (and CUDA builds on a machine without a device) refuse cleanly,
     * so cmd_train can call kern_dist_init unconditionally. */
#ifndef XFFL_WITH_CUDA
    kern_dist_env e = {0, 1, 0, "single-1"};
    kern_dist *d = (kern_dist *)1;
    CU_ASSERT_EQUAL(kern_dist_init("/nonexistent", &e, 0, 1.0, &d), XFFL_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "built without CUDA"));
    float x = 1.0f;
    CU_ASSERT_EQUAL(kern_dist_allreduce_host(NULL, &x, 1, 1.0f), XFFL_ERR_UNSUPPORTED);
    kern_dist_free(NULL);
#else
    if (access("/dev/nvidiactl", F_OK) == 0) return; /* a GPU machine: tests/gpu covers it */
    kern_dist_env e = {0, 1, 0, "single-1"};
    kern_dist *d = (kern_dist *)1;
    CU_ASSERT_EQUAL(kern_dist_init("/nonexistent", &e, 0, 1.0, &d), XFFL_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(d);
#endif
}

void suite_dist(void)
{
    CU_pSuite s = CU_add_suite("dist", NULL, NULL);
    CU_add_test(s, "rank, world and run tag from XFFL_* / SLURM_*", test_env);
    CU_add_test(s, "NCCL id through the state dir: waiters, stale run, world mismatch, damage", test_id_exchange);
    CU_add_test(s, "xffl train --gpus N: one process per rank, shared tag, failing rank stops the rest", test_spawn_local);
    CU_add_test(s, "kern_dist_init without CUDA or without a device: UNSUPPORTED", test_init_without_gpu);
}
