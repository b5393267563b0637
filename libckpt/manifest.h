/* Text manifests (docs/design.md "Manifests"): INDEX of a version, COMMIT of a delta.
 *
 *   key=value                       header lines first, in the order they were set
 *   contributor <facility> <key>    one per delta a version used (INDEX)
 *   object <name> <bytes> <sha256>  one per stored object the manifest covers
 *   tensor <name> <dtype> <shape> <sha256>
 *                                   dtype as ckpt_dtype_name ("float32"), shape as
 *                                   "4096x11008" (one dim: "4096"), sha256 of the
 *                                   uncompressed values
 * Every line ends with '\n' (a missing final newline means a truncated manifest).
 * Keys are [a-z0-9_.-]+; values any bytes except newline; names and keys no spaces.
 * Formatting is canonical: format(parse(text)) == text for every valid text, so a
 * manifest's SHA-256 (its content name) is stable. */
#ifndef XFFL_CKPT_MANIFEST_H
#define XFFL_CKPT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"
#include "common/digest.h"
#include "libckpt/h5part.h"

typedef struct {
    char *key;
    char *value;
} ckpt_manifest_header;

typedef struct {
    char *facility;
    char *key; /* the COMMIT key it used, relative to the store root */
} ckpt_manifest_contributor;

typedef struct {
    char *name; /* key relative to the store root, or to the manifest's folder: the caller's convention */
    uint64_t bytes;
    char sha256[XFFL_SHA256_HEX];
} ckpt_manifest_object;

typedef struct {
    char *name;
    ckpt_dtype dtype;
    int ndim;
    int64_t shape[CKPT_MAX_DIMS];
    char sha256[XFFL_SHA256_HEX];
} ckpt_manifest_tensor;

/* Plain struct: read the arrays directly; change it only through the functions. */
typedef struct {
    ckpt_manifest_header *headers;
    int n_headers;
    ckpt_manifest_contributor *contributors;
    int n_contributors;
    ckpt_manifest_object *objects;
    int n_objects;
    ckpt_manifest_tensor *tensors;
    int n_tensors;
} ckpt_manifest;

/* Caller owns *out; free with ckpt_manifest_free (accepts NULL). */
XFFL_MUST_USE xffl_status ckpt_manifest_create(ckpt_manifest **out);
void ckpt_manifest_free(ckpt_manifest *m);

/* Sets a header (replaces the value if key exists, else appends). INVALID naming
 * the key if key or value is not allowed. */
XFFL_MUST_USE xffl_status ckpt_manifest_set(ckpt_manifest *m, const char *key, const char *value);
XFFL_MUST_USE xffl_status ckpt_manifest_setf(ckpt_manifest *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
XFFL_MUST_USE xffl_status ckpt_manifest_set_int(ckpt_manifest *m, const char *key, int64_t value);
/* Header value or NULL (owned by m). */
const char *ckpt_manifest_get(const ckpt_manifest *m, const char *key);
/* Required headers: NOT_FOUND / INVALID naming `what` (e.g. the manifest's key) and the key. */
XFFL_MUST_USE xffl_status ckpt_manifest_require(const ckpt_manifest *m, const char *what, const char *key, const char **value);
/* An integer header in canonical form only ("0", "42", "-1": no sign '+', no leading
 * zeros, no spaces or trailing bytes, within int64): "2AAAA" or "0042" is INVALID. */
XFFL_MUST_USE xffl_status ckpt_manifest_require_int(const ckpt_manifest *m, const char *what, const char *key, int64_t *value);
/* 1 when text is an integer in that canonical form (its value in *value), else 0. */
int ckpt_manifest_int_parse(const char *text, int64_t *value);

XFFL_MUST_USE xffl_status ckpt_manifest_add_contributor(ckpt_manifest *m, const char *facility, const char *key);
XFFL_MUST_USE xffl_status ckpt_manifest_add_object(ckpt_manifest *m, const char *name, uint64_t bytes, const char *sha256_hex);
XFFL_MUST_USE xffl_status ckpt_manifest_add_tensor(ckpt_manifest *m, const char *name, ckpt_dtype dtype, int ndim,
                                     const int64_t *shape, const char *sha256_hex);
/* Index of the tensor / object named name, or -1. */
int ckpt_manifest_find_tensor(const ckpt_manifest *m, const char *name);
int ckpt_manifest_find_object(const ckpt_manifest *m, const char *name);

/* Canonical text into a malloc'd NUL-terminated buffer (caller frees); len excludes NUL. */
XFFL_MUST_USE xffl_status ckpt_manifest_format(const ckpt_manifest *m, char **text, size_t *len);
/* Strict parse of text[0..len). INVALID naming `what` (e.g. "versions/v000003/INDEX-…")
 * and the line number on any malformed line, a repeated header, or a second line for
 * the same contributor (facility or key), object or tensor. Caller owns *out. */
XFFL_MUST_USE xffl_status ckpt_manifest_parse(const char *text, size_t len, const char *what, ckpt_manifest **out);

/* Content name "<stem>-<first 12 hex of sha256>" (e.g. "INDEX-3f9a0c12d4e1",
 * "part-000-8b1e44a0c9d2.h5" with ext ".h5", else ext NULL or ""). Writes at most
 * cap bytes; INTERNAL if it does not fit. */
#define CKPT_CONTENT_HEX 12
XFFL_MUST_USE xffl_status ckpt_content_name(const char *stem, const char *sha256_hex, const char *ext, char *out, size_t cap);
/* Checks that name ends with "-<first 12 hex of sha256_hex>[ext]": CORRUPT naming it if not. */
XFFL_MUST_USE xffl_status ckpt_content_name_check(const char *name, const char *sha256_hex, const char *ext);

/* "4096x11008" for a shape; out needs 24*ndim bytes. */
void ckpt_shape_format(int ndim, const int64_t *shape, char *out, size_t cap);
/* Parses "4096x11008"; INVALID naming text. */
XFFL_MUST_USE xffl_status ckpt_shape_parse(const char *text, int *ndim, int64_t shape[CKPT_MAX_DIMS]);

#endif
