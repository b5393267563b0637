/* `data pack` (contract in pack.h). */
#include "text/pack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "text/sentencepiece.h"
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

static XFFL_MUST_USE xffl_status sink_add_ids(shard_sink *s, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s->buf[s->fill++] = (uint16_t)ids[i];
        if (s->fill == s->cap) XFFL_FORWARD(sink_flush(s));
    }
    return XFFL_OK;
}

/* One file as one text; its last val_fraction of tokens to val. */
static XFFL_MUST_USE xffl_status pack_sp(text_sp *sp, const text_pack_options *o, const char *data, size_t len, text_ids *ids,
                           shard_sink *tr, shard_sink *va)
{
    ids->n = 0;
    if (o->bos) XFFL_FORWARD(text_ids_push(ids, text_sp_bos(sp)));
    XFFL_FORWARD(text_sp_encode(sp, data, len, ids));
    if (o->eos) XFFL_FORWARD(text_ids_push(ids, text_sp_eos(sp)));
    size_t nval = (size_t)((double)ids->n * o->val_fraction);
    XFFL_FORWARD(sink_add_ids(tr, ids->v, ids->n - nval));
    return sink_add_ids(va, ids->v + (ids->n - nval), nval);
}

static XFFL_MUST_USE xffl_status open_tokenizer(const text_pack_options *o, text_sp **sp, text_pack_result *r)
{
    r->vocab = TEXT_BYTE_VOCAB;
    if (!o->tokenizer) {
        if (o->bos || o->eos) return xffl_fail(XFFL_ERR_USAGE, "data pack: --bos and --eos need --tokenizer");
        return XFFL_OK;
    }
    XFFL_FORWARD(text_sp_load(o->tokenizer, sp));
    if (o->bos && text_sp_bos(*sp) < 0)
        return xffl_fail(XFFL_ERR_INVALID, "%s: trainer_spec.bos_piece: no such control piece for --bos", o->tokenizer);
    if (o->eos && text_sp_eos(*sp) < 0)
        return xffl_fail(XFFL_ERR_INVALID, "%s: trainer_spec.eos_piece: no such control piece for --eos", o->tokenizer);
    r->vocab = text_sp_vocab(*sp);
    snprintf(r->tokenizer_sha256, sizeof r->tokenizer_sha256, "%s", text_sp_sha256(*sp));
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status write_tokenizer_digest(const text_pack_options *o, const text_pack_result *r)
{
    char path[4096], line[4200];
    const char *base = strrchr(o->tokenizer, '/');
    snprintf(path, sizeof path, "%s/%s%s", o->out_dir, o->name, TEXT_TOKENIZER_RECORD);
    int n = snprintf(line, sizeof line, "%s  %s\n", r->tokenizer_sha256, base ? base + 1 : o->tokenizer);
    return xffl_write_file_atomic(path, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
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
    text_sp *sp = NULL;
    text_ids ids = {0};
    XFFL_FORWARD(open_tokenizer(&opt, &sp, r));
    xffl_status st = xffl_mkdirs(opt.out_dir);
    if (st != XFFL_OK) {
        text_sp_free(sp);
        return st;
    }
    /* a shard is written from one buffer: as large as a shard, or as all the input */
    int64_t cap = opt.shard_tokens, all = 0;
    int unsized = 0; /* a pipe (/dev/stdin) has no size to shrink the buffers to */
    for (int i = 0; i < n_files; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) {
            text_sp_free(sp);
            return xffl_fail(errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "%s: %s", files[i],
                             strerror(errno));
        }
        long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
        if (size < 0) unsized = 1;
        else all += size;
        fclose(f);
    }
    /* a SentencePiece token per byte at most, but 3 for a byte that is not UTF-8 (U+FFFD
     * as bytes), plus the dummy prefix, bos and eos of each file */
    if (sp) all = 3 * all + 3 * (int64_t)n_files;
    if (!unsized && cap > all + 1) cap = all + 1;
    shard_sink tr = {&opt, "train", malloc((size_t)cap * 2), 0, cap, 0, 0};
    shard_sink va = {&opt, "val", malloc((size_t)cap * 2), 0, cap, 0, 0};
    if (!tr.buf || !va.buf) {
        st = xffl_fail(XFFL_ERR_NOMEM, "data pack: shard buffers");
        goto done;
    }
    for (int i = 0; i < n_files; i++) {
        void *data = NULL;
        size_t len = 0;
        XFFL_CHECK_GOTO(st, xffl_read_file(files[i], &data, &len), done);
        size_t nval = (size_t)(len * opt.val_fraction);
        if (sp) st = pack_sp(sp, &opt, data, len, &ids, &tr, &va);
        else {
            st = sink_add(&tr, data, len - nval);
            if (st == XFFL_OK) st = sink_add(&va, (char *)data + (len - nval), nval);
        }
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
    if (sp) st = write_tokenizer_digest(&opt, r);
done:
    text_sp_free(sp);
    free(ids.v);
    free(tr.buf);
    free(va.buf);
    return st;
}
