/* IDX files (MNIST, Fashion-MNIST), raw or gzip. zlib's gzread reads both: a
 * file without the gzip magic is passed through unchanged. Every header field
 * is checked, and the payload must have exactly the size the header implies,
 * so a short, padded or corrupt file is an error, never an out-of-bounds read. */
#define _POSIX_C_SOURCE 200809L
#include "minformer/data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

enum {
    IDX_MAGIC_IMAGES = 0x00000803, /* unsigned byte, 3 dimensions */
    IDX_MAGIC_LABELS = 0x00000801, /* unsigned byte, 1 dimension */
    IDX_MAX_COUNT = 100000000,     /* far above any real split; stops absurd headers */
    IDX_MAX_SIDE = 1024
};

static uint32_t read_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* zlib's message without the "path: " it prefixes, since ours names the file already. */
static const char *gz_message(gzFile f, const char *path, int *code)
{
    const char *msg = gzerror(f, code);
    size_t n = strlen(path);
    if (msg && !strncmp(msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return msg ? msg : "unknown error";
}

/* The largest IDX file, and the largest payload a header may announce, that
 * is accepted: 4 GiB, five million 28x28 images (MNIST's training images are
 * 47 MB). A gzip file could otherwise inflate a thousandfold past what its
 * size suggests. */
#define IDX_MAX_BYTES ((uint64_t)4 << 30)

/* Opens path for reading, only as a regular file (a FIFO would block the
 * open, a device such as /dev/zero would never end) of at most
 * IDX_MAX_BYTES; *size is its size on disk. */
static mf_status idx_open(const char *path, gzFile *out, uint64_t *size, mf_error *err)
{
    int fd = mf_open_regular(path, 0, size, err);
    if (fd < 0) return MF_ERR_IO;
    if (*size > IDX_MAX_BYTES) {
        close(fd);
        return mf_fail(err, MF_ERR_IO, "%s: %llu bytes, over the %llu MiB limit for an IDX file",
                       path, (unsigned long long)*size, (unsigned long long)(IDX_MAX_BYTES >> 20));
    }
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory for the gzip reader", path);
    }
    gzbuffer(f, 1 << 17);
    *out = f;
    return MF_OK;
}

/* After the header: a raw file's size must be exactly what the header
 * implies, checked before reading anything more; a gzip file's payload must
 * stay under the limit. */
static mf_status idx_check_size(gzFile f, const char *path, uint64_t file_size,
                                size_t header_bytes, uint64_t payload, mf_error *err)
{
    uint64_t expected = header_bytes + payload;
    if (gzdirect(f)) {
        if (file_size < expected)
            return mf_fail(err, MF_ERR_FORMAT, "%s: truncated: expected %llu bytes, found %llu",
                           path, (unsigned long long)expected, (unsigned long long)file_size);
        if (file_size > expected)
            return mf_fail(err, MF_ERR_FORMAT, "%s: %llu trailing bytes after the %llu the header "
                           "implies", path, (unsigned long long)(file_size - expected),
                           (unsigned long long)expected);
    } else if (payload > IDX_MAX_BYTES) {
        return mf_fail(err, MF_ERR_FORMAT, "%s: the header implies %llu bytes of data, over the "
                       "%llu MiB limit for an IDX file", path, (unsigned long long)payload,
                       (unsigned long long)(IDX_MAX_BYTES >> 20));
    }
    return MF_OK;
}

/* Reads up to want bytes into buf; *got is how many arrived. A decompression
 * or read error is reported; a short read is left to the caller to judge. */
static mf_status idx_read(gzFile f, const char *path, void *buf, size_t want, size_t *got,
                          mf_error *err)
{
    size_t done = 0;
    unsigned char *p = buf;
    while (done < want) {
        size_t chunk = want - done;
        if (chunk > (1u << 30)) chunk = 1u << 30;
        int n = gzread(f, p + done, (unsigned)chunk);
        if (n < 0) {
            int code;
            const char *msg = gz_message(f, path, &code);
            if (code == Z_ERRNO)
                return mf_fail(err, MF_ERR_IO, "%s: read error: %s", path, strerror(errno));
            return mf_fail(err, MF_ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
        }
        if (n == 0) break;
        done += (size_t)n;
    }
    *got = done;
    /* A gzip stream cut short reads as a clean end of data plus a pending error. */
    int code;
    const char *msg = gz_message(f, path, &code);
    if (code != Z_OK && code != Z_STREAM_END) {
        if (code == Z_ERRNO)
            return mf_fail(err, MF_ERR_IO, "%s: read error: %s", path, strerror(errno));
        return mf_fail(err, MF_ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
    }
    return MF_OK;
}

/* Reads exactly payload bytes after a header of header_bytes, then insists on
 * end of file. The buffer grows with the data actually read, so a header that
 * claims gigabytes cannot force a huge allocation from a small file. */
static mf_status idx_read_payload(gzFile f, const char *path, size_t header_bytes, size_t payload,
                                  uint8_t **out, mf_error *err)
{
    size_t cap = payload < ((size_t)1 << 22) ? payload : ((size_t)1 << 22);
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    size_t have = 0;
    mf_status st = MF_OK;
    for (;;) {
        size_t got = 0;
        st = idx_read(f, path, buf + have, cap - have, &got, err);
        if (st) goto fail;
        have += got;
        if (have < cap || cap == payload) break;
        size_t next = cap * 2 < payload ? cap * 2 : payload;
        uint8_t *grown = realloc(buf, next);
        if (!grown) {
            st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        buf = grown;
        cap = next;
    }
    if (have < payload) {
        st = mf_fail(err, MF_ERR_FORMAT, "%s: truncated: expected %zu bytes, found %zu", path,
                     header_bytes + payload, header_bytes + have);
        goto fail;
    }
    unsigned char extra[4096];
    size_t trailing = 0, got;
    do {
        st = idx_read(f, path, extra, sizeof extra, &got, err);
        if (st) goto fail;
        trailing += got;
    } while (got == sizeof extra && trailing < ((size_t)1 << 20));
    if (trailing) {
        st = mf_fail(err, MF_ERR_FORMAT, "%s: %s%zu trailing bytes after the %zu the header implies",
                     path, got == sizeof extra ? "at least " : "", trailing,
                     header_bytes + payload);
        goto fail;
    }
    *out = buf;
    return MF_OK;
fail:
    free(buf);
    return st;
}

/* Reads and checks a header: the magic, then ndims big-endian counts. */
static mf_status idx_read_header(gzFile f, const char *path, uint32_t magic, int ndims,
                                 uint32_t *dims, mf_error *err)
{
    unsigned char head[16];
    size_t want = 4 + 4 * (size_t)ndims, got = 0;
    mf_status st = idx_read(f, path, head, want, &got, err);
    if (st) return st;
    if (got == 0) return mf_fail(err, MF_ERR_FORMAT, "%s: empty file", path);
    if (got >= 4 && read_be32(head) != magic) {
        uint32_t m = read_be32(head);
        const char *hint = m == IDX_MAGIC_IMAGES   ? " (an IDX image file)"
                           : m == IDX_MAGIC_LABELS ? " (an IDX label file)"
                                                   : "";
        return mf_fail(err, MF_ERR_FORMAT, "%s: bad magic 0x%08x%s, expected 0x%08x (IDX %s)", path,
                       (unsigned)m, hint, (unsigned)magic,
                       magic == IDX_MAGIC_IMAGES ? "images" : "labels");
    }
    if (got < want)
        return mf_fail(err, MF_ERR_FORMAT, "%s: truncated header: expected %zu bytes, found %zu",
                       path, want, got);
    for (int i = 0; i < ndims; i++) dims[i] = read_be32(head + 4 + 4 * i);
    return MF_OK;
}

static mf_status idx_load_images(const char *path, mf_split *out, mf_error *err)
{
    gzFile f;
    uint64_t file_size;
    mf_status st = idx_open(path, &f, &file_size, err);
    if (st) return st;
    uint32_t d[3];
    st = idx_read_header(f, path, IDX_MAGIC_IMAGES, 3, d, err);
    if (!st && (d[0] == 0 || d[0] > IDX_MAX_COUNT))
        st = mf_fail(err, MF_ERR_FORMAT, "%s: image count %u outside [1, %d]", path, (unsigned)d[0],
                     IDX_MAX_COUNT);
    if (!st && (d[1] == 0 || d[2] == 0 || d[1] > IDX_MAX_SIDE || d[2] > IDX_MAX_SIDE))
        st = mf_fail(err, MF_ERR_FORMAT, "%s: image size %ux%u outside [1, %d]", path,
                     (unsigned)d[1], (unsigned)d[2], IDX_MAX_SIDE);
    if (!st && d[1] != d[2])
        st = mf_fail(err, MF_ERR_FORMAT, "%s: images are %ux%u, expected square images", path,
                     (unsigned)d[1], (unsigned)d[2]);
    if (!st) {
        size_t payload = (size_t)d[0] * d[1] * d[2];
        st = idx_check_size(f, path, file_size, 16, payload, err);
        if (!st) st = idx_read_payload(f, path, 16, payload, &out->images, err);
    }
    gzclose(f);
    if (st) return st;
    out->count = (int)d[0];
    out->channels = 1;
    out->size = (int)d[1];
    return MF_OK;
}

static mf_status idx_load_labels(const char *path, int classes, uint16_t **labels, int *count,
                                 mf_error *err)
{
    gzFile f;
    uint64_t file_size;
    mf_status st = idx_open(path, &f, &file_size, err);
    if (st) return st;
    uint32_t n = 0;
    st = idx_read_header(f, path, IDX_MAGIC_LABELS, 1, &n, err);
    if (!st && (n == 0 || n > IDX_MAX_COUNT))
        st = mf_fail(err, MF_ERR_FORMAT, "%s: label count %u outside [1, %d]", path, (unsigned)n,
                     IDX_MAX_COUNT);
    uint8_t *buf = NULL;
    if (!st) st = idx_check_size(f, path, file_size, 8, n, err);
    if (!st) st = idx_read_payload(f, path, 8, n, &buf, err);
    gzclose(f);
    if (st) return st;
    for (uint32_t i = 0; i < n; i++) {
        if (buf[i] >= classes) {
            int label = buf[i];
            free(buf);
            return mf_fail(err, MF_ERR_FORMAT, "%s: label %d at index %u is out of range [0, %d)",
                           path, label, (unsigned)i, classes);
        }
    }
    uint16_t *wide = malloc((size_t)n * sizeof *wide);
    if (!wide) {
        free(buf);
        return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory for %u labels", path, (unsigned)n);
    }
    for (uint32_t i = 0; i < n; i++) wide[i] = buf[i];
    free(buf);
    *labels = wide;
    *count = (int)n;
    return MF_OK;
}

mf_status mf_idx_load(const char *images_path, const char *labels_path, int classes,
                      mf_split *out, mf_error *err)
{
    memset(out, 0, sizeof *out);
    if (classes < 1 || classes > 256)
        return mf_fail(err, MF_ERR_CONFIG, "mf_idx_load: classes %d outside [1, 256]", classes);
    mf_split s = {0};
    mf_status st = idx_load_images(images_path, &s, err);
    if (st) return st;
    int nlabels = 0;
    st = idx_load_labels(labels_path, classes, &s.labels, &nlabels, err);
    if (st) {
        mf_split_free(&s);
        return st;
    }
    if (nlabels != s.count) {
        st = mf_fail(err, MF_ERR_FORMAT, "%s: %d labels, but %s holds %d images", labels_path,
                     nlabels, images_path, s.count);
        mf_split_free(&s);
        return st;
    }
    s.classes = classes;
    *out = s;
    return MF_OK;
}
