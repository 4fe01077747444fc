/* The datasets: names, class names, where their files live, loading both
 * splits, and the per-channel normalization statistics and fingerprint
 * (shared with the folder reader, data_folder.c). */
#define _POSIX_C_SOURCE 200809L
#include "minformer/data.h"
#include "data/dataset_internal.h"
#include "base/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const mnist_classes[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
static const char *const fashion_classes[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                                "Bag",         "Ankle boot"};
static const char *const cifar_classes[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

#define MISSING_HINT "run 'make data' (or scripts/get_data.sh DIR) to fetch the datasets"

mf_status mf_dataset_parse(const char *name, mf_dataset_kind *kind, mf_error *err)
{
    if (name && !strcmp(name, "mnist")) {
        *kind = MF_MNIST;
    } else if (name && (!strcmp(name, "cifar10") || !strcmp(name, "cifar-10"))) {
        *kind = MF_CIFAR10;
    } else if (name && (!strcmp(name, "fashion-mnist") || !strcmp(name, "fashion_mnist"))) {
        *kind = MF_FASHION_MNIST;
    } else if (name && (!strcmp(name, "folder") || mf_dataset_folder_path(name))) {
        *kind = MF_FOLDER;
    } else if (name && !strcmp(name, "folder:")) {
        return mf_fail(err, MF_ERR_CONFIG, "dataset 'folder:' needs a path: folder:PATH");
    } else {
        return mf_fail(err, MF_ERR_CONFIG,
                       "unknown dataset '%s' (expected mnist, cifar10, fashion-mnist or "
                       "folder:PATH)", name ? name : "");
    }
    return MF_OK;
}

const char *mf_dataset_folder_path(const char *name)
{
    if (!name || strncmp(name, "folder:", 7) || !name[7]) return NULL;
    return name + 7;
}

const char *mf_dataset_name(mf_dataset_kind kind)
{
    switch (kind) {
    case MF_MNIST: return "mnist";
    case MF_CIFAR10: return "cifar10";
    case MF_FASHION_MNIST: return "fashion-mnist";
    case MF_FOLDER: return "folder";
    }
    return "unknown";
}

const char *mf_dataset_class_name(mf_dataset_kind kind, int label)
{
    if (label < 0 || label >= 10) return "?";
    switch (kind) {
    case MF_MNIST: return mnist_classes[label];
    case MF_CIFAR10: return cifar_classes[label];
    case MF_FASHION_MNIST: return fashion_classes[label];
    case MF_FOLDER: break; /* named by the dataset: mf_dataset_label_name */
    }
    return "?";
}

const char *mf_dataset_label_name(const mf_dataset *ds, int label)
{
    if (label < 0 || label >= ds->classes) return "?";
    if (ds->class_names) return ds->class_names[label];
    return mf_dataset_class_name(ds->kind, label);
}

int mf_dataset_channels(mf_dataset_kind kind)
{
    return kind == MF_FOLDER ? 0 : kind == MF_CIFAR10 ? 3 : 1;
}

int mf_dataset_image_size(mf_dataset_kind kind)
{
    return kind == MF_FOLDER ? 0 : kind == MF_CIFAR10 ? 32 : 28;
}

mf_augment mf_dataset_augment(mf_dataset_kind kind)
{
    return kind == MF_CIFAR10 ? MF_AUGMENT_CROP_FLIP : MF_AUGMENT_SHIFT;
}

/* An empty cli_dir is returned as it is, for mf_dataset_load to refuse: it
 * must not quietly mean ./data. An empty $MINFORMER_DATA counts as unset
 * (the usual way to clear a variable for one command). */
const char *mf_data_dir(const char *cli_dir)
{
    if (cli_dir) return cli_dir;
    const char *env = getenv("MINFORMER_DATA");
    if (env && env[0]) return env;
    return "./data";
}

void mf_split_free(mf_split *s)
{
    if (!s) return;
    free(s->images);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

void mf_dataset_free(mf_dataset *ds)
{
    if (!ds) return;
    mf_split_free(&ds->train);
    mf_split_free(&ds->test);
    if (ds->class_names)
        for (int k = 0; k < ds->classes; k++) free(ds->class_names[k]);
    free(ds->class_names);
    free(ds->folder);
    ds->class_names = NULL;
    ds->folder = NULL;
}

void mf_dataset_limit(mf_dataset *ds, int limit_train, int limit_test)
{
    if (limit_train > 0 && limit_train < ds->train.count) ds->train.count = limit_train;
    if (limit_test > 0 && limit_test < ds->test.count) ds->test.count = limit_test;
}

/* 0 when path exists, else stat's errno. */
static int file_errno(const char *path)
{
    struct stat st;
    return stat(path, &st) ? errno : 0;
}

/* Only a data directory that is not there at all is the usual "not fetched
 * yet"; a file in its place, a symlink loop or a permission problem would
 * not be fixed by fetching, so those are stated as they are. */
static mf_status check_data_dir(const char *dir, mf_error *err)
{
    struct stat st;
    if (!dir[0]) return mf_fail(err, MF_ERR_CONFIG, "the data directory is an empty string");
    if (stat(dir, &st)) {
        if (errno == ENOENT)
            return mf_fail(err, MF_ERR_IO, "%s: the data directory is missing; " MISSING_HINT, dir);
        return mf_fail(err, MF_ERR_IO, "%s: %s", dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) return mf_fail(err, MF_ERR_IO, "%s: not a directory", dir);
    return MF_OK;
}

/* A data file that stat cannot see: missing, or the system's reason. */
static mf_status file_problem(const char *path, int e, const char *missing, mf_error *err)
{
    if (e == ENOENT) return mf_fail(err, MF_ERR_IO, "%s: %s; " MISSING_HINT, path, missing);
    return mf_fail(err, MF_ERR_IO, "%s: %s", path, strerror(e));
}

static mf_status join(char *out, size_t cap, const char *dir, const char *sub, const char *file,
                      const char *suffix, mf_error *err)
{
    int n = snprintf(out, cap, "%s/%s/%s%s", dir, sub, file, suffix);
    if (n < 0 || (size_t)n >= cap)
        return mf_fail(err, MF_ERR_IO, "%s/%s/%s: path too long", dir, sub, file);
    return MF_OK;
}

/* DIR/SUB/NAME, or DIR/SUB/NAME.gz when only that exists. */
static mf_status idx_path(char *out, size_t cap, const char *dir, const char *sub,
                          const char *name, mf_error *err)
{
    mf_status st = join(out, cap, dir, sub, name, "", err);
    int e;
    if (st || !(e = file_errno(out))) return st;
    if (e != ENOENT) return file_problem(out, e, "", err);
    st = join(out, cap, dir, sub, name, ".gz", err);
    if (st || !(e = file_errno(out))) return st;
    if (e != ENOENT) return file_problem(out, e, "", err);
    join(out, cap, dir, sub, name, "", err);
    return file_problem(out, ENOENT, "missing (nor is there a .gz)", err);
}

static mf_status load_idx_split(mf_split *s, const char *dir, const char *sub, const char *prefix,
                                int size, mf_error *err)
{
    char images[4096], labels[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    mf_status st = idx_path(images, sizeof images, dir, sub, name, err);
    if (st) return st;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    st = idx_path(labels, sizeof labels, dir, sub, name, err);
    if (st) return st;
    st = mf_idx_load(images, labels, 10, s, err);
    if (!st && s->size != size) {
        st = mf_fail(err, MF_ERR_FORMAT, "%s: images are %dx%d, expected %dx%d", images, s->size,
                     s->size, size, size);
        mf_split_free(s);
    }
    return st;
}

static mf_status load_cifar_split(mf_split *s, const char *dir, int train, mf_error *err)
{
    char paths[5][4096];
    const char *ptrs[5];
    int n = train ? 5 : 1;
    for (int i = 0; i < n; i++) {
        char name[32];
        if (train)
            snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
        else
            snprintf(name, sizeof name, "test_batch.bin");
        mf_status st = join(paths[i], sizeof paths[i], dir, "cifar-10-batches-bin", name, "", err);
        if (st) return st;
        int e = file_errno(paths[i]);
        if (e) return file_problem(paths[i], e, "missing", err);
        ptrs[i] = paths[i];
    }
    return mf_cifar_load(ptrs, n, s, err);
}

/* Population mean and std of the split's pixels scaled to [0, 1], per channel.
 * A histogram of byte values makes the sums exact and order-independent. */
void mf_split_stats(const mf_split *s, float *mean, float *std)
{
    size_t plane = (size_t)s->size * s->size;
    for (int c = 0; c < s->channels; c++) {
        uint64_t hist[256] = {0};
        for (int i = 0; i < s->count; i++) {
            const uint8_t *p = s->images + ((size_t)i * s->channels + c) * plane;
            for (size_t k = 0; k < plane; k++) hist[p[k]]++;
        }
        double n = (double)s->count * (double)plane, sum = 0.0, sq = 0.0;
        for (int v = 0; v < 256; v++) sum += (double)hist[v] * (v / 255.0);
        double m = n > 0 ? sum / n : 0.0;
        for (int v = 0; v < 256; v++) sq += (double)hist[v] * (v / 255.0 - m) * (v / 255.0 - m);
        double sd = n > 0 ? sqrt(sq / n) : 0.0;
        mean[c] = (float)m;
        std[c] = sd > 1e-6 ? (float)sd : 1.0f; /* a constant image set still normalizes */
    }
}

mf_status mf_dataset_load(mf_dataset *ds, mf_dataset_kind kind, const char *dir, mf_error *err)
{
    memset(ds, 0, sizeof *ds);
    if (kind != MF_MNIST && kind != MF_CIFAR10 && kind != MF_FASHION_MNIST && kind != MF_FOLDER)
        return mf_fail(err, MF_ERR_CONFIG, "unknown dataset kind %d", (int)kind);
    if (kind == MF_FOLDER) {
        if (!dir || !dir[0])
            return mf_fail(err, MF_ERR_CONFIG, "a folder dataset needs its path (folder:PATH)");
        return mf_dataset_load_folder(ds, dir, NULL, NULL, err);
    }
    if (!dir) dir = mf_data_dir(NULL);
    mf_status dst = check_data_dir(dir, err);
    if (dst) return dst;
    mf_dataset d = {.kind = kind,
                    .name = mf_dataset_name(kind),
                    .classes = 10,
                    .channels = mf_dataset_channels(kind),
                    .size = mf_dataset_image_size(kind)};
    mf_status st;
    if (kind == MF_CIFAR10) {
        st = load_cifar_split(&d.train, dir, 1, err);
        if (!st) st = load_cifar_split(&d.test, dir, 0, err);
    } else {
        const char *sub = kind == MF_MNIST ? "mnist" : "fashion-mnist";
        st = load_idx_split(&d.train, dir, sub, "train", d.size, err);
        if (!st) st = load_idx_split(&d.test, dir, sub, "t10k", d.size, err);
    }
    if (st) {
        mf_dataset_free(&d);
        return st;
    }
    if ((st = mf_dataset_finish(&d, err))) {
        mf_dataset_free(&d);
        return st;
    }
    *ds = d;
    return MF_OK;
}

const char *mf_class_name_problem(const char *name)
{
    size_t len = strlen(name);
    if (len == 0) return "an empty name";
    if (len > MF_CLASS_NAME_MAX) return "longer than 255 bytes";
    if (!mf_json_utf8_valid(name, len)) return "not valid UTF-8";
    if (!strcmp(name, ".") || !strcmp(name, "..")) return "a name of a folder itself";
    const unsigned char *p = (const unsigned char *)name;
    for (size_t i = 0; i < len; i++) {
        /* C1 controls (U+0080..U+009F) are 0xC2 0x80..0x9F in UTF-8. */
        if (p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && i + 1 < len && p[i + 1] < 0xa0))
            return "a control character in it";
        if (p[i] == '/') return "a '/' in it";
    }
    return NULL;
}

/* The labels as the fingerprint hashes them, in one call: one byte each
 * while they fit (the fingerprint of every dataset of up to 256 classes is
 * the one of the byte labels), else two bytes each, little-endian. */
static mf_status hash_labels(uint64_t *h, const mf_split *s, int wide, mf_error *err)
{
    size_t per = wide ? 2 : 1, n = (size_t)s->count;
    uint8_t *buf = malloc(n ? n * per : 1);
    if (!buf) return mf_fail(err, MF_ERR_NOMEM, "out of memory for the data fingerprint");
    for (size_t i = 0; i < n; i++) {
        buf[i * per] = (uint8_t)s->labels[i];
        if (wide) buf[i * per + 1] = (uint8_t)(s->labels[i] >> 8);
    }
    *h = mf_hash_bytes(*h, buf, n * per);
    free(buf);
    return MF_OK;
}

mf_status mf_dataset_finish(mf_dataset *d, mf_error *err)
{
    for (int c = 0; c < 3; c++) d->mean[c] = 0.0f, d->std[c] = 1.0f;
    mf_split_stats(&d->train, d->mean, d->std);
    const mf_split *splits[2] = {&d->train, &d->test};
    uint64_t h = 0;
    for (int i = 0; i < 2; i++) {
        size_t img = (size_t)splits[i]->channels * splits[i]->size * splits[i]->size;
        h = mf_hash_bytes(h, splits[i]->images, (size_t)splits[i]->count * img);
        mf_status st = hash_labels(&h, splits[i], d->classes > 256, err);
        if (st) return st;
    }
    /* A folder's class names are part of its data: renaming a class folder
     * changes what the labels mean. */
    if (d->class_names)
        for (int k = 0; k < d->classes; k++)
            h = mf_hash_bytes(h, d->class_names[k], strlen(d->class_names[k]) + 1);
    d->fingerprint = h;
    return MF_OK;
}
