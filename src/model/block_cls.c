/* The last block's CLS-row specialization. With CLS pooling the head reads
 * only the CLS rows of the last block's output, so that block computes
 * attention queries, scores, mixing and its output matrix for the CLS row
 * only (keys and values for every row), and its residual adds, LayerNorm and
 * MLP on those rows alone: the same values on those rows, about 1/T of the
 * work. Its MLP activations (x_mid, ln2, gelu_slope, gelu) are compact, row b
 * for image b, and only the CLS rows of the final residual stream exist.
 * MF_MODE_FULL_ATTENTION keeps every row of the attention, for maps. */
#include <string.h>

#include "model/model_internal.h"
#include "kernels/ops.h"

int cls_rows_only(const mf_config *c, int l)
{
    return c->pool == MF_POOL_CLS && l == c->layers - 1;
}

int attention_query_rows(const mf_model *m, int l)
{
    /* Backward follows the mode of the forward it differentiates. */
    unsigned mode = m->acts->mode;
    int cls_only = cls_rows_only(&m->cfg, l) && !(mode & MF_MODE_FULL_ATTENTION);
    return cls_only ? 1 : mf_config_tokens(&m->cfg);
}

/* Without an MLP: the residual add on the CLS rows, which are all the head
 * reads (and, with Q = 1, all the attention wrote). */
static void cls_residual_forward(mf_model *m, int l, int b0, int nb, float *branch)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c);
    norm_target none = {NULL, NULL, NULL, NULL, NULL};
    for (int i = 0; i < nb; i++) {
        size_t at = (size_t)(b0 + i) * T * N;
        residual_forward(m, A->layers[l + 1].x + at, A->layers[l].x + at, branch + (size_t)i * T * N,
                         NULL, site_attn(l), &none, 1, at);
    }
}

/* The MLP branch for the CLS rows; the first nb rows of branch are reused
 * for the MLP's output. */
static void cls_mlp_forward(mf_model *m, int l, int b0, int nb, float *branch)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c), F = c->mlp_ratio * N;
    const mf_block_params *p = &m->p.blocks[l];
    mf_layer_acts *a = &A->layers[l];
    size_t row = (size_t)b0 * N, rowF = (size_t)b0 * F;
    float *x_mid = a->x_mid + row, *ln2 = a->ln2 + row;
    norm_target none = {NULL, NULL, NULL, NULL, NULL};
    /* x_mid = x + drop(attn) and LN2, on each CLS row (dropout by its place in (M,N)) */
    for (int i = 0; i < nb; i++) {
        size_t at = (size_t)(b0 + i) * T * N;
        norm_target ln = {ln2 + (size_t)i * N, a->ln2_mean + b0 + i, a->ln2_rstd + b0 + i,
                          p->norm2_w, p->norm2_b};
        residual_forward(m, x_mid + (size_t)i * N, a->x + at, branch + (size_t)i * T * N, NULL,
                         site_attn(l), &ln, 1, at);
    }
    mlp_forward(model_gemm(m), branch, a->gelu + rowF, a->gelu16 + rowF, a->gelu_slope + rowF, ln2, p,
                nb, N, F, !(A->mode & MF_MODE_FORWARD_ONLY));
    /* the CLS rows of the final residual stream */
    for (int i = 0; i < nb; i++) {
        size_t at = (size_t)(b0 + i) * T * N;
        residual_forward(m, A->layers[l + 1].x + at, x_mid + (size_t)i * N, branch + (size_t)i * N,
                         p->fc2_b, site_mlp(l), &none, 1, at);
    }
}

void cls_block_forward(mf_model *m, int l, int b0, int nb, float *branch)
{
    if (m->cfg.mlp_ratio > 0) cls_mlp_forward(m, l, b0, nb, branch);
    else cls_residual_forward(m, l, b0, nb, branch);
}

/* in is zero but on the CLS rows; s->dh (free until the attention's
 * backward) holds the compact branch gradient. */
void cls_mlp_backward(mf_model *m, int l, int b0, int nb, const float *in, float *mid,
                      const mf_block_params *g, const mf_grad_scratch *s)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c), F = c->mlp_ratio * N;
    const mf_block_params *p = &m->p.blocks[l];
    const mf_layer_acts *a = &A->layers[l];
    size_t row = (size_t)b0 * N, rowF = (size_t)b0 * F;
    const float *x_mid = a->x_mid + row, *mean = a->ln2_mean + b0, *rstd = a->ln2_rstd + b0;
    float *dbranch = s->dh;
    for (int i = 0; i < nb; i++) {
        size_t at = (size_t)(b0 + i) * T * N;
        memcpy(dbranch + (size_t)i * N, in + (size_t)i * T * N, (size_t)N * sizeof(float));
        if (dropout_on(m))
            dropout_apply_at(dbranch + (size_t)i * N, at, (size_t)N, c->dropout,
                             dropout_site_seed(m, site_mlp(l)));
    }
    mlp_backward(model_gemm(m), s->dln2, s->dfc1, g, dbranch, a->gelu + rowF, a->gelu16 + rowF,
                 a->gelu_slope + rowF, a->ln2 + row, p, nb, N, F);
    /* mid = in, plus LN2's gradient on the CLS rows */
    memcpy(mid, in, (size_t)nb * T * N * sizeof(float));
    for (int i = 0; i < nb; i++)
        layernorm_backward_input(mid + (size_t)i * T * N, in + (size_t)i * T * N, s->dln2 + (size_t)i * N,
                                 x_mid + (size_t)i * N, mean + i, rstd + i, p->norm2_w, 1, N);
    layernorm_backward_params(g->norm2_w, g->norm2_b, s->dln2, x_mid, mean, rstd, nb, N);
}
