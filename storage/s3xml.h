/* The S3 XML answers the V4 backend reads (ListObjectsV2, errors, multipart initiate,
 * complete and ListMultipartUploads): a small non-validating parser of ours, fed by the
 * network, so it is fuzzed (tests/fuzz/fuzz_s3xml.c). A body that does not close every
 * element it opened is INVALID: a cut answer never looks like a short listing. */
#ifndef XFFL_S3XML_H
#define XFFL_S3XML_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

/* Called at each element's end: path "ListBucketResult/Contents/Key", its own text
 * (entities decoded, CDATA kept; "" for an element with children). */
typedef void (*s3xml_end_fn)(void *ud, const char *path, const char *text, size_t len);
/* INVALID (message naming the byte offset) on malformed XML, too deep nesting or names,
 * or an unclosed element at the end. */
XFFL_MUST_USE xffl_status s3xml_parse(const char *xml, size_t len, s3xml_end_fn fn, void *ud);

/* "2026-12-01T17:00:00.000Z" -> seconds since the epoch; -1 if not that form. */
int64_t s3xml_time(const char *iso);

/* An <Error> document: 1 and code/message filled (truncated to their sizes); 0 when
 * the root is something else or the XML is malformed. */
int s3xml_error(const char *xml, size_t len, char *code, size_t code_cap, char *message, size_t msg_cap);

/* ListBucketResult (ListObjectsV2): fn per Contents; *truncated from IsTruncated;
 * *next: NextContinuationToken, malloc'd, or NULL. */
typedef XFFL_MUST_USE xffl_status (*s3xml_object_fn)(void *ud, const char *key, uint64_t size, int64_t mtime);
XFFL_MUST_USE xffl_status s3xml_list_objects(const char *xml, size_t len, s3xml_object_fn fn, void *ud,
                                             int *truncated, char **next);

/* InitiateMultipartUploadResult: the UploadId, malloc'd. */
XFFL_MUST_USE xffl_status s3xml_upload_id(const char *xml, size_t len, char **upload_id);

/* ListMultipartUploadsResult: fn per Upload; markers for the next page (malloc'd or NULL). */
typedef XFFL_MUST_USE xffl_status (*s3xml_upload_fn)(void *ud, const char *key, const char *upload_id, int64_t initiated);
XFFL_MUST_USE xffl_status s3xml_list_uploads(const char *xml, size_t len, s3xml_upload_fn fn, void *ud, int *truncated,
                                             char **next_key, char **next_upload);

/* The root element's name of a well-formed document into root ("" when malformed). */
void s3xml_root(const char *xml, size_t len, char *root, size_t cap);

#endif
