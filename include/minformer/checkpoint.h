/* minformer checkpoints: safetensors files with the model's parameters,
 * optionally its AdamW moments, and in the metadata everything needed to
 * rebuild the model and resume training exactly. docs/checkpoint.md
 * describes the format. */
#ifndef MINFORMER_CHECKPOINT_H
#define MINFORMER_CHECKPOINT_H

#include "data.h"
#include "model.h"
#include "train.h"

MF_BEGIN_API

/* Metadata "version" written; every version from the oldest on is read.
 * Version 2 added the per-tensor checksums, which it requires. */
#define MF_CHECKPOINT_VERSION 2
#define MF_CHECKPOINT_OLDEST_VERSION 1
#define MF_CHECKPOINT_MAX_HEADER (100u << 20)    /* bytes of JSON header */
#define MF_CHECKPOINT_MAX_NDIM 8
/* Names of the AdamW moment tensors: prefix + the parameter's name. */
#define MF_CHECKPOINT_ADAM_M_PREFIX "optimizer.adam_m."
#define MF_CHECKPOINT_ADAM_V_PREFIX "optimizer.adam_v."
/* Metadata key of a tensor's checksum: prefix + the tensor's name; the value
 * is the zlib CRC-32 of the tensor's bytes in the file as 8 lowercase hex
 * digits (docs/checkpoint.md). */
#define MF_CHECKPOINT_CRC32_PREFIX "crc32."

/* Everything a checkpoint holds besides the model's configuration (which is
 * m->cfg) and its tensors. */
typedef struct {
    mf_dataset_kind dataset;
    float mean[3], std[3];   /* normalization of the first `channels` channels */
    mf_train_opts opts;      /* of the run that wrote the checkpoint */
    mf_train_state state;    /* where that run stands */
    int limit_train, limit_test; /* the run's dataset limits, 0 = whole split */
    uint64_t data_fingerprint; /* mf_dataset.fingerprint of the training data; 0 = unknown */
    /* A folder model's class names (cfg.classes of them, sorted byte-wise:
     * the label is the position) and the folder settings it trained with
     * (mf_folder_opts.image_size, .center_crop). save writes them when
     * class_names is non-NULL (borrowed: save neither copies nor frees it);
     * load checks them when the file holds them and sets has_class_names and
     * the two settings, but leaves class_names NULL: mf_checkpoint_read_classes
     * returns the names. */
    char *const *class_names;
    int folder_image_size, folder_center_crop;
    int has_class_names;
    /* Set by mf_checkpoint_load (ignored by save): */
    int version;             /* the file's format version (1: written before checksums) */
    int has_optimizer;       /* the file held AdamW moments; else they are zero */
    int has_train_state;     /* the file held the resume keys; else opts and state
                                are defaults except seed, state.epoch, state.test_acc */
} mf_checkpoint_info;

/* Defaults: mnist, mean 0 / std 1, default options, a fresh state, no limits. */
void mf_checkpoint_info_init(mf_checkpoint_info *info);

/* Writes m's parameters (and its AdamW moments when with_optimizer) and info
 * to path atomically: a temporary file in the same directory, fsync'd, then
 * renamed over path and the directory fsync'd. On any failure path is left as
 * it was and the temporary file is removed. MF_ERR_IO names the path;
 * MF_ERR_CONFIG when info holds values a load would reject. */
mf_status mf_checkpoint_save(const char *path, const mf_model *m, const mf_checkpoint_info *info,
                             int with_optimizer, mf_error *err);

/* Rebuilds the model from the file alone: creates *m (which needs no prior
 * state; on failure it is left zeroed, safe to mf_model_free) and fills
 * *info (may be NULL). Every structural and semantic check of
 * docs/checkpoint.md runs before it returns; a bad file gives MF_ERR_FORMAT
 * with the message "PATH: problem". */
mf_status mf_checkpoint_load(const char *path, mf_model *m, mf_checkpoint_info *info,
                             mf_error *err);

/* The class names a folder model's checkpoint holds: *names (*count of them,
 * the model's classes) to free with mf_checkpoint_class_names_free; NULL and 0
 * for a checkpoint without them (a built-in dataset's, or one written before
 * names were stored). The file is checked as mf_checkpoint_load checks it. */
mf_status mf_checkpoint_read_classes(const char *path, char ***names, int *count, mf_error *err);
void mf_checkpoint_class_names_free(char **names, int count);

/* ---- the safetensors layer, for tools ---------------------------------- */

typedef struct {
    const char *name;
    const char *dtype;       /* "F32", "F16", "BF16", "F64", "I8" ... "U64", "BOOL" */
    int ndim;
    uint64_t shape[MF_CHECKPOINT_MAX_NDIM];
    uint64_t begin, end;     /* byte range in the data section */
    int has_crc32;           /* the metadata holds its checksum ... */
    uint32_t crc32;          /* ... this one, which its data matched */
} mf_checkpoint_tensor;

typedef struct {
    const char *key, *value;
} mf_checkpoint_entry;

typedef struct {
    uint64_t file_size;
    uint64_t header_size;    /* bytes of JSON after the 8-byte length */
    uint64_t data_start;     /* 8 + header_size */
    uint64_t data_size;      /* file_size - data_start */
    int num_tensors;
    mf_checkpoint_tensor *tensors; /* in data order (by begin) */
    int num_metadata;
    mf_checkpoint_entry *metadata; /* "__metadata__", in file order */
    int has_checksums;       /* every tensor has a checksum (and there is one at least) */
    void *internal;          /* the open file, the header text */
} mf_checkpoint_header;

/* Reads and validates a safetensors header: the file is a regular one (never
 * blocks on a FIFO), its header length fits the file size and
 * MF_CHECKPOINT_MAX_HEADER, strict JSON, known dtypes, shapes consistent with
 * data_offsets, offsets in range, neither overlapping nor leaving holes,
 * string-valued metadata. When the metadata holds checksums
 * (MF_CHECKPOINT_CRC32_PREFIX keys), each must name a tensor of the file, all
 * tensors must have one, and every tensor's data is read once and must match
 * its checksum: an accepted header promises intact data. No other
 * minformer-specific checks (the format version is load's business). Keeps
 * the file open for mf_checkpoint_read_f32 until mf_checkpoint_header_free. */
mf_status mf_checkpoint_read_header(const char *path, mf_checkpoint_header *h, mf_error *err);
void mf_checkpoint_header_free(mf_checkpoint_header *h);
/* NULL when absent. */
const char *mf_checkpoint_metadata(const mf_checkpoint_header *h, const char *key);
const mf_checkpoint_tensor *mf_checkpoint_find(const mf_checkpoint_header *h, const char *name);
/* The data of an F32 tensor (numel floats, converted from little-endian),
 * checked again against its checksum when it has one, so a file changed since
 * mf_checkpoint_read_header is still caught (MF_ERR_FORMAT). */
mf_status mf_checkpoint_read_f32(const mf_checkpoint_header *h, const mf_checkpoint_tensor *t,
                                 float *out, mf_error *err);

MF_END_API

#endif
