/* ckpt_write / ckpt_read: checkpoint throughput next to plain sequential I/O of the
 * same byte count, measured in the same run (docs/design.md "Benchmarks").
 *
 *   ckpt_write: a model's tensors written as parts (shuffle + zstd + sha256 per dataset,
 *               fsync per part), in uncompressed bytes per second;
 *               ref raw_write_fsync: write() of the same number of bytes + fsync.
 *   ckpt_read:  the same parts read back cold (pages evicted with
 *               posix_fadvise(DONTNEED) after fsync), every digest verified;
 *               ref raw_read_odirect: O_DIRECT read of the raw file.
 *
 * usage: ckpt_bench [--dim D --layers L --hidden H --vocab V] [--level N] [--threads N] [--dir DIR]
 * Default model: dim 1024, 14 layers, hidden 4096, vocab 32000 (300 M parameters, 1.2 GB). */
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "libckpt/h5part.h"
#include "libckpt/model.h"
#include "libckpt/zstd_filter.h"
#include "pipelines/version.h"

static void die(const char *what)
{
    fprintf(stderr, "ckpt_bench: %s: %s\n", what, xffl_errmsg());
    exit(1);
}

/* CPU seconds of the whole process so far (all threads, user + system): beside a
 * phase's wall time it tells a CPU-bound run from one that waited for the device. */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static void evict(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static double raw_write(const char *path, const void *data, size_t n)
{
    double t0 = xffl_now();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("raw write open");
    const char *p = data;
    size_t left = n, block = (size_t)8 << 20;
    while (left) {
        ssize_t w = write(fd, p, left < block ? left : block);
        if (w <= 0) die("raw write");
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) die("raw fsync");
    close(fd);
    return xffl_now() - t0;
}

static double raw_read_direct(const char *path, size_t n)
{
    size_t block = (size_t)8 << 20;
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, block)) die("aligned buffer");
    double t0 = xffl_now();
    int fd = open(path, O_RDONLY | O_DIRECT);
    if (fd < 0) die("O_DIRECT open");
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf, block);
        if (r < 0) die("O_DIRECT read");
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    double dt = xffl_now() - t0;
    free(buf);
    if (got < n) die("raw file short");
    return dt;
}

/* Reads every part into back, verifying every digest. */
static void read_parts(const char *dir, const pipe_part_plan *plan, const ckpt_param_table *t,
                       const ckpt_h5_options *opt, float *back)
{
    char path[4096];
    for (int p = 0; p < plan->n_parts; p++) {
        snprintf(path, sizeof path, "%s/part-%03d.h5", dir, p);
        ckpt_h5_reader *r;
        if (ckpt_h5_reader_open(path, opt, &r) != XFFL_OK) die("open");
        /* one batch per part, as the version reader does */
        int n = plan->count[p];
        ckpt_h5_request *q = calloc((size_t)n, sizeof *q);
        char(*names)[128] = calloc((size_t)n, sizeof *names);
        if (!q || !names) die("requests");
        for (int k = 0; k < n; k++) {
            const ckpt_param *pa = &t->params[plan->first[p] + k];
            snprintf(names[k], sizeof names[k], "model/%s", pa->name);
            q[k] = (ckpt_h5_request){names[k], CKPT_DT_F32, pa->ndim, pa->shape, back + pa->offset, 0, NULL};
        }
        if (ckpt_h5_read_many(r, n, q) != XFFL_OK) die("read");
        free(q);
        free(names);
        ckpt_h5_reader_close(r);
    }
}

int main(int argc, char **argv)
{
    ckpt_model_config cfg = {1024, 14, 16, 16, 4096, 32000, 2048, 1e-5f, 10000.0f};
    int level = CKPT_ZSTD_DEFAULT_LEVEL, threads = 0;
    const char *dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--dim")) cfg.dim = v;
        else if (!strcmp(argv[i], "--layers")) cfg.n_layers = v;
        else if (!strcmp(argv[i], "--hidden")) cfg.hidden_dim = v;
        else if (!strcmp(argv[i], "--vocab")) cfg.vocab_size = v;
        else if (!strcmp(argv[i], "--level")) level = v;
        else if (!strcmp(argv[i], "--threads")) threads = v;
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else {
            fprintf(stderr, "ckpt_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    ckpt_param_table *t;
    if (ckpt_param_table_create(&cfg, &t) != XFFL_OK) die("model");
    float *slab = malloc((size_t)t->total * sizeof *slab), *back = malloc((size_t)t->total * sizeof *back);
    if (!slab || !back) die("slab");
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 1, slab + t->params[i].offset);
    const size_t bytes = (size_t)t->total * sizeof(float);
    char *tmp = NULL;
    if (dir) {
        tmp = strdup(dir);
        if (xffl_mkdirs(tmp) != XFFL_OK) die(dir);
    } else if (xffl_mkdtemp("ckptbench", &tmp) != XFFL_OK)
        die("temp dir");
    pipe_part_plan plan;
    if (pipe_version_plan(t, 1, (uint64_t)1 << 30, &plan) != XFFL_OK) die("plan");
    char path[4096];
    ckpt_h5_options opt = {.level = level, .threads = threads};

    /* reference write first, then the checkpoint: both see the same page-cache state */
    snprintf(path, sizeof path, "%s/raw.bin", tmp);
    double t_raw_w = raw_write(path, slab, bytes);
    evict(path);

    uint64_t stored = 0;
    double t0 = xffl_now(), c0 = cpu_now();
    for (int p = 0; p < plan.n_parts; p++) {
        snprintf(path, sizeof path, "%s/part-%03d.h5", tmp, p);
        ckpt_h5_writer *w;
        if (ckpt_h5_writer_create(path, &opt, &w) != XFFL_OK) die("create");
        if (ckpt_h5_attr_str(w, "format", PIPE_CKPT_FORMAT) != XFFL_OK) die("attr");
        for (int i = plan.first[p]; i < plan.first[p] + plan.count[p]; i++) {
            char name[128];
            uint64_t z = 0;
            snprintf(name, sizeof name, "model/%s", t->params[i].name);
            if (ckpt_h5_write(w, name, CKPT_DT_F32, t->params[i].ndim, t->params[i].shape, slab + t->params[i].offset,
                              NULL, &z) != XFFL_OK)
                die("write");
            stored += z;
        }
        if (ckpt_h5_writer_close(w) != XFFL_OK) die("close");
    }
    double t_ckpt_w = xffl_now() - t0, cpu_w = cpu_now() - c0;
    uint64_t file_bytes = 0;
    for (int p = 0; p < plan.n_parts; p++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/part-%03d.h5", tmp, p);
        if (stat(path, &st) == 0) file_bytes += (uint64_t)st.st_size;
        if (!getenv("CKPT_BENCH_WARM")) evict(path);
    }

    /* The destination is a slab the caller already uses (the aggregator and train
     * reuse theirs), as the O_DIRECT reference reuses its buffer: read into it once
     * untimed, then evict the parts again and time the cold read. A memset is not
     * enough on every VM: on this project's paravirtualized machines a page first
     * written by the pipeline's threads cost a fault (0.2-0.3 GB/s) even after the
     * main thread had touched it. */
    snprintf(path, sizeof path, "%s/raw.bin", tmp);
    double t_raw_r = raw_read_direct(path, bytes);
    read_parts(tmp, &plan, t, &opt, back);
    for (int p = 0; p < plan.n_parts && !getenv("CKPT_BENCH_WARM"); p++) {
        snprintf(path, sizeof path, "%s/part-%03d.h5", tmp, p);
        evict(path);
    }
    memset(back, 0, bytes);

    t0 = xffl_now();
    c0 = cpu_now();
    read_parts(tmp, &plan, t, &opt, back);
    double t_ckpt_r = xffl_now() - t0, cpu_r = cpu_now() - c0;
    if (memcmp(slab, back, bytes) != 0) {
        fprintf(stderr, "ckpt_bench: read-back differs from what was written\n");
        return 1;
    }
    xffl_rmtree_cleanup(tmp);
    double gb = (double)bytes / 1e9, cr = (double)bytes / (double)file_bytes;
    int nt = threads ? threads : omp_get_max_threads();
    printf("{\"bench\":\"ckpt_write\",\"value\":%.3f,\"unit\":\"GB/s\",\"ref_name\":\"raw_write_fsync\",\"ref\":%.3f,"
           "\"ratio\":%.3f,\"compression_ratio\":%.4f,\"bytes\":%zu,\"stored_bytes\":%llu,\"parts\":%d,\"level\":%d,"
           "\"threads\":%d,\"parameters\":%lld,\"seconds\":%.3f,\"cpu_seconds\":%.3f}\n",
           gb / t_ckpt_w, gb / t_raw_w, t_raw_w / t_ckpt_w, cr, bytes, (unsigned long long)file_bytes, plan.n_parts,
           level, nt, (long long)t->total, t_ckpt_w, cpu_w);
    printf("{\"bench\":\"ckpt_read\",\"value\":%.3f,\"unit\":\"GB/s\",\"ref_name\":\"raw_read_odirect\",\"ref\":%.3f,"
           "\"ratio\":%.3f,\"compression_ratio\":%.4f,\"bytes\":%zu,\"cold\":true,\"digests_verified\":true,\"destination\":\"reused\",\"level\":%d,"
           "\"threads\":%d,\"seconds\":%.3f,\"cpu_seconds\":%.3f}\n",
           gb / t_ckpt_r, gb / t_raw_r, t_raw_r / t_ckpt_r, cr, bytes, level, nt, t_ckpt_r, cpu_r);
    (void)stored;
    pipe_part_plan_free(&plan);
    ckpt_param_table_free(t);
    free(slab);
    free(back);
    free(tmp);
    return 0;
}
