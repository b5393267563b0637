/* xffl cp: copies a federation between stores (file:// <-> s3://): federation.h5, the
 * versions (every object checked against its INDEX on the way), each INDEX after its
 * parts, LATEST last of all, so a reader of the destination never sees a LATEST whose
 * version is incomplete. Objects are content-named and byte-identical in both stores;
 * an object already in the destination with the right size is not copied again. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "libckpt/manifest.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"
#include "storage/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl cp --from URL --to URL [--version V|latest] [store flags]\n"
            "\n"
            "Copies federation.h5, version V (default: every version in the source) and\n"
            "LATEST between stores, e.g. file:// to s3://. Every object is verified against\n"
            "the SHA-256 its INDEX names before it is written; parts go first, then the\n"
            "INDEX, LATEST last (moved only forward: a destination already at a later\n"
            "version keeps its LATEST). Objects already present with the right size are\n"
            "skipped, so an interrupted copy can be run again. Parts pass through a\n"
            "temporary directory ($TMPDIR), at most --jobs of them at a time.\n"
            "The copy verifies: xffl verify --store TO.\n"
            "\n"
            "  --from URL              source store\n"
            "  --to URL                destination store (same federation or empty)\n"
            "  --version V             one version number or 'latest'\n"
            "  --json                  summary as one JSON object (global flag)\n" CLI_STORE_FLAGS_HELP
            "\n"
            "exit codes: 0 copied, 1 failed (e.g. the destination holds another federation),\n"
            "2 usage, 65 a source object does not match its digest, 74 a store unreachable\n");
}

static const char *base_name(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

/* 1 if dst already holds key with this size. */
static int present(store *dst, const char *key, uint64_t size)
{
    uint64_t have = 0;
    return store_head(dst, key, &have, NULL) == XFFL_OK && have == size;
}

typedef struct {
    store *src, *dst;
    char *tmp;
    int jobs;
    char fed_sha[XFFL_SHA256_HEX];
    size_t copied, skipped;
    uint64_t bytes;
} copier;

/* federation.h5: verified against the INDEX's digest; the destination must be empty of
 * one or hold the same bytes. */
static xffl_status copy_federation(copier *c, const char *sha)
{
    if (c->fed_sha[0]) {
        XFFL_RETURN_IF(strcmp(c->fed_sha, sha), XFFL_ERR_INVALID,
                       "source versions name two different federation.h5 (%.12s and %.12s)", c->fed_sha, sha);
        return XFFL_OK;
    }
    void *d = NULL, *have = NULL;
    size_t n = 0, hn = 0;
    XFFL_FORWARD(store_get_verified(c->src, PIPE_FEDERATION_KEY, sha, &d, &n));
    xffl_status st = store_get(c->dst, PIPE_FEDERATION_KEY, &have, &hn);
    if (st == XFFL_OK) {
        char hsha[XFFL_SHA256_HEX];
        xffl_sha256_hex(have, hn, hsha);
        st = strcmp(hsha, sha) ? xffl_fail(XFFL_ERR_EXISTS, "%s already holds another federation (federation.h5 %.12s, copying %.12s)",
                                           store_url(c->dst), hsha, sha)
                               : XFFL_OK;
        c->skipped++;
    } else if (st == XFFL_ERR_NOT_FOUND) {
        st = store_put(c->dst, PIPE_FEDERATION_KEY, d, n);
        c->copied++;
        c->bytes += n;
    }
    free(d);
    free(have);
    if (st == XFFL_OK) memcpy(c->fed_sha, sha, XFFL_SHA256_HEX);
    return st;
}

static xffl_status copy_version(copier *c, const pipe_version_ref *ref)
{
    void *text = NULL;
    size_t len = 0;
    char index_sha[XFFL_SHA256_HEX];
    ckpt_manifest *m = NULL;
    store_transfer *tr = NULL;
    char (*paths)[4096] = NULL;
    xffl_status st = pipe_index_get(c->src, ref, &text, &len, index_sha);
    if (st == XFFL_OK) st = ckpt_manifest_parse(text, len, ref->index_key, &m);
    if (st != XFFL_OK) goto out;
    const char *fed = ckpt_manifest_get(m, "federation");
    if (fed) XFFL_CHECK_GOTO(st, copy_federation(c, fed), out);
    size_t batch = (size_t)c->jobs;
    tr = calloc(batch, sizeof *tr);
    paths = calloc(batch, sizeof *paths);
    if (!tr || !paths) {
        st = xffl_fail(XFFL_ERR_NOMEM, "copying %s", ref->index_key);
        goto out;
    }
    uint64_t vbytes = 0;
    size_t vcopied = 0;
    /* A batch of parts down (verified) then up, so local disk holds at most `jobs` parts. */
    for (int i = 0; i < m->n_objects;) {
        size_t nb = 0;
        for (; i < m->n_objects && nb < batch; i++) {
            const ckpt_manifest_object *o = &m->objects[i];
            if (present(c->dst, o->name, o->bytes)) {
                c->skipped++;
                continue;
            }
            snprintf(paths[nb], sizeof paths[nb], "%s/%zu-%s", c->tmp, nb, base_name(o->name));
            tr[nb] = (store_transfer){o->name, paths[nb], o->sha256};
            vbytes += o->bytes;
            nb++;
        }
        if (!nb) continue;
        XFFL_CHECK_GOTO(st, store_get_many(c->src, tr, nb), out);
        for (size_t k = 0; k < nb; k++) tr[k].sha256_hex = NULL;
        st = store_put_many(c->dst, tr, nb);
        for (size_t k = 0; k < nb; k++) unlink(paths[k]);
        if (st != XFFL_OK) goto out;
        vcopied += nb;
    }
    if (!present(c->dst, ref->index_key, len)) {
        XFFL_CHECK_GOTO(st, store_put(c->dst, ref->index_key, text, len), out);
        vcopied++;
        vbytes += len;
    } else
        c->skipped++;
    c->copied += vcopied;
    c->bytes += vbytes;
    fprintf(stderr, "xffl cp: v%06" PRId64 ": %zu of %d objects copied (%" PRIu64 " bytes)\n", ref->version,
            vcopied, m->n_objects + 1, vbytes);
out:
    free(text);
    free(tr);
    free(paths);
    ckpt_manifest_free(m);
    return st;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Every version number that has an INDEX in the source, ascending. */
static xffl_status list_versions(store *s, int64_t **out, size_t *n)
{
    store_listing l;
    XFFL_FORWARD(store_list(s, "versions/", &l));
    int64_t *v = calloc(l.count + 1, sizeof *v);
    if (!v) {
        store_listing_free(&l);
        return xffl_fail(XFFL_ERR_NOMEM, "listing versions");
    }
    size_t k = 0;
    for (size_t i = 0; i < l.count; i++) {
        long long num;
        char rest[16];
        const char *key = l.items[i].key;
        if (sscanf(key, "versions/v%6lld/%6s", &num, rest) != 2 || strncmp(rest, "INDEX-", 6)) continue;
        if (k && v[k - 1] == num) continue; /* sorted listing: duplicates are adjacent */
        v[k++] = num;
    }
    store_listing_free(&l);
    qsort(v, k, sizeof *v, cmp_i64);
    *out = v;
    *n = k;
    return XFFL_OK;
}

/* LATEST last: the source's LATEST when that version was copied, else a line naming
 * the newest version copied; never moves the destination's LATEST backwards. */
static xffl_status copy_latest(copier *c, const pipe_version_ref *newest, pipe_version_ref *written)
{
    pipe_version_ref src_latest, dst_latest, want = *newest;
    xffl_status st = pipe_latest_read(c->src, &src_latest);
    if (st == XFFL_OK && src_latest.version == newest->version && !strcmp(src_latest.index_key, newest->index_key))
        want = src_latest;
    else if (st != XFFL_OK && st != XFFL_ERR_NOT_FOUND)
        return st;
    if (!want.index_sha[0]) {
        /* found by listing: its digest is what was fetched (checked against its name) */
        void *d = NULL;
        size_t n = 0;
        XFFL_FORWARD(store_get(c->dst, want.index_key, &d, &n));
        xffl_sha256_hex(d, n, want.index_sha);
        free(d);
    }
    st = pipe_latest_read(c->dst, &dst_latest);
    if (st == XFFL_OK && dst_latest.version >= want.version) {
        *written = dst_latest;
        return XFFL_OK;
    }
    if (st != XFFL_OK && st != XFFL_ERR_NOT_FOUND && st != XFFL_ERR_CORRUPT) return st;
    char line[PIPE_KEY_MAX + 100];
    int n = snprintf(line, sizeof line, "v%06" PRId64 " %s %s\n", want.version, base_name(want.index_key), want.index_sha);
    XFFL_FORWARD(store_put(c->dst, PIPE_LATEST_KEY, line, (size_t)n));
    c->copied++;
    *written = want;
    return XFFL_OK;
}

int cmd_cp(int argc, char **argv)
{
    const char *cmd = "cp", *from = NULL, *to = NULL;
    store_options opt;
    store_options_default(&opt);
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    int64_t v = -1;
    int one_version = 0;
    const cli_opt opts[] = {{"--from", CLI_STR, &from, 0, 0, NULL},
                            {"--to", CLI_STR, &to, 0, 0, NULL},
                            {"--version", CLI_VERSION, &v, 0, 0, &one_version},
                            {0}};
    int rc = cli_parse(cmd, argc, argv, opts, &opt, NULL);
    if (rc) return rc;
    if (!from || !to) return cli_usage_error(cmd, "--from URL and --to URL are required");

    copier c = {.jobs = opt.jobs};
    int64_t *versions = NULL;
    size_t nv = 0;
    pipe_version_ref ref = {0}, latest = {0};
    double t0 = xffl_now();
    xffl_status st = store_open(from, &opt, &c.src);
    if (st == XFFL_OK) st = store_open(to, &opt, &c.dst);
    if (st == XFFL_OK) st = xffl_mkdtemp("cp", &c.tmp);
    if (st != XFFL_OK) goto out;
    if (one_version) {
        st = pipe_version_resolve(c.src, v, &ref);
        if (st == XFFL_OK) st = copy_version(&c, &ref);
        nv = 1;
    } else {
        st = list_versions(c.src, &versions, &nv);
        if (st == XFFL_OK && nv == 0) st = xffl_fail(XFFL_ERR_NOT_FOUND, "%s holds no version (no versions/v*/INDEX-*)", from);
        for (size_t i = 0; st == XFFL_OK && i < nv; i++) {
            st = pipe_version_resolve(c.src, versions[i], &ref);
            if (st == XFFL_ERR_INVALID) {
                /* several INDEX objects and LATEST names none: a lost race's leftovers */
                fprintf(stderr, "xffl cp: skipping version %" PRId64 ": %s\n", versions[i], xffl_errmsg());
                st = XFFL_OK;
                continue;
            }
            if (st == XFFL_OK) st = copy_version(&c, &ref);
        }
    }
    if (st == XFFL_OK) st = copy_latest(&c, &ref, &latest);
    if (st != XFFL_OK) goto out;
    double secs = xffl_now() - t0;
    if (cli_json)
        printf("{\"versions\": %zu, \"objects_copied\": %zu, \"objects_skipped\": %zu, \"bytes\": %" PRIu64
               ", \"seconds\": %.2f, \"latest\": %" PRId64 "}\n",
               nv, c.copied, c.skipped, c.bytes, secs, latest.version);
    else
        printf("copied %zu version%s from %s to %s: %zu objects (%" PRIu64 " bytes), %zu already there, %.1f s; LATEST v%06" PRId64 "\n",
               nv, nv == 1 ? "" : "s", from, to, c.copied, c.bytes, c.skipped, secs, latest.version);
out:
    if (c.tmp) xffl_rmtree(c.tmp);
    free(c.tmp);
    free(versions);
    store_close(c.src);
    store_close(c.dst);
    return cli_report(cmd, st);
}
