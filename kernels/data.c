/* Byte tokenizer, shard writer/reader and `data pack` (contract in data.h). */
#include "kernels/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

size_t kern_tok_encode(const char *bytes, size_t len, int32_t *out)
{
    for (size_t i = 0; i < len; i++) out[i] = (unsigned char)bytes[i];
    return len;
}

size_t kern_tok_decode(const int32_t *ids, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) out[i] = ids[i] >= 0 && ids[i] < 256 ? (char)ids[i] : '?';
    return n;
}

xffl_status kern_shard_write(const char *path, const uint16_t *tokens, int64_t n)
{
    if (n < 0 || n > INT32_MAX) return xffl_fail(XFFL_ERR_INVALID, "%s: %lld tokens do not fit a shard", path, (long long)n);
    size_t bytes = KERN_SHARD_HEADER_INTS * 4 + (size_t)n * 2;
    unsigned char *buf = malloc(bytes);
    if (!buf) return xffl_fail(XFFL_ERR_NOMEM, "%s: shard buffer", path);
    int32_t hdr[KERN_SHARD_HEADER_INTS] = {KERN_SHARD_MAGIC, KERN_SHARD_VERSION, (int32_t)n};
    memcpy(buf, hdr, sizeof hdr);
    memcpy(buf + sizeof hdr, tokens, (size_t)n * 2);
    xffl_status st = xffl_write_file_atomic(path, buf, bytes);
    free(buf);
    return st;
}

xffl_status kern_shard_read(const char *path, int vocab, uint16_t **tokens, int64_t *n)
{
    *tokens = NULL;
    *n = 0;
    void *data = NULL;
    size_t len = 0;
    XFFL_FORWARD(xffl_read_file(path, &data, &len));
    int32_t hdr[KERN_SHARD_HEADER_INTS];
    xffl_status st = XFFL_OK;
    if (len < sizeof hdr) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: %zu bytes, shorter than the 1024-byte header", path, len);
        goto done;
    }
    memcpy(hdr, data, sizeof hdr);
    if (hdr[0] != KERN_SHARD_MAGIC || hdr[1] != KERN_SHARD_VERSION) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: magic %d version %d, expected %d version %d", path, hdr[0],
                       hdr[1], KERN_SHARD_MAGIC, KERN_SHARD_VERSION);
        goto done;
    }
    if (hdr[2] < 0 || (size_t)hdr[2] * 2 + sizeof hdr != len) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: header says %d tokens, file holds %zu bytes of tokens", path,
                       hdr[2], len - sizeof hdr);
        goto done;
    }
    uint16_t *t = malloc((size_t)hdr[2] * 2 + 2);
    if (!t) {
        st = xffl_fail(XFFL_ERR_NOMEM, "shard %s", path);
        goto done;
    }
    memcpy(t, (char *)data + sizeof hdr, (size_t)hdr[2] * 2);
    for (int32_t i = 0; i < hdr[2]; i++)
        if (t[i] >= vocab) {
            st = xffl_fail(XFFL_ERR_INVALID, "shard %s: token %u at offset %d is outside the vocabulary %d", path,
                           t[i], i, vocab);
            free(t);
            goto done;
        }
    *tokens = t;
    *n = hdr[2];
done:
    free(data);
    return st;
}

typedef struct {
    const kern_pack_options *o;
    const char *split;
    uint16_t *buf;
    int64_t fill, cap;
    int shards;
    int64_t total;
} shard_sink;

static xffl_status sink_flush(shard_sink *s)
{
    if (s->fill == 0) return XFFL_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%s_%04d.bin", s->o->out_dir, s->o->name, s->split, s->shards);
    XFFL_FORWARD(kern_shard_write(path, s->buf, s->fill));
    s->shards++;
    s->total += s->fill;
    s->fill = 0;
    return XFFL_OK;
}

static xffl_status sink_add(shard_sink *s, const unsigned char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s->buf[s->fill++] = bytes[i];
        if (s->fill == s->cap) XFFL_FORWARD(sink_flush(s));
    }
    return XFFL_OK;
}

xffl_status kern_pack(const char *const *files, int n_files, const kern_pack_options *o, kern_pack_result *r)
{
    memset(r, 0, sizeof *r);
    kern_pack_options opt = *o;
    if (!opt.name || !*opt.name) opt.name = "data";
    if (!opt.out_dir || !*opt.out_dir) return xffl_fail(XFFL_ERR_USAGE, "data pack: --out DIR is required");
    if (strchr(opt.name, '/')) return xffl_fail(XFFL_ERR_USAGE, "data pack: --name '%s' contains '/'", opt.name);
    if (!(opt.val_fraction >= 0 && opt.val_fraction < 1))
        return xffl_fail(XFFL_ERR_USAGE, "data pack: --val-fraction %g outside [0, 1)", opt.val_fraction);
    if (opt.shard_tokens <= 0) opt.shard_tokens = 100000000;
    if (opt.shard_tokens > INT32_MAX) opt.shard_tokens = INT32_MAX;
    if (n_files < 1) return xffl_fail(XFFL_ERR_USAGE, "data pack: no input files");
    XFFL_FORWARD(xffl_mkdirs(opt.out_dir));
    /* a shard is written from one buffer: as large as a shard, or as all the input */
    int64_t cap = opt.shard_tokens, all = 0;
    for (int i = 0; i < n_files; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) return xffl_fail(errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "%s: %s", files[i],
                                 strerror(errno));
        fseek(f, 0, SEEK_END);
        all += ftell(f);
        fclose(f);
    }
    if (cap > all + 1) cap = all + 1;
    shard_sink tr = {&opt, "train", malloc((size_t)cap * 2), 0, cap, 0, 0};
    shard_sink va = {&opt, "val", malloc((size_t)cap * 2), 0, cap, 0, 0};
    xffl_status st = XFFL_OK;
    if (!tr.buf || !va.buf) {
        st = xffl_fail(XFFL_ERR_NOMEM, "data pack: shard buffers");
        goto done;
    }
    for (int i = 0; i < n_files; i++) {
        void *data = NULL;
        size_t len = 0;
        XFFL_CHECK_GOTO(st, xffl_read_file(files[i], &data, &len), done);
        size_t nval = (size_t)(len * opt.val_fraction);
        st = sink_add(&tr, data, len - nval);
        if (st == XFFL_OK) st = sink_add(&va, (unsigned char *)data + (len - nval), nval);
        free(data);
        if (st != XFFL_OK) goto done;
        r->files++;
    }
    XFFL_CHECK_GOTO(st, sink_flush(&tr), done);
    XFFL_CHECK_GOTO(st, sink_flush(&va), done);
    r->train_tokens = tr.total;
    r->val_tokens = va.total;
    r->train_shards = tr.shards;
    r->val_shards = va.shards;
done:
    free(tr.buf);
    free(va.buf);
    return st;
}
