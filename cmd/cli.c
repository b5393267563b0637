#include "cmd/cli.h"

#include <stdarg.h>
#include <string.h>
#include "common/util.h"

int cli_verbose = 0;
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

const char *cli_value(const char *cmd, int argc, char **argv, int *i)
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

int cli_is_flag(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == 0 || arg[n] == '=');
}

int cli_store_flag(const char *cmd, int argc, char **argv, int *i, store_options *opt)
{
    const char *a = argv[*i];
    long v;
    double d;
    if (cli_is_flag(a, "--jobs")) {
        const char *val = cli_value(cmd, argc, argv, i);
        if (!val || xffl_parse_long("--jobs", val, 1, 64, &v)) return val ? cli_report(cmd, XFFL_ERR_USAGE), -1 : -1;
        opt->jobs = (int)v;
        return 1;
    }
    if (cli_is_flag(a, "--retries")) {
        const char *val = cli_value(cmd, argc, argv, i);
        if (!val || xffl_parse_long("--retries", val, 0, 1000, &v)) return val ? cli_report(cmd, XFFL_ERR_USAGE), -1 : -1;
        opt->retries = (int)v;
        return 1;
    }
    if (cli_is_flag(a, "--retry-deadline")) {
        const char *val = cli_value(cmd, argc, argv, i);
        if (!val || xffl_parse_double("--retry-deadline", val, &d) || d < 0)
            return val ? (cli_usage_error(cmd, "--retry-deadline needs seconds >= 0"), -1) : -1;
        opt->retry_deadline = d;
        return 1;
    }
    return 0;
}

int cli_parse_target(const char *cmd, int argc, char **argv, store_options *sopt, const char **url, const char **path,
                     int64_t *version)
{
    *url = *path = NULL;
    *version = -1;
    for (int i = 1; i < argc; i++) {
        int r = cli_store_flag(cmd, argc, argv, &i, sopt);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (cli_is_flag(argv[i], "--store")) {
            if (!(*url = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (cli_is_flag(argv[i], "--version")) {
            const char *v = cli_value(cmd, argc, argv, &i);
            long n;
            if (!v) return 2;
            if (strcmp(v, "latest") != 0) {
                if (xffl_parse_long("--version", v, 0, 999999, &n) != XFFL_OK) return cli_report(cmd, XFFL_ERR_USAGE);
                *version = n;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (!*path) {
            *path = argv[i];
        } else {
            return cli_usage_error(cmd, "more than one PATH ('%s')", argv[i]);
        }
    }
    if (*url && *path) return cli_usage_error(cmd, "give PATH or --store URL, not both");
    if (!*url && !*path) return cli_usage_error(cmd, "a PATH, FILE or --store URL is required");
    return 0;
}

void cli_log_stderr(void *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "xffl %s: ", ctx ? (const char *)ctx : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}
