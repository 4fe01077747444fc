/* Pieces of dataset.c the folder reader (data_folder.c) shares; internal to
 * the library (hidden from libminformer.so). */
#ifndef MF_DATA_DATASET_INTERNAL_H
#define MF_DATA_DATASET_INTERNAL_H

#include "minformer/data.h"

/* Population mean and std of s's pixels scaled to [0, 1], per channel (an
 * exact, order-independent histogram sum); std 1 for a constant channel. */
void mf_split_stats(const mf_split *s, float *mean, float *std);
/* Sets d's mean and std from its training split and its fingerprint from
 * both splits' images and labels (and a folder's class names); MF_ERR_NOMEM
 * when the labels' copy for hashing cannot be allocated. */
mf_status mf_dataset_finish(mf_dataset *d, mf_error *err);

#endif
