/* xffl reproduce: recompute a round from what the store holds and compare. */
#include <stdarg.h>
#include <stdio.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "pipelines/reproduce.h"
#include "pipelines/train.h"

static const char *help =
    "usage: xffl reproduce --store URL --round R [--threads N] [--train --facility NAME\n"
    "                      --data GLOB [--state DIR] [--backend cpu]]\n"
    "\n"
    "Recomputes version R from version R-1 and the deltas its INDEX names (in a scratch\n"
    "store, with the federation.h5 settings) and compares every per-tensor digest\n"
    "(model and outer optimizer state) and every part's bytes with the stored version.\n"
    "With --train it also re-runs one facility's training for round R from the stored\n"
    "base, its data cursor (from its COMMIT) and, with --keep-inner-state, its inner\n"
    "optimizer state (from --state DIR, checked against the COMMIT's digest), and\n"
    "compares the delta digests with its COMMIT. Bit-identity of --train needs the same\n"
    "CPU model, thread count, backend and build.\n"
    "\n"
    "  --store URL       s3://bucket/prefix, file:///path or a plain path\n"
    "  --round R         the round (= version) to recompute, >= 1\n"
    "  --threads N       aggregation threads (default all; must not change anything);\n"
    "                    with --train also the training threads (default: the COMMIT's)\n"
    "  --train           also re-run a facility's training (needs the options below)\n"
    "  --facility NAME   whose training to re-run\n"
    "  --data GLOB       that facility's token shards\n"
    "  --state DIR       that facility's state directory (inner optimizer state)\n"
    "  --backend B       cpu (default) or cuda\n"
    "  --keys DIR        where the federation.h5 pin is (default ~/.config/xffl/keys)\n"
    "  --federation SHA256  the federation.h5 digest to expect instead of the pin\n" CLI_STORE_FLAGS_HELP
    "\n"
    "stdout: one 'ok' line per check (--json: one object).\n"
    "exit codes: 0 reproduced bit for bit, 1 failed, 2 usage, 65 a digest differs (each\n"
    "differing tensor named on stderr), 74 store unreachable.\n";


int cmd_reproduce(int argc, char **argv)
{
    const char *cmd = "reproduce";
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    store_options so;
    const char *url, *facility = NULL, *data = NULL, *state = NULL, *backend = "cpu";
    long round = 0, threads = 0;
    int train = 0;
    pipe_trust_options trust = {0};
    const cli_opt opts[] = {{"--round", CLI_LONG, &round, 1, 999999, NULL},
                            {"--threads", CLI_LONG, &threads, 0, 1024, NULL},
                            {"--train", CLI_FLAG, &train, 0, 0, NULL},
                            {"--facility", CLI_STR, &facility, 0, 0, NULL},
                            {"--data", CLI_STR, &data, 0, 0, NULL},
                            {"--state", CLI_STR, &state, 0, 0, NULL},
                            {"--backend", CLI_STR, &backend, 0, 0, NULL},
                            {"--keys", CLI_STR, &trust.keys_dir, 1, 0, NULL},
                            {"--federation", CLI_STR, &trust.federation, 1, 0, NULL},
                            {0}};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, NULL);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (round < 1) return cli_usage_error(cmd, "--round R is required");
    if (train && (!facility || !data)) return cli_usage_error(cmd, "--train needs --facility NAME and --data GLOB");
    store *s;
    if ((rc = cli_open_store(cmd, url, &so, &s))) return rc;
    pipe_train_options to;
    pipe_train_options_default(&to);
    to.facility = facility;
    to.data_glob = data;
    to.state_dir = state;
    to.backend = backend;
    to.round = round;
    to.threads = (int)threads;
    to.trust = &trust;
    pipe_reproduce_report rep;
    pipe_train_reproduce_report trep;
    xffl_status st = pipe_reproduce(s, round, (int)threads, &trust, train ? &to : NULL, &rep, &trep);
    store_close(s);
    if (cli_json)
        printf("{\"round\": %ld, \"ok\": %s, \"tensors_compared\": %d, \"tensors_differ\": %d, \"parts_compared\": %d, "
               "\"parts_differ\": %d, \"index_identical\": %s, \"train\": %s, \"train_tensors_compared\": %d, "
               "\"train_tensors_differ\": %d}\n",
               round, st == XFFL_OK ? "true" : "false", rep.tensors_compared, rep.tensors_differ, rep.parts_compared,
               rep.parts_differ, rep.index_identical ? "true" : "false", train ? "true" : "false",
               trep.tensors_compared, trep.tensors_differ);
    if (st != XFFL_OK) return cli_report(cmd, st);
    if (!cli_json) {
        printf("ok round %ld: %s reproduced (%d tensor digests, %d parts%s)\n", round, rep.stored_index,
               rep.tensors_compared, rep.parts_compared, rep.index_identical ? ", identical INDEX" : "");
        if (train) printf("ok round %ld: %s delta reproduced (%d tensor digests)\n", round, facility, trep.tensors_compared);
    }
    return 0;
}
