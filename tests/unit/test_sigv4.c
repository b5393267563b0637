/* Signature V4 (storage/sigv4.c) against AWS's published example and against botocore,
 * AWS's own implementation, run at test time (Debian's python3-botocore) on requests
 * whose query needs sorting and encoding, with bodies, a session token, other regions. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/digest.h"
#include "storage/sigv4.h"
#include "tests/unit/unit.h"

/* docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "GET Object" */
static void test_aws_example(void)
{
    sigv4_key k = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL, "us-east-1", "s3"};
    sigv4_pair range = {"range", "bytes=0-9"};
    sigv4_out o;
    struct tm tm = {.tm_year = 113, .tm_mon = 4, .tm_mday = 24};
    T_OK(sigv4_sign(&k, "GET", "examplebucket.s3.amazonaws.com", "/test.txt", NULL, 0, &range, 1, SIGV4_EMPTY_SHA256,
                    timegm(&tm), &o));
    CU_ASSERT_STRING_EQUAL(o.amz_date, "20130524T000000Z");
    CU_ASSERT_STRING_EQUAL(o.authorization,
                           "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                           "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                           "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    sigv4_out_free(&o);
}

static void test_encode(void)
{
    char *e = sigv4_uri_encode("a b/c+d=e~f_g.h-i\xc3\xbc*", 1);
    CU_ASSERT_STRING_EQUAL(e, "a%20b/c%2Bd%3De~f_g.h-i%C3%BC%2A");
    free(e);
    e = sigv4_uri_encode("x/y", 0);
    CU_ASSERT_STRING_EQUAL(e, "x%2Fy");
    free(e);
}

/* botocore's S3SigV4Auth on the same request (at the same time); it gets the unencoded
 * query as params (it sorts and encodes them itself) and the path encoded by Python's
 * urllib. Inputs go through a JSON argument. */
static const char *py =
    "import sys, json, datetime, urllib.parse\n"
    "import botocore.auth, botocore.credentials, botocore.awsrequest\n"
    "a = json.loads(sys.argv[1])\n"
    "class Fixed(datetime.datetime):\n"
    "    @classmethod\n"
    "    def utcnow(cls): return cls.utcfromtimestamp(a['t'])\n"
    "botocore.auth.datetime.datetime = Fixed\n"
    "creds = botocore.credentials.Credentials(a['access'], a['secret'], a['token'] or None)\n"
    "url = a['scheme'] + '://' + a['host'] + urllib.parse.quote(a['path'], safe='/~')\n"
    "r = botocore.awsrequest.AWSRequest(method=a['method'], url=url, params=dict(a['query']), data=a['body'].encode())\n"
    "botocore.auth.S3SigV4Auth(creds, 's3', a['region']).add_auth(r)\n"
    "print(r.headers['Authorization'])\n";

static int have_botocore(void)
{
    return system("/usr/bin/python3 -c 'import botocore.auth' >/dev/null 2>&1") == 0;
}

/* JSON string literal of s (ASCII plus UTF-8 bytes passed through) */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

typedef struct {
    const char *method, *host, *path, *body, *token, *region;
    sigv4_pair q[4];
    size_t nq;
} case_t;

static void check_case(const case_t *c, time_t t)
{
    sigv4_key k = {"AKIDEXAMPLE", "wJalr/XUtnFEMI+K7MDENG=bPxRfiCY", c->token, c->region, "s3"};
    char hash[XFFL_SHA256_HEX];
    xffl_sha256_hex(c->body, strlen(c->body), hash);
    sigv4_out o;
    T_OK(sigv4_sign(&k, c->method, c->host, c->path, c->q, c->nq, NULL, 0, hash, t, &o));
    char *arg = NULL;
    size_t alen = 0;
    FILE *f = open_memstream(&arg, &alen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "{\"t\": %lld, \"access\": \"%s\", \"secret\": \"%s\", \"token\": ", (long long)t, k.access, k.secret);
    json_str(f, c->token ? c->token : "");
    fprintf(f, ", \"region\": \"%s\", \"scheme\": \"http\", \"host\": \"%s\", \"method\": \"%s\", \"path\": ",
            c->region, c->host, c->method);
    json_str(f, c->path);
    fprintf(f, ", \"body\": ");
    json_str(f, c->body);
    fprintf(f, ", \"query\": [");
    for (size_t i = 0; i < c->nq; i++) {
        fprintf(f, "%s[", i ? ", " : "");
        json_str(f, c->q[i].name);
        fprintf(f, ", ");
        json_str(f, c->q[i].value);
        fprintf(f, "]");
    }
    fprintf(f, "]}");
    fclose(f);
    char *argv[] = {"/usr/bin/python3", "-c", (char *)py, arg, NULL};
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    char want[1024] = "";
    FILE *r = fdopen(fds[0], "r");
    if (!fgets(want, sizeof want, r)) want[0] = 0;
    fclose(r);
    int wst = 0;
    waitpid(pid, &wst, 0);
    want[strcspn(want, "\n")] = 0;
    CU_ASSERT_EQUAL(wst, 0);
    if (strcmp(want, o.authorization))
        printf("\n%s %s: botocore  %s\n      ours      %s\n", c->method, c->path, want, o.authorization);
    CU_ASSERT_STRING_EQUAL(o.authorization, want);
    free(arg);
    sigv4_out_free(&o);
}

static void test_botocore(void)
{
    if (!have_botocore()) {
        printf("SKIP: /usr/bin/python3 has no botocore (apt-get install python3-botocore) ");
        return;
    }
    const case_t cases[] = {
        /* listing: parameters out of order, values needing encoding */
        {"GET", "127.0.0.1:9000", "/xffl", "", NULL, "us-east-1",
         {{"prefix", "fed/a b+c/\xc3\xbc"}, {"list-type", "2"}, {"continuation-token", "1/x+y=="}, {"max-keys", "1000"}},
         4},
        /* a PUT with a body, a session token, another region, a key needing encoding */
        {"PUT", "s3.example.org:8443", "/b/versions/v000001/part 0(1)*.h5", "hello, world\n",
         "FQoGZXIvYXdzE//////////+token=", "eu-west-3", {{0}}, 0},
        /* multipart: initiate (bare "uploads"), a part, complete with an XML body */
        {"POST", "127.0.0.1:9000", "/xffl/big.bin", "", NULL, "us-east-1", {{"uploads", ""}}, 1},
        {"PUT", "127.0.0.1:9000", "/xffl/big.bin", "part three bytes", "tok", "us-east-1",
         {{"uploadId", "2~Ab/cd+ef=="}, {"partNumber", "3"}}, 2},
        {"POST", "127.0.0.1:9000", "/xffl/big.bin", "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
         "<ETag>\\\"abc\\\"</ETag></Part></CompleteMultipartUpload>", NULL, "us-east-1", {{"uploadId", "u1"}}, 1},
        /* virtual-hosted addressing, default port */
        {"DELETE", "bucket.s3.eu-central-1.amazonaws.com", "/a/b", "", NULL, "eu-central-1", {{0}}, 0},
    };
    time_t t = 1796130000; /* 2026-12-01 */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i], t + (time_t)i * 3607);
}

void suite_sigv4(void)
{
    CU_pSuite s = CU_add_suite("sigv4", NULL, NULL);
    CU_add_test(s, "AWS's published GET Object example", test_aws_example);
    CU_add_test(s, "S3 URI encoding", test_encode);
    CU_add_test(s, "same Authorization as botocore: sorted/encoded query, bodies, token, regions", test_botocore);
}
