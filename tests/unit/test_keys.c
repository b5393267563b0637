/* pipelines/keys: every key the layout formats parses back to what made it, keys
 * outside the layout parse as such, and pipe_manifest_load refuses what it must. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "pipelines/keys.h"

static const char sha[] = "3f9a0c12d4e1aaaabbbbccccddddeeeeffff0000111122223333444455556666";

static void test_round_trip(void)
{
    char dir[PIPE_KEY_MAX], key[PIPE_KEY_MAX];
    pipe_key k;
    pipe_version_prefix(4, dir, sizeof dir);
    CU_ASSERT_STRING_EQUAL(dir, "versions/v000004/");
    CU_ASSERT_EQUAL_FATAL(pipe_content_key(dir, PIPE_INDEX_STEM, sha, NULL, key, sizeof key), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(key, "versions/v000004/INDEX-3f9a0c12d4e1");
    CU_ASSERT_EQUAL(pipe_key_parse(key, &k), PIPE_KEY_VERSION);
    CU_ASSERT_EQUAL(k.number, 4);
    CU_ASSERT_EQUAL(k.obj, PIPE_OBJ_INDEX);
    CU_ASSERT_STRING_EQUAL(k.name, "INDEX-3f9a0c12d4e1");
    CU_ASSERT_EQUAL_FATAL(pipe_part_key(dir, 7, sha, key, sizeof key), XFFL_OK);
    CU_ASSERT_STRING_EQUAL(key, "versions/v000004/part-007-3f9a0c12d4e1.h5");
    CU_ASSERT_EQUAL(pipe_key_parse(key, &k), PIPE_KEY_VERSION);
    CU_ASSERT_EQUAL(k.obj, PIPE_OBJ_PART);
    pipe_version_prefix(1234567, dir, sizeof dir);
    CU_ASSERT_EQUAL(pipe_key_parse(dir, &k), PIPE_KEY_VERSION);
    CU_ASSERT_EQUAL(k.number, 1234567);

    pipe_attempt_prefix(5, "alpha", 12, dir, sizeof dir);
    CU_ASSERT_STRING_EQUAL(dir, "rounds/r000005/alpha/a12/");
    CU_ASSERT_EQUAL_FATAL(pipe_content_key(dir, PIPE_COMMIT_STEM, sha, NULL, key, sizeof key), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_key_parse(key, &k), PIPE_KEY_ATTEMPT);
    CU_ASSERT_EQUAL(k.number, 5);
    CU_ASSERT_STRING_EQUAL(k.facility, "alpha");
    CU_ASSERT_EQUAL(k.attempt, 12);
    CU_ASSERT_EQUAL(k.obj, PIPE_OBJ_COMMIT);
    CU_ASSERT_EQUAL(k.dir_len, strlen(dir));
    CU_ASSERT_EQUAL_FATAL(pipe_content_key(dir, PIPE_REJECTED_STEM, sha, NULL, key, sizeof key), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_key_parse(key, &k), PIPE_KEY_ATTEMPT);
    CU_ASSERT_EQUAL(k.obj, PIPE_OBJ_REJECTED);
    pipe_facility_prefix(5, "alpha", dir, sizeof dir);
    CU_ASSERT_STRING_EQUAL(dir, "rounds/r000005/alpha/");
    CU_ASSERT_EQUAL(pipe_content_key("versions/v000001/", "x", sha, NULL, key, 20), XFFL_ERR_INTERNAL);

    pipe_version_ref ref = {.version = 4}, back;
    snprintf(ref.index_key, sizeof ref.index_key, "versions/v000004/INDEX-3f9a0c12d4e1");
    memcpy(ref.index_sha, sha, 64);
    ref.index_sha[64] = 0;
    char line[PIPE_KEY_MAX + 100];
    int n = pipe_latest_format(&ref, line, sizeof line);
    CU_ASSERT_EQUAL_FATAL(pipe_latest_parse(line, (size_t)n, &back), XFFL_OK);
    CU_ASSERT_EQUAL(back.version, 4);
    CU_ASSERT_STRING_EQUAL(back.index_key, ref.index_key);
    CU_ASSERT_STRING_EQUAL(back.index_sha, ref.index_sha);
}

static void test_outside_layout(void)
{
    pipe_key k;
    CU_ASSERT_EQUAL(pipe_key_parse("LATEST", &k), PIPE_KEY_LATEST);
    CU_ASSERT_EQUAL(pipe_key_parse("federation.h5", &k), PIPE_KEY_FEDERATION);
    CU_ASSERT_EQUAL(pipe_key_parse("notes.txt", &k), PIPE_KEY_OTHER);
    CU_ASSERT_EQUAL(k.number, -1);
    /* only the form the formatter prints */
    static const char *const other[] = {"versions/v12/INDEX-3f9a0c12d4e1", "versions/v0000004/x",
                                        "versions/v000004", "versions/vabcdef/x", "rounds/r-00001/a/a1/x"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) CU_ASSERT_EQUAL(pipe_key_parse(other[i], &k), PIPE_KEY_OTHER);
    /* a round folder, but not an attempt's */
    static const char *const round[] = {"rounds/r000005/alpha/a0/x", "rounds/r000005/alpha/a01/x",
                                        "rounds/r000005/alpha/b1/x", "rounds/r000005//a1/x", "rounds/r000005/notes"};
    for (size_t i = 0; i < sizeof round / sizeof round[0]; i++) {
        CU_ASSERT_EQUAL(pipe_key_parse(round[i], &k), PIPE_KEY_ROUND);
        CU_ASSERT_EQUAL(k.number, 5);
    }
    /* nested names are in the folder but are no object of the layout */
    CU_ASSERT_EQUAL(pipe_key_parse("rounds/r000005/alpha/a1/sub/COMMIT-3f9a0c12d4e1", &k), PIPE_KEY_ATTEMPT);
    CU_ASSERT_EQUAL(k.obj, PIPE_OBJ_NONE);
    CU_ASSERT_EQUAL(pipe_key_parse("versions/v000004/COMMIT-3f9a0c12d4e1", &k), PIPE_KEY_VERSION);
    CU_ASSERT_EQUAL(k.obj, PIPE_OBJ_NONE);
    CU_ASSERT_EQUAL(pipe_key_parse("versions/v000004/INDEX-3f9a0c12d4e1.partial", &k), PIPE_KEY_VERSION);
    CU_ASSERT_EQUAL(k.obj, PIPE_OBJ_NONE);
}

/* Puts text at <dir><stem>-<its content name>, then loads it. */
static XFFL_MUST_USE xffl_status put_and_load(store *s, const char *dir, const char *stem, const char *text, ckpt_manifest **m)
{
    char hex[XFFL_SHA256_HEX], key[PIPE_KEY_MAX];
    xffl_sha256_hex(text, strlen(text), hex);
    XFFL_FORWARD(pipe_content_key(dir, stem, hex, NULL, key, sizeof key));
    XFFL_FORWARD(store_put(s, key, text, strlen(text)));
    return pipe_manifest_load(s, key, NULL, m, NULL);
}

static void test_manifest_load(void)
{
    char *root = NULL;
    store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(xffl_mkdtemp("keys", &root), XFFL_OK);
    CU_ASSERT_EQUAL_FATAL(store_open(root, NULL, &s), XFFL_OK);
    ckpt_manifest *m = NULL;
    pipe_manifest_bytes raw;
    const char *d4 = "versions/v000004/", *att = "rounds/r000005/alpha/a1/";
    const char *idx = "format=xffl-index\nformat_version=1\nversion=4\nparent=3\nround=4\ntokens_seen=0\nparts=0\n";
    CU_ASSERT_EQUAL(put_and_load(s, d4, PIPE_INDEX_STEM, idx, &m), XFFL_OK);
    ckpt_manifest_free(m);
    /* a COMMIT written before format_version existed reads as version 1 */
    CU_ASSERT_EQUAL(put_and_load(s, att, PIPE_COMMIT_STEM, "format=xffl-commit\nround=5\n", &m), XFFL_OK);
    ckpt_manifest_free(m);
    CU_ASSERT_EQUAL(put_and_load(s, d4, PIPE_INDEX_STEM, "format=xffl-commit\nversion=4\n", &m), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_EQUAL(put_and_load(s, d4, PIPE_INDEX_STEM, "format=xffl-index\nformat_version=2\nversion=4\n", &m),
                    XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "format_version 2"));
    CU_ASSERT_EQUAL(put_and_load(s, d4, PIPE_INDEX_STEM, "format=xffl-index\nversion=3\n", &m), XFFL_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "version=3, expected 4"));
    CU_ASSERT_EQUAL(put_and_load(s, att, "NOTES", "format=xffl-commit\n", &m), XFFL_ERR_INVALID);
    /* bytes that do not match the content name, or the digest asked for */
    const char *text = "format=xffl-commit\nround=5\n";
    CU_ASSERT_EQUAL(store_put(s, "rounds/r000005/alpha/a1/COMMIT-000000000000", text, strlen(text)), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_manifest_load(s, "rounds/r000005/alpha/a1/COMMIT-000000000000", NULL, &m, NULL),
                    XFFL_ERR_CORRUPT);
    char hex[XFFL_SHA256_HEX], key[PIPE_KEY_MAX];
    xffl_sha256_hex(text, strlen(text), hex);
    CU_ASSERT_EQUAL_FATAL(pipe_content_key(att, PIPE_COMMIT_STEM, hex, NULL, key, sizeof key), XFFL_OK);
    CU_ASSERT_EQUAL(pipe_manifest_load(s, key, hex, &m, &raw), XFFL_OK);
    CU_ASSERT_EQUAL(raw.len, strlen(text));
    CU_ASSERT_STRING_EQUAL(raw.text, text);
    CU_ASSERT_STRING_EQUAL(raw.sha256, hex);
    free(raw.text);
    ckpt_manifest_free(m);
    hex[0] = hex[0] == '0' ? '1' : '0';
    CU_ASSERT_EQUAL(pipe_manifest_load(s, key, hex, &m, NULL), XFFL_ERR_CORRUPT);
    store_close(s);
    xffl_ignore(xffl_rmtree(root));
    free(root);
}

void suite_keys(void)
{
    CU_pSuite s = CU_add_suite("keys", NULL, NULL);
    CU_add_test(s, "formatted keys parse back", test_round_trip);
    CU_add_test(s, "keys outside the layout", test_outside_layout);
    CU_add_test(s, "pipe_manifest_load checks digest, format, format_version, folder", test_manifest_load);
}
