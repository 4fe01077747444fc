/* The model's elementwise and row-wise operations, one function per op and
 * direction: outputs first, then inputs, then sizes. Backward functions
 * accumulate (+=) into parameter gradients. Rows are split across threads;
 * every reduction over rows runs in a fixed order, so results do not depend
 * on the thread count.
 *
 * Called from serial code, an op forks its own threads when the work is worth
 * it. Called inside a parallel region (the model runs each thread's images
 * through whole blocks), it runs on the calling thread on the rows given;
 * linear_backward_params_part computes share `part` of `parts` of a
 * parameter gradient, so that the threads of one region can split it.
 *
 * Each op times itself under its profile entry (src/base/profile.h), except
 * softmax_rows_*, which run per attention tile inside the model's scores op
 * and are timed there. */
#ifndef MF_OPS_H
#define MF_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm.h"

#define MF_LN_EPS 1e-5f

/* Loops with less work than this (in multiply-adds or elements touched)
 * run on one thread: a fork costs microseconds, and on a busy machine each
 * barrier may wait for a descheduled thread. */
#define MF_PAR_MIN_FLOPS ((size_t)1 << 16)

/* Whether a loop of `work` should fork threads: enough work, and not
 * already inside a parallel region. */
int mf_fork_worth(size_t work);

/* [*lo, *hi): share `part` of `parts` of n items, boundaries on multiples of
 * align (the last share takes the remainder). */
void mf_share(int n, int align, int part, int parts, int *lo, int *hi);

/* y (M,out) = x (M,in) W^T + b; W is (out,in) as in PyTorch; b may be NULL. */
void linear_forward(mf_gemm_kind kind, float *y, const float *x, const float *w, const float *b, int M, int in, int out);
/* y (M,n) += b, row by row. */
void bias_add_forward(float *y, const float *b, int M, int n);
/* dx (M,in) = dy W, added to dx when accumulate_dx (dx may be NULL: skipped);
 * dw += dy^T x; db += column sums of dy (db may be NULL). */
void linear_backward(mf_gemm_kind kind, float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int M, int in, int out, int accumulate_dx);
/* The two halves of linear_backward: the input gradient (row by row), and
 * dw and db, summed over the M rows in order; _part: share `part` of `parts`
 * of dw (by columns) and db (by entries). */
void linear_backward_input(mf_gemm_kind kind, float *dx, const float *dy, const float *w, int M, int in, int out,
                           int accumulate_dx);
void linear_backward_params(mf_gemm_kind kind, float *dw, float *db, const float *dy, const float *x, int M, int in,
                            int out);
/* The same on every step-th row of x, y, dx and dy (rows i * step for
 * i < M; step 1: all of them), as when only the CLS rows are needed. */
void linear_forward_rows(mf_gemm_kind kind, float *y, const float *x, const float *w, const float *b, int M, int in,
                         int out, int step);
void linear_backward_input_rows(mf_gemm_kind kind, float *dx, const float *dy, const float *w, int M, int in, int out,
                                int accumulate_dx, int step);
void linear_backward_params_rows(mf_gemm_kind kind, float *dw, float *db, const float *dy, const float *x, int M,
                                 int in, int out, int step);
/* linear_forward and linear_backward_params in bf16 with x held in bf16
 * (mf_bf16_round's bits; gemm_bf16.c): the same results as with the fp32 x
 * it was rounded from. Only where mf_bf16_available(). */
void linear_forward_held(float *y, const uint16_t *x, const float *w, const float *b, int M, int in, int out);
void linear_backward_params_held(float *dw, float *db, const float *dy, const uint16_t *x, int M, int in,
                                 int out);
void linear_backward_params_part(mf_gemm_kind kind, float *dw, float *db, const float *dy, const float *x, int M,
                                 int in, int out, int part, int parts);

/* LayerNorm over the last dimension (N), eps MF_LN_EPS, biased variance. */
void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                       const float *b, int M, int N);
/* x_out = x + (branch + bias) (bias may be NULL), then, when y is not NULL,
 * y = LayerNorm(x_out): a residual add and the LayerNorm after it in one pass
 * over each row. The same bits as the separate adds and layernorm_forward. */
void residual_layernorm_forward(float *x_out, float *y, float *mean, float *rstd, const float *x,
                                const float *branch, const float *bias, const float *w,
                                const float *b, int M, int N);
/* dx += dL/dx; dw += sum dy*xhat; db += sum dy. */
void layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *w, int M, int N);
/* Its halves: dx = dx_in + dL/dx (row by row; dx may be dx_in), and dw, db. */
void layernorm_backward_input(float *dx, const float *dx_in, const float *dy, const float *x,
                              const float *mean, const float *rstd, const float *w, int M, int N);
void layernorm_backward_params(float *dw, float *db, const float *dy, const float *x,
                               const float *mean, const float *rstd, int M, int N);

/* Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), of an MLP's pre-activations with
 * their bias: y (M,F) = GELU(x + b) (b may be NULL) and, when slope is not
 * NULL, slope = GELU'(x + b), which is all backward needs. slope may be x
 * (overwriting it); y must not overlap either. */
void bias_gelu_forward(float *y, float *slope, const float *x, const float *b, int M, int F);
/* The same with y rounded to bf16 (the bits mf_bf16_round writes), for an
 * activation that only bf16 products read. */
void bias_gelu_forward_bf16(uint16_t *y, float *slope, const float *x, const float *b, int M, int F);
/* d = dL/dy on entry, dL/dx = d * slope on return. */
void gelu_backward(float *d, const float *slope, size_t n);

/* Row-wise softmax of (rows, n) in place. */
void softmax_rows_forward(float *x, int rows, int n);
/* dS = A * (dA - rowsum(dA * A)) in place on d. */
void softmax_rows_backward(float *d, const float *a, int rows, int n);

/* Mean cross-entropy of logits (B,K) against labels; fills probs. */
float cross_entropy_forward(float *probs, const float *logits, const int *labels, int B, int K);
/* dlogits = (probs - onehot) / B. */
void cross_entropy_backward(float *dlogits, const float *probs, const int *labels, int B, int K);

/* Inverted dropout with p in (0,1): x[i] *= keep(i) / (1-p), where keep is a
 * hash of (seed, i): the mask is recomputed in backward, never stored, and
 * does not depend on the thread count. */
void dropout_apply(float *x, size_t n, float p, uint64_t seed);
/* The same on elements first .. first+n-1 of a tensor, x pointing at element
 * first: the mask of a slice equals the whole tensor's mask there. */
void dropout_apply_at(float *x, size_t first, size_t n, float p, uint64_t seed);

#endif
