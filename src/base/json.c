/* A strict JSON reader (recursive descent over a bounded buffer, strings
 * decoded in place) and a small writer for checkpoint headers. */
#include "base/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reader ------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len, pos;
    long values;
    int nomem;
    char *msg;
    size_t msg_size;
} parser;

static int fail(parser *p, const char *what)
{
    /* The first error wins: an outer caller must not overwrite it. */
    if (p->msg && p->msg[0] == '\0')
        snprintf(p->msg, p->msg_size, "%s, at byte %zu", what, p->pos);
    return -1;
}

static void skip_space(parser *p)
{
    while (p->pos < p->len) {
        char c = p->buf[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int peek(const parser *p) { return p->pos < p->len ? (unsigned char)p->buf[p->pos] : -1; }

static int hex4(parser *p, size_t at, unsigned *out)
{
    if (at > p->len || p->len - at < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->buf[at + (size_t)i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *w, unsigned cp)
{
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xC0 | (cp >> 6));
        w[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xE0 | (cp >> 12));
        w[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        w[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    w[0] = (char)(0xF0 | (cp >> 18));
    w[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    w[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    w[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the well-formed UTF-8 sequence at s[0..avail), or 0 (overlong
 * forms, surrogates and code points above U+10FFFF are ill-formed). */
static size_t utf8_length(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

int mf_json_utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_length((const unsigned char *)s + i, n - i))) return 0;
    return 1;
}

/* At the opening quote. Decodes into the buffer from the first character on
 * (never longer than the source) and NUL-terminates. */
static int parse_string(parser *p, const char **out, int *out_len)
{
    p->pos++;
    size_t start = p->pos, w = p->pos;
    for (;;) {
        if (p->pos >= p->len) return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->buf[p->pos];
        if (c == '"') break;
        if (c < 0x20) return fail(p, "control character in a string");
        if (c == '\\') {
            if (p->pos + 1 >= p->len) return fail(p, "unterminated string");
            char e = p->buf[p->pos + 1];
            char simple = 0;
            switch (e) {
            case '"': simple = '"'; break;
            case '\\': simple = '\\'; break;
            case '/': simple = '/'; break;
            case 'b': simple = '\b'; break;
            case 'f': simple = '\f'; break;
            case 'n': simple = '\n'; break;
            case 'r': simple = '\r'; break;
            case 't': simple = '\t'; break;
            case 'u': break;
            default: return fail(p, "invalid escape in a string");
            }
            if (simple) {
                p->buf[w++] = simple;
                p->pos += 2;
                continue;
            }
            unsigned cp, lo;
            if (hex4(p, p->pos + 2, &cp)) return fail(p, "invalid \\u escape");
            size_t used = 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, "unpaired surrogate in a \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                size_t at = p->pos + 6;
                if (at + 1 >= p->len || p->buf[at] != '\\' || p->buf[at + 1] != 'u' ||
                    hex4(p, at + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, "unpaired surrogate in a \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                used = 12;
            }
            if (cp == 0) return fail(p, "\\u0000 is not allowed in a string");
            w += put_utf8(p->buf + w, cp);
            p->pos += used;
            continue;
        }
        size_t n = utf8_length((const unsigned char *)p->buf + p->pos, p->len - p->pos);
        if (n == 0) return fail(p, "invalid UTF-8 in a string");
        memmove(p->buf + w, p->buf + p->pos, n);
        w += n;
        p->pos += n;
    }
    /* w <= the closing quote's position, already read. */
    p->buf[w] = '\0';
    p->pos++;
    if (w - start > 0x7fffffff) return fail(p, "string too long");
    *out = p->buf + start;
    *out_len = (int)(w - start);
    return 0;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int parse_number(parser *p, mf_json *v)
{
    size_t start = p->pos;
    if (peek(p) == '-') p->pos++;
    if (peek(p) == '0') {
        p->pos++;
    } else if (is_digit(peek(p))) {
        while (is_digit(peek(p))) p->pos++;
    } else {
        return fail(p, "invalid number");
    }
    if (peek(p) == '.') {
        p->pos++;
        if (!is_digit(peek(p))) return fail(p, "invalid number");
        while (is_digit(peek(p))) p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-') p->pos++;
        if (!is_digit(peek(p))) return fail(p, "invalid number");
        while (is_digit(peek(p))) p->pos++;
    }
    size_t n = p->pos - start;
    char tmp[400];
    if (n >= sizeof tmp) return fail(p, "number too long");
    memcpy(tmp, p->buf + start, n);
    tmp[n] = '\0';
    double x = strtod(tmp, NULL);
    if (!isfinite(x)) return fail(p, "number out of range");
    v->type = MF_JSON_NUMBER;
    v->count = (int)n;
    v->u.number.text = p->buf + start;
    v->u.number.value = x;
    return 0;
}

static int parse_literal(parser *p, const char *word, mf_json_type type, mf_json *v)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->buf + p->pos, word, n))
        return fail(p, "unexpected character");
    p->pos += n;
    v->type = type;
    return 0;
}

static void free_items(mf_json *items, int count)
{
    for (int i = 0; i < count; i++) mf_json_free(&items[i]);
    free(items);
}

static int compare_keys(const void *a, const void *b)
{
    const mf_json *x = *(const mf_json *const *)a, *y = *(const mf_json *const *)b;
    return strcmp(x->key, y->key);
}

/* 0 when all keys differ; sorting keeps large objects O(n log n). */
static int check_duplicate_keys(parser *p, const mf_json *items, int count, size_t object_pos)
{
    if (count < 2) return 0;
    const mf_json **sorted = malloc((size_t)count * sizeof *sorted);
    if (!sorted) {
        p->nomem = 1;
        return fail(p, "out of memory");
    }
    for (int i = 0; i < count; i++) sorted[i] = &items[i];
    qsort(sorted, (size_t)count, sizeof *sorted, compare_keys);
    for (int i = 1; i < count; i++)
        if (!strcmp(sorted[i - 1]->key, sorted[i]->key)) {
            char what[160];
            snprintf(what, sizeof what, "duplicate key \"%.100s\" in the object", sorted[i]->key);
            free(sorted);
            p->pos = object_pos;
            return fail(p, what);
        }
    free(sorted);
    return 0;
}

static int parse_value(parser *p, mf_json *v, int depth);

/* Arrays and objects: members separated by commas, keys only in objects. */
static int parse_container(parser *p, mf_json *v, int depth, int is_object)
{
    size_t open_pos = p->pos;
    char close = is_object ? '}' : ']';
    if (depth >= MF_JSON_MAX_DEPTH) return fail(p, "nesting too deep");
    p->pos++;
    mf_json *items = NULL;
    int count = 0, cap = 0;
    skip_space(p);
    if (peek(p) == close) {
        p->pos++;
    } else {
        for (;;) {
            const char *key = NULL;
            int key_len;
            skip_space(p);
            if (is_object) {
                if (peek(p) != '"') {
                    fail(p, peek(p) < 0 ? "unexpected end of the text" : "expected a string key");
                    goto error;
                }
                if (parse_string(p, &key, &key_len)) goto error;
                skip_space(p);
                if (peek(p) != ':') {
                    fail(p, peek(p) < 0 ? "unexpected end of the text" : "expected ':'");
                    goto error;
                }
                p->pos++;
            }
            if (count == cap) {
                int next = cap ? 2 * cap : 8;
                mf_json *grown = next > cap ? realloc(items, (size_t)next * sizeof *items) : NULL;
                if (!grown) {
                    p->nomem = 1;
                    fail(p, "out of memory");
                    goto error;
                }
                items = grown;
                cap = next;
            }
            if (parse_value(p, &items[count], depth + 1)) goto error;
            items[count++].key = key;
            skip_space(p);
            if (peek(p) == ',') {
                p->pos++;
                continue;
            }
            if (peek(p) == close) {
                p->pos++;
                break;
            }
            if (peek(p) < 0) fail(p, "unexpected end of the text");
            else fail(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
            goto error;
        }
    }
    if (is_object && check_duplicate_keys(p, items, count, open_pos)) goto error;
    v->type = is_object ? MF_JSON_OBJECT : MF_JSON_ARRAY;
    v->count = count;
    v->u.items = items;
    return 0;
error:
    free_items(items, count);
    return -1;
}

static int parse_value(parser *p, mf_json *v, int depth)
{
    memset(v, 0, sizeof *v);
    if (++p->values > MF_JSON_MAX_VALUES) return fail(p, "too many values");
    skip_space(p);
    int c = peek(p);
    switch (c) {
    case -1: return fail(p, "unexpected end of the text");
    case '{': return parse_container(p, v, depth, 1);
    case '[': return parse_container(p, v, depth, 0);
    case '"': {
        const char *s;
        int n;
        if (parse_string(p, &s, &n)) return -1;
        v->type = MF_JSON_STRING;
        v->count = n;
        v->u.string = s;
        return 0;
    }
    case 't': return parse_literal(p, "true", MF_JSON_TRUE, v);
    case 'f': return parse_literal(p, "false", MF_JSON_FALSE, v);
    case 'n': return parse_literal(p, "null", MF_JSON_NULL, v);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, v);
        return fail(p, "unexpected character");
    }
}

int mf_json_parse(char *buf, size_t len, mf_json *root, char *msg, size_t msg_size)
{
    parser p = {.buf = buf, .len = len, .msg = msg, .msg_size = msg_size};
    if (msg && msg_size) msg[0] = '\0';
    memset(root, 0, sizeof *root);
    if (parse_value(&p, root, 0)) return p.nomem ? -2 : -1;
    skip_space(&p);
    if (p.pos != p.len) {
        mf_json_free(root);
        return fail(&p, "unexpected text after the JSON value");
    }
    return 0;
}

void mf_json_free(mf_json *v)
{
    if (!v) return;
    if (v->type == MF_JSON_ARRAY || v->type == MF_JSON_OBJECT) free_items(v->u.items, v->count);
    memset(v, 0, sizeof *v);
}

const mf_json *mf_json_get(const mf_json *obj, const char *key)
{
    if (!obj || obj->type != MF_JSON_OBJECT) return NULL;
    for (int i = 0; i < obj->count; i++)
        if (!strcmp(obj->u.items[i].key, key)) return &obj->u.items[i];
    return NULL;
}

double mf_json_number(const mf_json *obj, const char *key, double missing)
{
    const mf_json *v = mf_json_get(obj, key);
    return v && v->type == MF_JSON_NUMBER ? v->u.number.value : missing;
}

int mf_json_u64(const mf_json *v, uint64_t *out)
{
    if (!v || v->type != MF_JSON_NUMBER) return 0;
    uint64_t x = 0;
    for (int i = 0; i < v->count; i++) {
        char c = v->u.number.text[i];
        if (!is_digit(c)) return 0;
        unsigned d = (unsigned)(c - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    *out = x;
    return 1;
}

/* ---- writer -------------------------------------------------------------- */

static int reserve(mf_json_writer *w, size_t extra)
{
    if (w->failed) return -1;
    if (w->cap - w->len > extra) return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->len <= extra) {
        if (cap > SIZE_MAX / 2) {
            w->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *grown = realloc(w->data, cap);
    if (!grown) {
        w->failed = 1;
        return -1;
    }
    w->data = grown;
    w->cap = cap;
    return 0;
}

static void append(mf_json_writer *w, const char *s, size_t n)
{
    if (reserve(w, n)) return;
    memcpy(w->data + w->len, s, n);
    w->len += n;
    w->data[w->len] = '\0';
}

void mf_json_raw(mf_json_writer *w, const char *text) { append(w, text, strlen(text)); }

void mf_json_printf(mf_json_writer *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        w->failed = 1;
        return;
    }
    if (reserve(w, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(w->data + w->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len += (size_t)n;
}

void mf_json_string(mf_json_writer *w, const char *s)
{
    append(w, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            append(w, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            append(w, esc, 6);
        } else {
            append(w, (const char *)c, 1);
        }
    }
    append(w, "\"", 1);
}

void mf_json_writer_free(mf_json_writer *w)
{
    free(w->data);
    memset(w, 0, sizeof *w);
}
