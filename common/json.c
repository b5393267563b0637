/* Strict JSON reader (contract in json.h). */
#include "common/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    xffl_json pub;
    int first, next; /* child and sibling indexes while parsing; -1 for none */
} node;

struct xffl_json_doc {
    node *nodes;
    int n, cap;
    char *arena; /* decoded strings and number texts; never outgrows the input */
    size_t used;
};

typedef struct {
    const char *s;
    size_t len, pos;
    const char *what;
    xffl_json_doc *d;
} parser;

static XFFL_MUST_USE xffl_status bad(const parser *p, const char *why)
{
    return xffl_fail(XFFL_ERR_INVALID, "%s: not valid JSON at byte %zu: %s", p->what, p->pos, why);
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static XFFL_MUST_USE xffl_status new_node(parser *p, xffl_json_type type, int *out)
{
    xffl_json_doc *d = p->d;
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 64;
        node *nn = realloc(d->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return xffl_fail(XFFL_ERR_NOMEM, "%s: json nodes", p->what);
        d->nodes = nn;
        d->cap = cap;
    }
    node *n = &d->nodes[d->n];
    memset(n, 0, sizeof *n);
    n->pub.type = type;
    n->first = n->next = -1;
    *out = d->n++;
    return XFFL_OK;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) return 0;
        *v = *v * 16 + d;
    }
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid (overlong,
 * surrogate, above U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    unsigned min, cp;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) k = 2, min = 0x80, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) k = 3, min = 0x800, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) k = 4, min = 0x10000, cp = c & 0x07;
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

/* A string at p->pos (the opening quote), decoded into the arena. */
static XFFL_MUST_USE xffl_status parse_string(parser *p, const char **out, size_t *out_len)
{
    p->pos++; /* the quote */
    char *o = p->d->arena + p->d->used, *start = o;
    for (;;) {
        if (p->pos >= p->len) return bad(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return bad(p, "control character in a string");
        if (c != '\\') {
            size_t k = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
            if (!k) return bad(p, "invalid UTF-8 in a string");
            memcpy(o, p->s + p->pos, k);
            o += k;
            p->pos += k;
            continue;
        }
        if (p->pos + 1 >= p->len) return bad(p, "unterminated escape");
        char e = p->s[p->pos + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            *o++ = map[simple - "\"\\/bfnrt"];
            p->pos += 2;
            continue;
        }
        if (e != 'u') return bad(p, "unknown escape");
        unsigned cp, lo;
        if (p->pos + 6 > p->len || !hex4(p->s + p->pos + 2, &cp)) return bad(p, "bad \\u escape");
        p->pos += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return bad(p, "lone low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                !hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return bad(p, "high surrogate without its low half");
            p->pos += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp == 0) return bad(p, "\\u0000 in a string");
        o += put_utf8(o, cp);
    }
    *o++ = 0;
    *out = start;
    *out_len = (size_t)(o - start - 1);
    p->d->used += (size_t)(o - start);
    return XFFL_OK;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static XFFL_MUST_USE xffl_status parse_number(parser *p, xffl_json *n)
{
    size_t b = p->pos;
    const char *s = p->s;
    size_t i = p->pos;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || !is_digit(s[i])) return bad(p, "bad number");
    if (s[i] == '0') {
        i++;
        if (i < p->len && is_digit(s[i])) return bad(p, "leading zero in a number");
    } else
        while (i < p->len && is_digit(s[i])) i++;
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(s[i])) return bad(p, "no digit after the decimal point");
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || !is_digit(s[i])) return bad(p, "no digit in the exponent");
        while (i < p->len && is_digit(s[i])) i++;
    }
    char *o = p->d->arena + p->d->used;
    memcpy(o, s + b, i - b);
    o[i - b] = 0;
    p->d->used += i - b + 1;
    n->str = o;
    n->len = i - b;
    n->num = strtod(o, NULL); /* the grammar above is a subset of strtod's: overflow gives inf */
    p->pos = i;
    return XFFL_OK;
}

static int keycmp(const void *a, const void *b)
{
    const xffl_json *x = *(const xffl_json *const *)a, *y = *(const xffl_json *const *)b;
    return strcmp(x->key, y->key);
}

/* An object's keys are unique: sort a list of its members and compare neighbours
 * (a linear scan per key would make a large hostile header quadratic). */
static XFFL_MUST_USE xffl_status check_unique(parser *p, int obj)
{
    xffl_json_doc *d = p->d;
    int count = d->nodes[obj].pub.count;
    if (count < 2) return XFFL_OK;
    const xffl_json **v = malloc((size_t)count * sizeof *v);
    if (!v) return xffl_fail(XFFL_ERR_NOMEM, "%s: json keys", p->what);
    int k = 0;
    for (int c = d->nodes[obj].first; c >= 0; c = d->nodes[c].next) v[k++] = &d->nodes[c].pub;
    qsort(v, (size_t)count, sizeof *v, keycmp);
    xffl_status st = XFFL_OK;
    for (int i = 1; i < count && st == XFFL_OK; i++)
        if (strcmp(v[i]->key, v[i - 1]->key) == 0)
            st = xffl_fail(XFFL_ERR_INVALID, "%s: not valid JSON: key \"%s\" appears twice in one object", p->what,
                           v[i]->key);
    free(v);
    return st;
}

static XFFL_MUST_USE xffl_status parse_value(parser *p, int depth, int *out);

/* An array or object at p->pos (its opening bracket). */
static XFFL_MUST_USE xffl_status parse_container(parser *p, int depth, int idx)
{
    int is_obj = p->s[p->pos] == '{';
    char close = is_obj ? '}' : ']';
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return XFFL_OK;
    }
    int prev = -1;
    for (;;) {
        const char *key = NULL;
        size_t klen;
        skip_ws(p);
        if (is_obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') return bad(p, "expected a string key");
            XFFL_FORWARD(parse_string(p, &key, &klen));
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return bad(p, "expected ':'");
            p->pos++;
        }
        int child;
        XFFL_FORWARD(parse_value(p, depth + 1, &child));
        node *nodes = p->d->nodes; /* parse_value may have moved them */
        nodes[child].pub.key = key;
        if (prev < 0)
            nodes[idx].first = child;
        else
            nodes[prev].next = child;
        prev = child;
        nodes[idx].pub.count++;
        skip_ws(p);
        if (p->pos >= p->len) return bad(p, is_obj ? "unterminated object" : "unterminated array");
        char c = p->s[p->pos++];
        if (c == close) break;
        if (c != ',') {
            p->pos--;
            return bad(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    return is_obj ? check_unique(p, idx) : XFFL_OK;
}

static XFFL_MUST_USE xffl_status parse_value(parser *p, int depth, int *out)
{
    if (depth > XFFL_JSON_MAX_DEPTH) return bad(p, "nested too deeply");
    skip_ws(p);
    if (p->pos >= p->len) return bad(p, "expected a value");
    char c = p->s[p->pos];
    static const struct {
        const char *word;
        xffl_json_type type;
        int value;
    } words[] = {{"null", XFFL_JSON_NULL, 0}, {"true", XFFL_JSON_BOOL, 1}, {"false", XFFL_JSON_BOOL, 0}};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t n = strlen(words[w].word);
        if (c != words[w].word[0]) continue;
        if (p->len - p->pos < n || memcmp(p->s + p->pos, words[w].word, n) != 0) return bad(p, "unknown literal");
        XFFL_FORWARD(new_node(p, words[w].type, out));
        p->d->nodes[*out].pub.boolean = words[w].value;
        p->pos += n;
        return XFFL_OK;
    }
    if (c == '"') {
        const char *s;
        size_t n;
        XFFL_FORWARD(parse_string(p, &s, &n));
        XFFL_FORWARD(new_node(p, XFFL_JSON_STRING, out));
        p->d->nodes[*out].pub.str = s;
        p->d->nodes[*out].pub.len = n;
        return XFFL_OK;
    }
    if (c == '-' || is_digit(c)) {
        XFFL_FORWARD(new_node(p, XFFL_JSON_NUMBER, out));
        xffl_json tmp = {.type = XFFL_JSON_NUMBER};
        XFFL_FORWARD(parse_number(p, &tmp));
        p->d->nodes[*out].pub = tmp;
        return XFFL_OK;
    }
    if (c == '[' || c == '{') {
        XFFL_FORWARD(new_node(p, c == '[' ? XFFL_JSON_ARRAY : XFFL_JSON_OBJECT, out));
        return parse_container(p, depth, *out);
    }
    return bad(p, "unexpected character");
}

xffl_status xffl_json_parse(const char *text, size_t len, const char *what, xffl_json_doc **out)
{
    *out = NULL;
    xffl_json_doc *d = calloc(1, sizeof *d);
    if (d) d->arena = malloc(len + 2);
    if (!d || !d->arena) {
        xffl_json_free(d);
        return xffl_fail(XFFL_ERR_NOMEM, "%s: %zu bytes of JSON", what, len);
    }
    parser p = {.s = text, .len = len, .what = what, .d = d};
    int root;
    xffl_status st = parse_value(&p, 0, &root);
    if (st == XFFL_OK) {
        skip_ws(&p);
        if (p.pos != p.len) st = bad(&p, "text after the value");
    }
    if (st != XFFL_OK) {
        xffl_json_free(d);
        return st;
    }
    for (int i = 0; i < d->n; i++) {
        node *n = &d->nodes[i];
        n->pub.child = n->first >= 0 ? &d->nodes[n->first].pub : NULL;
        n->pub.next = n->next >= 0 ? &d->nodes[n->next].pub : NULL;
    }
    *out = d;
    return XFFL_OK;
}

void xffl_json_free(xffl_json_doc *d)
{
    if (!d) return;
    free(d->nodes);
    free(d->arena);
    free(d);
}

const xffl_json *xffl_json_root(const xffl_json_doc *d) { return &d->nodes[0].pub; }

const xffl_json *xffl_json_get(const xffl_json *obj, const char *key)
{
    if (!obj || obj->type != XFFL_JSON_OBJECT) return NULL;
    for (const xffl_json *c = obj->child; c; c = c->next)
        if (strcmp(c->key, key) == 0) return c;
    return NULL;
}

int xffl_json_int(const xffl_json *n, int64_t *out)
{
    if (!n || n->type != XFFL_JSON_NUMBER || strpbrk(n->str, ".eE")) return 0;
    errno = 0;
    char *end;
    long long v = strtoll(n->str, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

const char *xffl_json_type_name(xffl_json_type t)
{
    static const char *const names[] = {"null", "boolean", "number", "string", "array", "object"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}
