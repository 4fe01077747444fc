/* Value/output variant `shaped`: shaped attention in the value-free block
 * (He & Hofmann, "Simplifying Transformer Blocks", ICLR 2024, eq. 5). With
 * one head the branch output is O = M h with the mixing matrix
 * M = alpha I + beta A - gamma U: A = softmax(S) from the query/key entry, U
 * the uniform (T,T) matrix (every entry 1/T), alpha, beta, gamma learnable
 * scalars of the block. Row by row,
 *     O_i = alpha h_i + beta (A h)_i - gamma hbar,   hbar = (1/T) sum_j h_j.
 * With Q = 1 (the last block under CLS pooling) only query row 0 exists: its
 * identity term is alpha h_0, while A and U still reach all T keys.
 * Work is split across images, each writing only its own rows. */
#include <string.h>

#include "kernels/gemm.h"
#include "model/attention_common.h"
#include "model/variants.h"
#include "base/profile.h"

/* The gains' views: the block's variant tensors, in the order of
 * shaped_tensors below. */
#define ALPHA(p) ((p)->variant[0])
#define BETA(p) ((p)->variant[1])
#define GAMMA(p) ((p)->variant[2])

/* Columns summed at a time, so the column sums fit a small stack array. */
enum { SHAPED_COLUMNS = 64 };

/* sum[n] = sum over `rows` rows of x[r N + n], for n < width. */
static void column_sums(float *sum, const float *x, int rows, int width, int N)
{
    for (int n = 0; n < width; n++) sum[n] = 0.0f;
    for (int r = 0; r < rows; r++)
        for (int n = 0; n < width; n++) sum[n] += x[(size_t)r * N + n];
}

static int block_width(int N, int n0) { return N - n0 < SHAPED_COLUMNS ? N - n0 : SHAPED_COLUMNS; }

/* The uniform matrix's term: y_r += scale sum_{i < x_rows} x_i for every row
 * r < y_rows of the (rows, N) arrays y and x. */
static void add_scaled_row_sum(float *y, int y_rows, float scale, const float *x, int x_rows, int N)
{
    float sum[SHAPED_COLUMNS];
    for (int n0 = 0; n0 < N; n0 += SHAPED_COLUMNS) {
        int width = block_width(N, n0);
        column_sums(sum, x + n0, x_rows, width, N);
        for (int r = 0; r < y_rows; r++)
            for (int n = 0; n < width; n++) y[(size_t)r * N + n0 + n] += scale * sum[n];
    }
}

/* mix_b = A_b h_b (Q rows, kept for backward_params), then the Q rows
 * O_bi = alpha h_bi + beta mix_bi - (gamma/T) sum_j h_bj. */
static void shaped_forward_image(float *out, const mf_layer_acts *a, const mf_block_params *p,
                                 const mf_attn_dims *d, int b)
{
    int T = d->T, Q = d->Q, N = d->N;
    float alpha = ALPHA(p)[0], beta = BETA(p)[0];
    float gamma_t = GAMMA(p)[0] / (float)T;
    const float *h = ROWS(a->ln1, b, d);
    float *mix = ROWS(a->mix, b, d), *o = ROWS(out, b, d);
    mf_gemm_serial_as(d->attn, 0, 0, Q, N, T, 1.0f, TILE(a->att, b, 0, d), T, h, N, 0.0f, mix, N);
    for (size_t i = 0; i < (size_t)Q * N; i++) o[i] = alpha * h[i] + beta * mix[i];
    add_scaled_row_sum(o, Q, -gamma_t, h, T, N);
}

/* From dO_b (Q rows): dA = beta dO h^T (Q,T) into datt; dh += beta A^T dO
 * on all T rows, + alpha dO on the Q query rows, - (gamma/T) sum_i dO_i on
 * every row. */
static void shaped_backward_image(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                                  const mf_block_params *p, const mf_attn_dims *d, int b)
{
    int T = d->T, Q = d->Q, N = d->N;
    float alpha = ALPHA(p)[0], beta = BETA(p)[0];
    float gamma_t = GAMMA(p)[0] / (float)T;
    const float *h = ROWS(a->ln1, b, d), *g = ROWS(dout, b, d);
    float *dh = ROWS(s->dh, b, d);
    mf_gemm_serial_as(d->attn, 0, 1, Q, T, N, beta, g, N, h, N, 0.0f, TILE(s->datt, b, 0, d), T);
    mf_gemm_serial_as(d->attn, 1, 0, T, N, Q, beta, TILE(a->att, b, 0, d), T, g, N, 1.0f, dh, N);
    for (size_t i = 0; i < (size_t)Q * N; i++) dh[i] += alpha * g[i];
    add_scaled_row_sum(dh, T, -gamma_t, g, Q, N);
}

static void attention_vo_shaped_forward(float *out, mf_layer_acts *a, const mf_block_params *p,
                                        const mf_attn_dims *d)
{
    double t0 = mf_prof_begin();
    FOR_EACH(d->B, d, shaped_forward_image(out, a, p, d, i_));
    mf_prof_end(MF_PROF_ATTN_MIX, MF_PROF_FORWARD, t0);
}

static void attention_vo_shaped_backward(mf_grad_scratch *s, const float *dout,
                                         const mf_layer_acts *a, const mf_block_params *p,
                                         const mf_attn_dims *d)
{
    double t0 = mf_prof_begin();
    FOR_EACH(d->B, d, shaped_backward_image(s, dout, a, p, d, i_));
    mf_prof_end(MF_PROF_ATTN_MIX, MF_PROF_BACKWARD, t0);
}

/* Over the Q query rows of the images of d, in image order, in double (each
 * is a sum of B Q N products):
 *   dalpha = sum_i dO_i . h_i,  dbeta = sum_i dO_i . (A h)_i,
 *   dgamma = -(1/T) sum_b (sum_i dO_bi) . (sum_j h_bj). */
static void attention_vo_shaped_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                                const float *dout, const mf_layer_acts *a,
                                                const mf_attn_dims *d)
{
    (void)s;
    int T = d->T, Q = d->Q, N = d->N;
    double dalpha = 0.0, dbeta = 0.0, dgamma = 0.0;
    double t0 = mf_prof_begin();
    for (int b = 0; b < d->B; b++) {
        const float *h = ROWS(a->ln1, b, d), *mix = ROWS(a->mix, b, d), *go = ROWS(dout, b, d);
        float gsum[SHAPED_COLUMNS], hsum[SHAPED_COLUMNS];
        for (size_t i = 0; i < (size_t)Q * N; i++) {
            dalpha += (double)go[i] * h[i];
            dbeta += (double)go[i] * mix[i];
        }
        for (int n0 = 0; n0 < N; n0 += SHAPED_COLUMNS) {
            int width = block_width(N, n0);
            column_sums(gsum, go + n0, Q, width, N);
            column_sums(hsum, h + n0, T, width, N);
            for (int n = 0; n < width; n++) dgamma -= (double)gsum[n] * hsum[n];
        }
    }
    ALPHA(g)[0] += (float)dalpha;
    BETA(g)[0] += (float)dbeta;
    GAMMA(g)[0] += (float)(dgamma / T);
    mf_prof_end(MF_PROF_ATTN_MIX, MF_PROF_BACKWARD, t0);
}

/* He & Hofmann start the block as the identity: alpha = beta = gamma = 1 (the
 * tensors' INIT_ONE) and zero query weights, so S = 0, A = U and
 * beta A - gamma U = 0. That needs scores linear in the query weights:
 * separate (W_q), collapsed (W_qk) and symmetric (W) are; shared (W_k = W_q)
 * and cholesky (W = L L^T) are quadratic, so zero weights there would keep a
 * zero gradient for ever. Those (and any query/key kind not named here) keep
 * their usual initialization and start with beta = gamma = 0: again M = I,
 * and the gradients of beta and gamma open the attention path from the
 * first step. Biases are zero already. */
static void attention_vo_shaped_init(mf_block_params *p, const mf_config *c)
{
    size_t N = (size_t)c->dim;
    float *query = NULL;
    size_t n = N * N;
    if (c->qk == MF_QK_SEPARATE) query = p->q_w;
    else if (c->qk == MF_QK_COLLAPSED) query = p->qk_w;
    else if (c->qk == MF_QK_SYMMETRIC) query = p->qk_tril, n = N * (N + 1) / 2;
    if (query) memset(query, 0, n * sizeof(float));
    else BETA(p)[0] = GAMMA(p)[0] = 0.0f;
}

/* alpha, beta, gamma: (1) each, no weight decay (gains, like LayerNorm's). */
static const mf_tensor_spec shaped_tensors[] = {
    {"attn.shaped.alpha", 1, {DIM_ONE, DIM_ONE, DIM_ONE}, 0, INIT_ONE, 0.0f,
     offsetof(mf_block_params, variant[0]), PART_ATTENTION},
    {"attn.shaped.beta", 1, {DIM_ONE, DIM_ONE, DIM_ONE}, 0, INIT_ONE, 0.0f,
     offsetof(mf_block_params, variant[1]), PART_ATTENTION},
    {"attn.shaped.gamma", 1, {DIM_ONE, DIM_ONE, DIM_ONE}, 0, INIT_ONE, 0.0f,
     offsetof(mf_block_params, variant[2]), PART_ATTENTION},
};

const mf_vo_variant vo_shaped = {
    .name = "shaped",
    .tensors = shaped_tensors,
    .num_tensors = 3,
    .one_head = "the mixing matrix alpha I + beta A - gamma U is built on one attention matrix A "
                "(per-head gains are not implemented)",
    .forward = attention_vo_shaped_forward,
    .backward = attention_vo_shaped_backward,
    .backward_params = attention_vo_shaped_backward_params,
    .init = attention_vo_shaped_init,
};
