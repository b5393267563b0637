/* xffl verify: structure and every digest of a store's version or of one HDF5 file. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "common/util.h"
#include "libckpt/h5part.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"

/* `verify --all` (every kept version, every COMMIT, orphans) belongs to the
 * store-wide inspection code; it plugs in by defining this. */
int cmd_verify_all(int argc, char **argv) __attribute__((weak));

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

/* A delta part has no parameter table slice to check: every dataset's digest is. */
static xffl_status verify_any_datasets(ckpt_h5_reader *r, int *n_checked)
{
    static const char *const groups[] = {"delta", "scale", "model", "outer", "outer/m", "outer/v"};
    int checked = 0;
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        char **names = NULL;
        int n = 0;
        if (ckpt_h5_list(r, groups[g], &names, &n) != XFFL_OK) continue;
        xffl_status s = XFFL_OK;
        for (int k = 0; k < n && s == XFFL_OK; k++) {
            char path[512];
            ckpt_h5_dataset_info info;
            snprintf(path, sizeof path, "%s/%s", groups[g], names[k]);
            s = ckpt_h5_info(r, path, &info);
            void *buf = s == XFFL_OK ? malloc(info.raw_bytes ? info.raw_bytes : 1) : NULL;
            if (s == XFFL_OK && !buf) s = xffl_fail(XFFL_ERR_NOMEM, "%s", path);
            if (s == XFFL_OK) s = ckpt_h5_read(r, path, info.dtype, info.ndim, info.shape, buf, 0, NULL);
            free(buf);
            checked++;
        }
        ckpt_h5_names_free(names, n);
        XFFL_FORWARD(s);
    }
    XFFL_RETURN_IF(checked == 0, XFFL_ERR_INVALID, "%s: no datasets to verify", ckpt_h5_reader_path(r));
    *n_checked = checked;
    return XFFL_OK;
}

static xffl_status verify_file(const char *path, char *format, size_t cap, int *n_checked)
{
    ckpt_h5_reader *r;
    XFFL_FORWARD(ckpt_h5_reader_open(path, NULL, &r));
    char *fmt = NULL;
    xffl_status s = ckpt_h5_get_attr_str(r, "format", &fmt);
    if (s == XFFL_ERR_NOT_FOUND) s = xffl_fail(XFFL_ERR_INVALID, "%s: no format attribute (not an xffl file)", path);
    if (s == XFFL_OK) {
        snprintf(format, cap, "%s", fmt);
        if (strcmp(fmt, "xffl-delta") == 0) {
            s = verify_any_datasets(r, n_checked);
            ckpt_h5_reader_close(r);
            r = NULL;
        }
    }
    free(fmt);
    if (r) {
        ckpt_h5_reader_close(r);
        if (s == XFFL_OK) s = pipe_part_verify_file(path, n_checked);
    }
    return s;
}

static xffl_status verify_store(const char *url, const store_options *sopt, int64_t version)
{
    store *s = NULL;
    XFFL_FORWARD(store_open(url, sopt, &s));
    pipe_federation f;
    char fed_sha[XFFL_SHA256_HEX];
    pipe_version_ref ref;
    pipe_version_info info = {0};
    ckpt_param_table *t = NULL;
    xffl_status st;
    double t0 = xffl_now();
    XFFL_CHECK_GOTO(st, pipe_federation_load(s, NULL, &f, fed_sha), out);
    XFFL_CHECK_GOTO(st, pipe_version_resolve(s, version, &ref), out);
    XFFL_CHECK_GOTO(st, ckpt_param_table_create(&f.model, &t), out);
    XFFL_CHECK_GOTO(st, pipe_version_fetch(s, &ref, t, 0, NULL, NULL, &info), out);
    if (strcmp(info.federation_sha, fed_sha) != 0) {
        st = xffl_fail(XFFL_ERR_CORRUPT, "%s: %s has sha256 %.12s but %s records federation=%.12s", store_url(s),
                       PIPE_FEDERATION_KEY, fed_sha, ref.index_key, info.federation_sha);
        goto out;
    }
    if (cli_json)
        printf("{\"ok\":true,\"store\":\"%s\",\"version\":%" PRId64 ",\"index\":\"%s\",\"parts\":%d,\"tensors\":%d,"
               "\"stored_bytes\":%" PRIu64 ",\"federation_sha256\":\"%s\",\"seconds\":%.3f}\n",
               store_url(s), ref.version, ref.index_key, info.index->n_objects, info.index->n_tensors, info.stored_bytes,
               fed_sha, xffl_now() - t0);
    else
        printf("ok: %s v%06" PRId64 " %s: %d parts, %d tensors, %" PRIu64 " bytes, federation.h5 %.12s verified\n",
               store_url(s), ref.version, ref.index_key, info.index->n_objects, info.index->n_tensors,
               info.stored_bytes, fed_sha);
out:
    pipe_version_info_clear(&info);
    ckpt_param_table_free(t);
    store_close(s);
    return st;
}

int cmd_verify(int argc, char **argv)
{
    const char *C = "verify";
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--all")) {
            if (cmd_verify_all) return cmd_verify_all(argc, argv);
            fprintf(stderr, "xffl verify: --all is not part of this build\n");
            return 1;
        }
    store_options sopt;
    store_options_default(&sopt);
    const char *url = NULL, *path = NULL;
    int64_t version = -1;
    int rc = cli_parse_target(C, argc, argv, &sopt, &url, &path, &version);
    if (rc) return rc;
    xffl_status st;
    struct stat sb;
    if (path && !strstr(path, "://")) {
        if (stat(path, &sb) != 0) {
            st = xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such file or directory", path);
            return cli_report(C, st);
        }
        if (!S_ISDIR(sb.st_mode)) {
            char fmt[64] = "";
            int n = 0;
            st = verify_file(path, fmt, sizeof fmt, &n);
            if (st == XFFL_OK) {
                if (cli_json) printf("{\"ok\":true,\"file\":\"%s\",\"format\":\"%s\",\"datasets\":%d}\n", path, fmt, n);
                else printf("ok: %s (%s): %d datasets verified\n", path, fmt, n);
            }
            return cli_report(C, st);
        }
    }
    st = verify_store(url ? url : path, &sopt, version);
    return cli_report(C, st);
}
