/* Ed25519 signature lines, key files, the key directory and federation.h5 pins
 * (common/sign.h). The store side is tests/it/test-sign.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/sign.h"
#include "common/util.h"
#include "libckpt/h5part.h"
#include "pipelines/federation.h"
#include "tests/unit/unit.h"

typedef struct {
    char *dir;
    char key[XFFL_KEYS_PATH_MAX], pub[XFFL_KEYS_PATH_MAX], key2[XFFL_KEYS_PATH_MAX], pub2[XFFL_KEYS_PATH_MAX];
    char hex[XFFL_SIGN_PUB_HEX], hex2[XFFL_SIGN_PUB_HEX];
} two_keys;

static void make_keys(two_keys *k)
{
    T_OK(xffl_mkdtemp("sign", &k->dir));
    T_OK(xffl_key_path(k->dir, "alpha", "key", k->key, sizeof k->key));
    T_OK(xffl_key_path(k->dir, "alpha", "pub", k->pub, sizeof k->pub));
    T_OK(xffl_key_path(k->dir, "beta", "key", k->key2, sizeof k->key2));
    T_OK(xffl_key_path(k->dir, "beta", "pub", k->pub2, sizeof k->pub2));
    T_OK(xffl_key_generate(k->key, k->pub, k->hex));
    T_OK(xffl_key_generate(k->key2, k->pub2, k->hex2));
}

static void free_keys(two_keys *k)
{
    xffl_ignore(xffl_rmtree(k->dir));
    free(k->dir);
}

static void test_sign_verify(void)
{
    two_keys k;
    make_keys(&k);
    CU_ASSERT_TRUE(xffl_public_valid(k.hex));
    char hex[XFFL_SIGN_PUB_HEX];
    T_OK(xffl_public_load(k.pub, hex));
    CU_ASSERT_STRING_EQUAL(hex, k.hex);
    xffl_signer *s = NULL;
    T_OK(xffl_signer_load(k.key, &s));
    xffl_signer_public(s, hex);
    CU_ASSERT_STRING_EQUAL(hex, k.hex);

    const char *body = "format=xffl-commit\nround=1\nobject a 1 00\n";
    char line[XFFL_SIGN_LINE_MAX], line2[XFFL_SIGN_LINE_MAX], text[1024];
    T_OK(xffl_sign_line(s, body, strlen(body), line));
    T_OK(xffl_sign_line(s, body, strlen(body), line2));
    CU_ASSERT_STRING_EQUAL(line, line2); /* deterministic: same key, same bytes */
    snprintf(text, sizeof text, "%s%s", body, line);
    size_t n = strlen(text);
    CU_ASSERT_EQUAL(xffl_signed_body_len(text, n), strlen(body));
    CU_ASSERT_EQUAL(xffl_signed_body_len(body, strlen(body)), strlen(body));
    T_OK(xffl_sign_verify(k.hex, text, n, "COMMIT"));

    char id2[XFFL_SIGN_KEYID_HEX];
    xffl_key_id(k.hex2, id2);
    CU_ASSERT_EQUAL(xffl_sign_verify(k.hex2, text, n, "COMMIT"), XFFL_ERR_CORRUPT); /* another key */
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), id2));
    CU_ASSERT_EQUAL(xffl_sign_verify(k.hex, body, strlen(body), "COMMIT"), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "no signature"));

    /* one changed byte before the line (round=1 -> round=2) */
    text[strlen("format=xffl-commit\nround=")] = '2';
    CU_ASSERT_EQUAL(xffl_sign_verify(k.hex, text, n, "COMMIT"), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "does not verify"));
    text[strlen("format=xffl-commit\nround=")] = '1';
    /* a signature by beta with alpha's key id pasted in front */
    xffl_signer *s2 = NULL;
    T_OK(xffl_signer_load(k.key2, &s2));
    T_OK(xffl_sign_line(s2, body, strlen(body), line2));
    memcpy(line2 + strlen(XFFL_SIGN_PREFIX), line + strlen(XFFL_SIGN_PREFIX), 16);
    snprintf(text, sizeof text, "%s%s", body, line2);
    CU_ASSERT_EQUAL(xffl_sign_verify(k.hex, text, strlen(text), "COMMIT"), XFFL_ERR_CORRUPT);
    /* a truncated line */
    snprintf(text, sizeof text, "%s%.40s\n", body, line);
    CU_ASSERT_EQUAL(xffl_sign_verify(k.hex, text, strlen(text), "COMMIT"), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "malformed"));
    xffl_signer_free(s);
    xffl_signer_free(s2);
    free_keys(&k);
}

static void test_key_files(void)
{
    two_keys k;
    make_keys(&k);
    xffl_signer *s = NULL;
    /* never overwritten */
    CU_ASSERT_EQUAL(xffl_key_generate(k.key, k.pub, NULL), XFFL_ERR_EXISTS);
    /* group-readable private key refused, naming the file */
    CU_ASSERT_EQUAL(chmod(k.key, 0640), 0);
    CU_ASSERT_EQUAL(xffl_signer_load(k.key, &s), XFFL_ERR_AUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), k.key));
    CU_ASSERT_EQUAL(chmod(k.key, 0600), 0);
    /* a public key is not a private key and vice versa */
    CU_ASSERT_EQUAL(chmod(k.pub, 0600), 0);
    CU_ASSERT_EQUAL(xffl_signer_load(k.pub, &s), XFFL_ERR_INVALID);
    CU_ASSERT_EQUAL(xffl_signer_load("/nonexistent/x.key", &s), XFFL_ERR_NOT_FOUND);
    char p[XFFL_KEYS_PATH_MAX];
    CU_ASSERT_EQUAL(xffl_key_path(k.dir, "../x", "key", p, sizeof p), XFFL_ERR_INVALID);
    CU_ASSERT_EQUAL(xffl_key_path(k.dir, ".hidden", "key", p, sizeof p), XFFL_ERR_INVALID);
    CU_ASSERT_FALSE(xffl_public_valid("00"));
    free_keys(&k);
}

static void test_keys_dir_and_pins(void)
{
    char *dir = NULL;
    T_OK(xffl_mkdtemp("pins", &dir));
    char kd[XFFL_KEYS_PATH_MAX], pin[XFFL_KEYS_PATH_MAX];
    snprintf(kd, sizeof kd, "%s/a/keys", dir);
    T_OK(xffl_keys_dir_make(kd));
    struct stat sb;
    CU_ASSERT_EQUAL(stat(kd, &sb), 0);
    CU_ASSERT_EQUAL(sb.st_mode & 0777, 0700);

    char *old = getenv("XDG_CONFIG_HOME") ? strdup(getenv("XDG_CONFIG_HOME")) : NULL;
    setenv("XDG_CONFIG_HOME", dir, 1);
    T_OK(xffl_keys_dir_default(pin, sizeof pin));
    snprintf(kd, sizeof kd, "%s/xffl/keys", dir);
    CU_ASSERT_STRING_EQUAL(pin, kd);
    /* CI as root with neither variable: the passwd entry's home */
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("HOME");
    struct passwd *pw = getpwuid(getuid());
    T_OK(xffl_keys_dir_default(pin, sizeof pin));
    if (pw && pw->pw_dir && pw->pw_dir[0] == '/') {
        snprintf(kd, sizeof kd, "%s/.config/xffl/keys", pw->pw_dir);
        CU_ASSERT_STRING_EQUAL(pin, kd);
    }
    if (home) setenv("HOME", home, 1);
    free(home);
    if (old) setenv("XDG_CONFIG_HOME", old, 1);
    else unsetenv("XDG_CONFIG_HOME");
    free(old);
    snprintf(kd, sizeof kd, "%s/xffl/keys", dir);

    const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const char *b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    T_OK(xffl_pin_path(kd, "file:///x/store", pin, sizeof pin));
    char pin2[XFFL_KEYS_PATH_MAX];
    T_OK(xffl_pin_path(kd, "file:///x/other", pin2, sizeof pin2));
    CU_ASSERT_STRING_NOT_EQUAL(pin, pin2);
    int pinned = 0;
    T_OK(xffl_pin_check(pin, a, &pinned));
    CU_ASSERT_EQUAL(pinned, 1);
    T_OK(xffl_pin_check(pin, a, &pinned));
    CU_ASSERT_EQUAL(pinned, 0);
    CU_ASSERT_EQUAL(xffl_pin_check(pin, b, &pinned), XFFL_ERR_CORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "federation.h5"));
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), pin));
    xffl_ignore(xffl_rmtree(dir));
    free(dir);
}

/* A two-facility tiny federation (unsigned) and the path of its file in k's directory. */
static void fed_in(const two_keys *k, pipe_federation *f, char p[XFFL_KEYS_PATH_MAX])
{
    snprintf(p, XFFL_KEYS_PATH_MAX, "%s/federation.h5", k->dir);
    T_OK(pipe_federation_default("tiny", 0, f));
    T_OK(pipe_federation_set_facilities(f, "alpha,beta"));
}

static void sign_with(const two_keys *k, pipe_federation *f)
{
    memcpy(f->aggregator_key, k->hex, XFFL_SIGN_PUB_HEX);
    memcpy(f->facility_keys[0], k->hex, XFFL_SIGN_PUB_HEX);
    memcpy(f->facility_keys[1], k->hex2, XFFL_SIGN_PUB_HEX);
}

/* A signed federation is format_version 3 with both keys; they round-trip. */
static void test_federation_keys(void)
{
    two_keys k;
    make_keys(&k);
    char p[XFFL_KEYS_PATH_MAX];
    pipe_federation f, g;
    fed_in(&k, &f, p);
    f.quorum = 2;
    CU_ASSERT_FALSE(pipe_federation_signed(&f));
    sign_with(&k, &f);
    T_OK(pipe_federation_write_file(&f, p));
    T_OK(pipe_federation_read_file(p, &g));
    CU_ASSERT_TRUE(pipe_federation_signed(&g));
    CU_ASSERT_STRING_EQUAL(g.aggregator_key, k.hex);
    CU_ASSERT_STRING_EQUAL(g.facility_keys[1], k.hex2);
    ckpt_h5_reader *r = NULL;
    T_OK(ckpt_h5_reader_open(p, NULL, &r));
    int64_t v = 0;
    T_OK(ckpt_h5_get_attr_int(r, "format_version", &v));
    CU_ASSERT_EQUAL(v, PIPE_FEDERATION_FORMAT_VERSION_SIGNED);
    ckpt_h5_reader_close(r);
    free_keys(&k);
}

static int64_t file_version(const char *p)
{
    ckpt_h5_reader *r = NULL;
    int64_t v = 0;
    T_OK(ckpt_h5_reader_open(p, NULL, &r));
    T_OK(ckpt_h5_get_attr_int(r, "format_version", &v));
    CU_ASSERT_EQUAL(ckpt_h5_check_format(r, PIPE_FEDERATION_FORMAT, PIPE_FEDERATION_FORMAT_VERSION_SIGNED),
                    v > PIPE_FEDERATION_FORMAT_VERSION_SIGNED ? XFFL_ERR_INVALID : XFFL_OK); /* what a 1-3 reader says */
    ckpt_h5_reader_close(r);
    return v;
}

/* A setting a 1-3 reader lacks makes the file 4 (unsigned) or 5 (signed), which such a
 * reader refuses; 5 needs its keys: a 5 without them (stripped) is refused. */
static void test_federation_newer_settings(void)
{
    two_keys k;
    make_keys(&k);
    char p[XFFL_KEYS_PATH_MAX];
    pipe_federation f, g;
    fed_in(&k, &f, p);
    f.encoding_gaps = 0; /* the old settings: the old version */
    CU_ASSERT_FALSE(pipe_federation_newer_settings(&f));
    T_OK(pipe_federation_write_file(&f, p));
    CU_ASSERT_EQUAL(file_version(p), PIPE_FEDERATION_FORMAT_VERSION_BYTE_LEVEL);
    pipe_federation h = f; /* each newer setting alone counts */
    h.n_step_phases = 1;
    h.step_phases[0] = (pipe_step_phase){10, 2};
    CU_ASSERT_TRUE(pipe_federation_newer_settings(&h));
    h = f;
    h.algo.outer_warmup = 3;
    CU_ASSERT_TRUE(pipe_federation_newer_settings(&h));
    h = f;
    h.encoding_decay = 0.9;
    CU_ASSERT_TRUE(pipe_federation_newer_settings(&h));
    f.data_strided = 1;
    CU_ASSERT_TRUE(pipe_federation_newer_settings(&f));
    T_OK(pipe_federation_write_file(&f, p));
    CU_ASSERT_EQUAL(file_version(p), PIPE_FEDERATION_FORMAT_VERSION_SETTINGS);
    T_OK(pipe_federation_read_file(p, &g));
    CU_ASSERT_FALSE(pipe_federation_signed(&g));
    CU_ASSERT_EQUAL(g.data_strided, 1);
    /* the unsigned file claiming 5: a signed one with its keys stripped */
    hid_t fid = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(fid >= 0);
    hid_t a = H5Aopen(fid, "format_version", H5P_DEFAULT);
    int64_t five = PIPE_FEDERATION_FORMAT_VERSION;
    CU_ASSERT(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &five) >= 0);
    H5Aclose(a);
    H5Fclose(fid);
    CU_ASSERT_NOT_EQUAL(pipe_federation_read_file(p, &g), XFFL_OK);
    sign_with(&k, &f);
    T_OK(pipe_federation_write_file(&f, p));
    CU_ASSERT_EQUAL(file_version(p), PIPE_FEDERATION_FORMAT_VERSION);
    T_OK(pipe_federation_read_file(p, &g));
    CU_ASSERT_TRUE(pipe_federation_signed(&g));
    CU_ASSERT_STRING_EQUAL(g.facility_keys[1], k.hex2);
    free_keys(&k);
}

void suite_sign(void)
{
    CU_pSuite s = CU_add_suite("sign", NULL, NULL);
    CU_add_test(s, "ed25519 lines: deterministic, verify, refuse other key, changed byte, none", test_sign_verify);
    CU_add_test(s, "key files: never overwritten, group-readable private key refused", test_key_files);
    CU_add_test(s, "federation.h5 records the keys: version 3, round trip", test_federation_keys);
    CU_add_test(s, "settings a 1-3 reader lacks: version 4, or 5 signed (keys required)", test_federation_newer_settings);
    CU_add_test(s, "key directory 0700 under XDG_CONFIG_HOME; pins: first use, then refuse a change", test_keys_dir_and_pins);
}
