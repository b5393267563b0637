/* xffl pull: a local copy of one version into a plain directory that h5dump opens (the
 * job: pipelines/pull.c). */
#include <stdio.h>
#include "cmd/cli.h"
#include "pipelines/pull.h"

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

int cmd_pull(int argc, char **argv)
{
    const char *cmd = "pull", *url, *dir = NULL;
    store_options so;
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    int64_t v = -1;
    const cli_opt opts[] = {{"--version", CLI_VERSION, &v, 0, 0, NULL}, {0}};
    cli_args args = {.v = &dir, .max = 1, .what = "DIR"};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, &args);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!dir) return cli_usage_error(cmd, "the destination DIR is required");
    store *s;
    if ((rc = cli_open_store(cmd, url, &so, &s))) return rc;
    pipe_pull_result r;
    xffl_status st = pipe_pull(s, v, dir, &r);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    if (cli_json)
        printf("{\"version\": %lld, \"index\": \"%s\", \"objects\": %d, \"part_bytes\": %llu, \"dir\": \"%s\"}\n",
               (long long)r.version, r.index, r.parts + r.federation + 1, (unsigned long long)r.part_bytes, dir);
    else
        printf("v%06lld %s: %d parts (%llu bytes), INDEX%s in %s\n", (long long)r.version, r.index, r.parts,
               (unsigned long long)r.part_bytes, r.federation ? ", federation.h5" : "", dir);
    return 0;
}
