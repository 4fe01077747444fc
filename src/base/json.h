/* A strict, small JSON reader and writer for checkpoint headers (internal).
 *
 * The reader accepts RFC 8259 JSON only: no comments, no trailing commas, no
 * NaN, strings of valid UTF-8 without raw control characters. It never reads
 * past the buffer, limits nesting depth and the number of values, and rejects
 * objects with duplicate keys. */
#ifndef MF_JSON_H
#define MF_JSON_H

#include <stddef.h>
#include <stdint.h>

#define MF_JSON_MAX_DEPTH 64
#define MF_JSON_MAX_VALUES (1 << 22)

typedef enum {
    MF_JSON_NULL = 0,
    MF_JSON_FALSE,
    MF_JSON_TRUE,
    MF_JSON_NUMBER,
    MF_JSON_STRING,
    MF_JSON_ARRAY,
    MF_JSON_OBJECT
} mf_json_type;

/* One value. Strings and keys are decoded in place inside the parsed buffer
 * and NUL-terminated there, so a document borrows its buffer. */
typedef struct mf_json {
    mf_json_type type;
    int count;          /* array/object: members; string: bytes; number: text length */
    const char *key;    /* the member name when this value sits in an object */
    union {
        const char *string;     /* MF_JSON_STRING (a "\u0000" escape is rejected) */
        struct mf_json *items;  /* MF_JSON_ARRAY, MF_JSON_OBJECT (in source order) */
        struct {
            const char *text;   /* the number as written (not NUL-terminated) */
            double value;
        } number;
    } u;
} mf_json;

/* Parses buf[0..len) (modified in place) into *root: 0. On failure frees
 * everything, writes "what, at byte N" into msg and returns -1 (invalid JSON)
 * or -2 (out of memory). */
int mf_json_parse(char *buf, size_t len, mf_json *root, char *msg, size_t msg_size);
void mf_json_free(mf_json *root);

/* The member named key of an object, or NULL. */
const mf_json *mf_json_get(const mf_json *obj, const char *key);
/* The value of the number member named key, or missing when there is none. */
double mf_json_number(const mf_json *obj, const char *key, double missing);
/* A number written as a plain non-negative integer (no sign, fraction or
 * exponent) that fits in 64 bits: 1 and *out set, else 0. */
int mf_json_u64(const mf_json *v, uint64_t *out);

/* 1 when s[0..n) is well-formed UTF-8 (as the reader requires of strings). */
int mf_json_utf8_valid(const char *s, size_t n);

/* A growing text buffer for writing JSON. After an allocation failure every
 * call does nothing and failed stays 1. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} mf_json_writer;

void mf_json_raw(mf_json_writer *w, const char *text);
void mf_json_printf(mf_json_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a quoted JSON string: '"', '\\' and control characters escaped. */
void mf_json_string(mf_json_writer *w, const char *s);
void mf_json_writer_free(mf_json_writer *w);

#endif
