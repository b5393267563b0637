/* One HDF5 part file, reading: opening, attributes, listing. Datasets themselves
 * are read in h5part_read_data.c. See h5part.h. */
#include "libckpt/h5part.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "libckpt/h5part_read.h"
#include "libckpt/shuffle.h"
#include "libckpt/zstd_filter.h"

xffl_status ckpt_h5_reader_open(const char *path, const ckpt_h5_options *opt, ckpt_h5_reader **out)
{
    XFFL_FORWARD(ckpt_h5_setup());
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such file", path);
        return xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    }
    XFFL_RETURN_IF(!S_ISREG(st.st_mode), XFFL_ERR_INVALID, "%s: not a regular file", path);
    XFFL_RETURN_IF(st.st_size == 0, XFFL_ERR_CORRUPT, "%s: empty file, not HDF5", path);
    htri_t is = H5Fis_hdf5(path);
    XFFL_RETURN_IF(is <= 0, XFFL_ERR_CORRUPT, "%s: not an HDF5 file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    XFFL_RETURN_IF(f < 0, XFFL_ERR_CORRUPT, "%s: damaged or truncated HDF5 file (cannot open)", path);
    ckpt_h5_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        H5Fclose(f);
        return xffl_fail(XFFL_ERR_NOMEM, "reader for %s", path);
    }
    r->file = f;
    r->threads = xffl_threads(opt ? opt->threads : 0);
    ckpt_pipeline_take(&r->pl);
    /* The decoding threads read the chunks themselves with O_DIRECT: no copy out of
     * the page cache, whose cost swings 3-4x on virtual machines (docs/checkpoints.md),
     * and the reads spread over the threads. HDF5 1.10 reports chunk addresses without
     * the user block (HDF5 issue 3003), so a file with one, or a file system without
     * O_DIRECT (tmpfs), is read through HDF5 instead, one chunk at a time: then ask for
     * the whole file now, or a cold read crawls at the default readahead window.
     * XFFL_NO_DIRECT_IO=1 asks for that path everywhere (a file system where direct
     * reads are slow). */
    r->dio_fd = getenv("XFFL_NO_DIRECT_IO") ? -1 : open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    r->buf_fd = open(path, O_RDONLY | O_CLOEXEC);
    hid_t fcpl = H5Fget_create_plist(f);
    hsize_t ub = 1;
    if (r->dio_fd >= 0 && (r->buf_fd < 0 || fcpl < 0 || H5Pget_userblock(fcpl, &ub) < 0 || ub != 0)) {
        close(r->dio_fd);
        r->dio_fd = -1;
    }
    if (fcpl >= 0) H5Pclose(fcpl);
    if (r->dio_fd < 0 && r->buf_fd >= 0) {
        posix_fadvise(r->buf_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        posix_fadvise(r->buf_fd, 0, 0, POSIX_FADV_WILLNEED);
    }
    *out = r;
    return XFFL_OK;
}

void ckpt_h5_reader_close(ckpt_h5_reader *r)
{
    if (!r) return;
    H5Fclose(r->file);
    if (r->dio_fd >= 0) close(r->dio_fd);
    if (r->buf_fd >= 0) close(r->buf_fd);
    ckpt_pipeline_release(&r->pl);
    free(r->path);
    free(r);
}

const char *ckpt_h5_reader_path(const ckpt_h5_reader *r) { return r->path; }

int ckpt_h5_has_attr(ckpt_h5_reader *r, const char *name) { return H5Aexists(r->file, name) > 0; }

static XFFL_MUST_USE xffl_status open_attr(hid_t obj, const char *what, const char *name, hid_t *a, H5T_class_t *cls, size_t *size)
{
    if (H5Aexists(obj, name) <= 0) return xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no attribute '%s'", what, name);
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    if (*a < 0) return xffl_fail(XFFL_ERR_CORRUPT, "%s: cannot open attribute '%s'", what, name);
    hid_t sp = H5Aget_space(*a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    hid_t t = H5Aget_type(*a);
    *cls = H5Tget_class(t);
    *size = H5Tget_size(t);
    H5Tclose(t);
    if (n != 1) {
        H5Aclose(*a);
        return xffl_fail(XFFL_ERR_INVALID, "%s: attribute '%s' is not a scalar", what, name);
    }
    return XFFL_OK;
}

xffl_status ckpt_h5_read_str_attr(hid_t obj, const char *what, const char *name, char **value)
{
    hid_t a;
    H5T_class_t cls;
    size_t size;
    XFFL_FORWARD(open_attr(obj, what, name, &a, &cls, &size));
    if (cls != H5T_STRING) {
        H5Aclose(a);
        return xffl_fail(XFFL_ERR_INVALID, "%s: attribute '%s' is not a string", what, name);
    }
    hid_t ft = H5Aget_type(a);
    int vlen = H5Tis_variable_str(ft) > 0;
    H5T_cset_t cset = H5Tget_cset(ft);
    H5Tclose(ft);
    xffl_status s = XFFL_OK;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, cset); /* HDF5 has no ASCII<->UTF-8 conversion path */
    if (vlen) {
        /* h5py writes variable-length strings; accept them for files it made. */
        H5Tset_size(mt, H5T_VARIABLE);
        char *v = NULL;
        if (H5Aread(a, mt, &v) < 0 || !v) s = xffl_fail(XFFL_ERR_CORRUPT, "%s: reading attribute '%s'", what, name);
        else {
            *value = strdup(v);
            H5free_memory(v);
        }
    } else {
        char *v = calloc(1, size + 1);
        H5Tset_size(mt, size + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        if (!v) s = xffl_fail(XFFL_ERR_NOMEM, "attribute %s", name);
        else if (H5Aread(a, mt, v) < 0) {
            free(v);
            s = xffl_fail(XFFL_ERR_CORRUPT, "%s: reading attribute '%s'", what, name);
        } else
            *value = v;
    }
    H5Tclose(mt);
    H5Aclose(a);
    if (s == XFFL_OK && !*value) s = xffl_fail(XFFL_ERR_NOMEM, "attribute %s", name);
    return s;
}

xffl_status ckpt_h5_get_attr_str(ckpt_h5_reader *r, const char *name, char **value)
{
    *value = NULL;
    return ckpt_h5_read_str_attr(r->file, r->path, name, value);
}

xffl_status ckpt_h5_get_attr_int(ckpt_h5_reader *r, const char *name, int64_t *value)
{
    hid_t a;
    H5T_class_t cls;
    size_t size;
    XFFL_FORWARD(open_attr(r->file, r->path, name, &a, &cls, &size));
    herr_t e = cls == H5T_INTEGER ? H5Aread(a, H5T_NATIVE_INT64, value) : -1;
    H5Aclose(a);
    XFFL_RETURN_IF(e < 0, XFFL_ERR_INVALID, "%s: attribute '%s' is not an integer", r->path, name);
    return XFFL_OK;
}

xffl_status ckpt_h5_get_attr_double(ckpt_h5_reader *r, const char *name, double *value)
{
    hid_t a;
    H5T_class_t cls;
    size_t size;
    XFFL_FORWARD(open_attr(r->file, r->path, name, &a, &cls, &size));
    herr_t e = (cls == H5T_FLOAT || cls == H5T_INTEGER) ? H5Aread(a, H5T_NATIVE_DOUBLE, value) : -1;
    H5Aclose(a);
    XFFL_RETURN_IF(e < 0, XFFL_ERR_INVALID, "%s: attribute '%s' is not a number", r->path, name);
    return XFFL_OK;
}

static int exists_path(hid_t file, const char *path)
{
    /* H5Lexists fails (not 0) when an intermediate group is missing: walk it. */
    char buf[512];
    if (strlen(path) >= sizeof buf) return 0;
    strcpy(buf, path);
    for (char *p = strchr(buf, '/');; p = strchr(p + 1, '/')) {
        if (p) *p = 0;
        if (buf[0] && H5Lexists(file, buf, H5P_DEFAULT) <= 0) return 0;
        if (!p) return 1;
        *p = '/';
    }
}

int ckpt_h5_has_dataset(ckpt_h5_reader *r, const char *path)
{
    if (!exists_path(r->file, path)) return 0;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(r->file, path, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return 0;
    return oi.type == H5O_TYPE_DATASET;
}

xffl_status ckpt_h5_get_dataset_attr_str(ckpt_h5_reader *r, const char *path, const char *name, char **value)
{
    *value = NULL;
    XFFL_RETURN_IF(!ckpt_h5_has_dataset(r, path), XFFL_ERR_NOT_FOUND, "%s: no dataset %s", r->path, path);
    hid_t ds = H5Dopen2(r->file, path, H5P_DEFAULT);
    XFFL_RETURN_IF(ds < 0, XFFL_ERR_CORRUPT, "%s: dataset %s: cannot open", r->path, path);
    char what[600];
    snprintf(what, sizeof what, "%s: dataset %s", r->path, path);
    xffl_status s = ckpt_h5_read_str_attr(ds, what, name, value);
    H5Dclose(ds);
    return s;
}

typedef struct {
    char **names;
    int count, cap;
    hid_t group;
    int oom;
} name_list;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    name_list *l = data;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET) return 0;
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **n = realloc(l->names, (size_t)cap * sizeof *n);
        if (!n) return l->oom = 1, -1;
        l->names = n;
        l->cap = cap;
    }
    if (!(l->names[l->count] = strdup(name))) return l->oom = 1, -1;
    l->count++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void ckpt_h5_names_free(char **names, int count)
{
    for (int i = 0; names && i < count; i++) free(names[i]);
    free(names);
}

xffl_status ckpt_h5_list(ckpt_h5_reader *r, const char *group, char ***names, int *count)
{
    *names = NULL;
    *count = 0;
    XFFL_RETURN_IF(!exists_path(r->file, group), XFFL_ERR_NOT_FOUND, "%s: no group /%s", r->path, group);
    hid_t g = H5Gopen2(r->file, group, H5P_DEFAULT);
    XFFL_RETURN_IF(g < 0, XFFL_ERR_CORRUPT, "%s: /%s is not a readable group", r->path, group);
    name_list l = {0};
    hsize_t idx = 0;
    herr_t e = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &l);
    H5Gclose(g);
    if (e < 0) {
        ckpt_h5_names_free(l.names, l.count);
        return xffl_fail(l.oom ? XFFL_ERR_NOMEM : XFFL_ERR_CORRUPT, "%s: listing group /%s", r->path, group);
    }
    if (l.count) qsort(l.names, (size_t)l.count, sizeof *l.names, cmp_str);
    *names = l.names;
    *count = l.count;
    return XFFL_OK;
}

xffl_status ckpt_h5_check_format(ckpt_h5_reader *r, const char *format, int64_t newest)
{
    const char *path = ckpt_h5_reader_path(r);
    char *fmt = NULL;
    xffl_status s = ckpt_h5_get_attr_str(r, "format", &fmt);
    if (s == XFFL_ERR_NOT_FOUND) return xffl_fail(XFFL_ERR_INVALID, "%s: no format attribute (not an xffl file)", path);
    XFFL_FORWARD(s);
    int same = strcmp(fmt, format) == 0;
    if (!same) xffl_fail(XFFL_ERR_INVALID, "%s: format attribute is \"%s\", expected \"%s\"", path, fmt, format);
    free(fmt);
    if (!same) return XFFL_ERR_INVALID;
    int64_t v = 0;
    s = ckpt_h5_get_attr_int(r, "format_version", &v);
    if (s == XFFL_ERR_NOT_FOUND) return xffl_fail(XFFL_ERR_INVALID, "%s: no format_version attribute", path);
    XFFL_FORWARD(s);
    XFFL_RETURN_IF(v < 1 || v > newest, XFFL_ERR_INVALID, "%s: format_version %lld, this xffl reads %s up to %lld", path,
                   (long long)v, format, (long long)newest);
    return XFFL_OK;
}
