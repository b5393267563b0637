/* The parameter table's slot enum: every tensor is (slot, layer), ckpt_param_index finds it
 * again, and the names it prints are the ones every checkpoint already holds. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "libckpt/model.h"

/* Checkpoints, deltas and h5py readers name tensors so: these strings must never change. */
static const char *const tiny_names[] = {
    "tok_embeddings.weight",
    "layers.0.attention_norm.weight",
    "layers.0.attention.wq.weight",
    "layers.0.attention.wk.weight",
    "layers.0.attention.wv.weight",
    "layers.0.attention.wo.weight",
    "layers.0.ffn_norm.weight",
    "layers.0.feed_forward.w1.weight",
    "layers.0.feed_forward.w2.weight",
    "layers.0.feed_forward.w3.weight",
    "layers.1.attention_norm.weight",
    "layers.1.attention.wq.weight",
    "layers.1.attention.wk.weight",
    "layers.1.attention.wv.weight",
    "layers.1.attention.wo.weight",
    "layers.1.ffn_norm.weight",
    "layers.1.feed_forward.w1.weight",
    "layers.1.feed_forward.w2.weight",
    "layers.1.feed_forward.w3.weight",
    "norm.weight",
    "output.weight",
};

static void test_tiny_names_and_shapes(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_model_preset("tiny", 0, &cfg), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(ckpt_param_table_create(&cfg, &t), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(t->count, (int)(sizeof tiny_names / sizeof tiny_names[0]));
    for (int i = 0; i < t->count; i++) CU_ASSERT_STRING_EQUAL(t->params[i].name, tiny_names[i]);
    /* tiny: D 64, 4 heads of 16, 2 kv heads, hidden 160, vocab 256 */
    const ckpt_param *wk = &t->params[ckpt_param_index(t, CKPT_SLOT_WK, 1)];
    CU_ASSERT_STRING_EQUAL(wk->name, "layers.1.attention.wk.weight");
    CU_ASSERT(wk->ndim == 2 && wk->shape[0] == 32 && wk->shape[1] == 64);
    const ckpt_param *w2 = &t->params[ckpt_param_index(t, CKPT_SLOT_W2, 0)];
    CU_ASSERT(w2->ndim == 2 && w2->shape[0] == 64 && w2->shape[1] == 160);
    const ckpt_param *n = &t->params[ckpt_param_index(t, CKPT_SLOT_NORM, 0)];
    CU_ASSERT(n->ndim == 1 && n->shape[0] == 64 && n->shape[1] == 1 && n->kind == CKPT_KIND_NORM);
    const ckpt_param *e = &t->params[ckpt_param_index(t, CKPT_SLOT_EMBEDDING, 0)];
    CU_ASSERT(e->shape[0] == 256 && e->shape[1] == 64 && e->kind == CKPT_KIND_EMBEDDING && e->offset == 0);
    ckpt_param_table_free(t);
}

/* (slot, layer) -> index -> the same (slot, layer), names printed from ckpt_slots, the
 * slab contiguous in table order, for every preset. */
static void test_index_round_trip(void)
{
    const char *presets[] = {"tiny", "small", "base", "1b", "7b"};
    for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
        ckpt_model_config cfg;
        ckpt_param_table *t = NULL;
        CU_ASSERT_EQUAL_FATAL(ckpt_model_preset(presets[k], 0, &cfg), XFFL_OK);
        CU_ASSERT_EQUAL_FATAL(ckpt_param_table_create(&cfg, &t), XFFL_OK);
        CU_ASSERT_EQUAL(t->count, CKPT_SLOT_COUNT - CKPT_LAYER_SLOTS + CKPT_LAYER_SLOTS * cfg.n_layers);
        int64_t off = 0;
        for (int i = 0; i < t->count; i++) {
            const ckpt_param *p = &t->params[i];
            int per_layer = p->slot < CKPT_LAYER_SLOTS;
            CU_ASSERT_EQUAL(per_layer, p->layer >= 0);
            CU_ASSERT_EQUAL(ckpt_param_index(t, p->slot, per_layer ? p->layer : 0), i);
            CU_ASSERT_EQUAL(ckpt_param_find(t, p->name), i);
            CU_ASSERT_EQUAL(p->kind, ckpt_slots[p->slot].kind);
            char name[CKPT_NAME_MAX];
            snprintf(name, sizeof name, ckpt_slots[p->slot].name, p->layer);
            CU_ASSERT_STRING_EQUAL(p->name, name);
            CU_ASSERT_EQUAL(p->offset, off);
            off += p->numel;
        }
        CU_ASSERT_EQUAL(off, t->total);
        ckpt_param_table_free(t);
    }
}

/* The projections that add into the residual stream get the scaled init: wo and w2 only. */
static void test_residual_out_slots(void)
{
    for (int s = 0; s < CKPT_SLOT_COUNT; s++)
        CU_ASSERT_EQUAL(ckpt_slots[s].residual_out, s == CKPT_SLOT_WO || s == CKPT_SLOT_W2);
}

void suite_model_slots(void)
{
    CU_pSuite s = CU_add_suite("model_slots", NULL, NULL);
    CU_add_test(s, "tiny's tensor names and shapes", test_tiny_names_and_shapes);
    CU_add_test(s, "slot index round trip for every preset", test_index_round_trip);
    CU_add_test(s, "scaled init on wo and w2 only", test_residual_out_slots);
}
