/* See s3xml.h. */
#include "storage/s3xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEPTH 32
#define MAX_PATH 512

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == ':' || (unsigned char)c >= 0x80;
}

/* Appends the UTF-8 encoding of code point cp; 0 if invalid. */
static int put_utf8(char *o, size_t *n, unsigned long cp)
{
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    if (cp < 0x80) o[(*n)++] = (char)cp;
    else if (cp < 0x800) o[(*n)++] = (char)(0xC0 | cp >> 6), o[(*n)++] = (char)(0x80 | (cp & 63));
    else if (cp < 0x10000)
        o[(*n)++] = (char)(0xE0 | cp >> 12), o[(*n)++] = (char)(0x80 | ((cp >> 6) & 63)), o[(*n)++] = (char)(0x80 | (cp & 63));
    else
        o[(*n)++] = (char)(0xF0 | cp >> 18), o[(*n)++] = (char)(0x80 | ((cp >> 12) & 63)),
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 63)), o[(*n)++] = (char)(0x80 | (cp & 63));
    return 1;
}

xffl_status s3xml_parse(const char *x, size_t len, s3xml_end_fn fn, void *ud)
{
    char path[MAX_PATH + 1];
    size_t plen = 0, starts[MAX_DEPTH];
    int depth = 0, roots = 0;
    /* the text of the innermost open element; decoded text is never longer than the input */
    char *text = malloc(len + 1);
    size_t tlen = 0;
    XFFL_RETURN_IF(!text, XFFL_ERR_NOMEM, "parsing %zu bytes of XML", len);
    xffl_status st = XFFL_OK;
    size_t i = 0;
#define BAD(...) do { st = xffl_fail(XFFL_ERR_INVALID, __VA_ARGS__); goto out; } while (0)
    while (i < len) {
        char c = x[i];
        if (c != '<') {
            if (c == '&') {
                size_t e = i + 1;
                while (e < len && e - i < 12 && x[e] != ';') e++;
                if (e >= len || x[e] != ';') BAD("malformed XML: bad entity at byte %zu", i);
                const char *ent = x + i + 1;
                size_t el = e - i - 1;
                if (el == 3 && !memcmp(ent, "amp", 3)) text[tlen++] = '&';
                else if (el == 2 && !memcmp(ent, "lt", 2)) text[tlen++] = '<';
                else if (el == 2 && !memcmp(ent, "gt", 2)) text[tlen++] = '>';
                else if (el == 4 && !memcmp(ent, "quot", 4)) text[tlen++] = '"';
                else if (el == 4 && !memcmp(ent, "apos", 4)) text[tlen++] = '\'';
                else if (el >= 2 && ent[0] == '#') {
                    int hex = ent[1] == 'x';
                    unsigned long cp = 0;
                    size_t k = hex ? 2 : 1;
                    if (k >= el) BAD("malformed XML: bad character reference at byte %zu", i);
                    for (; k < el; k++) {
                        char d = ent[k];
                        int v = d >= '0' && d <= '9' ? d - '0'
                              : hex && d >= 'a' && d <= 'f' ? d - 'a' + 10
                              : hex && d >= 'A' && d <= 'F' ? d - 'A' + 10 : -1;
                        if (v < 0) BAD("malformed XML: bad character reference at byte %zu", i);
                        cp = cp * (hex ? 16 : 10) + (unsigned long)v;
                    }
                    /* "&#N;" is at least 4 bytes, its UTF-8 at most 4: fits where it stood */
                    if (!put_utf8(text, &tlen, cp)) BAD("malformed XML: bad character reference at byte %zu", i);
                } else BAD("malformed XML: unknown entity at byte %zu", i);
                i = e + 1;
            } else {
                text[tlen++] = c;
                i++;
            }
            continue;
        }
        if (i + 1 >= len) BAD("malformed XML: cut at byte %zu", i);
        if (x[i + 1] == '?' || (x[i + 1] == '!' && !(len - i >= 9 && !memcmp(x + i, "<![CDATA[", 9)))) {
            const char *end_mark = x[i + 1] == '?' ? "?>" : (len - i >= 4 && !memcmp(x + i, "<!--", 4)) ? "-->" : ">";
            size_t ml = strlen(end_mark), k = i + 2;
            while (k + ml <= len && memcmp(x + k, end_mark, ml)) k++;
            if (k + ml > len) BAD("malformed XML: unterminated declaration at byte %zu", i);
            i = k + ml;
            continue;
        }
        if (x[i + 1] == '!') { /* CDATA */
            size_t k = i + 9;
            while (k + 3 <= len && memcmp(x + k, "]]>", 3)) k++;
            if (k + 3 > len) BAD("malformed XML: unterminated CDATA at byte %zu", i);
            if (depth == 0) BAD("malformed XML: CDATA outside the root at byte %zu", i);
            memcpy(text + tlen, x + i + 9, k - i - 9);
            tlen += k - i - 9;
            i = k + 3;
            continue;
        }
        int closing = x[i + 1] == '/';
        size_t n0 = i + 1 + (size_t)closing, n1 = n0;
        while (n1 < len && name_char(x[n1])) n1++;
        if (n1 == n0) BAD("malformed XML: bad tag at byte %zu", i);
        size_t k = n1;
        /* attributes: skipped, quoted values may hold '>' */
        char q = 0;
        while (k < len && (q || x[k] != '>')) {
            if (q && x[k] == q) q = 0;
            else if (!q && (x[k] == '"' || x[k] == '\'')) q = x[k];
            k++;
        }
        if (k >= len) BAD("malformed XML: unterminated tag at byte %zu", i);
        int self = !closing && x[k - 1] == '/';
        size_t nl = n1 - n0;
        if (closing) {
            if (depth == 0) BAD("malformed XML: closing tag without an open one at byte %zu", i);
            size_t s = starts[depth - 1];
            size_t ol = plen - s - (depth > 1 ? 1 : 0);
            if (ol != nl || memcmp(path + plen - ol, x + n0, nl)) BAD("malformed XML: mismatched closing tag at byte %zu", i);
            text[tlen] = 0;
            fn(ud, path, text, tlen);
            tlen = 0;
            plen = s;
            path[plen] = 0;
            depth--;
        } else {
            if (depth == 0 && roots++) BAD("malformed XML: second root element at byte %zu", i);
            if (depth == MAX_DEPTH || plen + 1 + nl > MAX_PATH) BAD("malformed XML: nested too deep at byte %zu", i);
            starts[depth++] = plen;
            if (depth > 1) path[plen++] = '/';
            memcpy(path + plen, x + n0, nl);
            plen += nl;
            path[plen] = 0;
            tlen = 0;
            if (self) {
                text[0] = 0;
                fn(ud, path, text, 0);
                plen = starts[--depth];
                path[plen] = 0;
            }
        }
        i = k + 1;
    }
    if (depth || !roots) BAD("malformed XML: %s", roots ? "cut before the root element closed" : "no element");
out:
#undef BAD
    free(text);
    return st;
}

int64_t s3xml_time(const char *s)
{
    struct tm tm = {0};
    int frac_end = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &frac_end) != 6)
        return -1;
    const char *p = s + frac_end;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (strcmp(p, "Z") && strcmp(p, "+00:00")) return -1;
    if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static void copy_text(char *dst, size_t cap, const char *t, size_t len)
{
    if (!cap) return;
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(dst, t, n);
    dst[n] = 0;
}

static char *dup_text(const char *t, size_t len)
{
    char *d = malloc(len + 1);
    if (d) memcpy(d, t, len), d[len] = 0;
    return d;
}

/* ---- root and Error ----------------------------------------------------------------- */

struct root_ctx {
    char *root;
    size_t cap;
};

static void on_root(void *ud, const char *path, const char *t, size_t l)
{
    (void)t, (void)l;
    struct root_ctx *r = ud;
    if (!strchr(path, '/')) copy_text(r->root, r->cap, path, strlen(path));
}

void s3xml_root(const char *xml, size_t len, char *root, size_t cap)
{
    if (cap) root[0] = 0;
    struct root_ctx r = {root, cap};
    if (s3xml_parse(xml, len, on_root, &r) != XFFL_OK && cap) root[0] = 0;
}

struct err_ctx {
    char *code, *msg;
    size_t ccap, mcap;
    int is_error;
};

static void on_error(void *ud, const char *path, const char *t, size_t l)
{
    struct err_ctx *e = ud;
    if (!strcmp(path, "Error")) e->is_error = 1;
    else if (!strcmp(path, "Error/Code")) copy_text(e->code, e->ccap, t, l);
    else if (!strcmp(path, "Error/Message")) copy_text(e->msg, e->mcap, t, l);
}

int s3xml_error(const char *xml, size_t len, char *code, size_t code_cap, char *message, size_t msg_cap)
{
    if (code_cap) code[0] = 0;
    if (msg_cap) message[0] = 0;
    struct err_ctx e = {code, message, code_cap, msg_cap, 0};
    if (s3xml_parse(xml, len, on_error, &e) != XFFL_OK) return 0;
    return e.is_error;
}

/* ---- ListObjectsV2 -------------------------------------------------------------------- */

struct list_ctx {
    s3xml_object_fn fn;
    void *ud;
    char *key;
    uint64_t size;
    int64_t mtime;
    int have_size, is_list, truncated;
    char *next;
    xffl_status st;
};

static int parse_u64(const char *t, uint64_t *v)
{
    if (!*t || strlen(t) > 19 || strspn(t, "0123456789") != strlen(t)) return 0;
    *v = strtoull(t, NULL, 10);
    return 1;
}

static void on_list(void *ud, const char *path, const char *t, size_t l)
{
    struct list_ctx *c = ud;
    if (c->st != XFFL_OK) return;
    if (!strcmp(path, "ListBucketResult")) c->is_list = 1;
    else if (!strcmp(path, "ListBucketResult/IsTruncated")) c->truncated = !strcmp(t, "true");
    else if (!strcmp(path, "ListBucketResult/NextContinuationToken")) {
        free(c->next);
        c->next = dup_text(t, l);
        if (!c->next) c->st = xffl_fail(XFFL_ERR_NOMEM, "listing");
    } else if (!strcmp(path, "ListBucketResult/Contents/Key")) {
        free(c->key);
        c->key = dup_text(t, l);
        if (!c->key) c->st = xffl_fail(XFFL_ERR_NOMEM, "listing");
        else if (strlen(c->key) != l) c->st = xffl_fail(XFFL_ERR_INVALID, "listing: key with a NUL byte");
    } else if (!strcmp(path, "ListBucketResult/Contents/Size")) {
        c->have_size = parse_u64(t, &c->size);
        if (!c->have_size) c->st = xffl_fail(XFFL_ERR_INVALID, "listing: bad Size '%.40s'", t);
    } else if (!strcmp(path, "ListBucketResult/Contents/LastModified")) {
        c->mtime = s3xml_time(t);
    } else if (!strcmp(path, "ListBucketResult/Contents")) {
        if (!c->key || !c->have_size) c->st = xffl_fail(XFFL_ERR_INVALID, "listing: an entry without Key or Size");
        else c->st = c->fn(c->ud, c->key, c->size, c->mtime < 0 ? 0 : c->mtime);
        free(c->key);
        c->key = NULL;
        c->have_size = 0;
        c->mtime = 0;
    }
}

xffl_status s3xml_list_objects(const char *xml, size_t len, s3xml_object_fn fn, void *ud, int *truncated, char **next)
{
    struct list_ctx c = {.fn = fn, .ud = ud, .st = XFFL_OK};
    *truncated = 0;
    *next = NULL;
    xffl_status st = s3xml_parse(xml, len, on_list, &c);
    if (st == XFFL_OK) st = c.st;
    if (st == XFFL_OK && !c.is_list) st = xffl_fail(XFFL_ERR_INVALID, "listing: the answer is not a ListBucketResult");
    if (st == XFFL_OK && c.truncated && !c.next)
        st = xffl_fail(XFFL_ERR_INVALID, "listing: truncated without NextContinuationToken");
    free(c.key);
    if (st != XFFL_OK) {
        free(c.next);
        return st;
    }
    *truncated = c.truncated;
    *next = c.next;
    return XFFL_OK;
}

/* ---- multipart ------------------------------------------------------------------------ */

struct id_ctx {
    char *id;
    int oom;
};

static void on_initiate(void *ud, const char *path, const char *t, size_t l)
{
    struct id_ctx *c = ud;
    if (strcmp(path, "InitiateMultipartUploadResult/UploadId")) return;
    free(c->id);
    c->id = dup_text(t, l);
    c->oom |= !c->id;
}

xffl_status s3xml_upload_id(const char *xml, size_t len, char **upload_id)
{
    struct id_ctx c = {0};
    *upload_id = NULL;
    xffl_status st = s3xml_parse(xml, len, on_initiate, &c);
    if (st == XFFL_OK && c.oom) st = xffl_fail(XFFL_ERR_NOMEM, "multipart upload id");
    if (st == XFFL_OK && (!c.id || !*c.id || strlen(c.id) > 1024))
        st = xffl_fail(XFFL_ERR_INVALID, "multipart initiate: no UploadId in the answer");
    if (st != XFFL_OK) {
        free(c.id);
        return st;
    }
    *upload_id = c.id;
    return XFFL_OK;
}

struct uploads_ctx {
    s3xml_upload_fn fn;
    void *ud;
    char *key, *id, *next_key, *next_upload;
    int64_t initiated;
    int truncated, is_list;
    xffl_status st;
};

static void set_text(struct uploads_ctx *c, char **dst, const char *t, size_t l)
{
    free(*dst);
    *dst = dup_text(t, l);
    if (!*dst) c->st = xffl_fail(XFFL_ERR_NOMEM, "listing uploads");
}

static void on_uploads(void *ud, const char *path, const char *t, size_t l)
{
    struct uploads_ctx *c = ud;
    static const char R[] = "ListMultipartUploadsResult";
    if (c->st != XFFL_OK || strncmp(path, R, sizeof R - 1)) return;
    const char *p = path + sizeof R - 1;
    if (!*p) c->is_list = 1;
    else if (!strcmp(p, "/IsTruncated")) c->truncated = !strcmp(t, "true");
    else if (!strcmp(p, "/NextKeyMarker")) set_text(c, &c->next_key, t, l);
    else if (!strcmp(p, "/NextUploadIdMarker")) set_text(c, &c->next_upload, t, l);
    else if (!strcmp(p, "/Upload/Key")) set_text(c, &c->key, t, l);
    else if (!strcmp(p, "/Upload/UploadId")) set_text(c, &c->id, t, l);
    else if (!strcmp(p, "/Upload/Initiated")) c->initiated = s3xml_time(t);
    else if (!strcmp(p, "/Upload")) {
        if (!c->key || !c->id) c->st = xffl_fail(XFFL_ERR_INVALID, "listing uploads: an Upload without Key or UploadId");
        else c->st = c->fn(c->ud, c->key, c->id, c->initiated < 0 ? 0 : c->initiated);
        free(c->key);
        free(c->id);
        c->key = c->id = NULL;
        c->initiated = 0;
    }
}

xffl_status s3xml_list_uploads(const char *xml, size_t len, s3xml_upload_fn fn, void *ud, int *truncated,
                               char **next_key, char **next_upload)
{
    struct uploads_ctx c = {.fn = fn, .ud = ud, .st = XFFL_OK};
    *truncated = 0;
    *next_key = *next_upload = NULL;
    xffl_status st = s3xml_parse(xml, len, on_uploads, &c);
    if (st == XFFL_OK) st = c.st;
    if (st == XFFL_OK && !c.is_list)
        st = xffl_fail(XFFL_ERR_INVALID, "listing uploads: the answer is not a ListMultipartUploadsResult");
    if (st == XFFL_OK && c.truncated && !c.next_key)
        st = xffl_fail(XFFL_ERR_INVALID, "listing uploads: truncated without NextKeyMarker");
    free(c.key);
    free(c.id);
    if (st != XFFL_OK) {
        free(c.next_key);
        free(c.next_upload);
        return st;
    }
    *truncated = c.truncated;
    *next_key = c.next_key;
    *next_upload = c.next_upload;
    return XFFL_OK;
}
