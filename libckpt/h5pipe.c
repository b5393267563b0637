/* What the part writer (h5part_write.c) and reader (h5part_read.c) share: HDF5 set-up,
 * dtype mapping, and the chunk buffers their threads work in. See h5pipe.h. */
#include "libckpt/h5pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "libckpt/zstd_filter.h"


/* One DEBUG line per entry of HDF5's error stack, innermost call last as H5Eprint2
 * orders them, so the stack reaches the one log sink (JSON lines included). */
static herr_t log_stack_entry(unsigned n, const H5E_error2_t *e, void *unused)
{
    (void)unused;
    char maj[128] = "", min[128] = "";
    if (H5Eget_msg(e->maj_num, NULL, maj, sizeof maj) < 0) maj[0] = 0;
    if (H5Eget_msg(e->min_num, NULL, min, sizeof min) < 0) min[0] = 0;
    xffl_log(XFFL_LOG_DEBUG, "hdf5 #%03u: %s line %u in %s(): %s (%s; %s)", n, e->file_name ? e->file_name : "?",
             e->line, e->func_name ? e->func_name : "?", e->desc ? e->desc : "", maj, min);
    return 0;
}

static herr_t log_stack(hid_t estack, void *unused)
{
    (void)unused;
    H5Ewalk2(estack, H5E_WALK_DOWNWARD, log_stack_entry, NULL);
    return 0;
}

xffl_status ckpt_h5_setup(void)
{
    /* The log level is the one switch: HDF5's stacks are debug detail (every failure
     * already has a message naming the file and the dataset). */
    H5Eset_auto2(H5E_DEFAULT, xffl_log_enabled(XFFL_LOG_DEBUG) ? log_stack : NULL, NULL);
    return ckpt_zstd_register();
}

const char *ckpt_dtype_name(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DT_F32: return "float32";
    case CKPT_DT_U16: return "uint16";
    case CKPT_DT_I8: return "int8";
    case CKPT_DT_U8: return "uint8";
    case CKPT_DT_U32: return "uint32";
    }
    return "?";
}

size_t ckpt_dtype_size(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DT_F32:
    case CKPT_DT_U32: return 4;
    case CKPT_DT_U16: return 2;
    case CKPT_DT_I8:
    case CKPT_DT_U8: return 1;
    }
    return 0;
}

xffl_status ckpt_dtype_parse(const char *name, ckpt_dtype *out)
{
    for (int d = CKPT_DT_F32; d <= CKPT_DT_U32; d++)
        if (strcmp(name, ckpt_dtype_name((ckpt_dtype)d)) == 0) {
            *out = (ckpt_dtype)d;
            return XFFL_OK;
        }
    return xffl_fail(XFFL_ERR_INVALID, "unknown dtype '%s' (known: float32, uint16, int8, uint8, uint32)", name);
}

hid_t ckpt_h5_file_type(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DT_F32: return H5T_IEEE_F32LE;
    case CKPT_DT_U16: return H5T_STD_U16LE;
    case CKPT_DT_I8: return H5T_STD_I8LE;
    case CKPT_DT_U8: return H5T_STD_U8LE;
    case CKPT_DT_U32: return H5T_STD_U32LE;
    }
    return -1;
}

hid_t ckpt_h5_mem_type(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DT_F32: return H5T_NATIVE_FLOAT;
    case CKPT_DT_U16: return H5T_NATIVE_UINT16;
    case CKPT_DT_I8: return H5T_NATIVE_INT8;
    case CKPT_DT_U8: return H5T_NATIVE_UINT8;
    case CKPT_DT_U32: return H5T_NATIVE_UINT32;
    }
    return -1;
}

void ckpt_pipeline_err(ckpt_pipeline *p, xffl_status s)
{
#pragma omp critical(ckpt_h5_err)
    if (p->err == XFFL_OK) {
        p->err = s;
        snprintf(p->msg, sizeof p->msg, "%s", xffl_errmsg());
    }
}

void ckpt_pipeline_free(ckpt_pipeline *p)
{
    if (p->slots)
        for (int i = 0; i < p->nslots; i++) {
            free(p->slots[i].z);
            free(p->slots[i].tmp);
        }
    free(p->slots);
    free(p->pad[0]);
    free(p->pad[1]);
    memset(p, 0, sizeof *p);
}

/* One spare set of buffers for the process: a writer or reader takes it when it
 * opens and gives it back when it closes, so a command that opens many part files
 * faults its buffers in once. */
static ckpt_pipeline spare;
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;

void ckpt_pipeline_take(ckpt_pipeline *p)
{
    pthread_mutex_lock(&spare_lock);
    *p = spare;
    memset(&spare, 0, sizeof spare);
    pthread_mutex_unlock(&spare_lock);
}

void ckpt_pipeline_release(ckpt_pipeline *p)
{
    pthread_mutex_lock(&spare_lock);
    if (!spare.slots || (p->slots && p->cap > spare.cap)) {
        ckpt_pipeline old = spare;
        spare = *p;
        *p = old;
    }
    pthread_mutex_unlock(&spare_lock);
    ckpt_pipeline_free(p);
}

void *ckpt_zbuf_alloc(size_t zcap)
{
    void *z = NULL;
    return posix_memalign(&z, CKPT_DIO_ALIGN, zcap + CKPT_DIO_SLACK) == 0 ? z : NULL;
}

/* Buffers live as long as the writer/reader: allocating 2 windows of chunk buffers per
 * dataset made page faults the largest cost. Grown, never shrunk. */
xffl_status ckpt_pipeline_ensure(ckpt_pipeline *p, int threads, size_t chunk_bytes, int zbuf)
{
    p->err = XFFL_OK;
    p->msg[0] = 0;
    int w = 2 * threads < 2 ? 2 : 2 * threads;
    if (p->slots && p->w == w && p->cap >= chunk_bytes && p->zbuf >= zbuf) return XFFL_OK;
    size_t cap = chunk_bytes > p->cap ? chunk_bytes : p->cap;
    ckpt_pipeline_free(p);
    p->w = w;
    p->nslots = 2 * w;
    p->cap = cap;
    p->zbuf = zbuf;
    p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
    p->pad[0] = malloc(cap);
    p->pad[1] = malloc(cap);
    if (!p->slots || !p->pad[0] || !p->pad[1]) goto nomem;
    for (int i = 0; i < p->nslots; i++) {
        p->slots[i].zcap = zbuf ? ckpt_zstd_bound(cap) : 0;
        p->slots[i].tmp = malloc(cap);
        if (zbuf) p->slots[i].z = ckpt_zbuf_alloc(p->slots[i].zcap);
        if (!p->slots[i].tmp || (zbuf && !p->slots[i].z)) goto nomem;
    }
    return XFFL_OK;
nomem:
    ckpt_pipeline_free(p);
    return xffl_fail(XFFL_ERR_NOMEM, "chunk buffers (%zu bytes each)", cap);
}
