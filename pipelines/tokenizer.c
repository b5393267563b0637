/* The federation's tokenizer in its store (contract in tokenizer.h). */
#include "pipelines/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "pipelines/keys.h"

xffl_status pipe_tokenizer_set(pipe_federation *f, const char *path, int vocab_fixed)
{
    text_sp *sp = NULL;
    XFFL_FORWARD(text_sp_load(path, &sp));
    int vocab = text_sp_vocab(sp);
    snprintf(f->tokenizer_sha256, sizeof f->tokenizer_sha256, "%s", text_sp_sha256(sp));
    text_sp_free(sp);
    if (!vocab_fixed) f->model.vocab_size = vocab;
    XFFL_RETURN_IF(f->model.vocab_size != vocab, XFFL_ERR_INVALID,
                   "--tokenizer %s: a vocabulary of %d, but the model's is %d", path, vocab, f->model.vocab_size);
    return XFFL_OK;
}

xffl_status pipe_tokenizer_publish(store *s, const char *path, const char *sha256)
{
    void *data = NULL, *have = NULL;
    size_t len = 0, have_len = 0;
    char hex[XFFL_SHA256_HEX];
    XFFL_FORWARD(xffl_read_file(path, &data, &len));
    xffl_sha256_hex(data, len, hex);
    xffl_status st = XFFL_OK;
    if (strcmp(hex, sha256) != 0) {
        st = xffl_fail(XFFL_ERR_INVALID, "--tokenizer %s changed while init ran (sha256 %.12s..., was %.12s...)", path,
                       hex, sha256);
        goto out;
    }
    st = store_get(s, PIPE_TOKENIZER_KEY, &have, &have_len);
    if (st == XFFL_OK) {
        char had[XFFL_SHA256_HEX];
        xffl_sha256_hex(have, have_len, had);
        st = strcmp(had, sha256) == 0 ? XFFL_OK
                                      : xffl_fail(XFFL_ERR_EXISTS, "%s already holds %s (another tokenizer, sha256 %.12s...)",
                                                  store_url(s), PIPE_TOKENIZER_KEY, had);
        goto out;
    }
    if (st != XFFL_ERR_NOT_FOUND) goto out;
    st = store_put(s, PIPE_TOKENIZER_KEY, data, len);
out:
    free(have);
    free(data);
    return st;
}

xffl_status pipe_tokenizer_fetch(store *s, const char *sha256, text_sp **out)
{
    *out = NULL;
    void *data = NULL;
    size_t len = 0;
    xffl_status st = store_get_verified(s, PIPE_TOKENIZER_KEY, sha256, &data, &len);
    if (st == XFFL_ERR_NOT_FOUND)
        return xffl_fail(XFFL_ERR_CORRUPT, "%s has no %s, which %s names (tokenizer_sha256 %.12s...)", store_url(s),
                         PIPE_TOKENIZER_KEY, PIPE_FEDERATION_KEY, sha256);
    XFFL_FORWARD(st);
    char name[4200];
    snprintf(name, sizeof name, "%s/%s", store_url(s), PIPE_TOKENIZER_KEY);
    st = text_sp_parse(data, len, name, out);
    free(data);
    return st;
}

xffl_status pipe_tokenizer_verify(store *s, const char *sha256)
{
    if (sha256[0]) {
        text_sp *sp = NULL;
        XFFL_FORWARD(pipe_tokenizer_fetch(s, sha256, &sp));
        text_sp_free(sp);
        return XFFL_OK;
    }
    uint64_t size;
    xffl_status st = store_head(s, PIPE_TOKENIZER_KEY, &size, NULL);
    if (st == XFFL_ERR_NOT_FOUND) return XFFL_OK;
    XFFL_FORWARD(st);
    return xffl_fail(XFFL_ERR_INVALID, "%s holds %s, but %s records no tokenizer (byte-level)", store_url(s),
                     PIPE_TOKENIZER_KEY, PIPE_FEDERATION_KEY);
}
