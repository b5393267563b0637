#include "cmd/cli.h"

#include <stdarg.h>
#include <string.h>
#include "common/util.h"

int cli_json = 0;

int cli_report(const char *cmd, xffl_status s)
{
    if (s == XFFL_OK) return 0;
    const char *msg = xffl_errmsg();
    if (msg[0])
        fprintf(stderr, "xffl %s: %s (%s)\n", cmd, msg, xffl_strerror(s));
    else
        fprintf(stderr, "xffl %s: %s\n", cmd, xffl_strerror(s));
    return xffl_exit_code(s);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "xffl %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'xffl %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

/* The value of option argv[*i] (advancing *i past it), or NULL after a usage error. */
static const char *take_value(const char *cmd, int argc, char **argv, int *i)
{
    const char *opt = argv[*i];
    const char *eq = strchr(opt, '=');
    if (opt[0] == '-' && opt[1] == '-' && eq) return eq + 1; /* --flag=value */
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "option %s needs a value", opt);
        return NULL;
    }
    return argv[++*i];
}

/* The entry of opts that arg names, or NULL. */
static const cli_opt *find_opt(const cli_opt *opts, const char *arg)
{
    for (; opts && opts->name; opts++) {
        size_t n = strlen(opts->name);
        if (!strncmp(arg, opts->name, n) && (arg[n] == 0 || arg[n] == '=')) return opts;
    }
    return NULL;
}

/* Applies the option argv[*i] (its value consumed): 0, or 2 after a usage error. */
static int apply_opt(const char *cmd, const cli_opt *o, int argc, char **argv, int *i)
{
    if (o->kind == CLI_FLAG) {
        if (argv[*i][strlen(o->name)] == '=') return cli_usage_error(cmd, "option %s takes no value", o->name);
        *(int *)o->dst = 1;
        if (o->seen) ++*o->seen;
        return 0;
    }
    const char *v = take_value(cmd, argc, argv, i);
    if (!v) return 2;
    long n = 0;
    double d = 0;
    /* A bad number: xffl_parse_* has named the option and the text. */
    switch (o->kind) {
    case CLI_STR:
        if (o->lo > 0 && !*v) return cli_usage_error(cmd, "%s needs a value", o->name);
        *(const char **)o->dst = v;
        break;
    case CLI_INT:
    case CLI_LONG:
    case CLI_I64:
        if (xffl_parse_long(o->name, v, o->lo, o->hi, &n) != XFFL_OK) return cli_report(cmd, XFFL_ERR_USAGE);
        if (o->kind == CLI_INT) *(int *)o->dst = (int)n;
        else if (o->kind == CLI_LONG) *(long *)o->dst = n;
        else *(int64_t *)o->dst = n;
        break;
    case CLI_DOUBLE:
        if (xffl_parse_double(o->name, v, &d) != XFFL_OK) return cli_report(cmd, XFFL_ERR_USAGE);
        if (o->lo < o->hi && !(d >= (double)o->lo && d <= (double)o->hi))
            return cli_usage_error(cmd, "%s %s: expected %ld..%ld", o->name, v, o->lo, o->hi);
        *(double *)o->dst = d;
        break;
    case CLI_SECONDS:
        if (xffl_parse_double(o->name, v, &d) != XFFL_OK || !(d >= 0))
            return cli_usage_error(cmd, "%s needs seconds >= 0, not '%s'", o->name, v);
        *(double *)o->dst = d;
        break;
    case CLI_SIZE:
        if (xffl_parse_size(v, (uint64_t *)o->dst) != XFFL_OK) return cli_report(cmd, XFFL_ERR_USAGE);
        break;
    case CLI_VERSION:
        if (!strcmp(v, "latest")) {
            *(int64_t *)o->dst = -1;
        } else {
            if (xffl_parse_long(o->name, v, 0, 999999, &n) != XFFL_OK) return cli_report(cmd, XFFL_ERR_USAGE);
            *(int64_t *)o->dst = n;
        }
        break;
    case CLI_LIST:
        if (*o->seen >= o->hi) return cli_usage_error(cmd, "too many %s (at most %ld)", o->name, o->hi);
        ((const char **)o->dst)[*o->seen] = v;
        break; /* *seen counts it below */
    case CLI_FLAG:
        break;
    }
    if (o->seen) ++*o->seen;
    return 0;
}

/* cli_parse with the store flags tuning so (when not NULL) and, when url is not NULL,
 * --store URL into *url. */
static int parse(const char *cmd, int argc, char **argv, const cli_opt *opts, store_options *so, const char **url,
                 cli_args *args)
{
    /* Every command's store I/O is tuned by the same flags, with the same limits. */
    const cli_opt store_opts[] = {{"--jobs", CLI_INT, so ? &so->jobs : NULL, 1, 64, NULL},
                                  {"--retries", CLI_INT, so ? &so->retries : NULL, 0, 1000, NULL},
                                  {"--retry-deadline", CLI_SECONDS, so ? &so->retry_deadline : NULL, 0, 0, NULL},
                                  {"--store", CLI_STR, url, 0, 0, NULL},
                                  {0}};
    if (args) args->n = 0, args->rest = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const cli_opt *o = so ? find_opt(store_opts, a) : NULL;
        if (o && !o->dst) o = NULL; /* --store, when the command names it in opts or not at all */
        if (!o) o = find_opt(opts, a);
        if (o) {
            if (apply_opt(cmd, o, argc, argv, &i)) return 2;
        } else if (args && args->dashdash && !strcmp(a, "--")) {
            args->rest = i + 1;
            return 0;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (!args || !args->v) {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        } else if (args->n >= args->max) {
            const char *what = args->what ? args->what : "operand";
            if (args->max == 1) return cli_usage_error(cmd, "more than one %s ('%s')", what, a);
            return cli_usage_error(cmd, "more than %d %s ('%s')", args->max, what, a);
        } else {
            args->v[args->n++] = a;
        }
    }
    return 0;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, store_options *so, cli_args *args)
{
    return parse(cmd, argc, argv, opts, so, NULL, args);
}

int cli_parse_store(const char *cmd, int argc, char **argv, const cli_opt *opts, const char **url, store_options *so,
                    cli_args *args)
{
    *url = NULL;
    store_options_default(so);
    return parse(cmd, argc, argv, opts, so, url, args);
}

int cli_open_store(const char *cmd, const char *url, const store_options *so, store **s)
{
    *s = NULL;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    return cli_report(cmd, store_open(url, so, s));
}

int cli_parse_target(const char *cmd, int argc, char **argv, store_options *sopt, const char **url, const char **path,
                     int64_t *version)
{
    store_options_default(sopt);
    *url = *path = NULL;
    *version = -1;
    const cli_opt opts[] = {{"--store", CLI_STR, url, 0, 0, NULL}, {"--version", CLI_VERSION, version, 0, 0, NULL}, {0}};
    cli_args args = {.v = path, .max = 1, .what = "PATH"};
    int rc = cli_parse(cmd, argc, argv, opts, sopt, &args);
    if (rc) return rc;
    if (*url && *path) return cli_usage_error(cmd, "give PATH or --store URL, not both");
    if (!*url && !*path) return cli_usage_error(cmd, "a PATH, FILE or --store URL is required");
    return 0;
}

void cli_put_shell_word(FILE *f, const char *word, const char *end)
{
    if (*word && strspn(word, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+%@") == strlen(word)) {
        fputs(word, f);
    } else {
        fputc('\'', f);
        for (const char *p = word; *p; p++) {
            if (*p == '\'') fputs("'\\''", f);
            else fputc(*p, f);
        }
        fputc('\'', f);
    }
    fputs(end, f);
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

void cli_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}
