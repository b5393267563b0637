/* The memory plan (pipelines/memplan.h). The activation lines mirror the allocation
 * code of kernels/cpu/model.c (cpu_create: every region rounded up to 16 floats) and
 * kernels/cuda/model.c (plan(): every buffer aligned to 256 bytes): a change there
 * changes the plan, and tests/unit/test_memplan.c compares the cpu plan with
 * kern_model_bytes. */
#include "pipelines/memplan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/flash.h"
#include "kernels/shard.h"
#include "pipelines/loop.h"

static const char *const kind_names[PIPE_MEM_KINDS] = {
    [PIPE_MEM_PARAMS] = "parameters",       [PIPE_MEM_GRADS] = "gradients",
    [PIPE_MEM_OPTIMIZER] = "optimizer state", [PIPE_MEM_ACTIVATIONS] = "activations",
    [PIPE_MEM_COMM] = "communication",      [PIPE_MEM_RUNTIME] = "runtime",
};

const char *pipe_mem_kind_name(pipe_mem_kind k) { return k >= 0 && k < PIPE_MEM_KINDS ? kind_names[k] : "?"; }

typedef struct {
    pipe_memplan *p;
    uint64_t align; /* each buffer's size is rounded up to this (the backend's) */
    pipe_mem_item *cur;
} planner;

static uint64_t rounded(const planner *pl, uint64_t bytes) { return (bytes + pl->align - 1) / pl->align * pl->align; }

/* Starts a line of count buffers; buf() then adds the buffers one of them holds. */
static void line(planner *pl, pipe_mem_kind k, int count, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void line(planner *pl, pipe_mem_kind k, int count, const char *fmt, ...)
{
    pipe_memplan *p = pl->p;
    if (p->n_items == PIPE_MEMPLAN_MAX_ITEMS) { /* a programming error: lines are a fixed set */
        pl->cur = &p->items[p->n_items - 1];
        return;
    }
    pipe_mem_item *it = &p->items[p->n_items++];
    it->kind = k;
    it->count = count;
    it->each = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->what, sizeof it->what, fmt, ap);
    va_end(ap);
    pl->cur = it;
}

/* n buffers of elems elements of size bytes each, in the current line. */
static void buf(planner *pl, int n, int64_t elems, int size)
{
    pl->cur->each += (uint64_t)n * rounded(pl, (uint64_t)elems * (uint64_t)size);
}

typedef struct {
    int64_t N, D, F, V, H, KV, hd, L, B, T, TT, att;
} dims;

/* Counts as cpu_create does: its slab (params, grads, m, v, then the activations) and
 * the two token-id arrays it mallocs beside it. */
static void cpu_activations(planner *pl, const dims *d, int recompute, int threads)
{
    int64_t N = d->N, D = d->D, F = d->F, Dq = (d->H + 2 * d->KV) * d->hd;
    int per = recompute ? 1 : (int)d->L;
    const char *one = recompute ? ", one layer (recomputed)" : "";
    line(pl, PIPE_MEM_ACTIVATIONS, (int)d->L + 1, "layer inputs x (N*D)");
    buf(pl, 1, N * D, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, per, "xn1, att, mid, xn2 (4 x N*D), rstd1, rstd2 (2 x N)%s", one);
    buf(pl, 4, N * D, 4);
    buf(pl, 2, N, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, per, "q, k, v after RoPE (N*(H+2KV)*hd)%s", one);
    buf(pl, 1, N * Dq, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, per, "attention probabilities P (B*H*T^2)%s", one);
    buf(pl, 1, d->att, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, per, "SwiGLU w1|w3 outputs (2 x N*F) and g (N*F)%s", one);
    buf(pl, 3, N * F, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, 1, "final norm (N*D + N), logits (N*V), lse and losses (2 x N)");
    buf(pl, 1, N * D, 4);
    buf(pl, 3, N, 4);
    buf(pl, 1, N * d->V, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, 1, "backward scratch: 3 x N*D, N*(H+2KV)*hd, 3 x N*F");
    buf(pl, 3, N * D, 4);
    buf(pl, 1, N * Dq, 4);
    buf(pl, 3, N * F, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, 1, "fused w1|w3 copy and its gradient (2 x 2*F*D)");
    buf(pl, 2, 2 * F * D, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, 1, "attention backward scratch (%d thread%s x T^2)", threads, threads > 1 ? "s" : "");
    buf(pl, 1, (int64_t)threads * d->TT, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, 1, "RoPE tables (2 x T*hd/2), token ids (2 x N)");
    buf(pl, 2, d->T * d->hd / 2, 4);
    pl->cur->each += 2 * (uint64_t)N * 4; /* malloc'd: not rounded */
}

/* The cpu backend's bf16 mode (kernels/cpu/model.c): the weights' bf16 copy, the
 * output-gradient staging buffer, P's bf16 copy per layer, dS (bf16) and dP (fp32) (with
 * the fused AMX attention: its per-thread scratch in their place), the
 * bf16 copies of each layer's GEMM inputs and of the final norm's output. */
static void cpu_bf16_copies(planner *pl, const dims *d, int recompute, int flash, int threads)
{
    int64_t N = d->N, D = d->D, F = d->F, V = d->V, Dq = (d->H + 2 * d->KV) * d->hd;
    int64_t hp = kcpu_bf16_head_pad((int)d->hd), Dqh = (d->H + 2 * d->KV) * hp;
    int per = recompute ? 1 : (int)d->L;
    const char *one = recompute ? ", one layer (recomputed)" : "";
    int64_t wide = Dq > 2 * F ? Dq : 2 * F;
    wide = wide > d->H * hp ? wide : d->H * hp;
    int64_t g = wide > V ? (wide > D ? wide : D) : (V > D ? V : D);
    line(pl, PIPE_MEM_PARAMS, 1, "bf16 copy of the weight matrices");
    buf(pl, 1, (Dq * D + D * D + 3 * F * D) * d->L + V * D, 2);
    line(pl, PIPE_MEM_ACTIVATIONS, 1, "bf16 staging of output gradients (N*max(Dq, 2F, D, V, H*hp))");
    buf(pl, 1, N * g, 2);
    if (flash) {
        line(pl, PIPE_MEM_ACTIVATIONS, 1, "fused attention scratch (per thread: 11 bf16 + 3 fp32 T*hp blocks)");
        pl->cur->each += (uint64_t)kcpu_bf16_flash_scratch((int)d->T, (int)d->hd) * (uint64_t)threads;
    } else {
        line(pl, PIPE_MEM_ACTIVATIONS, per, "bf16 P (B*H*T^2)%s", one);
        buf(pl, 1, d->att, 2);
        line(pl, PIPE_MEM_ACTIVATIONS, 1, "attention backward: bf16 dS, fp32 dP (B*H*T^2 each)");
        buf(pl, 1, d->att, 2);
        buf(pl, 1, d->att, 4);
    }
    if (!flash) {
        line(pl, PIPE_MEM_ACTIVATIONS, 1, "attention: O, then dq|dk|dv, head-major (N*(H+2KV)*hp, hp = hd rounded up to 32)");
        buf(pl, 1, N * Dqh, 4);
    }
    line(pl, PIPE_MEM_ACTIVATIONS, per, "bf16 GEMM inputs xn1, q|k|v (head-major, N*(H+2KV)*hp), att, xn2, g%s", one);
    buf(pl, 3, N * D, 2);
    buf(pl, 1, N * Dqh, 2);
    buf(pl, 1, N * F, 2);
    line(pl, PIPE_MEM_ACTIVATIONS, 1, "bf16 final norm output (N*D)");
    buf(pl, 1, N * D, 2);
}

/* Counts as kernels/cuda/model.c's plan() does. */
static void cuda_activations(planner *pl, const dims *d, int recompute, int bf16, int fused)
{
    int64_t N = d->N, D = d->D, F = d->F, V = d->V, KVD = d->KV * d->hd, NH = N * d->H;
    int64_t att = fused ? 0 : d->att;
    int per = recompute ? 1 : (int)d->L;
    const char *one = recompute ? ", one layer (recomputed)" : "";
    line(pl, PIPE_MEM_ACTIVATIONS, (int)d->L + 1, "layer inputs res (N*D)");
    buf(pl, 1, N * D, 4);
    if (fused) {
        /* kernels/cuda/attn_fused.h: bf16 q, k, v and the log-sum-exp, no T^2 buffer */
        line(pl, PIPE_MEM_ACTIVATIONS, per, "xn1, att, mid, xn2 (4 x N*D), rstd1, rstd2 (2 x N)%s", one);
        buf(pl, 4, N * D, 4);
        buf(pl, 2, N, 4);
        line(pl, PIPE_MEM_ACTIVATIONS, per, "fused attention: bf16 q, k, v (N*D + 2 x N*KV*hd), lse (N*H)%s", one);
        buf(pl, 1, N * D, 2);
        buf(pl, 2, N * KVD, 2);
        buf(pl, 1, NH, 4);
    } else {
        line(pl, PIPE_MEM_ACTIVATIONS, per, "xn1, q, k, v (H heads), att, mid, xn2 (7 x N*D), rstd1, rstd2 (2 x N)%s",
             one);
        buf(pl, 7, N * D, 4);
        buf(pl, 2, N, 4);
        line(pl, PIPE_MEM_ACTIVATIONS, per, "attention probabilities P (B*H*T^2)%s", one);
        buf(pl, 1, att, 4);
    }
    line(pl, PIPE_MEM_ACTIVATIONS, per, "SwiGLU h1, h3, g (3 x N*F)%s", one);
    buf(pl, 3, N * F, 4);
    line(pl, PIPE_MEM_ACTIVATIONS, 1, "final norm (N*D + N), logits and their gradient (2 x N*V), 4 x N");
    buf(pl, 1, N * D, 4);
    buf(pl, 1, N, 4);
    buf(pl, 2, N * V, 4);
    buf(pl, 4, N, 4); /* lse, losses, token ids, targets */
    line(pl, PIPE_MEM_ACTIVATIONS, 1, "backward scratch: 6 x N*D, 2 x N*KV*hd, 3 x N*F");
    buf(pl, 6, N * D, 4);
    buf(pl, 2, N * KVD, 4);
    buf(pl, 3, N * F, 4);
    buf(pl, 1, 1, 8); /* the grad-norm accumulator */
    if (fused) {
        line(pl, PIPE_MEM_ACTIVATIONS, 1, "fused attention backward: bf16 dout (N*D), rowsum(dout o out) (N*H)");
        buf(pl, 1, N * D, 2);
        buf(pl, 1, NH, 4);
    } else {
        line(pl, PIPE_MEM_ACTIVATIONS, 1, "gradient of the attention probabilities dP (B*H*T^2)");
        buf(pl, 1, att, 4);
    }
    if (bf16) {
        int64_t ce = N * D;
        if (N * F > ce) ce = N * F;
        if (N * V > ce) ce = N * V;
        if (att > ce) ce = att;
        line(pl, PIPE_MEM_ACTIVATIONS, 1, "bf16 staging of GEMM operands (2 x max(N*D, N*F, N*V%s))",
             fused ? "" : ", B*H*T^2");
        buf(pl, 2, ce, 2);
    }
}

/* The reduce-scatter units in backward order's terms: the token embedding, each layer,
 * and the final norm with the classifier. Sets the largest unit and this rank's shard
 * (each unit split in ranks equal chunks, the last padded). */
static XFFL_MUST_USE xffl_status units(const ckpt_model_config *m, int ranks, int64_t *total, int64_t *unit,
                                       int64_t *shard, int *tensors)
{
    ckpt_param_table *t = NULL;
    XFFL_FORWARD(ckpt_param_table_create(m, &t));
    int64_t emb = 0, layer = 0, tail = 0;
    for (int i = 0; i < t->count; i++) {
        const ckpt_param *p = &t->params[i];
        if (p->slot == CKPT_SLOT_EMBEDDING) emb += p->numel;
        else if (p->layer == 0) layer += p->numel;
        else if (p->layer < 0) tail += p->numel;
    }
    *total = t->total;
    *tensors = t->count;
    ckpt_param_table_free(t);
    *unit = emb > layer ? emb : layer;
    if (tail > *unit) *unit = tail;
    int64_t R = ranks;
    *shard = (emb + R - 1) / R + m->n_layers * ((layer + R - 1) / R) + (tail + R - 1) / R;
    return XFFL_OK;
}

/* What pipelines/loop.c holds on a cpu rank when the host optimizer runs (several ranks
 * or micro-batches): the backend's full fp32 weights and gradient (no AdamW slabs), and
 * on the host the rank's shard of S floats (chunk-aligned, kernels/shard.h; the whole
 * slab when replicated) of master weights, moments and summed gradient, M = R*K
 * micro-batch gradient shards when R > 1 and K > 1, one exchange piece of C floats per
 * rank, and the MPI transport's scratch: R pieces (comm/comm_mpi.c, touched as used). */
static void cpu_loop_state(planner *pl, int64_t P, int R, int K, int sharded, int64_t Bm, int64_t T, int64_t *S_out)
{
    /* kern_norm_chunks by hand: the GPU tests link this file without kernels/shard.c */
    const int64_t CH = KERN_NORM_CHUNK;
    int64_t S = sharded ? ((P + R - 1) / R + CH - 1) / CH * CH : P;
    int64_t C = S < PIPE_LOOP_PIECE ? S : PIPE_LOOP_PIECE, M = (int64_t)R * K;
    int64_t nparts = sharded ? S / CH : (P + CH - 1) / CH;
    *S_out = S;
    line(pl, PIPE_MEM_PARAMS, 1, "fp32 weights in the backend, full");
    buf(pl, 1, P, 4);
    line(pl, PIPE_MEM_PARAMS, 1, "host fp32 master weights, %s (%lld floats)", sharded ? "this rank's shard" : "full",
         (long long)S);
    pl->cur->each += (uint64_t)S * 4;
    line(pl, PIPE_MEM_GRADS, 1, "fp32 gradients in the backend, full");
    buf(pl, 1, P, 4);
    line(pl, PIPE_MEM_GRADS, 1, "host summed gradient, %s", sharded ? "shard" : "full");
    pl->cur->each += (uint64_t)S * 4;
    if (R > 1 && K > 1) {
        line(pl, PIPE_MEM_GRADS, 1, "host micro-batch gradients, %lld x %s", (long long)M, sharded ? "shard" : "full");
        pl->cur->each += (uint64_t)(M * S) * 4;
    }
    line(pl, PIPE_MEM_OPTIMIZER, 1, "host AdamW m, v (fp32), %s", sharded ? "shard" : "full");
    pl->cur->each += 2 * (uint64_t)S * 4;
    line(pl, PIPE_MEM_COMM, 1, "exchange piece (%lld x %lld floats), chunk norms, batch ids",
         (long long)(sharded ? R : 1), (long long)C);
    /* calloc'd, unrounded: the piece, the chunk norms (every rank's when sharded), the
     * micro-batch's ids and the K + M micro-batch losses */
    pl->cur->each += (uint64_t)((sharded ? R : 1) * C) * 4 + (uint64_t)(nparts * (R > 1 && sharded ? R + 1 : 1)) * 8 +
                     2 * (uint64_t)(Bm * T) * 4 + (uint64_t)(K + M) * 4;
    if (R > 1) { /* a reduce-scatter's R pieces; an all-reduce's R pieces of C/R */
        line(pl, PIPE_MEM_COMM, 1, "mpi transport scratch (%d x %lld floats)", sharded ? R : 1, (long long)C);
        pl->cur->each += (uint64_t)((sharded ? R : 1) * C) * 4;
    }
}

xffl_status pipe_memplan_compute(const pipe_memplan_config *c, pipe_memplan *out)
{
    memset(out, 0, sizeof *out);
    const ckpt_model_config *m = &c->model;
    XFFL_FORWARD(ckpt_model_validate(m));
    int cuda = c->backend && !strcmp(c->backend, "cuda");
    XFFL_RETURN_IF(!cuda && (!c->backend || strcmp(c->backend, "cpu")), XFFL_ERR_USAGE,
                   "memory plan: backend must be cpu or cuda, not '%s'", c->backend ? c->backend : "(none)");
    XFFL_RETURN_IF(c->ranks < 1 || c->ranks > 65536, XFFL_ERR_USAGE, "memory plan: ranks %d outside [1, 65536]", c->ranks);
    XFFL_RETURN_IF(c->zero < 0 || c->zero > 2, XFFL_ERR_USAGE, "memory plan: ZeRO stage %d is not 0, 1 or 2", c->zero);
    XFFL_RETURN_IF(c->batch < 1 || c->seq_len < 1 || c->seq_len > m->max_seq_len, XFFL_ERR_USAGE,
                   "memory plan: micro-batch %d x %d invalid (seq_len at most max_seq_len %d)", c->batch, c->seq_len,
                   m->max_seq_len);
    XFFL_RETURN_IF(!cuda && c->threads < 1, XFFL_ERR_USAGE, "memory plan: cpu threads %d must be positive", c->threads);
    out->cfg = *c;
    if (c->ranks == 1) out->cfg.zero = 0; /* nothing to shard */
    int zero = out->cfg.zero, R = c->ranks, bf16 = cuda && !c->fp32;
    int64_t P, unit, shard;
    int tensors = 0;
    XFFL_FORWARD(units(m, R, &P, &unit, &shard, &tensors));
    out->params = P;
    out->unit = unit;
    out->shard = zero ? shard : P;
    dims d = {.D = m->dim, .F = m->hidden_dim, .V = m->vocab_size, .H = m->n_heads, .KV = m->n_kv_heads,
              .hd = m->dim / m->n_heads, .L = m->n_layers, .B = c->batch, .T = c->seq_len};
    d.N = d.B * d.T;
    d.TT = d.T * d.T;
    d.att = d.B * d.H * d.TT;
    planner pl = {out, cuda ? 256 : 64, NULL};

    int K = c->accumulate > 0 ? c->accumulate : 1;
    /* the cpu plan is what pipelines/loop.c allocates; the cuda plan with several ranks
     * is the target layout (docs/design.md "Memory plan") */
    out->target = cuda && zero > 0;
    if (!cuda && R * K > 1) {
        int64_t S;
        cpu_loop_state(&pl, P, R, K, R == 1 || zero > 0, d.B, d.T, &S); /* one rank: one shard */
        out->shard = S;
    } else if (!zero) {
        line(&pl, PIPE_MEM_PARAMS, 1, "fp32 weights%s", R > 1 ? ", replicated" : "");
        buf(&pl, 1, P, 4);
        if (bf16) {
            line(&pl, PIPE_MEM_PARAMS, 1, "bf16 copy of the weights");
            buf(&pl, 1, P, 2);
        }
        line(&pl, PIPE_MEM_GRADS, 1, "fp32 gradients");
        buf(&pl, 1, P, 4);
        line(&pl, PIPE_MEM_OPTIMIZER, 1, "AdamW m, v (fp32)");
        buf(&pl, 2, P, 4);
    } else {
        if (bf16) {
            line(&pl, PIPE_MEM_PARAMS, 1, "bf16 weights, replicated");
            buf(&pl, 1, P, 2);
            line(&pl, PIPE_MEM_PARAMS, 1, "fp32 master weights, 1/%d shard", R);
            buf(&pl, 1, shard, 4);
        } else {
            line(&pl, PIPE_MEM_PARAMS, 1, "fp32 weights, replicated (the master shard is a slice of them)");
            buf(&pl, 1, P, 4);
        }
        if (zero == 1) {
            line(&pl, PIPE_MEM_GRADS, 1, "fp32 gradients, full");
            buf(&pl, 1, P, 4);
        } else {
            line(&pl, PIPE_MEM_GRADS, 1, "fp32 gradient shard, 1/%d", R);
            buf(&pl, 1, shard, 4);
            line(&pl, PIPE_MEM_GRADS, 1, "one unit's full fp32 gradient (%lld floats)", (long long)unit);
            buf(&pl, 1, unit, 4);
        }
        line(&pl, PIPE_MEM_OPTIMIZER, 1, "AdamW m, v (fp32), 1/%d shard", R);
        buf(&pl, 2, shard, 4);
    }
    if (cuda)
        cuda_activations(&pl, &d, c->recompute, bf16,
                         bf16 && !c->attn_reference && kflash_head_supported((int)d.hd));
    else cpu_activations(&pl, &d, c->recompute, c->threads);
    if (!cuda && c->cpu_bf16) cpu_bf16_copies(&pl, &d, c->recompute, c->cpu_flash, c->threads);
    if (cuda) { /* kernels/cuda/model.c: AdamW over the whole slab in one launch */
        line(&pl, PIPE_MEM_OPTIMIZER, 1, "AdamW tensor table (%d end offsets, %d decay flags)", tensors, tensors);
        buf(&pl, 1, tensors, 8);
        buf(&pl, 1, tensors, 4);
    }
    if (cuda && R > 1) {
        /* a rank-ordered sum (comm/comm.h) receives every rank's chunk of its shard of a
         * unit, ranks x unit/ranks elements, and adds them locally; the all-gather of the
         * updated weights is in place */
        line(&pl, PIPE_MEM_COMM, 1, "%s staging: %d chunks of one unit", zero == 2 ? "reduce-scatter" : "all-reduce", R);
        buf(&pl, 1, (int64_t)R * ((unit + R - 1) / R), 4);
    }
    if (c->reserve) {
        line(&pl, PIPE_MEM_RUNTIME, 1, "%s", cuda ? "CUDA context, cuBLAS workspace, NCCL buffers (estimate)" : "reserve");
        pl.cur->each = c->reserve;
    }
    for (int i = 0; i < out->n_items; i++) {
        uint64_t b = (uint64_t)out->items[i].count * out->items[i].each;
        out->kind_bytes[out->items[i].kind] += b;
        out->total += b;
    }
    out->fits = c->device_memory ? out->total <= c->device_memory : -1;
    return XFFL_OK;
}
