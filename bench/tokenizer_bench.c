/* The SentencePiece tokenizer (text/sentencepiece.h) from the command line, for
 * bench/tokenizer.sh and tests/it/test-tokenizer.sh:
 *   tokenizer_bench ids MODEL FILE...        one line of ids per file (one text each)
 *   tokenizer_bench roundtrip MODEL FILE...  decode(encode(file)) == file, per file
 *   tokenizer_bench decode MODEL FILE...     decode(encode(file)) of each, concatenated
 *   tokenizer_bench speed MODEL FILE...      one thread, one encode per file: a JSON
 *                                            line {"mb_s":..., "tokens":..., "bytes":...}
 * Exit 0, 1 on a mismatch, 65 for a bad model (the message names it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "text/sentencepiece.h"

static int fail(xffl_status st)
{
    fprintf(stderr, "tokenizer_bench: %s\n", xffl_errmsg());
    return xffl_exit_code(st);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: tokenizer_bench ids|roundtrip|decode|speed MODEL FILE...\n");
        return 2;
    }
    const char *mode = argv[1];
    text_sp *sp = NULL;
    xffl_status st = text_sp_load(argv[2], &sp);
    if (st != XFFL_OK) return fail(st);
    int nf = argc - 3, rc = 0;
    void **data = calloc((size_t)nf, sizeof *data);
    size_t *len = calloc((size_t)nf, sizeof *len), bytes = 0, tokens = 0;
    for (int i = 0; i < nf && st == XFFL_OK; i++) {
        st = xffl_read_file(argv[3 + i], &data[i], &len[i]);
        bytes += len[i];
    }
    if (st != XFFL_OK) return fail(st);
    text_ids ids = {0};
    double t0 = xffl_now();
    for (int i = 0; i < nf; i++) {
        ids.n = 0;
        st = text_sp_encode(sp, data[i], len[i], &ids);
        if (st != XFFL_OK) return fail(st);
        tokens += ids.n;
        if (strcmp(mode, "ids") == 0) {
            for (size_t k = 0; k < ids.n; k++) printf(k ? " %d" : "%d", ids.v[k]);
            printf("\n");
        } else if (strcmp(mode, "roundtrip") == 0 || strcmp(mode, "decode") == 0) {
            char *back = NULL;
            size_t blen = 0;
            st = text_sp_decode(sp, ids.v, ids.n, &back, &blen);
            if (st != XFFL_OK) return fail(st);
            if (mode[0] == 'd') {
                fwrite(back, 1, blen, stdout);
                free(back);
                continue;
            }
            int same = blen == len[i] && memcmp(back, data[i], blen) == 0;
            if (!same) {
                printf("DIFFERENT %s (%zu bytes, %zu tokens, %zu decoded)\n", argv[3 + i], len[i], ids.n, blen);
                rc = 1;
            }
            free(back);
        }
    }
    double dt = xffl_now() - t0;
    if (strcmp(mode, "roundtrip") == 0) printf("%d texts: decode(encode(text)) %s\n", nf, rc ? "DIFFERS" : "is the text");
    if (strcmp(mode, "speed") == 0)
        printf("{\"mb_s\":%.3f,\"tokens\":%zu,\"bytes\":%zu,\"seconds\":%.4f}\n", bytes / dt / 1e6, tokens, bytes, dt);
    for (int i = 0; i < nf; i++) free(data[i]);
    free(data);
    free(len);
    free(ids.v);
    text_sp_free(sp);
    return rc;
}
