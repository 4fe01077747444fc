/* Value/output variants: each turns the attention weights A and h = LN1(x)
 * into the branch output (M,N; only the query rows when d->Q = 1), and back.
 * Work is split across images, each writing only its own rows. */
#include <string.h>

#include "kernels/gemm.h"
#include "model/attention_common.h"
#include "model/variants.h"
#include "kernels/ops.h"
#include "base/profile.h"

#define FWD MF_PROF_FORWARD
#define BWD MF_PROF_BACKWARD
#define MIX MF_PROF_ATTN_MIX

/* ---- separate: v = hWv^T + bv, out = concat_h(A_h v_h) Wo^T + bo --------- */

static void separate_forward_head(mf_layer_acts *a, const mf_attn_dims *d, int bh)
{
    int T = d->T, N = d->N, hd = d->N / d->H, b = bh / d->H, h = bh % d->H;
    mf_gemm_serial_as(d->attn, 0, 0, d->Q, hd, T, 1.0f, TILE(a->att, b, h, d), T, ROWS(a->v, b, d) + h * hd, N,
                   0.0f, ROWS(a->mix, b, d) + h * hd, N);
}

static void attention_vo_separate_forward(float *out, mf_layer_acts *a, const mf_block_params *p,
                                          const mf_attn_dims *d)
{
    int N = d->N, M = d->B * d->T;
    linear_forward(d->gemm, a->v, a->ln1, p->v_w, p->v_b, M, N, N);
    double t0 = mf_prof_begin();
    FOR_EACH(d->B * d->H, d, separate_forward_head(a, d, i_));
    mf_prof_end(MIX, FWD, t0);
    linear_forward_rows(d->gemm, out, a->mix, p->proj_w, p->proj_b, query_rows(d), N, N, query_step(d));
}

static void separate_backward_head(mf_grad_scratch *s, const mf_layer_acts *a,
                                   const mf_attn_dims *d, int bh)
{
    int T = d->T, N = d->N, hd = d->N / d->H, b = bh / d->H, h = bh % d->H;
    const float *dmix = ROWS(s->dmix, b, d) + h * hd;
    /* mix_h = A_h v_h: dA_h = dmix_h v_h^T (Q rows), dv_h = A_h^T dmix_h (T rows) */
    mf_gemm_serial_as(d->attn, 0, 1, d->Q, T, hd, 1.0f, dmix, N, ROWS(a->v, b, d) + h * hd, N, 0.0f,
                   TILE(s->datt, b, h, d), T);
    mf_gemm_serial_as(d->attn, 1, 0, T, hd, d->Q, 1.0f, TILE(a->att, b, h, d), T, dmix, N, 0.0f,
                   ROWS(s->dv, b, d) + h * hd, N);
}

static void attention_vo_separate_backward(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                                           const mf_block_params *p, const mf_attn_dims *d)
{
    int N = d->N, M = d->B * d->T;
    linear_backward_input_rows(d->gemm, s->dmix, dout, p->proj_w, query_rows(d), N, N, 0, query_step(d));
    double t0 = mf_prof_begin();
    FOR_EACH(d->B * d->H, d, separate_backward_head(s, a, d, i_));
    mf_prof_end(MIX, BWD, t0);
    linear_backward_input(d->gemm, s->dh, s->dv, p->v_w, M, N, N, 1);
}

static void attention_vo_separate_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                                  const float *dout, const mf_layer_acts *a,
                                                  const mf_attn_dims *d)
{
    int M = d->B * d->T, N = d->N;
    linear_backward_params_rows(d->gemm, g->proj_w, g->proj_b, dout, a->mix, query_rows(d), N, N,
                                query_step(d));
    linear_backward_params(d->gemm, g->v_w, g->v_b, s->dv, a->ln1, M, N, N);
}

static const mf_tensor_spec separate_tensors[] = {
    MF_LINEAR_SPECS("attn.v", mf_block_params, v_w, v_b, DIM_WIDTH, DIM_WIDTH, PART_ATTENTION),
    MF_LINEAR_SPECS("attn.proj", mf_block_params, proj_w, proj_b, DIM_WIDTH, DIM_WIDTH,
                    PART_ATTENTION),
};

const mf_vo_variant vo_separate = {
    .name = "separate",
    .tensors = separate_tensors,
    .num_tensors = 4,
    .acts = ACTS_VALUES,
    .forward = attention_vo_separate_forward,
    .backward = attention_vo_separate_backward,
    .backward_params = attention_vo_separate_backward_params,
    .collapses_to = MF_VO_COLLAPSED,
    .collapse = collapse_vo_separate,
};

/* ---- mixing the inputs themselves: out = w A_h h (collapsed, none) ------- */

/* out_b (=, or += with beta 1) w A_bh h_b for image b. */
static void mixing_forward_image(float *out, const mf_layer_acts *a, const mf_attn_dims *d, int h,
                                 float w, float beta, int b)
{
    int T = d->T, N = d->N;
    mf_gemm_serial_as(d->attn, 0, 0, d->Q, N, T, w, TILE(a->att, b, h, d), T, ROWS(a->ln1, b, d), N, beta,
                   ROWS(out, b, d), N);
}

/* From dmix_b, the gradient of w A_bh h_b: dA_bh = w dmix h^T, dh += w A_bh^T dmix. */
static void mixing_backward_image(mf_grad_scratch *s, const float *dmix, const mf_layer_acts *a,
                                  const mf_attn_dims *d, int h, float w, int b)
{
    int T = d->T, N = d->N;
    mf_gemm_serial_as(d->attn, 0, 1, d->Q, T, N, w, ROWS(dmix, b, d), N, ROWS(a->ln1, b, d), N, 0.0f,
                   TILE(s->datt, b, h, d), T);
    mf_gemm_serial_as(d->attn, 1, 0, T, N, d->Q, w, TILE(a->att, b, h, d), T, ROWS(dmix, b, d), N, 1.0f,
                   ROWS(s->dh, b, d), N);
}

/* ---- collapsed (H = 1): out = (A h) Wvo^T + bvo ---------------------------- */

static void attention_vo_collapsed_forward(float *out, mf_layer_acts *a, const mf_block_params *p,
                                           const mf_attn_dims *d)
{
    int N = d->N;
    double t0 = mf_prof_begin();
    FOR_EACH(d->B, d, mixing_forward_image(a->mix, a, d, 0, 1.0f, 0.0f, i_));
    mf_prof_end(MIX, FWD, t0);
    linear_forward_rows(d->gemm, out, a->mix, p->vo_w, p->vo_b, query_rows(d), N, N, query_step(d));
}

static void attention_vo_collapsed_backward(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                                            const mf_block_params *p, const mf_attn_dims *d)
{
    int N = d->N;
    linear_backward_input_rows(d->gemm, s->dmix, dout, p->vo_w, query_rows(d), N, N, 0, query_step(d));
    double t0 = mf_prof_begin();
    FOR_EACH(d->B, d, mixing_backward_image(s, s->dmix, a, d, 0, 1.0f, i_));
    mf_prof_end(MIX, BWD, t0);
}

static void attention_vo_collapsed_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                                   const float *dout, const mf_layer_acts *a,
                                                   const mf_attn_dims *d)
{
    (void)s;
    linear_backward_params_rows(d->gemm, g->vo_w, g->vo_b, dout, a->mix, query_rows(d), d->N, d->N,
                                query_step(d));
}

static const mf_tensor_spec collapsed_tensors[] = {
    MF_LINEAR_SPECS("attn.vo", mf_block_params, vo_w, vo_b, DIM_WIDTH, DIM_WIDTH, PART_ATTENTION),
};

const mf_vo_variant vo_collapsed = {
    .name = "collapsed",
    .tensors = collapsed_tensors,
    .num_tensors = 2,
    .one_head = "each head's W_vo would be N x N, more than the 2N^2/H of W_v and W_o it replaces",
    .forward = attention_vo_collapsed_forward,
    .backward = attention_vo_collapsed_backward,
    .backward_params = attention_vo_collapsed_backward_params,
};

/* ---- none: out = (1/H) sum_h A_h h, a convex combination of the inputs ---- */

/* out_b = (1/H) sum_h A_bh h_b */
static void none_forward_image(float *out, const mf_layer_acts *a, const mf_attn_dims *d, int b)
{
    float w = 1.0f / (float)d->H;
    for (int h = 0; h < d->H; h++) mixing_forward_image(out, a, d, h, w, h ? 1.0f : 0.0f, b);
}

static void none_backward_image(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                                const mf_attn_dims *d, int b)
{
    float w = 1.0f / (float)d->H;
    for (int h = 0; h < d->H; h++) mixing_backward_image(s, dout, a, d, h, w, b);
}

static void attention_vo_none_forward(float *out, mf_layer_acts *a, const mf_block_params *p,
                                      const mf_attn_dims *d)
{
    (void)p;
    double t0 = mf_prof_begin();
    FOR_EACH(d->B, d, none_forward_image(out, a, d, i_));
    mf_prof_end(MIX, FWD, t0);
}

static void attention_vo_none_backward(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                                       const mf_block_params *p, const mf_attn_dims *d)
{
    (void)p;
    double t0 = mf_prof_begin();
    FOR_EACH(d->B, d, none_backward_image(s, dout, a, d, i_));
    mf_prof_end(MIX, BWD, t0);
}

const mf_vo_variant vo_none = {
    .name = "none",
    .forward = attention_vo_none_forward,
    .backward = attention_vo_none_backward,
};
