/* The training loop (contract in loop.h).
 *
 * Why every micro-batch gradient travels on its own when R > 1 and K > 1: the
 * collectives add in rank order, ((x_0 + x_1) + x_2) + ..., so one reduce-scatter of
 * each rank's own sum would give (g0 + g1) + (g2 + g3) for R = K = 2, not the
 * ((g0 + g1) + g2) + g3 of one rank with K = 4. Instead, for each of its micro-batch
 * indices k, every rank takes part in R reduce-scatters in which only rank q sends
 * (the others send zeros, and x + 0 = x exactly): each shard receives every g_j
 * unchanged and folds them in j order. That costs R times the traffic of one
 * reduce-scatter per micro-batch; with K = 1 (the common case) one reduce-scatter is
 * already the sequential sum. (The sign of an exact zero may differ: 0 + -0 = +0.) */
#include "pipelines/loop.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/util.h"
#include "kernels/shard.h"

enum { TAG_HEX = XFFL_SHA256_HEX };

typedef struct {
    char magic[16];
    int64_t version, done, ranks, rank, lo, hi, n, opt_step, cursor;
    double loss_sum, loss_first, loss_last;
    float grad_norm;
    char tag[72];
} ckpt_head;

static const char CKPT_MAGIC[16] = "xffl-loop-ckpt";

typedef struct {
    const pipe_loop_options *o;
    xffl_comm *c;
    const ckpt_param_table *t;
    kern_model *m;
    int R, rank, K, M, Bm, T;
    int host, sharded;
    int64_t n, S, lo, hi, L, nparts;
    int64_t C;  /* floats per rank in one piece of an exchange */
    float *piece, *acc, *slots, *pm, *mm, *vm;
    float *g; /* the step's gradient sum over this rank's range: acc, or the backend's own slab (exchange) */
    float *pslab, *gslab; /* the backend's own slabs when they are host memory (kern_host_slabs) */
    double *parts, *parts_all;
    float *mloss, *mloss_all;
    int32_t *in, *tg;
    double *step_s; /* each step's seconds in this call, for the steady-state median */
    /* bf16 publication (publish_bf16): the weights the backend reads in bf16 travel as
     * bf16; the rest, per rank d, are the fp32 segments fseg[fstart[d] .. fstart[d+1]) of
     * d's shard (absolute slab offsets), F floats at most in one shard */
    int bf16_pub;
    int64_t (*fseg)[2];
    int *fstart;
    int64_t F;
    int64_t opt_step;
    char tag[TAG_HEX];
    uint64_t host_bytes;
    kern_options ko;    /* what x->m was made with (o->keep) */
} loop_ctx;

static void *take(loop_ctx *x, size_t count, size_t size)
{
    x->host_bytes += count * size;
    return calloc(count ? count : 1, size);
}

static void ctx_free(loop_ctx *x)
{
    free(x->piece), free(x->acc), free(x->slots), free(x->pm), free(x->mm), free(x->vm);
    free(x->parts), free(x->parts_all), free(x->mloss), free(x->mloss_all), free(x->in), free(x->tg);
    free(x->step_s), free(x->fseg), free(x->fstart);
    kern_model_free(x->m);
}

/* Pieces of at most PIPE_LOOP_PIECE floats per rank move between the backend and the
 * collectives: no whole-slab host copy beside the shard. */

/* Shard layout and buffers of the host optimizer. */
static XFFL_MUST_USE xffl_status host_setup(loop_ctx *x, const float *theta, const pipe_loop_inner *inner)
{
    int64_t n = x->n, R = x->R;
    if (x->sharded) {
        int64_t per = (n + R - 1) / R;
        x->S = kern_norm_chunks(per) * KERN_NORM_CHUNK;
        x->lo = x->rank * x->S < n ? x->rank * x->S : n;
        x->hi = x->lo + x->S < n ? x->lo + x->S : n;
        x->nparts = x->S / KERN_NORM_CHUNK;
    } else {
        x->S = n, x->lo = 0, x->hi = n;
        x->nparts = kern_norm_chunks(n);
    }
    x->L = x->hi - x->lo;
    int64_t piece = x->o->piece > 0 ? kern_norm_chunks(x->o->piece) * KERN_NORM_CHUNK : PIPE_LOOP_PIECE;
    x->C = x->S < piece ? x->S : piece;
    x->piece = take(x, (size_t)((x->sharded ? R : 1) * x->C), 4);
    x->acc = take(x, (size_t)x->S, 4);
    x->pm = take(x, (size_t)x->S, 4);
    x->mm = take(x, (size_t)x->S, 4);
    x->vm = take(x, (size_t)x->S, 4);
    x->parts = take(x, (size_t)x->nparts, 8);
    int ok = x->piece && x->acc && x->pm && x->mm && x->vm && x->parts;
    if (R > 1 && x->K > 1) {
        x->slots = take(x, (size_t)x->M * x->S, 4);
        ok = ok && x->slots;
    }
    if (x->sharded && R > 1) {
        x->parts_all = take(x, (size_t)(R * x->nparts), 8);
        ok = ok && x->parts_all;
    }
    XFFL_RETURN_IF(!ok, XFFL_ERR_NOMEM, "optimizer shard buffers (%lld floats)", (long long)x->S);
    memcpy(x->pm, theta + x->lo, (size_t)x->L * 4);
    if (inner && inner->present) {
        memcpy(x->mm, inner->m + x->lo, (size_t)x->L * 4);
        memcpy(x->vm, inner->v + x->lo, (size_t)x->L * 4);
        x->opt_step = inner->step;
    }
    return XFFL_OK;
}

/* Elements of rank d's shard piece [c0, c0+cc) that lie inside the slab. */
static int64_t in_slab(const loop_ctx *x, int d, int64_t c0, int64_t cc)
{
    int64_t left = x->n - ((int64_t)d * x->S + c0);
    return left < 0 ? 0 : left < cc ? left : cc;
}

/* 1 when piece [c0, c0+cc) of every rank's shard lies inside the slab: then it can move
 * in place (strided collectives) instead of through x->piece. */
static int whole_piece(const loop_ctx *x, int64_t c0, int64_t cc)
{
    for (int d = 0; d < x->R; d++)
        if (in_slab(x, d, c0, cc) != cc) return 0;
    return 1;
}

/* Every rank's shard of `shard` (S floats each), all-gathered piece by piece into full
 * (n floats), or into the backend's parameters when full is NULL: in place where the
 * target is host memory, else through x->piece. */
static XFFL_MUST_USE xffl_status gather_shards(loop_ctx *x, const float *shard, float *full)
{
    float *target = full ? full : x->pslab;
    int in_place = 0;
    for (int64_t c0 = 0; c0 < x->S; c0 += x->C) {
        int64_t cc = x->S - c0 < x->C ? x->S - c0 : x->C;
        if (target && whole_piece(x, c0, cc)) {
            XFFL_FORWARD(comm_allgather_strided(x->c, shard + c0, target + c0, (size_t)x->S, (size_t)cc, COMM_F32));
            in_place = 1;
            continue;
        }
        XFFL_FORWARD(comm_allgather(x->c, shard + c0, x->piece, (size_t)cc, COMM_F32));
        for (int d = 0; d < x->R; d++) {
            int64_t off = (int64_t)d * x->S + c0, cnt = in_slab(x, d, c0, cc);
            int last = c0 + cc >= x->S && d == x->R - 1;
            if (full && cnt)
                memcpy(full + off, x->piece + d * cc, (size_t)cnt * 4);
            else if (!full && (cnt || last))
                XFFL_FORWARD(kern_set_params_range(x->m, cnt ? off : 0, cnt, x->piece + d * cc, last));
        }
    }
    if (!full && in_place) kern_params_written(x->m);
    return XFFL_OK;
}

/* An AdamW step for publish_bf16 to run piece by piece. */
typedef struct {
    int step;
    float gscale;
} adamw_step;

/* publish_bf16's plan: the fp32-only parameters' segments in each rank's shard. */
static XFFL_MUST_USE xffl_status bf16_plan(loop_ctx *x)
{
    const ckpt_param_table *t = x->t;
    int any = 0;
    for (int i = 0; i < t->count; i++) any |= kern_param_bf16(x->m, i);
    if (!any || !x->sharded || x->R == 1 || !x->pslab) return XFFL_OK;
    x->fseg = take(x, (size_t)(t->count + 1) * x->R, sizeof *x->fseg);
    x->fstart = take(x, (size_t)x->R + 1, sizeof *x->fstart);
    XFFL_RETURN_IF(!x->fseg || !x->fstart, XFFL_ERR_NOMEM, "bf16 publication plan (%d ranks)", x->R);
    int k = 0;
    for (int d = 0; d < x->R; d++) {
        int64_t lo = (int64_t)d * x->S, hi = lo + x->S < x->n ? lo + x->S : x->n, tot = 0;
        x->fstart[d] = k;
        for (int i = 0; i < t->count; i++) {
            const ckpt_param *p = &t->params[i];
            int64_t a = p->offset > lo ? p->offset : lo, b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
            if (b <= a || kern_param_bf16(x->m, i)) continue;
            x->fseg[k][0] = a, x->fseg[k][1] = b - a, tot += b - a, k++;
        }
        x->F = tot > x->F ? tot : x->F;
    }
    x->fstart[x->R] = k;
    x->bf16_pub = 1;
    return XFFL_OK;
}

/* Elements [k0, k0+kc) of rank d's fp32-only segments, concatenated: copied from buf
 * (slab offset o at buf[o - base]) into packed (pack), or from packed into buf. */
static void fp32_pieces(const loop_ctx *x, int d, int64_t k0, int64_t kc, float *buf, int64_t base, float *packed,
                        int pack)
{
    int64_t k = 0;
    for (int j = x->fstart[d]; j < x->fstart[d + 1] && k < k0 + kc; j++) {
        int64_t off = x->fseg[j][0] - base, cnt = x->fseg[j][1];
        int64_t a = k0 > k ? k0 - k : 0, b = k0 + kc - k < cnt ? k0 + kc - k : cnt;
        if (b > a) {
            if (pack) memcpy(packed + (k + a - k0), buf + off + a, (size_t)(b - a) * 4);
            else memcpy(buf + off + a, packed + (k + a - k0), (size_t)(b - a) * 4);
        }
        k += cnt;
    }
}

/* Sharded publication at bf16: each rank rounds its own master shard once and the
 * all-gather moves 2 bytes per weight into the backend's bf16 copies, instead of 4
 * bytes of fp32 that every rank then rounds in full; the norms and the embedding,
 * which the backend reads in fp32, follow in fp32. The same bits as the fp32 path: the
 * same rounding of the same values. Both go through x->piece (R*C floats), pieces of
 * at most C values per rank, each rank's own part written in place. */
static XFFL_MUST_USE xffl_status publish_bf16(loop_ctx *x, const adamw_step *a)
{
    uint16_t *recv = (uint16_t *)x->piece;
    for (int64_t c0 = 0; c0 < x->S; c0 += x->C) {
        int64_t cc = x->S - c0 < x->C ? x->S - c0 : x->C, own = in_slab(x, x->rank, c0, cc);
        uint16_t *send = recv + (size_t)x->rank * cc; /* in place */
        if (a) /* the step and its rounding in one pass, piece by piece while it is in cache */
            kern_adamw_range(x->t, x->lo + c0, x->lo + c0 + own, x->pm + c0, send, x->g + c0, x->mm + c0,
                             x->vm + c0, &x->o->adamw, a->step, x->opt_step, a->gscale);
        else
            kern_round_bf16(send, x->pm + c0, own);
        memset(send + own, 0, (size_t)(cc - own) * 2);
        XFFL_FORWARD(comm_allgather(x->c, send, recv, (size_t)cc * 2, COMM_BYTE));
        for (int d = 0; d < x->R; d++) {
            int64_t cnt = in_slab(x, d, c0, cc);
            int last = c0 + cc >= x->S && d == x->R - 1;
            if (cnt || last)
                XFFL_FORWARD(kern_set_params_bf16_range(x->m, cnt ? (int64_t)d * x->S + c0 : 0, cnt,
                                                        recv + (size_t)d * cc, last));
        }
    }
    for (int64_t k0 = 0; k0 < x->F; k0 += x->C) {
        int64_t kc = x->F - k0 < x->C ? x->F - k0 : x->C;
        float *frecv = x->piece, *fsend = frecv + (size_t)x->rank * kc;
        memset(fsend, 0, (size_t)kc * 4);
        fp32_pieces(x, x->rank, k0, kc, x->pm, x->lo, fsend, 1);
        XFFL_FORWARD(comm_allgather(x->c, fsend, frecv, (size_t)kc, COMM_F32));
        for (int d = 0; d < x->R; d++) fp32_pieces(x, d, k0, kc, x->pslab, 0, frecv + (size_t)d * kc, 0);
    }
    return XFFL_OK;
}

/* The backend's parameters from the master shards (all-gathered when sharded). */
static XFFL_MUST_USE xffl_status publish_params(loop_ctx *x)
{
    if (!x->sharded || x->R == 1) return kern_set_params(x->m, x->pm);
    if (x->bf16_pub) return publish_bf16(x, NULL);
    return gather_shards(x, x->pm, NULL);
}

/* Shard elements [c0, c0+cc) of the step's gradient sum are complete: the chunk sums of
 * their squares, for the norm (c0 on a chunk boundary), taken per piece by the exchange
 * while the piece is in cache. The sum stays a sum: host_step divides by the M
 * micro-batches in the norm and in AdamW's gradient scale instead of in a pass over the
 * shard. For M a power of two those are the bits of dividing every element first (an
 * exact scaling, subnormal gradients aside); for any M, a given M always gives the
 * same bits, whichever split of ranks and micro-batches makes it. */
static void grads_ready(loop_ctx *x, int64_t c0, int64_t cc)
{
    int64_t own = x->L - c0 < cc ? x->L - c0 : cc;
    if (own < 0) own = 0;
    if (c0 == 0) memset(x->parts, 0, (size_t)x->nparts * 8);
    kern_sumsq_parts(x->g + c0, own, x->parts + c0 / KERN_NORM_CHUNK);
}

/* Micro-batch k's gradient (in the backend) into the step's sum over this rank's range. */
static XFFL_MUST_USE xffl_status exchange(loop_ctx *x, int k)
{
    const int64_t n = x->n, S = x->S, C = x->C;
    x->g = x->acc;
    if (x->R == 1) {
        for (int64_t off = 0; off < n; off += C) {
            int64_t cnt = n - off < C ? n - off : C;
            if (k == 0) {
                XFFL_FORWARD(kern_get_grads_range(x->m, off, cnt, x->acc + off));
                continue;
            }
            XFFL_FORWARD(kern_get_grads_range(x->m, off, cnt, x->piece));
            for (int64_t i = 0; i < cnt; i++) x->acc[off + i] += x->piece[i];
        }
        return XFFL_OK;
    }
    /* K = 1: one exchange, every rank sends; K > 1: one per rank q, only q sends (loop.c's top) */
    for (int q = 0; q < (x->K == 1 ? 1 : x->R); q++) {
        const int sending = x->K == 1 || q == x->rank;
        float *dst = x->K == 1 ? x->acc : x->slots + (size_t)(q * x->K + k) * S;
        if (x->sharded) {
            /* K = 1 with host slabs: straight from the backend's gradient slab, and the sum
             * written over this rank's own chunk of it, which no other rank reads: a piece
             * is summed where it lies, with no second buffer to stream through */
            const int in_place = x->K == 1 && x->gslab;
            if (in_place) x->g = x->gslab + x->lo;
            int64_t cc;
            for (int64_t c0 = 0; c0 < S; c0 += cc) {
                cc = S - c0 < C ? S - c0 : C;
                if (in_place && !whole_piece(x, c0, cc)) { /* the whole chunks every rank has inside the slab */
                    int64_t w = in_slab(x, x->R - 1, c0, cc) / KERN_NORM_CHUNK * KERN_NORM_CHUNK;
                    if (w > 0) cc = w;
                }
                if (in_place && whole_piece(x, c0, cc)) {
                    XFFL_FORWARD(comm_reduce_scatter_sum_strided(x->c, x->gslab + c0, (size_t)S, x->g + c0,
                                                                 (size_t)cc, COMM_F32));
                    grads_ready(x, c0, cc);
                    continue;
                }
                for (int d = 0; d < x->R; d++) {
                    float *seg = x->piece + d * cc;
                    int64_t cnt = sending ? in_slab(x, d, c0, cc) : 0;
                    if (cnt) XFFL_FORWARD(kern_get_grads_range(x->m, (int64_t)d * S + c0, cnt, seg));
                    memset(seg + cnt, 0, (size_t)(cc - cnt) * 4);
                }
                /* in place: into this rank's own segment of the piece, then its part inside the slab */
                float *to = in_place ? x->piece + (size_t)x->rank * cc : dst + c0;
                XFFL_FORWARD(comm_reduce_scatter_sum(x->c, x->piece, to, (size_t)cc, COMM_F32));
                if (in_place) memcpy(x->g + c0, to, (size_t)in_slab(x, x->rank, c0, cc) * 4);
                if (x->K == 1) grads_ready(x, c0, cc);
            }
        } else {
            for (int64_t off = 0; off < n; off += C) {
                int64_t cnt = n - off < C ? n - off : C;
                if (sending)
                    XFFL_FORWARD(kern_get_grads_range(x->m, off, cnt, x->piece));
                else
                    memset(x->piece, 0, (size_t)cnt * 4);
                XFFL_FORWARD(comm_allreduce_sum(x->c, x->piece, (size_t)cnt, COMM_F32));
                memcpy(dst + off, x->piece, (size_t)cnt * 4);
            }
        }
    }
    if (x->K > 1 && k == x->K - 1) {
        memcpy(x->acc, x->slots, (size_t)S * 4);
        for (int j = 1; j < x->M; j++) {
            const float *g = x->slots + (size_t)j * S;
            for (int64_t i = 0; i < S; i++) x->acc[i] += g[i];
        }
    }
    return XFFL_OK;
}

/* The host optimizer's step s on this rank's range; *gn = the pre-clip global norm. */
static XFFL_MUST_USE xffl_status host_step(loop_ctx *x, int s, float *gn)
{
    const pipe_loop_options *o = x->o;
    if (!(x->sharded && x->R > 1 && x->K == 1)) grads_ready(x, 0, x->S); /* else the exchange did, per piece */
    double norm;
    if (x->sharded && x->R > 1) {
        XFFL_FORWARD(comm_allgather(x->c, x->parts, x->parts_all, (size_t)x->nparts, COMM_F64));
        norm = kern_norm_from_parts(x->parts_all, x->R * x->nparts);
    } else
        norm = kern_norm_from_parts(x->parts, x->nparts);
    norm /= x->M; /* of the mean gradient (grads_ready) */
    *gn = (float)norm;
    XFFL_RETURN_IF(!isfinite(norm), XFFL_ERR_INVALID, "adamw: gradient norm is %g", norm);
    x->opt_step++;
    adamw_step a = {(int)(o->step0 + s), kern_clip_scale(&o->adamw, norm) / (float)x->M};
    if (x->bf16_pub) return publish_bf16(x, &a);
    kern_adamw_range(x->t, x->lo, x->hi, x->pm, NULL, x->g, x->mm, x->vm, &o->adamw, a.step, x->opt_step, a.gscale);
    return publish_params(x);
}

/* --- checkpoints ---------------------------------------------------------------- */

static void ckpt_path(char *out, size_t cap, const char *dir, int64_t done, int rank)
{
    snprintf(out, cap, "%s/loop-%lld-%d.bin", dir, (long long)done, rank);
}

static void set_tag(loop_ctx *x)
{
    const pipe_loop_options *o = x->o;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s|steps %d batch %d seq %d micro %d ranks %d host %d sharded %d step0 %lld cursor %lld n %lld",
             o->checkpoint_tag ? o->checkpoint_tag : "", o->steps, o->batch, o->seq_len, x->M, x->R, x->host,
             x->sharded, (long long)o->step0, (long long)o->cursor, (long long)x->n);
    xffl_sha256_hex(buf, strlen(buf), x->tag);
}

typedef struct {
    double sum, first, last;
    float gn;
} loss_sums;

static XFFL_MUST_USE xffl_status ckpt_write(loop_ctx *x, int done, int64_t *prev, const loss_sums *ls)
{
    const pipe_loop_options *o = x->o;
    int64_t L = x->host ? x->L : x->n;
    size_t len = sizeof(ckpt_head) + (size_t)L * 12;
    char *buf = calloc(1, len);
    XFFL_RETURN_IF(!buf, XFFL_ERR_NOMEM, "checkpoint buffer");
    ckpt_head h = {.version = 1, .done = done, .ranks = x->R, .rank = x->rank, .lo = x->host ? x->lo : 0,
                   .hi = x->host ? x->hi : x->n, .n = x->n, .opt_step = x->opt_step,
                   .cursor = o->cursor + (int64_t)done * o->batch, .loss_sum = ls->sum, .loss_first = ls->first,
                   .loss_last = ls->last, .grad_norm = ls->gn};
    memcpy(h.magic, CKPT_MAGIC, sizeof h.magic);
    snprintf(h.tag, sizeof h.tag, "%s", x->tag);
    float *p = (float *)(buf + sizeof h), *mo = p + L, *va = mo + L;
    xffl_status st = XFFL_OK;
    if (x->host) {
        memcpy(p, x->pm, (size_t)L * 4), memcpy(mo, x->mm, (size_t)L * 4), memcpy(va, x->vm, (size_t)L * 4);
    } else {
        XFFL_CHECK_GOTO(st, kern_get_params(x->m, p), done);
        XFFL_CHECK_GOTO(st, kern_get_optimizer(x->m, mo, va, &h.opt_step), done);
    }
    memcpy(buf, &h, sizeof h);
    char path[4200], mark[4200];
    ckpt_path(path, sizeof path, o->checkpoint_dir, done, x->rank);
    XFFL_CHECK_GOTO(st, xffl_write_file_atomic(path, buf, len), done);
    XFFL_CHECK_GOTO(st, comm_barrier(x->c), done);
    if (x->rank == 0) {
        char line[160];
        snprintf(line, sizeof line, "step %d ranks %d tag %s\n", done, x->R, x->tag);
        snprintf(mark, sizeof mark, "%s/loop-ckpt", o->checkpoint_dir);
        XFFL_CHECK_GOTO(st, xffl_write_file_atomic(mark, line, strlen(line)), done);
    }
    XFFL_CHECK_GOTO(st, comm_barrier(x->c), done);
    if (*prev > 0) {
        ckpt_path(path, sizeof path, o->checkpoint_dir, *prev, x->rank);
        if (unlink(path) != 0) xffl_log(XFFL_LOG_WARN, "removing old checkpoint %s failed", path);
    }
    *prev = done;
    xffl_log(XFFL_LOG_DEBUG, "checkpoint after step %d in %s", done, o->checkpoint_dir);
done:
    free(buf);
    return st;
}

/* This rank's part of the checkpoint in dir, if it matches the run: *done = its step
 * (0: none usable; why says what was wrong when there was one). */
static int ckpt_read(loop_ctx *x, char **data, int *done, char *why, size_t cap)
{
    const pipe_loop_options *o = x->o;
    char mark[4200], path[4200], tag[80] = "";
    snprintf(mark, sizeof mark, "%s/loop-ckpt", o->checkpoint_dir);
    void *d = NULL;
    size_t len = 0;
    *done = 0;
    if (access(mark, F_OK) != 0) return 0;
    if (xffl_read_file(mark, &d, &len) != XFFL_OK || len == 0) {
        free(d);
        snprintf(why, cap, "%s unreadable", mark);
        return 0;
    }
    int step = 0, ranks = 0;
    char *txt = d;
    int ok = len < 200 && (txt[len - 1] = 0, sscanf(txt, "step %d ranks %d tag %72s", &step, &ranks, tag) == 3);
    free(d);
    if (!ok || step < 1 || step >= o->steps || ranks != x->R || strcmp(tag, x->tag) != 0) {
        snprintf(why, cap, "%s is for another run (step %d, %d ranks)", mark, step, ranks);
        return 0;
    }
    ckpt_path(path, sizeof path, o->checkpoint_dir, step, x->rank);
    if (xffl_read_file(path, &d, &len) != XFFL_OK) {
        snprintf(why, cap, "%s: %s", path, xffl_errmsg());
        return 0;
    }
    ckpt_head h = {0};
    int64_t L = x->host ? x->L : x->n;
    if (len >= sizeof h) memcpy(&h, d, sizeof h);
    if (len != sizeof h + (size_t)L * 12 || memcmp(h.magic, CKPT_MAGIC, sizeof h.magic) || h.done != step ||
        h.rank != x->rank || h.n != x->n || strcmp(h.tag, x->tag) != 0) {
        snprintf(why, cap, "%s does not match this run", path);
        free(d);
        return 0;
    }
    *data = d;
    *done = step;
    return 1;
}

static XFFL_MUST_USE xffl_status ckpt_restore(loop_ctx *x, int *done, loss_sums *ls)
{
    char *d = NULL, why[4400] = "";
    int step = 0;
    int64_t ok = ckpt_read(x, &d, &step, why, sizeof why);
    xffl_status st = comm_allreduce_sum(x->c, &ok, 1, COMM_I64);
    if (st != XFFL_OK || ok != x->R) {
        if (why[0]) xffl_log(XFFL_LOG_WARN, "checkpoint ignored, starting the run over: %s", why);
        free(d);
        return st;
    }
    ckpt_head h;
    memcpy(&h, d, sizeof h);
    int64_t L = x->host ? x->L : x->n;
    float *p = (float *)(d + sizeof h), *mo = p + L, *va = mo + L;
    if (x->host) {
        memcpy(x->pm, p, (size_t)L * 4), memcpy(x->mm, mo, (size_t)L * 4), memcpy(x->vm, va, (size_t)L * 4);
        x->opt_step = h.opt_step;
        st = publish_params(x);
    } else {
        st = kern_set_params(x->m, p);
        if (st == XFFL_OK) st = kern_set_optimizer(x->m, mo, va, h.opt_step);
    }
    *done = step;
    *ls = (loss_sums){.sum = h.loss_sum, .first = h.loss_first, .last = h.loss_last, .gn = h.grad_norm};
    xffl_log(XFFL_LOG_INFO, "%s: resuming after step %d from %s", x->o->label ? x->o->label : "train", step,
             x->o->checkpoint_dir);
    free(d);
    return st;
}

void pipe_loop_checkpoint_clear(xffl_comm *comm, const char *dir)
{
    DIR *dd = dir ? opendir(dir) : NULL;
    if (!dd) return;
    int rank = comm ? comm_rank(comm) : 0;
    char suffix[32], path[4200];
    snprintf(suffix, sizeof suffix, "-%d.bin", rank);
    struct dirent *e;
    while ((e = readdir(dd))) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        int mine = !strncmp(e->d_name, "loop-", 5) && l > sl && !strcmp(e->d_name + l - sl, suffix);
        if (!mine && !(rank == 0 && !strcmp(e->d_name, "loop-ckpt"))) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0) xffl_log(XFFL_LOG_WARN, "removing checkpoint %s failed", path);
    }
    closedir(dd);
}

/* --- the loop --------------------------------------------------------------------- */

xffl_status pipe_opt_mode_parse(const char *name, pipe_opt_mode *out)
{
    static const char *const names[] = {[PIPE_OPT_AUTO] = "auto", [PIPE_OPT_SHARDED] = "sharded",
                                        [PIPE_OPT_REPLICATED] = "replicated"};
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i])) {
            *out = (pipe_opt_mode)i;
            return XFFL_OK;
        }
    return xffl_fail(XFFL_ERR_USAGE, "--optimizer must be auto, sharded or replicated, not '%s'", name ? name : "");
}

/* Step s's micro-batches on this rank: forward, backward, gradient into the exchange
 * (host optimizer) or the backend's slab (its own AdamW). */
static XFFL_MUST_USE xffl_status micro_batches(loop_ctx *x, int s)
{
    const pipe_loop_options *o = x->o;
    for (int k = 0; k < x->K; k++) {
        int64_t seq = o->cursor + (int64_t)s * o->batch + (int64_t)(x->rank * x->K + k) * x->Bm;
        XFFL_FORWARD(o->next_batch(o->batch_ctx, seq, x->Bm, x->T, x->in, x->tg));
        XFFL_FORWARD(kern_zero_grad(x->m));
        XFFL_FORWARD(kern_forward(x->m, x->in, x->tg, x->Bm, x->T, &x->mloss[k]));
        XFFL_FORWARD(kern_backward(x->m));
        if (o->stop_at == s + 1 && k == 0 && x->rank == x->R - 1) raise(SIGSTOP);
        if (x->host) XFFL_FORWARD(exchange(x, k));
    }
    return XFFL_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of the steps after the first (which pays oneDNN's primitive creation and
 * the first touch of every buffer); the one step when there is only one. */
static double steady_median(double *v, int n)
{
    if (n <= 0) return 0;
    if (n > 1) v++, n--;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n & 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void pipe_loop_keep_free(pipe_loop_keep *k)
{
    if (!k) return;
    kern_model_free(k->m);
    k->m = NULL;
}

static int same_str(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static int keep_fits(const pipe_loop_keep *k, const ckpt_model_config *c, const kern_options *o)
{
    const ckpt_model_config *h = &k->cfg;
    const kern_options *p = &k->ko;
    return k->m && h->dim == c->dim && h->n_layers == c->n_layers && h->n_heads == c->n_heads &&
           h->n_kv_heads == c->n_kv_heads && h->hidden_dim == c->hidden_dim && h->vocab_size == c->vocab_size &&
           h->max_seq_len == c->max_seq_len && h->norm_eps == c->norm_eps && h->rope_theta == c->rope_theta &&
           same_str(p->backend, o->backend) && p->threads == o->threads && p->batch == o->batch &&
           p->seq_len == o->seq_len && p->device == o->device && p->recompute == o->recompute &&
           p->no_optimizer == o->no_optimizer && p->precision == o->precision;
}

static XFFL_MUST_USE xffl_status loop_body(loop_ctx *x, float *theta, pipe_loop_inner *inner, float *losses,
                                           pipe_loop_result *r)
{
    const pipe_loop_options *o = x->o;
    const int H = o->steps, B = o->batch;
    /* with the host optimizer the backend keeps no AdamW slabs: that is the memory sharding saves */
    kern_options ko = {.backend = o->backend, .threads = o->threads, .batch = x->Bm, .seq_len = x->T,
                       .recompute = o->recompute, .no_optimizer = x->host, .precision = o->precision};
    x->ko = ko;
    if (o->keep && keep_fits(o->keep, o->model, &ko)) { /* its weights and AdamW state are set below */
        x->m = o->keep->m;
        o->keep->m = NULL;
        if (x->rank == 0)
            xffl_log(XFFL_LOG_DEBUG, "%s: the model of the run before, set again", o->label ? o->label : "train");
    } else {
        pipe_loop_keep_free(o->keep);
        XFFL_FORWARD(kern_model_create(o->model, &ko, &x->m));
    }
    x->t = kern_model_table(x->m);
    x->n = x->t->total;
    kern_host_slabs(x->m, &x->pslab, &x->gslab);
    x->in = take(x, (size_t)x->Bm * x->T, 4);
    x->tg = take(x, (size_t)x->Bm * x->T, 4);
    x->mloss = take(x, (size_t)x->K, 4);
    x->mloss_all = take(x, (size_t)x->M, 4);
    XFFL_RETURN_IF(!x->in || !x->tg || !x->mloss || !x->mloss_all, XFFL_ERR_NOMEM, "batch buffers (%d x %d)", x->Bm,
                   x->T);
    XFFL_FORWARD(kern_set_params(x->m, theta));
    if (x->host) {
        XFFL_FORWARD(host_setup(x, theta, inner));
        XFFL_FORWARD(bf16_plan(x));
    }
    else if (inner && inner->present)
        XFFL_FORWARD(kern_set_optimizer(x->m, inner->m, inner->v, inner->step));
    else
        XFFL_FORWARD(kern_reset_optimizer(x->m));
    set_tag(x);
    int start = 0;
    int64_t prev = 0;
    loss_sums ls = {0};
    const int ckpt = o->checkpoint_dir && o->checkpoint_every > 0;
    if (ckpt) {
        XFFL_FORWARD(xffl_mkdirs(o->checkpoint_dir));
        XFFL_FORWARD(ckpt_restore(x, &start, &ls));
        prev = start;
    }
    r->resumed_after = start;
    const char *label = o->label ? o->label : "train";
    int every = o->progress_every > 0 ? o->progress_every : H >= 10 ? H / 5 : 1;
    x->step_s = malloc((size_t)(H > start ? H - start : 1) * sizeof *x->step_s);
    XFFL_RETURN_IF(!x->step_s, XFFL_ERR_NOMEM, "%s: %d step times", label, H - start);
    double t_run = xffl_now();
    for (int s = start; s < H; s++) {
        double ts = xffl_now();
        float gn = 0;
        XFFL_FORWARD(micro_batches(x, s));
        XFFL_FORWARD(comm_allgather(x->c, x->mloss, x->mloss_all, (size_t)x->K, COMM_F32));
        double lsum = 0;
        for (int j = 0; j < x->M; j++) lsum += x->mloss_all[j];
        float loss = x->M == 1 ? x->mloss_all[0] : (float)(lsum / x->M);
        XFFL_RETURN_IF(!isfinite(loss), XFFL_ERR_INVALID, "training diverged: loss %g at step %d", loss, s);
        xffl_status st = x->host ? host_step(x, s, &gn) : kern_adamw_step(x->m, &o->adamw, (int)(o->step0 + s), &gn);
        if (st != XFFL_OK) return xffl_wrap(st, "%s: step %d", label, s);
        if (losses) losses[s] = loss;
        if (s == 0) ls.first = loss;
        ls.last = loss;
        ls.sum += loss;
        ls.gn = gn;
        double now = xffl_now();
        if (x->rank == 0 && ((s + 1) % every == 0 || s + 1 == H))
            xffl_log(o->progress, "%s: step %d/%d loss %.4f (%.0f tokens/s)", label, s + 1, H, loss,
                     (double)(s + 1 - start) * B * x->T / (now - t_run));
        x->step_s[s - start] = now - ts;
        if (o->on_step) o->on_step(o->on_step_ctx, s, loss, now - ts);
        if (ckpt && (s + 1) % o->checkpoint_every == 0 && s + 1 < H) {
            XFFL_FORWARD(ckpt_write(x, s + 1, &prev, &ls));
            XFFL_RETURN_IF(o->halt_after == s + 1, XFFL_ERR_INTERNAL, "%s: halted after step %d (test)", label,
                           s + 1);
        }
    }
    if (x->bf16_pub) /* the backend's fp32 weights are stale: the masters are the result */
        XFFL_FORWARD(gather_shards(x, x->pm, theta));
    else
        XFFL_FORWARD(kern_get_params(x->m, theta));
    if (inner && inner->m) {
        if (!x->host)
            XFFL_FORWARD(kern_get_optimizer(x->m, inner->m, inner->v, &inner->step));
        else if (x->sharded && x->R > 1) {
            XFFL_FORWARD(gather_shards(x, x->mm, inner->m));
            XFFL_FORWARD(gather_shards(x, x->vm, inner->v));
            inner->step = x->opt_step;
        } else {
            memcpy(inner->m, x->mm, (size_t)x->n * 4);
            memcpy(inner->v, x->vm, (size_t)x->n * 4);
            inner->step = x->opt_step;
        }
        inner->present = 1;
    }
    r->steps = H;
    r->tokens = (int64_t)H * B * x->T;
    r->cursor_end = o->cursor + (int64_t)H * B;
    r->loss_first = ls.first;
    r->loss_last = ls.last;
    r->loss_mean = H ? ls.sum / H : 0;
    r->grad_norm_last = ls.gn;
    r->step_seconds_median = steady_median(x->step_s, H - start);
    return XFFL_OK;
}

xffl_status pipe_loop_run(xffl_comm *comm, const pipe_loop_options *o, float *theta, pipe_loop_inner *inner,
                          float *losses, pipe_loop_result *r)
{
    memset(r, 0, sizeof *r);
    double t0 = xffl_now();
    xffl_comm *own = NULL;
    if (!comm) {
        XFFL_FORWARD(comm_open("self", NULL, &own));
        comm = own;
    }
    loop_ctx x = {.o = o, .c = comm, .R = comm_size(comm), .rank = comm_rank(comm),
                  .K = o->accumulate > 0 ? o->accumulate : 1, .T = o->seq_len};
    x.M = x.R * x.K;
    xffl_status st = XFFL_OK;
    if (o->steps < 0 || o->batch < 1 || o->seq_len < 1 || !o->next_batch || o->batch % x.M != 0) {
        st = xffl_fail(XFFL_ERR_USAGE, "train: %d steps of batch %d x %d over %d ranks x %d micro-batches (the batch "
                       "must be a multiple of %d), batch source %s", o->steps, o->batch, o->seq_len, x.R, x.K, x.M,
                       o->next_batch ? "set" : "missing");
        goto done;
    }
    x.Bm = o->batch / x.M;
    x.host = !(o->optimizer == PIPE_OPT_AUTO && x.M == 1);
    x.sharded = x.host && o->optimizer != PIPE_OPT_REPLICATED;
    st = loop_body(&x, theta, inner, losses, r);
    r->micro_batches = x.M;
    r->sharded = x.sharded;
    r->backend_bytes = x.m ? kern_model_bytes(x.m) : 0;
    snprintf(r->precision, sizeof r->precision, "%s", x.m ? kern_model_precision(x.m) : "");
    r->host_bytes = x.host_bytes;
    if (st == XFFL_OK && o->keep && x.m) { /* a run that failed may leave its model in any state */
        pipe_loop_keep_free(o->keep);
        *o->keep = (pipe_loop_keep){.m = x.m, .cfg = *o->model, .ko = x.ko};
        x.m = NULL;
    }
done:
    ctx_free(&x);
    comm_close(own);
    r->seconds = xffl_now() - t0;
    return st;
}
