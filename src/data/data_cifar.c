/* CIFAR-10 "binary version": records of one label byte and 3072 pixel bytes
 * (1024 red, 1024 green, 1024 blue, each row-major), already the planar
 * (c, y, x) layout of mf_split. A canonical batch holds 10000 records; any
 * positive whole number of records is accepted. */
#define _POSIX_C_SOURCE 200809L
#include "minformer/data.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CIFAR_SIDE = 32, CIFAR_PIXELS = 3 * 32 * 32, CIFAR_RECORD = 1 + CIFAR_PIXELS };

/* The largest batch file accepted: 1 GiB, about 350,000 records (a canonical
 * batch is 30,730,000 bytes). */
#define CIFAR_MAX_FILE_BYTES ((uint64_t)1 << 30)

/* Opens path, only as a regular file (a FIFO would block the open, a device
 * never ends) of at most CIFAR_MAX_FILE_BYTES, and counts its records from
 * its size before reading any of it. */
static mf_status cifar_open(const char *path, FILE **out, long *records, mf_error *err)
{
    uint64_t size;
    int fd = mf_open_regular(path, 0, &size, err);
    if (fd < 0) return MF_ERR_IO;
    mf_status st = MF_OK;
    if (size > CIFAR_MAX_FILE_BYTES)
        st = mf_fail(err, MF_ERR_IO, "%s: %llu bytes, over the %llu MiB limit for a CIFAR-10 batch",
                     path, (unsigned long long)size, (unsigned long long)(CIFAR_MAX_FILE_BYTES >> 20));
    else if (size == 0)
        st = mf_fail(err, MF_ERR_FORMAT, "%s: empty file", path);
    else if (size % CIFAR_RECORD != 0)
        st = mf_fail(err, MF_ERR_FORMAT,
                     "%s: size %llu is not a whole number of %d-byte records (expected %d)", path,
                     (unsigned long long)size, CIFAR_RECORD, 10000 * CIFAR_RECORD);
    FILE *f = NULL;
    if (!st && !(f = fdopen(fd, "rb")))
        st = mf_fail(err, MF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (st) {
        close(fd);
        return st;
    }
    *out = f;
    *records = (long)(size / CIFAR_RECORD);
    return MF_OK;
}

/* Reads records [0, n) of f into images/labels, checking every label and
 * that the file ends exactly where its size said. */
static mf_status cifar_read(FILE *f, const char *path, long n, uint8_t *images, uint16_t *labels,
                            mf_error *err)
{
    mf_status st = MF_OK;
    for (long i = 0; i < n && !st; i++) {
        int label = fgetc(f);
        size_t got = label == EOF ? 0 : fread(images + (size_t)i * CIFAR_PIXELS, 1, CIFAR_PIXELS, f);
        if (ferror(f))
            st = mf_fail(err, MF_ERR_IO, "%s: read error: %s", path, strerror(errno));
        else if (label == EOF || got != CIFAR_PIXELS)
            st = mf_fail(err, MF_ERR_FORMAT, "%s: truncated in record %ld of %ld", path, i, n);
        else if (label >= 10)
            st = mf_fail(err, MF_ERR_FORMAT, "%s: record %ld has label %d, expected 0-9", path, i,
                         label);
        else
            labels[i] = (uint16_t)label;
    }
    if (!st && fgetc(f) != EOF)
        st = mf_fail(err, MF_ERR_FORMAT, "%s: grew while being read", path);
    return st;
}

mf_status mf_cifar_load(const char *const *paths, int npaths, mf_split *out, mf_error *err)
{
    memset(out, 0, sizeof *out);
    if (npaths < 1) return mf_fail(err, MF_ERR_CONFIG, "mf_cifar_load: no files given");
    /* Every file stays open from counting to reading, so the records counted
     * are those of the file read. */
    FILE **files = calloc((size_t)npaths, sizeof *files);
    long *counts = calloc((size_t)npaths, sizeof *counts);
    mf_split s = {.channels = 3, .size = CIFAR_SIDE, .classes = 10};
    mf_status st = MF_OK;
    if (!files || !counts) st = mf_fail(err, MF_ERR_NOMEM, "out of memory for %d file names", npaths);
    long total = 0;
    for (int i = 0; i < npaths && !st; i++) {
        st = cifar_open(paths[i], &files[i], &counts[i], err);
        if (!st && counts[i] > INT_MAX - total)
            st = mf_fail(err, MF_ERR_FORMAT, "%s: too many records in all", paths[i]);
        if (!st) total += counts[i];
    }
    if (!st) {
        s.count = (int)total;
        s.images = malloc((size_t)total * CIFAR_PIXELS);
        s.labels = malloc((size_t)total * sizeof *s.labels);
        if (!s.images || !s.labels)
            st = mf_fail(err, MF_ERR_NOMEM, "out of memory for %ld CIFAR-10 images", total);
    }
    long at = 0;
    for (int i = 0; i < npaths && !st; i++) {
        st = cifar_read(files[i], paths[i], counts[i], s.images + (size_t)at * CIFAR_PIXELS,
                        s.labels + at, err);
        at += counts[i];
    }
    for (int i = 0; files && i < npaths; i++)
        if (files[i]) fclose(files[i]);
    free(files);
    free(counts);
    if (st) {
        mf_split_free(&s);
        return st;
    }
    *out = s;
    return MF_OK;
}
