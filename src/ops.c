/* Row-wise and elementwise operations of the model; see ops.h. */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "gemm.h"
#include "minformer/core.h"

void linear_forward(float *y, const float *x, const float *w, const float *b, int M, int in, int out)
{
    mf_gemm(0, 1, M, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    if (!b) return;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *row = y + (size_t)i * out;
        for (int j = 0; j < out; j++) row[j] += b[j];
    }
}

/* db += column sums of dy (M,n), each column summed in row order. Columns are
 * split across threads in blocks of 16 so threads never share a cache line. */
static void column_sums_accumulate(float *db, const float *dy, int M, int n)
{
    int blocks = (n + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int j0 = blk * 16, j1 = j0 + 16 < n ? j0 + 16 : n;
        float acc[16] = {0};
        for (int i = 0; i < M; i++) {
            const float *row = dy + (size_t)i * n;
            for (int j = j0; j < j1; j++) acc[j - j0] += row[j];
        }
        for (int j = j0; j < j1; j++) db[j] += acc[j - j0];
    }
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int M, int in, int out, int accumulate_dx)
{
    if (dx) mf_gemm(0, 0, M, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
    if (dw) mf_gemm(1, 0, out, in, M, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (db) column_sums_accumulate(db, dy, M, out);
}

void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                       const float *b, int M, int N)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        const float *xr = x + (size_t)i * N;
        float *yr = y + (size_t)i * N;
        float mu = 0.0f;
        for (int j = 0; j < N; j++) mu += xr[j];
        mu /= (float)N;
        float var = 0.0f;
        for (int j = 0; j < N; j++) {
            float dlt = xr[j] - mu;
            var += dlt * dlt;
        }
        var /= (float)N;
        float rs = 1.0f / sqrtf(var + MF_LN_EPS);
        for (int j = 0; j < N; j++) yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
        mean[i] = mu;
        rstd[i] = rs;
    }
}

void layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *w, int M, int N)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        const float *xr = x + (size_t)i * N, *dyr = dy + (size_t)i * N;
        float *dxr = dx + (size_t)i * N;
        float mu = mean[i], rs = rstd[i];
        float sum_g = 0.0f, sum_gx = 0.0f;
        for (int j = 0; j < N; j++) {
            float g = dyr[j] * w[j];
            sum_g += g;
            sum_gx += g * (xr[j] - mu) * rs;
        }
        sum_g /= (float)N;
        sum_gx /= (float)N;
        for (int j = 0; j < N; j++) {
            float xhat = (xr[j] - mu) * rs;
            dxr[j] += rs * (dyr[j] * w[j] - sum_g - xhat * sum_gx);
        }
    }
    /* Parameter gradients: per column, rows in order (thread-count independent). */
    int blocks = (N + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
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

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

void gelu_forward(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * INV_SQRT2));
}

void gelu_backward(float *dx, const float *dy, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + erff(v * INV_SQRT2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}

/* Serial: callers run it inside their own parallel loops. */
void softmax_rows_forward(float *x, int rows, int n)
{
    for (int i = 0; i < rows; i++) {
        float *r = x + (size_t)i * n;
        float mx = r[0];
        for (int j = 1; j < n; j++) mx = r[j] > mx ? r[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < n; j++) {
            r[j] = expf(r[j] - mx);
            sum += r[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < n; j++) r[j] *= inv;
    }
}

void softmax_rows_backward(float *d, const float *a, int rows, int n)
{
    for (int i = 0; i < rows; i++) {
        float *dr = d + (size_t)i * n;
        const float *ar = a + (size_t)i * n;
        float dot = 0.0f;
        for (int j = 0; j < n; j++) dot += dr[j] * ar[j];
        for (int j = 0; j < n; j++) dr[j] = ar[j] * (dr[j] - dot);
    }
}

float cross_entropy_forward(float *probs, const float *logits, const int *labels, int B, int K)
{
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
    return (float)(loss / B);
}

void cross_entropy_backward(float *dlogits, const float *probs, const int *labels, int B, int K)
{
    float inv = 1.0f / (float)B;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            dlogits[(size_t)b * K + k] =
                (probs[(size_t)b * K + k] - (k == labels[b] ? 1.0f : 0.0f)) * inv;
}

void add_inplace(float *x, const float *y, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void dropout_apply(float *x, size_t n, float p, uint64_t seed)
{
    float scale = 1.0f / (1.0f - p);
    /* keep when the hash's top 24 bits, as a fraction, are >= p */
    uint32_t threshold = (uint32_t)(p * 16777216.0f);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t r = (uint32_t)(mf_hash2(seed, i) >> 40);
        x[i] = r >= threshold ? x[i] * scale : 0.0f;
    }
}
