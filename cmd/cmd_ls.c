/* xffl ls: what a store holds, grouped the way the layout is (docs/design.md "Store layout"):
 * federation.h5, tokenizer.model, LATEST, versions/vNNNNNN/, rounds/rNNNNNN/<facility>/aN/,
 * the rest. */
#include <stdio.h>
#include "cmd/cli.h"
#include "pipelines/listing.h"
#include "storage/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl ls --store URL [--keys] [--json] [store flags]\n"
            "\n"
            "Lists a store: federation.h5, tokenizer.model (init --tokenizer), LATEST, each\n"
            "version (objects, bytes, INDEX, update bytes), each round's attempts per facility (parts, bytes,\n"
            "committed/rejected), other keys and partial writes left by killed writers.\n"
            "Results on stdout.\n"
            "\n"
            "  --store URL             s3://bucket/prefix, file:///path or a path\n"
            "  --keys                  also list every key with its size\n"
            "  --json                  one JSON object (global flag)\n" CLI_STORE_FLAGS_HELP
            "\n"
            "exit codes: 0 listed (an empty store too), 1 failed, 2 usage, 74 store unreachable\n");
}

static void human(char *buf, size_t cap, uint64_t n)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1024 && i < 4) v /= 1024, i++;
    if (i == 0) snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else snprintf(buf, cap, "%.1f %s", v, u[i]);
}

static void print_json(const char *url, const pipe_store_listing *l, int keys)
{
    printf("{\"store\": ");
    cli_json_str(url);
    printf(", \"objects\": %zu, \"bytes\": %llu, \"federation_bytes\": %lld, \"latest\": ", l->all.count,
           (unsigned long long)l->total_bytes, l->have_federation ? (long long)l->federation_bytes : -1LL);
    if (l->latest) cli_json_str(l->latest);
    else printf("null");
    if (l->have_tokenizer) printf(", \"tokenizer_bytes\": %llu", (unsigned long long)l->tokenizer_bytes);
    printf(", \"versions\": [");
    for (size_t i = 0; i < l->n_versions; i++) {
        const pipe_listing_folder *g = &l->versions[i];
        printf("%s{\"version\": %lld, \"objects\": %zu, \"bytes\": %llu, \"update_bytes\": %llu, \"index\": ",
               i ? ", " : "", (long long)g->number, g->objects, (unsigned long long)g->bytes,
               (unsigned long long)g->update_bytes);
        cli_json_str(g->index);
        printf("}");
    }
    printf("], \"attempts\": [");
    for (size_t i = 0; i < l->n_attempts; i++) {
        const pipe_listing_folder *g = &l->attempts[i];
        printf("%s{\"round\": %lld, \"facility\": ", i ? ", " : "", (long long)g->number);
        cli_json_str(g->facility);
        printf(", \"attempt\": %d, \"objects\": %zu, \"bytes\": %llu, \"committed\": %s, \"rejected\": %s}", g->attempt,
               g->objects, (unsigned long long)g->bytes, g->commit ? "true" : "false", g->rejected ? "true" : "false");
    }
    printf("], \"other_objects\": %zu, \"other_bytes\": %llu, \"partial_writes\": %zu", l->n_other,
           (unsigned long long)l->other_bytes, l->n_partial);
    if (keys) {
        printf(", \"keys\": [");
        for (size_t i = 0; i < l->all.count; i++) {
            printf("%s{\"key\": ", i ? ", " : "");
            cli_json_str(l->all.items[i].key);
            printf(", \"bytes\": %llu, \"mtime\": %lld}", (unsigned long long)l->all.items[i].size,
                   (long long)l->all.items[i].mtime);
        }
        printf("]");
    }
    printf("}\n");
}

static void print_text(const char *url, const pipe_store_listing *l, int keys)
{
    char a[32];
    human(a, sizeof a, l->total_bytes);
    printf("store %s: %zu objects, %s\n", url, l->all.count, a);
    if (l->have_federation) {
        human(a, sizeof a, l->federation_bytes);
        printf("federation.h5  %s\n", a);
    } else
        printf("federation.h5  (none: not initialized)\n");
    if (l->have_tokenizer) {
        human(a, sizeof a, l->tokenizer_bytes);
        printf("%s  %s\n", PIPE_TOKENIZER_KEY, a);
    }
    printf("LATEST         %s\n", l->latest ? l->latest : "(none)");
    printf("versions: %zu\n", l->n_versions);
    for (size_t i = 0; i < l->n_versions; i++) {
        const pipe_listing_folder *g = &l->versions[i];
        human(a, sizeof a, g->bytes);
        char u[32] = "";
        if (g->update_bytes) human(u, sizeof u, g->update_bytes);
        printf("  v%06lld%s %4zu objects %10s  %s%s%s%s\n", (long long)g->number, g->is_latest ? "*" : " ", g->objects, a,
               g->index[0] ? g->index : "(no INDEX)", u[0] ? "  (update " : "", u, u[0] ? ")" : "");
    }
    printf("round attempts: %zu\n", l->n_attempts);
    for (size_t i = 0; i < l->n_attempts; i++) {
        const pipe_listing_folder *g = &l->attempts[i];
        human(a, sizeof a, g->bytes);
        const char *state = g->rejected ? "rejected" : g->commit ? "committed" : "incomplete";
        char att[16];
        snprintf(att, sizeof att, "a%d", g->attempt);
        printf("  r%06lld %-12s %-4s %-10s %4zu objects %10s\n", (long long)g->number, g->facility, att, state,
               g->objects, a);
    }
    if (l->n_other) {
        human(a, sizeof a, l->other_bytes);
        printf("other keys: %zu (%s)\n", l->n_other, a);
    }
    if (l->n_partial) printf("partial writes: %zu (left by killed writers; gc removes them)\n", l->n_partial);
    if (keys) {
        printf("keys:\n");
        for (size_t i = 0; i < l->all.count; i++)
            printf("  %12llu  %s\n", (unsigned long long)l->all.items[i].size, l->all.items[i].key);
    }
}

int cmd_ls(int argc, char **argv)
{
    const char *cmd = "ls", *url = NULL;
    int keys = 0;
    store_options opt;
    store_options_default(&opt);
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const cli_opt opts[] = {{"--store", CLI_STR, &url, 0, 0, NULL}, {"--keys", CLI_FLAG, &keys, 0, 0, NULL}, {0}};
    int rc = cli_parse(cmd, argc, argv, opts, &opt, NULL);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");

    store *s = NULL;
    pipe_store_listing l = {0};
    xffl_status st = store_open(url, &opt, &s);
    if (st == XFFL_OK) st = pipe_store_listing_load(s, &l);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    if (cli_json) print_json(url, &l, keys);
    else print_text(url, &l, keys);
    pipe_store_listing_free(&l);
    return 0;
}
