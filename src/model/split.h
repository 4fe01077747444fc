/* A model's share of each batch in data-parallel training. A batch is cut
 * into backward_chunks(cfg, B, precision) chunks, a function of the
 * configuration, B and the precision alone; part p of P computes the contiguous chunks
 * [chunks p / P, chunks (p + 1) / P). Forward computes the logits of its
 * images and gathers everyone's, so every part has the whole batch's
 * logits and loss. Backward sums every parameter gradient over the chunks
 * in chunk order (a left fold) as one process does: part 0 folds its
 * chunks and passes the running sum to part 1, which adds its chunks in
 * order and passes it on (the same additions in the same order), and the
 * last part, which then holds the gradients, broadcasts them. So the bits
 * do not depend on the number of parts, nor on the thread count.
 *
 * The trainer (src/train/train.c) fills the callbacks with its transport
 * (src/train/dist.h); the model never calls it otherwise. Every callback is
 * called by the main thread outside parallel regions, in the same order on
 * every part. */
#ifndef MF_MODEL_SPLIT_H
#define MF_MODEL_SPLIT_H

#include "minformer/model.h"

typedef struct mf_model_split {
    int part, parts;      /* this process's part, 0 <= part < parts <= chunks */
    int *counts, *displs; /* parts ints each: scratch the model fills for gather */
    /* Every part's floats [displs[p], displs[p] + counts[p]) of buf to every part. */
    void (*gather)(float *buf, const int *counts, const int *displs);
    /* n floats: the running sum from part - 1, or to part + 1. */
    void (*recv_prev)(float *buf, size_t n);
    void (*send_next)(const float *buf, size_t n);
    /* n floats of the last part's buf to every part. */
    void (*broadcast_last)(float *buf, size_t n);
} mf_model_split;

/* A block's chunk gradients are summed in groups of this many consecutive
 * chunks (backward.c): a boundary between parts that cuts a group passes
 * that group's sum so far besides the sum of the groups before it. */
#define MODEL_FOLD_GROUP 8

/* Part `part` of `parts` of a batch of B at a precision: chunks [*c0, *c1) of
 * backward_chunks, images [*b0, *b1). Empty when parts exceeds the chunks. */
void model_split_range(const mf_config *c, int B, mf_precision precision, int part, int parts, int *c0,
                       int *c1, int *b0, int *b1);
/* The most parts a batch of B can be trained in at a precision: its chunk count. */
int model_split_max_parts(const mf_config *c, int B, mf_precision precision);
/* Forward and backward compute split's part of each batch from now on
 * (NULL: the whole batch, the default); the model keeps the pointer, also
 * across mf_model_reserve. */
void model_set_split(mf_model *m, const mf_model_split *split);

#endif
