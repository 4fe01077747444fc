/* Collapsing a trained model: the paper's observation that W_q and W_k only
 * appear as the product W_q^T W_k (and W_v, W_o as W_o W_v), made concrete. */
#include <string.h>

#include "model/variants.h"

/* C (n x n) = A^T B for n x n row-major A, B, summed in double. */
static void matmul_at_b(float *C, const float *A, const float *B, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += (double)A[(size_t)k * n + i] * B[(size_t)k * n + j];
            C[(size_t)i * n + j] = (float)s;
        }
}

/* C = A B */
static void matmul_a_b(float *C, const float *A, const float *B, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += (double)A[(size_t)i * n + k] * B[(size_t)k * n + j];
            C[(size_t)i * n + j] = (float)s;
        }
}

/* y = A^T x (transpose = 1) or A x, plus c when non-NULL. */
static void matvec(float *y, const float *A, const float *x, const float *c, int n, int transpose)
{
    for (int i = 0; i < n; i++) {
        double s = c ? (double)c[i] : 0.0;
        for (int k = 0; k < n; k++)
            s += (double)(transpose ? A[(size_t)k * n + i] : A[(size_t)i * n + k]) * x[k];
        y[i] = (float)s;
    }
}

static void copy_tensor(mf_model *out, const mf_model *in, const char *name)
{
    const mf_tensor_info *to = mf_model_find_tensor(out, name), *ti = mf_model_find_tensor(in, name);
    if (to && ti && to->numel == ti->numel)
        memcpy(out->params + to->offset, in->params + ti->offset, ti->numel * sizeof(float));
}

void collapse_qk_separate(mf_block_params *q, const mf_block_params *p, int N)
{
    matmul_at_b(q->qk_w, p->k_w, p->q_w, N);     /* W_qk = W_k^T W_q */
    matvec(q->qk_b, p->k_w, p->q_b, NULL, N, 1); /* b_qk = W_k^T b_q */
}

void collapse_vo_separate(mf_block_params *q, const mf_block_params *p, int N)
{
    matmul_a_b(q->vo_w, p->proj_w, p->v_w, N);           /* W_vo = W_o W_v */
    matvec(q->vo_b, p->proj_w, p->v_b, p->proj_b, N, 0); /* b_vo = W_o b_v + b_o */
}

mf_status mf_model_collapse(const mf_model *in, mf_model *out, mf_error *err)
{
    const mf_config *c = &in->cfg;
    memset(out, 0, sizeof *out);
    if (c->heads != 1)
        return mf_fail(err, MF_ERR_CONFIG,
                       "cannot collapse a model with %d heads: per head, W_qk and W_vo would each be "
                       "an N x N matrix, more than the 2N^2/H parameters of the pairs they replace "
                       "(the paper collapses single-head attention only)",
                       c->heads);
    const mf_qk_variant *qk = qk_variant((int)c->qk);
    const mf_vo_variant *vo = vo_variant((int)c->vo);
    if (!qk->collapse && !vo->collapse)
        return mf_fail(err, MF_ERR_CONFIG,
                       "nothing to collapse: the model has --qk %s and --vo %s (only separate "
                       "query/key or value/output matrices collapse)",
                       qk->name, vo->name);
    mf_config oc = *c;
    if (qk->collapse) oc.qk = (mf_qk_kind)qk->collapses_to;
    if (vo->collapse) oc.vo = (mf_vo_kind)vo->collapses_to;
    mf_status st = mf_model_create(out, &oc, err);
    if (st) return st;
    /* Everything not rewritten keeps its name and value. */
    for (int i = 0; i < out->num_tensors; i++) copy_tensor(out, in, out->tensors[i].name);
    for (int l = 0; l < c->layers; l++) {
        if (qk->collapse) qk->collapse(&out->p.blocks[l], &in->p.blocks[l], c->dim);
        if (vo->collapse) vo->collapse(&out->p.blocks[l], &in->p.blocks[l], c->dim);
    }
    return MF_OK;
}
