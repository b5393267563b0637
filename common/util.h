/* Small helpers every module needs: sizes with suffixes, files, directories, time. */
#ifndef XFFL_UTIL_H
#define XFFL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

/* splitmix64's finaliser: a fixed mix of 64 bits, integer only (the same on every
 * machine): counter-based draws (parameter init, the strided data order). */
uint64_t xffl_splitmix64(uint64_t x);
/* "512M", "1G", "4096", "64K" -> bytes (powers of 1024). USAGE error naming the text. */
XFFL_MUST_USE xffl_status xffl_parse_size(const char *text, uint64_t *out);
/* Strict integer parse of a whole string; USAGE error naming what (e.g. "--rounds"). */
XFFL_MUST_USE xffl_status xffl_parse_long(const char *what, const char *text, long min, long max, long *out);
XFFL_MUST_USE xffl_status xffl_parse_double(const char *what, const char *text, double *out);

/* Memory for a large array (parameters, optimizer state, activations, a decoded part):
 * 64-byte aligned, and from 2 MiB on 2 MiB-aligned with transparent huge pages asked for
 * (madvise MADV_HUGEPAGE). A job touches most of its memory once: with 4 KiB pages that
 * is a page fault per 4 KiB, which on a virtual machine made up most of a facility's
 * per-round set-up (0.5 s for 160 MB; 0.03 s in 2 MiB pages). Where THP is "always" the
 * advice changes nothing, where it is "never" it is ignored. free() releases it; NULL
 * when out of memory. Not zeroed. */
void *xffl_alloc_big(size_t bytes);
/* free() of an xffl_alloc_big block, or, while xffl_big_keep is on, kept for the next
 * xffl_alloc_big of the same size. A process that allocates the same big arrays again
 * (train --rounds: each round's replay decodes and combines model-sized arrays) then
 * reuses memory it has touched instead of having the kernel zero fresh pages, which on
 * the VMs measured goes at 0.7 GB/s against 11 GB/s for reused memory. What is kept
 * was live when it was freed, so keeping it raises how long a process holds its peak,
 * not the peak. Thread-safe; NULL is a no-op. */
void xffl_free_big(void *p);
/* on: xffl_free_big keeps up to a few blocks; off: frees every kept block. */
void xffl_big_keep(int on);

/* mkdir -p. */
XFFL_MUST_USE xffl_status xffl_mkdirs(const char *path);
/* A thread count as the options give it: threads > 0, else OpenMP's default (every
 * "--threads 0" and unset count in the project means this). */
int xffl_threads(int threads);
/* rm -rf of a directory tree (used for temporary directories only). */
XFFL_MUST_USE xffl_status xffl_rmtree(const char *path);
/* xffl_rmtree on a cleanup path, where the work already succeeded or failed for its own
 * reason: a failure is logged (WARN, naming the path) instead of returned. */
void xffl_rmtree_cleanup(const char *path);
/* Whole file into a malloc'd buffer (NUL-terminated for text use); caller frees. */
XFFL_MUST_USE xffl_status xffl_read_file(const char *path, void **data, size_t *len);
/* Atomic write: temporary name in the same directory, fsync, rename, fsync dir. */
XFFL_MUST_USE xffl_status xffl_write_file_atomic(const char *path, const void *data, size_t len);
/* The same for a file that is parts[0..n) one after another (lens[i] bytes each), which
 * need not be copied into one buffer first. */
XFFL_MUST_USE xffl_status xffl_write_file_atomic_parts(const char *path, const void *const *parts, const size_t *lens,
                                                       int n);
/* Atomic replacement without the fsyncs, for a cache: a file whose digest is kept
 * beside it and checked on every read, and which can be had again elsewhere (a version
 * in the store). After a crash it may be gone or damaged, never mistaken for valid;
 * skipping the sync spares the disk's write-back wait (54 GB a round for 7b's base and
 * outer state). */
XFFL_MUST_USE xffl_status xffl_write_cache_file(const char *path, const void *data, size_t len);
/* Reads exactly the bytes parts[0..n) hold (lens[i] each) from path, in that order,
 * hashing them into hex (SHA-256 of the whole file) when hex is not NULL: INVALID naming
 * the file when its size is not their sum, IO or NOT_FOUND when it cannot be read. For
 * large files whose layout the caller knows: no intermediate buffer. */
XFFL_MUST_USE xffl_status xffl_read_file_parts(const char *path, void *const *parts, const size_t *lens, int n,
                                               char *hex /* XFFL_SHA256_HEX or NULL */);
/* dst becomes a second name of src's file (a hard link, taken atomically: a temporary
 * name, then rename), or where the file system has no hard links a copy written with
 * xffl_write_file_atomic. Only for a src that is replaced by rename, never rewritten in
 * place, so that dst keeps what src held now. */
XFFL_MUST_USE xffl_status xffl_link_or_copy(const char *src, const char *dst);
/* fsync the directory holding path, so a rename or create in it is durable. */
XFFL_MUST_USE xffl_status xffl_fsync_parent_dir(const char *path);
/* Creates a fresh temporary directory under $TMPDIR (or /tmp); caller owns path (free). */
XFFL_MUST_USE xffl_status xffl_mkdtemp(const char *tag, char **path);

/* Monotonic seconds. */
double xffl_now(void);
/* Sleeps for seconds (fractions too); a signal may end it early. */
void xffl_sleep(double seconds);
/* The pauses of a job waiting for what another job writes to the store: the first
 * 0.05 s, each twice the last, none longer than max seconds. A wait that ends soon (the
 * other facility's delta a moment behind ours) ends within about twice its length,
 * while a long one checks the store at most every max seconds. */
typedef struct {
    double next, max;
} xffl_backoff;
void xffl_backoff_init(xffl_backoff *b, double max);
void xffl_backoff_sleep(xffl_backoff *b);

#endif
