/* libFuzzer target: store URLs (storage/store.c: store_open with file://, s3:// or a
 * plain path; s3 with a fixed endpoint in the environment, nothing contacted), and
 * store keys (the checks every operation runs first, here through store_head on a
 * file:// store that holds nothing: a key that finds something escaped it, "..", a
 * symlink or an absolute path). Input: the URL, a NUL byte, the key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static store *empty;
    if (!empty) {
        setenv("XFFL_S3_ENDPOINT", "127.0.0.1:9", 1);
        setenv("AWS_ACCESS_KEY_ID", "fuzz", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "fuzz", 1);
        if (store_open("/dev/shm/xffl-fuzz-empty-store", NULL, &empty) != XFFL_OK) abort();
    }
    char *buf = malloc(size + 2);
    if (!buf) abort();
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = 0;
    const char *url = buf, *key = buf + strlen(buf) + 1;
    if (key > buf + size) key = buf + size;
    /* opening a store writes nothing (a file:// one only looks at its root) */
    store *s = NULL;
    if (*url && store_open(url, NULL, &s) == XFFL_OK) {
        if (!store_url(s)) abort();
        store_close(s);
    }
    uint64_t sz;
    int64_t mt;
    xffl_status st = store_head(empty, key, &sz, &mt);
    if (st == XFFL_OK) abort(); /* the store holds nothing */
    free(buf);
    return 0;
}
