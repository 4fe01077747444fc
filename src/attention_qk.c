/* Query/key variants: each turns h = LN1(x) into attention weights A (B,H,T,T)
 * and back. Scores are scaled by 1/sqrt(d), d = N/H (= 1/sqrt(N) for the
 * single-head variants). Work is split across images (and heads), each
 * writing only its own rows, so results do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "gemm.h"
#include "model_internal.h"
#include "ops.h"

static float score_scale(const mf_attn_dims *d) { return 1.0f / sqrtf((float)(d->N / d->H)); }

#define ROWS(ptr, b, d) ((ptr) + (size_t)(b) * (d)->T * (d)->N)
#define TILE(ptr, b, h, d) ((ptr) + ((size_t)(b) * (d)->H + (h)) * (d)->T * (d)->T)

/* A_bh = softmax(scale q_bh k_bh^T) for every image b and head h. */
static void scores_forward(float *att, const float *q, const float *k, const mf_attn_dims *d)
{
    int T = d->T, N = d->N, hd = d->N / d->H;
    float scale = score_scale(d);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < d->B * d->H; bh++) {
        int b = bh / d->H, h = bh % d->H;
        float *A = TILE(att, b, h, d);
        mf_gemm_serial(0, 1, T, T, hd, scale, ROWS(q, b, d) + h * hd, N, ROWS(k, b, d) + h * hd, N,
                       0.0f, A, T);
        softmax_rows_forward(A, T, T);
    }
}

/* s->datt: dL/dA -> dL/dS, in place. */
static void softmax_backward_all(mf_grad_scratch *s, const mf_layer_acts *a, const mf_attn_dims *d)
{
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < d->B * d->H; bh++)
        softmax_rows_backward(s->datt + (size_t)bh * d->T * d->T, a->att + (size_t)bh * d->T * d->T,
                              d->T, d->T);
}

/* ---- separate: q = hWq^T + bq, k = hWk^T + bk ---------------------------- */

void attention_qk_separate_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    int M = d->B * d->T;
    linear_forward(a->q, a->ln1, p->q_w, p->q_b, M, d->N, d->N);
    linear_forward(a->k, a->ln1, p->k_w, p->k_b, M, d->N, d->N);
    scores_forward(a->att, a->q, a->k, d);
}

void attention_qk_separate_backward(mf_grad_scratch *s, mf_block_params *g, const mf_layer_acts *a,
                                    const mf_block_params *p, const mf_attn_dims *d)
{
    int T = d->T, N = d->N, hd = d->N / d->H, M = d->B * d->T;
    float scale = score_scale(d);
    softmax_backward_all(s, a, d);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < d->B * d->H; bh++) {
        int b = bh / d->H, h = bh % d->H;
        const float *dS = TILE(s->datt, b, h, d);
        /* S = scale q k^T: dq = scale dS k, dk = scale dS^T q */
        mf_gemm_serial(0, 0, T, hd, T, scale, dS, T, ROWS(a->k, b, d) + h * hd, N, 0.0f,
                       ROWS(s->dq, b, d) + h * hd, N);
        mf_gemm_serial(1, 0, T, hd, T, scale, dS, T, ROWS(a->q, b, d) + h * hd, N, 0.0f,
                       ROWS(s->dk, b, d) + h * hd, N);
    }
    linear_backward(s->dh, g->q_w, g->q_b, s->dq, a->ln1, p->q_w, M, N, N, 1);
    linear_backward(s->dh, g->k_w, g->k_b, s->dk, a->ln1, p->k_w, M, N, N, 1);
}

/* ---- shared: k = q, so S = scale q q^T is symmetric ---------------------- */

void attention_qk_shared_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    linear_forward(a->q, a->ln1, p->q_w, p->q_b, d->B * d->T, d->N, d->N);
    scores_forward(a->att, a->q, a->q, d);
}

void attention_qk_shared_backward(mf_grad_scratch *s, mf_block_params *g, const mf_layer_acts *a,
                                  const mf_block_params *p, const mf_attn_dims *d)
{
    int T = d->T, N = d->N, hd = d->N / d->H, M = d->B * d->T;
    float scale = score_scale(d);
    softmax_backward_all(s, a, d);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < d->B * d->H; bh++) {
        int b = bh / d->H, h = bh % d->H;
        const float *dS = TILE(s->datt, b, h, d);
        const float *q = ROWS(a->q, b, d) + h * hd;
        float *dq = ROWS(s->dq, b, d) + h * hd;
        /* dq = scale (dS + dS^T) q */
        mf_gemm_serial(0, 0, T, hd, T, scale, dS, T, q, N, 0.0f, dq, N);
        mf_gemm_serial(1, 0, T, hd, T, scale, dS, T, q, N, 1.0f, dq, N);
    }
    linear_backward(s->dh, g->q_w, g->q_b, s->dq, a->ln1, p->q_w, M, N, N, 1);
}

/* ---- single-head bilinear forms: S = scale u h^T with u = h W^T (+ b) ---- */

static void bilinear_scores_forward(mf_layer_acts *a, const mf_attn_dims *d)
{
    int T = d->T, N = d->N;
    float scale = score_scale(d);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < d->B; b++) {
        float *A = TILE(a->att, b, 0, d);
        mf_gemm_serial(0, 1, T, T, N, scale, ROWS(a->q, b, d), N, ROWS(a->ln1, b, d), N, 0.0f, A, T);
        softmax_rows_forward(A, T, T);
    }
}

/* From dS: du = scale dS h into s->dq, and dh += scale dS^T u. */
static void bilinear_scores_backward(mf_grad_scratch *s, const mf_layer_acts *a, const mf_attn_dims *d)
{
    int T = d->T, N = d->N;
    float scale = score_scale(d);
    softmax_backward_all(s, a, d);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < d->B; b++) {
        const float *dS = TILE(s->datt, b, 0, d);
        mf_gemm_serial(0, 0, T, N, T, scale, dS, T, ROWS(a->ln1, b, d), N, 0.0f, ROWS(s->dq, b, d), N);
        mf_gemm_serial(1, 0, T, N, T, scale, dS, T, ROWS(a->q, b, d), N, 1.0f, ROWS(s->dh, b, d), N);
    }
}

void attention_qk_collapsed_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    linear_forward(a->q, a->ln1, p->qk_w, p->qk_b, d->B * d->T, d->N, d->N);
    bilinear_scores_forward(a, d);
}

void attention_qk_collapsed_backward(mf_grad_scratch *s, mf_block_params *g, const mf_layer_acts *a,
                                     const mf_block_params *p, const mf_attn_dims *d)
{
    bilinear_scores_backward(s, a, d);
    linear_backward(s->dh, g->qk_w, g->qk_b, s->dq, a->ln1, p->qk_w, d->B * d->T, d->N, d->N, 1);
}

/* ---- symmetric: W = W^T from its lower triangle (row-major, j <= i) ------ */

static size_t tril_index(int i, int j) { return (size_t)i * (i + 1) / 2 + (size_t)j; }

/* u = h W (W symmetric, no bias); dW = du^T h and dh += du W into w-shaped scratch. */
static void full_weight_backward(mf_grad_scratch *s, const mf_layer_acts *a, const mf_attn_dims *d)
{
    int M = d->B * d->T, N = d->N;
    memset(s->dw_full, 0, (size_t)N * N * sizeof(float));
    linear_backward(s->dh, s->dw_full, NULL, s->dq, a->ln1, a->w_full, M, N, N, 1);
}

void attention_qk_symmetric_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    int N = d->N;
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++)
            a->w_full[(size_t)i * N + j] = a->w_full[(size_t)j * N + i] = p->qk_tril[tril_index(i, j)];
    linear_forward(a->q, a->ln1, a->w_full, NULL, d->B * d->T, N, N);
    bilinear_scores_forward(a, d);
}

void attention_qk_symmetric_backward(mf_grad_scratch *s, mf_block_params *g, const mf_layer_acts *a,
                                     const mf_block_params *p, const mf_attn_dims *d)
{
    (void)p;
    int N = d->N;
    bilinear_scores_backward(s, a, d);
    full_weight_backward(s, a, d);
    /* A mirrored entry appears twice in W. */
    const float *G = s->dw_full;
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++)
            g->qk_tril[tril_index(i, j)] +=
                i == j ? G[(size_t)i * N + i] : G[(size_t)i * N + j] + G[(size_t)j * N + i];
}

/* ---- cholesky: W = L L^T, positive semi-definite -------------------------- */

void attention_qk_cholesky_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    int N = d->N;
    const float *L = p->qk_tril;
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) {
            float sum = 0.0f;
            for (int k = 0; k <= j; k++) sum += L[tril_index(i, k)] * L[tril_index(j, k)];
            a->w_full[(size_t)i * N + j] = a->w_full[(size_t)j * N + i] = sum;
        }
    linear_forward(a->q, a->ln1, a->w_full, NULL, d->B * d->T, N, N);
    bilinear_scores_forward(a, d);
}

void attention_qk_cholesky_backward(mf_grad_scratch *s, mf_block_params *g, const mf_layer_acts *a,
                                    const mf_block_params *p, const mf_attn_dims *d)
{
    int N = d->N;
    const float *L = p->qk_tril;
    bilinear_scores_backward(s, a, d);
    full_weight_backward(s, a, d);
    /* W = L L^T: dL = (G + G^T) L, lower triangle; L[k][j] is zero for k < j. */
    const float *G = s->dw_full;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) {
            float sum = 0.0f;
            for (int k = j; k < N; k++)
                sum += (G[(size_t)i * N + k] + G[(size_t)k * N + i]) * L[tril_index(k, j)];
            g->qk_tril[tril_index(i, j)] += sum;
        }
}
