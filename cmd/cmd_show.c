/* xffl show: model config, parameter count and every tensor's shape, dtype, stored
 * size and compression ratio, of a store's version or of one HDF5 file. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "common/util.h"
#include "libckpt/h5part.h"
#include "libckpt/manifest.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"

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

typedef struct {
    char name[512];
    ckpt_h5_dataset_info info;
} row;

typedef struct {
    row *rows;
    int n, cap;
} rows;

static xffl_status add_row(rows *rs, const char *name, const ckpt_h5_dataset_info *info)
{
    if (rs->n == rs->cap) {
        int cap = rs->cap ? rs->cap * 2 : 64;
        row *r = realloc(rs->rows, (size_t)cap * sizeof *r);
        XFFL_RETURN_IF(!r, XFFL_ERR_NOMEM, "tensor list");
        rs->rows = r;
        rs->cap = cap;
    }
    snprintf(rs->rows[rs->n].name, sizeof rs->rows[rs->n].name, "%s", name);
    rs->rows[rs->n++].info = *info;
    return XFFL_OK;
}

/* Every dataset in the groups an xffl file can hold. */
static xffl_status collect(ckpt_h5_reader *r, rows *rs)
{
    static const char *const groups[] = {"model", "outer", "outer/m", "outer/v", "delta", "scale"};
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
            if (s == XFFL_OK) s = add_row(rs, path, &info);
        }
        ckpt_h5_names_free(names, n);
        XFFL_FORWARD(s);
    }
    return XFFL_OK;
}

/* Rows in the order people know a model by: group, then the parameter table. */
static const ckpt_param_table *order_table;

static int rank(const char *name)
{
    static const char *const groups[] = {"model/", "outer/m/", "outer/v/", "outer/", "delta/", "scale/"};
    for (int g = 0; g < 6; g++) {
        size_t n = strlen(groups[g]);
        if (strncmp(name, groups[g], n) == 0) {
            int i = order_table ? ckpt_param_find(order_table, name + n) : -1;
            return g * 100000 + (i < 0 ? 99999 : i);
        }
    }
    return 6 * 100000;
}

static int cmp_rows(const void *a, const void *b)
{
    const row *x = a, *y = b;
    int rx = rank(x->name), ry = rank(y->name);
    return rx != ry ? (rx < ry ? -1 : 1) : strcmp(x->name, y->name);
}

static void sort_rows(rows *rs, const ckpt_model_config *cfg, int have_cfg)
{
    ckpt_param_table *t = NULL;
    if (have_cfg && ckpt_param_table_create(cfg, &t) != XFFL_OK) t = NULL;
    order_table = t;
    if (rs->n) qsort(rs->rows, (size_t)rs->n, sizeof *rs->rows, cmp_rows);
    order_table = NULL;
    ckpt_param_table_free(t);
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

static void print_rows(const rows *rs)
{
    int64_t params = 0;
    uint64_t raw = 0, stored = 0;
    for (int i = 0; i < rs->n; i++) {
        if (strncmp(rs->rows[i].name, "model/", 6) == 0 || strncmp(rs->rows[i].name, "delta/", 6) == 0)
            params += rs->rows[i].info.numel;
        raw += rs->rows[i].info.raw_bytes;
        stored += rs->rows[i].info.stored_bytes;
    }
    double ratio = stored ? (double)raw / (double)stored : 0;
    if (cli_json) {
        printf("\"parameters\":%" PRId64 ",\"raw_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64
               ",\"compression_ratio\":%.4f,\"tensors\":[",
               params, raw, stored, ratio);
        for (int i = 0; i < rs->n; i++) {
            const ckpt_h5_dataset_info *in = &rs->rows[i].info;
            char shape[128];
            ckpt_shape_format(in->ndim, in->shape, shape, sizeof shape);
            printf("%s{\"name\":\"%s\",\"dtype\":\"%s\",\"shape\":[", i ? "," : "", rs->rows[i].name,
                   ckpt_dtype_name(in->dtype));
            for (int d = 0; d < in->ndim; d++) printf("%s%" PRId64, d ? "," : "", in->shape[d]);
            printf("],\"raw_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64 ",\"compression_ratio\":%.4f,\"sha256\":\"%s\"}",
                   in->raw_bytes, in->stored_bytes, in->stored_bytes ? (double)in->raw_bytes / (double)in->stored_bytes : 0,
                   in->sha256);
        }
        printf("]}\n");
        return;
    }
    printf("parameters: %" PRId64 "   tensors: %d   %" PRIu64 " bytes raw, %" PRIu64 " stored (%.3fx)\n", params, rs->n,
           raw, stored, ratio);
    printf("%-48s %-8s %-14s %14s %8s\n", "tensor", "dtype", "shape", "stored bytes", "ratio");
    for (int i = 0; i < rs->n; i++) {
        const ckpt_h5_dataset_info *in = &rs->rows[i].info;
        char shape[128];
        ckpt_shape_format(in->ndim, in->shape, shape, sizeof shape);
        printf("%-48s %-8s %-14s %14" PRIu64 " %7.3fx\n", rs->rows[i].name, ckpt_dtype_name(in->dtype), shape,
               in->stored_bytes, in->stored_bytes ? (double)in->raw_bytes / (double)in->stored_bytes : 0);
    }
}

static void print_str_attr(ckpt_h5_reader *r, const char *name, int *first)
{
    char *v = NULL;
    if (ckpt_h5_get_attr_str(r, name, &v) != XFFL_OK) return;
    if (cli_json) printf("\"%s\":\"%s\",", name, v);
    else printf("%s%s %s", *first ? "" : ", ", name, v);
    *first = 0;
    free(v);
}

static void print_int_attr(ckpt_h5_reader *r, const char *name, int *first)
{
    int64_t v;
    if (ckpt_h5_get_attr_int(r, name, &v) != XFFL_OK) return;
    if (cli_json) printf("\"%s\":%" PRId64 ",", name, v);
    else printf("%s%s %" PRId64, *first ? "" : ", ", name, v);
    *first = 0;
}

static xffl_status show_file(const char *path)
{
    ckpt_h5_reader *r;
    XFFL_FORWARD(ckpt_h5_reader_open(path, NULL, &r));
    rows rs = {0};
    ckpt_model_config cfg;
    int have_cfg = pipe_model_attrs_read(r, &cfg) == XFFL_OK;
    xffl_status s = collect(r, &rs);
    if (s == XFFL_OK && rs.n == 0) s = xffl_fail(XFFL_ERR_INVALID, "%s: no tensors (not an xffl file?)", path);
    if (s == XFFL_OK) {
        int first = 1;
        if (cli_json) printf("{\"file\":\"%s\",", path);
        else printf("%s: ", path);
        static const char *const strs[] = {"format", "algorithm", "contributors", "facility", "encoding", "groups"};
        static const char *const ints[] = {"format_version", "version", "parent", "round", "base_version",
                                           "tokens_seen", "tokens", "steps", "part", "parts"};
        for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) print_str_attr(r, strs[i], &first);
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) print_int_attr(r, ints[i], &first);
        if (!cli_json) printf("\n");
        print_config(&cfg, have_cfg);
        sort_rows(&rs, &cfg, have_cfg);
        print_rows(&rs);
    }
    free(rs.rows);
    ckpt_h5_reader_close(r);
    return s;
}

static xffl_status show_store(const char *url, const store_options *sopt, int64_t version)
{
    store *s = NULL;
    XFFL_FORWARD(store_open(url, sopt, &s));
    pipe_version_ref ref;
    ckpt_manifest *idx = NULL;
    void *data = NULL;
    size_t len = 0;
    char *dir = NULL;
    rows rs = {0};
    ckpt_model_config cfg;
    int have_cfg = 0;
    xffl_status st;
    XFFL_CHECK_GOTO(st, pipe_version_resolve(s, version, &ref), out);
    if (ref.index_sha[0]) XFFL_CHECK_GOTO(st, store_get_verified(s, ref.index_key, ref.index_sha, &data, &len), out);
    else XFFL_CHECK_GOTO(st, store_get(s, ref.index_key, &data, &len), out);
    XFFL_CHECK_GOTO(st, ckpt_manifest_parse(data, len, ref.index_key, &idx), out);
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("show", &dir), out);
    for (int i = 0; i < idx->n_objects; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/part.h5", dir);
        XFFL_CHECK_GOTO(st, store_get_file_verified(s, idx->objects[i].name, idx->objects[i].sha256, path), out);
        ckpt_h5_reader *r;
        XFFL_CHECK_GOTO(st, ckpt_h5_reader_open(path, NULL, &r), out);
        if (!have_cfg) have_cfg = pipe_model_attrs_read(r, &cfg) == XFFL_OK;
        st = collect(r, &rs);
        ckpt_h5_reader_close(r);
        if (st != XFFL_OK) {
            xffl_wrap(st, "%s", idx->objects[i].name);
            goto out;
        }
    }
    if (cli_json) {
        printf("{\"store\":\"%s\",\"version\":%" PRId64 ",\"index\":\"%s\",\"index_sha256\":\"%s\",\"parts\":%d,", store_url(s),
               ref.version, ref.index_key, ref.index_sha, idx->n_objects);
        for (int i = 0; i < idx->n_headers; i++)
            if (strcmp(idx->headers[i].key, "version") && strcmp(idx->headers[i].key, "parts"))
                printf("\"%s\":\"%s\",", idx->headers[i].key, idx->headers[i].value);
    } else {
        printf("%s: v%06" PRId64 " %s (%d parts)\n", store_url(s), ref.version, ref.index_key, idx->n_objects);
        for (int i = 0; i < idx->n_headers; i++)
            printf("  %s=%s\n", idx->headers[i].key, idx->headers[i].value);
        for (int i = 0; i < idx->n_contributors; i++)
            printf("  contributor %s %s\n", idx->contributors[i].facility, idx->contributors[i].key);
    }
    print_config(&cfg, have_cfg);
    sort_rows(&rs, &cfg, have_cfg);
    print_rows(&rs);
out:
    if (dir) xffl_rmtree(dir);
    free(dir);
    free(data);
    free(rs.rows);
    ckpt_manifest_free(idx);
    store_close(s);
    return st;
}

int cmd_show(int argc, char **argv)
{
    const char *C = "show";
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    store_options sopt;
    store_options_default(&sopt);
    const char *url = NULL, *path = NULL;
    int64_t version = -1;
    int rc = cli_parse_target(C, argc, argv, &sopt, &url, &path, &version);
    if (rc) return rc;
    if (path && !strstr(path, "://")) {
        struct stat sb;
        if (stat(path, &sb) != 0) return cli_report(C, xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such file or directory", path));
        if (!S_ISDIR(sb.st_mode)) return cli_report(C, show_file(path));
    }
    return cli_report(C, show_store(url ? url : path, &sopt, version));
}
