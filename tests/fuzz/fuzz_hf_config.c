/* libFuzzer target: config.json of a Hugging Face LLaMA (formats/hf.h
 * fmt_hf_config_parse), through the strict JSON reader (common/json.h). */
#include <stddef.h>
#include <stdint.h>

#include "formats/hf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ckpt_model_config c;
    int tied;
    if (fmt_hf_config_parse((const char *)data, size, "fuzz/config.json", &c, &tied) == XFFL_OK &&
        ckpt_model_validate(&c) != XFFL_OK)
        __builtin_trap(); /* an accepted config is a valid model */
    return 0;
}
