/* The memory plan's arithmetic (pipelines/memplan.h) on a model small enough to count
 * by hand, and the cpu plan against the bytes the cpu backend really allocates.
 *
 * The hand model: dim 4, 1 layer, 2 heads (1 kv head, hd 2), hidden 8, vocab 16.
 * Tensors: embedding 64; layer: norm 4, wq 16, wk 8, wv 8, wo 16, norm 4, w1 32, w2 32,
 * w3 32 = 152; final norm 4 + output 64 = 68. P = 284. Units 64, 152, 68: the largest
 * 152; shards: 2 ranks 32 + 76 + 34 = 142, 3 ranks 22 + 51 + 23 = 96.
 * Micro-batch 1 x 4: N 4, N*D 16, N*(H+2KV)*hd 32, B*H*T^2 32, N*F 32, N*V 64. */
#include <CUnit/CUnit.h>
#include <string.h>

#include "kernels/kern.h"
#include "pipelines/memplan.h"
#include "tests/unit/unit.h"

static pipe_memplan_config hand(const char *backend, int ranks, int zero)
{
    pipe_memplan_config c = {.model = {4, 1, 2, 1, 8, 16, 8, 1e-5f, 10000.0f},
                             .backend = backend,
                             .ranks = ranks,
                             .zero = zero,
                             .batch = 1,
                             .seq_len = 4,
                             .threads = 1};
    return c;
}

/* cpu, one rank: 64-byte regions. params r(1136)=1152, grads 1152, m+v 2304.
 * Activations: x 2 x 64; 4 x 64 + 2 x 64; qkv 128; P 128; swiglu 3 x 128; final
 * 64 + 3 x 64 + 256; scratch 3 x 64 + 128 + 3 x 128; w13 2 x 256; dS 64; rope 2 x 64
 * and tokens 2 x 16 unrounded: 3104. */
static void test_cpu_hand(void)
{
    pipe_memplan_config c = hand("cpu", 1, 2);
    pipe_memplan p;
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.params, 284);
    CU_ASSERT_EQUAL(p.unit, 152);
    CU_ASSERT_EQUAL(p.cfg.zero, 0); /* one rank: nothing to shard */
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_PARAMS], 1152);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_GRADS], 1152);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_OPTIMIZER], 2304);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_ACTIVATIONS], 3104);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_COMM], 0);
    CU_ASSERT_EQUAL(p.total, 7712);
    CU_ASSERT_EQUAL(p.fits, -1);
    c.device_memory = 7712;
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.fits, 1);
    c.device_memory = 7711;
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.fits, 0);
}

/* cpu with the loop's host optimizer (pipelines/loop.c): the backend keeps its weights
 * and gradient (1152 each) and activations (3104), no AdamW slabs; the host holds a
 * shard of S floats, chunk-aligned (65536: 262144 bytes) of master weights, summed
 * gradient, m and v; the exchange piece (R x min(S, 1 Mi) floats) with the chunk norms
 * (8 per chunk, every rank's too when sharded), the micro-batch ids (2 x 16) and the
 * K + M losses; with several ranks the MPI scratch of R pieces.
 * 2 ranks (sharded): piece 524288 + 24 + 32 + 12, scratch 524288.
 * 3 ranks replicated (ZeRO 0): S = P = 284 floats, unrounded 1136; piece 1136 + 8 + 32
 * + 16, scratch 1136. 1 rank x 2 micro-batches: one shard, piece 262144 + 8 + 32 + 16. */
static void test_cpu_zero(void)
{
    pipe_memplan_config c = hand("cpu", 2, 2);
    pipe_memplan p;
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.shard, 65536);
    CU_ASSERT_EQUAL(p.target, 0);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_PARAMS], 1152 + 262144);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_GRADS], 1152 + 262144);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_OPTIMIZER], 2 * 262144);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_ACTIVATIONS], 3104);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_COMM], 524288 + 24 + 32 + 12 + 524288);
    CU_ASSERT_EQUAL(p.total, 2102628);
    c.zero = 1; /* the loop has one sharded layout */
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.total, 2102628);
    c = hand("cpu", 3, 0);
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.shard, 284);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_PARAMS], 1152 + 1136);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_OPTIMIZER], 2272);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_COMM], 1136 + 8 + 32 + 16 + 1136);
    CU_ASSERT_EQUAL(p.total, 12280);
    c = hand("cpu", 1, 0);
    c.accumulate = 2;
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_COMM], 262144 + 8 + 32 + 16);
    CU_ASSERT_EQUAL(p.total, 1316184);
}

/* cuda bf16, one rank: 256-byte buffers. fp32 weights r(1136)=1280, bf16 r(568)=768,
 * grads 1280, m+v 2560. Activations: res 2 x 256; 7 x 256 + 2 x 256; P 256; swiglu
 * 3 x 256; final 256 + 256 + 2 x 256 + 4 x 256; scratch 6 x 256 + 2 x 256 + 3 x 256
 * + 256 (the norm accumulator); dP 256; bf16 staging 2 x r(64 x 2) = 512: 9728.
 * (hd 2: the three-GEMM attention, the fused kernels are not built for it.) Optimizer:
 * the AdamW tensor table, 12 tensors, r(12 x 8) + r(12 x 4) = 512.
 * ZeRO-2 over 2 ranks: bf16 768, master r(568)=768, gradient shard 768 + unit
 * r(608)=768, m+v 1536, staging 768. */
static void test_cuda_hand(void)
{
    pipe_memplan_config c = hand("cuda", 1, 0);
    pipe_memplan p;
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_PARAMS], 1280 + 768);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_GRADS], 1280);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_OPTIMIZER], 2560 + 512);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_ACTIVATIONS], 9728);
    CU_ASSERT_EQUAL(p.total, 16128);
    c.fp32 = 1; /* no bf16 copy, no staging */
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.total, 16128 - 768 - 512);
    CU_ASSERT_EQUAL(p.target, 0); /* one rank: what the backend allocates */
    c = hand("cuda", 2, 2);
    c.reserve = 1000;
    T_OK(pipe_memplan_compute(&c, &p));
    CU_ASSERT_EQUAL(p.target, 1); /* several ranks: the target layout, not the loop's */
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_PARAMS], 768 + 768);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_GRADS], 768 + 768);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_OPTIMIZER], 1536 + 512);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_COMM], 768);
    CU_ASSERT_EQUAL(p.kind_bytes[PIPE_MEM_RUNTIME], 1000);
    CU_ASSERT_EQUAL(p.total, 768 * 5 + 1536 + 512 + 9728 + 1000);
}

/* cuda bf16 with a head size the fused attention is built for (hd 16: dim 32, 2 heads, 1 kv
 * head, T 100): no T^2 term, bf16 q (N*D), k, v (N*KV*hd) and lse (N*H) per layer, bf16 dO
 * and Dr in the backward; XFFL_CUDA_ATTENTION=reference (attn_reference) and fp32 mode plan
 * P and dP (B*H*T^2 floats each) instead. N = 100: q16 r(6400)=6400, k16/v16 r(3200)=3328,
 * lse r(800)=1024; the reference's 3 x N*D floats of qh, kh, vh are r(12800) = 12800 each. */
static void test_cuda_fused_attention(void)
{
    pipe_memplan_config c = hand("cuda", 1, 0);
    c.model = (ckpt_model_config){32, 1, 2, 1, 64, 16, 128, 1e-5f, 10000.0f};
    c.seq_len = 100;
    pipe_memplan f, r, f32;
    T_OK(pipe_memplan_compute(&c, &f));
    c.attn_reference = 1;
    T_OK(pipe_memplan_compute(&c, &r));
    c.attn_reference = 0;
    c.fp32 = 1;
    T_OK(pipe_memplan_compute(&c, &f32));
    int fused_line = 0, t2_f = 0, t2_r = 0, t2_32 = 0;
    for (int i = 0; i < f.n_items; i++) {
        fused_line += strstr(f.items[i].what, "fused attention: bf16 q, k, v") != NULL;
        if (strstr(f.items[i].what, "fused attention: bf16 q, k, v"))
            CU_ASSERT_EQUAL(f.items[i].each, 6400 + 2 * 3328 + 1024);
        t2_f += strstr(f.items[i].what, "T^2") != NULL;
    }
    for (int i = 0; i < r.n_items; i++) t2_r += strstr(r.items[i].what, "T^2") != NULL;
    for (int i = 0; i < f32.n_items; i++) t2_32 += strstr(f32.items[i].what, "T^2") != NULL;
    CU_ASSERT_EQUAL(fused_line, 1);
    CU_ASSERT_EQUAL(t2_f, 0);
    CU_ASSERT(t2_r >= 2 && t2_32 >= 2); /* P and dP (and the staging sized to them) */
    /* P + dP = 2 x B*H*T^2 floats = 2 x 80000 bytes, far above what the fused layout adds */
    CU_ASSERT(r.kind_bytes[PIPE_MEM_ACTIVATIONS] > f.kind_bytes[PIPE_MEM_ACTIVATIONS] + 160000);
}

/* Recompute keeps the L+1 layer inputs and one layer of the rest: with 2 layers the
 * cpu plan drops one layer's 384 + 128 + 128 + 384 bytes, the cuda plan its
 * 2304 + 256 + 768; the attention probabilities scale with B*H*T^2. */
static void test_recompute_and_attention(void)
{
    pipe_memplan_config c = hand("cpu", 1, 0);
    c.model.n_layers = 2;
    pipe_memplan a, b;
    T_OK(pipe_memplan_compute(&c, &a));
    c.recompute = 1;
    T_OK(pipe_memplan_compute(&c, &b));
    CU_ASSERT_EQUAL(a.total - b.total, 1024);
    c = hand("cuda", 1, 0);
    c.model.n_layers = 2;
    T_OK(pipe_memplan_compute(&c, &a));
    c.recompute = 1;
    T_OK(pipe_memplan_compute(&c, &b));
    CU_ASSERT_EQUAL(a.total - b.total, 2304 + 256 + 768);
    /* T 4 -> 8: the cpu's P line goes from r(32 x 4) to r(2 x 64 x 4) = 512 per layer */
    c = hand("cpu", 1, 0);
    c.seq_len = 8;
    T_OK(pipe_memplan_compute(&c, &a));
    int found = 0;
    for (int i = 0; i < a.n_items; i++)
        if (strstr(a.items[i].what, "attention probabilities")) {
            CU_ASSERT_EQUAL(a.items[i].each, 512);
            found = 1;
        }
    CU_ASSERT(found);
}

static void test_refusals(void)
{
    pipe_memplan p;
    pipe_memplan_config c = hand("gpu", 1, 0);
    CU_ASSERT_EQUAL(pipe_memplan_compute(&c, &p), XFFL_ERR_USAGE);
    c = hand("cpu", 0, 0);
    CU_ASSERT_EQUAL(pipe_memplan_compute(&c, &p), XFFL_ERR_USAGE);
    c = hand("cpu", 2, 3);
    CU_ASSERT_EQUAL(pipe_memplan_compute(&c, &p), XFFL_ERR_USAGE);
    c = hand("cpu", 1, 0);
    c.seq_len = 9; /* above max_seq_len 8 */
    CU_ASSERT_EQUAL(pipe_memplan_compute(&c, &p), XFFL_ERR_USAGE);
    pipe_train_plan_options o;
    pipe_train_plan_options_default(&o);
    CU_ASSERT_EQUAL(pipe_train_plan(NULL, &o, &p), XFFL_ERR_USAGE); /* no model */
    o.preset = "tiny";
    o.backend = "cuda";
    CU_ASSERT_EQUAL(pipe_train_plan(NULL, &o, &p), XFFL_ERR_USAGE); /* cuda needs --device-memory */
    o.device_memory = 1ull << 30;
    T_OK(pipe_train_plan(NULL, &o, &p));
    CU_ASSERT_EQUAL(p.cfg.batch, 4); /* the federation's default batch */
    CU_ASSERT_EQUAL(p.cfg.seq_len, 64);
    o.ranks = 3;
    T_OK(pipe_train_plan(NULL, &o, &p));
    CU_ASSERT_EQUAL(p.cfg.batch, 2); /* 4 over 3 ranks, rounded up */
    CU_ASSERT_EQUAL(p.cfg.zero, 2);
}

/* The cpu plan of one rank is what cpu_create allocates: its slab (kern_model_bytes)
 * and the two token-id arrays beside it. */
static void test_cpu_matches_backend(void)
{
    static const struct {
        const char *preset;
        int B, T, threads, layers;
    } cases[] = {{"tiny", 2, 16, 2, 0}, {"tiny", 3, 7, 1, 0}, {"small", 1, 33, 3, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pipe_memplan_config c = {.backend = "cpu", .ranks = 1, .batch = cases[i].B, .seq_len = cases[i].T,
                                 .threads = cases[i].threads};
        T_OK(ckpt_model_preset(cases[i].preset, 0, &c.model));
        if (cases[i].layers) c.model.n_layers = cases[i].layers;
        kern_options o = {.backend = "cpu", .threads = cases[i].threads, .batch = cases[i].B, .seq_len = cases[i].T};
        kern_model *m = NULL;
        T_OK(kern_model_create(&c.model, &o, &m));
        pipe_memplan p;
        xffl_status st = pipe_memplan_compute(&c, &p);
        uint64_t real = kern_model_bytes(m);
        kern_model_free(m);
        T_OK(st);
        CU_ASSERT_EQUAL(p.total, real + 2ull * cases[i].B * cases[i].T * 4);
    }
}

void suite_memplan(void)
{
    CU_pSuite s = CU_add_suite("memplan", NULL, NULL);
    CU_add_test(s, "cpu, one rank, counted by hand", test_cpu_hand);
    CU_add_test(s, "cpu, several ranks or micro-batches: the loop's host optimizer", test_cpu_zero);
    CU_add_test(s, "cuda bf16 and fp32, one rank and ZeRO-2", test_cuda_hand);
    CU_add_test(s, "cuda bf16: the fused attention's layout, no T^2 term", test_cuda_fused_attention);
    CU_add_test(s, "recompute keeps one layer; attention grows with T^2", test_recompute_and_attention);
    CU_add_test(s, "out-of-range settings are refused", test_refusals);
    CU_add_test(s, "the cpu plan is what the cpu backend allocates", test_cpu_matches_backend);
}
