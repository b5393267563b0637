/* The store's key layout: every key a federation store holds is formatted and parsed
 * here, and every manifest (INDEX, COMMIT) is fetched and checked by one function.
 * docs/design.md "Store layout".
 *
 *   federation.h5                                      the federation's settings
 *   tokenizer.model                                    its SentencePiece model (init --tokenizer)
 *   LATEST                                             "v000004 INDEX-<12hex> <sha256>\n"
 *   versions/v000004/INDEX-<12hex>                     a version's manifest
 *   versions/v000004/part-000-<12hex>.h5               its parts
 *   versions/v000004/UPDATE-from-v000003-<12hex>       an update from version 3 to 4
 *                                                      (pipelines/update.h)
 *   versions/v000004/update-000-<12hex>.h5             its parts (XOR words)
 *   rounds/r000005/<facility>/a<N>/COMMIT-<12hex>      an attempt's manifest
 *   rounds/r000005/<facility>/a<N>/REJECTED-<12hex>    why aggregate refused it
 *   rounds/r000005/<facility>/a<N>/part-000-<12hex>.h5 its delta parts
 *
 * Numbers are printed with at least six digits ("%06"), attempts without leading
 * zeros (a1, a2, ...); a folder parses only in exactly the form it is formatted in. */
#ifndef XFFL_PIPE_KEYS_H
#define XFFL_PIPE_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include "common/digest.h"
#include "common/sign.h"
#include "common/status.h"
#include "libckpt/manifest.h"
#include "storage/store.h"

#define PIPE_LATEST_KEY "LATEST"
#define PIPE_FEDERATION_KEY "federation.h5"
/* The SentencePiece model `init --tokenizer` stores, write-once like federation.h5,
 * whose digest federation.h5 records (tokenizer_sha256); absent: byte-level. */
#define PIPE_TOKENIZER_KEY "tokenizer.model"
/* The two folders everything else lives under (what gc and verify --all may call an
 * orphan), and the stems of the content-named manifests in them. */
#define PIPE_VERSIONS_DIR "versions/"
#define PIPE_ROUNDS_DIR "rounds/"
#define PIPE_INDEX_STEM "INDEX"
#define PIPE_COMMIT_STEM "COMMIT"
#define PIPE_REJECTED_STEM "REJECTED"
/* An update's manifest is "UPDATE-from-v<NNNNNN>-<12hex>" (its stem names the version
 * it updates from), its parts "update-PPP-<12hex>.h5". */
#define PIPE_UPDATE_STEM "UPDATE"
#define PIPE_UPDATE_PART_STEM "update"
/* Manifest formats and the newest format_version this code reads and writes. */
#define PIPE_INDEX_FORMAT "xffl-index"
#define PIPE_COMMIT_FORMAT "xffl-commit"
#define PIPE_UPDATE_FORMAT "xffl-update"
enum { PIPE_INDEX_FORMAT_VERSION = 1, PIPE_COMMIT_FORMAT_VERSION = 1, PIPE_UPDATE_FORMAT_VERSION = 1 };
enum { PIPE_KEY_MAX = 256, PIPE_KEY_FACILITY_MAX = 64 };

/* A version as LATEST names it: number, INDEX key (full, from the store root), INDEX sha. */
typedef struct {
    int64_t version;
    char index_key[PIPE_KEY_MAX];
    char index_sha[XFFL_SHA256_HEX];
} pipe_version_ref;

/* Folders (each ends with '/'; out needs PIPE_KEY_MAX bytes to be safe).
 *   "versions/v000004/", "rounds/r000005/", "rounds/r000005/<facility>/",
 *   "rounds/r000005/<facility>/a<N>/" */
void pipe_version_prefix(int64_t version, char *out, size_t cap);
void pipe_round_prefix(int64_t round, char *out, size_t cap);
void pipe_facility_prefix(int64_t round, const char *facility, char *out, size_t cap);
void pipe_attempt_prefix(int64_t round, const char *facility, int attempt, char *out, size_t cap);

/* "<dir><stem>-<first 12 hex of sha256><ext>" (ext may be NULL): the content name of
 * an object in folder dir ("" for a bare name). INTERNAL when it does not fit cap. */
XFFL_MUST_USE xffl_status pipe_content_key(const char *dir, const char *stem, const char *sha256, const char *ext,
                                           char *out, size_t cap);
/* "<dir>part-NNN-<12hex>.h5": part number part of a version or an attempt. */
XFFL_MUST_USE xffl_status pipe_part_key(const char *dir, int part, const char *sha256, char *out, size_t cap);
/* "<dir>update-NNN-<12hex>.h5": part number part of an update. */
XFFL_MUST_USE xffl_status pipe_update_part_key(const char *dir, int part, const char *sha256, char *out, size_t cap);
/* "UPDATE-from-v<NNNNNN>": the stem of the manifest of an update from version `from`. */
void pipe_update_stem(int64_t from, char *out, size_t cap);

/* What a key is in the layout. */
typedef enum {
    PIPE_KEY_OTHER = 0,   /* not part of the layout */
    PIPE_KEY_LATEST,      /* LATEST */
    PIPE_KEY_FEDERATION,  /* federation.h5 */
    PIPE_KEY_VERSION,     /* versions/vNNNNNN/<name> */
    PIPE_KEY_ROUND,       /* rounds/rNNNNNN/<name>, outside any attempt folder */
    PIPE_KEY_ATTEMPT,     /* rounds/rNNNNNN/<facility>/a<N>/<name> */
} pipe_key_kind;

/* What the object named by a folder's <name> is (its name holds no '/'). */
typedef enum {
    PIPE_OBJ_NONE = 0,    /* anything else, or a name with a '/' */
    PIPE_OBJ_INDEX,       /* INDEX-* (no '.') in a version folder */
    PIPE_OBJ_COMMIT,      /* COMMIT-* in an attempt folder */
    PIPE_OBJ_REJECTED,    /* REJECTED-* in an attempt folder */
    PIPE_OBJ_PART,        /* part-*.h5 in a version or attempt folder */
    PIPE_OBJ_UPDATE,      /* UPDATE-* (no '.') in a version folder */
    PIPE_OBJ_UPDATE_PART, /* update-*.h5 in a version folder */
} pipe_obj_kind;

typedef struct {
    pipe_key_kind kind;
    pipe_obj_kind obj;
    int64_t number;                       /* VERSION: the version; ROUND, ATTEMPT: the round; else -1 */
    char facility[PIPE_KEY_FACILITY_MAX]; /* ATTEMPT; else "" */
    int attempt;                          /* ATTEMPT: N >= 1; else 0 */
    size_t dir_len;                       /* VERSION/ROUND/ATTEMPT: length of the folder, '/' included; else 0 */
    const char *name;                     /* the key after its folder (points into the key; the key itself for OTHER) */
} pipe_key;

/* Parses key (never fails: a key outside the layout is PIPE_KEY_OTHER). Returns out->kind. */
pipe_key_kind pipe_key_parse(const char *key, pipe_key *out);

/* LATEST's one line for ref: "v000004 INDEX-<12hex> <sha256>\n". Returns its length. */
int pipe_latest_format(const pipe_version_ref *ref, char *out, size_t cap);
/* Parses LATEST's text; CORRUPT naming LATEST when malformed. */
XFFL_MUST_USE xffl_status pipe_latest_parse(const char *text, size_t len, pipe_version_ref *ref);
/* Reads LATEST. NOT_FOUND naming the store when there is none (no init yet). */
XFFL_MUST_USE xffl_status pipe_latest_read(store *s, pipe_version_ref *ref);

/* The bytes behind a loaded manifest, when the caller wants them (cp, pull copy them). */
typedef struct {
    char sha256[XFFL_SHA256_HEX]; /* digest of the bytes fetched */
    char *text;                   /* NUL-terminated; the caller frees */
    size_t len;
} pipe_manifest_bytes;

/* The one way to read an INDEX, a COMMIT or an UPDATE: fetches key, checks its bytes
 * against sha256 (e.g. from LATEST) or, when sha256 is NULL or "", against the digest
 * its content name carries (CORRUPT naming the key), parses it, and checks its format
 * header against the key's kind (INDEX-*: xffl-index, COMMIT-*: xffl-commit,
 * UPDATE-*: xffl-update, whose own checks are update_check's) and its
 * format_version against the newest this code reads (INVALID naming the key). raw
 * (may be NULL) receives the digest and the bytes. */
XFFL_MUST_USE xffl_status pipe_manifest_load(store *s, const char *key, const char *sha256, ckpt_manifest **out,
                                             pipe_manifest_bytes *raw);
/* pipe_manifest_load, then, when pub_hex is a key (not NULL or ""), the manifest's
 * last line must be its signature by that key over every byte before it: CORRUPT
 * naming the key and the key id otherwise (common/sign.h). A signature line is
 * tolerated, never required, by pipe_manifest_load itself: unsigned federations. */
XFFL_MUST_USE xffl_status pipe_manifest_load_signed(store *s, const char *key, const char *sha256, const char *pub_hex,
                                                    ckpt_manifest **out, pipe_manifest_bytes *raw);
/* Formats m, names it <dir><stem>-<12hex> and puts it; key_out (PIPE_KEY_MAX) gets the key. */
XFFL_MUST_USE xffl_status pipe_manifest_put(store *s, const ckpt_manifest *m, const char *dir, const char *stem,
                                            char *key_out);
/* The same with signer's signature line appended last (signer NULL: unsigned); the
 * content name covers the signature line too. */
XFFL_MUST_USE xffl_status pipe_manifest_put_signed(store *s, const ckpt_manifest *m, const char *dir, const char *stem,
                                                   const xffl_signer *signer, char *key_out);

#endif
