/* Checkpoints as safetensors files. The header is validated completely
 * before any data is read, every read is bounded by the file size, and a
 * save goes through mf_file_replace (a temporary file renamed into place),
 * so a crash leaves the old checkpoint or the new one, never a torn file. */
#define _POSIX_C_SOURCE 200809L
#include "minformer/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/json.h"
#include "minformer/image.h"

/* ---- bytes and files ----------------------------------------------------- */

static int host_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap32(void *data, size_t n)
{
    unsigned char *p = data;
    for (size_t i = 0; i < n; i++, p += 4) {
        unsigned char t = p[0];
        p[0] = p[3];
        p[3] = t;
        t = p[1];
        p[1] = p[2];
        p[2] = t;
    }
}

static uint64_t get_le64(const unsigned char *b)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | b[i];
    return x;
}

static void put_le64(unsigned char *b, uint64_t x)
{
    for (int i = 0; i < 8; i++, x >>= 8) b[i] = (unsigned char)(x & 0xff);
}

/* Bytes read at offset until n or the end of the file; -1 on an error. */
static ssize_t read_at(int fd, void *buf, size_t n, uint64_t offset)
{
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done < ((size_t)1 << 30) ? n - done : (size_t)1 << 30;
        ssize_t r = pread(fd, (char *)buf + done, chunk, (off_t)(offset + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

/* n floats as little-endian bytes; a failure is kept in r for the commit. */
static void write_floats(mf_file_replacement *r, const float *x, size_t n)
{
    if (host_little_endian()) {
        mf_file_replace_write(r, x, n * sizeof *x, NULL);
        return;
    }
    float chunk[4096];
    for (size_t i = 0; i < n && !r->error; i += 4096) {
        size_t k = n - i < 4096 ? n - i : 4096;
        memcpy(chunk, x + i, k * sizeof *x);
        swap32(chunk, k);
        mf_file_replace_write(r, chunk, k * sizeof *x, NULL);
    }
}

/* zlib's CRC-32 (the one of gzip, PNG and Python's zlib.crc32) of n bytes,
 * continuing from crc (start with 0); zlib takes at most UINT_MAX at once. */
static uint32_t crc32_bytes(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uLong c = crc;
    while (n > 0) {
        uInt chunk = n < ((size_t)1 << 30) ? (uInt)n : (uInt)1 << 30;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

/* The CRC-32 of n floats as the little-endian bytes write_floats writes. */
static uint32_t crc32_floats(const float *x, size_t n)
{
    if (host_little_endian()) return crc32_bytes(0, x, n * sizeof *x);
    uint32_t crc = 0;
    float chunk[4096];
    for (size_t i = 0; i < n; i += 4096) {
        size_t k = n - i < 4096 ? n - i : 4096;
        memcpy(chunk, x + i, k * sizeof *x);
        swap32(chunk, k);
        crc = crc32_bytes(crc, chunk, k * sizeof *x);
    }
    return crc;
}

/* A name or value from a file, fit for a one-line message: at most 80 bytes,
 * control characters replaced. */
static const char *printable(const char *s, char out[96])
{
    size_t i = 0;
    for (; s[i] && i < 80; i++) out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* "PATH: problem" as MF_ERR_FORMAT. */
static mf_status bad(mf_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static mf_status bad(mf_error *err, const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mf_fail(err, MF_ERR_FORMAT, "%s: %s", path, msg);
}

/* ---- the safetensors header ------------------------------------------- */

typedef struct {
    int fd;
    char *path;
    char *text;    /* the JSON header, its strings decoded in place */
    mf_json root;
} header_internal;

static const struct {
    const char *name;
    unsigned size;
} dtypes[] = {{"F64", 8}, {"F32", 4},  {"F16", 2}, {"BF16", 2}, {"I64", 8},
              {"I32", 4}, {"I16", 2},  {"I8", 1},  {"U64", 8},  {"U32", 4},
              {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};

static unsigned dtype_size(const char *name)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(dtypes[i].name, name)) return dtypes[i].size;
    return 0;
}

/* One tensor entry: {"dtype": S, "shape": [n...], "data_offsets": [b, e]},
 * nothing more, consistent with itself and within the data section. */
static mf_status parse_tensor_entry(const char *path, const mf_json *v, uint64_t data_size,
                                    mf_checkpoint_tensor *t, mf_error *err)
{
    char pn[96], pk[96];
    const char *name = printable(v->key, pn);
    memset(t, 0, sizeof *t);
    t->name = v->key;
    if (v->type != MF_JSON_OBJECT)
        return bad(err, path, "tensor '%s': the entry is not a JSON object", name);
    const mf_json *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (int i = 0; i < v->count; i++) {
        const mf_json *f = &v->u.items[i];
        if (!strcmp(f->key, "dtype")) dtype = f;
        else if (!strcmp(f->key, "shape")) shape = f;
        else if (!strcmp(f->key, "data_offsets")) offsets = f;
        else return bad(err, path, "tensor '%s': unknown field '%s'", name, printable(f->key, pk));
    }
    if (!dtype || !shape || !offsets)
        return bad(err, path, "tensor '%s': missing field '%s'", name,
                   !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (dtype->type != MF_JSON_STRING)
        return bad(err, path, "tensor '%s': dtype is not a string", name);
    unsigned esize = dtype_size(dtype->u.string);
    if (!esize)
        return bad(err, path, "tensor '%s': unknown dtype '%s'", name,
                   printable(dtype->u.string, pk));
    t->dtype = dtype->u.string;
    if (shape->type != MF_JSON_ARRAY)
        return bad(err, path, "tensor '%s': shape is not an array", name);
    if (shape->count > MF_CHECKPOINT_MAX_NDIM)
        return bad(err, path, "tensor '%s': %d dimensions, more than %d", name, shape->count,
                   MF_CHECKPOINT_MAX_NDIM);
    t->ndim = shape->count;
    uint64_t bytes = esize;
    for (int i = 0; i < shape->count; i++) {
        if (!mf_json_u64(&shape->u.items[i], &t->shape[i]))
            return bad(err, path, "tensor '%s': shape entries must be non-negative integers", name);
        if (t->shape[i] && bytes > UINT64_MAX / t->shape[i])
            return bad(err, path, "tensor '%s': the shape is too large", name);
        bytes *= t->shape[i];
    }
    if (offsets->type != MF_JSON_ARRAY || offsets->count != 2 ||
        !mf_json_u64(&offsets->u.items[0], &t->begin) ||
        !mf_json_u64(&offsets->u.items[1], &t->end))
        return bad(err, path, "tensor '%s': data_offsets must be two non-negative integers", name);
    if (t->end < t->begin)
        return bad(err, path, "tensor '%s': data_offsets [%llu, %llu] end before they begin", name,
                   (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_size)
        return bad(err, path,
                   "tensor '%s': data_offsets [%llu, %llu] reach past the data section (%llu "
                   "bytes): truncated or corrupt",
                   name, (unsigned long long)t->begin, (unsigned long long)t->end,
                   (unsigned long long)data_size);
    if (t->end - t->begin != bytes)
        return bad(err, path,
                   "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but %s of this shape "
                   "needs %llu",
                   name, (unsigned long long)t->begin, (unsigned long long)t->end,
                   (unsigned long long)(t->end - t->begin), t->dtype, (unsigned long long)bytes);
    return MF_OK;
}

static int compare_by_offset(const void *a, const void *b)
{
    const mf_checkpoint_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* safetensors wants the tensors to tile the data section: no overlaps, no holes. */
static mf_status check_coverage(const char *path, const mf_checkpoint_header *h, mf_error *err)
{
    char p1[96], p2[96];
    uint64_t pos = 0;
    const char *last = NULL;
    for (int i = 0; i < h->num_tensors; i++) {
        const mf_checkpoint_tensor *t = &h->tensors[i];
        if (t->begin < pos)
            return bad(err, path, "tensors '%s' and '%s' overlap in the data section",
                       printable(last, p1), printable(t->name, p2));
        if (t->begin > pos)
            return bad(err, path, "bytes %llu to %llu of the data section belong to no tensor",
                       (unsigned long long)pos, (unsigned long long)t->begin);
        pos = t->end;
        last = t->name;
    }
    if (pos != h->data_size)
        return bad(err, path, "the last %llu bytes of the data section belong to no tensor",
                   (unsigned long long)(h->data_size - pos));
    return MF_OK;
}

static int compare_tensor_names(const void *a, const void *b)
{
    const mf_checkpoint_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* "8 lowercase hex digits", exactly as the writer formats a CRC-32. */
static int parse_crc32(const char *s, uint32_t *out)
{
    uint32_t x = 0;
    for (int i = 0; i < 8; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') x = x << 4 | (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') x = x << 4 | (uint32_t)(c - 'a' + 10);
        else return 0;
    }
    if (s[8]) return 0;
    *out = x;
    return 1;
}

static mf_status checksum_mismatch(mf_error *err, const char *path, const char *name,
                                   uint32_t stored, uint32_t computed)
{
    char pn[96];
    return bad(err, path, "tensor '%s' fails its checksum (stored %08lx, computed %08lx)",
               printable(name, pn), (unsigned long)stored, (unsigned long)computed);
}

/* Attaches each checksum entry of the metadata to its tensor: every entry
 * names a tensor of the file, and the tensors have all one or none, so a
 * stray entry or a tensor that slipped past the writer's checksums is caught.
 * Names are matched through a sorted index: a hostile header may hold
 * millions of both. */
static mf_status match_checksums(const char *path, mf_checkpoint_header *h, mf_error *err)
{
    const size_t plen = strlen(MF_CHECKPOINT_CRC32_PREFIX);
    int entries = 0;
    for (int i = 0; i < h->num_metadata; i++)
        entries += !strncmp(h->metadata[i].key, MF_CHECKPOINT_CRC32_PREFIX, plen);
    if (!entries) return MF_OK;
    mf_checkpoint_tensor **by_name = malloc(((size_t)h->num_tensors + 1) * sizeof *by_name);
    if (!by_name) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < h->num_tensors; i++) by_name[i] = &h->tensors[i];
    qsort(by_name, (size_t)h->num_tensors, sizeof *by_name, compare_tensor_names);
    mf_status st = MF_OK;
    char pk[96], pv[96];
    for (int i = 0; !st && i < h->num_metadata; i++) {
        const mf_checkpoint_entry *e = &h->metadata[i];
        if (strncmp(e->key, MF_CHECKPOINT_CRC32_PREFIX, plen)) continue;
        mf_checkpoint_tensor key_tensor = {.name = e->key + plen};
        const mf_checkpoint_tensor *key = &key_tensor;
        mf_checkpoint_tensor **hit = bsearch(&key, by_name, (size_t)h->num_tensors,
                                             sizeof *by_name, compare_tensor_names);
        uint32_t crc;
        if (!hit)
            st = bad(err, path, "metadata '%s' is the checksum of a tensor the file does not hold",
                     printable(e->key, pk));
        else if (!parse_crc32(e->value, &crc))
            st = bad(err, path, "metadata '%s' = '%s': expected a CRC-32 as 8 lowercase "
                                "hexadecimal digits",
                     printable(e->key, pk), printable(e->value, pv));
        else {
            (*hit)->has_crc32 = 1;
            (*hit)->crc32 = crc;
        }
    }
    free(by_name);
    if (st) return st;
    for (int i = 0; i < h->num_tensors; i++)
        if (!h->tensors[i].has_crc32)
            return bad(err, path, "tensor '%s' has no checksum (metadata '%s%s'), though others do",
                       printable(h->tensors[i].name, pk), MF_CHECKPOINT_CRC32_PREFIX,
                       printable(h->tensors[i].name, pv));
    h->has_checksums = h->num_tensors > 0;
    return MF_OK;
}

/* Reads the data section once, in order, and compares each tensor's bytes
 * with its checksum. */
static mf_status verify_checksums(const char *path, const mf_checkpoint_header *h, int fd,
                                  mf_error *err)
{
    if (!h->has_checksums) return MF_OK;
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    mf_status st = MF_OK;
    char pn[96];
    for (int i = 0; !st && i < h->num_tensors; i++) {
        const mf_checkpoint_tensor *t = &h->tensors[i];
        uint32_t crc = 0;
        for (uint64_t at = t->begin; !st && at < t->end;) {
            size_t n = t->end - at < CHUNK ? (size_t)(t->end - at) : CHUNK;
            ssize_t got = read_at(fd, buf, n, h->data_start + at);
            if (got < 0)
                st = mf_fail(err, MF_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
            else if ((size_t)got != n)
                st = bad(err, path, "truncated inside the data of tensor '%s' (did the file "
                                    "change?)",
                         printable(t->name, pn));
            else
                crc = crc32_bytes(crc, buf, n);
            at += n;
        }
        if (!st && crc != t->crc32) st = checksum_mismatch(err, path, t->name, t->crc32, crc);
    }
    free(buf);
    return st;
}

void mf_checkpoint_header_free(mf_checkpoint_header *h)
{
    if (!h) return;
    header_internal *in = h->internal;
    if (in) {
        if (in->fd >= 0) close(in->fd);
        mf_json_free(&in->root);
        free(in->text);
        free(in->path);
        free(in);
    }
    free(h->tensors);
    free(h->metadata);
    memset(h, 0, sizeof *h);
}

mf_status mf_checkpoint_read_header(const char *path, mf_checkpoint_header *h, mf_error *err)
{
    memset(h, 0, sizeof *h);
    header_internal *in = calloc(1, sizeof *in);
    mf_status st = MF_OK;
    if (!in || !(in->path = strdup(path))) {
        free(in);
        return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    }
    in->fd = -1;
    h->internal = in;

    /* Never blocks: a FIFO or device is refused before anything waits on it. */
    in->fd = mf_open_regular(path, 0, &h->file_size, err);
    if (in->fd < 0) {
        st = MF_ERR_IO;
        goto fail;
    }
    unsigned char len8[8];
    if (h->file_size < 8) {
        st = bad(err, path, "%llu bytes: too short for a safetensors file (the header length "
                            "alone takes 8)",
                 (unsigned long long)h->file_size);
        goto fail;
    }
    if (read_at(in->fd, len8, 8, 0) != 8) {
        st = bad(err, path, "cannot read the header length");
        goto fail;
    }
    uint64_t n = get_le64(len8);
    if (n > MF_CHECKPOINT_MAX_HEADER) {
        st = bad(err, path, "header length %llu exceeds the limit of %u bytes: not a checkpoint",
                 (unsigned long long)n, MF_CHECKPOINT_MAX_HEADER);
        goto fail;
    }
    if (n > h->file_size - 8) {
        st = bad(err, path, "header length %llu runs past the end of the file (%llu bytes): "
                            "truncated or not a checkpoint",
                 (unsigned long long)n, (unsigned long long)h->file_size);
        goto fail;
    }
    if (n < 2) {
        st = bad(err, path, "header length %llu is too short for a JSON object",
                 (unsigned long long)n);
        goto fail;
    }
    h->header_size = n;
    h->data_start = 8 + n;
    h->data_size = h->file_size - h->data_start;
    in->text = malloc((size_t)n + 1);
    if (!in->text) {
        st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path,
                     (unsigned long long)n);
        goto fail;
    }
    if (read_at(in->fd, in->text, (size_t)n, 8) != (ssize_t)n) {
        st = bad(err, path, "truncated inside the header");
        goto fail;
    }
    in->text[n] = '\0';
    char msg[200];
    int rc = mf_json_parse(in->text, (size_t)n, &in->root, msg, sizeof msg);
    if (rc == -2) {
        st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory parsing the header", path);
        goto fail;
    }
    if (rc) {
        st = bad(err, path, "invalid JSON header: %s", msg);
        goto fail;
    }
    const mf_json *root = &in->root;
    if (root->type != MF_JSON_OBJECT) {
        st = bad(err, path, "the header is not a JSON object");
        goto fail;
    }
    const mf_json *meta = mf_json_get(root, "__metadata__");
    h->tensors = calloc((size_t)root->count + 1, sizeof *h->tensors);
    h->metadata = calloc(meta && meta->type == MF_JSON_OBJECT ? (size_t)meta->count + 1 : 1,
                         sizeof *h->metadata);
    if (!h->tensors || !h->metadata) {
        st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < root->count; i++) {
        const mf_json *v = &root->u.items[i];
        if (v != meta) {
            st = parse_tensor_entry(path, v, h->data_size, &h->tensors[h->num_tensors++], err);
            if (st) goto fail;
            continue;
        }
        if (v->type != MF_JSON_OBJECT) {
            st = bad(err, path, "__metadata__ is not a JSON object");
            goto fail;
        }
        for (int k = 0; k < v->count; k++) {
            const mf_json *e = &v->u.items[k];
            char pk[96];
            if (e->type != MF_JSON_STRING) {
                st = bad(err, path, "metadata '%s' is not a string (safetensors metadata holds "
                                    "strings only)",
                         printable(e->key, pk));
                goto fail;
            }
            h->metadata[h->num_metadata].key = e->key;
            h->metadata[h->num_metadata++].value = e->u.string;
        }
    }
    qsort(h->tensors, (size_t)h->num_tensors, sizeof *h->tensors, compare_by_offset);
    st = check_coverage(path, h, err);
    if (st) goto fail;
    st = match_checksums(path, h, err);
    if (st) goto fail;
    st = verify_checksums(path, h, in->fd, err);
    if (st) goto fail;
    return MF_OK;
fail:
    mf_checkpoint_header_free(h);
    return st;
}

const char *mf_checkpoint_metadata(const mf_checkpoint_header *h, const char *key)
{
    for (int i = 0; i < h->num_metadata; i++)
        if (!strcmp(h->metadata[i].key, key)) return h->metadata[i].value;
    return NULL;
}

const mf_checkpoint_tensor *mf_checkpoint_find(const mf_checkpoint_header *h, const char *name)
{
    for (int i = 0; i < h->num_tensors; i++)
        if (!strcmp(h->tensors[i].name, name)) return &h->tensors[i];
    return NULL;
}

mf_status mf_checkpoint_read_f32(const mf_checkpoint_header *h, const mf_checkpoint_tensor *t,
                                 float *out, mf_error *err)
{
    const header_internal *in = h->internal;
    char pn[96];
    if (strcmp(t->dtype, "F32"))
        return bad(err, in->path, "tensor '%s' has dtype %s, not F32", printable(t->name, pn),
                   t->dtype);
    size_t bytes = (size_t)(t->end - t->begin);
    ssize_t got = read_at(in->fd, out, bytes, h->data_start + t->begin);
    if (got < 0)
        return mf_fail(err, MF_ERR_IO, "%s: cannot read: %s", in->path, strerror(errno));
    if ((size_t)got != bytes)
        return bad(err, in->path, "truncated inside the data of tensor '%s' (did the file change?)",
                   printable(t->name, pn));
    if (t->has_crc32) {
        uint32_t crc = crc32_bytes(0, out, bytes);
        if (crc != t->crc32) return checksum_mismatch(err, in->path, t->name, t->crc32, crc);
    }
    if (!host_little_endian()) swap32(out, bytes / 4);
    return MF_OK;
}

/* ---- metadata ------------------------------------------------------------ */

typedef struct {
    const char *path;
    const mf_checkpoint_entry *entries;
    int count;
    mf_error *err;
} meta_reader;

static const char *meta_find(const meta_reader *r, const char *key)
{
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->entries[i].key, key)) return r->entries[i].value;
    return NULL;
}

static mf_status meta_get(const meta_reader *r, const char *key, const char **out)
{
    *out = meta_find(r, key);
    if (!*out) return bad(r->err, r->path, "metadata key '%s' is missing", key);
    return MF_OK;
}

static mf_status meta_invalid(const meta_reader *r, const char *key, const char *value,
                              const char *why)
{
    char pv[96];
    return bad(r->err, r->path, "metadata '%s' = '%s': %s", key, printable(value, pv), why);
}

/* Decimal digits with an optional '-' only: no spaces, '+', or trailing text. */
static int parse_integer(const char *s, int *negative, uint64_t *magnitude)
{
    *negative = *s == '-';
    if (*negative) s++;
    if (!*s) return 0;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    *magnitude = x;
    return 1;
}

static mf_status meta_long(const meta_reader *r, const char *key, long min, long max, long *out)
{
    const char *s;
    mf_status st = meta_get(r, key, &s);
    if (st) return st;
    int neg;
    uint64_t mag;
    char why[96];
    snprintf(why, sizeof why, "expected an integer in [%ld, %ld]", min, max);
    if (!parse_integer(s, &neg, &mag) || mag > (uint64_t)LONG_MAX) return meta_invalid(r, key, s, why);
    long v = neg ? -(long)mag : (long)mag;
    if (v < min || v > max) return meta_invalid(r, key, s, why);
    *out = v;
    return MF_OK;
}

static mf_status meta_int(const meta_reader *r, const char *key, int min, int max, int *out)
{
    long v;
    mf_status st = meta_long(r, key, min, max, &v);
    if (!st) *out = (int)v;
    return st;
}

static mf_status meta_u64(const meta_reader *r, const char *key, uint64_t *out)
{
    const char *s;
    mf_status st = meta_get(r, key, &s);
    if (st) return st;
    int neg;
    if (!parse_integer(s, &neg, out) || neg)
        return meta_invalid(r, key, s, "expected a non-negative 64-bit integer");
    return MF_OK;
}

/* A finite number as strtod reads it, no leading space or trailing text. */
static int parse_real(const char *s, double *out)
{
    if (!*s || *s == ' ' || (*s >= '\t' && *s <= '\r')) return 0;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (*end || !isfinite(x)) return 0;
    *out = x;
    return 1;
}

static int parse_real_f(const char *s, float *out)
{
    double check;
    if (!parse_real(s, &check)) return 0;
    /* strtof rounds once, so the "%.9g" text of a float gives that float back. */
    float x = strtof(s, NULL);
    if (!isfinite(x)) return 0;
    *out = x;
    return 1;
}

/* A float within [min, max]; max_open makes the upper end exclusive. */
static mf_status meta_float(const meta_reader *r, const char *key, double min, double max,
                            int max_open, float *out)
{
    const char *s;
    mf_status st = meta_get(r, key, &s);
    if (st) return st;
    char why[96];
    snprintf(why, sizeof why, "expected a number in [%g, %g%c", min, max, max_open ? ')' : ']');
    if (!parse_real_f(s, out) || !(*out >= min) || !(max_open ? *out < max : *out <= max))
        return meta_invalid(r, key, s, why);
    return MF_OK;
}

static mf_status meta_double(const meta_reader *r, const char *key, double min, double *out)
{
    const char *s;
    mf_status st = meta_get(r, key, &s);
    if (st) return st;
    char why[96];
    snprintf(why, sizeof why, "expected a finite number of at least %g", min);
    if (!parse_real(s, out) || *out < min) return meta_invalid(r, key, s, why);
    return MF_OK;
}

/* "a,b,c": exactly n finite numbers; positive ones when positive. */
static mf_status meta_list(const meta_reader *r, const char *key, int n, int positive, float *out)
{
    const char *s;
    mf_status st = meta_get(r, key, &s);
    if (st) return st;
    char why[96];
    snprintf(why, sizeof why, "expected %d comma-separated %snumbers, one per channel", n,
             positive ? "positive " : "");
    const char *p = s;
    for (int i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if ((comma != NULL) != (i + 1 < n) || len >= sizeof item) return meta_invalid(r, key, s, why);
        memcpy(item, p, len);
        item[len] = '\0';
        if (!parse_real_f(item, &out[i]) || (positive && !(out[i] > 0)))
            return meta_invalid(r, key, s, why);
        p = comma ? comma + 1 : p + len;
    }
    return MF_OK;
}

/* The optional "class_names" value: a JSON array of exactly classes strings,
 * each one mf_class_name_problem accepts, in strictly increasing byte order
 * (sorted and unique, as a folder's classes are). Copied into *out (when
 * non-NULL) as classes malloc'd strings. */
static mf_status parse_class_names(const meta_reader *r, const char *value, int classes,
                                   char ***out)
{
    static const char key[] = "class_names";
    char why[96], pv[96];
    snprintf(why, sizeof why, "expected a JSON array of %d class names", classes);
    size_t len = strlen(value);
    char *text = malloc(len + 1);
    if (!text) return mf_fail(r->err, MF_ERR_NOMEM, "%s: out of memory", r->path);
    memcpy(text, value, len + 1);
    mf_json root;
    char msg[160];
    if (mf_json_parse(text, len, &root, msg, sizeof msg)) {
        free(text);
        return meta_invalid(r, key, value, why);
    }
    mf_status st = MF_OK;
    if (root.type != MF_JSON_ARRAY || root.count != classes) st = meta_invalid(r, key, value, why);
    char **names = NULL;
    if (!st && out && !(names = calloc((size_t)classes, sizeof *names)))
        st = mf_fail(r->err, MF_ERR_NOMEM, "%s: out of memory", r->path);
    for (int k = 0; !st && k < classes; k++) {
        const mf_json *v = &root.u.items[k];
        const char *problem = v->type != MF_JSON_STRING ? "not a string"
                              : (int)strlen(v->u.string) != v->count ? "a NUL byte in it"
                              : mf_class_name_problem(v->u.string);
        if (problem) {
            st = bad(r->err, r->path, "metadata '%s': name %d%s%s%s: %s", key, k,
                     v->type == MF_JSON_STRING ? " ('" : "",
                     v->type == MF_JSON_STRING ? printable(v->u.string, pv) : "",
                     v->type == MF_JSON_STRING ? "')" : "", problem);
        } else if (k > 0 && strcmp(root.u.items[k - 1].u.string, v->u.string) >= 0) {
            st = bad(r->err, r->path, "metadata '%s': name %d ('%s') is not after name %d in byte "
                     "order (a folder's class names are sorted and unique)", key, k,
                     printable(v->u.string, pv), k - 1);
        } else if (names && !(names[k] = malloc((size_t)v->count + 1))) {
            st = mf_fail(r->err, MF_ERR_NOMEM, "%s: out of memory", r->path);
        } else if (names) {
            memcpy(names[k], v->u.string, (size_t)v->count + 1);
        }
    }
    mf_json_free(&root);
    free(text);
    if (st) mf_checkpoint_class_names_free(names, classes);
    else if (out) *out = names;
    return st;
}

void mf_checkpoint_class_names_free(char **names, int count)
{
    for (int k = 0; names && k < count; k++) free(names[k]);
    free(names);
}

/* A folder model's names and settings: the three keys together or none,
 * and only with dataset "folder". */
static mf_status parse_folder_keys(const meta_reader *r, const mf_config *cfg,
                                   mf_checkpoint_info *info)
{
    static const char *const keys[3] = {"class_names", "folder_image_size", "folder_center_crop"};
    int present = 0;
    for (int i = 0; i < 3; i++) present += meta_find(r, keys[i]) != NULL;
    if (!present) return MF_OK;
    for (int i = 0; i < 3; i++) {
        const char *v = meta_find(r, keys[i]);
        if (v && info->dataset != MF_FOLDER)
            return meta_invalid(r, keys[i], v, "only a folder dataset's checkpoint holds it");
    }
    const char *names;
    mf_status st;
    if ((st = meta_get(r, "class_names", &names)) ||
        (st = meta_int(r, "folder_image_size", 0, MF_IMAGE_MAX_SIDE, &info->folder_image_size)) ||
        (st = meta_int(r, "folder_center_crop", 0, 1, &info->folder_center_crop)))
        return st;
    if (info->folder_center_crop && !info->folder_image_size)
        return meta_invalid(r, "folder_center_crop", meta_find(r, "folder_center_crop"),
                            "a center crop needs a folder_image_size");
    if (info->folder_image_size && info->folder_image_size != cfg->image_size)
        return meta_invalid(r, "folder_image_size", meta_find(r, "folder_image_size"),
                            "the images were resized to another size than the model's");
    if ((st = parse_class_names(r, names, cfg->classes, NULL))) return st;
    info->has_class_names = 1;
    return MF_OK;
}

/* Keys a resumable checkpoint adds; a file holds all of them or none. */
static const char *const resume_keys[] = {
    "epochs",  "batch",          "lr",       "warmup_epochs", "adamw_beta1", "adamw_beta2",
    "adamw_eps", "weight_decay", "augment",  "eval_batch",    "limit_train", "limit_test",
    "step",    "batch_in_epoch", "loss_sum", "correct",       "seen",        "train_seconds",
    "test_loss"};

/* The configuration and the run from the metadata, every value checked. */
static mf_status parse_metadata(const meta_reader *r, mf_config *cfg, mf_checkpoint_info *info)
{
    const char *s;
    mf_status st;
    mf_checkpoint_info_init(info);
    memset(cfg, 0, sizeof *cfg);
    if ((st = meta_get(r, "format", &s))) return st;
    if (strcmp(s, "minformer")) return meta_invalid(r, "format", s, "not a minformer checkpoint");
    if ((st = meta_get(r, "version", &s))) return st;
    info->version = 0;
    for (int v = MF_CHECKPOINT_OLDEST_VERSION; v <= MF_CHECKPOINT_VERSION; v++) {
        char text[16];
        snprintf(text, sizeof text, "%d", v);
        if (!strcmp(s, text)) info->version = v;
    }
    if (!info->version) {
        char why[80];
        snprintf(why, sizeof why, "this build reads checkpoint format versions %d to %d",
                 MF_CHECKPOINT_OLDEST_VERSION, MF_CHECKPOINT_VERSION);
        return meta_invalid(r, "version", s, why);
    }
    if ((st = meta_get(r, "dataset", &s))) return st;
    if (mf_dataset_parse(s, &info->dataset, NULL))
        return meta_invalid(r, "dataset", s, "unknown dataset");

    if ((st = meta_int(r, "image_size", 1, 4096, &cfg->image_size)) ||
        (st = meta_int(r, "channels", 1, 3, &cfg->channels)) ||
        (st = meta_int(r, "classes", 2, MF_MAX_CLASSES, &cfg->classes)) ||
        (st = meta_int(r, "patch", 1, 4096, &cfg->patch)) ||
        (st = meta_int(r, "dim", 1, 16384, &cfg->dim)) ||
        (st = meta_int(r, "layers", 1, 4096, &cfg->layers)) ||
        (st = meta_int(r, "heads", 1, 16384, &cfg->heads)) ||
        (st = meta_int(r, "mlp_ratio", 0, 64, &cfg->mlp_ratio)) ||
        (st = meta_float(r, "dropout", 0, 1, 1, &cfg->dropout)))
        return st;
    if ((st = meta_get(r, "qk", &s))) return st;
    if (mf_qk_parse(s, &cfg->qk, NULL)) return meta_invalid(r, "qk", s, "unknown query/key kind");
    if ((st = meta_get(r, "vo", &s))) return st;
    if (mf_vo_parse(s, &cfg->vo, NULL)) return meta_invalid(r, "vo", s, "unknown value/output kind");
    if ((st = meta_get(r, "pool", &s))) return st;
    if (mf_pool_parse(s, &cfg->pool, NULL)) return meta_invalid(r, "pool", s, "unknown pooling");
    mf_error e;
    if (mf_config_validate(cfg, &e))
        return bad(r->err, r->path, "the metadata describes an invalid model: %s", e.message);
    if ((st = meta_list(r, "mean", cfg->channels, 0, info->mean)) ||
        (st = meta_list(r, "std", cfg->channels, 1, info->std)) ||
        (st = parse_folder_keys(r, cfg, info)))
        return st;

    if ((st = meta_int(r, "epoch", 0, INT_MAX, &info->state.epoch)) ||
        (st = meta_u64(r, "seed", &info->opts.seed)) ||
        (st = meta_float(r, "test_acc", -1, 100, 0, &info->state.test_acc)))
        return st;

    /* Optional: the fingerprint of the data the run trained on. */
    const char *fp = meta_find(r, "data_fingerprint");
    if (fp) {
        char *end;
        unsigned long long v = strtoull(fp, &end, 16);
        if (strlen(fp) != 16 || strspn(fp, "0123456789abcdef") != 16 || *end || !v)
            return meta_invalid(r, "data_fingerprint", fp, "not 16 hexadecimal digits");
        info->data_fingerprint = (uint64_t)v;
    }

    int present = 0, nkeys = (int)(sizeof resume_keys / sizeof resume_keys[0]);
    for (int i = 0; i < nkeys; i++) present += meta_find(r, resume_keys[i]) != NULL;
    info->has_train_state = present > 0;
    if (!present) return MF_OK;
    mf_train_opts *o = &info->opts;
    mf_train_state *t = &info->state;
    if ((st = meta_int(r, "epochs", 0, INT_MAX, &o->epochs)) ||
        (st = meta_int(r, "batch", 1, INT_MAX, &o->batch)) ||
        (st = meta_float(r, "lr", 0, 1e30, 0, &o->lr)) ||
        (st = meta_float(r, "warmup_epochs", -1e30, 1e30, 0, &o->warmup_epochs)) ||
        (st = meta_float(r, "adamw_beta1", 0, 1, 1, &o->adamw.beta1)) ||
        (st = meta_float(r, "adamw_beta2", 0, 1, 1, &o->adamw.beta2)) ||
        (st = meta_float(r, "adamw_eps", 0, 1e30, 0, &o->adamw.eps)) ||
        (st = meta_float(r, "weight_decay", 0, 1e30, 0, &o->adamw.weight_decay)) ||
        (st = meta_int(r, "augment", 0, 1, &o->augment)) ||
        (st = meta_int(r, "eval_batch", 1, INT_MAX, &o->eval_batch)) ||
        (st = meta_int(r, "limit_train", 0, INT_MAX, &info->limit_train)) ||
        (st = meta_int(r, "limit_test", 0, INT_MAX, &info->limit_test)) ||
        (st = meta_long(r, "step", 0, LONG_MAX, &t->step)) ||
        (st = meta_int(r, "batch_in_epoch", 0, INT_MAX, &t->batch_in_epoch)) ||
        (st = meta_double(r, "loss_sum", 0, &t->loss_sum)) ||
        (st = meta_long(r, "correct", 0, LONG_MAX, &t->correct)) ||
        (st = meta_long(r, "seen", 0, LONG_MAX, &t->seen)) ||
        (st = meta_double(r, "train_seconds", 0, &t->train_seconds)) ||
        (st = meta_float(r, "test_loss", -1, 1e30, 0, &t->test_loss)))
        return st;
    /* Optional: files written before the schedule was stored ran cosine
     * (mf_checkpoint_info_init's default). */
    const char *sched = meta_find(r, "schedule");
    if (sched && mf_schedule_parse(sched, &o->schedule, NULL))
        return meta_invalid(r, "schedule", sched, "expected cosine or constant");
    /* Likewise the precision: files without it trained in fp32. */
    const char *prec = meta_find(r, "precision");
    if (prec && mf_precision_parse(prec, &o->precision))
        return meta_invalid(r, "precision", prec, "expected fp32 or bf16");
    if (!(o->adamw.eps > 0)) return meta_invalid(r, "adamw_eps", meta_find(r, "adamw_eps"),
                                                 "must be positive");
    if (t->correct > t->seen)
        return meta_invalid(r, "correct", meta_find(r, "correct"), "more than 'seen'");
    return MF_OK;
}

void mf_checkpoint_info_init(mf_checkpoint_info *info)
{
    memset(info, 0, sizeof *info);
    info->version = MF_CHECKPOINT_VERSION;
    info->dataset = MF_MNIST;
    for (int c = 0; c < 3; c++) info->std[c] = 1.0f;
    mf_train_opts_default(&info->opts);
    mf_train_state_init(&info->state);
}

/* ---- saving ---------------------------------------------------------------- */

typedef struct {
    mf_json_writer *w;
    int first;
} meta_writer;

static void put_str(meta_writer *mw, const char *key, const char *value)
{
    mf_json_raw(mw->w, mw->first ? "" : ",");
    mw->first = 0;
    mf_json_string(mw->w, key);
    mf_json_raw(mw->w, ":");
    mf_json_string(mw->w, value);
}

static void put_fmt(meta_writer *mw, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put_fmt(meta_writer *mw, const char *key, const char *fmt, ...)
{
    char value[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    put_str(mw, key, value);
}

/* Floats as "%.9g" and doubles as "%.17g": the shortest decimal forms that
 * always read back to the same bits. */
static void put_list(meta_writer *mw, const char *key, const float *x, int n)
{
    char value[256];
    size_t len = 0;
    value[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(value + len, sizeof value - len, "%s%.9g", i ? "," : "",
                                (double)x[i]);
    put_str(mw, key, value);
}

static void write_metadata(mf_json_writer *w, const mf_model *m, const mf_checkpoint_info *info)
{
    const mf_config *c = &m->cfg;
    const mf_train_opts *o = &info->opts;
    const mf_train_state *t = &info->state;
    meta_writer mw = {w, 1};
    put_str(&mw, "format", "minformer");
    put_fmt(&mw, "version", "%d", MF_CHECKPOINT_VERSION);
    put_str(&mw, "library_version", MF_VERSION);
    put_str(&mw, "dataset", mf_dataset_name(info->dataset));
    put_fmt(&mw, "image_size", "%d", c->image_size);
    put_fmt(&mw, "channels", "%d", c->channels);
    put_fmt(&mw, "classes", "%d", c->classes);
    put_fmt(&mw, "patch", "%d", c->patch);
    put_fmt(&mw, "dim", "%d", c->dim);
    put_fmt(&mw, "layers", "%d", c->layers);
    put_fmt(&mw, "heads", "%d", c->heads);
    put_fmt(&mw, "mlp_ratio", "%d", c->mlp_ratio);
    put_str(&mw, "qk", mf_qk_name(c->qk));
    put_str(&mw, "vo", mf_vo_name(c->vo));
    put_str(&mw, "pool", mf_pool_name(c->pool));
    put_fmt(&mw, "dropout", "%.9g", (double)c->dropout);
    put_list(&mw, "mean", info->mean, c->channels);
    put_list(&mw, "std", info->std, c->channels);
    put_fmt(&mw, "epoch", "%d", t->epoch);
    put_fmt(&mw, "seed", "%llu", (unsigned long long)o->seed);
    put_fmt(&mw, "test_acc", "%.9g", (double)t->test_acc);
    if (info->data_fingerprint)
        put_fmt(&mw, "data_fingerprint", "%016llx", (unsigned long long)info->data_fingerprint);
    if (info->class_names) {
        mf_json_writer list = {0};
        mf_json_raw(&list, "[");
        for (int k = 0; k < c->classes; k++) {
            if (k) mf_json_raw(&list, ",");
            mf_json_string(&list, info->class_names[k]);
        }
        mf_json_raw(&list, "]");
        if (list.failed) w->failed = 1;
        else put_str(&mw, "class_names", list.data);
        mf_json_writer_free(&list);
        put_fmt(&mw, "folder_image_size", "%d", info->folder_image_size);
        put_fmt(&mw, "folder_center_crop", "%d", info->folder_center_crop);
    }
    /* The resume keys (resume_keys above). */
    put_fmt(&mw, "epochs", "%d", o->epochs);
    put_fmt(&mw, "batch", "%d", o->batch);
    put_fmt(&mw, "lr", "%.9g", (double)o->lr);
    put_fmt(&mw, "warmup_epochs", "%.9g", (double)o->warmup_epochs);
    put_str(&mw, "schedule", mf_schedule_name(o->schedule));
    put_str(&mw, "precision", mf_precision_name(o->precision));
    put_fmt(&mw, "adamw_beta1", "%.9g", (double)o->adamw.beta1);
    put_fmt(&mw, "adamw_beta2", "%.9g", (double)o->adamw.beta2);
    put_fmt(&mw, "adamw_eps", "%.9g", (double)o->adamw.eps);
    put_fmt(&mw, "weight_decay", "%.9g", (double)o->adamw.weight_decay);
    put_fmt(&mw, "augment", "%d", o->augment);
    put_fmt(&mw, "eval_batch", "%d", o->eval_batch);
    put_fmt(&mw, "limit_train", "%d", info->limit_train);
    put_fmt(&mw, "limit_test", "%d", info->limit_test);
    put_fmt(&mw, "step", "%ld", t->step);
    put_fmt(&mw, "batch_in_epoch", "%d", t->batch_in_epoch);
    put_fmt(&mw, "loss_sum", "%.17g", t->loss_sum);
    put_fmt(&mw, "correct", "%ld", t->correct);
    put_fmt(&mw, "seen", "%ld", t->seen);
    put_fmt(&mw, "train_seconds", "%.17g", t->train_seconds);
    put_fmt(&mw, "test_loss", "%.9g", (double)t->test_loss);
}

static void write_tensor_entry(mf_json_writer *w, const char *prefix, const mf_tensor_info *t,
                               uint64_t *offset)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s", prefix, t->name);
    mf_json_raw(w, ",");
    mf_json_string(w, name);
    mf_json_raw(w, ":{\"dtype\":\"F32\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) mf_json_printf(w, "%s%d", d ? "," : "", t->shape[d]);
    uint64_t bytes = (uint64_t)t->numel * 4;
    mf_json_printf(w, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)*offset,
                   (unsigned long long)(*offset + bytes));
    *offset += bytes;
}

/* The JSON header, padded with spaces so the data starts 8-byte aligned. The
 * checksums close the metadata, computed from the bytes write_floats writes. */
static void build_header(mf_json_writer *w, const mf_model *m, const mf_checkpoint_info *info,
                         int with_optimizer)
{
    static const char *const prefixes[3] = {"", MF_CHECKPOINT_ADAM_M_PREFIX,
                                            MF_CHECKPOINT_ADAM_V_PREFIX};
    const float *blocks[3] = {m->params, m->adam_m, m->adam_v};
    uint64_t offset = 0;
    mf_json_raw(w, "{\"__metadata__\":{");
    write_metadata(w, m, info);
    for (int k = 0; k < (with_optimizer ? 3 : 1); k++)
        for (int i = 0; i < m->num_tensors; i++) {
            const mf_tensor_info *t = &m->tensors[i];
            char key[200];
            snprintf(key, sizeof key, "%s%s%s", MF_CHECKPOINT_CRC32_PREFIX, prefixes[k], t->name);
            mf_json_raw(w, ",");
            mf_json_string(w, key);
            mf_json_printf(w, ":\"%08lx\"",
                           (unsigned long)crc32_floats(blocks[k] + t->offset, t->numel));
        }
    mf_json_raw(w, "}");
    for (int k = 0; k < (with_optimizer ? 3 : 1); k++)
        for (int i = 0; i < m->num_tensors; i++)
            write_tensor_entry(w, prefixes[k], &m->tensors[i], &offset);
    mf_json_raw(w, "}");
    while (!w->failed && w->len % 8) mf_json_raw(w, " ");
}

/* Parses the header just built with the loader's own rules, so a save never
 * writes a file that load would refuse. */
static mf_status check_loadable(const char *path, const mf_json_writer *w, const mf_model *m,
                                mf_error *err)
{
    char *copy = malloc(w->len + 1);
    if (!copy) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    memcpy(copy, w->data, w->len + 1);
    mf_json root;
    char msg[200];
    mf_status st = MF_OK;
    if (mf_json_parse(copy, w->len, &root, msg, sizeof msg)) {
        free(copy);
        return mf_fail(err, MF_ERR_CONFIG, "%s: internal error: bad header JSON: %s", path, msg);
    }
    const mf_json *meta = mf_json_get(&root, "__metadata__");
    mf_checkpoint_entry *entries = meta ? calloc((size_t)meta->count + 1, sizeof *entries) : NULL;
    if (!entries) {
        st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    } else {
        for (int i = 0; i < meta->count; i++) {
            entries[i].key = meta->u.items[i].key;
            entries[i].value = meta->u.items[i].u.string;
        }
        mf_error e;
        meta_reader r = {path, entries, meta->count, &e};
        mf_config cfg;
        mf_checkpoint_info back;
        if (parse_metadata(&r, &cfg, &back)) {
            st = mf_fail(err, MF_ERR_CONFIG, "%s (not saved)", e.message);
        } else {
            const mf_config *c = &m->cfg;
            if (cfg.image_size != c->image_size || cfg.channels != c->channels ||
                cfg.classes != c->classes || cfg.patch != c->patch || cfg.dim != c->dim ||
                cfg.layers != c->layers || cfg.heads != c->heads ||
                cfg.mlp_ratio != c->mlp_ratio || cfg.qk != c->qk || cfg.vo != c->vo ||
                cfg.pool != c->pool || memcmp(&cfg.dropout, &c->dropout, sizeof cfg.dropout))
                st = mf_fail(err, MF_ERR_CONFIG,
                             "%s: internal error: the configuration does not round-trip", path);
        }
    }
    free(entries);
    mf_json_free(&root);
    free(copy);
    return st;
}

mf_status mf_checkpoint_save(const char *path, const mf_model *m, const mf_checkpoint_info *info,
                             int with_optimizer, mf_error *err)
{
    if (!m || !m->params || !m->tensors || !info)
        return mf_fail(err, MF_ERR_CONFIG, "%s: nothing to save (no model)", path);
    mf_json_writer w = {0};
    build_header(&w, m, info, with_optimizer);
    if (w.failed) {
        mf_json_writer_free(&w);
        return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    mf_status st = check_loadable(path, &w, m, err);
    if (st) {
        mf_json_writer_free(&w);
        return st;
    }
    /* Streamed: the optimizer's moments triple a model's size, too much to
     * build in memory once more. A failed write is reported by the commit. */
    mf_file_replacement r;
    if ((st = mf_file_replace_begin(&r, path, err))) {
        mf_json_writer_free(&w);
        return st;
    }
    unsigned char len8[8];
    put_le64(len8, w.len);
    mf_file_replace_write(&r, len8, 8, NULL);
    mf_file_replace_write(&r, w.data, w.len, NULL);
    mf_json_writer_free(&w);
    const float *blocks[3] = {m->params, m->adam_m, m->adam_v};
    /* Writes the floats build_header's checksums were computed from. */
    for (int k = 0; !r.error && k < (with_optimizer ? 3 : 1); k++)
        for (int i = 0; !r.error && i < m->num_tensors; i++)
            write_floats(&r, blocks[k] + m->tensors[i].offset, m->tensors[i].numel);
    return mf_file_replace_commit(&r, err);
}

/* ---- loading ----------------------------------------------------------------- */

typedef struct {
    const char *name;
    int index;
} name_index;

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const name_index *)a)->name, ((const name_index *)b)->name);
}

/* Index of the model tensor called name in sorted (by name), or -1. */
static int find_model_tensor(const name_index *sorted, int count, const char *name)
{
    name_index key = {name, -1};
    const name_index *hit = bsearch(&key, sorted, (size_t)count, sizeof key, compare_names);
    return hit ? hit->index : -1;
}

static int has_prefix(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

static void format_shape(char *out, size_t size, int ndim, const uint64_t *shape64,
                         const int *shape32)
{
    size_t len = (size_t)snprintf(out, size, "[");
    for (int d = 0; d < ndim && len < size; d++)
        len += (size_t)snprintf(out + len, size - len, "%s%llu", d ? ", " : "",
                                shape64 ? (unsigned long long)shape64[d]
                                        : (unsigned long long)shape32[d]);
    if (len < size) snprintf(out + len, size - len, "]");
}

/* Matches the file's tensors to the model's by name, dtype and shape, then
 * reads each one straight into its place. */
static mf_status load_tensors(const char *path, const mf_checkpoint_header *h, mf_model *m,
                              int has_optimizer, mf_error *err)
{
    static const char *const prefixes[3] = {"", MF_CHECKPOINT_ADAM_M_PREFIX,
                                            MF_CHECKPOINT_ADAM_V_PREFIX};
    float *bases[3] = {m->params, m->adam_m, m->adam_v};
    int T = m->num_tensors;
    name_index *order = malloc((size_t)T * sizeof *order);
    int *target = malloc(((size_t)h->num_tensors + 1) * sizeof *target);
    int *kind = malloc(((size_t)h->num_tensors + 1) * sizeof *kind);
    unsigned char *seen = calloc(3 * (size_t)T, 1);
    mf_status st = MF_OK;
    char pn[96], s1[96], s2[96];
    if (!order || !target || !kind || !seen) {
        st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < T; i++) order[i] = (name_index){m->tensors[i].name, i};
    qsort(order, (size_t)T, sizeof *order, compare_names);

    int unknown = -1;
    for (int i = 0; i < h->num_tensors; i++) {
        const mf_checkpoint_tensor *t = &h->tensors[i];
        kind[i] = has_prefix(t->name, prefixes[1]) ? 1 : has_prefix(t->name, prefixes[2]) ? 2 : 0;
        target[i] = find_model_tensor(order, T, t->name + strlen(prefixes[kind[i]]));
        if (target[i] < 0) {
            if (unknown < 0) unknown = i;
            continue;
        }
        const mf_tensor_info *mt = &m->tensors[target[i]];
        seen[(size_t)kind[i] * (size_t)T + (size_t)target[i]] = 1;
        if (strcmp(t->dtype, "F32")) {
            st = bad(err, path, "tensor '%s' has dtype %s; minformer checkpoints hold F32 only",
                     printable(t->name, pn), t->dtype);
            goto done;
        }
        int same = t->ndim == mt->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == (uint64_t)mt->shape[d];
        if (!same) {
            format_shape(s1, sizeof s1, t->ndim, t->shape, NULL);
            format_shape(s2, sizeof s2, mt->ndim, NULL, mt->shape);
            st = bad(err, path, "tensor '%s' has shape %s, but the model in the metadata needs %s",
                     printable(t->name, pn), s1, s2);
            goto done;
        }
    }
    for (int k = 0; k < (has_optimizer ? 3 : 1); k++)
        for (int j = 0; j < T; j++)
            if (!seen[(size_t)k * (size_t)T + (size_t)j]) {
                st = bad(err, path, "tensor '%s%s' is missing%s", prefixes[k], m->tensors[j].name,
                         k ? " (the file holds part of the optimizer state)" : "");
                goto done;
            }
    if (unknown >= 0) {
        st = bad(err, path, "unknown tensor '%s' (not part of the model in the metadata)",
                 printable(h->tensors[unknown].name, pn));
        goto done;
    }
    for (int i = 0; i < h->num_tensors; i++) {
        const mf_tensor_info *mt = &m->tensors[target[i]];
        float *x = bases[kind[i]] + mt->offset;
        st = mf_checkpoint_read_f32(h, &h->tensors[i], x, err);
        if (st) goto done;
        for (size_t j = 0; j < mt->numel; j++)
            if (!isfinite(x[j]) || (kind[i] == 2 && x[j] < 0)) {
                st = bad(err, path, "tensor '%s' holds %s at index %zu", printable(h->tensors[i].name, pn),
                         isfinite(x[j]) ? "a negative second moment" : "a non-finite value", j);
                goto done;
            }
    }
done:
    free(order);
    free(target);
    free(kind);
    free(seen);
    return st;
}

/* The header read and validated, and the configuration and the run parsed
 * from its metadata; on failure the header is freed. */
static mf_status read_metadata(const char *path, mf_checkpoint_header *h, mf_config *cfg,
                               mf_checkpoint_info *info, mf_error *err)
{
    mf_status st = mf_checkpoint_read_header(path, h, err);
    if (st) return st;
    meta_reader r = {path, h->metadata, h->num_metadata, err};
    st = parse_metadata(&r, cfg, info);
    if (st) mf_checkpoint_header_free(h);
    return st;
}

mf_status mf_checkpoint_load(const char *path, mf_model *m, mf_checkpoint_info *info_out,
                             mf_error *err)
{
    memset(m, 0, sizeof *m);
    mf_checkpoint_header h;
    mf_config cfg;
    mf_checkpoint_info info;
    mf_status st = read_metadata(path, &h, &cfg, &info, err);
    if (st) return st;
    /* read_header verified the checksums a file has; from version 2 on they
     * are required, so stripping them is not a way around the check. */
    if (info.version >= 2 && !h.has_checksums && h.num_tensors > 0) {
        char pn[96], pn2[96];
        st = bad(err, path, "tensor '%s' has no checksum (metadata '%s%s'), which format version "
                            "%d requires",
                 printable(h.tensors[0].name, pn), MF_CHECKPOINT_CRC32_PREFIX,
                 printable(h.tensors[0].name, pn2), info.version);
        goto done;
    }
    info.has_optimizer = 0;
    for (int i = 0; i < h.num_tensors; i++)
        if (has_prefix(h.tensors[i].name, MF_CHECKPOINT_ADAM_M_PREFIX) ||
            has_prefix(h.tensors[i].name, MF_CHECKPOINT_ADAM_V_PREFIX))
            info.has_optimizer = 1;
    /* Bounds the allocation by the file size before building the model. */
    uint64_t need = (uint64_t)mf_config_num_params(&cfg) * 4;
    if (need > h.data_size) {
        st = bad(err, path,
                 "the data section holds %llu bytes, fewer than the %llu the parameters of the "
                 "model in the metadata need",
                 (unsigned long long)h.data_size, (unsigned long long)need);
        goto done;
    }
    mf_error e;
    st = mf_model_create(m, &cfg, &e);
    if (st) {
        st = mf_fail(err, st, "%s: %s", path, e.message);
        goto done;
    }
    st = load_tensors(path, &h, m, info.has_optimizer, err);
    if (st) goto done;
    if (info_out) *info_out = info;
done:
    if (st) mf_model_free(m);
    mf_checkpoint_header_free(&h);
    return st;
}

mf_status mf_checkpoint_read_classes(const char *path, char ***names, int *count, mf_error *err)
{
    *names = NULL;
    *count = 0;
    mf_checkpoint_header h;
    mf_config cfg;
    mf_checkpoint_info info;
    mf_status st = read_metadata(path, &h, &cfg, &info, err);
    if (st) return st;
    meta_reader r = {path, h.metadata, h.num_metadata, err};
    if (info.has_class_names) {
        st = parse_class_names(&r, meta_find(&r, "class_names"), cfg.classes, names);
        if (!st) *count = cfg.classes;
    }
    mf_checkpoint_header_free(&h);
    return st;
}
