/* The activations arena: every buffer forward keeps for backward and the
 * gradient scratch, carved out of one allocation per batch capacity; and the
 * slicing of the batch between threads and chunks. */
#include <string.h>

#include "model/param_table.h"
#include "model/split.h"
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    float *base;
    size_t used;
} arena;

static float *take(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15; /* keep every buffer 64-byte aligned */
    float *p = a->base ? a->base + a->used : NULL;
    a->used += n;
    return p;
}

size_t activations_carve(mf_activations *acts, float *base, const mf_config *c, int B,
                         size_t gpart_stride)
{
    arena arena_ = {base, 0}, *ar = &arena_;
    size_t T = (size_t)mf_config_tokens(c), P = (size_t)mf_config_patches(c), N = (size_t)c->dim;
    size_t H = (size_t)c->heads, F = (size_t)c->mlp_ratio * N, K = (size_t)c->classes;
    size_t M = (size_t)B * T, cpp = (size_t)c->channels * c->patch * c->patch;
    unsigned need = qk_variant((int)c->qk)->acts | vo_variant((int)c->vo)->acts;
    acts->patches = take(ar, (size_t)B * P * cpp);
    acts->tokens = take(ar, (size_t)B * P * N);
    for (int l = 0; l <= c->layers; l++) {
        mf_layer_acts scratch, *la = acts->layers ? &acts->layers[l] : &scratch;
        memset(la, 0, sizeof *la);
        la->x = take(ar, M * N);
        if (l == c->layers) break;
        la->ln1 = take(ar, M * N);
        la->ln1_mean = take(ar, M);
        la->ln1_rstd = take(ar, M);
        la->q = take(ar, M * N);
        if (need & ACTS_KEYS) la->k = take(ar, M * N);
        if (need & ACTS_FULL_WEIGHT) la->w_full = take(ar, N * N);
        la->att = take(ar, (size_t)B * H * T * T);
        if (need & ACTS_VALUES) la->v = take(ar, M * N);
        la->mix = take(ar, M * N);
        if (F) {
            la->x_mid = take(ar, M * N);
            la->ln2 = take(ar, M * N);
            la->ln2_mean = take(ar, M);
            la->ln2_rstd = take(ar, M);
            la->gelu_slope = take(ar, M * F);
            la->gelu = take(ar, M * F);
            la->gelu16 = (uint16_t *)la->gelu;
        }
    }
    acts->branch = take(ar, M * N);
    acts->final_in = take(ar, (size_t)B * N);
    acts->final_out = take(ar, M * N);
    acts->final_mean = take(ar, M);
    acts->final_rstd = take(ar, M);
    acts->pooled = take(ar, (size_t)B * N);
    acts->logits = take(ar, (size_t)B * K);
    acts->probs = take(ar, (size_t)B * K);
    mf_grad_scratch *g = &acts->g;
    g->dh = take(ar, M * N);
    g->dq = take(ar, M * N);
    g->dk = take(ar, M * N);
    g->dv = take(ar, M * N);
    g->dmix = take(ar, M * N);
    g->datt = take(ar, (size_t)B * H * T * T);
    g->dw_full = take(ar, N * N);
    g->dln2 = F ? take(ar, M * N) : NULL;
    g->dfc1 = F ? take(ar, M * F) : NULL;
    acts->dx = take(ar, M * N);
    acts->dattn = take(ar, M * N);
    acts->dmask_mlp = c->dropout > 0.0f ? take(ar, M * N) : NULL;
    acts->dmask_attn = c->dropout > 0.0f ? take(ar, M * N) : NULL;
    acts->dfinal = take(ar, M * N);
    acts->dpooled = take(ar, (size_t)B * N);
    acts->dlogits = take(ar, (size_t)B * K);
    acts->gpart_stride = gpart_stride;
    acts->gpart = take(ar, (size_t)backward_chunks_most(c, B) * gpart_stride);
    size_t outer = activations_gouter_stride(c);
    acts->gouter_stride = outer;
    acts->gouter = take(ar, (size_t)backward_chunks_most(c, B) * outer);
    acts->gsum = take(ar, gpart_stride > outer ? gpart_stride : outer);
    acts->gpre = take(ar, gpart_stride);
    return ar->used;
}

/* What one chunk's slice of gpart holds: the block's gradients (numel
 * floats), then dL/dW (N,N) for the symmetric and Cholesky forms. */
size_t block_grad_floats(const mf_config *c, size_t numel)
{
    unsigned need = qk_variant((int)c->qk)->acts | vo_variant((int)c->vo)->acts;
    return numel + (need & ACTS_FULL_WEIGHT ? (size_t)c->dim * c->dim : 0);
}

size_t activations_gpart_stride(const mf_config *c)
{
    return (block_grad_floats(c, param_block_floats(c)) + 15) & ~(size_t)15; /* 64-byte slices */
}

size_t activations_gouter_stride(const mf_config *c)
{
    int count;
    size_t all = param_layout(c, NULL, &count);
    return (all - (size_t)c->layers * param_block_floats(c) + 15) & ~(size_t)15;
}

void free_activations(mf_activations *a)
{
    if (!a) return;
    mf_free(a->memory);
    mf_free(a->layers);
    mf_free(a->labels);
    mf_free(a->kept);
    mf_free(a);
}

mf_status mf_model_reserve(mf_model *m, int B, mf_error *err)
{
    if (B <= 0) return mf_fail(err, MF_ERR_CONFIG, "batch size must be positive");
    if (m->acts && m->acts->capacity >= B) return MF_OK;
    const mf_model_split *split = m->acts ? m->acts->split : NULL; /* kept */
    free_activations(m->acts);
    m->acts = NULL;
    m->batch_capacity = 0;
    mf_memory_estimate need;
    mf_status st = mf_model_memory_estimate(&m->cfg, B, &need, err);
    if (!st) st = memory_check(&need, need.parameters, B, err); /* the parameters are in memory */
    if (st) return st;
    mf_activations *a = model_alloc(sizeof *a);
    if (!a) return mf_fail(err, MF_ERR_NOMEM, "out of memory for activations");
    memset(a, 0, sizeof *a);
    a->layers = model_alloc((size_t)(m->cfg.layers + 1) * sizeof *a->layers);
    a->labels = model_alloc((size_t)B * sizeof(int));
    a->kept = model_alloc((size_t)backward_chunks_most(&m->cfg, B));
    size_t stride = activations_gpart_stride(&m->cfg), floats = 0;
    if (a->layers) floats = activations_carve(a, NULL, &m->cfg, B, stride);
    a->memory = a->layers ? model_alloc(floats * sizeof(float)) : NULL;
    if (!a->memory || !a->labels || !a->kept) {
        free_activations(a);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for activations of batch %d (%zu MiB)", B,
                       floats * sizeof(float) >> 20);
    }
    activations_carve(a, a->memory, &m->cfg, B, stride);
    a->block_numel = param_block_floats(&m->cfg);
    a->block0 = param_block0(&m->cfg);
    a->capacity = B;
    a->split = split;
    m->acts = a;
    m->batch_capacity = B;
    return MF_OK;
}

/* ---- threads and slices of the batch ------------------------------------ */

/* The forward pass and the input-gradient half of the backward pass touch
 * only the rows of their own images, so each thread runs its share of the
 * images through whole blocks with no barrier between ops: one parallel
 * region for the forward pass, one per block for the backward pass (whose
 * parameter gradients are summed per fixed chunk of images, then over the
 * chunks in order: backward_chunks). Every element is computed by the same
 * operations in the same order whatever the share (mf_gemm's contract: an
 * element depends only on its row, its column and K), so results do not
 * depend on the thread count.
 * A share goes through in chunks of about CHUNK_ROWS token rows: the chunk's
 * activations stay in cache from one op to the next, and the products stay
 * tall enough for the GEMM (measured on MNIST and CIFAR-10, one thread: 768
 * rows took 8-10% less CPU time per step than 256 and 128, as much as 1024). */
#ifndef CHUNK_ROWS
#define CHUNK_ROWS 768
#endif

int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int thread_count(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* This thread's images [*b0, *b1) of B. */
void my_images(int B, int *b0, int *b1)
{
    int t = thread_id(), n = thread_count();
    *b0 = (int)((long)B * t / n);
    *b1 = (int)((long)B * (t + 1) / n);
}

int chunk_images(const mf_config *c)
{
    int per = CHUNK_ROWS / mf_config_tokens(c);
    return per > 0 ? per : 1;
}

/* Backward cuts the batch into chunks that depend on the configuration,
 * B and the precision alone, never on the thread count or on how many
 * processes share the batch (split.h): each chunk's parameter gradients are
 * summed on their own and the chunks' sums added in order, so every thread
 * count and process count gives the same bits. At least MIN_CHUNKS of them
 * in fp32 (one per image in smaller batches), so that 64 threads or
 * processes each have one at the default batch of 128; more where chunks of
 * CHUNK_ROWS token rows would be more. An even count, so two threads get
 * the same number of images. Chunk i holds images [i B / n, (i + 1) B / n).
 * bf16 takes at least MIN_CHUNKS_BF16: its products pack every operand into
 * tiles of 16 rows and 32 k, so a chunk of 68 MNIST rows packs as much as it
 * multiplies and pads dW's k from 68 to 96, while at 16 chunks (272 rows)
 * bf16 trained 12-14% faster (MNIST `unchanged`, one thread;
 * docs/PERFORMANCE.md); the price is that backward uses at most 16 threads
 * or processes at the default batch. Never more chunks than fp32's count,
 * which sizes the buffers. */
#ifndef MIN_CHUNKS
#define MIN_CHUNKS 64
#endif
#ifndef MIN_CHUNKS_BF16
#define MIN_CHUNKS_BF16 16
#endif
int backward_chunks(const mf_config *c, int B, mf_precision precision)
{
    int per = chunk_images(c), n = (B + per - 1) / per;
    int least = precision == MF_PRECISION_BF16 ? MIN_CHUNKS_BF16 : MIN_CHUNKS;
    if (n < least) n = least;
    if (n > 1 && n % 2) n++;
    return n < B ? n : B;
}

int backward_chunks_most(const mf_config *c, int B) { return backward_chunks(c, B, MF_PRECISION_FP32); }

void model_split_range(const mf_config *c, int B, mf_precision precision, int part, int parts, int *c0,
                       int *c1, int *b0, int *b1)
{
    int chunks = backward_chunks(c, B, precision);
    *c0 = (int)((long)chunks * part / parts);
    *c1 = (int)((long)chunks * (part + 1) / parts);
    *b0 = (int)((long)B * *c0 / chunks);
    *b1 = (int)((long)B * *c1 / chunks);
}

int model_split_max_parts(const mf_config *c, int B, mf_precision precision)
{
    return backward_chunks(c, B, precision);
}

void model_set_split(mf_model *m, const mf_model_split *split)
{
    if (m->acts) m->acts->split = split;
}

/* The activations of images b0.. of one layer: every row or tile pointer
 * moved to image b0; w_full (one matrix for all images) unchanged. */
mf_layer_acts layer_slice(const mf_layer_acts *a, const mf_config *c, int b0)
{
    size_t T = (size_t)mf_config_tokens(c), N = (size_t)c->dim, F = (size_t)c->mlp_ratio * N;
    size_t r = (size_t)b0 * T, tiles = (size_t)b0 * c->heads * T * T;
    mf_layer_acts v = *a;
#define SHIFT(field, by) v.field = v.field ? v.field + (by) : NULL
    SHIFT(x, r * N);
    SHIFT(ln1, r * N);
    SHIFT(ln1_mean, r);
    SHIFT(ln1_rstd, r);
    SHIFT(q, r * N);
    SHIFT(k, r * N);
    SHIFT(att, tiles);
    SHIFT(v, r * N);
    SHIFT(mix, r * N);
    SHIFT(x_mid, r * N);
    SHIFT(ln2, r * N);
    SHIFT(ln2_mean, r);
    SHIFT(ln2_rstd, r);
    SHIFT(gelu_slope, r * F);
    SHIFT(gelu, r * F);
    SHIFT(gelu16, r * F); /* bf16 elements */
    return v;
}

mf_grad_scratch scratch_slice(const mf_grad_scratch *s, const mf_config *c, int b0)
{
    size_t T = (size_t)mf_config_tokens(c), N = (size_t)c->dim, F = (size_t)c->mlp_ratio * N;
    size_t r = (size_t)b0 * T, tiles = (size_t)b0 * c->heads * T * T;
    mf_grad_scratch v = *s;
    SHIFT(dh, r * N);
    SHIFT(dq, r * N);
    SHIFT(dk, r * N);
    SHIFT(dv, r * N);
    SHIFT(dmix, r * N);
    SHIFT(datt, tiles);
    SHIFT(dln2, r * N);
    SHIFT(dfc1, r * F);
#undef SHIFT
    return v;
}
