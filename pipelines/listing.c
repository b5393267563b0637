/* The store listing behind `xffl ls`. See listing.h. */
#include "pipelines/listing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The folder the previous key opened when this key shares it, else a new one. The
 * listing is sorted, so a folder's keys are adjacent. */
static pipe_listing_folder *folder_for(pipe_listing_folder *f, size_t *n, const char **last_dir, size_t *last_len,
                                       const char *key, size_t dir_len)
{
    if (!*n || *last_len != dir_len || strncmp(*last_dir, key, dir_len)) {
        memset(&f[*n], 0, sizeof f[*n]);
        ++*n;
        *last_dir = key;
        *last_len = dir_len;
    }
    return &f[*n - 1];
}

xffl_status pipe_store_listing_load(store *s, pipe_store_listing *out)
{
    memset(out, 0, sizeof *out);
    store_listing partial = {0};
    XFFL_FORWARD(store_list(s, "", &out->all));
    xffl_status st = store_list_partial(s, "", &partial);
    out->n_partial = partial.count;
    store_listing_free(&partial);
    if (st != XFFL_OK) goto fail;
    out->versions = calloc(out->all.count + 1, sizeof *out->versions);
    out->attempts = calloc(out->all.count + 1, sizeof *out->attempts);
    if (!out->versions || !out->attempts) {
        st = xffl_fail(XFFL_ERR_NOMEM, "listing %s", store_url(s));
        goto fail;
    }
    const char *vdir = NULL, *adir = NULL;
    size_t vlen = 0, alen = 0;
    int have_latest = 0;
    for (size_t i = 0; i < out->all.count; i++) {
        const char *key = out->all.items[i].key;
        uint64_t size = out->all.items[i].size;
        out->total_bytes += size;
        pipe_key k;
        pipe_listing_folder *f = NULL;
        switch (pipe_key_parse(key, &k)) {
        case PIPE_KEY_FEDERATION:
            out->have_federation = 1;
            out->federation_bytes = size;
            break;
        case PIPE_KEY_LATEST:
            have_latest = 1;
            break;
        case PIPE_KEY_VERSION:
            f = folder_for(out->versions, &out->n_versions, &vdir, &vlen, key, k.dir_len);
            if (k.obj == PIPE_OBJ_INDEX) snprintf(f->index, sizeof f->index, "%s", k.name);
            if (k.obj == PIPE_OBJ_UPDATE || k.obj == PIPE_OBJ_UPDATE_PART) f->update_bytes += size;
            break;
        case PIPE_KEY_ATTEMPT:
            f = folder_for(out->attempts, &out->n_attempts, &adir, &alen, key, k.dir_len);
            snprintf(f->facility, sizeof f->facility, "%s", k.facility);
            f->attempt = k.attempt;
            f->commit |= k.obj == PIPE_OBJ_COMMIT;
            f->rejected |= k.obj == PIPE_OBJ_REJECTED;
            break;
        default:
            if (!strcmp(key, PIPE_TOKENIZER_KEY)) {
                out->have_tokenizer = 1;
                out->tokenizer_bytes = size;
                break;
            }
            out->n_other++;
            out->other_bytes += size;
        }
        if (f) {
            f->number = k.number;
            f->objects++;
            f->bytes += size;
        }
    }
    if (have_latest) {
        void *d = NULL;
        size_t len = 0;
        XFFL_CHECK_GOTO(st, store_get(s, PIPE_LATEST_KEY, &d, &len), fail);
        out->latest = d;
        out->latest[strcspn(out->latest, "\n")] = 0;
        /* "v000004 INDEX-…": the folder it names is marked, whatever the rest says */
        for (size_t i = 0; i < out->n_versions; i++) {
            char name[32];
            int n = snprintf(name, sizeof name, "v%06lld", (long long)out->versions[i].number);
            out->versions[i].is_latest = !strncmp(out->latest, name, (size_t)n) &&
                                         (out->latest[n] == ' ' || out->latest[n] == 0);
        }
    }
    return XFFL_OK;
fail:
    pipe_store_listing_free(out);
    return st;
}

void pipe_store_listing_free(pipe_store_listing *l)
{
    if (!l) return;
    store_listing_free(&l->all);
    free(l->latest);
    free(l->versions);
    free(l->attempts);
    memset(l, 0, sizeof *l);
}
