/* Text manifests: canonical format and strict parse. See manifest.h. */
#include "libckpt/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

xffl_status ckpt_manifest_create(ckpt_manifest **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? XFFL_OK : xffl_fail(XFFL_ERR_NOMEM, "manifest");
}

void ckpt_manifest_free(ckpt_manifest *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_headers; i++) free(m->headers[i].key), free(m->headers[i].value);
    for (int i = 0; i < m->n_contributors; i++) free(m->contributors[i].facility), free(m->contributors[i].key);
    for (int i = 0; i < m->n_objects; i++) free(m->objects[i].name);
    for (int i = 0; i < m->n_tensors; i++) free(m->tensors[i].name);
    free(m->headers);
    free(m->contributors);
    free(m->objects);
    free(m->tensors);
    free(m);
}

static int valid_key(const char *k)
{
    if (!*k) return 0;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-')) return 0;
    return 1;
}

/* A name or key token: printable, no spaces, not empty. */
static int valid_token(const char *t)
{
    if (!*t) return 0;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p <= ' ' || *p == 0x7f) return 0;
    return 1;
}

static int valid_sha(const char *h) { return strlen(h) == 64 && strspn(h, "0123456789abcdef") == 64; }

/* Grows an array by one element; returns its new slot or NULL. */
static void *grow(void **arr, int *n, size_t el)
{
    void *p = realloc(*arr, (size_t)(*n + 1) * el);
    if (!p) return NULL;
    *arr = p;
    memset((char *)p + (size_t)*n * el, 0, el);
    return (char *)p + (size_t)(*n)++ * el;
}

xffl_status ckpt_manifest_set(ckpt_manifest *m, const char *key, const char *value)
{
    XFFL_RETURN_IF(!valid_key(key), XFFL_ERR_INVALID, "manifest header key '%s' (allowed: [a-z0-9_.-]+)", key);
    XFFL_RETURN_IF(strchr(value, '\n'), XFFL_ERR_INVALID, "manifest header %s: value holds a newline", key);
    char *v = strdup(value);
    XFFL_RETURN_IF(!v, XFFL_ERR_NOMEM, "manifest header %s", key);
    for (int i = 0; i < m->n_headers; i++)
        if (strcmp(m->headers[i].key, key) == 0) {
            free(m->headers[i].value);
            m->headers[i].value = v;
            return XFFL_OK;
        }
    char *k = strdup(key);
    ckpt_manifest_header *h = k ? grow((void **)&m->headers, &m->n_headers, sizeof *h) : NULL;
    if (!h) {
        free(k);
        free(v);
        return xffl_fail(XFFL_ERR_NOMEM, "manifest header %s", key);
    }
    h->key = k;
    h->value = v;
    return XFFL_OK;
}

xffl_status ckpt_manifest_setf(ckpt_manifest *m, const char *key, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    XFFL_RETURN_IF(n < 0 || (size_t)n >= sizeof buf, XFFL_ERR_INVALID, "manifest header %s: value too long", key);
    return ckpt_manifest_set(m, key, buf);
}

xffl_status ckpt_manifest_set_int(ckpt_manifest *m, const char *key, int64_t value)
{
    return ckpt_manifest_setf(m, key, "%" PRId64, value);
}

const char *ckpt_manifest_get(const ckpt_manifest *m, const char *key)
{
    for (int i = 0; i < m->n_headers; i++)
        if (strcmp(m->headers[i].key, key) == 0) return m->headers[i].value;
    return NULL;
}

xffl_status ckpt_manifest_require(const ckpt_manifest *m, const char *what, const char *key, const char **value)
{
    *value = ckpt_manifest_get(m, key);
    XFFL_RETURN_IF(!*value, XFFL_ERR_INVALID, "%s: no '%s=' line", what, key);
    return XFFL_OK;
}

int ckpt_manifest_int_parse(const char *text, int64_t *value)
{
    const char *p = text + (text[0] == '-');
    size_t n = strlen(p);
    /* digits only, no leading zero (but "0"), and never "-0": one spelling per value */
    if (n == 0 || n > 19 || strspn(p, "0123456789") != n || (p[0] == '0' && (n > 1 || p != text))) return 0;
    errno = 0;
    long long x = strtoll(text, NULL, 10);
    if (errno) return 0;
    *value = x;
    return 1;
}

xffl_status ckpt_manifest_require_int(const ckpt_manifest *m, const char *what, const char *key, int64_t *value)
{
    const char *v;
    XFFL_FORWARD(ckpt_manifest_require(m, what, key, &v));
    XFFL_RETURN_IF(!ckpt_manifest_int_parse(v, value), XFFL_ERR_INVALID, "%s: '%s=%s' is not an integer", what, key, v);
    return XFFL_OK;
}

xffl_status ckpt_manifest_add_contributor(ckpt_manifest *m, const char *facility, const char *key)
{
    XFFL_RETURN_IF(!valid_token(facility) || !valid_token(key), XFFL_ERR_INVALID,
                   "manifest contributor '%s' '%s': empty or holds spaces", facility, key);
    char *f = strdup(facility), *k = strdup(key);
    ckpt_manifest_contributor *c = f && k ? grow((void **)&m->contributors, &m->n_contributors, sizeof *c) : NULL;
    if (!c) {
        free(f);
        free(k);
        return xffl_fail(XFFL_ERR_NOMEM, "manifest contributor %s", facility);
    }
    c->facility = f;
    c->key = k;
    return XFFL_OK;
}

xffl_status ckpt_manifest_add_object(ckpt_manifest *m, const char *name, uint64_t bytes, const char *sha256_hex)
{
    XFFL_RETURN_IF(!valid_token(name), XFFL_ERR_INVALID, "manifest object name '%s': empty or holds spaces", name);
    XFFL_RETURN_IF(!valid_sha(sha256_hex), XFFL_ERR_INVALID, "manifest object %s: malformed sha256", name);
    char *n = strdup(name);
    ckpt_manifest_object *o = n ? grow((void **)&m->objects, &m->n_objects, sizeof *o) : NULL;
    if (!o) {
        free(n);
        return xffl_fail(XFFL_ERR_NOMEM, "manifest object %s", name);
    }
    o->name = n;
    o->bytes = bytes;
    memcpy(o->sha256, sha256_hex, XFFL_SHA256_HEX);
    return XFFL_OK;
}

xffl_status ckpt_manifest_add_tensor(ckpt_manifest *m, const char *name, ckpt_dtype dtype, int ndim,
                                     const int64_t *shape, const char *sha256_hex)
{
    XFFL_RETURN_IF(!valid_token(name), XFFL_ERR_INVALID, "manifest tensor name '%s': empty or holds spaces", name);
    XFFL_RETURN_IF(!valid_sha(sha256_hex), XFFL_ERR_INVALID, "manifest tensor %s: malformed sha256", name);
    XFFL_RETURN_IF(ndim < 1 || ndim > CKPT_MAX_DIMS, XFFL_ERR_INVALID, "manifest tensor %s: %d dimensions", name, ndim);
    for (int i = 0; i < ndim; i++)
        XFFL_RETURN_IF(shape[i] <= 0, XFFL_ERR_INVALID, "manifest tensor %s: extent %lld", name, (long long)shape[i]);
    XFFL_RETURN_IF((int)dtype < CKPT_DT_F32 || dtype > CKPT_DT_U32, XFFL_ERR_INVALID, "manifest tensor %s: dtype", name);
    char *n = strdup(name);
    ckpt_manifest_tensor *t = n ? grow((void **)&m->tensors, &m->n_tensors, sizeof *t) : NULL;
    if (!t) {
        free(n);
        return xffl_fail(XFFL_ERR_NOMEM, "manifest tensor %s", name);
    }
    t->name = n;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    memcpy(t->sha256, sha256_hex, XFFL_SHA256_HEX);
    return XFFL_OK;
}

int ckpt_manifest_find_tensor(const ckpt_manifest *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

int ckpt_manifest_find_object(const ckpt_manifest *m, const char *name)
{
    for (int i = 0; i < m->n_objects; i++)
        if (strcmp(m->objects[i].name, name) == 0) return i;
    return -1;
}

void ckpt_shape_format(int ndim, const int64_t *shape, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", i ? "x" : "", (long long)shape[i]);
}

xffl_status ckpt_shape_parse(const char *text, int *ndim, int64_t shape[CKPT_MAX_DIMS])
{
    const char *p = text;
    int n = 0;
    for (;;) {
        XFFL_RETURN_IF(n == CKPT_MAX_DIMS || *p < '1' || *p > '9', XFFL_ERR_INVALID, "shape '%s' (want e.g. 4096x11008)", text);
        int64_t v = 0;
        while (*p >= '0' && *p <= '9') {
            XFFL_RETURN_IF(v > (INT64_MAX - 9) / 10, XFFL_ERR_INVALID, "shape '%s': extent too large", text);
            v = v * 10 + (*p++ - '0');
        }
        shape[n++] = v;
        if (*p == 0) break;
        XFFL_RETURN_IF(*p != 'x', XFFL_ERR_INVALID, "shape '%s' (want e.g. 4096x11008)", text);
        p++;
    }
    *ndim = n;
    return XFFL_OK;
}

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        char *p = realloc(b->buf, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
}

xffl_status ckpt_manifest_format(const ckpt_manifest *m, char **text, size_t *len)
{
    sbuf b = {malloc(4096), 0, 4096, 0};
    if (!b.buf) return xffl_fail(XFFL_ERR_NOMEM, "manifest text");
    b.buf[0] = 0;
    for (int i = 0; i < m->n_headers; i++) sb_printf(&b, "%s=%s\n", m->headers[i].key, m->headers[i].value);
    for (int i = 0; i < m->n_contributors; i++)
        sb_printf(&b, "contributor %s %s\n", m->contributors[i].facility, m->contributors[i].key);
    for (int i = 0; i < m->n_objects; i++)
        sb_printf(&b, "object %s %" PRIu64 " %s\n", m->objects[i].name, m->objects[i].bytes, m->objects[i].sha256);
    for (int i = 0; i < m->n_tensors; i++) {
        char shape[128];
        ckpt_shape_format(m->tensors[i].ndim, m->tensors[i].shape, shape, sizeof shape);
        sb_printf(&b, "tensor %s %s %s %s\n", m->tensors[i].name, ckpt_dtype_name(m->tensors[i].dtype), shape,
                  m->tensors[i].sha256);
    }
    if (b.oom) {
        free(b.buf);
        return xffl_fail(XFFL_ERR_NOMEM, "manifest text");
    }
    *text = b.buf;
    if (len) *len = b.len;
    return XFFL_OK;
}

/* Splits line into exactly n space-separated fields (single spaces, none empty). */
static int split(char *line, char **f, int n)
{
    int k = 0;
    char *p = line;
    while (k < n) {
        f[k++] = p;
        if (k == n) break; /* the last field keeps any further spaces: refused below */
        char *sp = strchr(p, ' ');
        if (!sp) break;
        *sp = 0;
        p = sp + 1;
    }
    if (k != n) return 0;
    if (strchr(f[n - 1], ' ')) return 0;
    for (int i = 0; i < n; i++)
        if (!*f[i]) return 0;
    return 1;
}

static XFFL_MUST_USE xffl_status parse_line(ckpt_manifest *m, char *line, int *body)
{
    char *f[5];
    /* a repeated line would count twice (a part fetched twice, a facility's delta
     * weighted twice): every name appears once */
    if (strncmp(line, "contributor ", 12) == 0) {
        *body = 1;
        XFFL_RETURN_IF(!split(line, f, 3), XFFL_ERR_INVALID, "want 'contributor <facility> <key>'");
        for (int i = 0; i < m->n_contributors; i++)
            XFFL_RETURN_IF(!strcmp(m->contributors[i].facility, f[1]) || !strcmp(m->contributors[i].key, f[2]),
                           XFFL_ERR_INVALID, "contributor %s %s repeats an earlier contributor line", f[1], f[2]);
        return ckpt_manifest_add_contributor(m, f[1], f[2]);
    }
    if (strncmp(line, "object ", 7) == 0) {
        *body = 1;
        int64_t bytes;
        XFFL_RETURN_IF(!split(line, f, 4), XFFL_ERR_INVALID, "want 'object <name> <bytes> <sha256>'");
        XFFL_RETURN_IF(f[2][0] == '-' || !ckpt_manifest_int_parse(f[2], &bytes), XFFL_ERR_INVALID,
                       "object %s: byte count '%s'", f[1], f[2]);
        XFFL_RETURN_IF(ckpt_manifest_find_object(m, f[1]) >= 0, XFFL_ERR_INVALID, "object %s listed twice", f[1]);
        return ckpt_manifest_add_object(m, f[1], (uint64_t)bytes, f[3]);
    }
    if (strncmp(line, "tensor ", 7) == 0) {
        *body = 1;
        XFFL_RETURN_IF(!split(line, f, 5), XFFL_ERR_INVALID, "want 'tensor <name> <dtype> <shape> <sha256>'");
        ckpt_dtype d;
        int nd;
        int64_t shape[CKPT_MAX_DIMS];
        XFFL_FORWARD(ckpt_dtype_parse(f[2], &d));
        XFFL_FORWARD(ckpt_shape_parse(f[3], &nd, shape));
        XFFL_RETURN_IF(ckpt_manifest_find_tensor(m, f[1]) >= 0, XFFL_ERR_INVALID, "tensor %s listed twice", f[1]);
        return ckpt_manifest_add_tensor(m, f[1], d, nd, shape, f[4]);
    }
    char *eq = strchr(line, '=');
    XFFL_RETURN_IF(!eq, XFFL_ERR_INVALID, "neither 'key=value' nor a contributor/object/tensor line");
    XFFL_RETURN_IF(*body, XFFL_ERR_INVALID, "header line after contributor/object/tensor lines");
    *eq = 0;
    XFFL_RETURN_IF(ckpt_manifest_get(m, line), XFFL_ERR_INVALID, "header '%s' repeated", line);
    return ckpt_manifest_set(m, line, eq + 1);
}

xffl_status ckpt_manifest_parse(const char *text, size_t len, const char *what, ckpt_manifest **out)
{
    XFFL_RETURN_IF(len == 0, XFFL_ERR_INVALID, "%s: empty manifest", what);
    XFFL_RETURN_IF(text[len - 1] != '\n', XFFL_ERR_INVALID, "%s: last line has no newline (truncated?)", what);
    XFFL_RETURN_IF(memchr(text, 0, len), XFFL_ERR_INVALID, "%s: holds a NUL byte", what);
    ckpt_manifest *m;
    XFFL_FORWARD(ckpt_manifest_create(&m));
    char *copy = malloc(len + 1);
    if (!copy) {
        ckpt_manifest_free(m);
        return xffl_fail(XFFL_ERR_NOMEM, "%s", what);
    }
    memcpy(copy, text, len);
    copy[len] = 0;
    int lineno = 0, body = 0;
    xffl_status s = XFFL_OK;
    for (char *line = copy; *line;) {
        char *nl = strchr(line, '\n');
        *nl = 0;
        lineno++;
        s = parse_line(m, line, &body);
        if (s != XFFL_OK) {
            char msg[XFFL_ERRMSG_MAX];
            snprintf(msg, sizeof msg, "%s", xffl_errmsg());
            s = xffl_fail(s == XFFL_ERR_NOMEM ? s : XFFL_ERR_INVALID, "%s line %d: %s", what, lineno, msg);
            break;
        }
        line = nl + 1;
    }
    free(copy);
    if (s != XFFL_OK) {
        ckpt_manifest_free(m);
        return s;
    }
    *out = m;
    return XFFL_OK;
}

xffl_status ckpt_content_name(const char *stem, const char *sha256_hex, const char *ext, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s-%.*s%s", stem, CKPT_CONTENT_HEX, sha256_hex, ext ? ext : "");
    XFFL_RETURN_IF(n < 0 || (size_t)n >= cap, XFFL_ERR_INTERNAL, "content name for %s too long", stem);
    return XFFL_OK;
}

xffl_status ckpt_content_name_check(const char *name, const char *sha256_hex, const char *ext)
{
    size_t n = strlen(name), e = ext ? strlen(ext) : 0;
    int ok = n >= e + CKPT_CONTENT_HEX + 1 && (!e || strcmp(name + n - e, ext) == 0) &&
             name[n - e - CKPT_CONTENT_HEX - 1] == '-' &&
             strncmp(name + n - e - CKPT_CONTENT_HEX, sha256_hex, CKPT_CONTENT_HEX) == 0;
    XFFL_RETURN_IF(!ok, XFFL_ERR_CORRUPT, "%s: content does not match its name (sha256 %.12s...)", name, sha256_hex);
    return XFFL_OK;
}
