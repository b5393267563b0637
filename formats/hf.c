/* Hugging Face LLaMA checkpoints in and out (layout in hf.h). */
#include "formats/hf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/util.h"

/* Our slot -> transformers' parameter name; a per-layer one has %d for the layer. */
static const char *const hf_names[CKPT_SLOT_COUNT] = {
    [CKPT_SLOT_ATTN_NORM] = "model.layers.%d.input_layernorm.weight",
    [CKPT_SLOT_WQ] = "model.layers.%d.self_attn.q_proj.weight",
    [CKPT_SLOT_WK] = "model.layers.%d.self_attn.k_proj.weight",
    [CKPT_SLOT_WV] = "model.layers.%d.self_attn.v_proj.weight",
    [CKPT_SLOT_WO] = "model.layers.%d.self_attn.o_proj.weight",
    [CKPT_SLOT_FFN_NORM] = "model.layers.%d.post_attention_layernorm.weight",
    [CKPT_SLOT_W1] = "model.layers.%d.mlp.gate_proj.weight",
    [CKPT_SLOT_W2] = "model.layers.%d.mlp.down_proj.weight",
    [CKPT_SLOT_W3] = "model.layers.%d.mlp.up_proj.weight",
    [CKPT_SLOT_EMBEDDING] = "model.embed_tokens.weight",
    [CKPT_SLOT_NORM] = "model.norm.weight",
    [CKPT_SLOT_OUTPUT] = "lm_head.weight",
};

/* The config.json field each tensor dimension comes from, for messages. */
static const char *const dim_fields[] = {
    [CKPT_DIM_NONE] = "", [CKPT_DIM_MODEL] = "hidden_size",
    [CKPT_DIM_KV] = "num_key_value_heads x head size", [CKPT_DIM_HIDDEN] = "intermediate_size",
    [CKPT_DIM_VOCAB] = "vocab_size",
};

#define INDEX_FILE "model.safetensors.index.json"
#define SINGLE_FILE "model.safetensors"
enum { MAX_JSON_FILE = 64 << 20, MAX_SHARDS = 4096 };

/* Row r of our q/k (pairs (2i, 2i+1) per head) is row hf_row(r) of transformers'
 * (halves (i, i + hd/2)): convert_llama_weights_to_hf.py's (h, i, 2) -> (h, 2, i). */
static int64_t hf_row(int64_t r, int hd)
{
    int64_t h = r / hd, w = r % hd;
    return h * hd + (w % 2) * (hd / 2) + w / 2;
}

static int permuted(ckpt_slot s) { return s == CKPT_SLOT_WQ || s == CKPT_SLOT_WK; }

static void hf_name(ckpt_slot s, int layer, char *out, size_t cap) { snprintf(out, cap, hf_names[s], layer); }

int fmt_hf_is_dir(const char *dir)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, FMT_HF_CONFIG);
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- config.json ---- */

static XFFL_MUST_USE xffl_status cfg_int(const xffl_json *root, const char *what, const char *key, int required, int dflt, int *out)
{
    const xffl_json *n = xffl_json_get(root, key);
    if (!n && !required) {
        *out = dflt;
        return XFFL_OK;
    }
    XFFL_RETURN_IF(!n, XFFL_ERR_INVALID, "%s: field %s is missing", what, key);
    int64_t v;
    XFFL_RETURN_IF(!xffl_json_int(n, &v) || v <= 0 || v > INT32_MAX, XFFL_ERR_INVALID,
                   "%s: field %s is %s, not a positive integer", what, key,
                   n->type == XFFL_JSON_NUMBER ? n->str : xffl_json_type_name(n->type));
    *out = (int)v;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status cfg_float(const xffl_json *root, const char *what, const char *key, float dflt, float *out)
{
    const xffl_json *n = xffl_json_get(root, key);
    if (!n) {
        *out = dflt;
        return XFFL_OK;
    }
    XFFL_RETURN_IF(n->type != XFFL_JSON_NUMBER || !(n->num > 0) || !isfinite((float)n->num), XFFL_ERR_INVALID,
                   "%s: field %s is %s, not a positive number", what, key,
                   n->type == XFFL_JSON_NUMBER ? n->str : xffl_json_type_name(n->type));
    *out = (float)n->num;
    return XFFL_OK;
}

/* A field that must be absent, null or false, else the model is not ours. */
static XFFL_MUST_USE xffl_status cfg_off(const xffl_json *root, const char *what, const char *key, const char *why)
{
    const xffl_json *n = xffl_json_get(root, key);
    if (!n || n->type == XFFL_JSON_NULL || (n->type == XFFL_JSON_BOOL && !n->boolean)) return XFFL_OK;
    return xffl_fail(XFFL_ERR_INVALID, "%s: field %s is set, but %s", what, key, why);
}

static XFFL_MUST_USE xffl_status parse_config(const xffl_json *root, const char *what, ckpt_model_config *c, int *tied)
{
    XFFL_RETURN_IF(root->type != XFFL_JSON_OBJECT, XFFL_ERR_INVALID, "%s: not a JSON object", what);
    const xffl_json *mt = xffl_json_get(root, "model_type");
    XFFL_RETURN_IF(!mt || mt->type != XFFL_JSON_STRING || strcmp(mt->str, "llama") != 0, XFFL_ERR_INVALID,
                   "%s: field model_type is %s%s%s, not \"llama\"", what, mt && mt->type == XFFL_JSON_STRING ? "\"" : "",
                   !mt ? "missing" : mt->type == XFFL_JSON_STRING ? mt->str : xffl_json_type_name(mt->type),
                   mt && mt->type == XFFL_JSON_STRING ? "\"" : "");
    memset(c, 0, sizeof *c);
    XFFL_FORWARD(cfg_int(root, what, "hidden_size", 1, 0, &c->dim));
    XFFL_FORWARD(cfg_int(root, what, "num_hidden_layers", 1, 0, &c->n_layers));
    XFFL_FORWARD(cfg_int(root, what, "num_attention_heads", 1, 0, &c->n_heads));
    XFFL_FORWARD(cfg_int(root, what, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads));
    XFFL_FORWARD(cfg_int(root, what, "intermediate_size", 1, 0, &c->hidden_dim));
    XFFL_FORWARD(cfg_int(root, what, "vocab_size", 1, 0, &c->vocab_size));
    XFFL_FORWARD(cfg_int(root, what, "max_position_embeddings", 1, 0, &c->max_seq_len));
    XFFL_FORWARD(cfg_float(root, what, "rms_norm_eps", 1e-6f, &c->norm_eps));
    XFFL_FORWARD(cfg_float(root, what, "rope_theta", 10000.0f, &c->rope_theta));
    const xffl_json *tw = xffl_json_get(root, "tie_word_embeddings");
    XFFL_RETURN_IF(tw && tw->type != XFFL_JSON_BOOL, XFFL_ERR_INVALID, "%s: field tie_word_embeddings is %s, not a boolean",
                   what, xffl_json_type_name(tw->type));
    *tied = tw ? tw->boolean : 0;
    const xffl_json *act = xffl_json_get(root, "hidden_act");
    XFFL_RETURN_IF(act && (act->type != XFFL_JSON_STRING || strcmp(act->str, "silu") != 0), XFFL_ERR_INVALID,
                   "%s: field hidden_act is %s, but the feed-forward is SwiGLU (silu)", what,
                   act->type == XFFL_JSON_STRING ? act->str : xffl_json_type_name(act->type));
    XFFL_FORWARD(cfg_off(root, what, "rope_scaling", "RoPE scaling is not implemented"));
    XFFL_FORWARD(cfg_off(root, what, "attention_bias", "our attention has no biases"));
    XFFL_FORWARD(cfg_off(root, what, "mlp_bias", "our feed-forward has no biases"));
    const xffl_json *hd = xffl_json_get(root, "head_dim");
    int64_t hdv;
    XFFL_RETURN_IF(hd && hd->type != XFFL_JSON_NULL && (!xffl_json_int(hd, &hdv) || hdv * c->n_heads != c->dim),
                   XFFL_ERR_INVALID, "%s: field head_dim is %s, not hidden_size / num_attention_heads", what,
                   hd->type == XFFL_JSON_NUMBER ? hd->str : xffl_json_type_name(hd->type));
    xffl_status s = ckpt_model_validate(c);
    if (s != XFFL_OK) return xffl_wrap(s, "%s", what);
    return XFFL_OK;
}

xffl_status fmt_hf_config_parse(const char *text, size_t len, const char *what, ckpt_model_config *cfg, int *tied)
{
    xffl_json_doc *doc;
    XFFL_FORWARD(xffl_json_parse(text, len, what, &doc));
    xffl_status s = parse_config(xffl_json_root(doc), what, cfg, tied);
    xffl_json_free(doc);
    return s;
}

/* The shortest decimal that reads back as the same float (1e-05, not 9.99999975e-06). */
static void float_text(float v, char *out, size_t cap)
{
    for (int p = 1; p <= 9; p++) {
        snprintf(out, cap, "%.*g", p, (double)v);
        if ((float)strtod(out, NULL) == v) return;
    }
}

static XFFL_MUST_USE xffl_status write_config(const ckpt_model_config *c, fmt_st_dtype dtype, const char *path)
{
    char eps[32], theta[32], buf[2048];
    float_text(c->norm_eps, eps, sizeof eps);
    float_text(c->rope_theta, theta, sizeof theta);
    int n = snprintf(buf, sizeof buf,
                     "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
                     "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
                     "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"vocab_size\": %d,\n"
                     "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %s,\n  \"rope_theta\": %s,\n"
                     "  \"rope_scaling\": null,\n  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n"
                     "  \"mlp_bias\": false,\n  \"tie_word_embeddings\": false,\n  \"initializer_range\": 0.02,\n"
                     "  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n  \"use_cache\": true,\n  \"torch_dtype\": \"%s\"\n}\n",
                     c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->max_seq_len, eps,
                     theta, dtype == FMT_ST_BF16 ? "bfloat16" : dtype == FMT_ST_F16 ? "float16" : "float32");
    return xffl_write_file_atomic(path, buf, (size_t)n);
}

/* ---- reading a checkpoint directory ---- */

typedef struct {
    int file;                /* -1: not found */
    const fmt_st_tensor *st; /* in files[file] */
} hf_src;

struct fmt_hf_reader {
    char *dir;
    ckpt_param_table *t;
    int tied;
    int has_index;
    int n_files;
    char **names;         /* weight files, as named in dir */
    fmt_st_file **files;
    hf_src *src;          /* per tensor of t */
};

static XFFL_MUST_USE xffl_status read_json_file(const char *path, xffl_json_doc **doc)
{
    void *data;
    size_t len;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return xffl_fail(errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    XFFL_RETURN_IF(sb.st_size > MAX_JSON_FILE, XFFL_ERR_INVALID, "%s: %lld bytes, more than a config can need", path,
                   (long long)sb.st_size);
    XFFL_FORWARD(xffl_read_file(path, &data, &len));
    xffl_status s = xffl_json_parse(data, len, path, doc);
    free(data);
    return s;
}

static XFFL_MUST_USE xffl_status add_file(fmt_hf_reader *r, const char *name, const char *index_path)
{
    for (int i = 0; i < r->n_files; i++)
        if (strcmp(r->names[i], name) == 0) return XFFL_OK;
    XFFL_RETURN_IF(!*name || strchr(name, '/') || name[0] == '.', XFFL_ERR_INVALID,
                   "%s: weight_map names \"%s\", not a file of the directory", index_path, name);
    XFFL_RETURN_IF(r->n_files == MAX_SHARDS, XFFL_ERR_INVALID, "%s: more than %d weight files", index_path, MAX_SHARDS);
    if (r->n_files % 16 == 0) {
        char **nn = realloc(r->names, (size_t)(r->n_files + 16) * sizeof *nn);
        if (nn) r->names = nn;
        fmt_st_file **nf = nn ? realloc(r->files, (size_t)(r->n_files + 16) * sizeof *nf) : NULL;
        if (nf) r->files = nf;
        XFFL_RETURN_IF(!nn || !nf, XFFL_ERR_NOMEM, "weight file list");
    }
    r->files[r->n_files] = NULL;
    XFFL_RETURN_IF(!(r->names[r->n_files] = strdup(name)), XFFL_ERR_NOMEM, "weight file list");
    r->n_files++;
    return XFFL_OK;
}

/* The weight files: the index's weight_map values, or model.safetensors. */
static XFFL_MUST_USE xffl_status list_files(fmt_hf_reader *r, xffl_json_doc **index)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", r->dir, INDEX_FILE);
    struct stat sb;
    if (stat(p, &sb) != 0) {
        snprintf(p, sizeof p, "%s/%s", r->dir, SINGLE_FILE);
        XFFL_RETURN_IF(stat(p, &sb) != 0, XFFL_ERR_NOT_FOUND, "%s: neither %s nor %s", r->dir, SINGLE_FILE, INDEX_FILE);
        return add_file(r, SINGLE_FILE, p);
    }
    r->has_index = 1;
    XFFL_FORWARD(read_json_file(p, index));
    const xffl_json *wm = xffl_json_get(xffl_json_root(*index), "weight_map");
    XFFL_RETURN_IF(!wm || wm->type != XFFL_JSON_OBJECT, XFFL_ERR_INVALID, "%s: field weight_map missing or not an object",
                   p);
    for (const xffl_json *e = wm->child; e; e = e->next) {
        XFFL_RETURN_IF(e->type != XFFL_JSON_STRING, XFFL_ERR_INVALID, "%s: weight_map entry \"%s\" is not a file name", p,
                       e->key);
        XFFL_FORWARD(add_file(r, e->str, p));
    }
    XFFL_RETURN_IF(r->n_files == 0, XFFL_ERR_INVALID, "%s: weight_map is empty", p);
    return XFFL_OK;
}

/* Which of our tensors a transformers name is: 1 and (slot, layer), or 0. */
static int parse_name(const char *name, ckpt_slot *slot, int *layer)
{
    for (int s = CKPT_LAYER_SLOTS; s < CKPT_SLOT_COUNT; s++)
        if (strcmp(name, hf_names[s]) == 0) {
            *slot = (ckpt_slot)s;
            *layer = 0;
            return 1;
        }
    static const char prefix[] = "model.layers.";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0) return 0;
    const char *d = name + sizeof prefix - 1;
    int l = 0, nd = 0;
    while (d[nd] >= '0' && d[nd] <= '9' && nd < 7) l = l * 10 + (d[nd++] - '0');
    if (!nd || d[nd] != '.' || (d[0] == '0' && nd > 1)) return 0;
    for (int s = 0; s < CKPT_LAYER_SLOTS; s++) {
        const char *suffix = strstr(hf_names[s], "%d") + 2;
        if (strcmp(d + nd, suffix) == 0) {
            *slot = (ckpt_slot)s;
            *layer = l;
            return 1;
        }
    }
    return 0;
}

/* Places every tensor of file i, checking it is one of ours, once, with our shape. */
static XFFL_MUST_USE xffl_status map_file(fmt_hf_reader *r, int i)
{
    const fmt_st_file *f = r->files[i];
    const ckpt_model_config *c = &r->t->cfg;
    for (int k = 0; k < f->n; k++) {
        const fmt_st_tensor *st = &f->tensors[k];
        ckpt_slot slot;
        int layer;
        if (!parse_name(st->name, &slot, &layer)) {
            if (strstr(st->name, "rotary_emb.inv_freq")) continue; /* older exports carry RoPE's table */
            return xffl_fail(XFFL_ERR_INVALID, "%s: tensor \"%s\" is not a parameter of a LLaMA model", f->path,
                             st->name);
        }
        XFFL_RETURN_IF(slot < CKPT_LAYER_SLOTS && layer >= c->n_layers, XFFL_ERR_INVALID,
                       "%s: tensor \"%s\" is beyond config.json num_hidden_layers %d", f->path, st->name, c->n_layers);
        int idx = ckpt_param_index(r->t, slot, layer);
        const ckpt_param *p = &r->t->params[idx];
        XFFL_RETURN_IF(r->src[idx].file >= 0, XFFL_ERR_INVALID, "%s: tensor \"%s\" is also in %s", f->path, st->name,
                       r->files[r->src[idx].file]->path);
        int ok = st->ndim == p->ndim && st->shape[0] == p->shape[0] && (p->ndim == 1 || st->shape[1] == p->shape[1]);
        if (!ok) {
            const ckpt_slot_info *si = &ckpt_slots[slot];
            char got[160] = "", need[64];
            for (int d = 0; d < st->ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)st->shape[d]);
            if (p->ndim == 1)
                snprintf(need, sizeof need, "[%lld] (%s)", (long long)p->shape[0], dim_fields[si->rows]);
            else
                snprintf(need, sizeof need, "[%lld, %lld] (%s x %s)", (long long)p->shape[0], (long long)p->shape[1],
                         dim_fields[si->rows], dim_fields[si->cols]);
            return xffl_fail(XFFL_ERR_INVALID, "%s: tensor \"%s\" has shape [%s], but config.json needs %s", f->path,
                             st->name, got, need);
        }
        r->src[idx] = (hf_src){i, st};
    }
    return XFFL_OK;
}

/* Each weight_map entry must name the file that holds the tensor. */
static XFFL_MUST_USE xffl_status check_index(const fmt_hf_reader *r, const xffl_json_doc *index)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", r->dir, INDEX_FILE);
    const xffl_json *wm = xffl_json_get(xffl_json_root(index), "weight_map");
    for (const xffl_json *e = wm->child; e; e = e->next) {
        int i = 0;
        while (strcmp(r->names[i], e->str) != 0) i++;
        XFFL_RETURN_IF(!fmt_st_find(r->files[i], e->key), XFFL_ERR_INVALID,
                       "%s: weight_map puts \"%s\" in %s, which does not hold it", p, e->key, e->str);
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status open_all(fmt_hf_reader *r)
{
    char p[4200];
    ckpt_model_config cfg;
    snprintf(p, sizeof p, "%s/%s", r->dir, FMT_HF_CONFIG);
    xffl_json_doc *doc = NULL, *index = NULL;
    XFFL_FORWARD(read_json_file(p, &doc));
    xffl_status s = parse_config(xffl_json_root(doc), p, &cfg, &r->tied);
    xffl_json_free(doc);
    XFFL_FORWARD(s);
    XFFL_FORWARD(ckpt_param_table_create(&cfg, &r->t));
    r->src = malloc((size_t)r->t->count * sizeof *r->src);
    XFFL_RETURN_IF(!r->src, XFFL_ERR_NOMEM, "tensor sources");
    for (int i = 0; i < r->t->count; i++) r->src[i].file = -1;
    s = list_files(r, &index);
    for (int i = 0; i < r->n_files && s == XFFL_OK; i++) {
        snprintf(p, sizeof p, "%s/%s", r->dir, r->names[i]);
        s = fmt_st_open(p, &r->files[i]);
        if (s == XFFL_OK) s = map_file(r, i);
    }
    if (s == XFFL_OK && index) s = check_index(r, index);
    xffl_json_free(index);
    XFFL_FORWARD(s);
    int emb = ckpt_param_index(r->t, CKPT_SLOT_EMBEDDING, 0), out = ckpt_param_index(r->t, CKPT_SLOT_OUTPUT, 0);
    if (r->tied) r->src[out] = r->src[emb]; /* transformers ties them, ignoring any lm_head stored */
    for (int i = 0; i < r->t->count; i++) {
        const ckpt_param *pr = &r->t->params[i];
        if (r->src[i].file >= 0) continue;
        char name[CKPT_NAME_MAX + 32];
        hf_name(pr->slot, pr->layer, name, sizeof name);
        return xffl_fail(XFFL_ERR_INVALID, "%s: tensor \"%s\" is missing (config.json: %d layers%s)", r->dir, name,
                         cfg.n_layers, pr->slot == CKPT_SLOT_OUTPUT ? ", tie_word_embeddings false" : "");
    }
    return XFFL_OK;
}

xffl_status fmt_hf_open(const char *dir, fmt_hf_reader **out)
{
    *out = NULL;
    fmt_hf_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = strdup(dir))) {
        free(r);
        return xffl_fail(XFFL_ERR_NOMEM, "%s: reader", dir);
    }
    xffl_status s = open_all(r);
    if (s != XFFL_OK) {
        fmt_hf_close(r);
        return s;
    }
    *out = r;
    return XFFL_OK;
}

void fmt_hf_close(fmt_hf_reader *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_files; i++) {
        fmt_st_close(r->files[i]);
        free(r->names[i]);
    }
    free(r->files);
    free(r->names);
    free(r->src);
    ckpt_param_table_free(r->t);
    free(r->dir);
    free(r);
}

const ckpt_param_table *fmt_hf_table(const fmt_hf_reader *r) { return r->t; }

xffl_status fmt_hf_read(const fmt_hf_reader *r, int index, float *out)
{
    const ckpt_param *p = &r->t->params[index];
    const hf_src *src = &r->src[index];
    const fmt_st_file *f = r->files[src->file];
    if (!permuted(p->slot)) {
        XFFL_FORWARD(fmt_st_read(f, src->st, out));
    } else { /* row by row into place: no second copy of the tensor */
        int hd = r->t->cfg.dim / r->t->cfg.n_heads;
        int64_t cols = p->shape[1];
        for (int64_t row = 0; row < p->shape[0]; row++)
            XFFL_FORWARD(fmt_st_read_range(f, src->st, hf_row(row, hd) * cols, cols, out + row * cols));
    }
    for (int64_t i = 0; i < p->numel; i++)
        XFFL_RETURN_IF(!isfinite(out[i]), XFFL_ERR_INVALID, "%s: tensor \"%s\": element %lld is not finite", f->path,
                       src->st->name, (long long)i);
    return XFFL_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

xffl_status fmt_hf_digest(const fmt_hf_reader *r, char hex[XFFL_SHA256_HEX])
{
    const char *names[MAX_SHARDS + 2];
    int n = 0;
    names[n++] = FMT_HF_CONFIG;
    if (r->has_index) names[n++] = INDEX_FILE;
    for (int i = 0; i < r->n_files; i++) names[n++] = r->names[i];
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    xffl_sha256_ctx *ctx = xffl_sha256_create();
    XFFL_RETURN_IF(!ctx, XFFL_ERR_NOMEM, "sha256");
    xffl_status s = XFFL_OK;
    for (int i = 0; i < n && s == XFFL_OK; i++) {
        char p[4200], line[4300], h[XFFL_SHA256_HEX];
        snprintf(p, sizeof p, "%s/%s", r->dir, names[i]);
        s = xffl_sha256_file(p, h, NULL);
        int k = snprintf(line, sizeof line, "%s  %s\n", h, names[i]);
        if (s == XFFL_OK) xffl_sha256_update(ctx, line, (size_t)k);
    }
    uint8_t d[XFFL_SHA256_LEN];
    xffl_sha256_final(ctx, d);
    xffl_sha256_free(ctx);
    if (s == XFFL_OK) xffl_hex_encode(d, XFFL_SHA256_LEN, hex);
    return s;
}

/* ---- export ---- */

typedef struct {
    const ckpt_param_table *t;
    const float *params;
    const int *tensor; /* the shard's table indexes */
} fill_ctx;

static XFFL_MUST_USE xffl_status fill(void *ctx, int i, float *out)
{
    fill_ctx *fc = ctx;
    const ckpt_param *p = &fc->t->params[fc->tensor[i]];
    const float *src = fc->params + p->offset;
    if (!permuted(p->slot)) {
        memcpy(out, src, (size_t)p->numel * sizeof *out);
        return XFFL_OK;
    }
    int hd = fc->t->cfg.dim / fc->t->cfg.n_heads;
    int64_t cols = p->shape[1];
    for (int64_t row = 0; row < p->shape[0]; row++)
        memcpy(out + hf_row(row, hd) * cols, src + row * cols, (size_t)cols * sizeof *out);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status write_tokenizer_config(const ckpt_model_config *c, int has_tokenizer, const char *path)
{
    char buf[1024];
    int n = has_tokenizer
                ? snprintf(buf, sizeof buf,
                           "{\n  \"tokenizer_class\": \"LlamaTokenizer\",\n  \"bos_token\": \"<s>\",\n"
                           "  \"eos_token\": \"</s>\",\n  \"unk_token\": \"<unk>\",\n  \"add_bos_token\": true,\n"
                           "  \"add_eos_token\": false,\n  \"legacy\": true,\n  \"model_max_length\": %d\n}\n",
                           c->max_seq_len)
                : snprintf(buf, sizeof buf, "{\n  \"model_max_length\": %d\n}\n", c->max_seq_len);
    return xffl_write_file_atomic(path, buf, (size_t)n);
}

/* Writes tensors [first, first + count) of t as one weight file. */
static XFFL_MUST_USE xffl_status write_shard(const ckpt_param_table *t, const float *params, const fmt_hf_export_options *o,
                               int first, int count, const char *path)
{
    fmt_st_spec *specs = calloc((size_t)count, sizeof *specs);
    int *tensor = calloc((size_t)count, sizeof *tensor);
    char(*names)[CKPT_NAME_MAX + 32] = calloc((size_t)count, sizeof *names);
    xffl_status s = specs && tensor && names ? XFFL_OK : xffl_fail(XFFL_ERR_NOMEM, "%s: specs", path);
    for (int i = 0; i < count && s == XFFL_OK; i++) {
        const ckpt_param *p = &t->params[first + i];
        hf_name(p->slot, p->layer, names[i], sizeof names[i]);
        specs[i] = (fmt_st_spec){.name = names[i], .dtype = o->dtype, .ndim = p->ndim, .shape = {p->shape[0], p->shape[1]}};
        tensor[i] = first + i;
    }
    fill_ctx fc = {t, params, tensor};
    if (s == XFFL_OK) s = fmt_st_write(path, specs, count, fill, &fc);
    free(specs);
    free(tensor);
    free(names);
    return s;
}

static uint64_t tensor_bytes(const ckpt_param *p, fmt_st_dtype d) { return (uint64_t)p->numel * fmt_st_dtype_size(d); }

/* model.safetensors.index.json: every tensor and its shard. */
static XFFL_MUST_USE xffl_status write_index(const ckpt_param_table *t, const int *shard_of, int shards, uint64_t total,
                               const char *path)
{
    size_t cap = 256 + (size_t)t->count * 128, n = 0;
    char *buf = malloc(cap);
    XFFL_RETURN_IF(!buf, XFFL_ERR_NOMEM, "%s", path);
    n += (size_t)snprintf(buf, cap, "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {\n",
                          (unsigned long long)total);
    for (int i = 0; i < t->count; i++) {
        char name[CKPT_NAME_MAX + 32];
        hf_name(t->params[i].slot, t->params[i].layer, name, sizeof name);
        n += (size_t)snprintf(buf + n, cap - n, "    \"%s\": \"model-%05d-of-%05d.safetensors\"%s\n", name,
                              shard_of[i] + 1, shards, i + 1 < t->count ? "," : "");
    }
    n += (size_t)snprintf(buf + n, cap - n, "  }\n}\n");
    xffl_status s = xffl_write_file_atomic(path, buf, n);
    free(buf);
    return s;
}

xffl_status fmt_hf_export(const ckpt_param_table *t, const float *params, const char *dir,
                          const fmt_hf_export_options *o, fmt_hf_export_result *res)
{
    memset(res, 0, sizeof *res);
    uint64_t limit = o->shard_bytes ? o->shard_bytes : FMT_HF_SHARD_BYTES;
    char p[4200];
    XFFL_FORWARD(xffl_mkdirs(dir));
    snprintf(p, sizeof p, "%s/%s", dir, FMT_HF_CONFIG);
    XFFL_FORWARD(write_config(&t->cfg, o->dtype, p));
    /* shards: table order, a new one when the next tensor would pass the limit */
    int *shard_of = malloc((size_t)t->count * sizeof *shard_of);
    XFFL_RETURN_IF(!shard_of, XFFL_ERR_NOMEM, "shard plan");
    int shards = 1;
    uint64_t in = 0;
    for (int i = 0; i < t->count; i++) {
        uint64_t b = tensor_bytes(&t->params[i], o->dtype);
        if (in && in + b > limit) shards++, in = 0;
        in += b;
        shard_of[i] = shards - 1;
        res->bytes += b;
    }
    xffl_status s = XFFL_OK;
    for (int k = 0, first = 0; k < shards && s == XFFL_OK; k++) {
        int count = 0;
        while (first + count < t->count && shard_of[first + count] == k) count++;
        if (shards == 1)
            snprintf(p, sizeof p, "%s/%s", dir, SINGLE_FILE);
        else
            snprintf(p, sizeof p, "%s/model-%05d-of-%05d.safetensors", dir, k + 1, shards);
        s = write_shard(t, params, o, first, count, p);
        first += count;
    }
    if (s == XFFL_OK && shards > 1) {
        snprintf(p, sizeof p, "%s/%s", dir, INDEX_FILE);
        s = write_index(t, shard_of, shards, res->bytes, p);
    }
    free(shard_of);
    if (s == XFFL_OK) {
        snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
        s = write_tokenizer_config(&t->cfg, o->has_tokenizer, p);
    }
    res->shards = shards;
    return s;
}
