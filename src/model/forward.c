/* The forward pass: the embedding, each block as a short sequence of ops,
 * then the final LayerNorm, pooling, the head and the loss. Each thread runs
 * its share of the images through the whole network in chunks (the batch's
 * slicing: activations.c). The last block's CLS-row specialization is
 * block_cls.c. */
#include <math.h>
#include <string.h>

#include "model/variants.h"
#include "model/split.h"
#include "kernels/ops.h"
#include "base/profile.h"

uint64_t dropout_site_seed(const mf_model *m, int site)
{
    return mf_hash2(m->dropout_seed, (uint64_t)site);
}

/* Dropout as the last forward ran (backward follows it). */
int dropout_on(const mf_model *m) { return (m->acts->mode & MF_MODE_TRAIN) && m->cfg.dropout > 0.0f; }

/* Cuts images (B,C,S,S) into patches (B*P, C*p*p), row-major over the patch
 * grid, each flattened channel-major (c, y, x). */
static void patchify(float *patches, const float *images, const mf_config *c, int B)
{
    double t0 = mf_prof_begin();
    int S = c->image_size, p = c->patch, g = S / p, C = c->channels, cpp = C * p * p;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++) {
                float *dst = patches + ((size_t)b * g * g + (size_t)gy * g + gx) * cpp;
                for (int ch = 0; ch < C; ch++)
                    for (int y = 0; y < p; y++) {
                        const float *src = images + (((size_t)b * C + ch) * S + (size_t)gy * p + y) * S + (size_t)gx * p;
                        memcpy(dst + ((size_t)ch * p + y) * p, src, (size_t)p * sizeof(float));
                    }
            }
    mf_prof_end(MF_PROF_PATCH_EMBED, MF_PROF_FORWARD, t0);
}

/* x (nb*T, N): the CLS token (with CLS pooling) and the patch embeddings
 * tokens (nb*P, N), plus the position embeddings. */
static void tokens_forward(float *x, const float *tokens, const mf_params *p, const mf_config *c,
                           int nb)
{
    double t0 = mf_prof_begin();
    int N = c->dim, P = mf_config_patches(c), T = mf_config_tokens(c), cls = c->pool == MF_POOL_CLS;
    for (int b = 0; b < nb; b++) {
        for (int t = 0; t < T; t++) {
            float *row = x + ((size_t)b * T + t) * N;
            const float *pos = p->pos_embed + (size_t)t * N;
            const float *src = cls ? (t == 0 ? p->cls_token : tokens + ((size_t)b * P + t - 1) * N)
                                   : tokens + ((size_t)b * P + t) * N;
            for (int i = 0; i < N; i++) row[i] = src[i] + pos[i];
        }
    }
    mf_prof_end(MF_PROF_PATCH_EMBED, MF_PROF_FORWARD, t0);
}

/* pooled (nb,N): the mean over the T rows of each image of y (nb*T, N). */
static void mean_pool_forward(float *pooled, const float *y, int nb, int T, int N)
{
    double t0 = mf_prof_begin();
    for (int b = 0; b < nb; b++) {
        float *pool = pooled + (size_t)b * N;
        for (int i = 0; i < N; i++) pool[i] = 0.0f;
        for (int t = 0; t < T; t++) {
            const float *row = y + ((size_t)b * T + t) * N;
            for (int i = 0; i < N; i++) pool[i] += row[i];
        }
        for (int i = 0; i < N; i++) pool[i] /= (float)T;
    }
    mf_prof_end(MF_PROF_HEAD, MF_PROF_FORWARD, t0);
}

/* out (nb,N): row 0 (the CLS token) of each image of x (nb*T, N). */
static void cls_rows_copy(float *out, const float *x, int nb, int T, int N)
{
    double t0 = mf_prof_begin();
    for (int b = 0; b < nb; b++)
        memcpy(out + (size_t)b * N, x + (size_t)b * T * N, (size_t)N * sizeof(float));
    mf_prof_end(MF_PROF_HEAD, MF_PROF_FORWARD, t0);
}

void residual_forward(const mf_model *m, float *x_out, const float *x, float *branch,
                      const float *bias, int site, const norm_target *nt, int rows, size_t first)
{
    /* With dropout the bias is added and the mask applied to branch first,
     * in separate passes; otherwise one pass does all. */
    int N = m->cfg.dim;
    if (dropout_on(m)) {
        if (bias) bias_add_forward(branch, bias, rows, N);
        dropout_apply_at(branch, first, (size_t)rows * N, m->cfg.dropout, dropout_site_seed(m, site));
        bias = NULL;
    }
    residual_layernorm_forward(x_out, nt->y, nt->mean, nt->rstd, x, branch, bias, nt->w, nt->b, rows, N);
}

/* The attention branch: the query/key entry, then the value/output entry. */
static void attention_forward(float *out, mf_layer_acts *a, const mf_block_params *p,
                              const mf_config *c, const mf_attn_dims *d)
{
    qk_variant((int)c->qk)->forward(a, p, d);
    vo_variant((int)c->vo)->forward(out, a, p, d);
}

/* Where block l's last residual add writes its LayerNorm: block l+1's LN1,
 * the final norm (mean pooling), or nowhere. */
static norm_target norm_after(const mf_model *m, int l, int b0)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    size_t r0 = (size_t)b0 * mf_config_tokens(c);
    if (l + 1 < c->layers) {
        mf_layer_acts an = layer_slice(&A->layers[l + 1], c, b0);
        const mf_block_params *pn = &m->p.blocks[l + 1];
        return (norm_target){an.ln1, an.ln1_mean, an.ln1_rstd, pn->norm1_w, pn->norm1_b};
    }
    if (c->pool == MF_POOL_MEAN)
        return (norm_target){A->final_out + r0 * c->dim, A->final_mean + r0, A->final_rstd + r0,
                             m->p.norm_w, m->p.norm_b};
    return (norm_target){NULL, NULL, NULL, NULL, NULL};
}

/* Block l on images b0 .. b0+nb-1, whose h = LN1(x) the step before wrote:
 *   x_mid = x + drop(attn(h));  x' = x_mid + drop(mlp(LN2(x_mid)))
 * and the LayerNorm after the block rides on its last residual add. */
static void block_forward(mf_model *m, int l, int b0, int nb, float *branch)
{
    const mf_config *c = &m->cfg;
    int N = c->dim, T = mf_config_tokens(c), F = c->mlp_ratio * N, rows = nb * T;
    size_t first = (size_t)b0 * T * N;
    mf_layer_acts a = layer_slice(&m->acts->layers[l], c, b0);
    const mf_block_params *p = &m->p.blocks[l];
    float *next = m->acts->layers[l + 1].x + first;
    norm_target after = norm_after(m, l, b0);
    mf_attn_dims d = {nb, T, N, c->heads, attention_query_rows(m, l), model_gemm(m), model_attn_gemm(m)};

    attention_forward(branch, &a, p, c, &d);
    if (cls_rows_only(c, l)) {
        cls_block_forward(m, l, b0, nb, branch);
        return;
    }
    if (!F) {
        residual_forward(m, next, a.x, branch, NULL, site_attn(l), &after, rows, first);
        return;
    }
    norm_target ln2 = {a.ln2, a.ln2_mean, a.ln2_rstd, p->norm2_w, p->norm2_b};
    residual_forward(m, a.x_mid, a.x, branch, NULL, site_attn(l), &ln2, rows, first);
    mlp_forward(model_gemm(m), branch, a.gelu, a.gelu16, a.gelu_slope, a.ln2, p, rows, N, F,
                !(m->acts->mode & MF_MODE_FORWARD_ONLY));
    residual_forward(m, next, a.x_mid, branch, p->fc2_b, site_mlp(l), &after, rows, first);
}

/* Images b0 .. b0+nb-1 through the whole network up to the logits; branch:
 * nb images' rows of scratch for the branches (forward keeps nothing of
 * it), the same rows for every chunk of a thread, so they stay in cache
 * (mf_model_forward). */
static void forward_chunk(mf_model *m, const float *images, int b0, int nb, float *branch)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, P = mf_config_patches(c), T = mf_config_tokens(c), K = c->classes;
    int cpp = c->channels * c->patch * c->patch, rows = nb * T, S = c->image_size;
    size_t first = (size_t)b0 * T * N;
    float *patches = A->patches + (size_t)b0 * P * cpp, *tokens = A->tokens + (size_t)b0 * P * N;
    float *x = A->layers[0].x + first;
    float *pooled = A->pooled + (size_t)b0 * N;
    mf_layer_acts a0 = layer_slice(&A->layers[0], c, b0);

    patchify(patches, images + (size_t)b0 * c->channels * S * S, c, nb);
    linear_forward(model_gemm(m), tokens, patches, m->p.patch_w, m->p.patch_b, nb * P, cpp, N);
    tokens_forward(x, tokens, &m->p, c, nb);
    if (dropout_on(m)) dropout_apply_at(x, first, (size_t)rows * N, c->dropout, dropout_site_seed(m, 0));
    /* Block 0's LN1 here; every later LayerNorm rides on the residual add before it. */
    layernorm_forward(a0.ln1, a0.ln1_mean, a0.ln1_rstd, x, m->p.blocks[0].norm1_w,
                      m->p.blocks[0].norm1_b, rows, N);
    for (int l = 0; l < c->layers; l++) block_forward(m, l, b0, nb, branch);
    /* With CLS pooling only the CLS rows are normalized (here); with mean
     * pooling every token was, by the last block's residual add. */
    if (c->pool == MF_POOL_CLS) {
        float *fin = A->final_in + (size_t)b0 * N;
        cls_rows_copy(fin, A->layers[c->layers].x + first, nb, T, N);
        layernorm_forward(pooled, A->final_mean + b0, A->final_rstd + b0, fin, m->p.norm_w,
                          m->p.norm_b, nb, N);
    } else {
        mean_pool_forward(pooled, A->final_out + first, nb, T, N);
    }
    linear_forward(model_gemm(m), A->logits + (size_t)b0 * K, pooled, m->p.head_w, m->p.head_b, nb, N, K);
}

float mf_model_forward(mf_model *m, const float *images, const int *labels, int B)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    const mf_qk_variant *qk = qk_variant((int)c->qk);
    int K = c->classes, T = mf_config_tokens(c);
    mf_attn_dims d = {B, T, c->dim, c->heads, T, model_gemm(m), model_attn_gemm(m)};
    A->batch = B;
    A->mode = m->mode;
    /* Once per pass, before the threads split the images (W from qk_tril). */
    if (qk->prepare)
        for (int l = 0; l < c->layers; l++) qk->prepare(&A->layers[l], &m->p.blocks[l], &d);
    double t0 = mf_prof_begin();
    /* This process's images [lo, hi): all of them without a split. An image's
     * values do not depend on which chunk or thread ran it. */
    const mf_model_split *sp = A->split;
    int lo = 0, hi = B, c0, c1;
    if (sp) model_split_range(c, B, m->precision, sp->part, sp->parts, &c0, &c1, &lo, &hi);
#pragma omp parallel if (hi - lo > 1)
    {
        int b0, b1, step = chunk_images(c);
        my_images(hi - lo, &b0, &b1);
        /* Every chunk of this thread takes its branch rows from those of
         * its first images: no chunk is longer than the thread's share, and
         * rows written and read again at once stay in cache instead of a
         * fresh (and soon evicted) stretch of the batch's per chunk. */
        float *branch = A->branch + (size_t)(lo + b0) * T * c->dim;
        for (int b = lo + b0; b < lo + b1; b += step)
            forward_chunk(m, images, b, lo + b1 - b < step ? lo + b1 - b : step, branch);
    }
    mf_prof_region(t0);
    if (sp) {
        /* Every part's logits to every part: the loss, its gradient and the
         * predictions then cover the whole batch everywhere. */
        for (int p = 0; p < sp->parts; p++) {
            int b0, b1;
            model_split_range(c, B, m->precision, p, sp->parts, &c0, &c1, &b0, &b1);
            sp->counts[p] = (b1 - b0) * K;
            sp->displs[p] = b0 * K;
        }
        sp->gather(A->logits, sp->counts, sp->displs);
    }
    A->loss = 0.0f;
    if (labels) {
        memcpy(A->labels, labels, (size_t)B * sizeof(int));
        /* The loss reads the logit of each label: one that is not a class of
         * the model would be read past its row. mf_train and mf_evaluate
         * refuse such data up front; here it makes the loss NaN. */
        int bad = 0;
        for (int b = 0; b < B; b++) bad |= labels[b] < 0 || labels[b] >= K;
        if (bad) A->loss = NAN;
        else A->loss = cross_entropy_forward(A->probs, A->logits, labels, B, K);
    }
    return A->loss;
}
