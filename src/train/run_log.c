/* The reader of the run log, whose one writer is mf_run_log_line (run.c):
 * the JSON-lines schema is documented in include/minformer/run.h. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "minformer/run.h"

/* ---- training logs ------------------------------------------------------- */

/* Limits on a log, generous for real use: a line is about 250 bytes, so a
 * 100,000-epoch run writes about 25 MB; 256 MiB is ten times that, and
 * 64 KiB a hundred times the longest line a writer emits. They keep a
 * device or a runaway file from filling memory. */
#define LOG_MAX_BYTES ((uint64_t)256 << 20)
#define LOG_MAX_LINE ((size_t)64 << 10)
#define LOG_MAX_EPOCH 1000000
#define LOG_CHUNK ((size_t)64 << 10)

static int by_epoch(const void *a, const void *b)
{
    const mf_log_epoch *x = a, *y = b;
    return (x->epoch > y->epoch) - (x->epoch < y->epoch);
}

typedef struct {
    const char *path;
    size_t lineno;
    mf_training_log *log;
    int capacity;
    int *slot_of;  /* epoch -> index in log->epochs + 1, 0 for none yet */
    int slot_cap;  /* entries of slot_of */
} log_reader;

/* A metric: a number, or null or absent for one the run could not give (a
 * writer writes a non-finite value as null): NaN then. Anything else is an
 * error (0). */
static int log_metric(const mf_json *root, const char *key, double *out)
{
    const mf_json *v = mf_json_get(root, key);
    if (!v || v->type == MF_JSON_NULL) {
        *out = NAN;
        return 1;
    }
    if (v->type != MF_JSON_NUMBER) return 0;
    *out = v->u.number.value;
    return 1;
}

static mf_status log_line(log_reader *r, char *line, size_t len, mf_error *err)
{
    size_t first = 0;
    while (first < len && (line[first] == ' ' || line[first] == '\t' || line[first] == '\r')) first++;
    if (first == len) return MF_OK;
    mf_json root;
    char msg[128];
    int rc = mf_json_parse(line, len, &root, msg, sizeof msg);
    if (rc == -2) return mf_fail(err, MF_ERR_NOMEM, "%s:%zu: out of memory", r->path, r->lineno);
    if (rc) return mf_fail(err, MF_ERR_FORMAT, "%s:%zu: not JSON (%s)", r->path, r->lineno, msg);
    uint64_t epoch = 0;
    const mf_json *ev = root.type == MF_JSON_OBJECT ? mf_json_get(&root, "epoch") : NULL;
    if (!ev || !mf_json_u64(ev, &epoch) || epoch < 1 || epoch > LOG_MAX_EPOCH) {
        mf_json_free(&root);
        return mf_fail(err, MF_ERR_FORMAT, "%s:%zu: not an epoch record (an object with an integer "
                       "\"epoch\" in [1, %d])", r->path, r->lineno, LOG_MAX_EPOCH);
    }
    static const char *const keys[9] = {"lr", "train_loss", "train_acc", "test_loss", "test_acc",
                                        "seconds", "images_per_second", "train_seconds", "images"};
    double v[9];
    for (int k = 0; k < 9; k++) {
        if (!log_metric(&root, keys[k], &v[k])) {
            mf_json_free(&root);
            return mf_fail(err, MF_ERR_FORMAT, "%s:%zu: \"%s\" is neither a number nor null",
                           r->path, r->lineno, keys[k]);
        }
    }
    mf_json_free(&root);
    /* A count (the long conversion would be undefined for NaN or a huge value). */
    if (!isnan(v[8]) && !(v[8] >= 0 && v[8] <= 1e15 && v[8] == floor(v[8])))
        return mf_fail(err, MF_ERR_FORMAT, "%s:%zu: \"images\" is not a count of images", r->path,
                       r->lineno);
    mf_log_epoch e;
    e.epoch = (int)epoch;
    e.lr = (float)v[0];
    e.train_loss = (float)v[1];
    e.train_acc = (float)v[2];
    e.test_loss = (float)v[3];
    e.test_acc = (float)v[4];
    e.seconds = v[5];
    e.images_per_second = v[6];
    e.train_seconds = v[7];
    e.images = isnan(v[8]) ? 0 : (long)v[8];

    mf_training_log *log = r->log;
    if (e.epoch >= r->slot_cap) {
        int ncap = r->slot_cap ? r->slot_cap : 64;
        while (ncap <= e.epoch) ncap *= 2;
        if (ncap > LOG_MAX_EPOCH + 1) ncap = LOG_MAX_EPOCH + 1;
        int *ns = realloc(r->slot_of, (size_t)ncap * sizeof *ns);
        if (!ns) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", r->path);
        memset(ns + r->slot_cap, 0, (size_t)(ncap - r->slot_cap) * sizeof *ns);
        r->slot_of = ns;
        r->slot_cap = ncap;
    }
    int slot = r->slot_of[e.epoch] - 1; /* a repeated epoch: the last line wins */
    if (slot < 0) {
        if (log->count == r->capacity) {
            int ncap = r->capacity ? 2 * r->capacity : 16;
            mf_log_epoch *ne = realloc(log->epochs, (size_t)ncap * sizeof *ne);
            if (!ne) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", r->path);
            log->epochs = ne;
            r->capacity = ncap;
        }
        slot = log->count++;
        r->slot_of[e.epoch] = slot + 1;
    }
    log->epochs[slot] = e;
    return MF_OK;
}

mf_status mf_training_log_read(const char *path, mf_training_log *log, mf_error *err)
{
    memset(log, 0, sizeof *log);
    /* Only a regular file: a FIFO would block the open, a device such as
     * /dev/zero would never end. */
    uint64_t size;
    int fd = mf_open_regular(path, 0, &size, err);
    if (fd < 0) return MF_ERR_IO;
    if (size > LOG_MAX_BYTES) {
        close(fd);
        return mf_fail(err, MF_ERR_IO, "%s: %llu bytes, over the %llu MiB limit for a training log",
                       path, (unsigned long long)size, (unsigned long long)(LOG_MAX_BYTES >> 20));
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        mf_status st = mf_fail(err, MF_ERR_IO, "%s: cannot open the log: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    log_reader r = {.path = path, .log = log};
    char *chunk = malloc(LOG_CHUNK), *line = malloc(LOG_MAX_LINE + 1);
    mf_status st = MF_OK;
    if (!chunk || !line) st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    size_t len = 0;
    uint64_t total = 0;
    while (!st) {
        size_t got = fread(chunk, 1, LOG_CHUNK, f);
        total += got;
        /* Checked while reading too: a file can grow, and some (in /proc)
         * say nothing of their size. */
        if (total > LOG_MAX_BYTES) {
            st = mf_fail(err, MF_ERR_IO, "%s: more than the %llu MiB limit for a training log",
                         path, (unsigned long long)(LOG_MAX_BYTES >> 20));
            break;
        }
        for (size_t i = 0; i < got && !st;) {
            const char *nl = memchr(chunk + i, '\n', got - i);
            size_t n = nl ? (size_t)(nl - (chunk + i)) : got - i;
            if (len + n > LOG_MAX_LINE) {
                st = mf_fail(err, MF_ERR_FORMAT, "%s:%zu: line longer than the %zu KiB limit for a "
                             "training log", path, r.lineno + 1, LOG_MAX_LINE >> 10);
                break;
            }
            memcpy(line + len, chunk + i, n);
            len += n;
            i += n;
            if (nl) {
                i++;
                r.lineno++;
                st = log_line(&r, line, len, err);
                len = 0;
            }
        }
        if (got < LOG_CHUNK) {
            if (!st && ferror(f)) st = mf_fail(err, MF_ERR_IO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    if (!st && len) { /* a last line without a newline */
        r.lineno++;
        st = log_line(&r, line, len, err);
    }
    if (!st && log->count) qsort(log->epochs, (size_t)log->count, sizeof *log->epochs, by_epoch);
    free(chunk);
    free(line);
    free(r.slot_of);
    fclose(f);
    if (st) mf_training_log_free(log);
    return st;
}

void mf_training_log_free(mf_training_log *log)
{
    free(log->epochs);
    memset(log, 0, sizeof *log);
}

