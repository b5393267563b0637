/* libFuzzer target: the safetensors header checks (formats/safetensors.h fmt_st_parse)
 * on an arbitrary file image: length prefix, JSON header, offsets against the size. */
#include <stddef.h>
#include <stdint.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fmt_st_file *f = NULL;
    if (fmt_st_parse(data, size, size, "fuzz.safetensors", &f) == XFFL_OK) {
        /* an accepted header tiles the data exactly */
        uint64_t at = 0;
        for (int i = 0; i < f->n; i++) {
            if (f->tensors[i].begin != at || f->tensors[i].end < at) __builtin_trap();
            at = f->tensors[i].end;
        }
        if (f->data_start + at != size) __builtin_trap();
        (void)fmt_st_find(f, "a");
    }
    fmt_st_close(f);
    return 0;
}
