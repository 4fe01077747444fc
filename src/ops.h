/* The model's elementwise and row-wise operations, one function per op and
 * direction: outputs first, then inputs, then sizes. Backward functions
 * accumulate (+=) into parameter gradients. Rows are split across threads;
 * every reduction over rows runs in a fixed order, so results do not depend
 * on the thread count. */
#ifndef MF_OPS_H
#define MF_OPS_H

#include <stddef.h>
#include <stdint.h>

#define MF_LN_EPS 1e-5f

/* y (M,out) = x (M,in) W^T + b; W is (out,in) as in PyTorch; b may be NULL. */
void linear_forward(float *y, const float *x, const float *w, const float *b, int M, int in, int out);
/* dx (M,in) = dy W, added to dx when accumulate_dx (dx may be NULL: skipped);
 * dw += dy^T x; db += column sums of dy (db may be NULL). */
void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int M, int in, int out, int accumulate_dx);

/* LayerNorm over the last dimension (N), eps MF_LN_EPS, biased variance. */
void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                       const float *b, int M, int N);
/* dx += dL/dx; dw += sum dy*xhat; db += sum dy. */
void layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *w, int M, int N);

/* Exact GELU, 0.5 x (1 + erf(x / sqrt 2)). */
void gelu_forward(float *y, const float *x, size_t n);
/* dx = dy * GELU'(x) (overwrites dx). */
void gelu_backward(float *dx, const float *dy, const float *x, size_t n);

/* Row-wise softmax of (rows, n) in place. */
void softmax_rows_forward(float *x, int rows, int n);
/* dS = A * (dA - rowsum(dA * A)) in place on d. */
void softmax_rows_backward(float *d, const float *a, int rows, int n);

/* Mean cross-entropy of logits (B,K) against labels; fills probs. */
float cross_entropy_forward(float *probs, const float *logits, const int *labels, int B, int K);
/* dlogits = (probs - onehot) / B. */
void cross_entropy_backward(float *dlogits, const float *probs, const int *labels, int B, int K);

/* x += y, elementwise. */
void add_inplace(float *x, const float *y, size_t n);
/* Inverted dropout with p in (0,1): x[i] *= keep(i) / (1-p), where keep is a
 * hash of (seed, i): the mask is recomputed in backward, never stored, and
 * does not depend on the thread count. */
void dropout_apply(float *x, size_t n, float p, uint64_t seed);

#endif
