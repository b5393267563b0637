/* libFuzzer target: INDEX and COMMIT manifests as the pipelines read them. The input is
 * put into a file:// store (in /dev/shm) under the content name its digest gives, so
 * the digest check passes and every input reaches the parser and the checks behind it:
 * first byte even, an INDEX (pipe_manifest_load: parse and format header, then format
 * and parse again: the same text); odd, a COMMIT for round 1 of facility "a" on
 * version 0, through pipe_contrib_load (the aggregator's checks of round, facility,
 * base, federation digest, encoding, object lines; the parts themselves are absent).
 * An even first byte with bit 2 set makes it an UPDATE of version 1 from version 0
 * (pipe_manifest_load's update_check, pipelines/update.h), read the same way. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "pipelines/aggregate.h"
#include "pipelines/keys.h"

static store *s;
static pipe_federation fed;
static ckpt_param_table *table;
static const char fed_sha[] = "0d78fdf20d52daa5d8b43e8a21548341b6bbcd9efeb26974155079ee4e3b9df7";

static void setup(void)
{
    char dir[] = "/dev/shm/xffl-fuzz-manifest-XXXXXX";
    if (!mkdtemp(dir)) abort();
    if (store_open(dir, NULL, &s) != XFFL_OK) abort();
    if (pipe_federation_default("tiny", 0, &fed) != XFFL_OK) abort();
    if (pipe_federation_set_facilities(&fed, "a,b") != XFFL_OK) abort();
    if (ckpt_param_table_create(&fed.model, &table) != XFFL_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s) setup();
    if (size < 1) return 0;
    int commit = data[0] & 1, update = !commit && (data[0] & 4);
    data++, size--;
    char hex[XFFL_SHA256_HEX], key[PIPE_KEY_MAX], stem[48];
    xffl_sha256_hex(data, size, hex);
    pipe_update_stem(0, stem, sizeof stem);
    if (pipe_content_key(commit ? "rounds/r000001/a/a1/" : "versions/v000001/",
                         commit ? "COMMIT" : update ? stem : "INDEX", hex, NULL, key, sizeof key) != XFFL_OK)
        abort();
    if (store_put(s, key, data, size) != XFFL_OK) abort();
    if (commit) {
        pipe_version_ref base = {.version = 0, .index_key = "versions/v000000/INDEX-aeb650157ddc"};
        pipe_contrib c;
        int bad = 0;
        xffl_status st = pipe_contrib_load(s, &fed, fed_sha, table, 1, &base, key, &c, &bad);
        if (st == XFFL_OK) abort(); /* its parts do not exist */
        pipe_contrib_clear(&c);
    } else {
        ckpt_manifest *m = NULL;
        if (pipe_manifest_load(s, key, NULL, &m, NULL) == XFFL_OK) {
            char *text = NULL, *again = NULL;
            size_t len = 0, len2 = 0;
            ckpt_manifest *m2 = NULL;
            if (ckpt_manifest_format(m, &text, &len) != XFFL_OK) abort();
            if (ckpt_manifest_parse(text, len, "again", &m2) != XFFL_OK) abort();
            if (ckpt_manifest_format(m2, &again, &len2) != XFFL_OK) abort();
            if (len != len2 || memcmp(text, again, len)) abort();
            free(text);
            free(again);
            ckpt_manifest_free(m2);
        }
        ckpt_manifest_free(m);
    }
    if (store_delete(s, key) != XFFL_OK) abort();
    return 0;
}
