/* minformer datasets: loaders for IDX (MNIST, Fashion-MNIST; raw or .gz) and
 * the CIFAR-10 binary format, normalization, augmentation and batching. */
#ifndef MINFORMER_DATA_H
#define MINFORMER_DATA_H

#include "core.h"

MF_BEGIN_API

typedef enum { MF_MNIST = 0, MF_CIFAR10 = 1, MF_FASHION_MNIST = 2 } mf_dataset_kind;

/* One split: count images of channels x size x size bytes, planar (c, y, x). */
typedef struct {
    int count;
    int channels;
    int size;
    uint8_t *images; /* count * channels * size * size */
    uint8_t *labels; /* count, each < classes */
    /* The dataset's class count (the loaders set it); 0 when unknown, as in
     * a split built by hand: then only the labels themselves are checked
     * against a model. */
    int classes;
} mf_split;

typedef struct {
    mf_dataset_kind kind;
    const char *name;  /* "mnist", "cifar10", "fashion-mnist" */
    int classes;       /* 10 */
    int channels;      /* 1 or 3 */
    int size;          /* 28 or 32 */
    mf_split train, test;
    /* Per-channel mean and std of the training split's pixels scaled to
     * [0, 1], computed from the data at load time (before any limit). */
    float mean[3], std[3];
    /* mf_hash_bytes over both splits' images and labels as loaded (before any
     * limit): a resumed run checks that its data did not change. */
    uint64_t fingerprint;
} mf_dataset;

/* "mnist", "cifar10" (also "cifar-10"), "fashion-mnist" (also "fashion_mnist"). */
mf_status mf_dataset_parse(const char *name, mf_dataset_kind *kind, mf_error *err);
const char *mf_dataset_name(mf_dataset_kind kind);
const char *mf_dataset_class_name(mf_dataset_kind kind, int label);
int mf_dataset_channels(mf_dataset_kind kind);
int mf_dataset_image_size(mf_dataset_kind kind);

/* The data directory: cli_dir if non-NULL, else $MINFORMER_DATA, else "./data". */
const char *mf_data_dir(const char *cli_dir);

/* Loads both splits from DIR/mnist, DIR/cifar-10-batches-bin or
 * DIR/fashion-mnist, validating every file; computes mean and std. */
mf_status mf_dataset_load(mf_dataset *ds, mf_dataset_kind kind, const char *dir, mf_error *err);
/* Keeps the first limit_train / limit_test examples (0 = keep all). */
void mf_dataset_limit(mf_dataset *ds, int limit_train, int limit_test);
void mf_dataset_free(mf_dataset *ds);

/* An IDX image file and its label file (each raw, or gzip if it ends in .gz
 * or starts with the gzip magic). Validates magic, dimensions, counts, label
 * range (< classes) and exact sizes. */
mf_status mf_idx_load(const char *images_path, const char *labels_path, int classes,
                      mf_split *out, mf_error *err);
/* Concatenates CIFAR-10 binary batch files (records of 1 + 3072 bytes). */
mf_status mf_cifar_load(const char *const *paths, int npaths, mf_split *out, mf_error *err);
void mf_split_free(mf_split *s);

typedef enum {
    MF_AUGMENT_NONE = 0,
    MF_AUGMENT_SHIFT = 1,     /* random shift of up to 2 pixels, zero fill */
    MF_AUGMENT_CROP_FLIP = 2  /* 32x32 crop of the 4-pixel zero-padded image, random h-flip */
} mf_augment;

/* The augmentation that suits a dataset (shift for MNIST-like, crop+flip for CIFAR-10). */
mf_augment mf_dataset_augment(mf_dataset_kind kind);

/* Fills x (B x C x S x S floats, normalized (p/255 - mean) / std) and y (B)
 * from split examples indices[0..B). Sample b's augmentation draws from a
 * generator seeded by mf_hash2(aug_seed, b), so the result does not depend on
 * thread count. */
void mf_batch_fill(const mf_split *split, const int *indices, int B, const float *mean,
                   const float *std, mf_augment augment, uint64_t aug_seed, float *x, int *y);
/* perm[0..n) becomes a permutation of 0..n-1 drawn from seed (Fisher-Yates). */
void mf_shuffle(int *perm, int n, uint64_t seed);

MF_END_API

#endif
