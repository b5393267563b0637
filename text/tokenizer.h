/* Tokenizers: text to token ids and back. Today the byte-level one only: token id =
 * byte value (vocabulary TEXT_BYTE_VOCAB); decoding is the identity, so any bytes
 * (UTF-8 included) round-trip. */
#ifndef XFFL_TEXT_TOKENIZER_H
#define XFFL_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TEXT_BYTE_VOCAB 256

/* out[i] = bytes[i]; returns len. out holds at least len ids. */
size_t text_byte_encode(const char *bytes, size_t len, int32_t *out);
/* Writes the byte of each id (< 256) into out (n bytes), returns n; ids >= 256 become '?'. */
size_t text_byte_decode(const int32_t *ids, size_t n, char *out);

#endif
