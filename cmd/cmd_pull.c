/* xffl pull: a local copy of one version (its parts, its INDEX and federation.h5), each
 * object checked against the digest its manifest names, into a plain directory that
 * h5dump (with HDF5_PLUGIN_PATH set to the zstd plugin) opens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "libckpt/manifest.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"
#include "storage/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl pull --store URL [--version V|latest] DIR [store flags]\n"
            "\n"
            "Copies version V (default: the one LATEST names) into DIR: every part\n"
            "(part-NNN-<hash>.h5), the INDEX manifest and federation.h5, each verified\n"
            "against the SHA-256 its manifest names. The parts are ordinary HDF5 files:\n"
            "  HDF5_PLUGIN_PATH=<build>/plugins h5dump -H DIR/part-000-*.h5\n"
            "Prints the version, the number of objects and bytes on stdout.\n"
            "\n"
            "  --store URL             s3://bucket/prefix, file:///path or a path\n"
            "  --version V             a version number or 'latest' (default)\n"
            "  --json                  result as one JSON object (global flag)\n" CLI_STORE_FLAGS_HELP
            "\n"
            "exit codes: 0 pulled, 1 failed (e.g. no such version), 2 usage, 65 an object does\n"
            "not match its digest, 74 store unreachable\n");
}

static const char *base_name(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

int cmd_pull(int argc, char **argv)
{
    const char *cmd = "pull", *url = NULL, *dir = NULL;
    store_options opt;
    store_options_default(&opt);
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    int64_t v = -1;
    const cli_opt opts[] = {{"--store", CLI_STR, &url, 0, 0, NULL}, {"--version", CLI_VERSION, &v, 0, 0, NULL}, {0}};
    cli_args args = {.v = &dir, .max = 1, .what = "DIR"};
    int rc = cli_parse(cmd, argc, argv, opts, &opt, &args);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!dir) return cli_usage_error(cmd, "the destination DIR is required");

    store *s = NULL;
    pipe_manifest_bytes index = {0};
    char (*paths)[4096] = NULL;
    ckpt_manifest *m = NULL;
    store_transfer *tr = NULL;
    pipe_version_ref ref;
    uint64_t bytes = 0;
    xffl_status st = store_open(url, &opt, &s);
    if (st == XFFL_OK) st = pipe_version_resolve(s, v, &ref);
    if (st == XFFL_OK) st = pipe_manifest_load(s, ref.index_key, ref.index_sha, &m, &index);
    if (st == XFFL_OK) st = xffl_mkdirs(dir);
    if (st != XFFL_OK) goto out;
    int n = m->n_objects;
    tr = calloc((size_t)n + 1, sizeof *tr);
    paths = calloc((size_t)n + 1, sizeof *paths);
    if (!tr || !paths) {
        st = xffl_fail(XFFL_ERR_NOMEM, "pulling %d objects", n);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, base_name(m->objects[i].name));
        tr[i] = (store_transfer){m->objects[i].name, paths[i], m->objects[i].sha256};
        bytes += m->objects[i].bytes;
    }
    /* federation.h5 too when the INDEX names its digest: the parts' context, verified */
    const char *fed = ckpt_manifest_get(m, "federation");
    char fed_path[4096];
    if (fed && strlen(fed) == 64) {
        snprintf(fed_path, sizeof fed_path, "%s/%s", dir, PIPE_FEDERATION_KEY);
        tr[n++] = (store_transfer){PIPE_FEDERATION_KEY, fed_path, fed};
    }
    xffl_log(XFFL_LOG_INFO, "v%06lld from %s: %d objects", (long long)ref.version, url, n);
    st = store_get_many(s, tr, (size_t)n);
    if (st != XFFL_OK) goto out;
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/%s", dir, base_name(ref.index_key));
    st = xffl_write_file_atomic(ipath, index.text, index.len);
    if (st != XFFL_OK) goto out;
    if (cli_json)
        printf("{\"version\": %lld, \"index\": \"%s\", \"objects\": %d, \"part_bytes\": %llu, \"dir\": \"%s\"}\n",
               (long long)ref.version, base_name(ref.index_key), n + 1, (unsigned long long)bytes, dir);
    else
        printf("v%06lld %s: %d parts (%llu bytes), INDEX%s in %s\n", (long long)ref.version,
               base_name(ref.index_key), m->n_objects, (unsigned long long)bytes, n > m->n_objects ? ", federation.h5" : "",
               dir);
out:
    free(tr);
    free(paths);
    free(index.text);
    ckpt_manifest_free(m);
    store_close(s);
    return cli_report(cmd, st);
}
