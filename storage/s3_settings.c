/* See s3_settings.h. */
#include "storage/s3_settings.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static void wipe_free(char *s)
{
    if (s) OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void s3_settings_free(s3_settings *s)
{
    free(s->host);
    free(s->hostport);
    free(s->region);
    free(s->access);
    wipe_free(s->secret);
    wipe_free(s->token);
    free(s->ca_bundle);
    free(s->creds_from);
    memset(s, 0, sizeof *s);
}

/* host[:port] into s->host/port/hostport; what names the variable for messages. */
static XFFL_MUST_USE xffl_status parse_hostport(const char *url, const char *what, const char *hp, size_t n,
                                                s3_settings *s)
{
    XFFL_RETURN_IF(n == 0 || n > 255, XFFL_ERR_USAGE, "store %s: %s has no host", url, what);
    const char *colon = memrchr(hp, ':', n);
    const char *bracket = memchr(hp, ']', n);
    if (colon && bracket && colon < bracket) colon = NULL; /* [::1] */
    size_t hl = colon ? (size_t)(colon - hp) : n;
    if (colon) {
        char pb[8];
        size_t pl = n - hl - 1;
        XFFL_RETURN_IF(pl == 0 || pl > 5, XFFL_ERR_USAGE, "store %s: %s has a bad port", url, what);
        memcpy(pb, colon + 1, pl);
        pb[pl] = 0;
        XFFL_RETURN_IF(strspn(pb, "0123456789") != pl || atoi(pb) < 1 || atoi(pb) > 65535, XFFL_ERR_USAGE,
                       "store %s: %s has a bad port '%s'", url, what, pb);
        s->port = atoi(pb);
    }
    XFFL_RETURN_IF(hl == 0, XFFL_ERR_USAGE, "store %s: %s has no host", url, what);
    for (size_t i = 0; i < hl; i++)
        XFFL_RETURN_IF(!(isalnum((unsigned char)hp[i]) || strchr("-._[]:", hp[i])), XFFL_ERR_USAGE,
                       "store %s: %s: bad character in host '%.*s'", url, what, (int)hl, hp);
    s->host = strndup(hp, hl);
    /* the Host header carries the port only when it is not the scheme's default */
    int dflt = s->https ? 443 : 80;
    if (s->port && s->port != dflt) s->hostport = strndup(hp, n);
    else s->hostport = strndup(hp, hl);
    XFFL_RETURN_IF(!s->host || !s->hostport, XFFL_ERR_NOMEM, "store %s", url);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status load_endpoint(const char *url, s3_settings *s)
{
    const char *xe = env("XFFL_S3_ENDPOINT"), *https = env("XFFL_S3_HTTPS"), *ae = env("AWS_ENDPOINT_URL");
    if (xe) {
        XFFL_RETURN_IF(strchr(xe, '/') || strchr(xe, ' '), XFFL_ERR_USAGE,
                       "store %s: XFFL_S3_ENDPOINT must be host:port, not '%s' (XFFL_S3_HTTPS picks http or https; "
                       "AWS_ENDPOINT_URL takes a URL)", url, xe);
        s->https = 1;
        if (https) {
            XFFL_RETURN_IF(strcmp(https, "0") && strcmp(https, "1"), XFFL_ERR_USAGE,
                           "store %s: XFFL_S3_HTTPS must be 0 or 1, not '%s'", url, https);
            s->https = https[0] == '1';
        }
        return parse_hostport(url, "XFFL_S3_ENDPOINT", xe, strlen(xe), s);
    }
    if (ae) {
        if (!strncmp(ae, "https://", 8)) s->https = 1;
        else if (!strncmp(ae, "http://", 7)) s->https = 0;
        else return xffl_fail(XFFL_ERR_USAGE, "store %s: AWS_ENDPOINT_URL must start with http:// or https://, not '%s'",
                              url, ae);
        const char *h = ae + (s->https ? 8 : 7);
        size_t n = strcspn(h, "/?#");
        XFFL_RETURN_IF(h[n] && strcmp(h + n, "/"), XFFL_ERR_USAGE,
                       "store %s: AWS_ENDPOINT_URL '%s' has a path; give scheme://host[:port] (the bucket comes from the URL)",
                       url, ae);
        return parse_hostport(url, "AWS_ENDPOINT_URL", h, n, s);
    }
    s->aws = 1;
    s->https = 1;
    return XFFL_OK;
}

/* INI lookup: value of key in [section] of path, malloc'd into *out (NULL: none). */
static XFFL_MUST_USE xffl_status ini_get(const char *path, const char *section, const char *key, char **out)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return XFFL_OK;
    char line[4096];
    int in = 0;
    xffl_status st = XFFL_OK;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        size_t n = strlen(p);
        while (n && isspace((unsigned char)p[n - 1])) p[--n] = 0;
        if (!*p || *p == '#' || *p == ';') continue;
        if (*p == '[') {
            char *e = strchr(p, ']');
            if (!e) { in = 0; continue; }
            *e = 0;
            char *name = p + 1;
            while (isspace((unsigned char)*name)) name++;
            size_t nl = strlen(name);
            while (nl && isspace((unsigned char)name[nl - 1])) name[--nl] = 0;
            in = !strcmp(name, section);
            continue;
        }
        if (!in) continue;
        char *eq = strchr(p, '=');
        if (!eq) continue;
        char *k = p, *ke = eq;
        while (ke > k && isspace((unsigned char)ke[-1])) ke--;
        *ke = 0;
        if (strcmp(k, key)) continue;
        char *v = eq + 1;
        while (isspace((unsigned char)*v)) v++;
        free(*out);
        *out = strdup(v);
        if (!*out) { st = xffl_fail(XFFL_ERR_NOMEM, "reading %s", path); break; }
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    return st;
}

static char *home_file(const char *var, const char *name)
{
    const char *v = env(var);
    if (v) return strdup(v);
    const char *home = env("HOME");
    char *p = NULL;
    if (home && asprintf(&p, "%s/.aws/%s", home, name) < 0) p = NULL;
    return p;
}

/* A profile's key: the credentials file's [name] first, then the config file's
 * [profile name] ([default] for the default profile). *from: the file it came from. */
static XFFL_MUST_USE xffl_status profile_get(const char *cred_file, const char *conf_file, const char *profile,
                                             const char *key, char **out, const char **from)
{
    *from = NULL;
    if (cred_file) {
        XFFL_FORWARD(ini_get(cred_file, profile, key, out));
        if (*out) { *from = cred_file; return XFFL_OK; }
    }
    if (conf_file) {
        char sec[300];
        if (!strcmp(profile, "default")) snprintf(sec, sizeof sec, "default");
        else snprintf(sec, sizeof sec, "profile %s", profile);
        XFFL_FORWARD(ini_get(conf_file, sec, key, out));
        if (*out) *from = conf_file;
    }
    return XFFL_OK;
}

xffl_status s3_settings_load(const char *url, s3_settings *s)
{
    memset(s, 0, sizeof *s);
    xffl_status st = XFFL_OK;
    char *cred_file = NULL, *conf_file = NULL;
    const char *sig = env("XFFL_S3_SIGNATURE");
    if (sig && strcmp(sig, "v4") && strcmp(sig, "v2")) {
        st = xffl_fail(XFFL_ERR_USAGE, "store %s: XFFL_S3_SIGNATURE must be v4 or v2, not '%s'", url, sig);
        goto out;
    }
    s->v2 = sig && !strcmp(sig, "v2");
    XFFL_CHECK_GOTO(st, load_endpoint(url, s), out);
    if (s->aws && s->v2) {
        st = xffl_fail(XFFL_ERR_USAGE, "store %s: XFFL_S3_ENDPOINT is not set (host:port of the S3 service; "
                                       "XFFL_S3_SIGNATURE=v2 does not default to AWS)", url);
        goto out;
    }
    const char *profile = env("AWS_PROFILE");
    if (!profile) profile = "default";
    cred_file = home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    conf_file = home_file("AWS_CONFIG_FILE", "config");
    const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY"), *from = NULL;
    if (ak || sk) {
        /* the environment's pair, as the AWS tools take it: both or neither */
        if (!ak || !sk) {
            st = xffl_fail(XFFL_ERR_USAGE, "store %s: %s is not set (%s), though %s is", url,
                           ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID", ak ? "the S3 secret key" : "the S3 access key",
                           ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY");
            goto out;
        }
        s->access = strdup(ak);
        s->secret = strdup(sk);
        s->token = env("AWS_SESSION_TOKEN") ? strdup(env("AWS_SESSION_TOKEN")) : NULL;
        s->creds_from = strdup("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
        if (!s->access || !s->secret || (env("AWS_SESSION_TOKEN") && !s->token) || !s->creds_from) {
            st = xffl_fail(XFFL_ERR_NOMEM, "store %s", url);
            goto out;
        }
    } else {
        const char *f2 = NULL;
        XFFL_CHECK_GOTO(st, profile_get(cred_file, conf_file, profile, "aws_access_key_id", &s->access, &from), out);
        XFFL_CHECK_GOTO(st, profile_get(cred_file, conf_file, profile, "aws_secret_access_key", &s->secret, &f2), out);
        if (!s->access || !s->secret) {
            st = xffl_fail(XFFL_ERR_USAGE,
                           "store %s: %s is not set (the S3 %s key), and profile '%s' (AWS_PROFILE) in %s or %s has no %s",
                           url, s->access ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID", s->access ? "secret" : "access",
                           profile, cred_file ? cred_file : "~/.aws/credentials", conf_file ? conf_file : "~/.aws/config",
                           s->access ? "aws_secret_access_key" : "aws_access_key_id");
            goto out;
        }
        XFFL_CHECK_GOTO(st, profile_get(cred_file, conf_file, profile, "aws_session_token", &s->token, &f2), out);
        if (asprintf(&s->creds_from, "profile '%s' in %s", profile, from) < 0) s->creds_from = NULL;
        if (!s->creds_from) { st = xffl_fail(XFFL_ERR_NOMEM, "store %s", url); goto out; }
    }
    if (s->token && !*s->token) { free(s->token); s->token = NULL; }
    const char *region = env("AWS_REGION");
    if (!region) region = env("AWS_DEFAULT_REGION");
    if (region) s->region = strdup(region);
    else {
        XFFL_CHECK_GOTO(st, profile_get(NULL, conf_file, profile, "region", &s->region, &from), out);
        if (!s->region) s->region = strdup("us-east-1");
    }
    if (!s->region) { st = xffl_fail(XFFL_ERR_NOMEM, "store %s", url); goto out; }
    for (const char *c = s->region; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-')) {
            st = xffl_fail(XFFL_ERR_USAGE, "store %s: bad region '%s' (AWS_REGION)", url, s->region);
            goto out;
        }
    if (s->aws) {
        if (asprintf(&s->host, "s3.%s.amazonaws.com", s->region) < 0) s->host = NULL;
        s->hostport = s->host ? strdup(s->host) : NULL;
        if (!s->hostport) { st = xffl_fail(XFFL_ERR_NOMEM, "store %s", url); goto out; }
    }
    const char *addr = env("XFFL_S3_ADDRESSING");
    if (addr && strcmp(addr, "path") && strcmp(addr, "virtual")) {
        st = xffl_fail(XFFL_ERR_USAGE, "store %s: XFFL_S3_ADDRESSING must be path or virtual, not '%s'", url, addr);
        goto out;
    }
    s->virtual_hosted = addr ? !strcmp(addr, "virtual") : s->aws;
    if (s->v2 && s->token) {
        st = xffl_fail(XFFL_ERR_USAGE, "store %s: AWS_SESSION_TOKEN needs XFFL_S3_SIGNATURE=v4 (libs3 2.0 cannot send it)", url);
        goto out;
    }
    const char *ca = env("AWS_CA_BUNDLE");
    if (ca) {
        if (access(ca, R_OK)) {
            st = xffl_fail(XFFL_ERR_USAGE, "store %s: AWS_CA_BUNDLE '%s' cannot be read", url, ca);
            goto out;
        }
        s->ca_bundle = strdup(ca);
        if (!s->ca_bundle) { st = xffl_fail(XFFL_ERR_NOMEM, "store %s", url); goto out; }
    }
out:
    free(cred_file);
    free(conf_file);
    if (st != XFFL_OK) s3_settings_free(s);
    return st;
}
