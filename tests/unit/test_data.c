/* The data layer: IDX and CIFAR-10 loaders on small files written here (valid
 * and broken in every way the loaders check), dataset names and directories,
 * normalization, augmentation, batches and the shuffle; and, when ./data holds
 * the real datasets, their counts and class histograms from DATA.md. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "minformer.h"

static char tmpdir[256];

/* tmpdir/name, in one of a few rotating static buffers. */
static const char *tpath(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile f = gzopen(path, "wb");
    if (!f || (n && gzwrite(f, data, (unsigned)n) != (int)n) || gzclose(f) != Z_OK) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* An IDX image file in memory: header (magic, count, rows, cols) then pixel
 * (i, y, x) = (7i + 3y + x) mod 256. Returns the size; *out is malloc'd. */
static size_t idx_images(uint8_t **out, uint32_t magic, uint32_t count, uint32_t rows,
                         uint32_t cols, size_t actual_count)
{
    size_t n = 16 + actual_count * rows * cols;
    uint8_t *b = malloc(n);
    put_be32(b, magic), put_be32(b + 4, count), put_be32(b + 8, rows), put_be32(b + 12, cols);
    for (size_t i = 0; i < actual_count; i++)
        for (uint32_t y = 0; y < rows; y++)
            for (uint32_t x = 0; x < cols; x++)
                b[16 + (i * rows + y) * cols + x] = (uint8_t)((7 * i + 3 * y + x) % 256);
    *out = b;
    return n;
}

/* An IDX label file: header (magic, count) then labels i mod 10. */
static size_t idx_labels(uint8_t **out, uint32_t magic, uint32_t count, size_t actual_count)
{
    size_t n = 8 + actual_count;
    uint8_t *b = malloc(n);
    put_be32(b, magic), put_be32(b + 4, count);
    for (size_t i = 0; i < actual_count; i++) b[8 + i] = (uint8_t)(i % 10);
    *out = b;
    return n;
}

/* Writes a valid pair: NAME-img and NAME-lbl with count images of side x side. */
static void write_idx_pair(const char *img, const char *lbl, int count, int side, int gz)
{
    uint8_t *b;
    size_t n = idx_images(&b, 0x803, (uint32_t)count, (uint32_t)side, (uint32_t)side, (size_t)count);
    (gz ? write_gz : write_file)(img, b, n);
    free(b);
    n = idx_labels(&b, 0x801, (uint32_t)count, (size_t)count);
    (gz ? write_gz : write_file)(lbl, b, n);
    free(b);
}

/* The load fails with status want and a message naming path. */
static void expect_idx_error(const char *img, const char *lbl, mf_status want, const char *path,
                             const char *phrase)
{
    mf_split s;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_idx_load(img, lbl, 10, &s, &err);
    CHECK(st == want, "status %d, expected %d (%s)", st, want, err.message);
    CHECK(err.status == want, "err.status %d", err.status);
    CHECK(strstr(err.message, path) != NULL, "message '%s' does not name %s", err.message, path);
    if (phrase)
        CHECK(strstr(err.message, phrase) != NULL, "message '%s' lacks '%s'", err.message, phrase);
    CHECK(s.images == NULL && s.labels == NULL && s.count == 0, "split not left empty");
}

static void check_valid_split(const mf_split *s, int count, int side)
{
    CHECK(s->count == count && s->size == side && s->channels == 1, "count %d size %d channels %d",
          s->count, s->size, s->channels);
    int bad = 0;
    for (int i = 0; i < s->count; i++) {
        if (s->labels[i] != i % 10) bad++;
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                if (s->images[((size_t)i * side + y) * side + x] != (uint8_t)((7 * i + 3 * y + x) % 256))
                    bad++;
    }
    CHECK(bad == 0, "%d bytes differ from what was written", bad);
}

static void test_idx_valid_raw(void)
{
    const char *img = tpath("raw-img"), *lbl = tpath("raw-lbl");
    write_idx_pair(img, lbl, 13, 5, 0);
    mf_split s;
    mf_error err;
    mf_error_clear(&err);
    CHECK(mf_idx_load(img, lbl, 10, &s, &err) == MF_OK, "%s", err.message);
    check_valid_split(&s, 13, 5);
    mf_split_free(&s);
    CHECK(s.images == NULL && s.count == 0, "mf_split_free leaves an empty split");
}

static void test_idx_valid_gz(void)
{
    const char *img = tpath("gz-img.gz"), *lbl = tpath("gz-lbl.gz");
    write_idx_pair(img, lbl, 300, 28, 1);
    mf_split s;
    mf_error err;
    mf_error_clear(&err);
    CHECK(mf_idx_load(img, lbl, 10, &s, &err) == MF_OK, "%s", err.message);
    check_valid_split(&s, 300, 28);
    mf_split_free(&s);
    /* gzip content is recognized by its magic, whatever the name. */
    img = tpath("gz-img-noext"), lbl = tpath("gz-lbl-noext");
    write_idx_pair(img, lbl, 7, 4, 1);
    CHECK(mf_idx_load(img, lbl, 10, &s, &err) == MF_OK, "%s", err.message);
    check_valid_split(&s, 7, 4);
    mf_split_free(&s);
}

static void test_idx_wrong_magic(void)
{
    const char *img = tpath("magic-img"), *lbl = tpath("magic-lbl");
    write_idx_pair(img, lbl, 3, 4, 0);
    /* Labels given as images, and images as labels. */
    expect_idx_error(lbl, lbl, MF_ERR_FORMAT, lbl, "magic");
    expect_idx_error(img, img, MF_ERR_FORMAT, img, "magic");
    uint8_t *b;
    size_t n = idx_images(&b, 0x0803 | 0x0100, 3, 4, 4, 3); /* 0x0903: wrong type byte */
    write_file(img, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, "magic");
}

static void test_idx_truncated_header(void)
{
    const char *img = tpath("th-img"), *lbl = tpath("th-lbl");
    write_idx_pair(img, lbl, 3, 4, 0);
    uint8_t *b;
    size_t n = idx_images(&b, 0x803, 3, 4, 4, 3);
    write_file(img, b, 10);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, "truncated");
    write_file(img, b, n);
    free(b);
    n = idx_labels(&b, 0x801, 3, 3);
    write_file(lbl, b, 6);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, lbl, "truncated");
}

static void test_idx_truncated_data(void)
{
    const char *img = tpath("td-img"), *lbl = tpath("td-lbl");
    write_idx_pair(img, lbl, 5, 4, 0);
    uint8_t *b;
    size_t n = idx_images(&b, 0x803, 5, 4, 4, 3); /* header says 5, data holds 3 */
    write_file(img, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, "expected 96 bytes, found 64");
    /* A header claiming a huge count must not trigger a huge allocation. */
    n = idx_images(&b, 0x803, 100000000, 28, 28, 2);
    write_file(img, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, "truncated");
    /* The same inside gzip, and a gzip stream that is itself cut short. */
    const char *gz = tpath("td-img.gz");
    n = idx_images(&b, 0x803, 5, 4, 4, 3);
    write_gz(gz, b, n);
    free(b);
    expect_idx_error(gz, lbl, MF_ERR_FORMAT, gz, "truncated");
    write_idx_pair(gz, tpath("td-lbl.gz"), 200, 28, 1);
    FILE *f = fopen(gz, "rb");
    uint8_t buf[65536];
    size_t got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_file(gz, buf, got / 2);
    expect_idx_error(gz, lbl, MF_ERR_FORMAT, gz, NULL);
    /* Labels cut short. */
    write_idx_pair(img, lbl, 5, 4, 0);
    n = idx_labels(&b, 0x801, 5, 4);
    write_file(lbl, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, lbl, "truncated");
}

static void test_idx_trailing_bytes(void)
{
    const char *img = tpath("tb-img"), *lbl = tpath("tb-lbl");
    write_idx_pair(img, lbl, 5, 4, 0);
    uint8_t *b;
    size_t n = idx_images(&b, 0x803, 4, 4, 4, 5); /* header says 4, data holds 5 */
    write_file(img, b, n);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, "trailing");
    write_gz(tpath("tb-img.gz"), b, n);
    expect_idx_error(tpath("tb-img.gz"), lbl, MF_ERR_FORMAT, tpath("tb-img.gz"), "trailing");
    free(b);
    write_idx_pair(img, lbl, 5, 4, 0);
    n = idx_labels(&b, 0x801, 5, 6);
    write_file(lbl, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, lbl, "trailing");
}

static void test_idx_count_mismatch(void)
{
    const char *img = tpath("cm-img"), *lbl = tpath("cm-lbl");
    write_idx_pair(img, lbl, 5, 4, 0);
    uint8_t *b;
    size_t n = idx_labels(&b, 0x801, 4, 4);
    write_file(lbl, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, lbl, NULL);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, NULL);
}

static void test_idx_bad_dims(void)
{
    const char *img = tpath("bd-img"), *lbl = tpath("bd-lbl");
    write_idx_pair(img, lbl, 3, 4, 0);
    uint8_t *b;
    size_t n = idx_images(&b, 0x803, 3, 4, 5, 3); /* not square */
    write_file(img, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, "square");
    n = idx_images(&b, 0x803, 0, 4, 4, 0); /* no images */
    write_file(img, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, "count");
    n = idx_images(&b, 0x803, 3, 0, 0, 0); /* zero-sized images */
    write_file(img, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, NULL);
    n = idx_images(&b, 0x803, 1, 100000, 100000, 0); /* absurd size */
    write_file(img, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, img, NULL);
}

static void test_idx_label_out_of_range(void)
{
    const char *img = tpath("lr-img"), *lbl = tpath("lr-lbl");
    write_idx_pair(img, lbl, 5, 4, 0);
    uint8_t *b;
    size_t n = idx_labels(&b, 0x801, 5, 5);
    b[8 + 3] = 10;
    write_file(lbl, b, n);
    free(b);
    expect_idx_error(img, lbl, MF_ERR_FORMAT, lbl, "out of range");
}

static void test_idx_empty_and_missing(void)
{
    const char *img = tpath("em-img"), *lbl = tpath("em-lbl");
    write_idx_pair(img, lbl, 5, 4, 0);
    const char *empty = tpath("empty");
    write_file(empty, "", 0);
    expect_idx_error(empty, lbl, MF_ERR_FORMAT, empty, "empty");
    expect_idx_error(img, empty, MF_ERR_FORMAT, empty, "empty");
    const char *missing = tpath("no-such-file");
    expect_idx_error(missing, lbl, MF_ERR_IO, missing, NULL);
    expect_idx_error(img, missing, MF_ERR_IO, missing, NULL);
    expect_idx_error(tmpdir, lbl, MF_ERR_IO, tmpdir, NULL); /* a directory */
}

/* A CIFAR-10 record: label then planar pixels; pixel k of record r is (r + 5k) mod 256. */
static void cifar_record(uint8_t *rec, int r, int label)
{
    rec[0] = (uint8_t)label;
    for (int k = 0; k < 3072; k++) rec[1 + k] = (uint8_t)((r + 5 * k) % 256);
}

static void write_cifar(const char *path, int first, int n, int bad_label_at, size_t extra)
{
    size_t bytes = (size_t)n * 3073 + extra;
    uint8_t *b = calloc(bytes ? bytes : 1, 1);
    for (int r = 0; r < n; r++)
        cifar_record(b + (size_t)r * 3073, first + r, r == bad_label_at ? 10 : (first + r) % 10);
    write_file(path, b, bytes);
    free(b);
}

static void expect_cifar_error(const char *const *paths, int n, mf_status want, const char *path,
                               const char *phrase)
{
    mf_split s;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_cifar_load(paths, n, &s, &err);
    CHECK(st == want, "status %d, expected %d (%s)", st, want, err.message);
    CHECK(strstr(err.message, path) != NULL, "message '%s' does not name %s", err.message, path);
    if (phrase)
        CHECK(strstr(err.message, phrase) != NULL, "message '%s' lacks '%s'", err.message, phrase);
    CHECK(s.images == NULL && s.labels == NULL && s.count == 0, "split not left empty");
}

static void test_cifar_valid(void)
{
    const char *paths[2] = {tpath("c1.bin"), tpath("c2.bin")};
    write_cifar(paths[0], 0, 3, -1, 0);
    write_cifar(paths[1], 3, 4, -1, 0);
    mf_split s;
    mf_error err;
    mf_error_clear(&err);
    CHECK(mf_cifar_load(paths, 2, &s, &err) == MF_OK, "%s", err.message);
    CHECK(s.count == 7 && s.channels == 3 && s.size == 32, "count %d channels %d size %d", s.count,
          s.channels, s.size);
    int bad = 0;
    for (int r = 0; r < s.count; r++) {
        if (s.labels[r] != r % 10) bad++;
        for (int k = 0; k < 3072; k++)
            if (s.images[(size_t)r * 3072 + k] != (uint8_t)((r + 5 * k) % 256)) bad++;
    }
    CHECK(bad == 0, "%d bytes differ", bad);
    mf_split_free(&s);
}

static void test_cifar_errors(void)
{
    const char *good = tpath("cg.bin"), *bad = tpath("cb.bin");
    write_cifar(good, 0, 2, -1, 0);
    const char *paths[2] = {good, bad};
    write_cifar(bad, 0, 2, -1, 100); /* not a whole number of records */
    expect_cifar_error(paths, 2, MF_ERR_FORMAT, bad, "3073");
    write_cifar(bad, 0, 3, 1, 0); /* label 10 in record 1 */
    expect_cifar_error(paths, 2, MF_ERR_FORMAT, bad, "label");
    write_cifar(bad, 0, 0, -1, 0); /* empty */
    expect_cifar_error(paths, 2, MF_ERR_FORMAT, bad, "empty");
    const char *missing[1] = {tpath("no-such.bin")};
    expect_cifar_error(missing, 1, MF_ERR_IO, missing[0], NULL);
}

/* A synthetic data directory: mnist as .gz only, fashion-mnist with a raw
 * training file, and cifar with one train batch missing. */
static void test_dataset_load_synthetic(void)
{
    char dir[512], sub[600];
    snprintf(dir, sizeof dir, "%s/data", tmpdir);
    mkdir(dir, 0700);
    snprintf(sub, sizeof sub, "%s/mnist", dir);
    mkdir(sub, 0700);
    char img[700], lbl[700];
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte.gz", sub);
    snprintf(lbl, sizeof lbl, "%s/train-labels-idx1-ubyte.gz", sub);
    write_idx_pair(img, lbl, 20, 28, 1);
    snprintf(img, sizeof img, "%s/t10k-images-idx3-ubyte.gz", sub);
    snprintf(lbl, sizeof lbl, "%s/t10k-labels-idx1-ubyte.gz", sub);
    write_idx_pair(img, lbl, 10, 28, 1);

    mf_dataset ds;
    mf_error err;
    mf_error_clear(&err);
    CHECK(mf_dataset_load(&ds, MF_MNIST, dir, &err) == MF_OK, "%s", err.message);
    CHECK(ds.train.count == 20 && ds.test.count == 10, "counts %d %d", ds.train.count,
          ds.test.count);
    CHECK(ds.channels == 1 && ds.size == 28 && ds.classes == 10 && !strcmp(ds.name, "mnist"),
          "shape");
    /* The mean and std of the pixels written, in double. */
    double sum = 0, sq = 0, n = 20.0 * 28 * 28;
    for (int i = 0; i < 20; i++)
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) sum += ((7 * i + 3 * y + x) % 256) / 255.0;
    for (int i = 0; i < 20; i++)
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                double d = ((7 * i + 3 * y + x) % 256) / 255.0 - sum / n;
                sq += d * d;
            }
    CHECK(check_close(ds.mean[0], (float)(sum / n), 1e-6f, 1e-6f), "mean %g vs %g", ds.mean[0],
          sum / n);
    CHECK(check_close(ds.std[0], (float)sqrt(sq / n), 1e-6f, 1e-6f), "std %g vs %g", ds.std[0],
          sqrt(sq / n));
    mf_dataset_limit(&ds, 7, 0);
    CHECK(ds.train.count == 7 && ds.test.count == 10, "limit: %d %d", ds.train.count, ds.test.count);
    mf_dataset_limit(&ds, 100, 3);
    CHECK(ds.train.count == 7 && ds.test.count == 3, "limit: %d %d", ds.train.count, ds.test.count);
    mf_dataset_free(&ds);

    /* Wrong image size for the dataset: the error names the file. */
    snprintf(img, sizeof img, "%s/t10k-images-idx3-ubyte", sub);
    snprintf(lbl, sizeof lbl, "%s/t10k-labels-idx1-ubyte", sub);
    write_idx_pair(img, lbl, 10, 8, 0); /* raw files win over .gz */
    CHECK(mf_dataset_load(&ds, MF_MNIST, dir, &err) == MF_ERR_FORMAT, "status %d", err.status);
    CHECK(strstr(err.message, img) != NULL, "message '%s' does not name %s", err.message, img);

    /* Missing files: named, with the way to fetch them. */
    CHECK(mf_dataset_load(&ds, MF_FASHION_MNIST, dir, &err) == MF_ERR_IO, "status %d", err.status);
    CHECK(strstr(err.message, "fashion-mnist/train-images-idx3-ubyte") && strstr(err.message, "make data"),
          "message '%s'", err.message);
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
    mkdir(sub, 0700);
    for (int k = 1; k <= 5; k++) {
        if (k == 4) continue;
        snprintf(img, sizeof img, "%s/data_batch_%d.bin", sub, k);
        write_cifar(img, 0, 2, -1, 0);
    }
    CHECK(mf_dataset_load(&ds, MF_CIFAR10, dir, &err) == MF_ERR_IO, "status %d", err.status);
    CHECK(strstr(err.message, "data_batch_4.bin") && strstr(err.message, "make data"),
          "message '%s'", err.message);
    snprintf(img, sizeof img, "%s/data_batch_4.bin", sub);
    write_cifar(img, 0, 2, -1, 0);
    snprintf(img, sizeof img, "%s/test_batch.bin", sub);
    write_cifar(img, 0, 3, -1, 0);
    CHECK(mf_dataset_load(&ds, MF_CIFAR10, dir, &err) == MF_OK, "%s", err.message);
    CHECK(ds.train.count == 10 && ds.test.count == 3 && ds.channels == 3 && ds.size == 32,
          "cifar %d %d", ds.train.count, ds.test.count);
    for (int c = 0; c < 3; c++)
        CHECK(ds.mean[c] > 0.2f && ds.mean[c] < 0.8f && ds.std[c] > 0.1f && ds.std[c] < 0.6f,
              "channel %d mean %g std %g", c, ds.mean[c], ds.std[c]);
    mf_dataset_free(&ds);
}

static void test_dataset_names(void)
{
    mf_dataset_kind k;
    mf_error err;
    mf_error_clear(&err);
    CHECK(mf_dataset_parse("mnist", &k, &err) == MF_OK && k == MF_MNIST, "mnist");
    CHECK(mf_dataset_parse("cifar10", &k, &err) == MF_OK && k == MF_CIFAR10, "cifar10");
    CHECK(mf_dataset_parse("cifar-10", &k, &err) == MF_OK && k == MF_CIFAR10, "cifar-10");
    CHECK(mf_dataset_parse("fashion-mnist", &k, &err) == MF_OK && k == MF_FASHION_MNIST, "fashion");
    CHECK(mf_dataset_parse("fashion_mnist", &k, &err) == MF_OK && k == MF_FASHION_MNIST, "fashion_");
    CHECK(mf_dataset_parse("imagenet", &k, &err) == MF_ERR_CONFIG, "imagenet accepted");
    CHECK(strstr(err.message, "imagenet") != NULL, "message '%s'", err.message);
    CHECK(!strcmp(mf_dataset_name(MF_FASHION_MNIST), "fashion-mnist"), "name");
    CHECK(!strcmp(mf_dataset_class_name(MF_MNIST, 7), "7"), "mnist class");
    CHECK(!strcmp(mf_dataset_class_name(MF_CIFAR10, 0), "airplane") &&
              !strcmp(mf_dataset_class_name(MF_CIFAR10, 9), "truck"),
          "cifar classes");
    CHECK(!strcmp(mf_dataset_class_name(MF_FASHION_MNIST, 0), "T-shirt/top") &&
              !strcmp(mf_dataset_class_name(MF_FASHION_MNIST, 9), "Ankle boot"),
          "fashion classes");
    CHECK(mf_dataset_channels(MF_CIFAR10) == 3 && mf_dataset_channels(MF_MNIST) == 1, "channels");
    CHECK(mf_dataset_image_size(MF_CIFAR10) == 32 && mf_dataset_image_size(MF_FASHION_MNIST) == 28,
          "sizes");
    CHECK(mf_dataset_augment(MF_CIFAR10) == MF_AUGMENT_CROP_FLIP &&
              mf_dataset_augment(MF_MNIST) == MF_AUGMENT_SHIFT &&
              mf_dataset_augment(MF_FASHION_MNIST) == MF_AUGMENT_SHIFT,
          "augmentations");
    CHECK(!strcmp(mf_data_dir("/x"), "/x"), "cli dir wins");
    /* Restore the caller's $MINFORMER_DATA afterwards: later tests read it. */
    const char *saved = getenv("MINFORMER_DATA");
    char *copy = saved ? strdup(saved) : NULL;
    setenv("MINFORMER_DATA", "/env/data", 1);
    CHECK(!strcmp(mf_data_dir(NULL), "/env/data"), "env dir");
    unsetenv("MINFORMER_DATA");
    CHECK(!strcmp(mf_data_dir(NULL), "./data"), "default dir");
    if (copy) setenv("MINFORMER_DATA", copy, 1);
    free(copy);
}

/* A split of n random images. */
static mf_split random_split(int n, int channels, int size, uint64_t seed)
{
    mf_split s = {.count = n, .channels = channels, .size = size};
    size_t bytes = (size_t)n * channels * size * size;
    s.images = malloc(bytes);
    s.labels = malloc((size_t)n * sizeof *s.labels);
    mf_rng rng;
    mf_rng_seed(&rng, seed);
    for (size_t i = 0; i < bytes; i++) s.images[i] = (uint8_t)(1 + mf_rng_below(&rng, 255));
    for (int i = 0; i < n; i++) s.labels[i] = (uint16_t)mf_rng_below(&rng, 10);
    return s;
}

static float norm_pixel(uint8_t p, float mean, float std) { return ((float)p / 255.0f - mean) / std; }

/* Which transform turned image src into the normalized out: a shift (oy, ox)
 * and flip such that out[c][y][x] = src[c][y+oy][x'+ox], zero outside.
 * Returns 1 and the transform if one of the allowed ones matches exactly. */
static int find_transform(const uint8_t *src, const float *out, int C, int S, int range,
                          int allow_flip, const float *mean, const float *std, int *foy, int *fox,
                          int *fflip)
{
    for (int flip = 0; flip <= allow_flip; flip++)
        for (int oy = -range; oy <= range; oy++)
            for (int ox = -range; ox <= range; ox++) {
                int ok = 1;
                for (int c = 0; c < C && ok; c++)
                    for (int y = 0; y < S && ok; y++)
                        for (int x = 0; x < S && ok; x++) {
                            int sy = y + oy, sx = (flip ? S - 1 - x : x) + ox;
                            uint8_t p = (sy >= 0 && sy < S && sx >= 0 && sx < S)
                                            ? src[((size_t)c * S + sy) * S + sx]
                                            : 0;
                            ok = out[((size_t)c * S + y) * S + x] == norm_pixel(p, mean[c], std[c]);
                        }
                if (ok) {
                    *foy = oy, *fox = ox, *fflip = flip;
                    return 1;
                }
            }
    return 0;
}

static void test_batch_no_augment(void)
{
    mf_split s = random_split(10, 3, 32, 1);
    int idx[4] = {9, 0, 3, 3}, y[4];
    float mean[3] = {0.4f, 0.5f, 0.6f}, std[3] = {0.2f, 0.25f, 0.3f};
    float *x = malloc(sizeof(float) * 4 * 3072);
    mf_batch_fill(&s, idx, 4, mean, std, MF_AUGMENT_NONE, 5, x, y);
    int bad = 0;
    for (int b = 0; b < 4; b++) {
        if (y[b] != s.labels[idx[b]]) bad++;
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 1024; k++)
                if (x[(size_t)b * 3072 + c * 1024 + k] !=
                    norm_pixel(s.images[(size_t)idx[b] * 3072 + c * 1024 + k], mean[c], std[c]))
                    bad++;
    }
    CHECK(bad == 0, "%d values differ from (p/255 - mean)/std", bad);
    free(x);
    mf_split_free(&s);
}

static void test_augment_shift(void)
{
    enum { B = 64 };
    mf_split s = random_split(20, 1, 28, 2);
    int idx[B], y[B];
    for (int b = 0; b < B; b++) idx[b] = (b * 7) % 20;
    float mean[1] = {0.13f}, std[1] = {0.31f};
    float *x1 = malloc(sizeof(float) * B * 784), *x2 = malloc(sizeof(float) * B * 784);
    float *x3 = malloc(sizeof(float) * B * 784);
    mf_batch_fill(&s, idx, B, mean, std, MF_AUGMENT_SHIFT, 42, x1, y);
    mf_batch_fill(&s, idx, B, mean, std, MF_AUGMENT_SHIFT, 42, x2, y);
    mf_batch_fill(&s, idx, B, mean, std, MF_AUGMENT_SHIFT, 43, x3, y);
    CHECK(!memcmp(x1, x2, sizeof(float) * B * 784), "same seed, different batch");
    CHECK(memcmp(x1, x3, sizeof(float) * B * 784) != 0, "different seeds, same batch");
    int seen[5][5] = {{0}}, unmatched = 0, distinct = 0;
    for (int b = 0; b < B; b++) {
        int oy, ox, flip;
        if (find_transform(s.images + (size_t)idx[b] * 784, x1 + (size_t)b * 784, 1, 28, 2, 0,
                           mean, std, &oy, &ox, &flip))
            seen[oy + 2][ox + 2]++;
        else
            unmatched++;
    }
    for (int i = 0; i < 25; i++) distinct += seen[i / 5][i % 5] > 0;
    CHECK(unmatched == 0, "%d samples are not a shift of at most 2 pixels", unmatched);
    CHECK(distinct >= 10, "only %d distinct shifts in %d samples", distinct, B);
    free(x1), free(x2), free(x3);
    mf_split_free(&s);
}

static void test_augment_crop_flip(void)
{
    enum { B = 64, D = 3072 };
    mf_split s = random_split(16, 3, 32, 3);
    int idx[B], y[B];
    for (int b = 0; b < B; b++) idx[b] = b % 16;
    float mean[3] = {0.49f, 0.48f, 0.45f}, std[3] = {0.25f, 0.24f, 0.26f};
    float *x1 = malloc(sizeof(float) * B * D), *x2 = malloc(sizeof(float) * B * D);
    mf_batch_fill(&s, idx, B, mean, std, MF_AUGMENT_CROP_FLIP, 7, x1, y);
    mf_batch_fill(&s, idx, B, mean, std, MF_AUGMENT_CROP_FLIP, 7, x2, y);
    CHECK(!memcmp(x1, x2, sizeof(float) * B * D), "same seed, different batch");
    mf_batch_fill(&s, idx, B, mean, std, MF_AUGMENT_CROP_FLIP, 8, x2, y);
    CHECK(memcmp(x1, x2, sizeof(float) * B * D) != 0, "different seeds, same batch");
    int unmatched = 0, flips = 0, moved = 0;
    for (int b = 0; b < B; b++) {
        int oy, ox, flip;
        if (find_transform(s.images + (size_t)idx[b] * D, x1 + (size_t)b * D, 3, 32, 4, 1, mean,
                           std, &oy, &ox, &flip)) {
            flips += flip;
            moved += oy != 0 || ox != 0;
        } else {
            unmatched++;
        }
        CHECK(y[b] == s.labels[idx[b]], "label of sample %d", b);
    }
    CHECK(unmatched == 0, "%d samples are not a crop of the 4-padded image", unmatched);
    CHECK(flips > 10 && flips < B - 10, "%d of %d samples flipped", flips, B);
    CHECK(moved > B / 2, "only %d of %d samples moved", moved, B);
    free(x1), free(x2);
    mf_split_free(&s);
}

static void test_batch_threads(void)
{
    enum { B = 96, D = 3072 };
    mf_split s = random_split(50, 3, 32, 4);
    int idx[B], y1[B], y2[B];
    for (int b = 0; b < B; b++) idx[b] = (b * 13) % 50;
    float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
    float *x1 = malloc(sizeof(float) * B * D), *x2 = malloc(sizeof(float) * B * D);
    int saved = mf_get_threads();
    for (int a = 0; a < 3; a++) {
        mf_augment aug = (mf_augment)a;
        mf_set_threads(1);
        mf_batch_fill(&s, idx, B, mean, std, aug, 99, x1, y1);
        mf_set_threads(2);
        mf_batch_fill(&s, idx, B, mean, std, aug, 99, x2, y2);
        CHECK(!memcmp(x1, x2, sizeof(float) * B * D) && !memcmp(y1, y2, sizeof y1),
              "augment %d: 1 and 2 threads differ", a);
    }
    mf_set_threads(saved);
    free(x1), free(x2);
    mf_split_free(&s);
}

static void test_shuffle(void)
{
    enum { N = 1000 };
    static int p1[N], p2[N], p3[N], seen[N];
    mf_shuffle(p1, N, 11);
    mf_shuffle(p2, N, 11);
    mf_shuffle(p3, N, 12);
    int bad = 0, fixed = 0;
    for (int i = 0; i < N; i++) {
        if (p1[i] < 0 || p1[i] >= N || seen[p1[i]]++) bad++;
        fixed += p1[i] == i;
    }
    CHECK(bad == 0, "%d entries out of range or repeated", bad);
    CHECK(fixed < 10, "%d fixed points: not shuffled", fixed);
    CHECK(!memcmp(p1, p2, sizeof p1), "same seed, different permutation");
    CHECK(memcmp(p1, p3, sizeof p1) != 0, "different seeds, same permutation");
    int one = -1;
    mf_shuffle(&one, 1, 3);
    CHECK(one == 0, "n = 1 gives %d", one);
    mf_shuffle(NULL, 0, 3); /* n = 0 touches nothing */
}

/* The real datasets, when present: DATA.md's counts and histograms. */
static void check_real(mf_dataset_kind kind, int ntrain, int ntest, const int *train_hist,
                       const int *test_hist, const float *mean, const float *std)
{
    mf_dataset ds;
    mf_error err;
    mf_error_clear(&err);
    const char *dir = mf_data_dir(NULL);
    mf_status st = mf_dataset_load(&ds, kind, dir, &err);
    if (st == MF_ERR_IO && strstr(err.message, "missing"))
        SKIP("%s not in %s (run 'make data'): %s", mf_dataset_name(kind), dir, err.message);
    CHECK(st == MF_OK, "%s", err.message);
    if (st) return;
    CHECK(ds.train.count == ntrain && ds.test.count == ntest, "%s counts %d %d", ds.name,
          ds.train.count, ds.test.count);
    int h[2][10] = {{0}};
    for (int i = 0; i < ds.train.count; i++) h[0][ds.train.labels[i]]++;
    for (int i = 0; i < ds.test.count; i++) h[1][ds.test.labels[i]]++;
    for (int k = 0; k < 10; k++) {
        CHECK(h[0][k] == train_hist[k], "%s train class %d: %d, expected %d", ds.name, k, h[0][k],
              train_hist[k]);
        CHECK(h[1][k] == test_hist[k], "%s test class %d: %d, expected %d", ds.name, k, h[1][k],
              test_hist[k]);
    }
    for (int c = 0; c < ds.channels; c++) {
        CHECK(check_close(ds.mean[c], mean[c], 1e-3f, 0), "%s mean[%d] %g, expected about %g",
              ds.name, c, ds.mean[c], mean[c]);
        CHECK(check_close(ds.std[c], std[c], 1e-3f, 0), "%s std[%d] %g, expected about %g", ds.name,
              c, ds.std[c], std[c]);
    }
    mf_dataset_free(&ds);
}

static void test_real_mnist(void)
{
    static const int tr[10] = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
    static const int te[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
    static const float mean[1] = {0.1307f}, std[1] = {0.3081f};
    check_real(MF_MNIST, 60000, 10000, tr, te, mean, std);
}

static void test_real_fashion_mnist(void)
{
    static const int tr[10] = {6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000};
    static const int te[10] = {1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000};
    static const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    check_real(MF_FASHION_MNIST, 60000, 10000, tr, te, mean, std);
}

static void test_real_cifar10(void)
{
    static const int tr[10] = {5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000};
    static const int te[10] = {1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000};
    static const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2470f, 0.2435f, 0.2616f};
    check_real(MF_CIFAR10, 50000, 10000, tr, te, mean, std);
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/mf_test_data.XXXXXX",
             getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_idx_valid_raw);
    RUN(test_idx_valid_gz);
    RUN(test_idx_wrong_magic);
    RUN(test_idx_truncated_header);
    RUN(test_idx_truncated_data);
    RUN(test_idx_trailing_bytes);
    RUN(test_idx_count_mismatch);
    RUN(test_idx_bad_dims);
    RUN(test_idx_label_out_of_range);
    RUN(test_idx_empty_and_missing);
    RUN(test_cifar_valid);
    RUN(test_cifar_errors);
    RUN(test_dataset_load_synthetic);
    RUN(test_dataset_names);
    RUN(test_batch_no_augment);
    RUN(test_augment_shift);
    RUN(test_augment_crop_flip);
    RUN(test_batch_threads);
    RUN(test_shuffle);
    RUN(test_real_mnist);
    RUN(test_real_fashion_mnist);
    RUN(test_real_cifar10);
    remove_tree(tmpdir);
    return check_report();
}
