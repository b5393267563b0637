/* What every CUnit suite shares. */
#ifndef XFFL_TEST_UNIT_H
#define XFFL_TEST_UNIT_H

#include <CUnit/CUnit.h>
#include "common/status.h"
#include "libckpt/model.h"

/* A call that must succeed for the test to go on (every xffl_status is XFFL_MUST_USE):
 * stops the test there, naming the call, when it does not. */
#define T_OK(expr) CU_ASSERT_EQUAL_FATAL((expr), XFFL_OK)

/* The tiny preset's parameter table (caller frees), or NULL when it cannot be made. */
static inline ckpt_param_table *t_tiny_table(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    if (ckpt_model_preset("tiny", 0, &cfg) != XFFL_OK) return NULL;
    if (ckpt_param_table_create(&cfg, &t) != XFFL_OK) return NULL;
    return t;
}

#endif
