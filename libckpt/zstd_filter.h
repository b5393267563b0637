/* The zstd HDF5 filter (registered id 32015, the community plugin's id) and the raw
 * chunk codec behind it.
 *
 * One zstd frame per chunk, with the content size in the frame header, so files we
 * write are read by the community plugin and by h5py/hdf5plugin, and theirs by us.
 * cd_values[0] = compression level as an int's bits (absent: CKPT_ZSTD_DEFAULT_LEVEL);
 * decoders ignore it.
 *
 * The same source is linked twice: into libxffl (registered in-process with
 * ckpt_zstd_register) and into build/plugins/libh5zstd.so (found by HDF5 tools
 * through HDF5_PLUGIN_PATH). The chunk codec below is what h5part uses to compress
 * in its own threads and hand finished chunks to HDF5 (H5Dwrite_chunk), since
 * Debian's HDF5 runs its filter pipeline serially. */
#ifndef XFFL_CKPT_ZSTD_FILTER_H
#define XFFL_CKPT_ZSTD_FILTER_H

#include <stddef.h>
#include "common/status.h"

#define CKPT_ZSTD_FILTER_ID 32015
#define CKPT_SHUFFLE_FILTER_ID 2 /* H5Z_FILTER_SHUFFLE */
/* Levels are zstd's; ours always Huffman-code literals (zstd leaves them raw at
 * negative levels). Float weights, once shuffled, compress only in their exponent
 * byte, which entropy coding alone catches: level -100 (zstd's fast mode, matches
 * barely searched) stores random-normal float32 at 1.20x, as level 1 does (1.19x),
 * at 3.2 GB/s a core instead of 1.35, so a hashed, compressed checkpoint write keeps
 * pace with a plain one. Runs of zeros and constant chunks still collapse (RLE
 * blocks); integer data (token ids) compresses better at level 1 and up. */
#define CKPT_ZSTD_DEFAULT_LEVEL (-100)
#define CKPT_ZSTD_MIN_LEVEL (-131072) /* zstd's ZSTD_minCLevel() */
#define CKPT_ZSTD_MAX_LEVEL 22

/* Registers filter 32015 with the HDF5 library of this process. Idempotent; call
 * from one thread (HDF5 here is not thread-safe). HDF5 error naming the filter. */
XFFL_MUST_USE xffl_status ckpt_zstd_register(void);

/* The filter class (an H5Z_class2_t), for the plugin entry point. */
const void *ckpt_zstd_filter_class(void);

/* Worst-case compressed size of n bytes. */
size_t ckpt_zstd_bound(size_t n);
/* One frame of src[0..n) into dst (cap bytes, ckpt_zstd_bound(n) suffices);
 * *out = frame size. Thread-safe. INTERNAL naming zstd's error on failure. */
XFFL_MUST_USE xffl_status ckpt_zstd_compress(const void *src, size_t n, void *dst, size_t cap, int level, size_t *out);
/* Decodes one frame that must expand to exactly want bytes into dst.
 * CORRUPT (message says what is wrong; callers add file and tensor) otherwise. */
XFFL_MUST_USE xffl_status ckpt_zstd_decompress(const void *src, size_t n, void *dst, size_t want);

#endif
