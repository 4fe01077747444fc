/* minformer datasets: loaders for IDX (MNIST, Fashion-MNIST; raw or .gz), the
 * CIFAR-10 binary format and image folders (PNG, JPEG; torchvision's
 * ImageFolder layout), normalization, augmentation and batching. */
#ifndef MINFORMER_DATA_H
#define MINFORMER_DATA_H

#include "core.h"

MF_BEGIN_API

/* MF_FOLDER: an image folder (mf_dataset_load_folder); its geometry and
 * classes come from the files, not from the kind. */
typedef enum { MF_MNIST = 0, MF_CIFAR10 = 1, MF_FASHION_MNIST = 2, MF_FOLDER = 3 } mf_dataset_kind;

/* One split: count images of channels x size x size bytes, planar (c, y, x). */
typedef struct {
    int count;
    int channels;
    int size;
    uint8_t *images; /* count * channels * size * size */
    uint16_t *labels; /* count, each < classes (up to MF_FOLDER_MAX_CLASSES) */
    /* The dataset's class count (the loaders set it); 0 when unknown, as in
     * a split built by hand: then only the labels themselves are checked
     * against a model. */
    int classes;
} mf_split;

typedef struct {
    mf_dataset_kind kind;
    const char *name;  /* "mnist", "cifar10", "fashion-mnist", "folder" */
    int classes;       /* 10; a folder's class count (2..MF_FOLDER_MAX_CLASSES) */
    int channels;      /* 1 or 3 */
    int size;          /* 28 or 32; a folder's S */
    mf_split train, test;
    /* Per-channel mean and std of the training split's pixels scaled to
     * [0, 1], computed from the data at load time (before any limit). */
    float mean[3], std[3];
    /* mf_hash_bytes over both splits' images and labels as loaded (before any
     * limit): a resumed run checks that its data did not change. The labels
     * are hashed one byte each when classes <= 256 (so the value is the one
     * of the byte labels before them), else two bytes little-endian. */
    uint64_t fingerprint;
    /* A folder dataset's class names (classes of them, sorted byte-wise: the
     * label is the position) and its path, owned by the dataset; NULL for
     * the built-in ones (mf_dataset_label_name covers both). */
    char **class_names;
    char *folder;
} mf_dataset;

/* "mnist", "cifar10" (also "cifar-10"), "fashion-mnist" (also "fashion_mnist"),
 * "folder:PATH" (and "folder" alone, as checkpoints name it). */
mf_status mf_dataset_parse(const char *name, mf_dataset_kind *kind, mf_error *err);
/* PATH of "folder:PATH", else NULL (also for "folder:" with an empty path). */
const char *mf_dataset_folder_path(const char *name);
const char *mf_dataset_name(mf_dataset_kind kind);
const char *mf_dataset_class_name(mf_dataset_kind kind, int label);
/* A label's name: the folder's class name, else mf_dataset_class_name's. */
const char *mf_dataset_label_name(const mf_dataset *ds, int label);
/* The built-in datasets' geometry; 0 for MF_FOLDER, whose geometry comes
 * from its files (mf_dataset.channels, .size). */
int mf_dataset_channels(mf_dataset_kind kind);
int mf_dataset_image_size(mf_dataset_kind kind);

/* The data directory: cli_dir if non-NULL, else $MINFORMER_DATA, else "./data". */
const char *mf_data_dir(const char *cli_dir);

/* Loads both splits from DIR/mnist, DIR/cifar-10-batches-bin or
 * DIR/fashion-mnist, validating every file; computes mean and std. For
 * MF_FOLDER, DIR is the folder itself, loaded with mf_folder_opts_default. */
mf_status mf_dataset_load(mf_dataset *ds, mf_dataset_kind kind, const char *dir, mf_error *err);

/* ---- Image folders ------------------------------------------------------
 * PATH/train/<class>/<image> and PATH/test/<class>/<image>, as torchvision's
 * ImageFolder: the class folders of train/ sorted byte-wise give the labels,
 * and test/ must hold the same classes. Every regular file in a class folder
 * whose name does not start with '.' is an image (PNG, JPEG, PGM, PPM:
 * mf_image_decode); other entries are ignored. The examples of a split are
 * kept in a fixed pseudo-random order (a seeded shuffle of class-major,
 * name-sorted order), so --limit-train N takes a sample of every class. If
 * any image is RGB, the dataset is RGB and grey images are replicated into
 * three channels; else it is grey. docs/IMAGENET.md and README describe the
 * cache. */
#define MF_FOLDER_MAX_CLASSES 1000 /* ImageNet-1k; the model's limit (MF_MAX_CLASSES) */
/* A class name's most bytes (a file name's limit on Linux). */
#define MF_CLASS_NAME_MAX 255
#define MF_FOLDER_MAX_IMAGES (1 << 28) /* per split */

typedef struct {
    /* 0: keep the images' own size, which must be square and the same for
     * all; S > 0: resize every image to S x S with an area (box) filter:
     * the mean of the source pixels under each output pixel when shrinking,
     * nearest neighbour when enlarging (mf_image_convert). */
    int image_size;
    /* 1: first crop the central square (side min(w, h)) so the aspect ratio
     * is kept; 0: a non-square image is stretched to S x S. */
    int center_crop;
    /* 1: an image that cannot be decoded is left out (counted in
     * mf_folder_report.skipped); 0: it is an error naming the file. */
    int skip_bad;
    /* 1 (default): read and write the decode cache PATH/.minformer-cache-*.bin. */
    int use_cache;
} mf_folder_opts;

typedef struct {
    int files;           /* image files found, both splits */
    int decoded;         /* images decoded this time: 0 when the cache was used */
    int skipped;         /* bad images left out (skip_bad) */
    int cache_used;      /* the pixels came from a valid cache */
    int cache_written;   /* a new cache was written */
    char cache_path[4096];
    char note[512];      /* why a cache was rebuilt or not written; "" when nothing to say */
    double seconds;      /* wall time of the load */
} mf_folder_report;

void mf_folder_opts_default(mf_folder_opts *o);
/* Loads an image folder (see above) with o's settings (NULL: defaults),
 * filling report when non-NULL. The decoded images come from the cache when
 * it is valid for exactly these files (names, sizes, modification times) and
 * settings, else every image is decoded (OpenMP over files: the result does
 * not depend on the thread count) and the cache is rewritten atomically. A
 * cache that is stale, corrupt or unreadable is never used: it is rebuilt
 * (report->note says why). Errors name the file or folder: a missing train/
 * or test/, fewer than 2 or more than MF_FOLDER_MAX_CLASSES classes, class
 * sets that differ, an empty class folder, a bad image (unless skip_bad),
 * images of different or non-square sizes without image_size. */
mf_status mf_dataset_load_folder(mf_dataset *ds, const char *path, const mf_folder_opts *o,
                                 mf_folder_report *report, mf_error *err);
/* The sorted class names of PATH/train alone (no image is read), for naming
 * a folder-trained model's predictions: *names (count of them) to free with
 * mf_folder_class_names_free. */
mf_status mf_folder_class_names(const char *path, char ***names, int *count, mf_error *err);
void mf_folder_class_names_free(char **names, int count);
/* NULL when name can name a class (in a folder, a checkpoint, a terminal):
 * 1 to MF_CLASS_NAME_MAX bytes of valid UTF-8, no control character (C0,
 * DEL or C1), no '/', neither "." nor ".."; else why not, as a phrase. */
const char *mf_class_name_problem(const char *name);
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

/* The augmentation that suits a dataset (shift for MNIST-like and folders,
 * crop+flip for CIFAR-10). */
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
