/* Causal GQA attention in bf16 mode (contract in bf16.h): with oneDNN's batched GEMMs on
 * AVX-512 BF16, and fused on AMX tiles. */
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/bf16_simd.h"
#include "kernels/cpu/prof.h"

#include <dnnl.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* one causal row: softmax of scale*row[0..n) in place, zeros to T, bf16 copy into pb */
AVX512 static void softmax_row512(float *row, kcpu_bf16_t *pb, int n, float scale)
{
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 vmx = _mm512_set1_ps(-INFINITY);
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        vmx = _mm512_mask_max_ps(vmx, k, vmx, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + s), vs));
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmx));
    __m512 vsum = _mm512_setzero_ps();
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        __m512 e = exp512(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, row + s), vs, mx));
        e = _mm512_maskz_mov_ps(k, e);
        _mm512_mask_storeu_ps(row + s, k, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        _mm512_mask_storeu_ps(row + s, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + s), inv));
    }
    to_bf16_avx512(pb, row, n); /* above the diagonal: zeros already (the callers' contract) */
}

/* dS = scale * P * (dP - sum(P dP)) over [0, n), zeros to T; bf16 copy into db */
AVX512 static void softmax_bwd_row512(const float *pr, float *dr, kcpu_bf16_t *db, int n, float scale)
{
    __m512 vd = _mm512_setzero_ps();
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        vd = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, pr + s), _mm512_maskz_loadu_ps(k, dr + s), vd);
    }
    const __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(vd)), vs = _mm512_set1_ps(scale);
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        __m512 p = _mm512_maskz_loadu_ps(k, pr + s), d = _mm512_maskz_loadu_ps(k, dr + s);
        _mm512_mask_storeu_ps(dr + s, k, _mm512_mul_ps(_mm512_mul_ps(vs, p), _mm512_sub_ps(d, dot)));
    }
    to_bf16_avx512(db, dr, n);
}

/* ---- causal GQA attention with bf16 GEMMs ------------------------------------------
 * q, k, v (and their gradients) are moved into a head-major layout, each head's T x hd
 * block contiguous and padded to hp columns (a multiple of 32, AMX's bf16 tile depth):
 * oneDNN's brgemm (AMX) takes batched matmuls only on such dense blocks, and falls back
 * to its far slower gemm:jit for the token-major [B*T, heads*hd] rows (4-6x on the small
 * model); hd = 48 padded to 64 runs faster than the ragged 48. The moves are fused with
 * the RoPE and the rounding to bf16 they replace. For kv head j, its rep query heads are
 * consecutive: Q of the group is one [rep*T, hp] matrix, so each product is one batched
 * matmul over (batch, kv head), and dK, dV sum over the group inside the GEMM. The
 * products run on the full T x T square (the causal half above the diagonal is computed
 * and ignored): causal blocks of 64 rows (one matmul per block, 5/8 of the FLOPs at T =
 * 256) measured 1.7x slower on the small model, oneDNN's per-call cost outweighing them.
 * Softmax and its backward in fp32, row by row; P is kept in fp32 for the backward and
 * rounded to bf16 (like PyTorch's autocast and the CUDA backend) for the products. */
/* 16 values of one head from column i on (zeros past hd), RoPE'd with the pair angles
 * c, s (c NULL: no rotation) as kcpu_rope computes it: a c - b s, a s + b c, s times sgn. */
AVX512 static inline __m512 head_chunk512(const float *src, int i, int hd, const float *c, const float *s, float sgn)
{
    int left = hd - i;
    __m512 x = _mm512_maskz_loadu_ps(left <= 0 ? 0 : tailmask(left), src + i);
    if (!c) return x;
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512 alt = _mm512_set_ps(1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
    int pairs = left / 2;
    __mmask16 k8 = (__mmask16)(pairs <= 0 ? 0 : pairs >= 8 ? 0xff : (1u << pairs) - 1);
    __m512 cv = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(k8, c + i / 2));
    __m512 sv = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(k8, s + i / 2));
    sv = _mm512_mul_ps(_mm512_mul_ps(sv, _mm512_set1_ps(sgn)), alt);
    return _mm512_add_ps(_mm512_mul_ps(x, cv), _mm512_mul_ps(_mm512_permute_ps(x, 0xB1), sv));
}

/* the same rotation in scalar code, each value rounded to bf16 into o[0, hd) */
static void head_scalar(kcpu_bf16_t *o, const float *src, int hd, const float *c, const float *s, float sgn)
{
    for (int i = 0; i + 1 < hd; i += 2) {
        float a = src[i], b = src[i + 1];
        if (c) {
            float si = sgn * s[i / 2];
            o[i] = to_bf16_scalar(a * c[i / 2] - b * si);
            o[i + 1] = to_bf16_scalar(a * si + b * c[i / 2]);
        } else {
            o[i] = to_bf16_scalar(a), o[i + 1] = to_bf16_scalar(b);
        }
    }
    if (hd % 2) o[hd - 1] = to_bf16_scalar(src[hd - 1]);
}

AVX512 static void rows_to_heads512(kcpu_bf16_t *dst, const float *src, int hd, int hp, const float *c,
                                    const float *s, float sgn)
{
    for (int i = 0; i < hp; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(head_chunk512(src, i, hd, c, s, sgn)));
}

AVX512 static void heads_to_rows512(kcpu_bf16_t *dst, const float *src, int hd, const float *c, const float *s,
                                    float sgn)
{
    for (int i = 0; i < hd; i += 16)
        _mm256_mask_storeu_epi16(dst + i, tailmask(hd - i),
                                 (__m256i)_mm512_cvtneps_pbh(head_chunk512(src, i, hd, c, s, sgn)));
}

/* dst [B, nh, T, hp] bf16 (zeros past hd) = rows src [B*T, ld] (nh heads of hd side by
 * side), RoPE'd first when cosv is given (sgn -1: the inverse) */
static void rows_to_heads(kcpu_bf16_t *dst, const float *src, int ld, int B, int T, int nh, int hd, int hp,
                          const float *cosv, const float *sinv, float sgn)
{
    const int vec = kcpu_bf16_cvt_ok(), half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        const float *c = cosv ? cosv + (int64_t)t * half : NULL, *sn = sinv ? sinv + (int64_t)t * half : NULL;
        for (int h = 0; h < nh; h++) {
            const float *x = src + (int64_t)bt * ld + (int64_t)h * hd;
            kcpu_bf16_t *o = dst + (((int64_t)b * nh + h) * T + t) * hp;
            if (vec) {
                rows_to_heads512(o, x, hd, hp, c, sn, sgn);
                continue;
            }
            head_scalar(o, x, hd, c, sn, sgn);
            for (int i = hd; i < hp; i++) o[i] = 0;
        }
    }
}

/* rows dst [B*T, ldd] bf16 = heads src [B, nh, T, hp] fp32 (columns past hd ignored),
 * RoPE'd first when cosv is given */
static void heads_to_rows(kcpu_bf16_t *dst, int ldd, const float *src, int B, int T, int nh, int hd, int hp,
                          const float *cosv, const float *sinv, float sgn)
{
    const int vec = kcpu_bf16_cvt_ok(), half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        const float *c = cosv ? cosv + (int64_t)t * half : NULL, *sn = sinv ? sinv + (int64_t)t * half : NULL;
        for (int h = 0; h < nh; h++) {
            const float *x = src + (((int64_t)b * nh + h) * T + t) * hp;
            kcpu_bf16_t *o = dst + (int64_t)bt * ldd + (int64_t)h * hd;
            if (vec) {
                heads_to_rows512(o, x, hd, c, sn, sgn);
                continue;
            }
            head_scalar(o, x, hd, c, sn, sgn);
        }
    }
}

void kcpu_bf16_qkv_heads(kcpu_bf16_t *qkvh, const float *qkv, int ld, int B, int T, int H, int KV, int hd,
                         const float *cosv, const float *sinv)
{
    const int hp = kcpu_bf16_head_pad(hd);
    const int64_t qn = (int64_t)B * H * T * hp, kn = (int64_t)B * KV * T * hp;
    rows_to_heads(qkvh, qkv, ld, B, T, H, hd, hp, cosv, sinv, 1.0f);
    rows_to_heads(qkvh + qn, qkv + (int64_t)H * hd, ld, B, T, KV, hd, hp, cosv, sinv, 1.0f);
    rows_to_heads(qkvh + qn + kn, qkv + (int64_t)(H + KV) * hd, ld, B, T, KV, hd, hp, NULL, NULL, 1.0f);
}

static void softmax_rows(float *P, kcpu_bf16_t *Pb, int64_t rows, int T, float scale, int vec)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        int t = (int)(i % T);
        float *row = P + i * T;
        if (vec) {
            softmax_row512(row, Pb + i * T, t + 1, scale);
            continue;
        }
        float mx = row[0] * scale;
        for (int s = 1; s <= t; s++) mx = row[s] * scale > mx ? row[s] * scale : mx;
        float sum = 0;
        for (int s = 0; s <= t; s++) {
            row[s] = expf(row[s] * scale - mx);
            sum += row[s];
        }
        float inv = 1.0f / sum;
        for (int s = 0; s <= t; s++) row[s] *= inv;
        for (int s = 0; s <= t; s++) Pb[i * T + s] = to_bf16_scalar(row[s]);
    }
}

static void softmax_bwd_rows(const float *P, float *dP, kcpu_bf16_t *dSb, int64_t rows, int T, float scale, int vec)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        int t = (int)(i % T);
        const float *pr = P + i * T;
        float *dr = dP + i * T, dot = 0;
        if (vec) {
            softmax_bwd_row512(pr, dr, dSb + i * T, t + 1, scale);
            continue;
        }
        for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
        for (int s = 0; s <= t; s++) dr[s] = scale * pr[s] * (dr[s] - dot);
        for (int s = 0; s <= t; s++) dSb[i * T + s] = to_bf16_scalar(dr[s]);
    }
}

xffl_status kcpu_bf16_attention_fwd(kcpu_bf16_ctx *c, kcpu_bf16_t *outb, int ldo, float *O, float *P,
                                    const kcpu_bf16_t *qkvh, int B, int T, int H, int KV, int hd, kcpu_bf16_t *Pb)
{
    const int64_t rep = H / KV, hp = kcpu_bf16_head_pad(hd), TT = (int64_t)T * T;
    const kcpu_bf16_t *qh = qkvh, *kh = qh + (int64_t)B * H * T * hp, *vh = kh + (int64_t)B * KV * T * hp;
    const int64_t qs[4] = {H * T * hp, rep * T * hp, hp, 1}; /* Q of a group: [rep*T, hp]; O, dO alike */
    const int64_t ks[4] = {KV * T * hp, T * hp, hp, 1};      /* K, V: [T, hp] */
    const int64_t kts[4] = {KV * T * hp, T * hp, 1, hp};     /* K^T, V^T */
    const int64_t ps[4] = {H * TT, rep * TT, T, 1};          /* S, P of a group: [rep*T, T] */
    const int RT = (int)(rep * T), HP = (int)hp;
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, RT, T, HP, qh, qs, kh, kts, 0.0f, P, ps)));
    KPROF("softmax", softmax_rows(P, Pb, (int64_t)B * H * T, T, 1.0f / sqrtf((float)hd), kcpu_bf16_cvt_ok()));
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, RT, HP, T, Pb, ps, vh, ks, 0.0f, O, qs)));
    KPROF("att_move", heads_to_rows(outb, ldo, O, B, T, H, hd, HP, NULL, NULL, 1.0f));
    return XFFL_OK;
}

xffl_status kcpu_bf16_attention_bwd(kcpu_bf16_ctx *c, kcpu_bf16_t *dqkvb, int ld, float *dh, const float *dout,
                                    int ldo, const float *P, const kcpu_bf16_t *Pb, const kcpu_bf16_t *qkvh, int B,
                                    int T, int H, int KV, int hd, const float *cosv, const float *sinv,
                                    kcpu_bf16_t *dob, kcpu_bf16_t *dSb, float *dP)
{
    const int64_t rep = H / KV, hp = kcpu_bf16_head_pad(hd), TT = (int64_t)T * T, rows = (int64_t)B * H * T;
    const int64_t qn = (int64_t)B * H * T * hp, kn = (int64_t)B * KV * T * hp;
    const kcpu_bf16_t *qh = qkvh, *kh = qh + qn, *vh = kh + kn;
    float *dq = dh, *dk = dh + qn, *dv = dk + kn;
    const int64_t qs[4] = {H * T * hp, rep * T * hp, hp, 1}, ks[4] = {KV * T * hp, T * hp, hp, 1};
    const int64_t kts[4] = {KV * T * hp, T * hp, 1, hp};
    const int64_t ps[4] = {H * TT, rep * TT, T, 1}, pts[4] = {H * TT, rep * TT, 1, T}; /* P, dS; transposed */
    const int RT = (int)(rep * T), HP = (int)hp;
    KPROF("att_move", rows_to_heads(dob, dout, ldo, B, T, H, hd, HP, NULL, NULL, 1.0f));
    /* dV = P^T dO (summed over the group inside the product);  dP = dO V^T */
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, T, HP, RT, Pb, pts, dob, qs, 0.0f, dv, ks)));
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, RT, T, HP, dob, qs, vh, kts, 0.0f, dP, ps)));
    KPROF("softmax", softmax_bwd_rows(P, dP, dSb, rows, T, 1.0f / sqrtf((float)hd), kcpu_bf16_cvt_ok()));
    /* dQ = dS K;  dK = dS^T Q */
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, RT, HP, T, dSb, ps, kh, ks, 0.0f, dq, qs)));
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, T, HP, RT, dSb, pts, qh, qs, 0.0f, dk, ks)));
    /* back to rows, through RoPE's inverse for q and k (dob is not read from here on) */
    KPROF("att_move", heads_to_rows(dqkvb, ld, dq, B, T, H, hd, HP, cosv, sinv, -1.0f));
    KPROF("att_move", heads_to_rows(dqkvb + (int64_t)H * hd, ld, dk, B, T, KV, hd, HP, cosv, sinv, -1.0f));
    KPROF("att_move", heads_to_rows(dqkvb + (int64_t)(H + KV) * hd, ld, dv, B, T, KV, hd, HP, NULL, NULL, 1.0f));
    return XFFL_OK;
}

/* ---- fused (flash) attention on AMX ------------------------------------------------
 * FlashAttention-2's algorithm (kernels/cpu/flash.h) with AMX-BF16 tiles (TDPBF16PS:
 * C[16x16 fp32] += A[16x32 bf16] B[32x16 bf16 in pairs]) for the products and AVX-512
 * for the online softmax, per (batch, kv head) work item, so the T x T scores, P, dP and
 * dS live in 16 x 32 tiles in L1 and never reach memory; tiles above the diagonal are
 * skipped. The operands a product contracts over the head dimension takes as B (K in
 * Q K^T, ...) are the head's [T, hp] block with its (d, d+1) pairs transposed, "kt"
 * below; those it contracts over tokens (V in P V, ...) have token pairs interleaved,
 * "vnni". Each work item builds them for its heads in its own scratch.
 * Every output is written by one work item, every sum runs in a fixed order (dQ over kv
 * tiles, dK and dV over the group's query heads then the query tiles): the bits do not
 * depend on the thread count. Rounding: p (unnormalised, before P V), P and dS (before
 * their products) to bf16, as in flash.c's bf16 mode; softmax statistics in fp32. */
#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define FL_Q 16  /* query rows per tile (forward, dQ pass) */
#define FL_K 32  /* keys per step (forward, dQ pass) */

static int flash_state = -1;
int kcpu_bf16_flash_available(void)
{
    const char *e = getenv("XFFL_CPU_FLASH");
    if (e && !strcmp(e, "0")) return 0;
    if (flash_state < 0) {
        unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
        int amx = (isa & (unsigned)dnnl_cpu_isa_avx512_core_amx) == (unsigned)dnnl_cpu_isa_avx512_core_amx;
        /* Linux hands out the AMX tile state on request (oneDNN has asked already when it
         * reports AMX; asking again is harmless) */
        if (amx && syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0) amx = 0;
        flash_state = amx && kcpu_bf16_cvt_ok();
    }
    return flash_state && kcpu_bf16_available();
}

static int64_t fl_tp(int T) { return ((int64_t)T + 31) / 32 * 32; }

typedef struct {
    uint8_t palette, start_row, rsv[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

AMX static void amx_config(void)
{
    amx_cfg c __attribute__((aligned(64)));
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) c.colsb[i] = 64, c.rows[i] = 16; /* every tile 16 x 64 bytes */
    /* not _tile_loadconfig: GCC 12's takes an 8-byte memory operand, and the stores of the
     * rest of the configuration could be dropped as dead */
    __asm__ volatile("ldtilecfg %0" ::"m"(c));
}

AMX static void amx_release(void) { _tile_release(); }

/* the head's T rows of hp into a zero-padded [tp, hp] copy */
static void fl_rows(kcpu_bf16_t *dst, const kcpu_bf16_t *src, int T, int64_t tp, int64_t hp)
{
    memcpy(dst, src, (size_t)T * hp * 2);
    memset(dst + (int64_t)T * hp, 0, (size_t)(tp - T) * hp * 2);
}

/* the head's rows as a [tp, hp] block: src itself when T fills it, else the padded copy */
static const kcpu_bf16_t *fl_src(kcpu_bf16_t *buf, const kcpu_bf16_t *src, int T, int64_t tp, int64_t hp)
{
    if (T == tp) return src;
    fl_rows(buf, src, T, tp, hp);
    return buf;
}

/* kt: dst[(d/2) tp + t][2] = src[t][d] (32-bit pairs transposed) */
AMX static void fl_kt(kcpu_bf16_t *dst, const kcpu_bf16_t *src, int64_t tp, int64_t hp)
{
    const int64_t hw = hp / 2;
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)hw));
    for (int64_t n = 0; n < tp; n += 16)
        for (int64_t r = 0; r < hw; r++)
            _mm512_storeu_si512((void *)(dst + (r * tp + n) * 2),
                                _mm512_i32gather_epi32(idx, (const void *)(src + (n * hw + r) * 2), 4));
}

/* vnni: dst[t/2][d][t%2] = src[t][d] */
AMX static void fl_vnni(kcpu_bf16_t *dst, const kcpu_bf16_t *src, int64_t tp, int64_t hp)
{
    uint16_t lo[32], hi[32];
    for (int i = 0; i < 32; i++) lo[i] = (uint16_t)((i % 2) * 32 + i / 2), hi[i] = (uint16_t)(lo[i] + 16);
    const __m512i vlo = _mm512_loadu_si512(lo), vhi = _mm512_loadu_si512(hi);
    for (int64_t t = 0; t < tp; t += 2)
        for (int64_t d = 0; d < hp; d += 32) {
            __m512i a = _mm512_loadu_si512(src + t * hp + d), b = _mm512_loadu_si512(src + (t + 1) * hp + d);
            kcpu_bf16_t *o = dst + ((t / 2) * hp + d) * 2;
            _mm512_storeu_si512(o, _mm512_permutex2var_epi16(a, vlo, b));
            _mm512_storeu_si512(o + 32, _mm512_permutex2var_epi16(a, vhi, b));
        }
}

static inline __mmask16 fl_mask(int lo, int hi) /* bits [lo, hi) of 16, clamped */
{
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << (hi - lo)) - 1) << lo);
}

/* 64-byte aligned carving of a thread's scratch */
static void *fl_take(char **p, size_t n)
{
    void *r = *p;
    *p += (n + 63) / 64 * 64;
    return r;
}

/* Forward of one (b, kv head g): its rep query heads. */
AMX static void flash_fwd_item(kcpu_bf16_t *outb, int ldo, float *lse, const kcpu_bf16_t *qkvh, int b, int g, int B,
                               int T, int H, int KV, int hd, char *scr)
{
    const int64_t tp = fl_tp(T), hp = kcpu_bf16_head_pad(hd), rep = H / KV, nct = (hd + 15) / 16;
    const float scale = 1.0f / sqrtf((float)hd);
    const kcpu_bf16_t *qh = qkvh, *kh = qh + (int64_t)B * H * T * hp, *vh = kh + (int64_t)B * KV * T * hp;
    char *p = scr;
    kcpu_bf16_t *rows = fl_take(&p, tp * hp * 2), *Kt = fl_take(&p, tp * hp * 2), *Vv = fl_take(&p, tp * hp * 2);
    kcpu_bf16_t *Qb = fl_take(&p, tp * hp * 2), *Pt = fl_take(&p, FL_Q * FL_K * 2);
    float *S = fl_take(&p, FL_Q * FL_K * 4), *O = fl_take(&p, FL_Q * hp * 4);
    fl_kt(Kt, fl_src(rows, kh + ((int64_t)b * KV + g) * T * hp, T, tp, hp), tp, hp);
    fl_vnni(Vv, fl_src(rows, vh + ((int64_t)b * KV + g) * T * hp, T, tp, hp), tp, hp);
    for (int64_t h = g * rep; h < (g + 1) * rep; h++) {
        const kcpu_bf16_t *Qp = fl_src(Qb, qh + ((int64_t)b * H + h) * T * hp, T, tp, hp);
        for (int i0 = 0; i0 < T; i0 += FL_Q) {
            float m[FL_Q], l[FL_Q];
            for (int r = 0; r < FL_Q; r++) m[r] = -INFINITY, l[r] = 0;
            memset(O, 0, (size_t)FL_Q * hp * 4);
            for (int j0 = 0; j0 <= i0; j0 += FL_K) { /* i0 is a multiple of 16, j0 of 32 */
                _tile_zero(0);
                _tile_zero(1);
                for (int64_t kk = 0; kk < hp / 32; kk++) {
                    _tile_loadd(4, Qp + i0 * hp + kk * 32, hp * 2);
                    _tile_loadd(6, Kt + (kk * 16 * tp + j0) * 2, tp * 4);
                    _tile_loadd(7, Kt + (kk * 16 * tp + j0 + 16) * 2, tp * 4);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_dpbf16ps(1, 4, 7);
                }
                _tile_stored(0, S, FL_K * 4);
                _tile_stored(1, S + 16, FL_K * 4);
                for (int r = 0; r < FL_Q; r++) {
                    int nv = i0 + r - j0 + 1; /* keys j0 .. the query */
                    __mmask16 k0 = fl_mask(0, nv), k1 = fl_mask(0, nv - 16);
                    __m512 x0 = _mm512_mul_ps(_mm512_loadu_ps(S + r * FL_K), _mm512_set1_ps(scale));
                    __m512 x1 = _mm512_mul_ps(_mm512_loadu_ps(S + r * FL_K + 16), _mm512_set1_ps(scale));
                    __m512 vm = _mm512_max_ps(_mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), k0, x0),
                                              _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), k1, x1));
                    float mx = _mm512_reduce_max_ps(vm);
                    mx = mx > m[r] ? mx : m[r];
                    /* exp512(0) is 1 exactly: the same bits without the call */
                    float a = mx > m[r] ? _mm512_cvtss_f32(exp512(_mm512_set1_ps(m[r] - mx))) : 1.0f;
                    __m512 p0 = _mm512_maskz_mov_ps(k0, exp512(_mm512_sub_ps(x0, _mm512_set1_ps(mx))));
                    __m512 p1 = k1 ? _mm512_maskz_mov_ps(k1, exp512(_mm512_sub_ps(x1, _mm512_set1_ps(mx))))
                                   : _mm512_setzero_ps(); /* past the diagonal */
                    l[r] = a * l[r] + _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
                    m[r] = mx;
                    _mm512_storeu_si512(Pt + r * FL_K, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
                    if (a != 1.0f)
                        for (int64_t c = 0; c < nct * 16; c += 16)
                            _mm512_storeu_ps(O + r * hp + c, _mm512_mul_ps(_mm512_loadu_ps(O + r * hp + c), _mm512_set1_ps(a)));
                }
                _tile_loadd(4, Pt, FL_K * 2);
                for (int64_t c = 0; c < nct; c++) {
                    _tile_loadd(2, O + c * 16, hp * 4);
                    _tile_loadd(6, Vv + ((j0 / 2) * hp + c * 16) * 2, hp * 4);
                    _tile_dpbf16ps(2, 4, 6);
                    _tile_stored(2, O + c * 16, hp * 4);
                }
            }
            for (int r = 0; r < FL_Q && i0 + r < T; r++) {
                int64_t t = i0 + r;
                const __m512 inv = _mm512_set1_ps(1.0f / l[r]);
                kcpu_bf16_t *o = outb + ((int64_t)b * T + t) * ldo + h * hd;
                for (int c = 0; c < hd; c += 16)
                    _mm256_mask_storeu_epi16(o + c, tailmask(hd - c),
                                             (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(O + r * hp + c), inv)));
                lse[((int64_t)b * H + h) * T + t] = m[r] + logf(l[r]);
            }
        }
    }
}

void kcpu_bf16_flash_fwd(kcpu_bf16_t *outb, int ldo, float *lse, const kcpu_bf16_t *qkvh, int B, int T, int H, int KV,
                         int hd, void *scratch, int threads)
{
    const size_t per = kcpu_bf16_flash_scratch(T, hd);
#pragma omp parallel num_threads(threads)
    {
        char *scr = (char *)scratch + per * (size_t)omp_get_thread_num();
        amx_config();
#pragma omp for schedule(dynamic, 1)
        for (int bg = 0; bg < B * KV; bg++) flash_fwd_item(outb, ldo, lse, qkvh, bg / KV, bg % KV, B, T, H, KV, hd, scr);
        amx_release();
    }
}

/* rows [T, hd] of dst (row stride ld) = bf16 of the [T, hp] block src, RoPE's inverse first
 * when c is given */
AMX static void fl_out_rows(kcpu_bf16_t *dst, int64_t ld, const float *src, int T, int64_t hp, int hd, const float *c,
                            const float *s)
{
    const int64_t half = hd / 2;
    for (int64_t t = 0; t < T; t++)
        heads_to_rows512(dst + t * ld, src + t * hp, hd, c ? c + t * half : NULL, c ? s + t * half : NULL, -1.0f);
}

/* The backward's two products for a 16-row block against 32 columns, over the padded
 * head dimension: S = A B^T (tiles 0, 1) and dP = C D^T (tiles 2, 3), stored to S and
 * dP (rows of FL_K floats). a, c: 16 rows of hp bf16; bt, dt: B and D transposed with
 * pairs interleaved (fl_kt: rows of tp pairs), from column col. */
AMX static inline void fl_two_products(const kcpu_bf16_t *a, const kcpu_bf16_t *c, const kcpu_bf16_t *bt,
                                       const kcpu_bf16_t *dt, int64_t col, int64_t hp, int64_t tp, float *S,
                                       float *dP)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t kk = 0; kk < hp / 32; kk++) {
        _tile_loadd(4, a + kk * 32, hp * 2);
        _tile_loadd(5, c + kk * 32, hp * 2);
        _tile_loadd(6, bt + (kk * 16 * tp + col) * 2, tp * 4);
        _tile_loadd(7, bt + (kk * 16 * tp + col + 16) * 2, tp * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(6, dt + (kk * 16 * tp + col) * 2, tp * 4);
        _tile_loadd(7, dt + (kk * 16 * tp + col + 16) * 2, tp * 4);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, S, FL_K * 4);
    _tile_stored(1, S + 16, FL_K * 4);
    _tile_stored(2, dP, FL_K * 4);
    _tile_stored(3, dP + 16, FL_K * 4);
}

/* Backward of one (b, kv head g): dK, dV of the kv head (summed over its query heads in
 * order), dQ of each query head, straight into dqkvb's rows (bf16, RoPE undone). */
AMX static void flash_bwd_item(kcpu_bf16_t *dqkvb, int ld, const float *dout, const kcpu_bf16_t *outb, int ldo,
                               const float *lse, const kcpu_bf16_t *qkvh, int b, int g, int B, int T, int H, int KV,
                               int hd, const float *cosv, const float *sinv, char *scr)
{
    const int64_t tp = fl_tp(T), hp = kcpu_bf16_head_pad(hd), rep = H / KV, nct = (hd + 15) / 16;
    const int64_t qn = (int64_t)B * H * T * hp, kn = (int64_t)B * KV * T * hp;
    const float scale = 1.0f / sqrtf((float)hd);
    const kcpu_bf16_t *qh = qkvh, *kh = qh + qn, *vh = kh + kn;
    char *p = scr;
    const size_t mb = (size_t)(tp * hp * 2);
    kcpu_bf16_t *Kb = fl_take(&p, mb), *Vb = fl_take(&p, mb), *Kt = fl_take(&p, mb), *Kv = fl_take(&p, mb);
    kcpu_bf16_t *Vt = fl_take(&p, mb), *Qb = fl_take(&p, mb), *Op = fl_take(&p, mb), *Qt = fl_take(&p, mb);
    kcpu_bf16_t *Qv = fl_take(&p, mb), *Ot = fl_take(&p, mb), *Ov = fl_take(&p, mb);
    float *dK = fl_take(&p, mb * 2), *dV = fl_take(&p, mb * 2), *dQ = fl_take(&p, mb * 2);
    float *L = fl_take(&p, tp * 4), *Dr = fl_take(&p, tp * 4);
    float *S = fl_take(&p, FL_Q * FL_K * 4), *dP = fl_take(&p, FL_Q * FL_K * 4);
    kcpu_bf16_t *Pt = fl_take(&p, FL_Q * FL_K * 2), *dSt = fl_take(&p, FL_Q * FL_K * 2);
    const int64_t kvo = ((int64_t)b * KV + g) * T * hp;
    const kcpu_bf16_t *Kp = fl_src(Kb, kh + kvo, T, tp, hp), *Vp = fl_src(Vb, vh + kvo, T, tp, hp);
    fl_kt(Kt, Kp, tp, hp);
    fl_vnni(Kv, Kp, tp, hp);
    fl_kt(Vt, Vp, tp, hp);
    memset(dK, 0, mb * 2);
    memset(dV, 0, mb * 2);
    const __m512 vs = _mm512_set1_ps(scale);
    for (int64_t h = g * rep; h < (g + 1) * rep; h++) {
        const int64_t qo = ((int64_t)b * H + h) * T * hp;
        const kcpu_bf16_t *Qp = fl_src(Qb, qh + qo, T, tp, hp);
        for (int64_t t = 0; t < tp; t++) /* dO, rounded */
            if (t < T) rows_to_heads512(Op + t * hp, dout + ((int64_t)b * T + t) * ldo + h * hd, hd, (int)hp, NULL, NULL, 1.0f);
            else memset(Op + t * hp, 0, (size_t)hp * 2);
        fl_kt(Qt, Qp, tp, hp);
        fl_vnni(Qv, Qp, tp, hp);
        fl_kt(Ot, Op, tp, hp);
        fl_vnni(Ov, Op, tp, hp);
        for (int64_t t = 0; t < tp; t++) { /* Dr = rowsum(bf16(dO) o bf16(out)) */
            if (t >= T) {
                L[t] = 0, Dr[t] = 0;
                continue;
            }
            L[t] = lse[((int64_t)b * H + h) * T + t];
            const kcpu_bf16_t *o = outb + ((int64_t)b * T + t) * ldo + h * hd;
            __m512 acc = _mm512_setzero_ps();
            for (int c = 0; c < hd; c += 16) {
                __mmask16 k = tailmask(hd - c);
                __m512 x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, o + c)), 16));
                __m512 y = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, Op + t * hp + c)), 16));
                acc = _mm512_fmadd_ps(x, y, acc);
            }
            Dr[t] = _mm512_reduce_add_ps(acc);
        }
        /* dK, dV: per 16 keys, query tiles of 32 from the diagonal; S^T = K Q^T, dP^T = V dO^T */
        for (int j0 = 0; j0 < T; j0 += 16) {
            for (int i0 = j0 / 32 * 32; i0 < T; i0 += 32) {
                fl_two_products(Kp + j0 * hp, Vp + j0 * hp, Qt, Ot, i0, hp, tp, S, dP);
                for (int r = 0; r < 16; r++) {
                    int key = j0 + r; /* valid queries: key <= q < T */
                    __mmask16 k0 = fl_mask(key - i0, T - i0), k1 = fl_mask(key - i0 - 16, T - i0 - 16);
                    __m512 p0 = k0 ? _mm512_maskz_mov_ps(k0, exp512(_mm512_fmsub_ps(_mm512_loadu_ps(S + r * FL_K), vs,
                                                                                     _mm512_loadu_ps(L + i0))))
                                   : _mm512_setzero_ps();
                    __m512 p1 = k1 ? _mm512_maskz_mov_ps(k1, exp512(_mm512_fmsub_ps(_mm512_loadu_ps(S + r * FL_K + 16), vs,
                                                                                     _mm512_loadu_ps(L + i0 + 16))))
                                   : _mm512_setzero_ps();
                    __m512 d0 = _mm512_mul_ps(_mm512_mul_ps(vs, p0),
                                              _mm512_sub_ps(_mm512_loadu_ps(dP + r * FL_K), _mm512_loadu_ps(Dr + i0)));
                    __m512 d1 = _mm512_mul_ps(_mm512_mul_ps(vs, p1), _mm512_sub_ps(_mm512_loadu_ps(dP + r * FL_K + 16),
                                                                                   _mm512_loadu_ps(Dr + i0 + 16)));
                    _mm512_storeu_si512(Pt + r * FL_K, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
                    _mm512_storeu_si512(dSt + r * FL_K, (__m512i)_mm512_cvtne2ps_pbh(d1, d0));
                }
                _tile_loadd(4, Pt, FL_K * 2);
                _tile_loadd(5, dSt, FL_K * 2);
                for (int64_t c = 0; c < nct; c++) { /* dV += P^T dO;  dK += dS^T Q */
                    _tile_loadd(0, dV + j0 * hp + c * 16, hp * 4);
                    _tile_loadd(6, Ov + ((i0 / 2) * hp + c * 16) * 2, hp * 4);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_stored(0, dV + j0 * hp + c * 16, hp * 4);
                    _tile_loadd(1, dK + j0 * hp + c * 16, hp * 4);
                    _tile_loadd(7, Qv + ((i0 / 2) * hp + c * 16) * 2, hp * 4);
                    _tile_dpbf16ps(1, 5, 7);
                    _tile_stored(1, dK + j0 * hp + c * 16, hp * 4);
                }
            }
        }
        /* dQ: per 16 queries, keys up to the diagonal in steps of 32; S = Q K^T, dP = dO V^T */
        memset(dQ, 0, mb * 2);
        for (int i0 = 0; i0 < T; i0 += FL_Q) {
            for (int j0 = 0; j0 <= i0; j0 += FL_K) {
                fl_two_products(Qp + i0 * hp, Op + i0 * hp, Kt, Vt, j0, hp, tp, S, dP);
                for (int r = 0; r < FL_Q; r++) {
                    int q = i0 + r, nv = q < T ? q - j0 + 1 : 0;
                    __mmask16 k0 = fl_mask(0, nv), k1 = fl_mask(0, nv - 16);
                    const __m512 lq = _mm512_set1_ps(L[q]), dq0 = _mm512_set1_ps(Dr[q]);
                    __m512 p0 = k0 ? _mm512_maskz_mov_ps(k0, exp512(_mm512_fmsub_ps(_mm512_loadu_ps(S + r * FL_K), vs, lq)))
                                   : _mm512_setzero_ps();
                    __m512 p1 = k1 ? _mm512_maskz_mov_ps(k1, exp512(_mm512_fmsub_ps(_mm512_loadu_ps(S + r * FL_K + 16), vs, lq)))
                                   : _mm512_setzero_ps();
                    __m512 d0 = _mm512_mul_ps(_mm512_mul_ps(vs, p0), _mm512_sub_ps(_mm512_loadu_ps(dP + r * FL_K), dq0));
                    __m512 d1 = _mm512_mul_ps(_mm512_mul_ps(vs, p1), _mm512_sub_ps(_mm512_loadu_ps(dP + r * FL_K + 16), dq0));
                    _mm512_storeu_si512(dSt + r * FL_K, (__m512i)_mm512_cvtne2ps_pbh(d1, d0));
                }
                _tile_loadd(4, dSt, FL_K * 2);
                for (int64_t c = 0; c < nct; c++) { /* dQ += dS K */
                    _tile_loadd(0, dQ + i0 * hp + c * 16, hp * 4);
                    _tile_loadd(6, Kv + ((j0 / 2) * hp + c * 16) * 2, hp * 4);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_stored(0, dQ + i0 * hp + c * 16, hp * 4);
                }
            }
        }
        fl_out_rows(dqkvb + (int64_t)b * T * ld + h * hd, ld, dQ, T, hp, hd, cosv, sinv);
    }
    fl_out_rows(dqkvb + (int64_t)b * T * ld + (H + g) * hd, ld, dK, T, hp, hd, cosv, sinv);
    fl_out_rows(dqkvb + (int64_t)b * T * ld + (H + KV + g) * hd, ld, dV, T, hp, hd, NULL, NULL);
}

xffl_status kcpu_bf16_flash_bwd(kcpu_bf16_t *dqkvb, int ld, const float *dout, int ldo, const kcpu_bf16_t *outb,
                                const float *lse, const kcpu_bf16_t *qkvh, int B, int T, int H, int KV, int hd,
                                const float *cosv, const float *sinv, void *scratch, int threads)
{
    const size_t per = kcpu_bf16_flash_scratch(T, hd);
#pragma omp parallel num_threads(threads)
    {
        char *scr = (char *)scratch + per * (size_t)omp_get_thread_num();
        amx_config();
#pragma omp for schedule(dynamic, 1)
        for (int bg = 0; bg < B * KV; bg++)
            flash_bwd_item(dqkvb, ld, dout, outb, ldo, lse, qkvh, bg / KV, bg % KV, B, T, H, KV, hd, cosv, sinv, scr);
        amx_release();
    }
    return XFFL_OK;
}
