/* safetensors reader and writer (layout and rules in safetensors.h). */
#include "formats/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader copies it as is"
#endif

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {[FMT_ST_F32] = {"F32", 4}, [FMT_ST_F16] = {"F16", 2}, [FMT_ST_BF16] = {"BF16", 2}};

const char *fmt_st_dtype_name(fmt_st_dtype d) { return dtypes[d].name; }
size_t fmt_st_dtype_size(fmt_st_dtype d) { return dtypes[d].size; }

int fmt_st_dtype_parse(const char *name, fmt_st_dtype *d)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, name) == 0) {
            *d = (fmt_st_dtype)i;
            return 1;
        }
    return 0;
}

uint16_t fmt_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x40); /* keep it a (quiet) NaN */
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float fmt_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float fmt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, u;
    if (exp == 0x1F) {
        u = sign | 0x7F800000u | (man << 13); /* inf, NaN */
    } else if (exp) {
        u = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man) { /* subnormal: value man * 2^-24, exact in float */
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    } else {
        u = sign;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t fmt_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    if (isnan(f)) return sign | 0x7E00;
    float a = fabsf(f);
    if (a >= 65520.0f) return sign | 0x7C00; /* rounds to infinity */
    if (a < 6.103515625e-05f) {              /* subnormal half: a multiple of 2^-24 */
        float m = nearbyintf(ldexpf(a, 24)); /* default rounding: to nearest even */
        return sign | (uint16_t)m;
    }
    uint32_t exp = ((u >> 23) & 0xFF) - 112, man = u & 0x7FFFFF;
    uint32_t h = (exp << 10) | (man >> 13), rest = man & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* a carry into the exponent is right */
    return sign | (uint16_t)h;
}

static XFFL_MUST_USE xffl_status invalid_tensor(const char *what, const char *name, const char *why)
{
    return xffl_fail(XFFL_ERR_INVALID, "%s: tensor \"%s\": %s", what, name, why);
}

/* One header entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]}. */
static XFFL_MUST_USE xffl_status parse_entry(const xffl_json *e, const char *what, fmt_st_tensor *t)
{
    const char *name = e->key;
    if (e->type != XFFL_JSON_OBJECT) return invalid_tensor(what, name, "entry is not an object");
    const xffl_json *dt = xffl_json_get(e, "dtype"), *sh = xffl_json_get(e, "shape"),
                    *off = xffl_json_get(e, "data_offsets");
    if (!dt || dt->type != XFFL_JSON_STRING) return invalid_tensor(what, name, "dtype missing or not a string");
    if (!sh || sh->type != XFFL_JSON_ARRAY) return invalid_tensor(what, name, "shape missing or not an array");
    if (!off || off->type != XFFL_JSON_ARRAY || off->count != 2)
        return invalid_tensor(what, name, "data_offsets missing or not [begin, end]");
    if (e->count != 3) return invalid_tensor(what, name, "fields other than dtype, shape and data_offsets");
    if (!fmt_st_dtype_parse(dt->str, &t->dtype))
        return xffl_fail(XFFL_ERR_INVALID, "%s: tensor \"%s\": dtype %s (F32, F16 and BF16 are read)", what, name,
                         dt->str);
    if (sh->count > FMT_ST_MAX_DIMS)
        return xffl_fail(XFFL_ERR_INVALID, "%s: tensor \"%s\": %d dimensions (at most %d)", what, name, sh->count,
                         FMT_ST_MAX_DIMS);
    t->ndim = sh->count;
    uint64_t numel = 1;
    int i = 0;
    for (const xffl_json *d = sh->child; d; d = d->next, i++) {
        int64_t v;
        if (!xffl_json_int(d, &v) || v < 0) return invalid_tensor(what, name, "shape holds a non-integer or negative");
        t->shape[i] = v;
        if (__builtin_mul_overflow(numel, (uint64_t)v, &numel) || numel > ((uint64_t)1 << 60))
            return invalid_tensor(what, name, "shape too large");
    }
    t->numel = (int64_t)numel;
    int64_t b, en;
    if (!xffl_json_int(off->child, &b) || !xffl_json_int(off->child->next, &en) || b < 0 || en < 0)
        return invalid_tensor(what, name, "data_offsets are not non-negative integers");
    if (en < b)
        return xffl_fail(XFFL_ERR_INVALID, "%s: tensor \"%s\": data_offsets [%lld, %lld] end before they begin", what,
                         name, (long long)b, (long long)en);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)en;
    uint64_t want = numel * dtypes[t->dtype].size;
    if (t->end - t->begin != want)
        return xffl_fail(XFFL_ERR_INVALID,
                         "%s: tensor \"%s\": data_offsets [%lld, %lld] hold %llu bytes, but shape and dtype %s need %llu",
                         what, name, (long long)b, (long long)en, (unsigned long long)(t->end - t->begin),
                         dt->str, (unsigned long long)want);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status check_metadata(const xffl_json *m, const char *what)
{
    if (m->type != XFFL_JSON_OBJECT) return xffl_fail(XFFL_ERR_INVALID, "%s: __metadata__ is not an object", what);
    for (const xffl_json *c = m->child; c; c = c->next)
        if (c->type != XFFL_JSON_STRING)
            return xffl_fail(XFFL_ERR_INVALID, "%s: __metadata__ field \"%s\" is not a string", what, c->key);
    return XFFL_OK;
}

static int by_offset(const void *a, const void *b)
{
    const fmt_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The tensors must tile [0, data_len) exactly: a gap hides bytes, an overlap aliases two
 * tensors, and trailing bytes mean the header does not describe the file. */
static XFFL_MUST_USE xffl_status check_tiling(const fmt_st_file *f, uint64_t data_len, const char *what)
{
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        const fmt_st_tensor *t = &f->tensors[i];
        if (t->end > data_len)
            return xffl_fail(XFFL_ERR_INVALID,
                             "%s: tensor \"%s\": data_offsets end at %llu, past the %llu data bytes in the file", what,
                             t->name, (unsigned long long)t->end, (unsigned long long)data_len);
        if (t->begin != at)
            return xffl_fail(XFFL_ERR_INVALID, "%s: tensor \"%s\": data_offsets begin at %llu, but the data %s at %llu",
                             what, t->name, (unsigned long long)t->begin, t->begin < at ? "overlaps the previous tensor, ending" : "has a gap, the previous tensor ending",
                             (unsigned long long)at);
        at = t->end;
    }
    if (at != data_len)
        return xffl_fail(XFFL_ERR_INVALID, "%s: the tensors end at data byte %llu, but the file holds %llu", what,
                         (unsigned long long)at, (unsigned long long)data_len);
    return XFFL_OK;
}

xffl_status fmt_st_parse(const void *bytes, size_t n, uint64_t file_size, const char *what, fmt_st_file **out)
{
    *out = NULL;
    const unsigned char *b = bytes;
    if (n < 8 || file_size < 8)
        return xffl_fail(XFFL_ERR_INVALID, "%s: %llu bytes, shorter than the 8-byte header length", what,
                         (unsigned long long)file_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > FMT_ST_MAX_HEADER || hlen > file_size - 8)
        return xffl_fail(XFFL_ERR_INVALID, "%s: header length %llu exceeds the file (%llu bytes) or the %d-byte limit",
                         what, (unsigned long long)hlen, (unsigned long long)file_size, FMT_ST_MAX_HEADER);
    if (n < 8 + hlen) return xffl_fail(XFFL_ERR_INVALID, "%s: header truncated", what);
    if (hlen == 0 || b[8] != '{') return xffl_fail(XFFL_ERR_INVALID, "%s: header does not start with '{'", what);
    xffl_json_doc *doc;
    XFFL_FORWARD(xffl_json_parse((const char *)b + 8, (size_t)hlen, what, &doc));
    const xffl_json *root = xffl_json_root(doc);
    fmt_st_file *f = calloc(1, sizeof *f);
    xffl_status st = XFFL_OK;
    if (!f || !(f->path = strdup(what)) || !(f->tensors = calloc((size_t)root->count + 1, sizeof *f->tensors))) {
        st = xffl_fail(XFFL_ERR_NOMEM, "%s: header of %d entries", what, root->count);
        goto out;
    }
    f->fd = -1;
    f->data_start = 8 + hlen;
    for (const xffl_json *e = root->child; e && st == XFFL_OK; e = e->next) {
        if (strcmp(e->key, "__metadata__") == 0) {
            st = check_metadata(e, what);
            continue;
        }
        fmt_st_tensor *t = &f->tensors[f->n];
        st = parse_entry(e, what, t);
        if (st == XFFL_OK && !(t->name = strdup(e->key))) st = xffl_fail(XFFL_ERR_NOMEM, "%s: names", what);
        if (st == XFFL_OK) f->n++;
    }
    if (st == XFFL_OK) {
        qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, by_offset);
        st = check_tiling(f, file_size - f->data_start, what);
    }
out:
    xffl_json_free(doc);
    if (st != XFFL_OK) {
        fmt_st_close(f);
        return st;
    }
    *out = f;
    return XFFL_OK;
}

xffl_status fmt_st_open(const char *path, fmt_st_file **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return xffl_fail(errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    unsigned char len8[8];
    xffl_status st = XFFL_OK;
    unsigned char *buf = NULL;
    if (fstat(fd, &sb) != 0) {
        st = xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size, hlen = 0;
    if (size < 8 || pread(fd, len8, 8, 0) != 8) {
        st = xffl_fail(XFFL_ERR_INVALID, "%s: %llu bytes, shorter than the 8-byte header length", path,
                       (unsigned long long)size);
        goto out;
    }
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    size_t want = 8 + (hlen > FMT_ST_MAX_HEADER || hlen > size - 8 ? 0 : (size_t)hlen);
    if (!(buf = malloc(want))) {
        st = xffl_fail(XFFL_ERR_NOMEM, "%s: header of %zu bytes", path, want);
        goto out;
    }
    if (pread(fd, buf, want, 0) != (ssize_t)want) {
        st = xffl_fail(XFFL_ERR_IO, "%s: reading the header: %s", path, strerror(errno));
        goto out;
    }
    /* a header length beyond the file is reported by fmt_st_parse, which sees the size */
    XFFL_CHECK_GOTO(st, fmt_st_parse(buf, want, size, path, out), out);
    (*out)->fd = fd;
    fd = -1;
out:
    free(buf);
    if (fd >= 0) close(fd);
    return st;
}

void fmt_st_close(fmt_st_file *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    free(f);
}

const fmt_st_tensor *fmt_st_find(const fmt_st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

static XFFL_MUST_USE xffl_status read_at(const fmt_st_file *f, const fmt_st_tensor *t, void *dst, size_t bytes, uint64_t at)
{
    char *p = dst;
    while (bytes) {
        ssize_t r = pread(f->fd, p, bytes, (off_t)at);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return xffl_fail(XFFL_ERR_IO, "%s: tensor \"%s\": %s", f->path, t->name, strerror(errno));
        if (r == 0)
            return xffl_fail(XFFL_ERR_INVALID, "%s: tensor \"%s\": file ends at byte %llu (shrunk while read?)",
                             f->path, t->name, (unsigned long long)at);
        p += r;
        at += (uint64_t)r;
        bytes -= (size_t)r;
    }
    return XFFL_OK;
}

enum { HALF_CHUNK = 1 << 16 };

xffl_status fmt_st_read_range(const fmt_st_file *f, const fmt_st_tensor *t, int64_t first, int64_t count, float *out)
{
    XFFL_RETURN_IF(f->fd < 0, XFFL_ERR_INTERNAL, "%s: header only, no data to read", f->path);
    XFFL_RETURN_IF(first < 0 || count < 0 || first + count > t->numel, XFFL_ERR_INTERNAL,
                   "%s: tensor \"%s\": elements [%lld, +%lld) outside its %lld", f->path, t->name, (long long)first,
                   (long long)count, (long long)t->numel);
    size_t es = dtypes[t->dtype].size;
    uint64_t at = f->data_start + t->begin + (uint64_t)first * es;
    if (t->dtype == FMT_ST_F32) return read_at(f, t, out, (size_t)count * 4, at);
    uint16_t buf[HALF_CHUNK];
    for (int64_t i = 0; i < count; i += HALF_CHUNK) {
        size_t k = (size_t)(count - i < HALF_CHUNK ? count - i : HALF_CHUNK);
        XFFL_FORWARD(read_at(f, t, buf, k * 2, at + (uint64_t)i * 2));
        for (size_t j = 0; j < k; j++)
            out[i + (int64_t)j] = t->dtype == FMT_ST_BF16 ? fmt_bf16_to_f32(buf[j]) : fmt_f16_to_f32(buf[j]);
    }
    return XFFL_OK;
}

xffl_status fmt_st_read(const fmt_st_file *f, const fmt_st_tensor *t, float *out)
{
    return fmt_st_read_range(f, t, 0, t->numel, out);
}

uint64_t fmt_st_spec_bytes(const fmt_st_spec *s)
{
    uint64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= (uint64_t)s->shape[d];
    return n * dtypes[s->dtype].size;
}

/* The JSON header, padded with spaces to a multiple of 8 so the data is aligned. */
static XFFL_MUST_USE xffl_status build_header(const fmt_st_spec *specs, int n, char **out, size_t *len)
{
    size_t cap = 64 + (size_t)n * 64, used = 0;
    for (int i = 0; i < n; i++) cap += 2 * strlen(specs[i].name) + 24 * (size_t)specs[i].ndim;
    char *h = malloc(cap + 8);
    if (!h) return xffl_fail(XFFL_ERR_NOMEM, "safetensors header");
    used += (size_t)sprintf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        const fmt_st_spec *s = &specs[i];
        used += (size_t)sprintf(h + used, ",\"");
        for (const char *c = s->name; *c; c++) { /* our names are identifiers; escape anyway */
            if (*c == '"' || *c == '\\') h[used++] = '\\';
            h[used++] = *c;
        }
        used += (size_t)sprintf(h + used, "\":{\"dtype\":\"%s\",\"shape\":[", dtypes[s->dtype].name);
        for (int d = 0; d < s->ndim; d++) used += (size_t)sprintf(h + used, "%s%lld", d ? "," : "", (long long)s->shape[d]);
        uint64_t bytes = fmt_st_spec_bytes(s);
        used += (size_t)sprintf(h + used, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
                                (unsigned long long)(at + bytes));
        at += bytes;
    }
    h[used++] = '}';
    while (used % 8) h[used++] = ' ';
    *out = h;
    *len = used;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status put(FILE *f, const void *p, size_t n, const char *path)
{
    if (fwrite(p, 1, n, f) != n) return xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    return XFFL_OK;
}

xffl_status fmt_st_write(const char *path, const fmt_st_spec *specs, int n, fmt_st_fill_fn fill, void *ctx)
{
    char *hdr = NULL, tmp[4200];
    size_t hlen = 0;
    int64_t maxn = 1;
    for (int i = 0; i < n; i++) {
        XFFL_RETURN_IF(specs[i].ndim > FMT_ST_MAX_DIMS, XFFL_ERR_INTERNAL, "%s: tensor %s: %d dims", path, specs[i].name,
                       specs[i].ndim);
        int64_t k = (int64_t)(fmt_st_spec_bytes(&specs[i]) / dtypes[specs[i].dtype].size);
        if (k > maxn) maxn = k;
    }
    XFFL_FORWARD(build_header(specs, n, &hdr, &hlen));
    float *buf = malloc((size_t)maxn * sizeof *buf);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = buf ? fopen(tmp, "wb") : NULL;
    xffl_status st = XFFL_OK;
    if (!buf) st = xffl_fail(XFFL_ERR_NOMEM, "%s: a tensor of %lld floats", path, (long long)maxn);
    else if (!f) st = xffl_fail(XFFL_ERR_IO, "%s: %s", tmp, strerror(errno));
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    if (st == XFFL_OK) st = put(f, len8, 8, path);
    if (st == XFFL_OK) st = put(f, hdr, hlen, path);
    for (int i = 0; i < n && st == XFFL_OK; i++) {
        uint64_t bytes = fmt_st_spec_bytes(&specs[i]);
        size_t k = (size_t)(bytes / dtypes[specs[i].dtype].size);
        st = fill(ctx, i, buf);
        if (st != XFFL_OK) break;
        if (specs[i].dtype != FMT_ST_F32) /* in place: element j's 2 bytes land at or before float j */
            for (size_t j = 0; j < k; j++) {
                uint16_t h = specs[i].dtype == FMT_ST_BF16 ? fmt_f32_to_bf16(buf[j]) : fmt_f32_to_f16(buf[j]);
                memcpy((char *)buf + 2 * j, &h, 2);
            }
        st = put(f, buf, (size_t)bytes, path);
    }
    if (f) {
        if (st == XFFL_OK && fflush(f) != 0) st = xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
        if (st == XFFL_OK && fsync(fileno(f)) != 0) st = xffl_fail(XFFL_ERR_IO, "%s: fsync: %s", path, strerror(errno));
        if (fclose(f) != 0 && st == XFFL_OK) st = xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
        if (st == XFFL_OK && rename(tmp, path) != 0) st = xffl_fail(XFFL_ERR_IO, "%s: rename: %s", path, strerror(errno));
        if (st != XFFL_OK) unlink(tmp);
    }
    free(buf);
    free(hdr);
    return st;
}
