/* The backward pass: the head and final LayerNorm, then each block as a
 * short sequence of ops in reverse, then the embedding. The batch is cut
 * into fixed chunks of images (backward_chunks); every parameter gradient
 * of a chunk is computed on its own (gpart for the block being run, gouter
 * for the tensors outside the blocks) and the chunks' gradients are summed
 * in an order fixed by the chunk count alone (a block's in groups of
 * chunks, the others' in chunk order), so the bits depend neither on the
 * thread count nor on how many processes share the batch (split.h: the
 * sums continue from one process to the next). */
#include <string.h>

#include "model/param_table.h"
#include "model/split.h"
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
 * right after the input gradients they need, while those are in cache.
 * The gradient scratch (A->g: nothing of it outlives the chunk) is taken
 * at image scratch_b0's rows. */
static void block_backward_chunk(mf_model *m, int l, const block_grads *bg, int b0, int nb,
                                 int scratch_b0, float *slice)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c), F = c->mlp_ratio * N, rows = nb * T;
    size_t first = (size_t)b0 * T * N, n = (size_t)rows * N;
    mf_attn_dims d = {nb, T, N, c->heads, attention_query_rows(m, l), model_gemm(m), model_attn_gemm(m)};
    mf_layer_acts a = layer_slice(&A->layers[l], c, b0);
    mf_grad_scratch s = scratch_slice(&A->g, c, scratch_b0);
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
        mlp_backward(model_gemm(m), s.dln2, s.dfc1, &g, dmlp, a.gelu, a.gelu16, a.gelu_slope, a.ln2, p, rows, N, F);
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

/* ---- chunk-order sums ------------------------------------------------------ */

/* Floats [j0, j1) of the left fold over slices c0 .. c1-1 (stride floats
 * apart from base) into sum: from the previous part's running sum already
 * in sum when `continued`, else from slice c0; then each later slice added
 * in order. Tiles of FOLD_TILE floats keep the reads of each slice
 * sequential and the running sums in L1. */
#define FOLD_TILE 256
static void fold_slices(float *sum, int continued, const float *base, size_t stride, int c0,
                        int c1, size_t j0, size_t j1)
{
    float acc[FOLD_TILE];
    for (size_t t = j0; t < j1; t += FOLD_TILE) {
        size_t n = j1 - t < FOLD_TILE ? j1 - t : FOLD_TILE;
        int ci = c0;
        memcpy(acc, continued ? sum + t : base + (size_t)ci++ * stride + t, n * sizeof(float));
        for (; ci < c1; ci++) {
            const float *s = base + (size_t)ci * stride + t;
            for (size_t j = 0; j < n; j++) acc[j] += s[j];
        }
        memcpy(sum + t, acc, n * sizeof(float));
    }
}

/* This thread's share [*j0, *j1) of total floats, in 16-float units. */
static void float_share(size_t total, size_t *j0, size_t *j1)
{
    size_t units = (total + 15) / 16, part = (size_t)thread_id(), parts = (size_t)thread_count();
    *j0 = units * part / parts * 16;
    *j1 = units * (part + 1) / parts * 16;
    if (*j0 > total) *j0 = total;
    if (*j1 > total) *j1 = total;
}

/* The chunk-order sum over this process's chunks [c0, c1) of their slices
 * (total floats each, stride apart from base) into sum, continuing the
 * previous part's and passed on to the next (split.h). Returns 1 when sum
 * holds the total: in the last part, or without a split. Called outside
 * parallel regions. */
static int chunk_sum(mf_model *m, float *sum, const float *base, size_t stride, size_t total,
                     int c0, int c1)
{
    const mf_model_split *sp = m->acts->split;
    int continued = sp && sp->part > 0;
    double t0 = mf_prof_begin();
    if (continued) sp->recv_prev(sum, total);
#pragma omp parallel if (total >= 4096)
    {
        size_t j0, j1;
        float_share(total, &j0, &j1);
        fold_slices(sum, continued, base, stride, c0, c1, j0, j1);
    }
    int last = !sp || sp->part == sp->parts - 1;
    if (!last) sp->send_next(sum, total);
    mf_prof_end(MF_PROF_THREADS, MF_PROF_BACKWARD, t0);
    return last;
}

/* A block's chunks are summed in groups of FOLD_GROUP consecutive chunks:
 * a group's sum is the left fold of its chunks' slices, the block's the left
 * fold of the groups' sums, in order (fixed by the chunk count alone). The
 * thread that runs a group's first chunk computes it into the group's slot
 * and adds each of its next chunks of the group into that slot right after
 * computing it in a scratch slot, while both are in cache; so a pass
 * touches about two slots per group instead of one per chunk. A chunk whose
 * group began in another thread or process keeps its own slot and joins
 * its group's sum after the barrier, in order. Slots: the group's first
 * chunk's (the group's sum), its second chunk's (the scratch), and each
 * late chunk's own. Measured on 2 threads: with one slot per chunk the 64
 * chunks of a batch of 128 trained MNIST and CIFAR-10 `unchanged` 15-20%
 * slower than the former 4 and 12 chunks; with groups of 8, as fast
 * (docs/SCALING.md). */
#define FOLD_GROUP MODEL_FOLD_GROUP

/* The slot chunk ci's block gradients go into, for a thread whose first
 * chunk is k0; *merged: added into its group's slot right after (1), or the
 * group's slot itself (-1), or kept for after the barrier (0). */
static float *group_slot(float *base, size_t stride, int ci, int k0, int *merged)
{
    int first = ci / FOLD_GROUP * FOLD_GROUP;
    *merged = ci == first ? -1 : first >= k0;
    return base + stride * (size_t)(*merged < 0 ? first : *merged ? first + 1 : ci);
}

/* Floats [j0, j1) of this process's groups over chunks [c0, c1): into S
 * the left fold of the groups that end here (continuing S, the sum of the
 * groups before, when have_S), into P the sum so far of a group that goes
 * on in the next process; a group that began in the previous one starts
 * from its sum so far in P (have_P). kept[ci]: chunk ci waits in its own
 * slot. */
static void group_fold(float *S, float *P, int have_S, int have_P, const float *base, size_t stride,
                       const unsigned char *kept, int chunks, int c0, int c1, size_t j0, size_t j1)
{
    float s[FOLD_TILE], v[FOLD_TILE];
    for (size_t t = j0; t < j1; t += FOLD_TILE) {
        size_t n = j1 - t < FOLD_TILE ? j1 - t : FOLD_TILE;
        int s_set = have_S;
        if (have_S) memcpy(s, S + t, n * sizeof(float));
        for (int g = c0 / FOLD_GROUP; g * FOLD_GROUP < c1; g++) {
            int first = g * FOLD_GROUP, end = first + FOLD_GROUP < chunks ? first + FOLD_GROUP : chunks;
            int hi = end < c1 ? end : c1, ci;
            if (first < c0) { /* begun in the previous process */
                (void)have_P;
                memcpy(v, P + t, n * sizeof(float));
                ci = c0;
            } else {
                memcpy(v, base + (size_t)first * stride + t, n * sizeof(float));
                ci = first + 1;
            }
            for (; ci < hi; ci++)
                if (kept[ci]) {
                    const float *x = base + (size_t)ci * stride + t;
                    for (size_t j = 0; j < n; j++) v[j] += x[j];
                }
            if (hi < end) { /* goes on in the next process */
                memcpy(P + t, v, n * sizeof(float));
            } else if (s_set) {
                for (size_t j = 0; j < n; j++) s[j] += v[j];
            } else {
                memcpy(s, v, n * sizeof(float));
                s_set = 1;
            }
        }
        if (s_set) memcpy(S + t, s, n * sizeof(float));
    }
}

/* Whether the groups' running sums at chunk boundary c exist: S once a
 * group has ended before c, P when c cuts a group. */
static int groups_done_before(int c, int chunks)
{
    return c >= (FOLD_GROUP < chunks ? FOLD_GROUP : chunks);
}

/* The block's grouped sums over this process's chunks [c0, c1) (after
 * their threads): continued from the previous process and passed to the
 * next (split.h). Returns 1 when A->gsum holds the block's total. */
static int block_group_sum(mf_model *m, size_t total, int chunks, int c0, int c1)
{
    mf_activations *A = m->acts;
    const mf_model_split *sp = A->split;
    int first_part = !sp || sp->part == 0, last = !sp || sp->part == sp->parts - 1;
    int have_S = !first_part && groups_done_before(c0, chunks);
    int have_P = !first_part && c0 % FOLD_GROUP != 0;
    double t0 = mf_prof_begin();
    if (have_S) sp->recv_prev(A->gsum, total);
    if (have_P) sp->recv_prev(A->gpre, total);
#pragma omp parallel if (total >= 4096)
    {
        size_t j0, j1;
        float_share(total, &j0, &j1);
        group_fold(A->gsum, A->gpre, have_S, have_P, A->gpart, A->gpart_stride, A->kept, chunks,
                   c0, c1, j0, j1);
    }
    if (!last) {
        if (groups_done_before(c1, chunks)) sp->send_next(A->gsum, total);
        if (c1 % FOLD_GROUP != 0) sp->send_next(A->gpre, total);
    }
    mf_prof_end(MF_PROF_THREADS, MF_PROF_BACKWARD, t0);
    return last;
}

/* Block l's gradients += the summed slices (sum: the block's floats, then
 * dL/dW for variants that build W). */
static void block_sum_finish(mf_model *m, int l, const float *sum)
{
    mf_activations *A = m->acts;
    size_t numel = A->block_numel, total = block_grad_floats(&m->cfg, numel);
    float *g = m->grads + A->block0 + (size_t)l * numel;
    for (size_t j = 0; j < numel; j++) g[j] += sum[j];
    if (total > numel) memcpy(A->g.dw_full, sum + numel, (total - numel) * sizeof(float));
}

/* dL/dW -> dL/dqk_tril, once the whole dw_full is summed. */
static void attention_params_finish(mf_model *m, int l)
{
    const mf_config *c = &m->cfg;
    mf_attn_dims d = {m->acts->batch, mf_config_tokens(c), c->dim, c->heads, mf_config_tokens(c), model_gemm(m), model_attn_gemm(m)};
    const mf_qk_variant *qk = qk_variant((int)c->qk);
    if (qk->params_finish) qk->params_finish(&m->g.blocks[l], &m->acts->g, &m->p.blocks[l], &d);
}

/* ---- the tensors outside the blocks ---------------------------------------- */

/* A chunk's slice of gouter holds the gradients of every tensor outside
 * the blocks, in layout order: those before block 0 (CLS token, positions,
 * patch embedding), then those after the last block (final norm, head). */
static size_t outer_floats(const mf_model *m)
{
    return m->num_params - (size_t)m->cfg.layers * m->acts->block_numel;
}

/* Where gradient view grad (into m->grads, outside the blocks) lies in slice. */
static float *outer_view(const mf_model *m, float *slice, const float *grad)
{
    if (!grad) return NULL;
    size_t at = (size_t)(grad - m->grads), block0 = m->acts->block0;
    size_t end = block0 + (size_t)m->cfg.layers * m->acts->block_numel;
    return slice + (at < block0 ? at : block0 + (at - end));
}

/* The gradients outside the blocks += the summed slices. */
static void outer_sum_finish(mf_model *m, const float *sum)
{
    mf_activations *A = m->acts;
    size_t block0 = A->block0, end = block0 + (size_t)m->cfg.layers * A->block_numel;
    for (size_t j = 0; j < block0; j++) m->grads[j] += sum[j];
    for (size_t j = end; j < m->num_params; j++) m->grads[j] += sum[block0 + (j - end)];
}

/* The head, pooling and final LayerNorm backward for images b0 .. b0+nb-1:
 * their rows of dx (the gradient of the last block's output) from zero,
 * and the head's and final norm's gradients of these images into their
 * views in the chunk's slice of gouter (zeroed here). dlogits is filled. */
static void head_backward_chunk(mf_model *m, float *dx, int b0, int nb, float *outer)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c), K = c->classes, rows = nb * T;
    size_t first = (size_t)b0 * T * N;
    memset(outer, 0, A->gouter_stride * sizeof(float));
    float *head_w = outer_view(m, outer, m->g.head_w), *head_b = outer_view(m, outer, m->g.head_b);
    float *norm_w = outer_view(m, outer, m->g.norm_w), *norm_b = outer_view(m, outer, m->g.norm_b);
    float *dpooled = A->dpooled + (size_t)b0 * N;
    double t0 = mf_prof_begin();
    memset(dpooled, 0, (size_t)nb * N * sizeof(float));
    linear_backward(model_gemm(m), dpooled, head_w, head_b, A->dlogits + (size_t)b0 * K, A->pooled + (size_t)b0 * N,
                    m->p.head_w, nb, N, K, 1);
    memset(dx + first, 0, (size_t)rows * N * sizeof(float));
    mf_prof_end(MF_PROF_HEAD, MF_PROF_BACKWARD, t0);
    t0 = mf_prof_begin();
    if (c->pool == MF_POOL_CLS) {
        /* dfinal holds the (nb,N) gradient of the CLS rows' LayerNorm input. */
        float *dfinal = A->dfinal + (size_t)b0 * N;
        memset(dfinal, 0, (size_t)nb * N * sizeof(float));
        layernorm_backward(dfinal, norm_w, norm_b, dpooled, A->final_in + (size_t)b0 * N,
                           A->final_mean + b0, A->final_rstd + b0, m->p.norm_w, nb, N);
        for (int b = 0; b < nb; b++)
            memcpy(dx + first + (size_t)b * T * N, dfinal + (size_t)b * N, (size_t)N * sizeof(float));
    } else {
        float inv = 1.0f / (float)T, *dfinal = A->dfinal + first;
        for (int b = 0; b < nb; b++)
            for (int t = 0; t < T; t++) {
                float *row = dfinal + ((size_t)b * T + t) * N;
                const float *dp = dpooled + (size_t)b * N;
                for (int i = 0; i < N; i++) row[i] = dp[i] * inv;
            }
        size_t r0 = (size_t)b0 * T;
        layernorm_backward(dx + first, norm_w, norm_b, dfinal, A->layers[c->layers].x + first,
                           A->final_mean + r0, A->final_rstd + r0, m->p.norm_w, rows, N);
    }
    mf_prof_end(MF_PROF_LAYERNORM, MF_PROF_BACKWARD, t0);
}

/* The embedding's gradients of images b0 .. b0+nb-1 from dx, the gradient
 * of block 0's input, into the chunk's slice of gouter: positions and the
 * CLS token summed over the chunk's images in order, the patch embedding
 * over their patches. */
static void embedding_backward_chunk(mf_model *m, float *dx, int b0, int nb, float *outer)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, P = mf_config_patches(c), T = mf_config_tokens(c);
    int cls = c->pool == MF_POOL_CLS, cpp = c->channels * c->patch * c->patch;
    size_t first = (size_t)b0 * T * N, n = (size_t)nb * T * N;
    float *dtok = A->tokens + (size_t)b0 * P * N; /* reuse: (nb*P, N) gradient of the patch embeddings */
    double t0 = mf_prof_begin();
    if (dropout_on(m)) dropout_apply_at(dx + first, first, n, c->dropout, dropout_site_seed(m, 0));
    float *dpos = outer_view(m, outer, m->g.pos_embed), *dcls = outer_view(m, outer, m->g.cls_token);
    for (int b = 0; b < nb; b++) {
        const float *img = dx + first + (size_t)b * T * N;
        memcpy(dtok + (size_t)b * P * N, img + (size_t)cls * N, (size_t)P * N * sizeof(float));
        for (size_t i = 0; i < (size_t)T * N; i++) dpos[i] += img[i];
        if (cls)
            for (int i = 0; i < N; i++) dcls[i] += img[i];
    }
    linear_backward_params(model_gemm(m), outer_view(m, outer, m->g.patch_w), outer_view(m, outer, m->g.patch_b),
                           dtok, A->patches + (size_t)b0 * P * cpp, nb * P, cpp, N);
    mf_prof_end(MF_PROF_PATCH_EMBED, MF_PROF_BACKWARD, t0);
}

/* This process's chunks [*c0, *c1) of the batch's `chunks`. */
static void my_chunks(const mf_model *m, int *c0, int *c1)
{
    int b0, b1;
    const mf_model_split *sp = m->acts->split;
    model_split_range(&m->cfg, m->acts->batch, m->precision, sp ? sp->part : 0, sp ? sp->parts : 1, c0, c1, &b0,
                      &b1);
}

/* The images of chunk ci of `chunks` in a batch of B: [*b0, *b1). */
static void chunk_range(int B, int chunks, int ci, int *b0, int *b1)
{
    *b0 = (int)((long)B * ci / chunks);
    *b1 = (int)((long)B * (ci + 1) / chunks);
}

/* Block l backward over this process's chunks, across the threads (the
 * last block first runs each chunk through the head), then the chunks'
 * slices summed, then what the variant does once per pass. */
static void block_backward(mf_model *m, int l, const block_grads *bg)
{
    mf_activations *A = m->acts;
    int B = A->batch, chunks = backward_chunks(&m->cfg, B, m->precision), c0, c1;
    int head = l == m->cfg.layers - 1;
    my_chunks(m, &c0, &c1);
    double t0 = mf_prof_begin();
#pragma omp parallel if (c1 - c0 > 1)
    {
        int k0, k1;
        mf_share(c1 - c0, 1, thread_id(), thread_count(), &k0, &k1);
        size_t total = block_grad_floats(&m->cfg, A->block_numel);
        /* Every chunk of this thread uses the gradient scratch rows of its
         * first chunk's images, so that they stay in cache from one chunk
         * to the next (the scratch is M rows, one stretch per chunk, and
         * per chunk a fresh stretch missed the cache for every op). A
         * thread's chunks are consecutive and differ by at most one image,
         * so the rows taken never pass the end of its own chunks. */
        int first_b0, first_b1;
        chunk_range(B, chunks, c0 + k0, &first_b0, &first_b1);
        for (int ci = c0 + k0; ci < c0 + k1; ci++) {
            int b0, b1, merged;
            chunk_range(B, chunks, ci, &b0, &b1);
            if (head) head_backward_chunk(m, bg->in, b0, b1 - b0, A->gouter + (size_t)ci * A->gouter_stride);
            float *slot = group_slot(A->gpart, A->gpart_stride, ci, c0 + k0, &merged);
            block_backward_chunk(m, l, bg, b0, b1 - b0, first_b0, slot);
            A->kept[ci] = merged == 0;
            if (merged > 0) {
                float *sum = slot - A->gpart_stride; /* the group's slot, just before */
                for (size_t j = 0; j < total; j++) sum[j] += slot[j];
            }
        }
    }
    mf_prof_region(t0);
    size_t total = block_grad_floats(&m->cfg, A->block_numel);
    if (block_group_sum(m, total, chunks, c0, c1)) {
        block_sum_finish(m, l, A->gsum);
        attention_params_finish(m, l);
    }
}

/* The embedding backward over this process's chunks, then the sums of every
 * tensor outside the blocks. */
static void embedding_backward(mf_model *m, float *dx)
{
    mf_activations *A = m->acts;
    int B = A->batch, chunks = backward_chunks(&m->cfg, B, m->precision), c0, c1;
    my_chunks(m, &c0, &c1);
    double t0 = mf_prof_begin();
#pragma omp parallel if (c1 - c0 > 1)
    {
        int k0, k1;
        mf_share(c1 - c0, 1, thread_id(), thread_count(), &k0, &k1);
        for (int ci = c0 + k0; ci < c0 + k1; ci++) {
            int b0, b1;
            chunk_range(B, chunks, ci, &b0, &b1);
            embedding_backward_chunk(m, dx, b0, b1 - b0, A->gouter + (size_t)ci * A->gouter_stride);
        }
    }
    mf_prof_region(t0);
    if (chunk_sum(m, A->gsum, A->gouter, A->gouter_stride, outer_floats(m), c0, c1))
        outer_sum_finish(m, A->gsum);
}

void mf_model_backward(mf_model *m)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int F = c->mlp_ratio * c->dim;
    float *rotation[3] = {A->dx, A->branch, A->dattn};
    int cur = 0; /* rotation[cur]: the gradient of the current block's output */
    /* dL/dlogits of every image (each part has every image's probabilities) */
    cross_entropy_backward(A->dlogits, A->probs, A->labels, A->batch, c->classes);
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
    embedding_backward(m, rotation[cur]);
    /* The last part holds every gradient; the others get them. */
    const mf_model_split *sp = A->split;
    if (sp) sp->broadcast_last(m->grads, m->num_params);
}
