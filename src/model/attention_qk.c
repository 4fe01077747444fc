/* Query/key variants: each turns h = LN1(x) into attention weights A (B,H,T,T)
 * and back. Scores are scaled by 1/sqrt(d), d = N/H (= 1/sqrt(N) for the
 * single-head variants). Work is split across images (and heads), each
 * writing only its own rows, so results do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "kernels/gemm.h"
#include "model/attention_common.h"
#include "model/variants.h"
#include "kernels/ops.h"
#include "base/profile.h"

static float score_scale(const mf_attn_dims *d) { return 1.0f / sqrtf((float)(d->N / d->H)); }

#define FWD MF_PROF_FORWARD
#define BWD MF_PROF_BACKWARD
#define WEIGHT MF_PROF_ATTN_WEIGHT
#define SCORES MF_PROF_ATTN_SCORES

/* A_bh = softmax(scale q_bh k_bh^T) for image b and head h (bh = b H + h):
 * the first Q rows of the tile. */
static void scores_forward_head(float *att, const float *q, const float *k, const mf_attn_dims *d,
                                int bh)
{
    int T = d->T, Q = d->Q, N = d->N, hd = d->N / d->H, b = bh / d->H, h = bh % d->H;
    float *A = TILE(att, b, h, d);
    mf_gemm_serial_as(d->attn, 0, 1, Q, T, hd, score_scale(d), ROWS(q, b, d) + h * hd, N, ROWS(k, b, d) + h * hd,
                   N, 0.0f, A, T);
    softmax_rows_forward(A, Q, T);
}

static void scores_forward(float *att, const float *q, const float *k, const mf_attn_dims *d)
{
    double t0 = mf_prof_begin();
    FOR_EACH(d->B * d->H, d, scores_forward_head(att, q, k, d, i_));
    mf_prof_end(SCORES, FWD, t0);
}

/* ---- separate: q = hWq^T + bq, k = hWk^T + bk ---------------------------- */

static void attention_qk_separate_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    int M = d->B * d->T;
    linear_forward_rows(d->gemm, a->q, a->ln1, p->q_w, p->q_b, query_rows(d), d->N, d->N, query_step(d));
    linear_forward(d->gemm, a->k, a->ln1, p->k_w, p->k_b, M, d->N, d->N);
    scores_forward(a->att, a->q, a->k, d);
}

static void separate_backward_head(mf_grad_scratch *s, const mf_layer_acts *a,
                                   const mf_attn_dims *d, int bh)
{
    int T = d->T, Q = d->Q, N = d->N, hd = d->N / d->H, b = bh / d->H, h = bh % d->H;
    float scale = score_scale(d);
    float *dS = TILE(s->datt, b, h, d);
    softmax_rows_backward(dS, TILE(a->att, b, h, d), Q, T); /* dL/dA -> dL/dS in place */
    /* S = scale q k^T: dq = scale dS k (Q rows), dk = scale dS^T q (T rows) */
    mf_gemm_serial_as(d->attn, 0, 0, Q, hd, T, scale, dS, T, ROWS(a->k, b, d) + h * hd, N, 0.0f,
                   ROWS(s->dq, b, d) + h * hd, N);
    mf_gemm_serial_as(d->attn, 1, 0, T, hd, Q, scale, dS, T, ROWS(a->q, b, d) + h * hd, N, 0.0f,
                   ROWS(s->dk, b, d) + h * hd, N);
}

static void attention_qk_separate_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                           const mf_block_params *p, const mf_attn_dims *d)
{
    int N = d->N, M = d->B * d->T;
    double t0 = mf_prof_begin();
    FOR_EACH(d->B * d->H, d, separate_backward_head(s, a, d, i_));
    mf_prof_end(SCORES, BWD, t0);
    linear_backward_input_rows(d->gemm, s->dh, s->dq, p->q_w, query_rows(d), N, N, 1, query_step(d));
    linear_backward_input(d->gemm, s->dh, s->dk, p->k_w, M, N, N, 1);
}

static void attention_qk_separate_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                                  const mf_layer_acts *a, const mf_attn_dims *d)
{
    int M = d->B * d->T, N = d->N;
    linear_backward_params_rows(d->gemm, g->q_w, g->q_b, s->dq, a->ln1, query_rows(d), N, N, query_step(d));
    linear_backward_params(d->gemm, g->k_w, g->k_b, s->dk, a->ln1, M, N, N);
}

static const mf_tensor_spec separate_tensors[] = {
    MF_LINEAR_SPECS("attn.q", mf_block_params, q_w, q_b, DIM_WIDTH, DIM_WIDTH, PART_ATTENTION),
    MF_LINEAR_SPECS("attn.k", mf_block_params, k_w, k_b, DIM_WIDTH, DIM_WIDTH, PART_ATTENTION),
};

const mf_qk_variant qk_separate = {
    .name = "separate",
    .tensors = separate_tensors,
    .num_tensors = 4,
    .acts = ACTS_KEYS,
    .forward = attention_qk_separate_forward,
    .backward = attention_qk_separate_backward,
    .backward_params = attention_qk_separate_backward_params,
    .collapses_to = MF_QK_COLLAPSED,
    .collapse = collapse_qk_separate,
};

/* ---- shared: k = q, so S = scale q q^T is symmetric ---------------------- */

static void attention_qk_shared_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    linear_forward(d->gemm, a->q, a->ln1, p->q_w, p->q_b, d->B * d->T, d->N, d->N);
    scores_forward(a->att, a->q, a->q, d);
}

static void shared_backward_head(mf_grad_scratch *s, const mf_layer_acts *a,
                                 const mf_attn_dims *d, int bh)
{
    int T = d->T, Q = d->Q, N = d->N, hd = d->N / d->H, b = bh / d->H, h = bh % d->H;
    float scale = score_scale(d);
    float *dS = TILE(s->datt, b, h, d);
    softmax_rows_backward(dS, TILE(a->att, b, h, d), Q, T);
    const float *q = ROWS(a->q, b, d) + h * hd;
    float *dq = ROWS(s->dq, b, d) + h * hd;
    /* S = scale q_Q q^T: dq = scale dS^T q_Q (as keys), plus scale dS q on the
     * Q query rows */
    mf_gemm_serial_as(d->attn, 1, 0, T, hd, Q, scale, dS, T, q, N, 0.0f, dq, N);
    mf_gemm_serial_as(d->attn, 0, 0, Q, hd, T, scale, dS, T, q, N, 1.0f, dq, N);
}

static void attention_qk_shared_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                         const mf_block_params *p, const mf_attn_dims *d)
{
    int N = d->N, M = d->B * d->T;
    double t0 = mf_prof_begin();
    FOR_EACH(d->B * d->H, d, shared_backward_head(s, a, d, i_));
    mf_prof_end(SCORES, BWD, t0);
    linear_backward_input(d->gemm, s->dh, s->dq, p->q_w, M, N, N, 1);
}

static void attention_qk_shared_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                                const mf_layer_acts *a, const mf_attn_dims *d)
{
    linear_backward_params(d->gemm, g->q_w, g->q_b, s->dq, a->ln1, d->B * d->T, d->N, d->N);
}

static const mf_tensor_spec shared_tensors[] = {
    MF_LINEAR_SPECS("attn.q", mf_block_params, q_w, q_b, DIM_WIDTH, DIM_WIDTH, PART_ATTENTION),
};

const mf_qk_variant qk_shared = {
    .name = "shared",
    .tensors = shared_tensors,
    .num_tensors = 2,
    .forward = attention_qk_shared_forward,
    .backward = attention_qk_shared_backward,
    .backward_params = attention_qk_shared_backward_params,
};

/* ---- single-head bilinear forms: S = scale u h^T with u = h W^T (+ b) ---- */

static void bilinear_backward_image(mf_grad_scratch *s, const mf_layer_acts *a,
                                    const mf_attn_dims *d, int b)
{
    int T = d->T, Q = d->Q, N = d->N;
    float scale = score_scale(d);
    float *dS = TILE(s->datt, b, 0, d);
    softmax_rows_backward(dS, TILE(a->att, b, 0, d), Q, T); /* dL/dA -> dL/dS in place */
    mf_gemm_serial_as(d->attn, 0, 0, Q, N, T, scale, dS, T, ROWS(a->ln1, b, d), N, 0.0f, ROWS(s->dq, b, d), N);
    mf_gemm_serial_as(d->attn, 1, 0, T, N, Q, scale, dS, T, ROWS(a->q, b, d), N, 1.0f, ROWS(s->dh, b, d), N);
}

/* From dL/dA: dS, then du = scale dS h into s->dq (Q rows), and dh += scale dS^T u. */
static void bilinear_scores_backward(mf_grad_scratch *s, const mf_layer_acts *a, const mf_attn_dims *d)
{
    double t0 = mf_prof_begin();
    FOR_EACH(d->B, d, bilinear_backward_image(s, a, d, i_));
    mf_prof_end(SCORES, BWD, t0);
}

static void attention_qk_collapsed_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    linear_forward_rows(d->gemm, a->q, a->ln1, p->qk_w, p->qk_b, query_rows(d), d->N, d->N, query_step(d));
    scores_forward(a->att, a->q, a->ln1, d); /* one head: q = u, k = h */
}

static void attention_qk_collapsed_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                            const mf_block_params *p, const mf_attn_dims *d)
{
    bilinear_scores_backward(s, a, d);
    linear_backward_input_rows(d->gemm, s->dh, s->dq, p->qk_w, query_rows(d), d->N, d->N, 1, query_step(d));
}

static void attention_qk_collapsed_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                                   const mf_layer_acts *a, const mf_attn_dims *d)
{
    linear_backward_params_rows(d->gemm, g->qk_w, g->qk_b, s->dq, a->ln1, query_rows(d), d->N, d->N,
                                query_step(d));
}

static const mf_tensor_spec collapsed_tensors[] = {
    MF_LINEAR_SPECS("attn.qk", mf_block_params, qk_w, qk_b, DIM_WIDTH, DIM_WIDTH, PART_ATTENTION),
};

/* Shared by the single-head forms (collapsed, symmetric, cholesky). */
static const char one_head_qk[] = "each head's collapsed N x N matrix would cost more than the 2N^2/H parameters of W_q and W_k it replaces";

const mf_qk_variant qk_collapsed = {
    .name = "collapsed",
    .tensors = collapsed_tensors,
    .num_tensors = 2,
    .one_head = one_head_qk,
    .forward = attention_qk_collapsed_forward,
    .backward = attention_qk_collapsed_backward,
    .backward_params = attention_qk_collapsed_backward_params,
};

/* ---- symmetric and cholesky: u = h W with W (N,N) symmetric, no bias ----- */

static size_t tril_index(int i, int j) { return (size_t)i * (i + 1) / 2 + (size_t)j; }

/* u = h W (W = W^T, so W^T's row-major layout is W's). */
static void full_weight_forward(mf_layer_acts *a, const mf_attn_dims *d)
{
    linear_forward_rows(d->gemm, a->q, a->ln1, a->w_full, NULL, query_rows(d), d->N, d->N, query_step(d));
    scores_forward(a->att, a->q, a->ln1, d); /* one head: q = u, k = h */
}

/* dh += du W for the images of d. */
static void full_weight_backward(mf_grad_scratch *s, const mf_layer_acts *a, const mf_attn_dims *d)
{
    bilinear_scores_backward(s, a, d);
    linear_backward_input_rows(d->gemm, s->dh, s->dq, a->w_full, query_rows(d), d->N, d->N, 1,
                               query_step(d));
}

/* s->dw_full = du^T h over the images of d (from zero). */
static void full_weight_backward_params(const mf_grad_scratch *s, const mf_layer_acts *a,
                                        const mf_attn_dims *d)
{
    int N = d->N;
    memset(s->dw_full, 0, (size_t)N * N * sizeof(float));
    linear_backward_params_rows(d->gemm, s->dw_full, NULL, s->dq, a->ln1, query_rows(d), N, N, query_step(d));
}

static void attention_qk_symmetric_prepare(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    double t0 = mf_prof_begin();
    int N = d->N;
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++)
            a->w_full[(size_t)i * N + j] = a->w_full[(size_t)j * N + i] = p->qk_tril[tril_index(i, j)];
    mf_prof_end(WEIGHT, FWD, t0);
}

static void attention_qk_symmetric_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    (void)p;
    full_weight_forward(a, d);
}

static void attention_qk_symmetric_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                            const mf_block_params *p, const mf_attn_dims *d)
{
    (void)p;
    full_weight_backward(s, a, d);
}

static void attention_qk_symmetric_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                                   const mf_layer_acts *a, const mf_attn_dims *d)
{
    (void)g;
    full_weight_backward_params(s, a, d);
}

static void attention_qk_symmetric_params_finish(mf_block_params *g, const mf_grad_scratch *s,
                                                 const mf_block_params *p, const mf_attn_dims *d)
{
    double t0 = mf_prof_begin();
    (void)p;
    int N = d->N;
    /* A mirrored entry appears twice in W. */
    const float *G = s->dw_full;
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++)
            g->qk_tril[tril_index(i, j)] +=
                i == j ? G[(size_t)i * N + i] : G[(size_t)i * N + j] + G[(size_t)j * N + i];
    mf_prof_end(WEIGHT, BWD, t0);
}

/* W = L L^T, positive semi-definite. */
static void attention_qk_cholesky_prepare(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    double t0 = mf_prof_begin();
    int N = d->N;
    const float *L = p->qk_tril;
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) {
            float sum = 0.0f;
            for (int k = 0; k <= j; k++) sum += L[tril_index(i, k)] * L[tril_index(j, k)];
            a->w_full[(size_t)i * N + j] = a->w_full[(size_t)j * N + i] = sum;
        }
    mf_prof_end(WEIGHT, FWD, t0);
}

static void attention_qk_cholesky_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d)
{
    (void)p;
    full_weight_forward(a, d);
}

static void attention_qk_cholesky_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                           const mf_block_params *p, const mf_attn_dims *d)
{
    (void)p;
    full_weight_backward(s, a, d);
}

static void attention_qk_cholesky_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                                  const mf_layer_acts *a, const mf_attn_dims *d)
{
    (void)g;
    full_weight_backward_params(s, a, d);
}

static void attention_qk_cholesky_params_finish(mf_block_params *g, const mf_grad_scratch *s,
                                                const mf_block_params *p, const mf_attn_dims *d)
{
    double t0 = mf_prof_begin();
    int N = d->N;
    const float *L = p->qk_tril;
    /* W = L L^T: dL = (G + G^T) L, lower triangle; L[k][j] is zero for k < j. */
    const float *G = s->dw_full;
#pragma omp parallel for schedule(static) if (mf_fork_worth((size_t)N * N * N / 2))
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) {
            float sum = 0.0f;
            for (int k = j; k < N; k++)
                sum += (G[(size_t)i * N + k] + G[(size_t)k * N + i]) * L[tril_index(k, j)];
            g->qk_tril[tril_index(i, j)] += sum;
        }
    mf_prof_end(WEIGHT, BWD, t0);
}

static const mf_tensor_spec symmetric_tensors[] = {
    {"attn.qk_tril", 1, {DIM_TRIL, DIM_ONE, DIM_ONE}, 1, INIT_WIDTH_UNIFORM, 0.0f,
     offsetof(mf_block_params, qk_tril), PART_ATTENTION},
};

const mf_qk_variant qk_symmetric = {
    .name = "symmetric",
    .tensors = symmetric_tensors,
    .num_tensors = 1,
    .acts = ACTS_FULL_WEIGHT,
    .one_head = one_head_qk,
    .prepare = attention_qk_symmetric_prepare,
    .forward = attention_qk_symmetric_forward,
    .backward = attention_qk_symmetric_backward,
    .backward_params = attention_qk_symmetric_backward_params,
    .params_finish = attention_qk_symmetric_params_finish,
};

static const mf_tensor_spec cholesky_tensors[] = {
    {"attn.qk_tril", 1, {DIM_TRIL, DIM_ONE, DIM_ONE}, 1, INIT_CHOLESKY, 0.0f,
     offsetof(mf_block_params, qk_tril), PART_ATTENTION},
};

const mf_qk_variant qk_cholesky = {
    .name = "cholesky",
    .tensors = cholesky_tensors,
    .num_tensors = 1,
    .acts = ACTS_FULL_WEIGHT,
    .one_head = one_head_qk,
    .prepare = attention_qk_cholesky_prepare,
    .forward = attention_qk_cholesky_forward,
    .backward = attention_qk_cholesky_backward,
    .backward_params = attention_qk_cholesky_backward_params,
    .params_finish = attention_qk_cholesky_params_finish,
};
