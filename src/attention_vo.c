/* Value/output variants: each turns the attention weights A and h = LN1(x)
 * into the branch output (M,N), and back. Work is split across images, each
 * writing only its own rows. */
#include <string.h>

#include "gemm.h"
#include "model_internal.h"
#include "ops.h"

#define ROWS(ptr, b, d) ((ptr) + (size_t)(b) * (d)->T * (d)->N)
#define TILE(ptr, b, h, d) ((ptr) + ((size_t)(b) * (d)->H + (h)) * (d)->T * (d)->T)

/* ---- separate: v = hWv^T + bv, out = concat_h(A_h v_h) Wo^T + bo --------- */

void attention_vo_separate_forward(float *out, mf_layer_acts *a, const mf_block_params *p,
                                   const mf_attn_dims *d)
{
    int T = d->T, N = d->N, hd = d->N / d->H, M = d->B * d->T;
    linear_forward(a->v, a->ln1, p->v_w, p->v_b, M, N, N);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < d->B * d->H; bh++) {
        int b = bh / d->H, h = bh % d->H;
        mf_gemm_serial(0, 0, T, hd, T, 1.0f, TILE(a->att, b, h, d), T, ROWS(a->v, b, d) + h * hd, N,
                       0.0f, ROWS(a->mix, b, d) + h * hd, N);
    }
    linear_forward(out, a->mix, p->proj_w, p->proj_b, M, N, N);
}

void attention_vo_separate_backward(mf_grad_scratch *s, mf_block_params *g, const float *dout,
                                    const mf_layer_acts *a, const mf_block_params *p,
                                    const mf_attn_dims *d)
{
    int T = d->T, N = d->N, hd = d->N / d->H, M = d->B * d->T;
    linear_backward(s->dmix, g->proj_w, g->proj_b, dout, a->mix, p->proj_w, M, N, N, 0);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < d->B * d->H; bh++) {
        int b = bh / d->H, h = bh % d->H;
        const float *dmix = ROWS(s->dmix, b, d) + h * hd;
        /* mix_h = A_h v_h: dA_h = dmix_h v_h^T, dv_h = A_h^T dmix_h */
        mf_gemm_serial(0, 1, T, T, hd, 1.0f, dmix, N, ROWS(a->v, b, d) + h * hd, N, 0.0f,
                       TILE(s->datt, b, h, d), T);
        mf_gemm_serial(1, 0, T, hd, T, 1.0f, TILE(a->att, b, h, d), T, dmix, N, 0.0f,
                       ROWS(s->dv, b, d) + h * hd, N);
    }
    linear_backward(s->dh, g->v_w, g->v_b, s->dv, a->ln1, p->v_w, M, N, N, 1);
}

/* ---- collapsed (H = 1): out = (A h) Wvo^T + bvo ---------------------------- */

void attention_vo_collapsed_forward(float *out, mf_layer_acts *a, const mf_block_params *p,
                                    const mf_attn_dims *d)
{
    int T = d->T, N = d->N;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < d->B; b++)
        mf_gemm_serial(0, 0, T, N, T, 1.0f, TILE(a->att, b, 0, d), T, ROWS(a->ln1, b, d), N, 0.0f,
                       ROWS(a->mix, b, d), N);
    linear_forward(out, a->mix, p->vo_w, p->vo_b, d->B * T, N, N);
}

void attention_vo_collapsed_backward(mf_grad_scratch *s, mf_block_params *g, const float *dout,
                                     const mf_layer_acts *a, const mf_block_params *p,
                                     const mf_attn_dims *d)
{
    int T = d->T, N = d->N;
    linear_backward(s->dmix, g->vo_w, g->vo_b, dout, a->mix, p->vo_w, d->B * T, N, N, 0);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < d->B; b++) {
        const float *dmix = ROWS(s->dmix, b, d);
        mf_gemm_serial(0, 1, T, T, N, 1.0f, dmix, N, ROWS(a->ln1, b, d), N, 0.0f,
                       TILE(s->datt, b, 0, d), T);
        mf_gemm_serial(1, 0, T, N, T, 1.0f, TILE(a->att, b, 0, d), T, dmix, N, 1.0f,
                       ROWS(s->dh, b, d), N);
    }
}

/* ---- none: out = (1/H) sum_h A_h h, a convex combination of the inputs ---- */

void attention_vo_none_forward(float *out, mf_layer_acts *a, const mf_block_params *p,
                               const mf_attn_dims *d)
{
    (void)p;
    int T = d->T, N = d->N, H = d->H;
    float w = 1.0f / (float)H;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < H; h++)
            mf_gemm_serial(0, 0, T, N, T, w, TILE(a->att, b, h, d), T, ROWS(a->ln1, b, d), N,
                           h ? 1.0f : 0.0f, ROWS(out, b, d), N);
}

void attention_vo_none_backward(mf_grad_scratch *s, mf_block_params *g, const float *dout,
                                const mf_layer_acts *a, const mf_block_params *p,
                                const mf_attn_dims *d)
{
    (void)g;
    (void)p;
    int T = d->T, N = d->N, H = d->H;
    float w = 1.0f / (float)H;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < H; h++) {
            /* dA_h = w dout h^T; dh += w A_h^T dout */
            mf_gemm_serial(0, 1, T, T, N, w, ROWS(dout, b, d), N, ROWS(a->ln1, b, d), N, 0.0f,
                           TILE(s->datt, b, h, d), T);
            mf_gemm_serial(1, 0, T, N, T, w, TILE(a->att, b, h, d), T, ROWS(dout, b, d), N, 1.0f,
                           ROWS(s->dh, b, d), N);
        }
}
