/* pipe_pull (contract in pull.h). */
#include "pipelines/pull.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "libckpt/manifest.h"
#include "pipelines/federation.h"

static const char *base_name(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

xffl_status pipe_pull(store *s, int64_t version, const char *dir, pipe_log_fn log, void *log_ctx, pipe_pull_result *r)
{
    void *index = NULL;
    char (*paths)[4096] = NULL, index_sha[XFFL_SHA256_HEX];
    size_t index_len = 0;
    ckpt_manifest *m = NULL;
    store_transfer *tr = NULL;
    pipe_version_ref ref;
    *r = (pipe_pull_result){.version = -1};
    xffl_status st = pipe_version_resolve(s, version, &ref);
    if (st == XFFL_OK) st = pipe_index_get(s, &ref, &index, &index_len, index_sha);
    if (st == XFFL_OK) st = ckpt_manifest_parse(index, index_len, ref.index_key, &m);
    if (st == XFFL_OK) st = xffl_mkdirs(dir);
    if (st != XFFL_OK) goto out;
    int n = m->n_objects;
    tr = calloc((size_t)n + 1, sizeof *tr);
    paths = calloc((size_t)n + 1, sizeof *paths);
    if (!tr || !paths) {
        st = xffl_fail(XFFL_ERR_NOMEM, "pulling %d objects", n);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, base_name(m->objects[i].name));
        tr[i] = (store_transfer){m->objects[i].name, paths[i], m->objects[i].sha256};
        r->part_bytes += m->objects[i].bytes;
    }
    /* federation.h5 too when the INDEX names its digest: the parts' context, verified */
    const char *fed = ckpt_manifest_get(m, "federation");
    char fed_path[4096];
    if (fed && strlen(fed) == 64) {
        snprintf(fed_path, sizeof fed_path, "%s/%s", dir, PIPE_FEDERATION_KEY);
        tr[n++] = (store_transfer){PIPE_FEDERATION_KEY, fed_path, fed};
    }
    if (log) log(log_ctx, "v%06lld from %s: %d objects\n", (long long)ref.version, store_url(s), n);
    st = store_get_many(s, tr, (size_t)n);
    if (st != XFFL_OK) goto out;
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/%s", dir, base_name(ref.index_key));
    st = xffl_write_file_atomic(ipath, index, index_len);
    if (st != XFFL_OK) goto out;
    r->version = ref.version;
    snprintf(r->index, sizeof r->index, "%s", base_name(ref.index_key));
    r->parts = m->n_objects;
    r->federation = n > m->n_objects;
out:
    free(tr);
    free(paths);
    free(index);
    ckpt_manifest_free(m);
    return st;
}
