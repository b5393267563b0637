/* Ed25519 keys, signature lines, the key directory and federation.h5 pins. */
#include "common/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/digest.h"
#include "common/log.h"
#include "common/util.h"

enum { PUB_LEN = 32, SIG_LEN = 64 };

struct xffl_signer {
    EVP_PKEY *key;
    char pub[XFFL_SIGN_PUB_HEX];
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Strict lowercase hex of exactly n bytes. */
static int hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t n)
{
    if (hex_len != 2 * n) return 0;
    for (size_t i = 0; i < n; i++) {
        int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
        if (a < 0 || b < 0) return 0;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return 1;
}

int xffl_public_valid(const char *pub_hex)
{
    uint8_t raw[PUB_LEN];
    return pub_hex && hex_decode(pub_hex, strlen(pub_hex), raw, PUB_LEN);
}

void xffl_key_id(const char *pub_hex, char id[XFFL_SIGN_KEYID_HEX])
{
    uint8_t raw[PUB_LEN] = {0}, d[XFFL_SHA256_LEN];
    if (!hex_decode(pub_hex, strlen(pub_hex), raw, PUB_LEN)) memset(raw, 0, sizeof raw);
    xffl_sha256(raw, PUB_LEN, d);
    xffl_hex_encode(d, 8, id);
}

static XFFL_MUST_USE xffl_status raw_public(EVP_PKEY *k, const char *what, char pub_hex[XFFL_SIGN_PUB_HEX])
{
    uint8_t raw[PUB_LEN];
    size_t n = sizeof raw;
    XFFL_RETURN_IF(EVP_PKEY_get_id(k) != EVP_PKEY_ED25519 || EVP_PKEY_get_raw_public_key(k, raw, &n) != 1 ||
                       n != PUB_LEN,
                   XFFL_ERR_INVALID, "%s: not an Ed25519 key", what);
    xffl_hex_encode(raw, PUB_LEN, pub_hex);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status write_pem(const char *path, EVP_PKEY *k, int private_half)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, private_half ? 0600 : 0644);
    if (fd < 0 && errno == EEXIST) return xffl_fail(XFFL_ERR_EXISTS, "%s already exists (keys are never overwritten)", path);
    XFFL_RETURN_IF(fd < 0, XFFL_ERR_IO, "create %s: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return xffl_fail(XFFL_ERR_IO, "fdopen %s: %s", path, strerror(errno));
    }
    int ok = private_half ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(f, k);
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(path);
        return xffl_fail(XFFL_ERR_IO, "write %s failed", path);
    }
    return XFFL_OK;
}

xffl_status xffl_key_generate(const char *priv_path, const char *pub_path, char pub_hex[XFFL_SIGN_PUB_HEX])
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    int ok = c && EVP_PKEY_keygen_init(c) == 1 && EVP_PKEY_keygen(c, &k) == 1;
    EVP_PKEY_CTX_free(c);
    XFFL_RETURN_IF(!ok, XFFL_ERR_INTERNAL, "ed25519 key generation failed");
    char hex[XFFL_SIGN_PUB_HEX];
    xffl_status st = raw_public(k, priv_path, hex);
    if (st == XFFL_OK) st = write_pem(priv_path, k, 1);
    if (st == XFFL_OK && (st = write_pem(pub_path, k, 0)) != XFFL_OK) unlink(priv_path);
    EVP_PKEY_free(k);
    if (st == XFFL_OK && pub_hex) memcpy(pub_hex, hex, XFFL_SIGN_PUB_HEX);
    return st;
}

static XFFL_MUST_USE xffl_status read_pem(const char *path, int private_half, EVP_PKEY **out)
{
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT) return xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such key file", path);
    XFFL_RETURN_IF(!f, XFFL_ERR_IO, "open %s: %s", path, strerror(errno));
    if (private_half) {
        struct stat sb;
        if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077)) {
            fclose(f);
            return xffl_fail(XFFL_ERR_AUTH, "%s: private key is readable by group or others (mode %03o): chmod 600 it",
                             path, (unsigned)(sb.st_mode & 0777));
        }
    }
    *out = private_half ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    XFFL_RETURN_IF(!*out, XFFL_ERR_INVALID, "%s: not a PEM %s key", path, private_half ? "private" : "public");
    return XFFL_OK;
}

xffl_status xffl_signer_load(const char *priv_path, xffl_signer **out)
{
    EVP_PKEY *k = NULL;
    XFFL_FORWARD(read_pem(priv_path, 1, &k));
    xffl_signer *s = calloc(1, sizeof *s);
    xffl_status st = s ? raw_public(k, priv_path, s->pub) : xffl_fail(XFFL_ERR_NOMEM, "signer");
    if (st != XFFL_OK) {
        EVP_PKEY_free(k);
        free(s);
        return st;
    }
    s->key = k;
    *out = s;
    return XFFL_OK;
}

void xffl_signer_free(xffl_signer *s)
{
    if (!s) return;
    EVP_PKEY_free(s->key);
    free(s);
}

void xffl_signer_public(const xffl_signer *s, char pub_hex[XFFL_SIGN_PUB_HEX]) { memcpy(pub_hex, s->pub, XFFL_SIGN_PUB_HEX); }

xffl_status xffl_public_load(const char *pub_path, char pub_hex[XFFL_SIGN_PUB_HEX])
{
    EVP_PKEY *k = NULL;
    XFFL_FORWARD(read_pem(pub_path, 0, &k));
    xffl_status st = raw_public(k, pub_path, pub_hex);
    EVP_PKEY_free(k);
    return st;
}

xffl_status xffl_sign_line(const xffl_signer *s, const void *data, size_t len, char line[XFFL_SIGN_LINE_MAX])
{
    uint8_t sig[SIG_LEN];
    size_t n = sizeof sig;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, s->key) == 1 &&
             EVP_DigestSign(c, sig, &n, data, len) == 1 && n == SIG_LEN;
    EVP_MD_CTX_free(c);
    XFFL_RETURN_IF(!ok, XFFL_ERR_INTERNAL, "ed25519 signing failed");
    char id[XFFL_SIGN_KEYID_HEX], hex[2 * SIG_LEN + 1];
    xffl_key_id(s->pub, id);
    xffl_hex_encode(sig, SIG_LEN, hex);
    snprintf(line, XFFL_SIGN_LINE_MAX, XFFL_SIGN_PREFIX "%s %s\n", id, hex);
    return XFFL_OK;
}

xffl_status xffl_sign_append(const xffl_signer *s, char **text, size_t *len)
{
    if (!s) return XFFL_OK;
    char line[XFFL_SIGN_LINE_MAX];
    XFFL_FORWARD(xffl_sign_line(s, *text, *len, line));
    size_t ll = strlen(line);
    char *t = realloc(*text, *len + ll + 1);
    XFFL_RETURN_IF(!t, XFFL_ERR_NOMEM, "signing");
    memcpy(t + *len, line, ll + 1);
    *text = t;
    *len += ll;
    return XFFL_OK;
}

size_t xffl_signed_body_len(const char *text, size_t len)
{
    if (len < 2 || text[len - 1] != '\n') return len;
    size_t start = len - 1;
    while (start > 0 && text[start - 1] != '\n') start--;
    size_t pl = strlen(XFFL_SIGN_PREFIX);
    if (len - start < pl || memcmp(text + start, XFFL_SIGN_PREFIX, pl) != 0) return len;
    return start;
}

xffl_status xffl_sign_verify(const char *pub_hex, const char *text, size_t len, const char *what)
{
    char want[XFFL_SIGN_KEYID_HEX];
    xffl_key_id(pub_hex, want);
    size_t body = xffl_signed_body_len(text, len);
    XFFL_RETURN_IF(body == len, XFFL_ERR_CORRUPT, "%s: no signature (expected one by key %s)", what, want);
    const char *l = text + body + strlen(XFFL_SIGN_PREFIX);
    size_t ll = len - 1 - (size_t)(l - text);
    uint8_t sig[SIG_LEN], raw[PUB_LEN];
    XFFL_RETURN_IF(ll != 16 + 1 + 2 * SIG_LEN || l[16] != ' ' || !hex_decode(l + 17, 2 * SIG_LEN, sig, SIG_LEN),
                   XFFL_ERR_CORRUPT, "%s: malformed signature line (expected one by key %s)", what, want);
    XFFL_RETURN_IF(memcmp(l, want, 16) != 0, XFFL_ERR_CORRUPT, "%s: signed by key %.16s, not by key %s", what, l, want);
    XFFL_RETURN_IF(!hex_decode(pub_hex, strlen(pub_hex), raw, PUB_LEN), XFFL_ERR_INVALID,
                   "%s: public key %s is not 64 hex digits", what, want);
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, PUB_LEN);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = k && c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(c, sig, SIG_LEN, (const unsigned char *)text, body) == 1;
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    XFFL_RETURN_IF(!ok, XFFL_ERR_CORRUPT, "%s: signature by key %s does not verify", what, want);
    return XFFL_OK;
}

xffl_status xffl_keys_dir_default(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(out, cap, "%s/xffl/keys", xdg);
    else if (home && home[0]) n = snprintf(out, cap, "%s/.config/xffl/keys", home);
    else {
        struct passwd *pw = getpwuid(getuid());
        if (pw && pw->pw_dir && pw->pw_dir[0] == '/') n = snprintf(out, cap, "%s/.config/xffl/keys", pw->pw_dir);
        else {
            n = snprintf(out, cap, ".xffl/keys");
            xffl_log(XFFL_LOG_INFO, "no HOME, XDG_CONFIG_HOME or passwd home: key directory %s in the working directory",
                     out);
        }
    }
    XFFL_RETURN_IF(n < 0 || (size_t)n >= cap, XFFL_ERR_USAGE, "key directory path too long");
    return XFFL_OK;
}

xffl_status xffl_keys_dir_make(const char *dir)
{
    XFFL_FORWARD(xffl_mkdirs(dir));
    struct stat sb;
    XFFL_RETURN_IF(stat(dir, &sb) != 0, XFFL_ERR_IO, "stat %s: %s", dir, strerror(errno));
    if ((sb.st_mode & 077) && chmod(dir, 0700) != 0)
        return xffl_fail(XFFL_ERR_IO, "chmod 700 %s: %s", dir, strerror(errno));
    return XFFL_OK;
}

xffl_status xffl_key_path(const char *dir, const char *name, const char *ext, char *out, size_t cap)
{
    XFFL_RETURN_IF(!name[0] || name[0] == '.' || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                             "0123456789_.-") != strlen(name),
                   XFFL_ERR_INVALID, "key name '%s' is not [A-Za-z0-9_.-]", name);
    int n = snprintf(out, cap, "%s/%s.%s", dir, name, ext);
    XFFL_RETURN_IF(n < 0 || (size_t)n >= cap, XFFL_ERR_USAGE, "key path too long: %s/%s.%s", dir, name, ext);
    return XFFL_OK;
}

xffl_status xffl_pin_path(const char *dir, const char *url, char *out, size_t cap)
{
    char h[XFFL_SHA256_HEX];
    xffl_sha256_hex(url, strlen(url), h);
    int n = snprintf(out, cap, "%s/pins/%.16s", dir, h);
    XFFL_RETURN_IF(n < 0 || (size_t)n >= cap, XFFL_ERR_USAGE, "pin path too long: %s", dir);
    return XFFL_OK;
}

xffl_status xffl_pin_check(const char *pin_path, const char *fed_sha, int *pinned)
{
    *pinned = 0;
    void *data = NULL;
    size_t len = 0;
    xffl_status st = xffl_read_file(pin_path, &data, &len);
    if (st == XFFL_OK) {
        int same = len == strlen(fed_sha) + 1 && memcmp(data, fed_sha, len - 1) == 0 && ((char *)data)[len - 1] == '\n';
        char had[XFFL_SHA256_HEX] = "";
        snprintf(had, sizeof had, "%.*s", (int)(len < 64 ? len : 64), (const char *)data);
        free(data);
        XFFL_RETURN_IF(!same, XFFL_ERR_CORRUPT,
                       "federation.h5 changed: sha256 %s, but %s pinned %s on first use (a new federation needs a "
                       "new store, or remove the pin if you trust it)",
                       fed_sha, pin_path, had);
        return XFFL_OK;
    }
    if (access(pin_path, F_OK) == 0) return st;
    xffl_errmsg_clear();
    XFFL_FORWARD(xffl_pin_set(pin_path, fed_sha));
    *pinned = 1;
    return XFFL_OK;
}

xffl_status xffl_pin_set(const char *pin_path, const char *fed_sha)
{
    char dir[XFFL_KEYS_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", pin_path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        XFFL_FORWARD(xffl_keys_dir_make(dir));
    }
    char line[XFFL_SHA256_HEX + 1];
    int n = snprintf(line, sizeof line, "%s\n", fed_sha);
    return xffl_write_file_atomic(pin_path, line, (size_t)n);
}
