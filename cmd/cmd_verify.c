/* xffl verify: structure and every digest of a store's version or of one HDF5 file;
 * with --all, of everything a store holds. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "common/util.h"
#include "libckpt/h5part.h"
#include "pipelines/describe.h"
#include "pipelines/inspect.h"

static void help(void)
{
    printf("usage: xffl verify PATH|FILE|--store URL [--version V] [--all]\n"
           "\n"
           "Checks structure and every SHA-256. For a store: federation.h5 against the\n"
           "digest its INDEX records, LATEST, the version's INDEX, every part object, every\n"
           "tensor (shape, dtype, digest attribute, INDEX tensor line). For a single HDF5 file\n"
           "(a checkpoint part or a delta part): its format attribute, model config, the\n"
           "tensors it must hold, and every dataset's digest.\n"
           "\n"
           "  --store URL     s3://bucket/prefix, file:///path or a plain path (or give PATH)\n"
           "  --version V     a version number or 'latest' (default)\n"
           "  --all           everything LATEST, every kept version and every COMMIT\n"
           "                  reference; unreferenced objects are listed as orphans\n"
           CLI_STORE_FLAGS_HELP
           "\n"
           "Prints one 'ok' line on stdout (--json: an object); on failure one line on\n"
           "stderr naming the file or key and the tensor.\n"
           "exit codes: 0 intact, 1 missing path or other failure, 2 usage, 65 damaged or\n"
           "invalid data, 74 store unreachable.\n");
}

static int verify_all(int argc, char **argv)
{
    const char *cmd = "verify";
    store_options so;
    store_options_default(&so);
    const char *url = NULL;
    const char *pos = NULL;
    int64_t version = -1;
    int all = 0, version_given = 0;
    /* verify's own options too, so that one which means nothing here is named as such */
    const cli_opt opts[] = {{"--store", CLI_STR, &url, 0, 0, NULL},
                            {"--all", CLI_FLAG, &all, 0, 0, NULL},
                            {"--version", CLI_VERSION, &version, 0, 0, &version_given},
                            {0}};
    cli_args args = {.v = &pos, .max = 1, .what = "URL"};
    int rc = cli_parse(cmd, argc, argv, opts, &so, &args);
    if (rc) return rc;
    if (version_given) return cli_usage_error(cmd, "'--version' does not go with --all");
    if (pos && url) return cli_usage_error(cmd, "'%s' does not go with --store URL", pos);
    if (pos) url = pos;
    if (!url) return cli_usage_error(cmd, "--all needs --store URL");
    store *s = NULL;
    xffl_status st = store_open(url, &so, &s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    pipe_verify_report rep;
    st = pipe_verify_all(s, &rep);
    store_close(s);
    if (cli_json)
        printf("{\"ok\": %s, \"versions\": %d, \"commits\": %d, \"objects\": %d, \"updates\": %d, \"problems\": %d, "
               "\"orphans\": %d}\n",
               st == XFFL_OK ? "true" : "false", rep.versions_checked, rep.commits_checked, rep.objects_checked,
               rep.updates_checked, rep.n_problems, rep.n_orphans);
    if (st != XFFL_OK) return cli_report(cmd, st);
    if (!cli_json)
        printf("ok: %d versions, %d commits, %d delta objects, %d updates verified; %d orphans\n",
               rep.versions_checked, rep.commits_checked, rep.objects_checked, rep.updates_checked, rep.n_orphans);
    return 0;
}

static int verify_file(const char *cmd, const char *path)
{
    char fmt[64] = "";
    int n = 0;
    xffl_status st = pipe_verify_file(path, fmt, sizeof fmt, &n);
    if (st == XFFL_OK && cli_json) {
        printf("{\"ok\":true,\"file\":");
        cli_json_str(path);
        printf(",\"format\":");
        cli_json_str(fmt);
        printf(",\"datasets\":%d}\n", n);
    } else if (st == XFFL_OK)
        printf("ok: %s (%s): %d datasets verified\n", path, fmt, n);
    return cli_report(cmd, st);
}

static int verify_store(const char *cmd, const char *url, const store_options *sopt, int64_t version)
{
    store *s = NULL;
    pipe_version_check c;
    xffl_status st = store_open(url, sopt, &s);
    double t0 = xffl_now();
    if (st == XFFL_OK) st = pipe_verify_version(s, version, &c);
    if (st == XFFL_OK && cli_json) {
        printf("{\"ok\":true,\"store\":");
        cli_json_str(store_url(s));
        printf(",\"version\":%" PRId64 ",\"index\":", c.ref.version);
        cli_json_str(c.ref.index_key);
        printf(",\"parts\":%d,\"tensors\":%d,\"stored_bytes\":%" PRIu64 ",\"federation_sha256\":\"%s\",\"seconds\":%.3f}\n",
               c.parts, c.tensors, c.stored_bytes, c.federation_sha, xffl_now() - t0);
    } else if (st == XFFL_OK)
        printf("ok: %s v%06" PRId64 " %s: %d parts, %d tensors, %" PRIu64 " bytes, federation.h5 %.12s verified\n",
               store_url(s), c.ref.version, c.ref.index_key, c.parts, c.tensors, c.stored_bytes, c.federation_sha);
    store_close(s);
    return cli_report(cmd, st);
}

int cmd_verify(int argc, char **argv)
{
    const char *C = "verify";
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--all")) return verify_all(argc, argv);
    store_options sopt;
    const char *url, *path;
    int64_t version;
    int rc = cli_parse_target(C, argc, argv, &sopt, &url, &path, &version);
    if (rc) return rc;
    struct stat sb;
    if (path && !strstr(path, "://")) {
        if (stat(path, &sb) != 0) return cli_report(C, xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such file or directory", path));
        if (!S_ISDIR(sb.st_mode)) return verify_file(C, path);
    }
    return verify_store(C, url ? url : path, &sopt, version);
}
