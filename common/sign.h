/* Ed25519 keys and signed text (OpenSSL libcrypto), docs/design.md "Trust".
 *
 * A key pair is two PEM files: <name>.key (PKCS#8 private key, mode 0600, refused when
 * group or world may read it) and <name>.pub (SubjectPublicKeyInfo). A public key is
 * named everywhere else by its raw 32 bytes in hex (64 digits, what federation.h5
 * records) and, in messages and signature lines, by its key id: the first 16 hex
 * digits of the SHA-256 of those 32 bytes.
 *
 * A signed text is any text followed by one last line
 *     signature=<key id> <128 hex digits: the Ed25519 signature of every byte before it>\n
 * Ed25519 is deterministic: the same key over the same bytes gives the same line, so a
 * signed manifest's bytes (and its content name, which covers the line) are stable. */
#ifndef XFFL_SIGN_H
#define XFFL_SIGN_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

#define XFFL_SIGN_PUB_HEX 65   /* 64 hex digits + NUL */
#define XFFL_SIGN_KEYID_HEX 17 /* 16 hex digits + NUL */
#define XFFL_SIGN_PREFIX "signature="
/* "signature=" + key id + ' ' + 128 hex + '\n' + NUL */
#define XFFL_SIGN_LINE_MAX (10 + 16 + 1 + 128 + 1 + 1)
#define XFFL_KEYS_PATH_MAX 4096

typedef struct xffl_signer xffl_signer; /* a loaded private key */

/* Writes a fresh pair: priv_path (0600, created exclusively: EXISTS when present) and
 * pub_path (0644). pub_hex (may be NULL) receives the public key. */
XFFL_MUST_USE xffl_status xffl_key_generate(const char *priv_path, const char *pub_path, char pub_hex[XFFL_SIGN_PUB_HEX]);
/* Loads a private key file. AUTH naming the file when group or world may read it
 * (chmod 600 it), NOT_FOUND when absent, INVALID when it is not an Ed25519 key. */
XFFL_MUST_USE xffl_status xffl_signer_load(const char *priv_path, xffl_signer **out);
void xffl_signer_free(xffl_signer *s);
/* The loaded key's public half, hex. */
void xffl_signer_public(const xffl_signer *s, char pub_hex[XFFL_SIGN_PUB_HEX]);
/* Reads a public key PEM file into hex. INVALID naming the file when it is not Ed25519. */
XFFL_MUST_USE xffl_status xffl_public_load(const char *pub_path, char pub_hex[XFFL_SIGN_PUB_HEX]);
/* 1 when s is 64 lowercase hex digits. */
int xffl_public_valid(const char *pub_hex);
/* Key id of a public key (hex): first 16 hex digits of SHA-256 of its 32 bytes. */
void xffl_key_id(const char *pub_hex, char id[XFFL_SIGN_KEYID_HEX]);

/* The signature line over data[0..len) (ends with '\n'). */
XFFL_MUST_USE xffl_status xffl_sign_line(const xffl_signer *s, const void *data, size_t len,
                                         char line[XFFL_SIGN_LINE_MAX]);
/* Appends the signature line over (*text)[0..*len) to the malloc'd *text (realloc'd,
 * kept NUL-terminated); signer NULL leaves it as it is. */
XFFL_MUST_USE xffl_status xffl_sign_append(const xffl_signer *s, char **text, size_t *len);
/* Where text's last line starts when it is a signature line, else len (unsigned). */
size_t xffl_signed_body_len(const char *text, size_t len);
/* Checks that text ends in a signature line by pub_hex over everything before it.
 * CORRUPT naming what (the manifest's key) and the expected key id when the line is
 * missing ("no signature"), malformed, by another key, or does not verify. */
XFFL_MUST_USE xffl_status xffl_sign_verify(const char *pub_hex, const char *text, size_t len, const char *what);

/* Key directory (docs/design.md "Trust"): $XDG_CONFIG_HOME/xffl/keys, else
 * $HOME/.config/xffl/keys, else the passwd entry's home, else ./.xffl/keys (one
 * log line says so). Not created here. */
XFFL_MUST_USE xffl_status xffl_keys_dir_default(char *out, size_t cap);
/* Creates dir (and its parents) with mode 0700; an existing dir that group or world
 * may enter is tightened to 0700. */
XFFL_MUST_USE xffl_status xffl_keys_dir_make(const char *dir);
/* "<dir>/<name>.key" or ".pub" (ext without the dot). INVALID when name is not a
 * facility-like name ([A-Za-z0-9_.-], not starting with '.') or the path does not fit. */
XFFL_MUST_USE xffl_status xffl_key_path(const char *dir, const char *name, const char *ext, char *out, size_t cap);

/* Trust on first use of a federation.h5 digest for one store: pin_path absent →
 * written with fed_sha (mode 0600) and *pinned = 1; present → must hold fed_sha,
 * else CORRUPT naming federation.h5, the pin file and both digests. */
XFFL_MUST_USE xffl_status xffl_pin_check(const char *pin_path, const char *fed_sha, int *pinned);
/* Writes the pin unconditionally (init: it made the federation this digest names). */
XFFL_MUST_USE xffl_status xffl_pin_set(const char *pin_path, const char *fed_sha);
/* "<dir>/pins/<first 16 hex of SHA-256 of url>": the pin file for a store URL. */
XFFL_MUST_USE xffl_status xffl_pin_path(const char *dir, const char *url, char *out, size_t cap);

#endif
