/* llama2.c legacy export: header bytes and every tensor's byte offset against the
 * layout of llama2.c's export.py (legacy_export) / run.c (memory_map_weights), computed
 * here from the config alone; then the file is read back by a forward pass written
 * the way run.c computes (token by token, KV cache, its RoPE loop over q/k pairs) and
 * must reproduce the CPU backend's logits within 1e-5. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "formats/llama2c.h"
#include "kernels/kern.h"
#include "tests/unit/unit.h"

#pragma GCC diagnostic ignored "-Walloc-size-larger-than="

typedef struct {
    const float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *fcr, *fci, *wcls;
    int64_t end; /* floats after the header */
} l2c_weights;

/* Offsets (in floats after the 28-byte header) exactly as run.c's memory_map_weights. */
static l2c_weights l2c_map(const float *w, int D, int F, int L, int H, int KV, int V, int S)
{
    int64_t hs = D / H, kvd = (int64_t)KV * hs, o = 0;
    l2c_weights m;
    m.emb = w + o, o += (int64_t)V * D;
    m.rms_att = w + o, o += (int64_t)L * D;
    m.wq = w + o, o += (int64_t)L * D * D;
    m.wk = w + o, o += (int64_t)L * D * kvd;
    m.wv = w + o, o += (int64_t)L * D * kvd;
    m.wo = w + o, o += (int64_t)L * D * D;
    m.rms_ffn = w + o, o += (int64_t)L * D;
    m.w1 = w + o, o += (int64_t)L * D * F;
    m.w2 = w + o, o += (int64_t)L * F * D;
    m.w3 = w + o, o += (int64_t)L * D * F;
    m.rms_final = w + o, o += D;
    m.fcr = w + o, o += (int64_t)S * hs / 2;
    m.fci = w + o, o += (int64_t)S * hs / 2;
    m.wcls = w + o, o += (int64_t)V * D;
    m.end = o;
    return m;
}

static void rmsnorm(double *o, const double *x, const float *g, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    ss = 1.0 / sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; i++) o[i] = g[i] * (ss * x[i]);
}
static void matvec(double *o, const double *x, const float *w, int n, int d) /* W (d,n) */
{
    for (int i = 0; i < d; i++) {
        double s = 0;
        for (int j = 0; j < n; j++) s += w[(int64_t)i * n + j] * x[j];
        o[i] = s;
    }
}

/* run.c's forward for one position, logits into out (V). kc, vc: [L, S, kvd]. */
static void l2c_forward(const l2c_weights *w, int D, int F, int L, int H, int KV, int V, int S, double *kc,
                        double *vc, int token, int pos, double *out)
{
    int hs = D / H, kvd = KV * hs, kv_mul = H / KV;
    double *x = calloc(D, 8), *xb = calloc(D, 8), *xb2 = calloc(D, 8), *q = calloc(D, 8), *hb = calloc(F, 8),
           *hb2 = calloc(F, 8), *att = calloc(S, 8);
    for (int i = 0; i < D; i++) x[i] = w->emb[(int64_t)token * D + i];
    for (int l = 0; l < L; l++) {
        rmsnorm(xb, x, w->rms_att + (int64_t)l * D, D);
        double *k = kc + ((int64_t)l * S + pos) * kvd, *v = vc + ((int64_t)l * S + pos) * kvd;
        matvec(q, xb, w->wq + (int64_t)l * D * D, D, D);
        matvec(k, xb, w->wk + (int64_t)l * D * kvd, D, kvd);
        matvec(v, xb, w->wv + (int64_t)l * D * kvd, D, kvd);
        for (int i = 0; i < D; i += 2) {
            int head_dim = i % hs;
            double freq = 1.0 / pow(10000.0, head_dim / (double)hs), val = pos * freq;
            double fcr = cos(val), fci = sin(val);
            for (int r = 0; r < (i < kvd ? 2 : 1); r++) {
                double *vec = r == 0 ? q : k, v0 = vec[i], v1 = vec[i + 1];
                vec[i] = v0 * fcr - v1 * fci;
                vec[i + 1] = v0 * fci + v1 * fcr;
            }
        }
        for (int h = 0; h < H; h++) {
            double *qh = q + h * hs, mx = -1e300, sum = 0;
            for (int t = 0; t <= pos; t++) {
                const double *kt = kc + ((int64_t)l * S + t) * kvd + (h / kv_mul) * hs;
                double s = 0;
                for (int i = 0; i < hs; i++) s += qh[i] * kt[i];
                att[t] = s / sqrt((double)hs);
                mx = att[t] > mx ? att[t] : mx;
            }
            for (int t = 0; t <= pos; t++) sum += att[t] = exp(att[t] - mx);
            for (int i = 0; i < hs; i++) {
                double s = 0;
                for (int t = 0; t <= pos; t++) s += att[t] / sum * vc[((int64_t)l * S + t) * kvd + (h / kv_mul) * hs + i];
                xb[h * hs + i] = s;
            }
        }
        matvec(xb2, xb, w->wo + (int64_t)l * D * D, D, D);
        for (int i = 0; i < D; i++) x[i] += xb2[i];
        rmsnorm(xb, x, w->rms_ffn + (int64_t)l * D, D);
        matvec(hb, xb, w->w1 + (int64_t)l * D * F, D, F);
        matvec(hb2, xb, w->w3 + (int64_t)l * D * F, D, F);
        for (int i = 0; i < F; i++) hb[i] = hb[i] / (1 + exp(-hb[i])) * hb2[i];
        matvec(xb, hb, w->w2 + (int64_t)l * F * D, F, D);
        for (int i = 0; i < D; i++) x[i] += xb[i];
    }
    rmsnorm(xb, x, w->rms_final, D);
    matvec(out, xb, w->wcls, D, V);
    free(x), free(xb), free(xb2), free(q), free(hb), free(hb2), free(att);
}

static void test_llama2c_layout_and_logits(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_model_preset("tiny", 0, &cfg), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(ckpt_param_table_create(&cfg, &t), XFFL_OK);
    float *p = malloc((size_t)t->total * 4);
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 77, p + t->params[i].offset);
    /* larger weights and non-unit gains, so a misplaced tensor changes the logits */
    for (int64_t i = 0; i < t->total; i++) p[i] = p[i] * 2 + 0.01f * (float)((i * 2654435761u) % 97) / 97.0f;
    char *dir = NULL, bin[4200], tok[4200];
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("xffl-export", &dir), XFFL_OK);
    snprintf(bin, sizeof bin, "%s/m.bin", dir);
    snprintf(tok, sizeof tok, "%s/m.tokenizer.bin", dir);
    CU_ASSERT_EQUAL_FATAL(fmt_llama2c_export(t, p, bin), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(fmt_llama2c_export_tokenizer(&cfg, tok), XFFL_OK);

    void *raw = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(xffl_read_file(bin, &raw, &len), XFFL_OK);
    int D = 64, F = 160, L = 2, H = 4, KV = 2, V = 256, S = 64; /* the tiny preset */
    CU_ASSERT(cfg.dim == D && cfg.hidden_dim == F && cfg.n_layers == L && cfg.n_heads == H && cfg.n_kv_heads == KV &&
              cfg.vocab_size == V && cfg.max_seq_len == S);
    int32_t hdr[7];
    memcpy(hdr, raw, 28);
    int32_t want[7] = {64, 160, 2, 4, 2, -256, 64};
    CU_ASSERT_EQUAL(memcmp(hdr, want, 28), 0);
    float *w = malloc(len);
    memcpy(w, (char *)raw + 28, len - 28);
    l2c_weights m = l2c_map(w, D, F, L, H, KV, V, S);
    CU_ASSERT_EQUAL(len, 28 + (size_t)m.end * 4);
    /* each tensor at its llama2.c offset holds our tensor's bytes */
    struct {
        const char *fmt;
        const float *at;
        int64_t per_layer;
    } map[] = {{"layers.%d.attention_norm.weight", m.rms_att, D},
               {"layers.%d.attention.wq.weight", m.wq, (int64_t)D * D},
               {"layers.%d.attention.wk.weight", m.wk, (int64_t)D * KV * (D / H)},
               {"layers.%d.attention.wv.weight", m.wv, (int64_t)D * KV * (D / H)},
               {"layers.%d.attention.wo.weight", m.wo, (int64_t)D * D},
               {"layers.%d.ffn_norm.weight", m.rms_ffn, D},
               {"layers.%d.feed_forward.w1.weight", m.w1, (int64_t)D * F},
               {"layers.%d.feed_forward.w2.weight", m.w2, (int64_t)D * F},
               {"layers.%d.feed_forward.w3.weight", m.w3, (int64_t)D * F}};
    for (size_t k = 0; k < sizeof map / sizeof *map; k++)
        for (int l = 0; l < L; l++) {
            char name[64];
            snprintf(name, sizeof name, map[k].fmt, l);
            const ckpt_param *q = &t->params[ckpt_param_find(t, name)];
            CU_ASSERT_EQUAL(q->numel, map[k].per_layer);
            CU_ASSERT_EQUAL(memcmp(map[k].at + l * map[k].per_layer, p + q->offset, (size_t)q->numel * 4), 0);
        }
    CU_ASSERT_EQUAL(memcmp(m.emb, p + t->params[ckpt_param_find(t, "tok_embeddings.weight")].offset, (size_t)V * D * 4), 0);
    CU_ASSERT_EQUAL(memcmp(m.rms_final, p + t->params[ckpt_param_find(t, "norm.weight")].offset, (size_t)D * 4), 0);
    CU_ASSERT_EQUAL(memcmp(m.wcls, p + t->params[ckpt_param_find(t, "output.weight")].offset, (size_t)V * D * 4), 0);
    /* freq_cis rows: position 3, pair 1 of a 16-wide head: angle 3 * 10000^(-2/16) */
    CU_ASSERT(fabs(m.fcr[3 * 8 + 1] - cos(3 * pow(10000.0, -2.0 / 16))) < 1e-6);
    CU_ASSERT(fabs(m.fci[3 * 8 + 1] - sin(3 * pow(10000.0, -2.0 / 16))) < 1e-6);

    /* logits: run.c-style token-by-token forward vs the CPU backend on the same sequence */
    enum { T = 12 };
    int32_t in[T] = {1, 32, 'H', 'e', 'l', 'l', 'o', ',', ' ', 'w', 'o', 'r'};
    kern_options o = {.backend = "cpu", .threads = 2, .batch = 1, .seq_len = T};
    kern_model *km = NULL;
    CU_ASSERT_EQUAL_FATAL(kern_model_create(&cfg, &o, &km), XFFL_OK);
    T_OK(kern_set_params(km, p));
    CU_ASSERT_EQUAL(kern_forward(km, in, NULL, 1, T, NULL), XFFL_OK);
    double *kc = calloc((size_t)L * S * KV * (D / H), 8), *vc = calloc((size_t)L * S * KV * (D / H), 8);
    double lg[256], worst = 0, scale = 0;
    float ours[256];
    for (int pos = 0; pos < T; pos++) {
        l2c_forward(&m, D, F, L, H, KV, V, S, kc, vc, in[pos], pos, lg);
        T_OK(kern_logits(km, 0, pos, ours));
        for (int v = 0; v < V; v++) {
            worst = fmax(worst, fabs(lg[v] - ours[v]));
            scale = fmax(scale, fabs(lg[v]));
        }
    }
    printf(" [max |logit diff| %.2e, max |logit| %.2f]", worst, scale);
    CU_ASSERT(worst < 1e-5);
    CU_ASSERT(scale > 0.1);
    kern_model_free(km);
    free(kc), free(vc), free(w), free(raw);

    /* tokenizer: max_token_length 1, then (score 0, len 1, byte i) for every byte */
    CU_ASSERT_EQUAL_FATAL(xffl_read_file(tok, &raw, &len), XFFL_OK);
    CU_ASSERT_EQUAL(len, 4 + 256 * 9);
    int32_t mx;
    memcpy(&mx, raw, 4);
    CU_ASSERT_EQUAL(mx, 1);
    for (int i = 0; i < 256; i++) {
        const unsigned char *e = (unsigned char *)raw + 4 + i * 9;
        float sc;
        int32_t ln;
        memcpy(&sc, e, 4);
        memcpy(&ln, e + 4, 4);
        CU_ASSERT(sc == 0 && ln == 1 && e[8] == i);
    }
    free(raw);

    /* configurations llama2.c's run cannot represent are refused, saying why */
    ckpt_model_config bad = cfg;
    bad.rope_theta = 500000.0f;
    CU_ASSERT_EQUAL(fmt_llama2c_check(&bad), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "rope_theta"));
    bad = cfg;
    bad.norm_eps = 1e-6f;
    CU_ASSERT_EQUAL(fmt_llama2c_check(&bad), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "norm_eps"));
    bad = cfg;
    bad.vocab_size = 512;
    CU_ASSERT_EQUAL(fmt_llama2c_export_tokenizer(&bad, tok), XFFL_ERR_UNSUPPORTED);
    xffl_rmtree_cleanup(dir);
    free(dir);
    free(p);
    ckpt_param_table_free(t);
}

void suite_kern_export(void)
{
    CU_pSuite s = CU_add_suite("kern_export", NULL, NULL);
    CU_add_test(s, "llama2c: header, every tensor offset, tokenizer, logits read back", test_llama2c_layout_and_logits);
}
