/* `data pack` (contract in pack.h). */
#include "text/pack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "text/shards.h"
#include "text/tokenizer.h"

typedef struct {
    const text_pack_options *o;
    const char *split;
    uint16_t *buf;
    int64_t fill, cap;
    int shards;
    int64_t total;
} shard_sink;

static XFFL_MUST_USE xffl_status sink_flush(shard_sink *s)
{
    if (s->fill == 0) return XFFL_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%s_%04d.bin", s->o->out_dir, s->o->name, s->split, s->shards);
    XFFL_FORWARD(text_shard_write(path, s->buf, s->fill));
    s->shards++;
    s->total += s->fill;
    s->fill = 0;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status sink_add(shard_sink *s, const char *bytes, size_t n)
{
    int32_t ids[4096];
    for (size_t at = 0; at < n; at += sizeof ids / sizeof *ids) {
        size_t chunk = n - at < sizeof ids / sizeof *ids ? n - at : sizeof ids / sizeof *ids;
        size_t k = text_byte_encode(bytes + at, chunk, ids);
        for (size_t i = 0; i < k; i++) {
            s->buf[s->fill++] = (uint16_t)ids[i];
            if (s->fill == s->cap) XFFL_FORWARD(sink_flush(s));
        }
    }
    return XFFL_OK;
}

xffl_status text_pack(const char *const *files, int n_files, const text_pack_options *o, text_pack_result *r)
{
    memset(r, 0, sizeof *r);
    text_pack_options opt = *o;
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
        if (st == XFFL_OK) st = sink_add(&va, (char *)data + (len - nval), nval);
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
