/* The MD5s of a batch of files, computed on one thread of their own (file_md5s.c says
 * why) while store_many's threads upload them; a backend that compares ETags waits for
 * the one it needs. Internal to storage/. */
#ifndef XFFL_FILE_MD5S_H
#define XFFL_FILE_MD5S_H

#include <stddef.h>
#include "common/status.h"

#define STORE_MD5_HEX 33 /* 32 hex digits + NUL */

typedef struct file_md5s file_md5s;

/* Starts hashing paths[0..n) in order; a NULL path is skipped. paths must outlive *out.
 * Without a thread (pthread_create failed) each file is hashed by file_md5s_get. */
XFFL_MUST_USE xffl_status file_md5s_start(const char *const *paths, size_t n, file_md5s **out);
/* Waits for file i's MD5 (lowercase hex); IO naming the file if it could not be read. */
XFFL_MUST_USE xffl_status file_md5s_get(file_md5s *m, size_t i, char hex[STORE_MD5_HEX]);
/* Stops the thread (a file being hashed is left unfinished) and frees; NULL is fine. */
void file_md5s_free(file_md5s *m);

#endif
