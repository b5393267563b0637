/* The V4 backend's pieces that need no server: the S3 XML answers (storage/s3xml.c)
 * and the settings from AWS_* / XFFL_S3_* variables and ~/.aws files
 * (storage/s3_settings.c). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/util.h"
#include "storage/s3_settings.h"
#include "storage/s3xml.h"
#include "tests/unit/unit.h"

typedef struct {
    char keys[4][64];
    uint64_t sizes[4];
    int64_t mtimes[4];
    int n;
} got_t;

static XFFL_MUST_USE xffl_status on_obj(void *ud, const char *key, uint64_t size, int64_t mtime)
{
    got_t *g = ud;
    if (g->n < 4) {
        snprintf(g->keys[g->n], 64, "%s", key);
        g->sizes[g->n] = size;
        g->mtimes[g->n] = mtime;
    }
    g->n++;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status on_up(void *ud, const char *key, const char *id, int64_t t)
{
    got_t *g = ud;
    if (g->n < 4) snprintf(g->keys[g->n], 64, "%s|%s", key, id), g->mtimes[g->n] = t;
    g->n++;
    return XFFL_OK;
}

static void test_xml(void)
{
    const char *list = "<?xml version=\"1.0\"?>\n<ListBucketResult xmlns=\"x\"><Name>b</Name>"
                       "<IsTruncated>true</IsTruncated><NextContinuationToken>t/1+=</NextContinuationToken>"
                       "<Contents><Key>a &amp; b&#x00FC;&#252;</Key><LastModified>2026-12-01T17:00:00.000Z</LastModified>"
                       "<ETag>&quot;x&quot;</ETag><Size>84</Size></Contents>"
                       "<Contents><Key><![CDATA[k/<odd>]]></Key><Size>0</Size></Contents></ListBucketResult>";
    got_t g = {0};
    int tr = 0;
    char *next = NULL;
    T_OK(s3xml_list_objects(list, strlen(list), on_obj, &g, &tr, &next));
    CU_ASSERT_EQUAL(g.n, 2);
    CU_ASSERT_STRING_EQUAL(g.keys[0], "a & b\xc3\xbc\xc3\xbc");
    CU_ASSERT_EQUAL(g.sizes[0], 84);
    CU_ASSERT_EQUAL(g.mtimes[0], 1796144400);
    CU_ASSERT_STRING_EQUAL(g.keys[1], "k/<odd>");
    CU_ASSERT_EQUAL(tr, 1);
    CU_ASSERT_STRING_EQUAL(next, "t/1+=");
    free(next);
    /* a listing cut anywhere is refused, never a shorter listing */
    for (size_t cut = 1; cut < strlen(list); cut += 7) {
        got_t g2 = {0};
        CU_ASSERT_NOT_EQUAL(s3xml_list_objects(list, cut, on_obj, &g2, &tr, &next), XFFL_OK);
    }
    /* truncated without a token; an entry without Size; not a listing */
    const char *bad[] = {"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
                         "<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>",
                         "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
                         "<Error><Code>X</Code></Error>", "<A><B></A></B>", "<A>&bogus;</A>", "<A>&#0;</A>", "<A/><B/>"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        got_t g3 = {0};
        CU_ASSERT_NOT_EQUAL(s3xml_list_objects(bad[i], strlen(bad[i]), on_obj, &g3, &tr, &next), XFFL_OK);
    }
    char code[32], msg[64];
    const char *err = "<?xml version=\"1.0\"?><Error><Code>RequestTimeTooSkewed</Code><Message>The difference "
                      "is too large.</Message><ServerTime>2026-12-01T17:10:00Z</ServerTime></Error>";
    CU_ASSERT_TRUE(s3xml_error(err, strlen(err), code, sizeof code, msg, sizeof msg));
    CU_ASSERT_STRING_EQUAL(code, "RequestTimeTooSkewed");
    CU_ASSERT_STRING_EQUAL(msg, "The difference is too large.");
    CU_ASSERT_FALSE(s3xml_error(list, strlen(list), code, sizeof code, msg, sizeof msg));
    const char *init = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>VXBs+/=</UploadId>"
                       "</InitiateMultipartUploadResult>";
    char *id = NULL;
    T_OK(s3xml_upload_id(init, strlen(init), &id));
    CU_ASSERT_STRING_EQUAL(id, "VXBs+/=");
    free(id);
    CU_ASSERT_NOT_EQUAL(s3xml_upload_id("<InitiateMultipartUploadResult/>", 32, &id), XFFL_OK);
    const char *ups = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><Key>p/a</Key>"
                      "<UploadId>u1</UploadId><Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>"
                      "<Upload><Key>p/b</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>";
    got_t gu = {0};
    char *nk = NULL, *ni = NULL;
    T_OK(s3xml_list_uploads(ups, strlen(ups), on_up, &gu, &tr, &nk, &ni));
    CU_ASSERT_EQUAL(gu.n, 2);
    CU_ASSERT_STRING_EQUAL(gu.keys[0], "p/a|u1");
    CU_ASSERT_EQUAL(gu.mtimes[0], 1289422113);
    CU_ASSERT_EQUAL(tr, 0);
    free(nk);
    free(ni);
    char root[40];
    const char *done = "<?xml?><!-- c --><CompleteMultipartUploadResult><ETag>\"x-2\"</ETag></CompleteMultipartUploadResult>";
    s3xml_root(done, strlen(done), root, sizeof root);
    CU_ASSERT_STRING_EQUAL(root, "CompleteMultipartUploadResult");
    CU_ASSERT_EQUAL(s3xml_time("2026-12-01T17:00:00Z"), 1796144400);
    CU_ASSERT_EQUAL(s3xml_time("2026-13-01T17:00:00Z"), -1);
}

static const char *vars[] = {"XFFL_S3_SIGNATURE", "XFFL_S3_ENDPOINT", "XFFL_S3_HTTPS", "AWS_ENDPOINT_URL",
                             "XFFL_S3_ADDRESSING", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                             "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
                             "AWS_CONFIG_FILE", "AWS_CA_BUNDLE", "HOME"};
enum { NVARS = sizeof vars / sizeof *vars };

static void test_settings(void)
{
    char *saved[NVARS];
    for (int i = 0; i < NVARS; i++) {
        saved[i] = getenv(vars[i]) ? strdup(getenv(vars[i])) : NULL;
        unsetenv(vars[i]);
    }
    char dir[] = "/tmp/xffl-s3conf-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    setenv("HOME", dir, 1);
    s3_settings c;
    /* nothing: AWS itself, but no credentials -> usage naming the variable and the profile */
    CU_ASSERT_EQUAL(s3_settings_load("s3://b", &c), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "AWS_ACCESS_KEY_ID is not set"));
    char p[300];
    snprintf(p, sizeof p, "%s/.aws", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/.aws/credentials", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key=sdefault\n\n"
               "# comment\n[work]\n  aws_access_key_id=AKWORK \naws_secret_access_key = s/work+=\naws_session_token = tok\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/.aws/config", dir);
    f = fopen(p, "w");
    fprintf(f, "[default]\nregion = eu-west-3\n[profile work]\nregion=ap-south-1\n[profile cfgonly]\n"
               "aws_access_key_id=AKCFG\naws_secret_access_key=scfg\n");
    fclose(f);
    T_OK(s3_settings_load("s3://b", &c));
    CU_ASSERT_STRING_EQUAL(c.access, "AKDEFAULT");
    CU_ASSERT_STRING_EQUAL(c.secret, "sdefault");
    CU_ASSERT_PTR_NULL(c.token);
    CU_ASSERT_STRING_EQUAL(c.region, "eu-west-3");
    CU_ASSERT_STRING_EQUAL(c.hostport, "s3.eu-west-3.amazonaws.com");
    CU_ASSERT_TRUE(c.aws && c.https && c.virtual_hosted && !c.v2);
    s3_settings_free(&c);
    setenv("AWS_PROFILE", "work", 1);
    T_OK(s3_settings_load("s3://b", &c));
    CU_ASSERT_STRING_EQUAL(c.access, "AKWORK");
    CU_ASSERT_STRING_EQUAL(c.secret, "s/work+=");
    CU_ASSERT_STRING_EQUAL(c.token, "tok");
    CU_ASSERT_STRING_EQUAL(c.region, "ap-south-1");
    s3_settings_free(&c);
    setenv("AWS_PROFILE", "cfgonly", 1);
    setenv("AWS_REGION", "us-west-2", 1);
    T_OK(s3_settings_load("s3://b", &c));
    CU_ASSERT_STRING_EQUAL(c.access, "AKCFG");
    CU_ASSERT_STRING_EQUAL(c.region, "us-west-2");
    s3_settings_free(&c);
    setenv("AWS_PROFILE", "nosuch", 1);
    CU_ASSERT_EQUAL(s3_settings_load("s3://b", &c), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "'nosuch'"));
    /* the environment's keys win over any profile; an endpoint URL; path-style there */
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "senv", 1);
    setenv("AWS_ENDPOINT_URL", "https://minio.example.org:9000/", 1);
    T_OK(s3_settings_load("s3://b", &c));
    CU_ASSERT_STRING_EQUAL(c.access, "AKENV");
    CU_ASSERT_STRING_EQUAL(c.hostport, "minio.example.org:9000");
    CU_ASSERT_STRING_EQUAL(c.host, "minio.example.org");
    CU_ASSERT_EQUAL(c.port, 9000);
    CU_ASSERT_TRUE(c.https && !c.aws && !c.virtual_hosted);
    s3_settings_free(&c);
    setenv("AWS_ENDPOINT_URL", "http://s3.site:80", 1);
    setenv("XFFL_S3_ADDRESSING", "virtual", 1);
    T_OK(s3_settings_load("s3://b", &c));
    CU_ASSERT_STRING_EQUAL(c.hostport, "s3.site"); /* the default port is not in Host */
    CU_ASSERT_TRUE(!c.https && c.virtual_hosted);
    s3_settings_free(&c);
    /* XFFL_S3_ENDPOINT (host:port) wins over AWS_ENDPOINT_URL */
    setenv("XFFL_S3_ENDPOINT", "127.0.0.1:9000", 1);
    setenv("XFFL_S3_HTTPS", "0", 1);
    unsetenv("XFFL_S3_ADDRESSING");
    T_OK(s3_settings_load("s3://b", &c));
    CU_ASSERT_STRING_EQUAL(c.hostport, "127.0.0.1:9000");
    CU_ASSERT_FALSE(c.https);
    s3_settings_free(&c);
    /* bad values: each a usage error naming its variable */
    struct { const char *var, *val; } bad[] = {
        {"XFFL_S3_SIGNATURE", "v3"}, {"XFFL_S3_ADDRESSING", "vhost"}, {"XFFL_S3_HTTPS", "yes"},
        {"XFFL_S3_ENDPOINT", "http://127.0.0.1:9000"}, {"XFFL_S3_ENDPOINT", "127.0.0.1:99999"},
        {"AWS_CA_BUNDLE", "/nonexistent/ca.pem"}, {"AWS_REGION", "eu west"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *old = getenv(bad[i].var) ? strdup(getenv(bad[i].var)) : NULL;
        setenv(bad[i].var, bad[i].val, 1);
        CU_ASSERT_EQUAL(s3_settings_load("s3://b", &c), XFFL_ERR_USAGE);
        CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), bad[i].var));
        if (!strstr(xffl_errmsg(), bad[i].var)) printf("\n%s=%s: %s\n", bad[i].var, bad[i].val, xffl_errmsg());
        if (old) setenv(bad[i].var, old, 1), free(old);
        else unsetenv(bad[i].var);
    }
    unsetenv("XFFL_S3_ENDPOINT");
    setenv("AWS_ENDPOINT_URL", "ftp://x", 1);
    CU_ASSERT_EQUAL(s3_settings_load("s3://b", &c), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "AWS_ENDPOINT_URL"));
    /* one of the pair only */
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9", 1);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    CU_ASSERT_EQUAL(s3_settings_load("s3://b", &c), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "AWS_SECRET_ACCESS_KEY is not set"));
    /* v2 cannot send a session token */
    setenv("AWS_SECRET_ACCESS_KEY", "senv", 1);
    setenv("AWS_SESSION_TOKEN", "tok", 1);
    setenv("XFFL_S3_SIGNATURE", "v2", 1);
    CU_ASSERT_EQUAL(s3_settings_load("s3://b", &c), XFFL_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(xffl_errmsg(), "AWS_SESSION_TOKEN"));
    xffl_rmtree_cleanup(dir);
    for (int i = 0; i < NVARS; i++) {
        if (saved[i]) setenv(vars[i], saved[i], 1), free(saved[i]);
        else unsetenv(vars[i]);
    }
}

void suite_s3conf(void)
{
    CU_pSuite s = CU_add_suite("s3conf", NULL, NULL);
    CU_add_test(s, "S3 XML: listings, cut answers refused, errors, multipart", test_xml);
    CU_add_test(s, "settings: env, profiles in ~/.aws, endpoints, addressing, bad values name their variable", test_settings);
}
