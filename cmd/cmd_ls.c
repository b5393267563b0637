/* xffl ls: what a store holds, grouped the way the layout is (DESIGN.md "Store layout"):
 * federation.h5, LATEST, versions/vNNNNNN/, rounds/rNNNNNN/<facility>/aN/, the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "storage/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl ls --store URL [--keys] [--json] [store flags]\n"
            "\n"
            "Lists a store: federation.h5, LATEST, each version (objects, bytes, INDEX),\n"
            "each round's attempts per facility (parts, bytes, committed/rejected), other\n"
            "keys and partial writes left by killed writers. Results on stdout.\n"
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

/* A group of keys sharing a folder: versions/v000003/ or rounds/r000004/A/a1/. */
typedef struct {
    char dir[256];
    int kind; /* 0 version, 1 attempt */
    size_t objects;
    uint64_t bytes;
    char index[128];
    int commit, rejected;
} group;

static int is_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return n > 0;
}

/* Length of the group folder key belongs to (including the trailing '/'), or 0. */
static size_t group_dir(const char *key, int *kind)
{
    if (!strncmp(key, "versions/v", 10) && is_digits(key + 10, 6) && key[16] == '/') {
        *kind = 0;
        return 17;
    }
    if (!strncmp(key, "rounds/r", 8) && is_digits(key + 8, 6) && key[14] == '/') {
        const char *fac = key + 15, *s1 = strchr(fac, '/');
        if (!s1 || s1 == fac || s1[1] != 'a') return 0;
        const char *s2 = strchr(s1 + 2, '/');
        if (!s2 || !is_digits(s1 + 2, (size_t)(s2 - s1 - 2))) return 0;
        *kind = 1;
        return (size_t)(s2 - key) + 1;
    }
    return 0;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
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
    store_listing l = {0}, partial = {0};
    group *g = NULL;
    size_t ng = 0;
    char *latest = NULL;
    xffl_status st = store_open(url, &opt, &s);
    if (st == XFFL_OK) st = store_list(s, "", &l);
    if (st == XFFL_OK) st = store_list_partial(s, "", &partial);
    if (st != XFFL_OK) goto out;
    g = calloc(l.count + 1, sizeof *g);
    if (!g) { st = xffl_fail(XFFL_ERR_NOMEM, "listing %s", url); goto out; }
    uint64_t total = 0, fed_size = 0, other_bytes = 0;
    size_t other = 0;
    int have_fed = 0, have_latest = 0;
    for (size_t i = 0; i < l.count; i++) {
        const char *k = l.items[i].key;
        total += l.items[i].size;
        int kind = 0;
        size_t dl = group_dir(k, &kind);
        if (!strcmp(k, "federation.h5")) {
            have_fed = 1;
            fed_size = l.items[i].size;
        } else if (!strcmp(k, "LATEST")) {
            have_latest = 1;
        } else if (dl && dl < sizeof g->dir) {
            /* the listing is sorted, so a group's keys are adjacent */
            if (!ng || strncmp(g[ng - 1].dir, k, dl) || g[ng - 1].dir[dl] != 0) {
                memcpy(g[ng].dir, k, dl);
                g[ng].dir[dl] = 0;
                g[ng].kind = kind;
                ng++;
            }
            group *c = &g[ng - 1];
            c->objects++;
            c->bytes += l.items[i].size;
            const char *base = k + dl;
            if (!strncmp(base, "INDEX-", 6)) snprintf(c->index, sizeof c->index, "%s", base);
            if (!strncmp(base, "COMMIT-", 7)) c->commit = 1;
            if (!strncmp(base, "REJECTED-", 9)) c->rejected = 1;
        } else {
            other++;
            other_bytes += l.items[i].size;
        }
    }
    size_t latest_len = 0;
    if (have_latest) {
        void *d = NULL;
        st = store_get(s, "LATEST", &d, &latest_len);
        if (st != XFFL_OK) goto out;
        latest = d;
        latest[strcspn(latest, "\n")] = 0;
    }
    char a[32], b[32];
    if (cli_json) {
        printf("{\"store\": ");
        json_str(url);
        printf(", \"objects\": %zu, \"bytes\": %llu, \"federation_bytes\": %lld, \"latest\": ", l.count,
               (unsigned long long)total, have_fed ? (long long)fed_size : -1LL);
        if (latest) json_str(latest);
        else printf("null");
        printf(", \"versions\": [");
        int first = 1;
        for (size_t i = 0; i < ng; i++) {
            if (g[i].kind) continue;
            printf("%s{\"version\": %d, \"objects\": %zu, \"bytes\": %llu, \"index\": ", first ? "" : ", ",
                   atoi(g[i].dir + 10), g[i].objects, (unsigned long long)g[i].bytes);
            json_str(g[i].index);
            printf("}");
            first = 0;
        }
        printf("], \"attempts\": [");
        first = 1;
        for (size_t i = 0; i < ng; i++) {
            if (!g[i].kind) continue;
            char fac[256];
            const char *f = g[i].dir + 15, *sl = strchr(f, '/');
            snprintf(fac, sizeof fac, "%.*s", (int)(sl - f), f);
            printf("%s{\"round\": %d, \"facility\": ", first ? "" : ", ", atoi(g[i].dir + 8));
            json_str(fac);
            printf(", \"attempt\": %d, \"objects\": %zu, \"bytes\": %llu, \"committed\": %s, \"rejected\": %s}",
                   atoi(sl + 2), g[i].objects, (unsigned long long)g[i].bytes, g[i].commit ? "true" : "false",
                   g[i].rejected ? "true" : "false");
            first = 0;
        }
        printf("], \"other_objects\": %zu, \"other_bytes\": %llu, \"partial_writes\": %zu", other,
               (unsigned long long)other_bytes, partial.count);
        if (keys) {
            printf(", \"keys\": [");
            for (size_t i = 0; i < l.count; i++) {
                printf("%s{\"key\": ", i ? ", " : "");
                json_str(l.items[i].key);
                printf(", \"bytes\": %llu, \"mtime\": %lld}", (unsigned long long)l.items[i].size,
                       (long long)l.items[i].mtime);
            }
            printf("]");
        }
        printf("}\n");
        goto out;
    }
    human(a, sizeof a, total);
    printf("store %s: %zu objects, %s\n", url, l.count, a);
    if (have_fed) {
        human(a, sizeof a, fed_size);
        printf("federation.h5  %s\n", a);
    } else
        printf("federation.h5  (none: not initialized)\n");
    printf("LATEST         %s\n", latest ? latest : "(none)");
    int nv = 0, na = 0;
    for (size_t i = 0; i < ng; i++) *(g[i].kind ? &na : &nv) += 1;
    printf("versions: %d\n", nv);
    for (size_t i = 0; i < ng; i++) {
        if (g[i].kind) continue;
        human(a, sizeof a, g[i].bytes);
        char vname[8];
        snprintf(vname, sizeof vname, "%.7s", g[i].dir + 9);
        int is_latest = latest && !strncmp(latest, vname, 7) && (latest[7] == ' ' || latest[7] == 0);
        printf("  %s%s %4zu objects %10s  %s\n", vname, is_latest ? "*" : " ", g[i].objects, a,
               g[i].index[0] ? g[i].index : "(no INDEX)");
    }
    printf("round attempts: %d\n", na);
    for (size_t i = 0; i < ng; i++) {
        if (!g[i].kind) continue;
        human(a, sizeof a, g[i].bytes);
        const char *state = g[i].rejected ? "rejected" : g[i].commit ? "committed" : "incomplete";
        /* rounds/r000004/A/a1/ -> r000004 A a1 */
        char r[8], fac[200];
        snprintf(r, sizeof r, "%.7s", g[i].dir + 7);
        const char *f = g[i].dir + 15, *sl = strchr(f, '/');
        snprintf(fac, sizeof fac, "%.*s", (int)(sl - f), f);
        snprintf(b, sizeof b, "%.*s", (int)(strlen(sl + 1) - 1), sl + 1);
        printf("  %s %-12s %-4s %-10s %4zu objects %10s\n", r, fac, b, state, g[i].objects, a);
    }
    if (other) {
        human(a, sizeof a, other_bytes);
        printf("other keys: %zu (%s)\n", other, a);
    }
    if (partial.count) printf("partial writes: %zu (left by killed writers; gc removes them)\n", partial.count);
    if (keys) {
        printf("keys:\n");
        for (size_t i = 0; i < l.count; i++) printf("  %12llu  %s\n", (unsigned long long)l.items[i].size, l.items[i].key);
    }
out:
    free(latest);
    free(g);
    store_listing_free(&l);
    store_listing_free(&partial);
    store_close(s);
    return cli_report(cmd, st);
}
