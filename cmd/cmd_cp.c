/* xffl cp: copies a federation between stores (file:// <-> s3://): federation.h5, the
 * versions (every object checked against its INDEX on the way), each INDEX after its
 * parts, LATEST last of all, so a reader of the destination never sees a LATEST whose
 * version is incomplete. Objects are content-named and byte-identical in both stores;
 * an object already in the destination with the right size is not copied again. */
#include <inttypes.h>
#include <stdio.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "pipelines/replicate.h"
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

    store *src = NULL, *dst = NULL;
    pipe_replicate_options ro = {.one_version = one_version, .version = v, .jobs = opt.jobs};
    pipe_replicate_report r;
    double t0 = xffl_now();
    xffl_status st = store_open(from, &opt, &src);
    if (st == XFFL_OK) st = store_open(to, &opt, &dst);
    if (st == XFFL_OK) st = pipe_replicate(src, dst, &ro, &r);
    store_close(src);
    store_close(dst);
    if (st != XFFL_OK) return cli_report(cmd, st);
    double secs = xffl_now() - t0;
    size_t nv = r.versions;
    if (cli_json)
        printf("{\"versions\": %zu, \"objects_copied\": %zu, \"objects_skipped\": %zu, \"bytes\": %" PRIu64
               ", \"seconds\": %.2f, \"latest\": %" PRId64 "}\n",
               nv, r.copied, r.skipped, r.bytes, secs, r.latest.version);
    else
        printf("copied %zu version%s from %s to %s: %zu objects (%" PRIu64 " bytes), %zu already there, %.1f s; LATEST v%06" PRId64 "\n",
               nv, nv == 1 ? "" : "s", from, to, r.copied, r.bytes, r.skipped, secs, r.latest.version);
    return 0;
}
