/* store_bench: times one parallel transfer of a set of local files through the store
 * interface (store_put_many / store_get_many, verified), for bench/s3.sh.
 *
 *   store_bench --store URL --jobs J put DIR N      uploads DIR/part-0..N-1 as v/part-i, each
 *                                                   with its SHA-256, as the pipelines upload
 *                                                   the parts they have just hashed for a manifest
 *   store_bench --store URL --jobs J get DIR N      downloads them into DIR/got-i,
 *                                                   each checked against DIR/part-i's SHA-256
 * Prints {"op": ..., "bytes": ..., "seconds": ..., "MBps": ...} on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/digest.h"
#include "common/util.h"
#include "storage/store.h"

int main(int argc, char **argv)
{
    store_options o;
    store_options_default(&o);
    const char *url = NULL;
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (!strcmp(argv[i], "--store")) url = argv[i + 1];
        else if (!strcmp(argv[i], "--jobs")) o.jobs = atoi(argv[i + 1]);
        else break;
    }
    if (!url || argc - i != 3 || (strcmp(argv[i], "put") && strcmp(argv[i], "get"))) {
        fprintf(stderr, "usage: store_bench --store URL [--jobs J] put|get DIR N\n");
        return 2;
    }
    int get = !strcmp(argv[i], "get");
    const char *dir = argv[i + 1];
    int n = atoi(argv[i + 2]);
    if (n < 1 || n > 64) return 2;
    store *s = NULL;
    xffl_status st = store_open(url, &o, &s);
    if (st) {
        fprintf(stderr, "store_bench: %s\n", xffl_errmsg());
        return xffl_exit_code(st);
    }
    char keys[64][32], paths[64][1024], shas[64][XFFL_SHA256_HEX];
    store_transfer tr[64];
    uint64_t bytes = 0;
    for (int k = 0; k < n; k++) {
        char src[1024];
        uint64_t size = 0;
        snprintf(keys[k], sizeof keys[k], "v/part-%d", k);
        snprintf(src, sizeof src, "%s/part-%d", dir, k);
        if (get) {
            /* the digests are computed before the clock starts (the pipelines have them
             * from the manifests: for a get the expected one, for a put the file's) */
            if ((st = xffl_sha256_file(src, shas[k], &size))) break;
            snprintf(paths[k], sizeof paths[k], "%s/got-%d", dir, k);
        } else {
            snprintf(paths[k], sizeof paths[k], "%s", src);
            if ((st = xffl_sha256_file(src, shas[k], &size))) break;
        }
        bytes += size;
        tr[k] = (store_transfer){keys[k], paths[k], shas[k]};
    }
    double t0 = xffl_now();
    if (!st) st = get ? store_get_many(s, tr, (size_t)n) : store_put_many(s, tr, (size_t)n);
    double secs = xffl_now() - t0;
    store_close(s);
    if (st) {
        fprintf(stderr, "store_bench: %s (%s)\n", xffl_errmsg(), xffl_strerror(st));
        return xffl_exit_code(st);
    }
    printf("{\"op\": \"%s\", \"jobs\": %d, \"objects\": %d, \"bytes\": %llu, \"seconds\": %.3f, \"MBps\": %.1f}\n",
           get ? "get" : "put", o.jobs, n, (unsigned long long)bytes, secs, (double)bytes / 1e6 / secs);
    return 0;
}
