/* Fast fp32 CPU ops (contract in ops.h). Large matmuls go to OpenBLAS, which threads
 * them itself; attention runs one single-threaded sgemm per (batch, head) inside an
 * OpenMP loop (OpenBLAS runs serially inside a parallel region). */
#include "kernels/cpu/ops.h"
#include "kernels/shard.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

void kcpu_embedding_fwd(float *out, const int32_t *tok, const float *E, int N, int D)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) memcpy(out + (int64_t)n * D, E + (int64_t)tok[n] * D, (size_t)D * sizeof *out);
}

void kcpu_embedding_bwd(float *dE, const int32_t *tok, const float *dout, int N, int D)
{
    /* threads own column ranges: a token repeated in the batch sums its rows in order n */
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int lo = (int)((int64_t)D * id / nt), hi = (int)((int64_t)D * (id + 1) / nt);
        for (int n = 0; n < N; n++) {
            float *dst = dE + (int64_t)tok[n] * D;
            const float *src = dout + (int64_t)n * D;
            for (int d = lo; d < hi; d++) dst[d] += src[d];
        }
    }
}

void kcpu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *g, int N, int D, float eps)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * D;
        float *o = out + (int64_t)n * D;
        float ss = 0;
        for (int d = 0; d < D; d++) ss += xr[d] * xr[d];
        float r = 1.0f / sqrtf(ss / (float)D + eps);
        rstd[n] = r;
        for (int d = 0; d < D; d++) o[d] = xr[d] * r * g[d];
    }
}

void kcpu_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x, const float *g, const float *rstd,
                      int N, int D)
{
    /* y = x r g, r = (mean x^2 + eps)^-1/2:
     * dx_j = r g_j dy_j - x_j r^3 / D * sum_i dy_i g_i x_i;  dg_j = sum_n dy_nj x_nj r_n */
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *xr = x + (int64_t)n * D, *dy = dout + (int64_t)n * D;
            float *dxr = dx + (int64_t)n * D;
            float r = rstd[n], dot = 0;
            for (int d = 0; d < D; d++) dot += dy[d] * g[d] * xr[d];
            float c = dot * r * r * r / (float)D;
            for (int d = 0; d < D; d++) dxr[d] += r * g[d] * dy[d] - xr[d] * c;
        }
        /* columns owned by threads, rows summed in order */
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int lo = (int)((int64_t)D * id / nt), hi = (int)((int64_t)D * (id + 1) / nt);
        for (int n = 0; n < N; n++) {
            const float *xr = x + (int64_t)n * D, *dy = dout + (int64_t)n * D;
            float r = rstd[n];
            for (int d = lo; d < hi; d++) dg[d] += dy[d] * xr[d] * r;
        }
    }
}

void kcpu_matmul_fwd(float *out, int ldo, const float *x, const float *W, int N, int K, int O, float beta)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, K, 1.0f, x, K, W, K, beta, out, ldo);
}

void kcpu_matmul_bwd(float *dx, float beta_dx, float *dW, const float *dout, const float *x, const float *W, int N,
                     int K, int O)
{
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, K, O, 1.0f, dout, O, W, K, beta_dx, dx, K);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, K, N, 1.0f, dout, O, x, K, 1.0f, dW, K);
}

void kcpu_rope_table(float *cosv, float *sinv, int T, int hd, float theta)
{
    int half = hd / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double freq = pow((double)theta, -2.0 * i / hd);
            double a = t * freq;
            cosv[(int64_t)t * half + i] = (float)cos(a);
            sinv[(int64_t)t * half + i] = (float)sin(a);
        }
}

/* RoPE on one head's hd values, 16 at a time: x*[c0,c0,c1,c1..] + swap_pairs(x)*[-s0,s0,..]
 * is a*c - b*s and b*c + a*s with every product and sum rounded as in the scalar loop
 * (x - y = x + (-y) exactly, sums commute), so both forms give the same bits. */
__attribute__((target("avx512f"))) static void rope_head_avx512(float *p, const float *c, const float *s, int half,
                                                                float sgn)
{
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512 alt = _mm512_set_ps(1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
    const __m512 vsg = _mm512_set1_ps(sgn);
    for (int i = 0; i < half; i += 8) {
        int left = half - i < 8 ? half - i : 8;
        __mmask16 k8 = (__mmask16)((1u << left) - 1), k16 = (__mmask16)((1u << (2 * left)) - 1);
        __m512 cv = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(k8, c + i));
        __m512 sv = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(k8, s + i));
        sv = _mm512_mul_ps(_mm512_mul_ps(sv, vsg), alt); /* [-s0, s0, ...] (times sgn: exact) */
        __m512 xv = _mm512_maskz_loadu_ps(k16, p + 2 * i);
        __m512 sw = _mm512_permute_ps(xv, 0xB1);
        _mm512_mask_storeu_ps(p + 2 * i, k16, _mm512_add_ps(_mm512_mul_ps(xv, cv), _mm512_mul_ps(sw, sv)));
    }
}

void kcpu_rope(float *x, int ld, int B, int T, int nh, int hd, const float *cosv, const float *sinv, int inverse)
{
    int half = hd / 2;
    float sgn = inverse ? -1.0f : 1.0f;
    static int vec = -1;
    if (vec < 0) {
        __builtin_cpu_init();
        vec = __builtin_cpu_supports("avx512f");
    }
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const float *c = cosv + (int64_t)t * half, *s = sinv + (int64_t)t * half;
        float *row = x + (int64_t)bt * ld;
        for (int h = 0; h < nh; h++) {
            float *p = row + h * hd;
            if (vec) {
                rope_head_avx512(p, c, s, half, sgn);
                continue;
            }
            for (int i = 0; i < half; i++) {
                float a = p[2 * i], b = p[2 * i + 1], si = sgn * s[i];
                p[2 * i] = a * c[i] - b * si;
                p[2 * i + 1] = a * si + b * c[i];
            }
        }
    }
}

/* Causal blocking: row block [r0, r1) of the scores needs only columns [0, r1), so the
 * QK^T, PV and backward sgemms run on the lower block triangle (5/8 of the square for
 * T = 4 blocks). */
enum { ATT_BLOCK = 64 };

void kcpu_attention_fwd(float *out, int ldo, float *P, const float *q, int ldq, const float *k, const float *v,
                        int ldkv, int B, int T, int H, int KV, int hd)
{
    float scale = 1.0f / sqrtf((float)hd);
    int rep = H / KV;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, kvh = h / rep;
        const float *qb = q + (int64_t)b * T * ldq + h * hd;
        const float *kb = k + (int64_t)b * T * ldkv + kvh * hd;
        const float *vb = v + (int64_t)b * T * ldkv + kvh * hd;
        float *Pb = P + (int64_t)bh * T * T, *ob = out + (int64_t)b * T * ldo + h * hd;
        for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
            int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, rows = r1 - r0;
            float *Pr = Pb + (int64_t)r0 * T;
            /* S[r0:r1, 0:r1] = scale Q[r0:r1] K[0:r1]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, hd, scale, qb + (int64_t)r0 * ldq, ldq,
                        kb, ldkv, 0.0f, Pr, T);
            for (int t = r0; t < r1; t++) {
                float *row = Pb + (int64_t)t * T;
                float mx = row[0];
                for (int s = 1; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
                float sum = 0;
                for (int s = 0; s <= t; s++) {
                    row[s] = expf(row[s] - mx);
                    sum += row[s];
                }
                float inv = 1.0f / sum;
                for (int s = 0; s <= t; s++) row[s] *= inv;
                for (int s = t + 1; s < T; s++) row[s] = 0;
            }
            /* O[r0:r1] = P[r0:r1, 0:r1] V[0:r1] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, r1, 1.0f, Pr, T, vb, ldkv, 0.0f,
                        ob + (int64_t)r0 * ldo, ldo);
        }
    }
}

void kcpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout, int ldo, const float *P, const float *q,
                        int ldq, const float *k, const float *v, int ldkv, int B, int T, int H, int KV, int hd,
                        float *scratch)
{
    float scale = 1.0f / sqrtf((float)hd);
    int rep = H / KV;
    /* one (batch, kv head) per iteration: the query heads sharing a kv head add into its
     * dk, dv in head order, so no two threads touch the same rows */
#pragma omp parallel for schedule(static)
    for (int bk = 0; bk < B * KV; bk++) {
        int b = bk / KV, kvh = bk % KV;
        float *dS = scratch + (int64_t)omp_get_thread_num() * T * T;
        const float *kb = k + (int64_t)b * T * ldkv + kvh * hd;
        const float *vb = v + (int64_t)b * T * ldkv + kvh * hd;
        float *dkb = dk + (int64_t)b * T * ldkv + kvh * hd;
        float *dvb = dv + (int64_t)b * T * ldkv + kvh * hd;
        for (int t = 0; t < T; t++) {
            memset(dkb + (int64_t)t * ldkv, 0, (size_t)hd * sizeof(float));
            memset(dvb + (int64_t)t * ldkv, 0, (size_t)hd * sizeof(float));
        }
        for (int r = 0; r < rep; r++) {
            int h = kvh * rep + r;
            const float *Pb = P + ((int64_t)b * H + h) * T * T;
            const float *dob = dout + (int64_t)b * T * ldo + h * hd;
            const float *qb = q + (int64_t)b * T * ldq + h * hd;
            float *dqb = dq + (int64_t)b * T * ldq + h * hd;
            for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
                int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, rows = r1 - r0;
                const float *Pr = Pb + (int64_t)r0 * T;
                float *dSr = dS + (int64_t)r0 * T;
                /* dV[0:r1] += P[r0:r1, 0:r1]^T dO[r0:r1] */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hd, rows, 1.0f, Pr, T,
                            dob + (int64_t)r0 * ldo, ldo, 1.0f, dvb, ldkv);
                /* dP = dO V^T, then dS = scale * P * (dP - rowsum(P dP)) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, hd, 1.0f, dob + (int64_t)r0 * ldo,
                            ldo, vb, ldkv, 0.0f, dSr, T);
                for (int t = r0; t < r1; t++) {
                    const float *pr = Pb + (int64_t)t * T;
                    float *dr = dS + (int64_t)t * T;
                    float dot = 0;
                    for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
                    for (int s = 0; s <= t; s++) dr[s] = scale * pr[s] * (dr[s] - dot);
                    for (int s = t + 1; s < r1; s++) dr[s] = 0;
                }
                /* dQ[r0:r1] = dS K[0:r1];  dK[0:r1] += dS^T Q[r0:r1] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, r1, 1.0f, dSr, T, kb, ldkv, 0.0f,
                            dqb + (int64_t)r0 * ldq, ldq);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hd, rows, 1.0f, dSr, T,
                            qb + (int64_t)r0 * ldq, ldq, 1.0f, dkb, ldkv);
            }
        }
    }
}

void kcpu_swiglu_fwd(float *g, const float *a, const float *b, int64_t n)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

void kcpu_swiglu_bwd(float *da, float *db, const float *dg, const float *a, const float *b, int64_t n)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float sig = 1.0f / (1.0f + expf(-a[i]));
        float silu = a[i] * sig, d = dg[i];
        db[i] = d * silu;
        da[i] = d * b[i] * (sig * (1.0f + a[i] * (1.0f - sig)));
    }
}

void kcpu_swiglu13_fwd(float *g, const float *h13, int N, int F)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *a = h13 + (int64_t)n * 2 * F, *b = a + F;
        float *gr = g + (int64_t)n * F;
        for (int f = 0; f < F; f++) gr[f] = a[f] / (1.0f + expf(-a[f])) * b[f];
    }
}

void kcpu_swiglu13_bwd(float *dh13, const float *dg, const float *h13, int N, int F)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *a = h13 + (int64_t)n * 2 * F, *b = a + F, *d = dg + (int64_t)n * F;
        float *da = dh13 + (int64_t)n * 2 * F, *db = da + F;
        for (int f = 0; f < F; f++) {
            float sig = 1.0f / (1.0f + expf(-a[f]));
            db[f] = d[f] * a[f] * sig;
            da[f] = d[f] * b[f] * (sig * (1.0f + a[f] * (1.0f - sig)));
        }
    }
}

double kcpu_xent_fwd(float *loss, float *lse, const float *logits, const int32_t *tgt, int N, int V)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *row = logits + (int64_t)n * V;
        float mx = row[0];
        for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
        double sum = 0;
        for (int j = 0; j < V; j++) sum += expf(row[j] - mx);
        lse[n] = mx + (float)log(sum);
        loss[n] = lse[n] - row[tgt[n]];
    }
    double total = 0;
    for (int n = 0; n < N; n++) total += loss[n];
    return N ? total / N : 0;
}

void kcpu_xent_bwd(float *logits, const float *lse, const int32_t *tgt, int N, int V, float scale)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *row = logits + (int64_t)n * V;
        for (int j = 0; j < V; j++) row[j] = scale * expf(row[j] - lse[n]);
        row[tgt[n]] -= scale;
    }
}

/* chunk c's sum of squares, in element order */
static double sumsq_chunk(const float *x, int64_t n, int64_t c)
{
    int64_t lo = c * KERN_NORM_CHUNK, hi = lo + KERN_NORM_CHUNK < n ? lo + KERN_NORM_CHUNK : n;
    double s = 0;
    for (int64_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
    return s;
}

/* Chunks [c, c + SUMSQ_GROUP) when all are full, each still summed in its own element
 * order (the same bits as sumsq_chunk), but side by side: one chunk alone is a chain of
 * dependent double adds, bound by the add's latency; eight chains in flight are bound by
 * memory. (A square of a float is exact in double, so a fused multiply-add rounds the
 * same as the separate ones.) */
enum { SUMSQ_GROUP = 8 };
static void sumsq_group(const float *x, int64_t n, int64_t c, double *out)
{
    if ((c + SUMSQ_GROUP) * KERN_NORM_CHUNK > n) {
        for (int k = 0; k < SUMSQ_GROUP && (c + k) * KERN_NORM_CHUNK < n; k++) out[k] = sumsq_chunk(x, n, c + k);
        return;
    }
    const float *p = x + c * KERN_NORM_CHUNK;
    double s[SUMSQ_GROUP] = {0};
    for (int64_t i = 0; i < KERN_NORM_CHUNK; i++)
        for (int k = 0; k < SUMSQ_GROUP; k++) {
            double v = p[(int64_t)k * KERN_NORM_CHUNK + i];
            s[k] += v * v;
        }
    memcpy(out, s, sizeof s);
}

void kcpu_sumsq_parts(const float *x, int64_t n, double *parts)
{
    int64_t groups = (kern_norm_chunks(n) + SUMSQ_GROUP - 1) / SUMSQ_GROUP;
#pragma omp parallel for schedule(static)
    for (int64_t g = 0; g < groups; g++) sumsq_group(x, n, g * SUMSQ_GROUP, parts + g * SUMSQ_GROUP);
}

double kcpu_sumsq(const float *x, int64_t n)
{
    int64_t chunks = kern_norm_chunks(n);
    double total = 0;
    /* partial sums in chunk order, independent of the thread count */
    enum { BATCH = 32 * SUMSQ_GROUP };
    double part[BATCH];
    for (int64_t c0 = 0; c0 < chunks; c0 += BATCH) {
        int64_t cn = chunks - c0 < BATCH ? chunks - c0 : BATCH;
        int64_t left = n - c0 * KERN_NORM_CHUNK;
        kcpu_sumsq_parts(x + c0 * KERN_NORM_CHUNK, left < BATCH * KERN_NORM_CHUNK ? left : BATCH * KERN_NORM_CHUNK, part);
        for (int64_t c = 0; c < cn; c++) total += part[c];
    }
    return total;
}

/* One chunk of AdamW, in the scalar expression's exact order: every operation rounds
 * on its own (-ffp-contract=off; no FMA in the vector form either), so both forms give
 * the same bits and the AVX-512 one is picked at run time. */
static void adamw_scalar(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
                         float beta2, float eps, float wd, float ib1, float ib2, float gscale)
{
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gscale;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * ((mi * ib1) / (sqrtf(vi * ib2) + eps) + wd * p[i]);
    }
}

__attribute__((target("avx512f"))) static void adamw_avx512(float *p, const float *g, float *m, float *v,
                                                             int64_t n, float lr, float beta1, float beta2,
                                                             float eps, float wd, float ib1, float ib2, float gscale)
{
    const __m512 b1 = _mm512_set1_ps(beta1), b2 = _mm512_set1_ps(beta2), c1 = _mm512_set1_ps(1.0f - beta1),
                 c2 = _mm512_set1_ps(1.0f - beta2), vlr = _mm512_set1_ps(lr), veps = _mm512_set1_ps(eps),
                 vwd = _mm512_set1_ps(wd), vib1 = _mm512_set1_ps(ib1), vib2 = _mm512_set1_ps(ib2),
                 vgs = _mm512_set1_ps(gscale);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), vgs);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(c1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        __m512 pi = _mm512_loadu_ps(p + i);
        __m512 den = _mm512_add_ps(_mm512_sqrt_ps(_mm512_mul_ps(vi, vib2)), veps);
        __m512 upd = _mm512_add_ps(_mm512_div_ps(_mm512_mul_ps(mi, vib1), den), _mm512_mul_ps(vwd, pi));
        _mm512_storeu_ps(p + i, _mm512_sub_ps(pi, _mm512_mul_ps(vlr, upd)));
    }
    adamw_scalar(p + i, g + i, m + i, v + i, n - i, lr, beta1, beta2, eps, wd, ib1, ib2, gscale);
}

void kcpu_adamw(float *p, kcpu_bf16_t *pb, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
                float beta2, float eps, float wd, double bc1, double bc2, float gscale)
{
    float ib1 = (float)(1.0 / bc1), ib2 = (float)(1.0 / bc2);
    static int vec = -1;
    if (vec < 0) {
        __builtin_cpu_init();
        vec = __builtin_cpu_supports("avx512f");
    }
    enum { CHUNK = 4096 };
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
        if (vec) adamw_avx512(p + lo, g + lo, m + lo, v + lo, len, lr, beta1, beta2, eps, wd, ib1, ib2, gscale);
        else adamw_scalar(p + lo, g + lo, m + lo, v + lo, len, lr, beta1, beta2, eps, wd, ib1, ib2, gscale);
        if (pb) kcpu_to_bf16_serial(pb + lo, p + lo, len); /* while the chunk is in cache */
    }
}
