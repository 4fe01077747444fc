/* The backward pass: the head and final LayerNorm, then each block as a
 * short sequence of ops in reverse, then the embedding. Each block's input
 * gradients are computed per fixed chunk of images, its parameter gradients
 * into each chunk's own slice, and the slices summed in chunk order, so the
 * bits do not depend on the thread count. */
#include <string.h>

#include "model/param_table.h"
#include "kernels/ops.h"
#include "base/profile.h"

/* The gradients around block l in backward: of its output (in), of the
 * residual stream between its attention and MLP branches (mid), of its input
 * (out), and those reaching its two branches. Without dropout a
 * branch's gradient is the residual stream's (in for the MLP, mid for the
 * attention); with dropout, a masked copy. in, mid and out rotate through
 * three (M,N) arrays, so none is copied. */
typedef struct {
    float *in, *mid, *out;
    float *mlp_branch, *attn_branch;
} block_grads;

/* keep = drop(dx) over a slice starting at element `first`. */
static void branch_dropout(const mf_model *m, float *keep, const float *dx, int site, size_t first,
                           size_t n)
{
    memcpy(keep, dx, n * sizeof(float));
    dropout_apply_at(keep, first, n, m->cfg.dropout, dropout_site_seed(m, site));
}

/* The attention branch backward (images of d only): the value/output entry,
 * then the query/key entry, each its input gradients and then its parameter
 * gradients into g. */
static void attention_backward(mf_block_params *g, mf_grad_scratch *s, const float *dout,
                               const mf_layer_acts *a, const mf_block_params *p,
                               const mf_config *c, const mf_attn_dims *d)
{
    const mf_qk_variant *qk = qk_variant((int)c->qk);
    const mf_vo_variant *vo = vo_variant((int)c->vo);
    vo->backward(s, dout, a, p, d);
    qk->backward(s, a, p, d);
    if (vo->backward_params) vo->backward_params(g, s, dout, a, d);
    qk->backward_params(g, s, a, d);
}

/* Block l backward for images b0 .. b0+nb-1: the input gradients, and the
 * parameter gradients of these images alone into slice (zeroed here), each
 * right after the input gradients they need, while those are in cache. */
static void block_backward_chunk(mf_model *m, int l, const block_grads *bg, int b0, int nb,
                                 float *slice)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c), F = c->mlp_ratio * N, rows = nb * T;
    size_t first = (size_t)b0 * T * N, n = (size_t)rows * N;
    mf_attn_dims d = {nb, T, N, c->heads, attention_query_rows(m, l)};
    mf_layer_acts a = layer_slice(&A->layers[l], c, b0);
    mf_grad_scratch s = scratch_slice(&A->g, c, b0);
    const mf_block_params *p = &m->p.blocks[l];
    mf_block_params g; /* block l's gradients, in this chunk's slice */
    memset(slice, 0, A->gpart_stride * sizeof(float));
    param_bind_block(c, slice, &g);
    s.dw_full = slice + A->block_numel; /* ACTS_FULL_WEIGHT only */
    float *in = bg->in + first, *mid = bg->mid + first, *out = bg->out + first;
    float *dmlp = bg->mlp_branch + first, *dattn = bg->attn_branch + first;

    /* x' = x_mid + drop(mlp(LN2(x_mid))): the gradient reaches x_mid
     * unchanged, plus the MLP branch's. */
    if (F && cls_rows_only(c, l)) {
        cls_mlp_backward(m, l, b0, nb, in, mid, &g, &s);
    } else if (F) {
        if (dropout_on(m)) branch_dropout(m, dmlp, in, site_mlp(l), first, n);
        mlp_backward(s.dln2, s.dfc1, &g, dmlp, a.gelu, a.gelu_slope, a.ln2, p, rows, N, F);
        layernorm_backward_input(mid, in, s.dln2, a.x_mid, a.ln2_mean, a.ln2_rstd, p->norm2_w, rows, N);
        layernorm_backward_params(g.norm2_w, g.norm2_b, s.dln2, a.x_mid, a.ln2_mean, a.ln2_rstd, rows, N);
    }
    /* x_mid = x + drop(attn(LN1(x))) */
    if (dropout_on(m)) branch_dropout(m, dattn, mid, site_attn(l), first, n);
    memset(s.dh, 0, n * sizeof(float));
    attention_backward(&g, &s, dattn, &a, p, c, &d);
    layernorm_backward_input(out, mid, s.dh, a.x, a.ln1_mean, a.ln1_rstd, p->norm1_w, rows, N);
    layernorm_backward_params(g.norm1_w, g.norm1_b, s.dh, a.x, a.ln1_mean, a.ln1_rstd, rows, N);
}

/* Share `part` of `parts` of block l's parameter gradients (and of dL/dW):
 * the chunks' slices added in chunk order, then added to the gradients. */
static void block_params_reduce(mf_model *m, int l, int chunks, int part, int parts)
{
    mf_activations *A = m->acts;
    size_t numel = A->block_numel, stride = A->gpart_stride;
    size_t total = block_grad_floats(&m->cfg, numel);
    size_t units = (total + 15) / 16, j0 = units * part / parts * 16, j1 = units * (part + 1) / parts * 16;
    if (j1 > total) j1 = total;
    float *g = m->grads + A->block0 + (size_t)l * numel;
    double t0 = mf_prof_begin();
    for (size_t j = j0; j < j1; j++) {
        float sum = A->gpart[j];
        for (int ci = 1; ci < chunks; ci++) sum += A->gpart[(size_t)ci * stride + j];
        if (j < numel) g[j] += sum;
        else A->g.dw_full[j - numel] = sum;
    }
    mf_prof_end(MF_PROF_THREADS, MF_PROF_BACKWARD, t0);
}

/* dL/dW -> dL/dqk_tril, once the whole dw_full is summed. */
static void attention_params_finish(mf_model *m, int l)
{
    const mf_config *c = &m->cfg;
    mf_attn_dims d = {m->acts->batch, mf_config_tokens(c), c->dim, c->heads, mf_config_tokens(c)};
    const mf_qk_variant *qk = qk_variant((int)c->qk);
    if (qk->params_finish) qk->params_finish(&m->g.blocks[l], &m->acts->g, &m->p.blocks[l], &d);
}

/* The embedding's gradients from dx, the gradient of block 0's input: the
 * input half per image, then (after the barrier) shares of the parameters. */
static void embedding_backward(mf_model *m, float *dx)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int B = A->batch, N = c->dim, P = mf_config_patches(c), T = mf_config_tokens(c);
    int cls = c->pool == MF_POOL_CLS, cpp = c->channels * c->patch * c->patch;
    float *dtok = A->tokens; /* reuse: (B*P, N) gradient of the patch embeddings */
#pragma omp parallel if (B > 1)
    {
        int b0, b1, part = thread_id(), parts = thread_count();
        my_images(B, &b0, &b1);
        size_t first = (size_t)b0 * T * N, n = (size_t)(b1 - b0) * T * N;
        if (dropout_on(m)) dropout_apply_at(dx + first, first, n, c->dropout, dropout_site_seed(m, 0));
        double t0 = mf_prof_begin();
        for (int b = b0; b < b1; b++)
            memcpy(dtok + (size_t)b * P * N, dx + ((size_t)b * T + cls) * N, (size_t)P * N * sizeof(float));
        mf_prof_end(MF_PROF_PATCH_EMBED, MF_PROF_BACKWARD, t0);
#pragma omp barrier
        t0 = mf_prof_begin();
        /* Position and CLS gradients sum over the batch in image order. */
        int t0_, t1_, i0, i1;
        mf_share(T, 1, part, parts, &t0_, &t1_);
        for (int b = 0; b < B; b++)
            for (int t = t0_; t < t1_; t++) {
                const float *row = dx + ((size_t)b * T + t) * N;
                float *dpos = m->g.pos_embed + (size_t)t * N;
                for (int i = 0; i < N; i++) dpos[i] += row[i];
            }
        mf_share(N, 16, part, parts, &i0, &i1);
        if (cls)
            for (int b = 0; b < B; b++) {
                const float *row = dx + (size_t)b * T * N;
                for (int i = i0; i < i1; i++) m->g.cls_token[i] += row[i];
            }
        mf_prof_end(MF_PROF_PATCH_EMBED, MF_PROF_BACKWARD, t0);
        linear_backward_params_part(m->g.patch_w, m->g.patch_b, dtok, A->patches, B * P, cpp, N,
                                    part, parts);
    }
}

/* dx (M,N), from zero: the gradient of the last block's output, through the
 * head, the pooling and the final LayerNorm. */
static void head_backward(mf_model *m, float *dx)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int B = A->batch, N = c->dim, T = mf_config_tokens(c), K = c->classes;
    size_t M = (size_t)B * T;
    cross_entropy_backward(A->dlogits, A->probs, A->labels, B, K);
    memset(A->dpooled, 0, (size_t)B * N * sizeof(float));
    linear_backward(A->dpooled, m->g.head_w, m->g.head_b, A->dlogits, A->pooled, m->p.head_w, B,
                    N, K, 1);
    memset(dx, 0, M * N * sizeof(float));
    if (c->pool == MF_POOL_CLS) {
        /* dfinal holds the (B,N) gradient of the CLS rows' LayerNorm input. */
        memset(A->dfinal, 0, (size_t)B * N * sizeof(float));
        layernorm_backward(A->dfinal, m->g.norm_w, m->g.norm_b, A->dpooled, A->final_in,
                           A->final_mean, A->final_rstd, m->p.norm_w, B, N);
        double t0 = mf_prof_begin();
        for (int b = 0; b < B; b++)
            memcpy(dx + (size_t)b * T * N, A->dfinal + (size_t)b * N, (size_t)N * sizeof(float));
        mf_prof_end(MF_PROF_HEAD, MF_PROF_BACKWARD, t0);
    } else {
        double t0 = mf_prof_begin();
        float inv = 1.0f / (float)T;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                float *row = A->dfinal + ((size_t)b * T + t) * N;
                const float *dp = A->dpooled + (size_t)b * N;
                for (int i = 0; i < N; i++) row[i] = dp[i] * inv;
            }
        mf_prof_end(MF_PROF_HEAD, MF_PROF_BACKWARD, t0);
        layernorm_backward(dx, m->g.norm_w, m->g.norm_b, A->dfinal, A->layers[c->layers].x,
                           A->final_mean, A->final_rstd, m->p.norm_w, (int)M, N);
    }
}

/* Block l backward over the whole batch: the chunks across the threads,
 * then their slices summed, then what the variant does once per pass. */
static void block_backward(mf_model *m, int l, const block_grads *bg)
{
    mf_activations *A = m->acts;
    int B = A->batch, chunks = backward_chunks(&m->cfg, B);
    double t0 = mf_prof_begin();
#pragma omp parallel if (B > 1)
    {
        int c0, c1;
        mf_share(chunks, 1, thread_id(), thread_count(), &c0, &c1);
        for (int ci = c0; ci < c1; ci++) {
            int b0 = (int)((long)B * ci / chunks), b1 = (int)((long)B * (ci + 1) / chunks);
            block_backward_chunk(m, l, bg, b0, b1 - b0, A->gpart + (size_t)ci * A->gpart_stride);
        }
#pragma omp barrier
        block_params_reduce(m, l, chunks, thread_id(), thread_count());
    }
    mf_prof_region(t0);
    attention_params_finish(m, l);
}

void mf_model_backward(mf_model *m)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int F = c->mlp_ratio * c->dim;
    float *rotation[3] = {A->dx, A->branch, A->dattn};
    int cur = 0; /* rotation[cur]: the gradient of the current block's output */
    head_backward(m, rotation[cur]);
    for (int l = c->layers - 1; l >= 0; l--) {
        block_grads bg;
        bg.in = rotation[cur];
        bg.mid = F ? rotation[(cur + 1) % 3] : bg.in;
        cur = (cur + (F ? 2 : 1)) % 3;
        bg.out = rotation[cur];
        bg.mlp_branch = dropout_on(m) ? A->dmask_mlp : bg.in;
        bg.attn_branch = dropout_on(m) ? A->dmask_attn : bg.mid;
        block_backward(m, l, &bg);
    }
    double t0 = mf_prof_begin();
    embedding_backward(m, rotation[cur]);
    mf_prof_region(t0);
}
