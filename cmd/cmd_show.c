/* xffl show: model config, parameter count and every tensor's shape, dtype, stored
 * size and compression ratio, of a store's version or of one HDF5 file. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "pipelines/describe.h"

static void help(void)
{
    printf("usage: xffl show PATH|FILE|--store URL [--version V]\n"
           "\n"
           "Describes a version of a store (default: LATEST) or one HDF5 part file: model\n"
           "config, parameter count, and each tensor's shape, dtype, stored (compressed)\n"
           "size and compression ratio. Reads through every part; `xffl verify` is what\n"
           "checks digests.\n"
           "\n"
           "  --store URL     s3://bucket/prefix, file:///path or a plain path (or give PATH)\n"
           "  --version V     a version number or 'latest' (default)\n"
           CLI_STORE_FLAGS_HELP
           "  --json          one JSON object instead of the table\n"
           "\n"
           "exit codes: 0 done, 1 missing path or other failure, 2 usage, 65 damaged or\n"
           "invalid data, 74 store unreachable.\n");
}

static void print_config(const ckpt_model_config *c, int have)
{
    if (!have) return;
    if (cli_json)
        printf("\"model\":{\"dim\":%d,\"n_layers\":%d,\"n_heads\":%d,\"n_kv_heads\":%d,\"hidden_dim\":%d,"
               "\"vocab_size\":%d,\"max_seq_len\":%d,\"norm_eps\":%g,\"rope_theta\":%g},",
               c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size, c->max_seq_len,
               (double)c->norm_eps, (double)c->rope_theta);
    else
        printf("model: dim %d, %d layers, %d heads (%d kv), hidden %d, vocab %d, max_seq_len %d, norm_eps %g, rope_theta %g\n",
               c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size, c->max_seq_len,
               (double)c->norm_eps, (double)c->rope_theta);
}

static double ratio(uint64_t raw, uint64_t stored) { return stored ? (double)raw / (double)stored : 0; }

static void print_rows(const pipe_description *d)
{
    print_config(&d->cfg, d->have_cfg);
    if (cli_json) {
        printf("\"parameters\":%" PRId64 ",\"raw_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64
               ",\"compression_ratio\":%.4f,\"tensors\":[",
               d->parameters, d->raw_bytes, d->stored_bytes, ratio(d->raw_bytes, d->stored_bytes));
        for (int i = 0; i < d->n_rows; i++) {
            const ckpt_h5_dataset_info *in = &d->rows[i].info;
            printf("%s{\"name\":", i ? "," : "");
            cli_json_str(d->rows[i].name);
            printf(",\"dtype\":\"%s\",\"shape\":[", ckpt_dtype_name(in->dtype));
            for (int k = 0; k < in->ndim; k++) printf("%s%" PRId64, k ? "," : "", in->shape[k]);
            printf("],\"raw_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64 ",\"compression_ratio\":%.4f,\"sha256\":\"%s\"}",
                   in->raw_bytes, in->stored_bytes, ratio(in->raw_bytes, in->stored_bytes), in->sha256);
        }
        printf("]}\n");
        return;
    }
    printf("parameters: %" PRId64 "   tensors: %d   %" PRIu64 " bytes raw, %" PRIu64 " stored (%.3fx)\n", d->parameters,
           d->n_rows, d->raw_bytes, d->stored_bytes, ratio(d->raw_bytes, d->stored_bytes));
    printf("%-48s %-8s %-14s %14s %8s\n", "tensor", "dtype", "shape", "stored bytes", "ratio");
    for (int i = 0; i < d->n_rows; i++) {
        const ckpt_h5_dataset_info *in = &d->rows[i].info;
        char shape[128];
        ckpt_shape_format(in->ndim, in->shape, shape, sizeof shape);
        printf("%-48s %-8s %-14s %14" PRIu64 " %7.3fx\n", d->rows[i].name, ckpt_dtype_name(in->dtype), shape,
               in->stored_bytes, ratio(in->raw_bytes, in->stored_bytes));
    }
}

static void print_file(const char *path, const pipe_description *d)
{
    if (cli_json) {
        printf("{\"file\":");
        cli_json_str(path);
        printf(",");
    } else
        printf("%s: ", path);
    for (int i = 0; i < d->n_attrs; i++) {
        const pipe_file_attr *a = &d->attrs[i];
        if (!cli_json) printf("%s%s %s", i ? ", " : "", a->name, a->value);
        else if (a->is_int) printf("\"%s\":%s,", a->name, a->value);
        else {
            printf("\"%s\":", a->name);
            cli_json_str(a->value);
            printf(",");
        }
    }
    if (!cli_json) printf("\n");
    print_rows(d);
}

static void print_version(const char *url, const pipe_description *d)
{
    const ckpt_manifest *idx = d->index;
    if (cli_json) {
        printf("{\"store\":");
        cli_json_str(url);
        printf(",\"version\":%" PRId64 ",\"index\":", d->ref.version);
        cli_json_str(d->ref.index_key);
        printf(",\"index_sha256\":\"%s\",\"parts\":%d,", d->ref.index_sha, idx->n_objects);
        for (int i = 0; i < idx->n_headers; i++)
            if (strcmp(idx->headers[i].key, "version") && strcmp(idx->headers[i].key, "parts")) {
                printf("\"%s\":", idx->headers[i].key);
                cli_json_str(idx->headers[i].value);
                printf(",");
            }
    } else {
        printf("%s: v%06" PRId64 " %s (%d parts)\n", url, d->ref.version, d->ref.index_key, idx->n_objects);
        for (int i = 0; i < idx->n_headers; i++) printf("  %s=%s\n", idx->headers[i].key, idx->headers[i].value);
        for (int i = 0; i < idx->n_contributors; i++)
            printf("  contributor %s %s\n", idx->contributors[i].facility, idx->contributors[i].key);
    }
    print_rows(d);
}

int cmd_show(int argc, char **argv)
{
    const char *C = "show";
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    store_options sopt;
    const char *url, *path;
    int64_t version;
    int rc = cli_parse_target(C, argc, argv, &sopt, &url, &path, &version);
    if (rc) return rc;
    int file = 0;
    if (path && !strstr(path, "://")) {
        struct stat sb;
        if (stat(path, &sb) != 0) return cli_report(C, xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such file or directory", path));
        file = !S_ISDIR(sb.st_mode);
    }
    store *s = NULL;
    pipe_description d = {0};
    xffl_status st = file ? pipe_describe_file(path, &d) : store_open(url ? url : path, &sopt, &s);
    if (st == XFFL_OK && !file) st = pipe_describe_version(s, version, &d);
    if (st == XFFL_OK && file) print_file(path, &d);
    else if (st == XFFL_OK) print_version(store_url(s), &d);
    pipe_description_free(&d);
    store_close(s);
    return cli_report(C, st);
}
