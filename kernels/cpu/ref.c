/* Reference ops (contract in ref.h): plain loops in double, one per op. */
#include "kernels/cpu/ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kref_embedding_fwd(double *out, const int32_t *tok, const double *E, int N, int D)
{
    for (int n = 0; n < N; n++)
        for (int d = 0; d < D; d++) out[(int64_t)n * D + d] = E[(int64_t)tok[n] * D + d];
}

void kref_embedding_bwd(double *dE, const int32_t *tok, const double *dout, int N, int D)
{
    for (int n = 0; n < N; n++)
        for (int d = 0; d < D; d++) dE[(int64_t)tok[n] * D + d] += dout[(int64_t)n * D + d];
}

void kref_rmsnorm_fwd(double *out, double *rstd, const double *x, const double *g, int N, int D, double eps)
{
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int d = 0; d < D; d++) ss += x[n * D + d] * x[n * D + d];
        double r = 1.0 / sqrt(ss / D + eps);
        if (rstd) rstd[n] = r;
        for (int d = 0; d < D; d++) out[n * D + d] = x[n * D + d] * r * g[d];
    }
}

void kref_rmsnorm_bwd(double *dx, double *dg, const double *dout, const double *x, const double *g, int N, int D,
                      double eps)
{
    for (int n = 0; n < N; n++) {
        const double *xr = x + n * D, *dy = dout + n * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += xr[d] * xr[d];
        double r = 1.0 / sqrt(ss / D + eps);
        /* dr/dx_j = -r^3 x_j / D */
        double dot = 0;
        for (int d = 0; d < D; d++) dot += dy[d] * g[d] * xr[d];
        for (int d = 0; d < D; d++) {
            dx[n * D + d] += dy[d] * g[d] * r - dot * r * r * r * xr[d] / D;
            dg[d] += dy[d] * xr[d] * r;
        }
    }
}

void kref_matmul_fwd(double *out, const double *x, const double *W, int N, int K, int O)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double s = 0;
            for (int i = 0; i < K; i++) s += x[(int64_t)n * K + i] * W[(int64_t)o * K + i];
            out[(int64_t)n * O + o] = s;
        }
}

void kref_matmul_bwd(double *dx, double *dW, const double *dout, const double *x, const double *W, int N, int K,
                     int O)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double d = dout[(int64_t)n * O + o];
            for (int i = 0; i < K; i++) {
                if (dx) dx[(int64_t)n * K + i] += d * W[(int64_t)o * K + i];
                if (dW) dW[(int64_t)o * K + i] += d * x[(int64_t)n * K + i];
            }
        }
}

void kref_rope(double *x, int B, int T, int nh, int hd, double theta, int inverse)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++)
                for (int i = 0; i < hd / 2; i++) {
                    double a = t * pow(theta, -2.0 * i / hd) * (inverse ? -1 : 1);
                    double *p = x + (((int64_t)b * T + t) * nh + h) * hd + 2 * i;
                    double x0 = p[0], x1 = p[1];
                    p[0] = x0 * cos(a) - x1 * sin(a);
                    p[1] = x0 * sin(a) + x1 * cos(a);
                }
}

static void probs(double *P, const double *q, const double *k, int T, int H, int KV, int hd, int b, int h)
{
    int kvh = h / (H / KV);
    for (int t = 0; t < T; t++) {
        double *row = P + (int64_t)t * T, mx = -INFINITY;
        for (int s = 0; s < T; s++) {
            if (s > t) {
                row[s] = 0;
                continue;
            }
            double dot = 0;
            for (int i = 0; i < hd; i++)
                dot += q[(((int64_t)b * T + t) * H + h) * hd + i] * k[(((int64_t)b * T + s) * KV + kvh) * hd + i];
            row[s] = dot / sqrt((double)hd);
            if (row[s] > mx) mx = row[s];
        }
        double sum = 0;
        for (int s = 0; s <= t; s++) sum += row[s] = exp(row[s] - mx);
        for (int s = 0; s <= t; s++) row[s] /= sum;
    }
}

void kref_attention_fwd(double *out, double *Pall, const double *q, const double *k, const double *v, int B, int T,
                        int H, int KV, int hd)
{
    double *P = malloc(sizeof(double) * T * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kvh = h / (H / KV);
            probs(P, q, k, T, H, KV, hd, b, h);
            if (Pall) memcpy(Pall + ((int64_t)b * H + h) * T * T, P, sizeof(double) * T * T);
            for (int t = 0; t < T; t++)
                for (int i = 0; i < hd; i++) {
                    double s = 0;
                    for (int u = 0; u <= t; u++) s += P[t * T + u] * v[(((int64_t)b * T + u) * KV + kvh) * hd + i];
                    out[(((int64_t)b * T + t) * H + h) * hd + i] = s;
                }
        }
    free(P);
}

void kref_attention_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q, const double *k,
                        const double *v, int B, int T, int H, int KV, int hd)
{
    double *P = malloc(sizeof(double) * T * T), *dP = malloc(sizeof(double) * T * T);
    double sc = 1.0 / sqrt((double)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kvh = h / (H / KV);
#define Q(t, i) q[(((int64_t)b * T + (t)) * H + h) * hd + (i)]
#define DO(t, i) dout[(((int64_t)b * T + (t)) * H + h) * hd + (i)]
#define KV_(a, t, i) a[(((int64_t)b * T + (t)) * KV + kvh) * hd + (i)]
            probs(P, q, k, T, H, KV, hd, b, h);
            for (int t = 0; t < T; t++)
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += DO(t, i) * KV_(v, s, i);
                    dP[t * T + s] = d;
                    for (int i = 0; i < hd; i++) KV_(dv, s, i) += P[t * T + s] * DO(t, i);
                }
            for (int t = 0; t < T; t++) {
                double dot = 0;
                for (int s = 0; s <= t; s++) dot += P[t * T + s] * dP[t * T + s];
                for (int s = 0; s <= t; s++) {
                    double ds = P[t * T + s] * (dP[t * T + s] - dot) * sc;
                    for (int i = 0; i < hd; i++) {
                        dq[(((int64_t)b * T + t) * H + h) * hd + i] += ds * KV_(k, s, i);
                        KV_(dk, s, i) += ds * Q(t, i);
                    }
                }
            }
#undef Q
#undef DO
#undef KV_
        }
    free(P);
    free(dP);
}

void kref_swiglu_fwd(double *g, const double *a, const double *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) g[i] = a[i] / (1 + exp(-a[i])) * b[i];
}

void kref_swiglu_bwd(double *da, double *db, const double *dg, const double *a, const double *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 1 / (1 + exp(-a[i]));
        db[i] += dg[i] * a[i] * s;
        da[i] += dg[i] * b[i] * (s + a[i] * s * (1 - s));
    }
}

static double lse_row(const double *row, int V)
{
    double mx = row[0], s = 0;
    for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
    for (int j = 0; j < V; j++) s += exp(row[j] - mx);
    return mx + log(s);
}

double kref_xent_fwd(const double *logits, const int32_t *tgt, int N, int V)
{
    double total = 0;
    for (int n = 0; n < N; n++) total += lse_row(logits + (int64_t)n * V, V) - logits[(int64_t)n * V + tgt[n]];
    return total / N;
}

void kref_xent_bwd(double *dlogits, const double *logits, const int32_t *tgt, int N, int V)
{
    for (int n = 0; n < N; n++) {
        double l = lse_row(logits + (int64_t)n * V, V);
        for (int j = 0; j < V; j++)
            dlogits[(int64_t)n * V + j] += (exp(logits[(int64_t)n * V + j] - l) - (j == tgt[n])) / N;
    }
}

void kref_adamw(double *p, const double *g, double *m, double *v, int64_t n, double lr, double beta1, double beta2,
                double eps, double wd, int64_t step)
{
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    for (int64_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        p[i] -= lr * ((m[i] / bc1) / (sqrt(v[i] / bc2) + eps) + wd * p[i]);
    }
}

double kref_model_loss(const ckpt_param_table *t, const double *params, const int32_t *inputs, const int32_t *targets,
                       int B, int T, double *grads, double *logits_out)
{
    const ckpt_model_config *c = &t->cfg;
    int N = B * T, D = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = D / H, F = c->hidden_dim, V = c->vocab_size;
    int L = c->n_layers, Dk = KV * hd;
    double eps = c->norm_eps, theta = c->rope_theta;
#define PW(i) (params + t->params[(i)].offset)
#define GW(i) (grads + t->params[(i)].offset)
#define A(n) calloc((size_t)(n), sizeof(double))
#define LI(slot) ckpt_param_index(t, CKPT_SLOT_##slot, l)
    /* saved activations per layer */
    double **x = calloc(L + 1, sizeof *x), **xn1 = calloc(L, sizeof *x), **q = calloc(L, sizeof *x),
           **k = calloc(L, sizeof *x), **v = calloc(L, sizeof *x), **att = calloc(L, sizeof *x),
           **mid = calloc(L, sizeof *x), **xn2 = calloc(L, sizeof *x), **h1 = calloc(L, sizeof *x),
           **h3 = calloc(L, sizeof *x), **gg = calloc(L, sizeof *x);
    x[0] = A(N * D);
    kref_embedding_fwd(x[0], inputs, PW(ckpt_param_index(t, CKPT_SLOT_EMBEDDING, 0)), N, D);
    double *tmp = A(N * (D > F ? D : F));
    for (int l = 0; l < L; l++) {
        int wq = LI(WQ), wk = LI(WK), wv = LI(WV), wo = LI(WO), an = LI(ATTN_NORM), fn = LI(FFN_NORM), w1 = LI(W1),
            w2 = LI(W2), w3 = LI(W3);
        xn1[l] = A(N * D);
        q[l] = A(N * D);
        k[l] = A(N * Dk);
        v[l] = A(N * Dk);
        att[l] = A(N * D);
        mid[l] = A(N * D);
        xn2[l] = A(N * D);
        h1[l] = A(N * F);
        h3[l] = A(N * F);
        gg[l] = A(N * F);
        x[l + 1] = A(N * D);
        kref_rmsnorm_fwd(xn1[l], NULL, x[l], PW(an), N, D, eps);
        kref_matmul_fwd(q[l], xn1[l], PW(wq), N, D, D);
        kref_matmul_fwd(k[l], xn1[l], PW(wk), N, D, Dk);
        kref_matmul_fwd(v[l], xn1[l], PW(wv), N, D, Dk);
        kref_rope(q[l], B, T, H, hd, theta, 0);
        kref_rope(k[l], B, T, KV, hd, theta, 0);
        kref_attention_fwd(att[l], NULL, q[l], k[l], v[l], B, T, H, KV, hd);
        kref_matmul_fwd(tmp, att[l], PW(wo), N, D, D);
        for (int64_t i = 0; i < (int64_t)N * D; i++) mid[l][i] = x[l][i] + tmp[i];
        kref_rmsnorm_fwd(xn2[l], NULL, mid[l], PW(fn), N, D, eps);
        kref_matmul_fwd(h1[l], xn2[l], PW(w1), N, D, F);
        kref_matmul_fwd(h3[l], xn2[l], PW(w3), N, D, F);
        kref_swiglu_fwd(gg[l], h1[l], h3[l], (int64_t)N * F);
        kref_matmul_fwd(tmp, gg[l], PW(w2), N, F, D);
        for (int64_t i = 0; i < (int64_t)N * D; i++) x[l + 1][i] = mid[l][i] + tmp[i];
    }
    int in = ckpt_param_index(t, CKPT_SLOT_NORM, 0), io = ckpt_param_index(t, CKPT_SLOT_OUTPUT, 0);
    double *xnf = A(N * D), *logits = A((int64_t)N * V);
    kref_rmsnorm_fwd(xnf, NULL, x[L], PW(in), N, D, eps);
    kref_matmul_fwd(logits, xnf, PW(io), N, D, V);
    if (logits_out) memcpy(logits_out, logits, sizeof(double) * N * V);
    double loss = targets ? kref_xent_fwd(logits, targets, N, V) : 0;
    if (grads && targets) {
        double *dlog = A((int64_t)N * V), *dx = A(N * D), *dxn = A(N * D), *dF1 = A(N * F), *dF3 = A(N * F),
               *dg = A(N * F), *datt = A(N * D), *dq = A(N * D), *dk = A(N * Dk), *dv = A(N * Dk);
        kref_xent_bwd(dlog, logits, targets, N, V);
        kref_matmul_bwd(dxn, GW(io), dlog, xnf, PW(io), N, D, V);
        kref_rmsnorm_bwd(dx, GW(in), dxn, x[L], PW(in), N, D, eps);
        for (int l = L - 1; l >= 0; l--) {
            int wq = LI(WQ), wk = LI(WK), wv = LI(WV), wo = LI(WO), an = LI(ATTN_NORM), fn = LI(FFN_NORM),
                w1 = LI(W1), w2 = LI(W2), w3 = LI(W3);
            memset(dg, 0, sizeof(double) * N * F);
            memset(dF1, 0, sizeof(double) * N * F);
            memset(dF3, 0, sizeof(double) * N * F);
            memset(dxn, 0, sizeof(double) * N * D);
            kref_matmul_bwd(dg, GW(w2), dx, gg[l], PW(w2), N, F, D);
            kref_swiglu_bwd(dF1, dF3, dg, h1[l], h3[l], (int64_t)N * F);
            kref_matmul_bwd(dxn, GW(w1), dF1, xn2[l], PW(w1), N, D, F);
            kref_matmul_bwd(dxn, GW(w3), dF3, xn2[l], PW(w3), N, D, F);
            kref_rmsnorm_bwd(dx, GW(fn), dxn, mid[l], PW(fn), N, D, eps);
            memset(datt, 0, sizeof(double) * N * D);
            kref_matmul_bwd(datt, GW(wo), dx, att[l], PW(wo), N, D, D);
            memset(dq, 0, sizeof(double) * N * D);
            memset(dk, 0, sizeof(double) * N * Dk);
            memset(dv, 0, sizeof(double) * N * Dk);
            kref_attention_bwd(dq, dk, dv, datt, q[l], k[l], v[l], B, T, H, KV, hd);
            kref_rope(dq, B, T, H, hd, theta, 1);
            kref_rope(dk, B, T, KV, hd, theta, 1);
            memset(dxn, 0, sizeof(double) * N * D);
            kref_matmul_bwd(dxn, GW(wq), dq, xn1[l], PW(wq), N, D, D);
            kref_matmul_bwd(dxn, GW(wk), dk, xn1[l], PW(wk), N, D, Dk);
            kref_matmul_bwd(dxn, GW(wv), dv, xn1[l], PW(wv), N, D, Dk);
            kref_rmsnorm_bwd(dx, GW(an), dxn, x[l], PW(an), N, D, eps);
        }
        kref_embedding_bwd(GW(ckpt_param_index(t, CKPT_SLOT_EMBEDDING, 0)), inputs, dx, N, D);
        free(dlog), free(dx), free(dxn), free(dF1), free(dF3), free(dg), free(datt), free(dq), free(dk), free(dv);
    }
    for (int l = 0; l < L; l++) {
        free(xn1[l]), free(q[l]), free(k[l]), free(v[l]), free(att[l]), free(mid[l]), free(xn2[l]);
        free(h1[l]), free(h3[l]), free(gg[l]);
    }
    for (int l = 0; l <= L; l++) free(x[l]);
    free(x), free(xn1), free(q), free(k), free(v), free(att), free(mid), free(xn2), free(h1), free(h3), free(gg);
    free(tmp), free(xnf), free(logits);
#undef PW
#undef GW
#undef A
#undef LI
    return loss;
}
