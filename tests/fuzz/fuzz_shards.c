/* libFuzzer target: token shard files (text/shards.c), read as train and reproduce read
 * --data: the header first, then exactly the tokens it announces. The input is the
 * file (a memfd, read through /proc/self/fd). Checked beyond "no crash": a shard that
 * reads has as many tokens as its header says, every one in the vocabulary, and its
 * digest is the whole file's. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/digest.h"
#include "text/shards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("shard", 0);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    uint16_t *t = NULL;
    int64_t n = 0;
    char hex[XFFL_SHA256_HEX], want[XFFL_SHA256_HEX];
    const int vocab = 256 + (size ? data[size - 1] : 0) * 128;
    if (text_shard_read(path, vocab, &t, &n, hex) == XFFL_OK) {
        if ((size_t)n * 2 + TEXT_SHARD_HEADER_INTS * 4 != size) abort();
        for (int64_t i = 0; i < n; i++)
            if (t[i] >= vocab) abort();
        xffl_sha256_hex(data, size, want);
        if (strcmp(hex, want)) abort();
        free(t);
    }
    close(fd);
    return 0;
}
