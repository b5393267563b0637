/* The fused attention algorithm in plain C (contract and formulas in flash.h). Loops are the
 * CUDA kernels' tile loops; inside a tile the rows and columns run serially, each sum in fp32. */
#include "kernels/cpu/flash.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* x rounded to the nearest bf16 (ties to even), as __float2bfloat16_rn does; NaN kept. */
static float rb(float x)
{
    union {
        float f;
        uint32_t u;
    } v = {.f = x};
    if ((v.u & 0x7f800000u) == 0x7f800000u) return x; /* inf, NaN */
    v.u = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) & 0xffff0000u;
    return v.f;
}

/* A copy of n floats, bf16-rounded when bf16 (what the kernels load as bf16). */
static float *load(const float *x, int64_t n, int bf16)
{
    float *y = malloc((size_t)n * sizeof *y);
    if (!y) abort();
    for (int64_t i = 0; i < n; i++) y[i] = bf16 ? rb(x[i]) : x[i];
    return y;
}

static int imin(int a, int b) { return a < b ? a : b; }

void kflash_fwd(float *out, float *lse, const float *q0, const float *k0, const float *v0, int B, int T, int H, int KV,
                int hd, int bf16)
{
    const float sl2 = LOG2E / sqrtf((float)hd); /* scores in log2 units */
    float *q = load(q0, (int64_t)B * T * H * hd, bf16), *k = load(k0, (int64_t)B * T * KV * hd, bf16),
          *v = load(v0, (int64_t)B * T * KV * hd, bf16);
    float *O = malloc(sizeof(float) * FA_FWD_BR * hd), m[FA_FWD_BR], l[FA_FWD_BR], S[FA_FWD_BC];
    if (!O) abort();
#define Q_(t, d) q[(((int64_t)b * T + (t)) * H + h) * hd + (d)]
#define K_(t, d) k[(((int64_t)b * T + (t)) * KV + kvh) * hd + (d)]
#define V_(t, d) v[(((int64_t)b * T + (t)) * KV + kvh) * hd + (d)]
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kvh = h / (H / KV);
            for (int i0 = 0; i0 < T; i0 += FA_FWD_BR) {
                int ni = imin(FA_FWD_BR, T - i0), last = i0 + ni - 1; /* last query row of the tile */
                for (int r = 0; r < ni; r++) m[r] = -INFINITY, l[r] = 0;
                memset(O, 0, sizeof(float) * FA_FWD_BR * hd);
                for (int j0 = 0; j0 <= last; j0 += FA_FWD_BC)
                    for (int r = 0; r < ni; r++) {
                        int t = i0 + r;
                        float mx = m[r];
                        for (int c = 0; c < FA_FWD_BC; c++) {
                            int s = j0 + c;
                            if (s > t || s >= T) {
                                S[c] = -INFINITY;
                                continue;
                            }
                            float acc = 0;
                            for (int d = 0; d < hd; d++) acc += Q_(t, d) * K_(s, d);
                            S[c] = acc * sl2;
                            mx = S[c] > mx ? S[c] : mx;
                        }
                        float a = m[r] == -INFINITY ? 0.0f : exp2f(m[r] - mx), sum = 0;
                        for (int d = 0; d < hd; d++) O[r * hd + d] *= a;
                        for (int c = 0; c < FA_FWD_BC; c++) {
                            float p = S[c] == -INFINITY ? 0.0f : exp2f(S[c] - mx);
                            sum += p;
                            if (p == 0.0f) continue;
                            float pb = bf16 ? rb(p) : p;
                            for (int d = 0; d < hd; d++) O[r * hd + d] += pb * V_(j0 + c, d);
                        }
                        l[r] = a * l[r] + sum;
                        m[r] = mx;
                    }
                for (int r = 0; r < ni; r++) {
                    int t = i0 + r;
                    for (int d = 0; d < hd; d++) out[(((int64_t)b * T + t) * H + h) * hd + d] = O[r * hd + d] / l[r];
                    lse[((int64_t)b * H + h) * T + t] = (m[r] + log2f(l[r])) * LN2;
                }
            }
        }
    free(q), free(k), free(v), free(O);
}

void kflash_bwd(float *dq, float *dk, float *dv, const float *dout0, const float *out, const float *lse,
                const float *q0, const float *k0, const float *v0, int B, int T, int H, int KV, int hd, int bf16)
{
    const float c = 1.0f / sqrtf((float)hd), sl2 = c * LOG2E;
    int64_t nq = (int64_t)B * T * H * hd, nk = (int64_t)B * T * KV * hd;
    float *q = load(q0, nq, bf16), *k = load(k0, nk, bf16), *v = load(v0, nk, bf16), *dO = load(dout0, nq, bf16);
    float *Dr = malloc(sizeof(float) * B * H * T), *acc = malloc(sizeof(float) * 2 * FA_DQ_BR * hd);
    if (!Dr || !acc) abort();
    /* Dr = rowsum(dout o out) in fp32, from the dout the products below read (bf16-rounded in
     * bf16 mode, so dP - Dr cancels exactly where it should: T = 1 gives dS = 0) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                float s = 0;
                const float *x = dO + (((int64_t)b * T + t) * H + h) * hd, *o = out + (((int64_t)b * T + t) * H + h) * hd;
                for (int d = 0; d < hd; d++) s += x[d] * o[d];
                Dr[((int64_t)b * H + h) * T + t] = s;
            }
#define DO_(t, d) dO[(((int64_t)b * T + (t)) * H + h) * hd + (d)]
    /* P, dS at (query t, kv s) of head h; 0 outside the causal prefix */
#define PDS(t, s, P, dS)                                                                             \
    do {                                                                                             \
        float a_ = 0, g_ = 0;                                                                        \
        for (int d = 0; d < hd; d++) a_ += Q_(t, d) * K_(s, d);                                      \
        P = exp2f(a_ * sl2 - lse[((int64_t)b * H + h) * T + (t)] * LOG2E);                           \
        for (int d = 0; d < hd; d++) g_ += DO_(t, d) * V_(s, d);                                     \
        dS = P * (g_ - Dr[((int64_t)b * H + h) * T + (t)]);                                           \
    } while (0)
    /* dK/dV pass */
    for (int b = 0; b < B; b++)
        for (int kvh = 0; kvh < KV; kvh++)
            for (int j0 = 0; j0 < T; j0 += FA_BWD_BKV) {
                int nj = imin(FA_BWD_BKV, T - j0);
                float *aK = acc, *aV = acc + FA_BWD_BKV * hd;
                memset(acc, 0, sizeof(float) * 2 * FA_BWD_BKV * hd);
                for (int h = kvh * (H / KV); h < (kvh + 1) * (H / KV); h++)
                    for (int i0 = j0 / FA_BWD_BQ * FA_BWD_BQ; i0 < T; i0 += FA_BWD_BQ)
                        for (int r = 0; r < FA_BWD_BKV && r < nj; r++)
                            for (int u = 0; u < FA_BWD_BQ; u++) {
                                int s = j0 + r, t = i0 + u;
                                if (t >= T || s > t) continue;
                                float P, dS;
                                PDS(t, s, P, dS);
                                float Pb = bf16 ? rb(P) : P, dSb = bf16 ? rb(dS) : dS;
                                for (int d = 0; d < hd; d++) {
                                    aV[r * hd + d] += Pb * DO_(t, d);
                                    aK[r * hd + d] += dSb * Q_(t, d);
                                }
                            }
                for (int r = 0; r < nj; r++)
                    for (int d = 0; d < hd; d++) {
                        int64_t at = (((int64_t)b * T + j0 + r) * KV + kvh) * hd + d;
                        dk[at] = aK[r * hd + d] * c;
                        dv[at] = aV[r * hd + d];
                    }
            }
    /* dQ pass */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kvh = h / (H / KV);
            for (int i0 = 0; i0 < T; i0 += FA_DQ_BR) {
                int ni = imin(FA_DQ_BR, T - i0), last = i0 + ni - 1;
                memset(acc, 0, sizeof(float) * FA_DQ_BR * hd);
                for (int j0 = 0; j0 <= last; j0 += FA_DQ_BC)
                    for (int r = 0; r < ni; r++)
                        for (int u = 0; u < FA_DQ_BC; u++) {
                            int t = i0 + r, s = j0 + u;
                            if (s > t) continue;
                            float P, dS;
                            PDS(t, s, P, dS);
                            float dSb = bf16 ? rb(dS) : dS;
                            for (int d = 0; d < hd; d++) acc[r * hd + d] += dSb * K_(s, d);
                        }
                for (int r = 0; r < ni; r++)
                    for (int d = 0; d < hd; d++)
                        dq[(((int64_t)b * T + i0 + r) * H + h) * hd + d] = acc[r * hd + d] * c;
            }
        }
#undef PDS
#undef DO_
#undef Q_
#undef K_
#undef V_
    free(q), free(k), free(v), free(dO), free(Dr), free(acc);
}
