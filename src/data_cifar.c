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
#include <sys/stat.h>

enum { CIFAR_SIDE = 32, CIFAR_PIXELS = 3 * 32 * 32, CIFAR_RECORD = 1 + CIFAR_PIXELS };

/* The record count of one file, from its size. */
static mf_status cifar_count(const char *path, long *records, mf_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return mf_fail(err, MF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return mf_fail(err, MF_ERR_IO, "%s: not a regular file", path);
    if (st.st_size == 0) return mf_fail(err, MF_ERR_FORMAT, "%s: empty file", path);
    if (st.st_size % CIFAR_RECORD != 0)
        return mf_fail(err, MF_ERR_FORMAT,
                       "%s: size %lld is not a whole number of %d-byte records (expected %d)",
                       path, (long long)st.st_size, CIFAR_RECORD, 10000 * CIFAR_RECORD);
    if (st.st_size / CIFAR_RECORD > INT_MAX)
        return mf_fail(err, MF_ERR_FORMAT, "%s: too many records", path);
    *records = (long)(st.st_size / CIFAR_RECORD);
    return MF_OK;
}

/* Reads records [0, n) of path into images/labels, checking every label and
 * that the file ends exactly where its size said. */
static mf_status cifar_read(const char *path, long n, uint8_t *images, uint8_t *labels,
                            mf_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mf_fail(err, MF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
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
            labels[i] = (uint8_t)label;
    }
    if (!st && fgetc(f) != EOF)
        st = mf_fail(err, MF_ERR_FORMAT, "%s: grew while being read", path);
    fclose(f);
    return st;
}

mf_status mf_cifar_load(const char *const *paths, int npaths, mf_split *out, mf_error *err)
{
    memset(out, 0, sizeof *out);
    if (npaths < 1) return mf_fail(err, MF_ERR_CONFIG, "mf_cifar_load: no files given");
    long total = 0;
    for (int i = 0; i < npaths; i++) {
        long n;
        mf_status st = cifar_count(paths[i], &n, err);
        if (st) return st;
        if (n > INT_MAX - total)
            return mf_fail(err, MF_ERR_FORMAT, "%s: too many records in all", paths[i]);
        total += n;
    }
    mf_split s = {.count = (int)total, .channels = 3, .size = CIFAR_SIDE};
    s.images = malloc((size_t)total * CIFAR_PIXELS);
    s.labels = malloc((size_t)total);
    if (!s.images || !s.labels) {
        mf_split_free(&s);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for %ld CIFAR-10 images", total);
    }
    long at = 0;
    for (int i = 0; i < npaths; i++) {
        long n;
        mf_status st = cifar_count(paths[i], &n, err);
        if (!st && at + n > total)
            st = mf_fail(err, MF_ERR_FORMAT, "%s: changed size while loading", paths[i]);
        if (!st) st = cifar_read(paths[i], n, s.images + (size_t)at * CIFAR_PIXELS, s.labels + at, err);
        if (st) {
            mf_split_free(&s);
            return st;
        }
        at += n;
    }
    *out = s;
    return MF_OK;
}
