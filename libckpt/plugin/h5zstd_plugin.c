/* HDF5 plugin entry points for the zstd filter (id 32015), so h5dump, h5py and any
 * HDF5 program read xffl files with HDF5_PLUGIN_PATH=<build>/plugins. The filter
 * itself is libckpt/zstd_filter.c, linked into this .so as well. */
#include <H5PLextern.h>
#include "libckpt/zstd_filter.h"

H5PL_type_t H5PLget_plugin_type(void) { return H5PL_TYPE_FILTER; }
const void *H5PLget_plugin_info(void) { return ckpt_zstd_filter_class(); }

/* zstd_filter.c reports errors through the project's status module, which the plugin
 * does not link: the filter callback never calls it, the codec helpers do. A hidden
 * definition keeps the .so free of undefined project symbols (h5dump loads it alone). */
__attribute__((visibility("hidden"))) xffl_status xffl_fail(xffl_status s, const char *fmt, ...)
{
    (void)fmt;
    return s;
}
