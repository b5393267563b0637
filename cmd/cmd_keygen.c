/* xffl keygen: one Ed25519 key pair, where a facility (or the aggregator) runs. */
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"
#include "common/sign.h"

static const char *help =
    "usage: xffl keygen --out FILE\n"
    "\n"
    "Writes a new Ed25519 key pair: FILE, the private key (PEM, mode 0600), and\n"
    "FILE.pub, the public key to send to whoever runs `xffl init` (--facility-key\n"
    "NAME=FILE.pub, or --aggregator-key FILE.pub). Keep FILE where the facility's jobs\n"
    "run and give it to them with --key FILE (or save it as <keys dir>/<facility>.key).\n"
    "Never overwrites a file (docs/design.md \"Trust\").\n"
    "\n"
    "stdout: the public key's id and its 64 hex digits.\n"
    "exit codes: 0 done, 1 a file exists or cannot be written, 2 usage.\n";

int cmd_keygen(int argc, char **argv)
{
    const char *cmd = "keygen";
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    const char *out = NULL;
    const cli_opt opts[] = {{"--out", CLI_STR, &out, 1, 0, NULL}, {0}};
    int rc = cli_parse(cmd, argc, argv, opts, NULL, NULL);
    if (rc) return rc;
    if (!out) return cli_usage_error(cmd, "--out FILE is required");
    char pub_path[XFFL_KEYS_PATH_MAX], pub[XFFL_SIGN_PUB_HEX], id[XFFL_SIGN_KEYID_HEX];
    if (snprintf(pub_path, sizeof pub_path, "%s.pub", out) >= (int)sizeof pub_path)
        return cli_usage_error(cmd, "--out path too long");
    xffl_status st = xffl_key_generate(out, pub_path, pub);
    if (st != XFFL_OK) return cli_report(cmd, st);
    xffl_key_id(pub, id);
    if (cli_json) printf("{\"key_id\":\"%s\",\"public_key\":\"%s\",\"private\":\"%s\",\"public\":\"%s\"}\n", id, pub, out, pub_path);
    else printf("key %s %s\nprivate %s\npublic %s\n", id, pub, out, pub_path);
    return 0;
}
