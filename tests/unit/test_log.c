/* The log sink: the level threshold, the "xffl <cmd>: " prefix the CLI's stderr
 * lines have always had, JSON lines with escaping, and lines written whole from
 * several threads. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"

/* Everything written to f since the start, NUL-terminated (static buffer). */
static const char *contents(FILE *f)
{
    static char buf[1 << 16];
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    return buf;
}

static void test_levels_and_prefix(void)
{
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    xffl_log_config was = xffl_log_setup(&(xffl_log_config){.level = XFFL_LOG_INFO, .cmd = "train", .stream = f});
    CU_ASSERT_TRUE(xffl_log_enabled(XFFL_LOG_ERROR));
    CU_ASSERT_TRUE(xffl_log_enabled(XFFL_LOG_INFO));
    CU_ASSERT_FALSE(xffl_log_enabled(XFFL_LOG_DEBUG));
    xffl_log(XFFL_LOG_INFO, "alpha: step %d/%d", 1, 10);
    xffl_log(XFFL_LOG_DEBUG, "not shown");
    xffl_log(XFFL_LOG_WARN, "warning: orphan %s\n", "k"); /* a trailing newline is not doubled */
    CU_ASSERT_STRING_EQUAL(contents(f), "xffl train: alpha: step 1/10\nxffl train: warning: orphan k\n");
    fclose(f);

    /* --quiet: warnings and errors only; no command: the "xffl: " prefix */
    f = tmpfile();
    xffl_log_setup(&(xffl_log_config){.level = XFFL_LOG_WARN, .stream = f});
    xffl_log(XFFL_LOG_INFO, "progress");
    xffl_log(XFFL_LOG_ERROR, "differs: tensor %s", "x");
    CU_ASSERT_STRING_EQUAL(contents(f), "xffl: differs: tensor x\n");
    fclose(f);

    /* --verbose: debug lines too */
    f = tmpfile();
    xffl_log_setup(&(xffl_log_config){.level = XFFL_LOG_DEBUG, .cmd = "ls", .stream = f});
    xffl_log(XFFL_LOG_DEBUG, "store %s: retry %d/%d", "127.0.0.1:1", 1, 8);
    CU_ASSERT_STRING_EQUAL(contents(f), "xffl ls: store 127.0.0.1:1: retry 1/8\n");
    fclose(f);
    xffl_log_config mine = xffl_log_setup(&was);
    CU_ASSERT_EQUAL(mine.level, XFFL_LOG_DEBUG); /* setup hands back what it replaces */
}

static void test_json_lines(void)
{
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    xffl_log_config was =
        xffl_log_setup(&(xffl_log_config){.level = XFFL_LOG_INFO, .json = 1, .cmd = "verify", .stream = f});
    xffl_log(XFFL_LOG_ERROR, "key \"a\\b\"\ttab\nline");
    xffl_log(XFFL_LOG_WARN, "warning: orphan k");
    /* each line: the fields, then the time (UTC, milliseconds), which this run's clock sets */
    const char *want[] = {"{\"level\": \"error\", \"cmd\": \"verify\", \"msg\": \"key \\\"a\\\\b\\\"\\u0009tab\\nline\", \"time\": \"",
                          "{\"level\": \"warn\", \"cmd\": \"verify\", \"msg\": \"warning: orphan k\", \"time\": \""};
    const char *p = contents(f);
    for (int i = 0; i < 2; i++) {
        const size_t n = strlen(want[i]);
        CU_ASSERT_EQUAL_FATAL(strncmp(p, want[i], n), 0);
        p += n;
        int y, mo, d, h, mi, sec, ms, used = 0;
        CU_ASSERT_EQUAL(sscanf(p, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ\"}\n%n", &y, &mo, &d, &h, &mi, &sec, &ms, &used), 7);
        CU_ASSERT_EQUAL(used, 27);
        CU_ASSERT_TRUE(y >= 2024 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && sec < 61);
        p += used;
    }
    CU_ASSERT_EQUAL(*p, 0);
    fclose(f);
    xffl_log_setup(&was);
}

/* Lines from parallel workers (store transfers log retries from their threads) never
 * interleave within a line. */
static void test_whole_lines_from_threads(void)
{
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    xffl_log_config was = xffl_log_setup(&(xffl_log_config){.level = XFFL_LOG_INFO, .cmd = "cp", .stream = f});
    enum { N = 400 };
#pragma omp parallel for num_threads(4)
    for (int i = 0; i < N; i++) xffl_log(XFFL_LOG_INFO, "line %03d %s", i, "0123456789abcdef0123456789abcdef");
    xffl_log_setup(&was);
    const char *p = contents(f);
    int lines = 0, seen[N] = {0};
    while (*p) {
        int i = -1;
        char tail[64] = "";
        CU_ASSERT_EQUAL_FATAL(sscanf(p, "xffl cp: line %d %63s", &i, tail), 2);
        CU_ASSERT_STRING_EQUAL(tail, "0123456789abcdef0123456789abcdef");
        if (i >= 0 && i < N) seen[i]++;
        p = strchr(p, '\n');
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        p++;
        lines++;
    }
    CU_ASSERT_EQUAL(lines, N);
    for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(seen[i], 1);
    fclose(f);
}

void suite_log(void)
{
    CU_pSuite s = CU_add_suite("log", NULL, NULL);
    CU_add_test(s, "levels, --quiet/--verbose thresholds, 'xffl <cmd>: ' prefix", test_levels_and_prefix);
    CU_add_test(s, "--json: one escaped object per line", test_json_lines);
    CU_add_test(s, "lines from threads written whole", test_whole_lines_from_threads);
}
