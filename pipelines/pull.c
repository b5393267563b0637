/* pipe_pull (contract in pull.h). */
#include "pipelines/pull.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/util.h"
#include "libckpt/manifest.h"
#include "pipelines/federation.h"

static const char *base_name(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

xffl_status pipe_pull(store *s, int64_t version, const char *dir, pipe_pull_result *r)
{
    pipe_manifest_bytes index = {0};
    char (*paths)[4096] = NULL;
    ckpt_manifest *m = NULL;
    store_transfer *tr = NULL;
    pipe_version_ref ref;
    *r = (pipe_pull_result){.version = -1};
    xffl_status st = pipe_version_resolve(s, version, &ref);
    if (st == XFFL_OK) st = pipe_manifest_load(s, ref.index_key, ref.index_sha, &m, &index);
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
    xffl_log(XFFL_LOG_INFO, "v%06lld from %s: %d objects", (long long)ref.version, store_url(s), n);
    st = store_get_many(s, tr, (size_t)n);
    if (st != XFFL_OK) goto out;
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/%s", dir, base_name(ref.index_key));
    st = xffl_write_file_atomic(ipath, index.text, index.len);
    if (st != XFFL_OK) goto out;
    r->version = ref.version;
    snprintf(r->index, sizeof r->index, "%s", base_name(ref.index_key));
    r->parts = m->n_objects;
    r->federation = n > m->n_objects;
out:
    free(tr);
    free(paths);
    free(index.text);
    ckpt_manifest_free(m);
    return st;
}
