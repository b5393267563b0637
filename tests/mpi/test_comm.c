/* Every collective of comm.h against its rank-ordered reference, bit for bit, on the
 * ranks it was started with (tests/it/test-comm-mpi.sh runs it under mpirun -np 1, 2, 4).
 *
 *   test_comm [TRANSPORT]   the collectives (default "auto"); with one rank, also
 *                           that "self" and TRANSPORT give the same bytes
 *   test_comm --plain       run without a launcher: "auto" must be self and MPI must
 *                           not have been initialised
 *   test_comm --die         the last rank kills itself (SIGKILL) in the middle of a run
 *                           of all-reduces: the launcher must end the job, not hang
 *
 * Every rank can compute every rank's contribution (a hash of rank, element and case),
 * so each checks its own result against the reference sum taken in rank order. Prints
 * "test_comm: N checks passed on R ranks (transport)" from rank 0; exits 1 on a failure. */
#include <mpi.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"

static int failures, checks, me;

#define EXPECT(cond, ...)                                        \
    do {                                                         \
        checks++;                                                \
        if (!(cond)) {                                           \
            failures++;                                          \
            fprintf(stderr, "rank %d: FAIL %s:%d: ", me, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fputc('\n', stderr);                                 \
        }                                                        \
    } while (0)
#define OK(expr) EXPECT((expr) == XFFL_OK, "%s: %s", #expr, xffl_errmsg())

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* Element i of rank r's contribution in case c: values of mixed sign and magnitude
 * (2^-20 .. 2^20), so that the order of a float sum changes its bits. */
static void value(int r, size_t i, int c, comm_dtype t, void *out)
{
    uint64_t h = mix(((uint64_t)r << 48) ^ ((uint64_t)c << 40) ^ i ^ 0x9e3779b97f4a7c15ULL);
    double v = ldexp((double)(h & 0xffffff) / 0x1000000 + 0.5, (int)((h >> 24) % 41) - 20) * ((h >> 40) & 1 ? -1 : 1);
    switch (t) {
    case COMM_F32: *(float *)out = (float)v; break;
    case COMM_F64: *(double *)out = v; break;
    case COMM_I64: *(int64_t *)out = (int64_t)(h >> 1) - (INT64_C(1) << 62); break;
    case COMM_BYTE: *(uint8_t *)out = (uint8_t)h; break;
    }
}

static void fill(int r, size_t first, size_t n, int c, comm_dtype t, void *buf)
{
    size_t es = comm_dtype_size(t);
    for (size_t i = 0; i < n; i++) value(r, first + i, c, t, (char *)buf + i * es);
}

/* acc += x, in the element type (acc starts as rank 0's value). */
static void add(void *acc, const void *x, comm_dtype t)
{
    switch (t) {
    case COMM_F32: *(float *)acc += *(const float *)x; break;
    case COMM_F64: *(double *)acc += *(const double *)x; break;
    case COMM_I64: *(int64_t *)acc = (int64_t)((uint64_t) * (int64_t *)acc + (uint64_t) * (const int64_t *)x); break;
    case COMM_BYTE: *(uint8_t *)acc = (uint8_t)(*(uint8_t *)acc + *(const uint8_t *)x); break;
    }
}

/* ref[0..n) = sum over ranks 0..size-1, in that order (reverse: size-1..0), of element
 * first+i of their contribution. */
static void reference(int size, size_t first, size_t n, int c, comm_dtype t, void *ref, int reverse)
{
    size_t es = comm_dtype_size(t);
    char x[8];
    for (size_t i = 0; i < n; i++) {
        char *o = (char *)ref + i * es;
        value(reverse ? size - 1 : 0, first + i, c, t, o);
        for (int k = 1; k < size; k++) {
            value(reverse ? size - 1 - k : k, first + i, c, t, x);
            add(o, x, t);
        }
    }
}

static const char *tname(comm_dtype t)
{
    static const char *names[] = {"f32", "f64", "i64", "byte"};
    return names[t];
}

static void check_all(xffl_comm *c, size_t n, comm_dtype t, int cs)
{
    int rank = comm_rank(c), size = comm_size(c);
    size_t es = comm_dtype_size(t), N = (size_t)size * n;
    char *buf = malloc(N * es + 1), *ref = malloc(N * es + 1), *out = malloc(N * es + 1);
    if (!buf || !ref || !out) {
        EXPECT(0, "out of memory for n=%zu", n);
        goto done;
    }
    /* all-reduce */
    fill(rank, 0, n, cs, t, buf);
    reference(size, 0, n, cs, t, ref, 0);
    OK(comm_allreduce_sum(c, buf, n, t));
    EXPECT(!memcmp(buf, ref, n * es), "allreduce %s n=%zu differs from the rank-ordered sum", tname(t), n);
    if (t == COMM_F32 && size >= 3 && n >= 1000) {
        reference(size, 0, n, cs, t, out, 1);
        EXPECT(memcmp(out, ref, n * es), "the test cannot tell summation orders apart (n=%zu)", n);
    }
    /* reduce-scatter: rank r gets chunk r of the sum of every rank's size*n */
    fill(rank, 0, N, cs + 1, t, buf);
    reference(size, (size_t)rank * n, n, cs + 1, t, ref, 0);
    memset(out, 0xa5, n * es + 1);
    OK(comm_reduce_scatter_sum(c, buf, out, n, t));
    EXPECT(!memcmp(out, ref, n * es), "reduce-scatter %s n=%zu differs from the rank-ordered sum", tname(t), n);
    EXPECT((unsigned char)out[n * es] == 0xa5, "reduce-scatter %s n=%zu wrote past recv[n]", tname(t), n);
    /* all-gather */
    fill(rank, 0, n, cs + 2, t, buf);
    for (int r = 0; r < size; r++) fill(r, 0, n, cs + 2, t, ref + (size_t)r * n * es);
    memset(out, 0xa5, N * es + 1);
    OK(comm_allgather(c, buf, out, n, t));
    EXPECT(!memcmp(out, ref, N * es), "allgather %s n=%zu", tname(t), n);
    EXPECT((unsigned char)out[N * es] == 0xa5, "allgather %s n=%zu wrote past recv[size*n]", tname(t), n);
    /* in place: this rank's part already at recv[rank*n] (the others' places hold junk) */
    memset(out, 0x3c, N * es);
    fill(rank, 0, n, cs + 2, t, out + (size_t)rank * n * es);
    OK(comm_allgather(c, out + (size_t)rank * n * es, out, n, t));
    EXPECT(!memcmp(out, ref, N * es), "in-place allgather %s n=%zu", tname(t), n);
    /* the strided forms: chunks 3 elements apart, the gaps untouched */
    size_t st = n + 3, NS = (size_t)size * st * es;
    char *sb = malloc(NS + 1), *so = malloc(NS + 1);
    if (sb && so) {
        fill(rank, 0, N, cs + 1, t, buf);
        memset(sb, 0x5a, NS);
        for (int r = 0; r < size; r++) memcpy(sb + (size_t)r * st * es, buf + (size_t)r * n * es, n * es);
        reference(size, (size_t)rank * n, n, cs + 1, t, ref, 0);
        OK(comm_reduce_scatter_sum_strided(c, sb, st, out, n, t));
        EXPECT(!memcmp(out, ref, n * es), "strided reduce-scatter %s n=%zu differs", tname(t), n);
        /* the sum written over this rank's own chunk of send (the train loop's in-place exchange) */
        OK(comm_reduce_scatter_sum_strided(c, sb, st, sb + (size_t)rank * st * es, n, t));
        EXPECT(!memcmp(sb + (size_t)rank * st * es, ref, n * es), "strided reduce-scatter %s n=%zu into send's own chunk",
               tname(t), n);
        fill(rank, 0, n, cs + 2, t, buf);
        memset(so, 0xa5, NS + 1);
        if (rank == size - 1) { /* the last rank gathers in place, the others from their own buffers */
            memcpy(so + (size_t)rank * st * es, buf, n * es);
            OK(comm_allgather_strided(c, so + (size_t)rank * st * es, so, st, n, t));
        } else
            OK(comm_allgather_strided(c, buf, so, st, n, t));
        for (int r = 0; r < size; r++) {
            fill(r, 0, n, cs + 2, t, ref);
            EXPECT(!memcmp(so + (size_t)r * st * es, ref, n * es), "strided allgather %s n=%zu: rank %d's chunk",
                   tname(t), n, r);
            for (size_t g = n * es; g < st * es; g++)
                EXPECT((unsigned char)so[(size_t)r * st * es + g] == 0xa5, "strided allgather %s wrote a gap", tname(t));
        }
    } else
        EXPECT(0, "out of memory for the strided checks, n=%zu", n);
    free(sb);
    free(so);
    EXPECT(comm_allgather_strided(c, buf, out, n - 1, n, t) == XFFL_ERR_USAGE || n == 0,
           "a stride below the chunk accepted");
    /* broadcast from the last rank and from rank 0 */
    for (int root = size - 1;; root = 0) {
        fill(rank, 0, n, cs + 3, t, buf);
        fill(root, 0, n, cs + 3, t, ref);
        OK(comm_broadcast(c, buf, n, t, root));
        EXPECT(!memcmp(buf, ref, n * es), "broadcast %s n=%zu from %d", tname(t), n, root);
        if (root == 0) break;
    }
    OK(comm_barrier(c));
done:
    free(buf);
    free(ref);
    free(out);
}

/* With one rank, "self" and the transport under test hand back the same bytes. */
static void check_self_agrees(xffl_comm *c)
{
    xffl_comm *s = NULL;
    OK(comm_open("self", NULL, &s));
    if (!s) return;
    enum { n = 1001 };
    float a[n], b[n], ra[n], rb[n];
    fill(0, 0, n, 77, COMM_F32, a);
    memcpy(b, a, sizeof a);
    OK(comm_allreduce_sum(s, a, n, COMM_F32));
    OK(comm_allreduce_sum(c, b, n, COMM_F32));
    EXPECT(!memcmp(a, b, sizeof a), "allreduce: self and %s differ", comm_transport(c));
    OK(comm_reduce_scatter_sum(s, a, ra, n, COMM_F32));
    OK(comm_reduce_scatter_sum(c, b, rb, n, COMM_F32));
    EXPECT(!memcmp(ra, rb, sizeof ra), "reduce-scatter: self and %s differ", comm_transport(c));
    OK(comm_allgather(s, a, ra, n, COMM_F32));
    OK(comm_allgather(c, b, rb, n, COMM_F32));
    EXPECT(!memcmp(ra, rb, sizeof ra), "allgather: self and %s differ", comm_transport(c));
    comm_close(s);
}

int main(int argc, char **argv)
{
    xffl_comm *c = NULL;
    if (argc > 1 && !strcmp(argv[1], "--plain")) {
        OK(comm_open("auto", NULL, &c));
        EXPECT(c && !strcmp(comm_transport(c), "self"), "auto without a launcher is %s", c ? comm_transport(c) : "-");
        int inited = 1;
        MPI_Initialized(&inited);
        EXPECT(!inited, "opening auto without a launcher initialised MPI");
        comm_close(c);
        printf("test_comm --plain: %d checks, %d failed\n", checks, failures);
        return failures != 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--die")) {
        if (comm_open("auto", NULL, &c) != XFFL_OK) return 1;
        float x[4096] = {0};
        for (int i = 0; i < 1000; i++) {
            if (i == 100 && comm_rank(c) == comm_size(c) - 1) raise(SIGKILL);
            if (comm_allreduce_sum(c, x, 4096, COMM_F32) != XFFL_OK) {
                fprintf(stderr, "test_comm --die: rank %d: %s\n", comm_rank(c), xffl_errmsg());
                return 1;
            }
        }
        comm_close(c);
        return 0; /* not reached: the others cannot finish without the dead rank */
    }
    const char *transport = argc > 1 ? argv[1] : "auto";
    if (comm_open(transport, NULL, &c) != XFFL_OK) {
        fprintf(stderr, "test_comm: %s\n", xffl_errmsg());
        return 1;
    }
    me = comm_rank(c);
    int size = comm_size(c);
    const size_t sizes[] = {0, 1, 2, 3, 5, 7, 64, 1000, 4097, 100003};
    for (comm_dtype t = COMM_F32; t <= COMM_BYTE; t++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) check_all(c, sizes[k], t, (int)(t * 100 + k * 4));
    /* Large: over a piece (8 MiB per rank by default) in every collective. */
    size_t big = getenv("TEST_COMM_BIG") ? strtoull(getenv("TEST_COMM_BIG"), NULL, 10) : 0;
    if (big) {
        check_all(c, big, COMM_F32, 900);
        check_all(c, big / 2 + 1, COMM_F64, 904);
    }
    if (size == 1) check_self_agrees(c);
    /* Every rank's verdict, so rank 0 speaks for the job. */
    int64_t bad = failures;
    OK(comm_allreduce_sum(c, &bad, 1, COMM_I64));
    if (me == 0)
        printf("test_comm: %d checks %s on %d ranks (%s)\n", checks, bad ? "FAILED" : "passed", size,
               comm_transport(c));
    comm_close(c);
    return bad != 0;
}
