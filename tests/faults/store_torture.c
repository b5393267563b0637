/* store_torture: drives a store through the public store_ API for the fault tests
 * (tests/faults/run.sh). Not part of xffl itself.
 *
 *   store_torture [store flags] --store URL random --ops N [--seed S] [--max-size B] --manifest OUT
 *       N random operations (put, put_file, verified get to memory and to a file, get
 *       of a missing key, head, list, delete, put_many+get_many of 3 objects) against a
 *       local model of what the store must hold; any result that differs from the model
 *       is a failure. Writes "key size sha256" of the final state to OUT.
 *   store_torture --store URL check --manifest FILE
 *       the store holds exactly the manifest's keys (under t/), each with that size and
 *       digest (fetched verified).
 *   store_torture --store URL put KEY FILE | get KEY FILE [SHA256] | list PREFIX
 *
 * Prints a JSON summary on stdout; errors on stderr; exit code as xffl's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/digest.h"
#include "common/log.h"
#include "common/util.h"
#include "storage/store.h"

enum { NKEYS = 24 };

typedef struct {
    int present;
    uint64_t size;
    char sha[XFFL_SHA256_HEX];
} model_entry;

static model_entry model[NKEYS];
static char *tmpdir;

static int die(const char *what, xffl_status st)
{
    fprintf(stderr, "store_torture: %s: %s (%s)\n", what, xffl_errmsg(), xffl_strerror(st));
    return xffl_exit_code(st) ? xffl_exit_code(st) : 1;
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Sizes spread over 0 B .. max, most of them small, so many operations fit in seconds. */
static size_t pick_size(uint64_t *r, size_t max)
{
    switch (rng_next(r) % 4) {
    case 0: return (size_t)(rng_next(r) % 64);
    case 1: return (size_t)(rng_next(r) % 4096);
    default: return (size_t)(rng_next(r) % (max + 1));
    }
}

static void fill(char *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) buf[i] = (char)(rng_next(&x) >> 32);
}

static void key_name(int i, char *out, size_t cap) { snprintf(out, cap, "t/obj-%02d", i); }

static int fail_op(long op, const char *what, const char *key, xffl_status st)
{
    fprintf(stderr, "store_torture: op %ld %s %s: %s (%s)\n", op, what, key, xffl_errmsg(), xffl_strerror(st));
    return 1;
}

static int mismatch(long op, const char *what, const char *key, const char *detail)
{
    fprintf(stderr, "store_torture: op %ld %s %s: WRONG RESULT: %s\n", op, what, key, detail);
    return 1;
}

static int random_ops(store *s, long ops, uint64_t seed, size_t max, const char *manifest)
{
    uint64_t r = seed * 0x9E3779B97F4A7C15ull + 1;
    char *buf = malloc(max + 1);
    if (!buf) return 1;
    long counts[10] = {0};
    double t0 = xffl_now();
    for (long op = 0; op < ops; op++) {
        int kind = (int)(rng_next(&r) % 100);
        int ki = (int)(rng_next(&r) % NKEYS);
        char key[64];
        key_name(ki, key, sizeof key);
        xffl_status st;
        if (kind < 25) { /* put from memory */
            size_t n = pick_size(&r, max);
            fill(buf, n, rng_next(&r));
            if ((st = store_put(s, key, buf, n))) return fail_op(op, "put", key, st);
            model[ki].present = 1;
            model[ki].size = n;
            xffl_sha256_hex(buf, n, model[ki].sha);
            counts[0]++;
        } else if (kind < 35) { /* put a file */
            size_t n = pick_size(&r, max);
            fill(buf, n, rng_next(&r));
            char path[512];
            snprintf(path, sizeof path, "%s/up", tmpdir);
            if ((st = xffl_write_file_atomic(path, buf, n))) return fail_op(op, "write local", path, st);
            if ((st = store_put_file(s, key, path))) return fail_op(op, "put_file", key, st);
            model[ki].present = 1;
            model[ki].size = n;
            xffl_sha256_hex(buf, n, model[ki].sha);
            counts[1]++;
        } else if (kind < 55) { /* verified get to memory (or NOT_FOUND when absent) */
            void *d = NULL;
            size_t n = 0;
            if (!model[ki].present) {
                st = store_get(s, key, &d, &n);
                if (st != XFFL_ERR_NOT_FOUND) return st ? fail_op(op, "get absent", key, st) : mismatch(op, "get absent", key, "found");
                counts[4]++;
                continue;
            }
            if ((st = store_get_verified(s, key, model[ki].sha, &d, &n))) return fail_op(op, "get_verified", key, st);
            if (n != model[ki].size) return mismatch(op, "get_verified", key, "size");
            free(d);
            counts[2]++;
        } else if (kind < 65) { /* verified get into a file */
            if (!model[ki].present) continue;
            char path[512], got[XFFL_SHA256_HEX];
            snprintf(path, sizeof path, "%s/down", tmpdir);
            if ((st = store_get_file_verified(s, key, model[ki].sha, path))) return fail_op(op, "get_file", key, st);
            uint64_t n = 0;
            if (xffl_sha256_file(path, got, &n) || n != model[ki].size || strcmp(got, model[ki].sha))
                return mismatch(op, "get_file", key, "local file differs");
            counts[3]++;
        } else if (kind < 77) { /* head */
            uint64_t size = 0;
            st = store_head(s, key, &size, NULL);
            if (model[ki].present ? st != XFFL_OK : st != XFFL_ERR_NOT_FOUND)
                return st ? fail_op(op, "head", key, st) : mismatch(op, "head", key, "found a deleted key");
            if (model[ki].present && size != model[ki].size) return mismatch(op, "head", key, "size");
            counts[5]++;
        } else if (kind < 85) { /* list */
            store_listing l;
            if ((st = store_list(s, "t/", &l))) return fail_op(op, "list", "t/", st);
            size_t j = 0;
            for (int i = 0; i < NKEYS; i++) {
                if (!model[i].present) continue;
                key_name(i, key, sizeof key);
                if (j >= l.count || strcmp(l.items[j].key, key) || l.items[j].size != model[i].size)
                    return mismatch(op, "list", key, "listing differs from the model");
                j++;
            }
            if (j != l.count) return mismatch(op, "list", l.items[j].key, "unexpected key");
            store_listing_free(&l);
            counts[6]++;
        } else if (kind < 92) { /* delete */
            if ((st = store_delete(s, key))) return fail_op(op, "delete", key, st);
            model[ki].present = 0;
            counts[7]++;
        } else { /* three objects up and down in parallel */
            store_transfer up[3], down[3];
            char keys[3][64], src[3][512], dst[3][512];
            int idx[3];
            for (int k = 0; k < 3; k++) {
                idx[k] = (ki + k * 7) % NKEYS; /* distinct */
                key_name(idx[k], keys[k], sizeof keys[k]);
                size_t n = pick_size(&r, max);
                fill(buf, n, rng_next(&r));
                snprintf(src[k], sizeof src[k], "%s/many-up-%d", tmpdir, k);
                snprintf(dst[k], sizeof dst[k], "%s/many-down-%d", tmpdir, k);
                if ((st = xffl_write_file_atomic(src[k], buf, n))) return fail_op(op, "write local", src[k], st);
                model[idx[k]].present = 1;
                model[idx[k]].size = n;
                xffl_sha256_hex(buf, n, model[idx[k]].sha);
                /* the middle one with its digest (V4 signs it, the server checks the body),
                 * the others without (checked by their ETags) */
                up[k] = (store_transfer){keys[k], src[k], k == 1 ? model[idx[k]].sha : NULL};
                down[k] = (store_transfer){keys[k], dst[k], model[idx[k]].sha};
            }
            if ((st = store_put_many(s, up, 3))) return fail_op(op, "put_many", keys[0], st);
            if ((st = store_get_many(s, down, 3))) return fail_op(op, "get_many", keys[0], st);
            counts[8]++;
        }
    }
    free(buf);
    FILE *f = fopen(manifest, "w");
    if (!f) return 1;
    for (int i = 0; i < NKEYS; i++) {
        char key[64];
        key_name(i, key, sizeof key);
        if (model[i].present) fprintf(f, "%s %llu %s\n", key, (unsigned long long)model[i].size, model[i].sha);
    }
    fclose(f);
    printf("{\"ops\": %ld, \"seconds\": %.1f, \"put\": %ld, \"put_file\": %ld, \"get_verified\": %ld, "
           "\"get_file_verified\": %ld, \"get_absent\": %ld, \"head\": %ld, \"list\": %ld, \"delete\": %ld, "
           "\"many\": %ld}\n",
           ops, xffl_now() - t0, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6],
           counts[7], counts[8]);
    return 0;
}

static int check(store *s, const char *manifest)
{
    FILE *f = fopen(manifest, "r");
    if (!f) {
        fprintf(stderr, "store_torture: cannot read %s\n", manifest);
        return 1;
    }
    store_listing l;
    xffl_status st = store_list(s, "t/", &l);
    if (st) return die("list", st);
    char key[256], sha[XFFL_SHA256_HEX + 8];
    unsigned long long size;
    size_t j = 0;
    int bad = 0;
    while (fscanf(f, "%255s %llu %70s", key, &size, sha) == 3) {
        if (j >= l.count || strcmp(l.items[j].key, key) || l.items[j].size != size) {
            fprintf(stderr, "store_torture: check: %s missing or wrong size\n", key);
            bad = 1;
            break;
        }
        j++;
        void *d = NULL;
        size_t n = 0;
        if ((st = store_get_verified(s, key, sha, &d, &n))) {
            bad = die(key, st);
            break;
        }
        free(d);
    }
    fclose(f);
    if (!bad && j != l.count) {
        fprintf(stderr, "store_torture: check: unexpected key %s\n", l.items[j].key);
        bad = 1;
    }
    printf("{\"checked\": %zu, \"ok\": %s}\n", j, bad ? "false" : "true");
    store_listing_free(&l);
    return bad;
}

int main(int argc, char **argv)
{
    store_options o;
    store_options_default(&o);
    const char *url = NULL, *manifest = NULL;
    long ops = 100;
    uint64_t seed = 1;
    size_t max = 1 << 20;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) {
            xffl_log_setup(&(xffl_log_config){.level = XFFL_LOG_DEBUG}); /* each retry, as "xffl: store ..." */
            continue;
        }
        if (!v) break;
        if (!strcmp(a, "--store")) url = v;
        else if (!strcmp(a, "--jobs")) o.jobs = atoi(v);
        else if (!strcmp(a, "--retries")) o.retries = atoi(v);
        else if (!strcmp(a, "--retry-deadline")) o.retry_deadline = atof(v);
        else break;
        i++;
    }
    if (!url || i >= argc) {
        fprintf(stderr, "usage: store_torture [--jobs N] [--retries N] [--retry-deadline S] [--verbose] --store URL "
                        "random|check|put|get|list ...\n");
        return 2;
    }
    const char *cmd = argv[i++];
    for (int k = i; k < argc; k++) {
        if (k + 1 < argc && !strcmp(argv[k], "--ops")) ops = atol(argv[++k]);
        else if (k + 1 < argc && !strcmp(argv[k], "--seed")) seed = strtoull(argv[++k], NULL, 10);
        else if (k + 1 < argc && !strcmp(argv[k], "--max-size")) max = strtoull(argv[++k], NULL, 10);
        else if (k + 1 < argc && !strcmp(argv[k], "--manifest")) manifest = argv[++k];
    }
    store *s = NULL;
    xffl_status st = store_open(url, &o, &s);
    if (st) return die(url, st);
    int rc = 2;
    double t0 = xffl_now();
    if (!strcmp(cmd, "random") && manifest) {
        if ((st = xffl_mkdtemp("torture", &tmpdir))) return die("tmpdir", st);
        rc = random_ops(s, ops, seed, max, manifest);
        xffl_rmtree_cleanup(tmpdir);
        free(tmpdir);
    } else if (!strcmp(cmd, "check") && manifest) {
        rc = check(s, manifest);
    } else if (!strcmp(cmd, "put") && i + 1 < argc) {
        st = store_put_file(s, argv[i], argv[i + 1]);
        rc = st ? die(argv[i], st) : 0;
        if (!st) printf("{\"put\": \"%s\", \"seconds\": %.2f}\n", argv[i], xffl_now() - t0);
    } else if (!strcmp(cmd, "get") && i + 1 < argc) {
        st = i + 2 < argc ? store_get_file_verified(s, argv[i], argv[i + 2], argv[i + 1])
                          : store_get_file(s, argv[i], argv[i + 1]);
        rc = st ? die(argv[i], st) : 0;
        if (!st) printf("{\"get\": \"%s\", \"seconds\": %.2f}\n", argv[i], xffl_now() - t0);
    } else if (!strcmp(cmd, "list") && i < argc) {
        store_listing l;
        st = store_list(s, argv[i], &l);
        rc = st ? die(argv[i], st) : 0;
        if (!st) {
            for (size_t k = 0; k < l.count; k++) printf("%llu %s\n", (unsigned long long)l.items[k].size, l.items[k].key);
            store_listing_free(&l);
        }
    } else {
        fprintf(stderr, "store_torture: bad command or missing arguments\n");
    }
    store_close(s);
    return rc;
}
