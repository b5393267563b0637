/* libFuzzer target: the SentencePiece tokenizer.model reader, then encode and decode
 * (text/sentencepiece.h). Input: one byte n, then n bytes of text, then the model file.
 * Seeds (tests/fuzz/corpus/tokenizer/) are small trained models in several variants,
 * so mutations reach the encoder rather than stopping at the first protobuf check.
 * Checked beyond "no crash": every id is in the vocabulary, and decoding them works. */
#include <stdint.h>
#include <stdlib.h>

#include "text/sentencepiece.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t n = data[0] < size - 1 ? data[0] : size - 1;
    const char *text = (const char *)data + 1;
    text_sp *sp = NULL;
    if (text_sp_parse(data + 1 + n, size - 1 - n, "fuzz.model", &sp) != XFFL_OK) return 0;
    text_ids ids = {0};
    for (int pass = 0; pass < 2; pass++) { /* the second pass goes through the word cache */
        ids.n = 0;
        if (text_sp_encode(sp, text, n, &ids) != XFFL_OK) abort();
        for (size_t i = 0; i < ids.n; i++)
            if (ids.v[i] < 0 || ids.v[i] >= text_sp_vocab(sp)) abort();
        char *out = NULL;
        size_t len = 0;
        if (text_sp_decode(sp, ids.v, ids.n, &out, &len) != XFFL_OK) abort();
        free(out);
    }
    free(ids.v);
    text_sp_free(sp);
    return 0;
}
