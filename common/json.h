/* A strict, bounded JSON reader (RFC 8259) for the small documents other tools hand us:
 * Hugging Face's config.json and model.safetensors.index.json, the safetensors header.
 * The whole text becomes a tree of nodes in two allocations; nesting is capped at
 * XFFL_JSON_MAX_DEPTH, so hostile input cannot exhaust the stack. Refused: trailing
 * commas, comments, leading zeros, bare control characters, invalid UTF-8, lone
 * surrogates, "\u0000", duplicate keys in one object, anything after the value. */
#ifndef XFFL_JSON_H
#define XFFL_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

enum { XFFL_JSON_MAX_DEPTH = 64 };

typedef enum {
    XFFL_JSON_NULL,
    XFFL_JSON_BOOL,
    XFFL_JSON_NUMBER,
    XFFL_JSON_STRING,
    XFFL_JSON_ARRAY,
    XFFL_JSON_OBJECT,
} xffl_json_type;

typedef struct xffl_json xffl_json;
struct xffl_json {
    xffl_json_type type;
    const char *key;         /* member name when the parent is an object, else NULL */
    const char *str;         /* STRING: decoded UTF-8, NUL-terminated; NUMBER: its text */
    size_t len;              /* bytes of str */
    double num;              /* NUMBER */
    int boolean;             /* BOOL: 0 or 1 */
    int count;               /* ARRAY/OBJECT: children */
    const xffl_json *child;  /* ARRAY/OBJECT: first child, in document order */
    const xffl_json *next;   /* next sibling */
};

typedef struct xffl_json_doc xffl_json_doc;

/* Parses text[0..len). what names the source in messages ("DIR/config.json").
 * INVALID naming what, the byte offset and the problem. Caller owns *out. */
XFFL_MUST_USE xffl_status xffl_json_parse(const char *text, size_t len, const char *what, xffl_json_doc **out);
void xffl_json_free(xffl_json_doc *d); /* accepts NULL */
const xffl_json *xffl_json_root(const xffl_json_doc *d);

/* The member named key of an object, or NULL (also when obj is not an object). */
const xffl_json *xffl_json_get(const xffl_json *obj, const char *key);
/* 1 and *out when n is a NUMBER written as an integer (no fraction or exponent) that
 * fits in int64; else 0. */
int xffl_json_int(const xffl_json *n, int64_t *out);
/* Name of a type for messages ("object", "string", ...). */
const char *xffl_json_type_name(xffl_json_type t);

#endif
