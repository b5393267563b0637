/* xffl plot: loss per round per facility (and global), with gnuplot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "pipelines/history.h"

static const char *help =
    "usage: xffl plot --store URL --out FILE.svg|FILE.png [--eval FILE] [--keep-data]\n"
    "\n"
    "Plots, per kept round, each facility's train loss (mean over its H local steps,\n"
    "from its COMMIT) and the global figure: the token-weighted mean of the facilities'\n"
    "train losses, or, with --eval, the validation loss of each version read from FILE\n"
    "(lines 'ROUND LOSS', as the demo writes them). Needs gnuplot (Debian: gnuplot-nox).\n"
    "\n"
    "  --store URL     s3://bucket/prefix, file:///path or a plain path\n"
    "  --out FILE      .svg or .png\n"
    "  --eval FILE     global validation loss per round\n"
    "  --keep-data     also write FILE.dat and FILE.gp (the data and gnuplot script)\n" CLI_STORE_FLAGS_HELP
    "\n"
    "exit codes: 0 written, 1 failed (gnuplot missing or failing), 2 usage, 74 store\n"
    "unreachable.\n";

int cmd_plot(int argc, char **argv)
{
    const char *cmd = "plot";
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    store_options so;
    const char *url, *out = NULL, *eval = NULL;
    int keep = 0;
    const cli_opt opts[] = {{"--out", CLI_STR, &out, 0, 0, NULL},
                            {"--eval", CLI_STR, &eval, 0, 0, NULL},
                            {"--keep-data", CLI_FLAG, &keep, 0, 0, NULL},
                            {0}};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, NULL);
    if (rc) return rc;
    if (!url || !out) return cli_usage_error(cmd, "--store URL and --out FILE are required");
    size_t ol = strlen(out);
    int svg = ol > 4 && !strcmp(out + ol - 4, ".svg"), png = ol > 4 && !strcmp(out + ol - 4, ".png");
    if (!svg && !png) return cli_usage_error(cmd, "--out must end in .svg or .png, not '%s'", out);
    store *s;
    if ((rc = cli_open_store(cmd, url, &so, &s))) return rc;
    pipe_history h;
    xffl_status st = pipe_history_load(s, &h);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    double evals[4096];
    for (int i = 0; i < 4096; i++) evals[i] = -1;
    if (eval) {
        FILE *ef = fopen(eval, "r");
        if (!ef) {
            pipe_history_free(&h);
            fprintf(stderr, "xffl plot: cannot read %s\n", eval);
            return 1;
        }
        long r;
        double l;
        while (fscanf(ef, "%ld %lf", &r, &l) == 2)
            if (r >= 0 && r < 4096) evals[r] = l;
        fclose(ef);
    }
    char dat[4200], gp[4200];
    snprintf(dat, sizeof dat, "%s.dat", out);
    snprintf(gp, sizeof gp, "%s.gp", out);
    FILE *df = fopen(dat, "w"), *gf = fopen(gp, "w");
    if (!df || !gf) {
        if (df) fclose(df);
        if (gf) fclose(gf);
        pipe_history_free(&h);
        fprintf(stderr, "xffl plot: cannot write %s\n", dat);
        return 1;
    }
    fprintf(df, "# round");
    for (int i = 0; i < h.f.n_facilities; i++) fprintf(df, " %s", h.f.facilities[i]);
    fprintf(df, " global\n");
    int points = 0;
    for (int r = 0; r < h.n_rounds; r++) {
        const pipe_history_round *hr = &h.rounds[r];
        if (!hr->done) continue;
        fprintf(df, "%lld", (long long)hr->round);
        double num = 0, den = 0;
        for (int i = 0; i < h.f.n_facilities; i++) {
            const pipe_history_entry *e = NULL;
            for (int k = 0; k < hr->n; k++)
                if (!strcmp(hr->e[k].facility, h.f.facilities[i])) e = &hr->e[k];
            if (e) {
                fprintf(df, " %.6f", e->loss_mean);
                num += e->loss_mean * (double)e->tokens;
                den += (double)e->tokens;
            } else
                fprintf(df, " ?");
        }
        double g = hr->round < 4096 && evals[hr->round] >= 0 ? evals[hr->round] : den > 0 ? num / den : -1;
        if (g >= 0) fprintf(df, " %.6f\n", g);
        else fprintf(df, " ?\n");
        points++;
    }
    fclose(df);
    fprintf(gf, "set terminal %s size 900,540\nset output '%s'\n", svg ? "svg" : "pngcairo", out);
    fprintf(gf, "set title 'xffl: loss per round (%s, H=%d)'\nset xlabel 'round'\nset ylabel 'loss (nats/token)'\n",
            pipe_algo_name(h.f.algo.kind), h.f.local_steps);
    fprintf(gf, "set key top right\nset grid\nset datafile missing '?'\nplot ");
    for (int i = 0; i < h.f.n_facilities; i++)
        fprintf(gf, "'%s' using 1:%d with linespoints title '%s (train)', ", dat, i + 2, h.f.facilities[i]);
    fprintf(gf, "'%s' using 1:%d with linespoints lw 2 title 'global (%s)'\n", dat, h.f.n_facilities + 2,
            eval ? "validation" : "train, token-weighted");
    fclose(gf);
    pipe_history_free(&h);
    if (!points) {
        remove(dat);
        remove(gp);
        fprintf(stderr, "xffl plot: no round aggregated yet: nothing to plot\n");
        return 1;
    }
    char cmdline[8600];
    snprintf(cmdline, sizeof cmdline, "gnuplot '%s'", gp);
    rc = system(cmdline);
    if (!keep) {
        remove(dat);
        remove(gp);
    }
    if (rc != 0) {
        fprintf(stderr, "xffl plot: gnuplot failed (exit %d); is gnuplot installed (apt-get install gnuplot-nox)?\n",
                rc);
        return 1;
    }
    xffl_log(XFFL_LOG_INFO, "wrote %s (%d rounds)", out, points);
    return 0;
}
