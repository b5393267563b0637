/* Issue 14: inputs another party wrote (damaged or crafted) end in a status naming them,
 * never a crash, a hang, an unbounded allocation or a write outside the store. */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/isolate.h"
#include "tests/unit/unit.h"

static XFFL_MUST_USE xffl_status crashes(void *ctx)
{
    (void)ctx;
    raise(SIGSEGV);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status loops(void *ctx)
{
    for (;;) pause();
    (void)ctx;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status refuses(void *ctx)
{
    return xffl_fail(XFFL_ERR_INVALID, "%s: refused", (const char *)ctx);
}

static XFFL_MUST_USE xffl_status answers(void *ctx)
{
    strcpy(ctx, "from the child");
    return XFFL_OK;
}

static void test_isolated(void)
{
    CU_ASSERT_EQUAL(xffl_isolated(crashes, NULL, NULL, 0, 10, "part-000.h5"), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "part-000.h5"));
    CU_ASSERT_EQUAL(xffl_isolated(loops, NULL, NULL, 0, 1, "part-001.h5"), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "did not finish in 1 s"));
    char what[] = "part-002.h5";
    CU_ASSERT_EQUAL(xffl_isolated(refuses, what, NULL, 0, 10, what), XFFL_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(xffl_errmsg(), "part-002.h5: refused");
    char buf[32] = "";
    T_OK(xffl_isolated(answers, buf, buf, sizeof buf, 10, "answer"));
    CU_ASSERT_STRING_EQUAL(buf, "from the child");
}

void suite_hostile(void)
{
    CU_pSuite s = CU_add_suite("hostile", NULL, NULL);
    CU_add_test(s, "a parser in a child: crash, hang, failure, result", test_isolated);
}
