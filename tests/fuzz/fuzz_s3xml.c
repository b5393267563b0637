/* libFuzzer target: the S3 XML answers the V4 backend reads from the network
 * (storage/s3xml.c: listings, errors, multipart initiate and upload listings). Checked
 * beyond "no crash": every key handed out is NUL-free and as long as the parser says,
 * a listing that says "truncated" names where to go on, and the generic parser agrees
 * with the specific ones about whether the document is well-formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3xml.h"

static XFFL_MUST_USE xffl_status on_obj(void *ud, const char *key, uint64_t size, int64_t mtime)
{
    (void)size, (void)mtime;
    size_t *n = ud;
    if (!key) abort();
    (*n)++;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status on_up(void *ud, const char *key, const char *id, int64_t t)
{
    (void)t;
    size_t *n = ud;
    if (!key || !id) abort();
    (*n)++;
    return XFFL_OK;
}

static void on_end(void *ud, const char *path, const char *text, size_t len)
{
    (void)ud;
    if (!path || !*path || strlen(text) > len) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *x = (const char *)data;
    int ok = s3xml_parse(x, size, on_end, NULL) == XFFL_OK;
    size_t n = 0;
    int truncated = 0;
    char *next = NULL, *nk = NULL, *ni = NULL, *id = NULL;
    if (s3xml_list_objects(x, size, on_obj, &n, &truncated, &next) == XFFL_OK) {
        if (!ok || (truncated && !next)) abort();
    }
    free(next);
    if (s3xml_list_uploads(x, size, on_up, &n, &truncated, &nk, &ni) == XFFL_OK) {
        if (!ok || (truncated && !nk)) abort();
    }
    free(nk);
    free(ni);
    if (s3xml_upload_id(x, size, &id) == XFFL_OK) {
        if (!ok || !id || !*id) abort();
    }
    free(id);
    char code[64], msg[128], root[64];
    if (s3xml_error(x, size, code, sizeof code, msg, sizeof msg) && !ok) abort();
    s3xml_root(x, size, root, sizeof root);
    if (root[0] && !ok) abort();
    char t[64];
    size_t tl = size < sizeof t - 1 ? size : sizeof t - 1;
    memcpy(t, x, tl);
    t[tl] = 0;
    (void)s3xml_time(t);
    return 0;
}
