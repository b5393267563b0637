/* The byte-level tokenizer (contract in tokenizer.h). */
#include "text/tokenizer.h"

size_t text_byte_encode(const char *bytes, size_t len, int32_t *out)
{
    for (size_t i = 0; i < len; i++) out[i] = (unsigned char)bytes[i];
    return len;
}

size_t text_byte_decode(const int32_t *ids, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) out[i] = ids[i] >= 0 && ids[i] < TEXT_BYTE_VOCAB ? (char)ids[i] : '?';
    return n;
}
