/* Shared by attention_qk.c and attention_vo.c: views of one image's rows
 * and one (image, head) attention tile, and the per-image loop. */
#ifndef MF_ATTENTION_COMMON_H
#define MF_ATTENTION_COMMON_H

#include "model/model_internal.h"
#include "kernels/ops.h"

/* Rows of image b in an (M,N) buffer; the (T,T) tile of image b, head h. */
#define ROWS(ptr, b, d) ((ptr) + (size_t)(b) * (d)->T * (d)->N)
#define TILE(ptr, b, h, d) ((ptr) + ((size_t)(b) * (d)->H + (h)) * (d)->T * (d)->T)

/* The query rows of d's images for the *_rows linears: count and step
 * (every row, or row 0 of each image). */
static inline int query_rows(const mf_attn_dims *d) { return d->Q == d->T ? d->B * d->T : d->B; }
static inline int query_step(const mf_attn_dims *d) { return d->Q == d->T ? 1 : d->T; }

/* Per-image loops fork only from serial code and with enough work; inside
 * the model's regions they run on the calling thread without an OpenMP
 * construct (which costs a call even when it does not fork). */
static inline int fork_worth(const mf_attn_dims *d)
{
    return mf_fork_worth((size_t)d->B * d->T * d->T * d->N);
}

#define FOR_EACH(n, d, call)                                                                       \
    do {                                                                                           \
        if (!fork_worth(d)) {                                                                      \
            for (int i_ = 0; i_ < (n); i_++) call;                                                 \
        } else {                                                                                   \
            _Pragma("omp parallel for schedule(static)") for (int i_ = 0; i_ < (n); i_++) call;    \
        }                                                                                          \
    } while (0)

#endif
