/* libFuzzer target: LATEST's one line (pipe_latest_parse), what every reader trusts
 * first. Checked beyond "no crash": what parses formats back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipelines/keys.h"
#include "pipelines/version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pipe_version_ref ref;
    memset(&ref, 0, sizeof ref);
    if (pipe_latest_parse((const char *)data, size, &ref) != XFFL_OK) return 0;
    char again[512];
    int n = pipe_latest_format(&ref, again, sizeof again);
    if (n <= 0 || (size_t)n >= sizeof again) abort();
    pipe_version_ref back;
    memset(&back, 0, sizeof back);
    if (pipe_latest_parse(again, (size_t)n, &back) != XFFL_OK) abort();
    if (back.version != ref.version || strcmp(back.index_key, ref.index_key)) abort();
    return 0;
}
