/* s3:// backend (libs3 2.0): being written; until then s3:// URLs are refused. */
#include "storage/store_impl.h"

xffl_status store_s3_open(store *s, const char *bucket_and_prefix)
{
    (void)bucket_and_prefix;
    return xffl_fail(XFFL_ERR_UNSUPPORTED, "store %s: the s3:// backend is not in this build yet", s->url);
}
