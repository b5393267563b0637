/* Rank discovery and the NCCL id rendezvous through a file (kernels/cuda/dist.h).
 * Plain C in every build: nothing here needs CUDA, so it is unit-tested on CPU. */
#include "kernels/cuda/dist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

static const char ID_MAGIC[] = "xffl-nccl-id 1";

static XFFL_MUST_USE xffl_status env_int(const char *name, int min, int *out, int *found)
{
    const char *v = getenv(name);
    *found = 0;
    if (!v || !*v) return XFFL_OK;
    long x;
    XFFL_FORWARD(xffl_parse_long(name, v, min, 1 << 20, &x));
    *out = (int)x;
    *found = 1;
    return XFFL_OK;
}

static int tag_ok(const char *t)
{
    if (!*t) return 0;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            return 0;
    return 1;
}

xffl_status kern_dist_env_read(kern_dist_env *e)
{
    memset(e, 0, sizeof *e);
    e->world = 1;
    int fr, fw, fl;
    XFFL_FORWARD(env_int("XFFL_RANK", 0, &e->rank, &fr));
    XFFL_FORWARD(env_int("XFFL_WORLD", 1, &e->world, &fw));
    XFFL_FORWARD(env_int("XFFL_LOCAL_RANK", 0, &e->local_rank, &fl));
    const char *tag = getenv("XFFL_DIST_TAG");
    if (!fr && !fw) {
        XFFL_FORWARD(env_int("SLURM_PROCID", 0, &e->rank, &fr));
        XFFL_FORWARD(env_int("SLURM_NTASKS", 1, &e->world, &fw));
        if (!fl) XFFL_FORWARD(env_int("SLURM_LOCALID", 0, &e->local_rank, &fl));
        const char *job = getenv("SLURM_JOB_ID"), *step = getenv("SLURM_STEP_ID");
        if ((!tag || !*tag) && job && *job)
            snprintf(e->tag, sizeof e->tag, "slurm-%s-%s", job, step && *step ? step : "0");
    }
    if (tag && *tag) {
        XFFL_RETURN_IF(strlen(tag) >= sizeof e->tag, XFFL_ERR_USAGE, "XFFL_DIST_TAG is longer than %d characters",
                       KERN_DIST_TAG_MAX - 1);
        snprintf(e->tag, sizeof e->tag, "%s", tag);
    }
    XFFL_RETURN_IF(e->rank >= e->world, XFFL_ERR_USAGE, "rank %d is not below the world size %d (XFFL_RANK/SLURM_PROCID)",
                   e->rank, e->world);
    if (!e->tag[0]) {
        XFFL_RETURN_IF(e->world > 1, XFFL_ERR_USAGE,
                       "%d ranks but no run tag: set XFFL_DIST_TAG (or run under srun, which sets SLURM_JOB_ID)",
                       e->world);
        snprintf(e->tag, sizeof e->tag, "single-%ld", (long)getpid());
    }
    XFFL_RETURN_IF(!tag_ok(e->tag), XFFL_ERR_USAGE, "run tag '%s' may hold only letters, digits, '.', '_' and '-'",
                   e->tag);
    return XFFL_OK;
}

xffl_status kern_dist_id_path(const char *state_dir, const char *tag, char *buf, size_t len)
{
    XFFL_RETURN_IF(!tag_ok(tag), XFFL_ERR_USAGE, "run tag '%s' may hold only letters, digits, '.', '_' and '-'", tag);
    int n = snprintf(buf, len, "%s/nccl-%s.id", state_dir, tag);
    XFFL_RETURN_IF(n < 0 || (size_t)n >= len, XFFL_ERR_USAGE, "id file path under %s is too long", state_dir);
    return XFFL_OK;
}

xffl_status kern_dist_id_publish(const char *state_dir, const char *tag, int world, const void *id, size_t id_len)
{
    char path[4096];
    XFFL_FORWARD(kern_dist_id_path(state_dir, tag, path, sizeof path));
    XFFL_FORWARD(xffl_mkdirs(state_dir));
    size_t cap = id_len * 2 + 512;
    char *text = malloc(cap);
    XFFL_RETURN_IF(!text, XFFL_ERR_NOMEM, "id file %s", path);
    int n = snprintf(text, cap, "%s\nworld=%d\ntag=%s\nbytes=%zu\nid=", ID_MAGIC, world, tag, id_len);
    for (size_t i = 0; i < id_len; i++) n += snprintf(text + n, cap - (size_t)n, "%02x", ((const unsigned char *)id)[i]);
    n += snprintf(text + n, cap - (size_t)n, "\n");
    xffl_status s = xffl_write_file_atomic(path, text, (size_t)n);
    free(text);
    if (s != XFFL_OK) return xffl_wrap(s, "publishing the NCCL id");
    return XFFL_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Parses a complete id file (rename made it appear whole). */
static XFFL_MUST_USE xffl_status parse_id(const char *path, const char *text, const char *tag, int world, void *id, size_t id_len)
{
    char ftag[KERN_DIST_TAG_MAX + 1] = "";
    int fworld = -1;
    size_t fbytes = 0;
    const char *idline = NULL;
    XFFL_RETURN_IF(strncmp(text, ID_MAGIC, strlen(ID_MAGIC)) != 0, XFFL_ERR_INVALID, "%s: not an xffl NCCL id file", path);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (sscanf(p, "world=%d", &fworld) == 1) continue;
        if (sscanf(p, "bytes=%zu", &fbytes) == 1) continue;
        if (strncmp(p, "tag=", 4) == 0) {
            size_t k = strcspn(p + 4, "\n");
            if (k > KERN_DIST_TAG_MAX) k = KERN_DIST_TAG_MAX;
            memcpy(ftag, p + 4, k);
            ftag[k] = 0;
        }
        if (strncmp(p, "id=", 3) == 0) idline = p + 3;
    }
    XFFL_RETURN_IF(strcmp(ftag, tag) != 0, XFFL_ERR_INVALID, "%s: written for run '%s', not '%s'", path, ftag, tag);
    XFFL_RETURN_IF(fworld != world, XFFL_ERR_INVALID, "%s: rank 0 expects %d ranks, this rank expects %d", path, fworld,
                   world);
    XFFL_RETURN_IF(fbytes != id_len || !idline, XFFL_ERR_INVALID, "%s: id of %zu bytes, expected %zu", path, fbytes,
                   id_len);
    for (size_t i = 0; i < id_len; i++) {
        int hi = hexval(idline[2 * i]), lo = hi < 0 ? -1 : hexval(idline[2 * i + 1]);
        XFFL_RETURN_IF(hi < 0 || lo < 0, XFFL_ERR_INVALID, "%s: id is not %zu hex bytes", path, id_len);
        ((unsigned char *)id)[i] = (unsigned char)(hi * 16 + lo);
    }
    return XFFL_OK;
}

xffl_status kern_dist_id_wait(const char *state_dir, const char *tag, int world, void *id, size_t id_len,
                              double timeout_s)
{
    char path[4096];
    XFFL_FORWARD(kern_dist_id_path(state_dir, tag, path, sizeof path));
    double t0 = xffl_now();
    for (;;) {
        if (access(path, F_OK) == 0) {
            void *data = NULL;
            size_t len = 0;
            xffl_status s = xffl_read_file(path, &data, &len);
            if (s == XFFL_OK) {
                s = parse_id(path, data, tag, world, id, id_len);
                free(data);
                return s;
            }
            if (s != XFFL_ERR_NOT_FOUND) return s; /* vanished between access and open: keep polling */
        }
        XFFL_RETURN_IF(xffl_now() - t0 >= timeout_s, XFFL_ERR_NOT_YET,
                       "no NCCL id from rank 0 in %s after %.0f s (is rank 0 running with the same state dir?)", path,
                       timeout_s);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
