/* tests/it/test-flash-emu.sh: kernels/cuda/attn_fused.cu's kernels, compiled for the host and
 * run under tests/emu/cuda_emu.h's emulation, against the CPU model of the same algorithm
 * (kernels/cpu/flash.c, bf16 rounding points) and the double reference (kernels/cpu/ref.c).
 * Limits (max |err| / max |ref|): vs the CPU model 2e-3 (the same roundings; only the order
 * of fp32 sums inside an MMA differs, and a bf16 rounding of P or dS may flip by one step),
 * vs the double reference 1.5e-2 (tests/unit/test_flash.c's bf16 limit). Also: the two
 * backward launches give the same bits, and no output element is left unwritten.
 * Usage: flash_emu [--quick]. Prints one line per shape; exit 0 all within limits, 1 not. */
#include <stdio.h>
#include <stdlib.h>
#include <vector>

#include "tests/emu/cuda_emu.h"
#define KFA_EMU 1
#include "kernels/cuda/attn_fused.cu"

extern "C" {
#include "kernels/cpu/ref.h"
}

thread_local kfa_dim3 threadIdx;
kfa_dim3 blockIdx, gridDim;
unsigned char *kfa_emu_smem;

static pthread_barrier_t block_bar, warp_bar[NWARPS];
static struct {
    uint32_t a[32][4], b[32][2];
    float f[32];
} xch[NWARPS];

void __syncthreads() { pthread_barrier_wait(&block_bar); }

float __shfl_xor_sync(unsigned, float v, int m)
{
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    xch[w].f[l] = v;
    pthread_barrier_wait(&warp_bar[w]);
    float r = xch[w].f[l ^ m];
    pthread_barrier_wait(&warp_bar[w]);
    return r;
}

static void unpack(uint32_t r, float *lo, float *hi)
{
    *lo = __bfloat162float(__nv_bfloat16{(uint16_t)(r & 0xffffu)});
    *hi = __bfloat162float(__nv_bfloat16{(uint16_t)(r >> 16)});
}

void kfa_emu_mma16816(float c[4], const uint32_t a[4], const uint32_t b[2])
{
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    memcpy(xch[w].a[l], a, 16);
    memcpy(xch[w].b[l], b, 8);
    pthread_barrier_wait(&warp_bar[w]);
    float A[16][16], Bm[16][8];
    for (int L = 0; L < 32; L++) {
        int g = L / 4, t = L % 4;
        const uint32_t *ra = xch[w].a[L], *rb = xch[w].b[L];
        unpack(ra[0], &A[g][2 * t], &A[g][2 * t + 1]);
        unpack(ra[1], &A[g + 8][2 * t], &A[g + 8][2 * t + 1]);
        unpack(ra[2], &A[g][2 * t + 8], &A[g][2 * t + 9]);
        unpack(ra[3], &A[g + 8][2 * t + 8], &A[g + 8][2 * t + 9]);
        unpack(rb[0], &Bm[2 * t][g], &Bm[2 * t + 1][g]);
        unpack(rb[1], &Bm[2 * t + 8][g], &Bm[2 * t + 9][g]);
    }
    pthread_barrier_wait(&warp_bar[w]);
    int g = l / 4, t = l % 4;
    for (int e = 0; e < 4; e++) {
        int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
        float s = 0.0f;
        for (int k = 0; k < 16; k++) s += A[row][k] * Bm[k][col];
        c[e] += s;
    }
}

/* Runs fn() as every thread of every block of grid (x, y), smem bytes of shared memory
 * filled with 0xff (NaN as bf16 and fp32) so that a read of an unwritten byte shows. */
template <class F>
static void launch(unsigned gx, unsigned gy, size_t smem, F fn)
{
    std::vector<unsigned char> sm(smem + 16);
    gridDim = kfa_dim3{gx, gy, 1};
    for (unsigned y = 0; y < gy; y++)
        for (unsigned x = 0; x < gx; x++) {
            blockIdx = kfa_dim3{x, y, 0};
            memset(sm.data(), 0xff, sm.size());
            kfa_emu_smem = sm.data();
            pthread_barrier_init(&block_bar, NULL, NTHREADS);
            for (int w = 0; w < NWARPS; w++) pthread_barrier_init(&warp_bar[w], NULL, 32);
            pthread_t th[NTHREADS];
            struct arg {
                F *fn;
                unsigned i;
            } args[NTHREADS];
            for (unsigned i = 0; i < NTHREADS; i++) {
                args[i] = arg{&fn, i};
                pthread_attr_t at;
                pthread_attr_init(&at);
                pthread_attr_setstacksize(&at, 1 << 20);
                if (pthread_create(&th[i], &at,
                                   [](void *p) -> void * {
                                       arg *a = (arg *)p;
                                       threadIdx = kfa_dim3{a->i, 0, 0};
                                       (*a->fn)();
                                       return NULL;
                                   },
                                   &args[i]) != 0)
                    abort();
                pthread_attr_destroy(&at);
            }
            for (unsigned i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
            pthread_barrier_destroy(&block_bar);
            for (int w = 0; w < NWARPS; w++) pthread_barrier_destroy(&warp_bar[w]);
        }
}

template <int HD>
static void emu_fwd(float *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int B, int T, int H, int KV)
{
    float sl2 = LOG2E_F / sqrtf((float)HD);
    launch(cdiv(T, FA_FWD_BR), B * H, fwd_smem(HD), [&] { flash_fwd_k<HD>(out, lse, q, k, v, T, H, KV, sl2); });
}

template <int HD>
static void emu_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                    const bf16 *q, const bf16 *k, const bf16 *v, bf16 *dO, float *Dr, int B, int T, int H, int KV)
{
    const float c = 1.0f / sqrtf((float)HD), sl2 = c * LOG2E_F;
    int64_t rows = (int64_t)B * T * H;
    launch((unsigned)((rows + NWARPS - 1) / NWARPS), 1, 0, [&] { flash_bwd_prep_k(dO, Dr, dout, out, rows, T, H, HD); });
    launch(cdiv(T, FA_BWD_BKV), B * KV, dkdv_smem(HD),
           [&] { flash_bwd_dkdv_k<HD>(dk, dv, q, k, v, dO, lse, Dr, T, H, KV, sl2, c); });
    launch(cdiv(T, FA_DQ_BR), B * H, dq_smem(HD), [&] { flash_bwd_dq_k<HD>(dq, q, k, v, dO, lse, Dr, T, H, KV, sl2, c); });
}

static double rel(const float *a, const float *b, int64_t n)
{
    double m = 0, s = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN wins */
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return m / s;
}
static double reld(const float *a, const double *b, int64_t n)
{
    double m = 0, s = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return m / s;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float urand()
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0);
}

struct shape {
    int B, T, H, KV, hd;
};

template <int HD>
static int run(shape sh)
{
    int B = sh.B, T = sh.T, H = sh.H, KV = sh.KV;
    int64_t NQ = (int64_t)B * T * H * HD, NK = (int64_t)B * T * KV * HD, NL = (int64_t)B * H * T;
    std::vector<float> q(NQ), k(NK), v(NK), dout(NQ);
    for (auto &x : q) x = (2 * urand() - 1) * 1.5f;
    for (auto &x : k) x = (2 * urand() - 1) * 1.5f;
    for (auto &x : v) x = 2 * urand() - 1;
    for (auto &x : dout) x = 2 * urand() - 1;
    std::vector<bf16> q16(NQ), k16(NK), v16(NK), do16(NQ);
    for (int64_t i = 0; i < NQ; i++) q16[i] = __float2bfloat16_rn(q[i]);
    for (int64_t i = 0; i < NK; i++) k16[i] = __float2bfloat16_rn(k[i]), v16[i] = __float2bfloat16_rn(v[i]);
    const float poison = NAN; /* outputs start as NaN: an unwritten element fails every check */
    std::vector<float> o(NQ, poison), l(NL, poison), dq(NQ, poison), dk(NK, poison), dv(NK, poison), Dr(NL, poison);
    std::vector<float> dq2(NQ, poison), dk2(NK, poison), dv2(NK, poison);
    emu_fwd<HD>(o.data(), l.data(), q16.data(), k16.data(), v16.data(), B, T, H, KV);
    emu_bwd<HD>(dq.data(), dk.data(), dv.data(), dout.data(), o.data(), l.data(), q16.data(), k16.data(), v16.data(),
                do16.data(), Dr.data(), B, T, H, KV);
    emu_bwd<HD>(dq2.data(), dk2.data(), dv2.data(), dout.data(), o.data(), l.data(), q16.data(), k16.data(),
                v16.data(), do16.data(), Dr.data(), B, T, H, KV);
    /* the CPU model, bf16 rounding points */
    std::vector<float> co(NQ), cl(NL), cq(NQ), ck(NK), cv(NK);
    kflash_fwd(co.data(), cl.data(), q.data(), k.data(), v.data(), B, T, H, KV, HD, 1);
    kflash_bwd(cq.data(), ck.data(), cv.data(), dout.data(), co.data(), cl.data(), q.data(), k.data(), v.data(), B, T,
               H, KV, HD, 1);
    /* the double reference */
    std::vector<double> rq(q.begin(), q.end()), rk(k.begin(), k.end()), rv(v.begin(), v.end()),
        rdo(dout.begin(), dout.end()), ro(NQ), rdq(NQ), rdk(NK), rdv(NK);
    kref_attention_fwd(ro.data(), NULL, rq.data(), rk.data(), rv.data(), B, T, H, KV, HD);
    kref_attention_bwd(rdq.data(), rdk.data(), rdv.data(), rdo.data(), rq.data(), rk.data(), rv.data(), B, T, H, KV,
                       HD);
    double m[5] = {rel(o.data(), co.data(), NQ), rel(l.data(), cl.data(), NL), rel(dq.data(), cq.data(), NQ),
                   rel(dk.data(), ck.data(), NK), rel(dv.data(), cv.data(), NK)};
    double r[4] = {reld(o.data(), ro.data(), NQ), reld(dq.data(), rdq.data(), NQ), reld(dk.data(), rdk.data(), NK),
                   reld(dv.data(), rdv.data(), NK)};
    int same = !memcmp(dq.data(), dq2.data(), 4 * NQ) && !memcmp(dk.data(), dk2.data(), 4 * NK) &&
               !memcmp(dv.data(), dv2.data(), 4 * NK);
    int ok = same;
    for (double e : m) ok &= e <= 2e-3;
    for (double e : r) ok &= e <= 1.5e-2;
    printf("B%d T%-4d H%d KV%d hd%-3d vs CPU model: out %.1e lse %.1e dq %.1e dk %.1e dv %.1e | vs double: out %.1e "
           "dq %.1e dk %.1e dv %.1e | backward twice %s: %s\n",
           B, T, H, KV, HD, m[0], m[1], m[2], m[3], m[4], r[0], r[1], r[2], r[3], same ? "same bits" : "DIFFERS",
           ok ? "ok" : "FAIL");
    fflush(stdout);
    return ok;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    int ok = 1;
    ok &= run<16>({2, 64, 4, 2, 16});  /* one tile, GQA 2:1 */
    ok &= run<48>({1, 100, 4, 1, 48}); /* MQA, T % 64 = 36, T % 32 = 4 */
    ok &= run<64>({1, 130, 2, 2, 64}); /* a last tile of 2 rows */
    ok &= run<32>({1, 1, 2, 1, 32});   /* one token */
    if (!quick) {
        ok &= run<128>({1, 70, 2, 1, 128}); /* 7b's head size, the diagonal crossing a tile */
        ok &= run<64>({1, 200, 4, 2, 64});  /* four tiles */
    }
    printf("%s\n", ok ? "flash_emu: all within limits" : "flash_emu: FAILED");
    return ok ? 0 : 1;
}
