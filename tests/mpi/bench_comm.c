/* bench_comm: throughput of comm.h's collectives on the ranks it was started with
 * (mpirun -np N build/mpi/bench_comm [MAX_FLOATS]). For each size, f32: the all-reduce
 * by both algorithms of the mpi transport (all-gather + local sum, reduce-scatter +
 * all-gather), the reduce-scatter and the all-gather, next to MPI_Allreduce (no order
 * guarantee: the reference speed, not an alternative). One JSON object per line from
 * rank 0; bytes/s counts the caller's buffer (n floats) per second. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"

static double now(void) { return MPI_Wtime(); }

static int reps_for(size_t n) { return n >= (1u << 24) ? 3 : n >= (1u << 20) ? 10 : 200; }

static xffl_comm *open_with(const char *gather_sum_max)
{
    setenv("XFFL_COMM_GATHER_SUM_MAX", gather_sum_max, 1);
    xffl_comm *c = NULL;
    if (comm_open("mpi", NULL, &c) != XFFL_OK) {
        fprintf(stderr, "bench_comm: %s\n", xffl_errmsg());
        exit(1);
    }
    return c;
}

int main(int argc, char **argv)
{
    size_t max = argc > 1 ? strtoull(argv[1], NULL, 10) : (size_t)1 << 25;
    xffl_comm *gs = open_with("1000000000000"), *rs = open_with("0");
    int rank = comm_rank(rs), size = comm_size(rs);
    float *buf = malloc(max * sizeof(float) * 2), *out = malloc(max * sizeof(float) * (size_t)size);
    if (!buf || !out) return 1;
    for (size_t i = 0; i < 2 * max; i++) buf[i] = (float)((i * 7919 + (size_t)rank) % 1000) * 1e-3f;
    for (size_t n = 1024; n <= max; n *= 8) {
        int reps = reps_for(n);
        double t[5] = {0};
        for (int k = -5; k < 5; k++) { /* -5..-1: one untimed pass of each (buffers, shared memory) */
            if (comm_barrier(rs) != XFFL_OK) return 1;
            double t0 = now();
            for (int r = 0; r < (k < 0 ? 1 : reps); r++) {
                xffl_status s = XFFL_OK;
                switch (k < 0 ? k + 5 : k) {
                case 0: s = comm_allreduce_sum(gs, buf, n, COMM_F32); break;
                case 1: s = comm_allreduce_sum(rs, buf, n, COMM_F32); break;
                case 2: s = comm_reduce_scatter_sum(rs, buf, out, n / (size_t)size, COMM_F32); break;
                case 3: s = comm_allgather(rs, buf, out, n / (size_t)size, COMM_F32); break;
                case 4: s = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) ? XFFL_ERR_BACKEND : XFFL_OK; break;
                }
                if (s != XFFL_OK) {
                    fprintf(stderr, "bench_comm: %s\n", xffl_errmsg());
                    return 1;
                }
            }
            double dt = now() - t0, worst = 0;
            MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (k >= 0) t[k] = worst / reps;
        }
        if (rank == 0) {
            double mb = (double)n * 4 / 1e6;
            printf("{\"bench\": \"comm\", \"ranks\": %d, \"floats\": %zu, \"allreduce_gather_sum_MBps\": %.0f, "
                   "\"allreduce_rs_ag_MBps\": %.0f, \"reduce_scatter_MBps\": %.0f, \"allgather_MBps\": %.0f, "
                   "\"mpi_allreduce_unordered_MBps\": %.0f}\n",
                   size, n, mb / t[0], mb / t[1], mb / t[2], mb / t[3], mb / t[4]);
            fflush(stdout);
        }
    }
    free(buf);
    free(out);
    comm_close(gs);
    comm_close(rs);
    return 0;
}
