/* Row-wise and elementwise operations of the model; see ops.h. */
#include "kernels/ops.h"

#include <math.h>
#include <string.h>

#include "base/profile.h"
#include "kernels/gemm.h"
#include "minformer/core.h"
#ifdef _OPENMP
#include <omp.h>
#endif

int mf_fork_worth(size_t work)
{
#ifdef _OPENMP
    return work >= MF_PAR_MIN_FLOPS && !omp_in_parallel();
#else
    (void)work;
    return 0;
#endif
}

void mf_share(int n, int align, int part, int parts, int *lo, int *hi)
{
    int units = (n + align - 1) / align;
    int u0 = (int)((long)units * part / parts), u1 = (int)((long)units * (part + 1) / parts);
    *lo = u0 * align < n ? u0 * align : n;
    *hi = u1 * align < n ? u1 * align : n;
}

void linear_forward(mf_gemm_kind kind, float *y, const float *x, const float *w, const float *b, int M, int in, int out)
{
    linear_forward_rows(kind, y, x, w, b, M, in, out, 1);
}

static inline void bias_add_row(float *row, const float *b, int n)
{
    for (int j = 0; j < n; j++) row[j] += b[j];
}

/* Each op below runs its loop directly when it should not fork: an OpenMP
 * parallel construct costs a call even when its if clause is false, and the
 * model calls these ops thousands of times per step inside its regions. */
static void bias_add_rows(float *y, size_t ld, const float *b, int M, int n)
{
    if (!mf_fork_worth((size_t)M * n)) {
        for (int i = 0; i < M; i++) bias_add_row(y + (size_t)i * ld, b, n);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) bias_add_row(y + (size_t)i * ld, b, n);
}

void bias_add_forward(float *y, const float *b, int M, int n)
{
    double t0 = mf_prof_begin();
    bias_add_rows(y, (size_t)n, b, M, n);
    mf_prof_end(MF_PROF_LINEAR, MF_PROF_FORWARD, t0);
}

void linear_forward_rows(mf_gemm_kind kind, float *y, const float *x, const float *w, const float *b, int M, int in,
                         int out, int step)
{
    double t0 = mf_prof_begin();
    mf_gemm_as(kind, 0, 1, M, out, in, 1.0f, x, in * step, w, in, 0.0f, y, out * step);
    if (b) bias_add_rows(y, (size_t)out * step, b, M, out);
    mf_prof_end(MF_PROF_LINEAR, MF_PROF_FORWARD, t0);
}

/* db += column sums of dy (M rows of n, ld apart), each column summed in row
 * order, for the 16-column blocks blk0 .. blk1-1 (blocks of 16 so threads
 * never share a cache line); four blocks per pass over the rows, their sums
 * in registers. */
static void column_sums_blocks(float *db, const float *dy, size_t ld, int M, int n, int blk0, int blk1)
{
    int blk = blk0;
    for (; blk + 4 <= blk1 && (blk + 4) * 16 <= n; blk += 4) {
        int j0 = blk * 16;
        float acc[64] = {0};
        for (int i = 0; i < M; i++) {
            const float *row = dy + (size_t)i * ld + j0;
            for (int j = 0; j < 64; j++) acc[j] += row[j];
        }
        for (int j = 0; j < 64; j++) db[j0 + j] += acc[j];
    }
    for (; blk < blk1; blk++) {
        int j0 = blk * 16, j1 = j0 + 16 < n ? j0 + 16 : n;
        float acc[16] = {0};
        for (int i = 0; i < M; i++) {
            const float *row = dy + (size_t)i * ld;
            for (int j = j0; j < j1; j++) acc[j - j0] += row[j];
        }
        for (int j = j0; j < j1; j++) db[j] += acc[j - j0];
    }
}

static void column_sums_accumulate(float *db, const float *dy, size_t ld, int M, int n)
{
    int blocks = (n + 15) / 16;
    if (!mf_fork_worth((size_t)M * n)) {
        column_sums_blocks(db, dy, ld, M, n, 0, blocks);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) column_sums_blocks(db, dy, ld, M, n, blk, blk + 1);
}

void linear_backward(mf_gemm_kind kind, float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int M, int in, int out, int accumulate_dx)
{
    if (dx) linear_backward_input(kind, dx, dy, w, M, in, out, accumulate_dx);
    linear_backward_params(kind, dw, db, dy, x, M, in, out);
}

void linear_backward_params(mf_gemm_kind kind, float *dw, float *db, const float *dy, const float *x, int M, int in,
                            int out)
{
    linear_backward_params_rows(kind, dw, db, dy, x, M, in, out, 1);
}

void linear_backward_params_rows(mf_gemm_kind kind, float *dw, float *db, const float *dy, const float *x, int M,
                                 int in, int out, int step)
{
    double t0 = mf_prof_begin();
    if (dw) mf_gemm_as(kind, 1, 0, out, in, M, 1.0f, dy, out * step, x, in * step, 1.0f, dw, in);
    if (db) column_sums_accumulate(db, dy, (size_t)out * step, M, out);
    mf_prof_end(MF_PROF_LINEAR, MF_PROF_BACKWARD, t0);
}

void linear_backward_input(mf_gemm_kind kind, float *dx, const float *dy, const float *w, int M, int in, int out,
                           int accumulate_dx)
{
    linear_backward_input_rows(kind, dx, dy, w, M, in, out, accumulate_dx, 1);
}

void linear_backward_input_rows(mf_gemm_kind kind, float *dx, const float *dy, const float *w, int M, int in, int out,
                                int accumulate_dx, int step)
{
    double t0 = mf_prof_begin();
    mf_gemm_as(kind, 0, 0, M, in, out, 1.0f, dy, out * step, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in * step);
    mf_prof_end(MF_PROF_LINEAR, MF_PROF_BACKWARD, t0);
}

#ifdef MF_BF16_KERNEL
void linear_forward_held(float *y, const uint16_t *x, const float *w, const float *b, int M, int in, int out)
{
    double t0 = mf_prof_begin();
    mf_gemm_bf16_held(0, 1, M, out, in, 1.0f, NULL, x, in, w, NULL, in, 0.0f, y, out, 1);
    if (b) bias_add_rows(y, (size_t)out, b, M, out);
    mf_prof_end(MF_PROF_LINEAR, MF_PROF_FORWARD, t0);
}

void linear_backward_params_held(float *dw, float *db, const float *dy, const uint16_t *x, int M, int in,
                                 int out)
{
    double t0 = mf_prof_begin();
    if (dw) mf_gemm_bf16_held(1, 0, out, in, M, 1.0f, dy, NULL, out, NULL, x, in, 1.0f, dw, in, 1);
    if (db) column_sums_accumulate(db, dy, (size_t)out, M, out);
    mf_prof_end(MF_PROF_LINEAR, MF_PROF_BACKWARD, t0);
}
#endif

/* dw's columns and db's 16-blocks are split; every element still sums all M
 * rows in order, as one mf_gemm would (the GEMM's contract: an element does
 * not depend on which call computed it). */
void linear_backward_params_part(mf_gemm_kind kind, float *dw, float *db, const float *dy, const float *x, int M,
                                 int in, int out, int part, int parts)
{
    double t0 = mf_prof_begin();
    int c0, c1;
    mf_share(in, 16, part, parts, &c0, &c1);
    if (dw && c1 > c0) mf_gemm_serial_as(kind, 1, 0, out, c1 - c0, M, 1.0f, dy, out, x + c0, in, 1.0f, dw + c0, in);
    if (db) {
        int b0, b1;
        mf_share((out + 15) / 16, 1, part, parts, &b0, &b1);
        column_sums_blocks(db, dy, (size_t)out, M, out, b0, b1);
    }
    mf_prof_end(MF_PROF_LINEAR, MF_PROF_BACKWARD, t0);
}

/* Row reductions add into LANES interleaved partial sums, combined pairwise at
 * the end: a fixed order (so the result does not depend on the thread count
 * or the vector width) that vectorizes, unlike one running sum, which is a
 * chain of dependent adds. */
#define LANES 16

/* acc[k] += acc[k + w] for w = 8, 4, 2, 1, written out level by level: as a
 * loop over w, GCC kept acc in memory and reloaded halves of a 64-byte store,
 * which stalled store-to-load forwarding on every row (LayerNorm at N = 64
 * spent about 160 cycles per row). */
_Static_assert(LANES == 16, "lanes_total is written out for 16 lanes");

/* LANES floats as one GCC/Clang vector (a zmm with AVX-512, two ymm with
 * AVX2): lane k does what iteration k of a loop over LANES would, in the
 * same order (no contraction into FMAs under -std=c11). */
typedef float lanes_v __attribute__((vector_size(LANES * sizeof(float))));

static inline void load_lanes(lanes_v *v, const float *p) { memcpy(v, p, sizeof *v); }

static inline float lanes_total(const float acc[LANES])
{
    float h[8], q[4];
    for (int k = 0; k < 8; k++) h[k] = acc[k] + acc[k + 8];
    for (int k = 0; k < 4; k++) q[k] = h[k] + h[k + 4];
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* One row of LayerNorm: y = (x - mean) * rstd * w + b. */
static inline void layernorm_row(float *yr, float *mean, float *rstd, const float *xr,
                                 const float *w, const float *b, int N)
{
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= N; j += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += xr[j + k];
    for (int k = 0; j + k < N; k++) acc[k] += xr[j + k];
    float mu = lanes_total(acc) / (float)N;
    float sq[LANES] = {0};
    for (j = 0; j + LANES <= N; j += LANES)
        for (int k = 0; k < LANES; k++) {
            float dlt = xr[j + k] - mu;
            sq[k] += dlt * dlt;
        }
    for (int k = 0; j + k < N; k++) {
        float dlt = xr[j + k] - mu;
        sq[k] += dlt * dlt;
    }
    float var = lanes_total(sq) / (float)N;
    float rs = 1.0f / sqrtf(var + MF_LN_EPS);
    for (j = 0; j < N; j++) yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
    *mean = mu;
    *rstd = rs;
}

void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                       const float *b, int M, int N)
{
    double t0 = mf_prof_begin();
    if (!mf_fork_worth((size_t)M * N)) {
        for (int i = 0; i < M; i++)
            layernorm_row(y + (size_t)i * N, &mean[i], &rstd[i], x + (size_t)i * N, w, b, N);
    } else {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++)
            layernorm_row(y + (size_t)i * N, &mean[i], &rstd[i], x + (size_t)i * N, w, b, N);
    }
    mf_prof_end(MF_PROF_LAYERNORM, MF_PROF_FORWARD, t0);
}

/* Row i of residual_layernorm_forward. */
static inline void residual_layernorm_row(float *x_out, float *y, float *mean, float *rstd,
                                          const float *x, const float *branch, const float *bias,
                                          const float *w, const float *b, int i, int N)
{
    const float *xr = x + (size_t)i * N, *br = branch + (size_t)i * N;
    float *outr = x_out + (size_t)i * N;
    if (bias)
        for (int j = 0; j < N; j++) outr[j] = xr[j] + (br[j] + bias[j]);
    else
        for (int j = 0; j < N; j++) outr[j] = xr[j] + br[j];
    if (y) layernorm_row(y + (size_t)i * N, &mean[i], &rstd[i], outr, w, b, N);
}

void residual_layernorm_forward(float *x_out, float *y, float *mean, float *rstd, const float *x,
                                const float *branch, const float *bias, const float *w,
                                const float *b, int M, int N)
{
    double t0 = mf_prof_begin();
    if (!mf_fork_worth((size_t)M * N)) {
        for (int i = 0; i < M; i++) residual_layernorm_row(x_out, y, mean, rstd, x, branch, bias, w, b, i, N);
    } else {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++) residual_layernorm_row(x_out, y, mean, rstd, x, branch, bias, w, b, i, N);
    }
    mf_prof_end(MF_PROF_LAYERNORM, MF_PROF_FORWARD, t0);
}

/* dx = dx_in + dL/dx for one row (dxr may equal dxin). */
static inline void layernorm_backward_row(float *dxr, const float *dxin, const float *dyr,
                                          const float *xr, float mu, float rs, const float *w, int N)
{
    /* In vectors of LANES: written as loops over k, GCC vectorized the loop
     * over j instead, which never runs at N = 64, and left this scalar. */
    lanes_v vg = {0}, vgx = {0};
    int j = 0;
    for (; j + LANES <= N; j += LANES) {
        lanes_v dy, wv, x;
        load_lanes(&dy, dyr + j), load_lanes(&wv, w + j), load_lanes(&x, xr + j);
        lanes_v g = dy * wv;
        vg += g;
        vgx += g * (x - mu) * rs;
    }
    float ag[LANES], agx[LANES];
    memcpy(ag, &vg, sizeof ag);
    memcpy(agx, &vgx, sizeof agx);
    for (int k = 0; j + k < N; k++) {
        float g = dyr[j + k] * w[j + k];
        ag[k] += g;
        agx[k] += g * (xr[j + k] - mu) * rs;
    }
    float sum_g = lanes_total(ag) / (float)N, sum_gx = lanes_total(agx) / (float)N;
    for (j = 0; j < N; j++) {
        float xhat = (xr[j] - mu) * rs;
        dxr[j] = dxin[j] + rs * (dyr[j] * w[j] - sum_g - xhat * sum_gx);
    }
}

/* dw, db over 16-column blocks blk0 .. blk1-1: per column, rows in order.
 * Four blocks go per pass over the rows, their sums in registers. */
static void layernorm_params_blocks(float *dw, float *db, const float *dy, const float *x,
                                    const float *mean, const float *rstd, int M, int N, int blk0,
                                    int blk1)
{
    int blk = blk0;
    for (; blk + 4 <= blk1 && (blk + 4) * 16 <= N; blk += 4) {
        int j0 = blk * 16;
        float aw[64] = {0}, ab[64] = {0};
        for (int i = 0; i < M; i++) {
            const float *xr = x + (size_t)i * N + j0, *dyr = dy + (size_t)i * N + j0;
            float mu = mean[i], rs = rstd[i];
            for (int j = 0; j < 64; j++) {
                aw[j] += dyr[j] * (xr[j] - mu) * rs;
                ab[j] += dyr[j];
            }
        }
        for (int j = 0; j < 64; j++) {
            dw[j0 + j] += aw[j];
            db[j0 + j] += ab[j];
        }
    }
    for (; blk < blk1; blk++) {
        int j0 = blk * 16, j1 = j0 + 16 < N ? j0 + 16 : N;
        float aw[16] = {0}, ab[16] = {0};
        for (int i = 0; i < M; i++) {
            const float *xr = x + (size_t)i * N, *dyr = dy + (size_t)i * N;
            for (int j = j0; j < j1; j++) {
                aw[j - j0] += dyr[j] * (xr[j] - mean[i]) * rstd[i];
                ab[j - j0] += dyr[j];
            }
        }
        for (int j = j0; j < j1; j++) {
            dw[j] += aw[j - j0];
            db[j] += ab[j - j0];
        }
    }
}

void layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *w, int M, int N)
{
    layernorm_backward_input(dx, dx, dy, x, mean, rstd, w, M, N);
    layernorm_backward_params(dw, db, dy, x, mean, rstd, M, N);
}

void layernorm_backward_input(float *dx, const float *dx_in, const float *dy, const float *x,
                              const float *mean, const float *rstd, const float *w, int M, int N)
{
    double t0 = mf_prof_begin();
    if (!mf_fork_worth((size_t)M * N)) {
        for (int i = 0; i < M; i++)
            layernorm_backward_row(dx + (size_t)i * N, dx_in + (size_t)i * N, dy + (size_t)i * N,
                                   x + (size_t)i * N, mean[i], rstd[i], w, N);
    } else {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++)
            layernorm_backward_row(dx + (size_t)i * N, dx_in + (size_t)i * N, dy + (size_t)i * N,
                                   x + (size_t)i * N, mean[i], rstd[i], w, N);
    }
    mf_prof_end(MF_PROF_LAYERNORM, MF_PROF_BACKWARD, t0);
}

void layernorm_backward_params(float *dw, float *db, const float *dy, const float *x,
                               const float *mean, const float *rstd, int M, int N)
{
    double t0 = mf_prof_begin();
    int blocks = (N + 15) / 16;
    if (!mf_fork_worth((size_t)M * N)) {
        layernorm_params_blocks(dw, db, dy, x, mean, rstd, M, N, 0, blocks);
    } else {
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < blocks; blk++)
            layernorm_params_blocks(dw, db, dy, x, mean, rstd, M, N, blk, blk + 1);
    }
    mf_prof_end(MF_PROF_LAYERNORM, MF_PROF_BACKWARD, t0);
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

/* Fused multiply-add where the hardware has it (one rounding); the
 * polynomials below are accurate either way. */
#ifdef __FMA__
#define FMA(a, b, c) fmaf(a, b, c)
#else
#define FMA(a, b, c) ((a) * (b) + (c))
#endif

/* GELU needs the normal CDF Phi(x) = erfc(-x / sqrt 2) / 2 of every MLP
 * activation, and backward also the density. glibc's erff and expf are
 * scalar calls; these are branch-free, so the loops below vectorize. */
static inline float bits_as_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* e^x within 1 ulp (0.94 at most, against double precision, over
 * [-87, 88]); 0 below -87.3 (where e^x is at most subnormal); NaN in, NaN out. */
static inline float exp_approx(float x)
{
    float xc = x > -87.3f ? x : -87.3f; /* also maps NaN to a finite value: no UB below */
    xc = xc < 88.7f ? xc : 88.7f;
    /* x = k ln2 + r, |r| <= ln2 / 2; k rounded by the 1.5 * 2^23 trick. */
    float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = FMA(k, -0.693145751953125f, xc); /* ln2 in two parts: k * hi is exact */
    r = FMA(k, -1.428606765330187045e-06f, r);
    float p = 1.0f / 5040.0f; /* Taylor to r^7: relative error < 2e-8 for |r| <= ln2/2 */
    p = FMA(p, r, 1.0f / 720.0f);
    p = FMA(p, r, 1.0f / 120.0f);
    p = FMA(p, r, 1.0f / 24.0f);
    p = FMA(p, r, 1.0f / 6.0f);
    p = FMA(p, r, 0.5f);
    p = FMA(p, r, 1.0f);
    p = FMA(p, r, 1.0f);
    float scale = bits_as_float((uint32_t)((int32_t)k + 127) << 23); /* 2^k */
    float y = p * scale;
    y = x > -87.3f ? y : 0.0f;
    return x == x ? y : x;
}

/* erfc(z) = t Q(t) exp(-z^2) with t = 1 / (1 + z/2), for z >= 0: the
 * substitution of Numerical Recipes' erfcc, where Q(t) = erfcx(z) / t is
 * smooth on t in (0, 1]. Q (degree 9) is a minimax fit of the relative
 * error on t in [0.17, 1] (z up to 9.8, past which exp(-z^2) is 0 in
 * float), 1.9e-8 in exact arithmetic. The exp(-z^2) it leaves is the
 * density's too, so GELU and its slope take one exponential. */
static inline float erfc_poly(float t)
{
    float p = 1.300920546e-02f; /* Horner written out: a loop here would block vectorization */
    p = FMA(p, t, -1.271162033e-01f);
    p = FMA(p, t, 4.377999306e-01f);
    p = FMA(p, t, -6.815351844e-01f);
    p = FMA(p, t, 4.305477142e-01f);
    p = FMA(p, t, -1.031112894e-01f);
    p = FMA(p, t, 2.271272391e-01f);
    p = FMA(p, t, 2.383222878e-01f);
    p = FMA(p, t, 2.828935683e-01f);
    p = FMA(p, t, 2.820627391e-01f);
    return p;
}

/* For z = |x| / sqrt 2: t, and z^2 = s + s_lo exactly (where there is an FMA). */
static inline void erfc_parts(float x, float *t, float *s, float *s_lo)
{
    float z = fabsf(x) * INV_SQRT2;
    *t = 1.0f / FMA(0.5f, z, 1.0f);
    *s = z * z;
#ifdef __FMA__
    *s_lo = fmaf(z, z, -*s);
#else
    *s_lo = 0.0f;
#endif
}

/* GELU(x) = x Phi(x), with Phi = 1 - erfc(z)/2 for x >= 0 and erfc(z)/2 below:
 * no cancellation in the negative tail, where 0.5 x (1 + erf(x / sqrt 2))
 * (PyTorch's formula) loses every digit. Against double precision on a grid
 * of step 0.01 (tests/unit/test_gradcheck.c): relative error 8.5e-7 at most for
 * x >= -3 (the erf form in float: 1.2e-5), 5.8e-6 down to x = -10 (the erf
 * form: 100%); the slope within 1.4e-7 absolute. */
static inline float gelu_cdf(float v, float *g)
{
    float t, sq, sq_lo;
    erfc_parts(v, &t, &sq, &sq_lo);
    *g = exp_approx(-sq - sq_lo); /* exp(-z^2) */
    float e = 0.5f * t * erfc_poly(t) * *g; /* erfc(z) / 2 */
    return v >= 0.0f ? 1.0f - e : e;
}

/* GELU'(v) = Phi(v) + v phi(v), phi(v) = exp(-z^2) / sqrt(2 pi). */
static inline float gelu_slope(float v, float cdf, float g)
{
    return cdf + v * (INV_SQRT_2PI * g);
}

/* Columns of a row per pass of the loops below: the sums x + b land in a
 * local array first, so that the outputs may overwrite x and the compiler
 * still sees no aliasing between what the vector loop reads and writes. */
#define GELU_COLS 64

/* x rounded to bf16 as the kernel's VCVTNE2PS2BF16 rounds its operands
 * (tests/unit/test_bf16.c compares them): a denormal to a signed zero, a NaN
 * kept with its quiet bit set, else to nearest even (overflowing to inf).
 * Branch-free, so the loop over a row vectorizes. */
static inline uint16_t bf16_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t nearest = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    uint32_t nan = (u >> 16) | 0x40u, zero = (u >> 16) & 0x8000u;
    uint32_t r = (u & 0x7FFFFFFFu) > 0x7F800000u ? nan : nearest;
    return (uint16_t)((u & 0x7F800000u) == 0 ? zero : r);
}

/* One row; the GELU lands in y, or, when y16 is given, rounded to bf16 in
 * y16 (bf16 products alone read it). Each case its own loop, so that each
 * vectorizes. */
static void bias_gelu_row(float *y, uint16_t *y16, float *slope, const float *x, const float *b, int F)
{
    float v[GELU_COLS];
    for (int j0 = 0; j0 < F; j0 += GELU_COLS) {
        int n = F - j0 < GELU_COLS ? F - j0 : GELU_COLS;
        if (b)
            for (int j = 0; j < n; j++) v[j] = x[j0 + j] + b[j0 + j];
        else
            for (int j = 0; j < n; j++) v[j] = x[j0 + j];
        if (slope && y16) {
            for (int j = 0; j < n; j++) {
                float g, cdf = gelu_cdf(v[j], &g);
                y16[j0 + j] = bf16_bits(v[j] * cdf);
                slope[j0 + j] = gelu_slope(v[j], cdf, g);
            }
        } else if (slope) {
            for (int j = 0; j < n; j++) {
                float g, cdf = gelu_cdf(v[j], &g);
                y[j0 + j] = v[j] * cdf;
                slope[j0 + j] = gelu_slope(v[j], cdf, g);
            }
        } else if (y16) {
            for (int j = 0; j < n; j++) {
                float g;
                y16[j0 + j] = bf16_bits(v[j] * gelu_cdf(v[j], &g));
            }
        } else {
            for (int j = 0; j < n; j++) {
                float g;
                y[j0 + j] = v[j] * gelu_cdf(v[j], &g);
            }
        }
    }
}

static void bias_gelu_rows(float *y, uint16_t *y16, float *slope, const float *x, const float *b, int M, int F)
{
#define GELU_ROW(i)                                                                              \
    bias_gelu_row(y ? y + (size_t)(i) * F : NULL, y16 ? y16 + (size_t)(i) * F : NULL,            \
                  slope ? slope + (size_t)(i) * F : NULL, x + (size_t)(i) * F, b, F)
    if (!mf_fork_worth((size_t)M * F)) {
        for (int i = 0; i < M; i++) GELU_ROW(i);
    } else {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++) GELU_ROW(i);
    }
#undef GELU_ROW
}

void bias_gelu_forward(float *y, float *slope, const float *x, const float *b, int M, int F)
{
    double t0 = mf_prof_begin();
    bias_gelu_rows(y, NULL, slope, x, b, M, F);
    mf_prof_end(MF_PROF_GELU, MF_PROF_FORWARD, t0);
}

void bias_gelu_forward_bf16(uint16_t *y, float *slope, const float *x, const float *b, int M, int F)
{
    double t0 = mf_prof_begin();
    bias_gelu_rows(NULL, y, slope, x, b, M, F);
    mf_prof_end(MF_PROF_GELU, MF_PROF_FORWARD, t0);
}

/* Elementwise loops go in blocks of GELU_BLOCK, so a thread's share is a run of whole blocks. */
#define GELU_BLOCK 4096

static void gelu_backward_block(float *d, const float *slope, size_t i0, size_t i1)
{
    for (size_t i = i0; i < i1; i++) d[i] *= slope[i];
}

void gelu_backward(float *d, const float *slope, size_t n)
{
    double t0 = mf_prof_begin();
    if (!mf_fork_worth(n)) {
        gelu_backward_block(d, slope, 0, n);
    } else {
        size_t blocks = (n + GELU_BLOCK - 1) / GELU_BLOCK;
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < blocks; k++)
            gelu_backward_block(d, slope, k * GELU_BLOCK, (k + 1) * GELU_BLOCK < n ? (k + 1) * GELU_BLOCK : n);
    }
    mf_prof_end(MF_PROF_GELU, MF_PROF_BACKWARD, t0);
}

/* Sum of r[0..n): a running sum for short rows, LANES partial sums for long
 * ones (either way a fixed order for each n). */
static inline float row_sum(const float *r, int n)
{
    if (n < 2 * LANES) {
        float sum = 0.0f;
        for (int j = 0; j < n; j++) sum += r[j];
        return sum;
    }
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += r[j + k];
    for (int k = 0; j + k < n; k++) acc[k] += r[j + k];
    return lanes_total(acc);
}

/* Sum of a[j] * b[j], in the order of row_sum. */
static inline float row_dot(const float *a, const float *b, int n)
{
    if (n < 2 * LANES) {
        float sum = 0.0f;
        for (int j = 0; j < n; j++) sum += a[j] * b[j];
        return sum;
    }
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += a[j + k] * b[j + k];
    for (int k = 0; j + k < n; k++) acc[k] += a[j + k] * b[j + k];
    return lanes_total(acc);
}

/* Largest of r[0..n) for rows without NaN (with one, softmax's row is NaN
 * whatever this returns). LANES running maxima on long rows: one running maximum is a chain
 * of dependent compares, which took most of softmax's time on rows of 65. */
static inline float row_max(const float *r, int n)
{
    float mx = r[0];
    int j = 1;
    if (n >= 2 * LANES) {
        float acc[LANES];
        for (int k = 0; k < LANES; k++) acc[k] = r[k];
        for (j = LANES; j + LANES <= n; j += LANES)
            for (int k = 0; k < LANES; k++) acc[k] = r[j + k] > acc[k] ? r[j + k] : acc[k];
        mx = acc[0];
        for (int k = 1; k < LANES; k++) mx = acc[k] > mx ? acc[k] : mx;
    }
    for (; j < n; j++) mx = r[j] > mx ? r[j] : mx;
    return mx;
}

/* Serial: callers run it inside their own parallel loops. The exponentials
 * (exp_approx) vectorize; so do the maximum and the sum on long rows. */
void softmax_rows_forward(float *x, int rows, int n)
{
    for (int i = 0; i < rows; i++) {
        float *r = x + (size_t)i * n;
        float mx = row_max(r, n);
        for (int j = 0; j < n; j++) r[j] = exp_approx(r[j] - mx);
        float inv = 1.0f / row_sum(r, n);
        for (int j = 0; j < n; j++) r[j] *= inv;
    }
}

void softmax_rows_backward(float *d, const float *a, int rows, int n)
{
    for (int i = 0; i < rows; i++) {
        float *dr = d + (size_t)i * n;
        const float *ar = a + (size_t)i * n;
        float dot = row_dot(dr, ar, n);
        for (int j = 0; j < n; j++) dr[j] = ar[j] * (dr[j] - dot);
    }
}

float cross_entropy_forward(float *probs, const float *logits, const int *labels, int B, int K)
{
    double t0 = mf_prof_begin();
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        float mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) sum += expf(z[k] - mx);
        float lse = mx + logf(sum);
        for (int k = 0; k < K; k++) p[k] = expf(z[k] - lse);
        loss += (double)(lse - z[labels[b]]);
    }
    mf_prof_end(MF_PROF_HEAD, MF_PROF_FORWARD, t0);
    return (float)(loss / B);
}

void cross_entropy_backward(float *dlogits, const float *probs, const int *labels, int B, int K)
{
    double t0 = mf_prof_begin();
    float inv = 1.0f / (float)B;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            dlogits[(size_t)b * K + k] =
                (probs[(size_t)b * K + k] - (k == labels[b] ? 1.0f : 0.0f)) * inv;
    mf_prof_end(MF_PROF_HEAD, MF_PROF_BACKWARD, t0);
}

void dropout_apply(float *x, size_t n, float p, uint64_t seed) { dropout_apply_at(x, 0, n, p, seed); }

/* Keep x[i] when the top 24 bits of the hash of its place, first + i, as a
 * fraction, are >= p. */
static inline float dropout_one(float v, size_t place, float scale, uint32_t threshold, uint64_t seed)
{
    uint32_t r = (uint32_t)(mf_hash2(seed, place) >> 40);
    return r >= threshold ? v * scale : 0.0f;
}

void dropout_apply_at(float *x, size_t first, size_t n, float p, uint64_t seed)
{
    double t0 = mf_prof_begin();
    float scale = 1.0f / (1.0f - p);
    uint32_t threshold = (uint32_t)(p * 16777216.0f);
    if (!mf_fork_worth(n)) {
        for (size_t i = 0; i < n; i++) x[i] = dropout_one(x[i], first + i, scale, threshold, seed);
    } else {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) x[i] = dropout_one(x[i], first + i, scale, threshold, seed);
    }
    mf_prof_end(MF_PROF_RESIDUAL, MF_PROF_OTHER, t0);
}
