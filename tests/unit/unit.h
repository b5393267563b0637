/* What every CUnit suite shares. */
#ifndef XFFL_TEST_UNIT_H
#define XFFL_TEST_UNIT_H

#include <CUnit/CUnit.h>
#include "common/status.h"

/* A call that must succeed for the test to go on (every xffl_status is XFFL_MUST_USE):
 * stops the test there, naming the call, when it does not. */
#define T_OK(expr) CU_ASSERT_EQUAL_FATAL((expr), XFFL_OK)

#endif
