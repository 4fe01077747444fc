/* Private state of the model: the activations forward keeps for backward, the
 * gradient scratch, and what the model's files share. Shapes use B images,
 * T tokens per image (T+1 with CLS), M = B*T rows, N width, H heads, F = rN
 * MLP width. */
#ifndef MF_MODEL_INTERNAL_H
#define MF_MODEL_INTERNAL_H

#include "minformer/model.h"
#include "kernels/gemm.h"

/* Q: query rows per image, T, or 1 when only the CLS row's output is
 * needed (the last block with CLS pooling): then queries, scores, mixing
 * and the output matrix cover row 0 of each image, keys and values all T. */
typedef struct {
    int B, T, N, H, Q;
    mf_gemm_kind gemm; /* the linear layers' products (mf_model_set_precision) */
    mf_gemm_kind attn; /* the per-image products of scores and mixing (model_attn_gemm) */
} mf_attn_dims;

/* What one block keeps from forward for backward. */
typedef struct {
    float *x;                            /* (M,N) block input, the residual stream */
    float *ln1, *ln1_mean, *ln1_rstd;    /* (M,N), (M), (M): h = LN1(x) */
    float *q;                            /* (M,N) queries, or u = h Wqk^T + b (collapsed), or u = h W (symmetric, cholesky) */
    float *k;                            /* (M,N) keys; separate only */
    float *w_full;                       /* (N,N) W built from qk_tril; symmetric, cholesky */
    float *att;                          /* (B,H,T,T) softmax weights */
    float *v;                            /* (M,N) values; vo separate only */
    float *mix;                          /* (M,N) concat_h A_h v_h, or A h: before the output matrix */
    float *x_mid;                        /* (M,N) after the attention residual; with an MLP */
    float *ln2, *ln2_mean, *ln2_rstd;    /* (M,N), (M), (M) */
    float *gelu_slope, *gelu;            /* (M,F): fc1's output, which forward turns into
                                          * GELU' there (unless MF_MODE_FORWARD_ONLY); GELU(fc1's output) */
    uint16_t *gelu16;                    /* (M,F) bf16 in the first half of gelu's memory: GELU
                                          * rounded to bf16, held instead of gelu in bf16 */
} mf_layer_acts;

/* Gradient scratch reused by every block in backward. */
typedef struct {
    float *dh;     /* (M,N) gradient of LN1's output h */
    float *dq, *dk, *dv, *dmix; /* (M,N) */
    float *datt;   /* (B,H,T,T) in: dL/dA from the value path; becomes dL/dS */
    float *dw_full;/* (N,N) dL/dW for symmetric, cholesky */
    float *dln2;   /* (M,N) */
    float *dfc1;   /* (M,F) */
} mf_grad_scratch;

struct mf_activations {
    int capacity;          /* images */
    float *memory;         /* one allocation behind every pointer below */
    float *patches;        /* (B*P, C*p*p) patch pixels, patch-major */
    float *tokens;         /* (B*P, N) patch embeddings before cls/pos */
    mf_layer_acts *layers; /* L, plus layers[L].x = the final residual stream */
    float *branch;         /* (M,N) output of the current attention or MLP branch; in
                            * backward, one of the three rotating gradients (dx, dattn) */
    float *final_in;       /* (B,N) CLS rows (cls pooling) */
    float *final_out;      /* (M,N) or (B,N): final LayerNorm output */
    float *final_mean, *final_rstd; /* (M) */
    float *pooled;         /* (B,N) */
    float *logits, *probs; /* (B,classes) */
    int *labels;           /* (B) */
    int batch;             /* B of the last forward */
    unsigned mode;         /* the mode of the last forward (MF_MODE_*), which backward follows */
    float loss;
    mf_grad_scratch g;
    float *dx;             /* (M,N) gradient of the residual stream */
    float *dattn;          /* (M,N) the third rotating residual-stream gradient */
    float *dmask_mlp, *dmask_attn; /* (M,N) masked branch gradients; with dropout only */
    float *dfinal;         /* (M,N) */
    float *dpooled;        /* (B,N) */
    float *dlogits;        /* (B,classes) */
    /* Backward sums each block's parameter gradients per chunk of images
     * (backward_chunks of them) into its own slice of gpart, gpart_stride
     * floats each: the block's gradients in their layout, then dL/dW (N,N)
     * for the symmetric and Cholesky forms; the slices are then added up in
     * chunk order. */
    float *gpart;
    size_t gpart_stride;
    size_t block_numel, block0; /* one block's parameter floats; where block 0's begin */
    /* Likewise each chunk's gradients of the tensors outside the blocks (CLS
     * token, positions, patch embedding, final norm, head), gouter_stride
     * floats per chunk, and the running sum of either kind of slice, which
     * a process receives from the previous one and passes on (split.h). */
    float *gouter, *gsum, *gpre; /* gpre: a block's group sum cut by a process boundary */
    size_t gouter_stride;
    unsigned char *kept; /* per chunk: its block gradients wait in its own slot (backward.c) */
    /* This process's part of each batch, or NULL for all of it (split.h). */
    const struct mf_model_split *split;
};

/* The kind of matrix product the model's linear layers use. */
static inline mf_gemm_kind model_gemm(const mf_model *m)
{
    return m->precision == MF_PRECISION_BF16 ? MF_GEMM_BF16 : MF_GEMM_FP32;
}

/* The kind of the attention's per-image products (scores, mixing and their
 * gradients, over tiles of T tokens): bf16 with bf16 linear layers when T >
 * 32, else fp32. With operands in cache bf16 ran these products 1.6-2.3x
 * faster at T = 65, 1.2-2.0x at 33 and 49, while at T = 17 three of the four
 * ran 0.81-0.93x as fast (tools/bench_gemm); in the CIFAR-10 model (T = 65)
 * the step took as long either way (docs/PERFORMANCE.md, "bf16"). */
#define MODEL_BF16_ATTN_MIN_T 33
static inline mf_gemm_kind model_attn_gemm(const mf_model *m)
{
    return m->precision == MF_PRECISION_BF16 && mf_config_tokens(&m->cfg) >= MODEL_BF16_ATTN_MIN_T
               ? MF_GEMM_BF16 : MF_GEMM_FP32;
}

/* ---- allocation (model.c) ----------------------------------------------- */

/* mf_alloc for every buffer of a model; model_alloc_fail_after(n) makes the
 * n-th call from now fail (a test hook; 0 turns it off). */
void *model_alloc(size_t bytes);
void model_alloc_fail_after(long n);

/* ---- memory (memory.c) ---------------------------------------------------- */

/* MF_ERR_NOMEM with the figures when need does not fit in what is available;
 * resident bytes of it are in memory already. */
mf_status memory_check(const mf_memory_estimate *need, uint64_t resident, int B, mf_error *err);

/* ---- the activations arena and the batch's slices (activations.c) -------- */

/* Points every buffer of acts (and of acts->layers, unless NULL) for B
 * images into base, which may be NULL to measure; returns the floats used. */
size_t activations_carve(mf_activations *acts, float *base, const mf_config *c, int B,
                         size_t gpart_stride);
/* Floats of one chunk's slice of gpart: the block's gradients, then dL/dW
 * (N,N) for variants that build W (ACTS_FULL_WEIGHT); 64-byte aligned. */
size_t activations_gpart_stride(const mf_config *c);
/* Floats of one chunk's slice of gouter: every tensor outside the blocks. */
size_t activations_gouter_stride(const mf_config *c);
size_t block_grad_floats(const mf_config *c, size_t numel);
void free_activations(mf_activations *a);
int thread_id(void);
int thread_count(void);
/* This thread's images [*b0, *b1) of B. */
void my_images(int B, int *b0, int *b1);
/* Images per forward chunk; the backward chunks of a batch of B at a
 * precision, and the most of any precision (what the buffers hold). */
int chunk_images(const mf_config *c);
int backward_chunks(const mf_config *c, int B, mf_precision precision);
int backward_chunks_most(const mf_config *c, int B);
/* Views moved to image b0: every row or tile pointer (w_full unchanged). */
mf_layer_acts layer_slice(const mf_layer_acts *a, const mf_config *c, int b0);
mf_grad_scratch scratch_slice(const mf_grad_scratch *s, const mf_config *c, int b0);

/* ---- shared by forward.c, backward.c and block_cls.c ---------------------- */

/* Dropout sites: 0 the embeddings, 1 + 2l block l's attention branch, 2 + 2l
 * its MLP branch; a mask derives from (step seed, site, element). */
static inline int site_attn(int l) { return 1 + 2 * l; }
static inline int site_mlp(int l) { return 2 + 2 * l; }
uint64_t dropout_site_seed(const mf_model *m, int site);
int dropout_on(const mf_model *m);

/* Where the LayerNorm that follows a residual add writes: LN2 of the same
 * block, LN1 of the next, the final norm (mean pooling), or nowhere (all
 * NULL). */
typedef struct {
    float *y, *mean, *rstd;
    const float *w, *b;
} norm_target;

/* x_out = x + drop(branch + bias), then the LayerNorm nt, over rows rows
 * whose first element is element `first` of the (M,N) tensor. */
void residual_forward(const mf_model *m, float *x_out, const float *x, float *branch,
                      const float *bias, int site, const norm_target *nt, int rows, size_t first);

/* The MLP branch (mlp.c): out (rows,N) = fc2(GELU(fc1(h))) without fc2's
 * bias (the residual add after adds it); pre (rows,F) holds fc1's output and
 * then, when keep_slope, GELU' there for backward; gelu (rows,F) GELU of it,
 * or with bf16 products gelu16, the same rounded to bf16: fc2's product and
 * its weight gradient would round gelu so anyway, and half the bytes go
 * to memory and back (the step is bound by them: docs/PERFORMANCE.md).
 * mlp_backward from dout: dh (rows,N) = dL/dh, dpre (rows,F) scratch, and
 * the parameter gradients into g. */
void mlp_forward(mf_gemm_kind kind, float *out, float *gelu, uint16_t *gelu16, float *pre, const float *h,
                 const mf_block_params *p, int rows, int N, int F, int keep_slope);
void mlp_backward(mf_gemm_kind kind, float *dh, float *dpre, const mf_block_params *g, const float *dout,
                  const float *gelu, const uint16_t *gelu16, const float *slope, const float *h,
                  const mf_block_params *p, int rows, int N, int F);

/* ---- the last block's CLS rows (block_cls.c) ------------------------------ */

/* With CLS pooling the head reads only the CLS rows of the last block's
 * output: is block l that block. */
int cls_rows_only(const mf_config *c, int l);
/* Query rows per image of block l's attention (mf_attn_dims.Q). */
int attention_query_rows(const mf_model *m, int l);
/* Forward from the attention branch of the last block to its output's CLS
 * rows, for images b0 .. b0+nb-1; branch holds the attention branch (all
 * rows of those images). */
void cls_block_forward(mf_model *m, int l, int b0, int nb, float *branch);
/* The MLP part of cls_block_forward backward: in and mid are the rows of
 * images b0.. of the gradients of the block's output and of x_mid. */
void cls_mlp_backward(mf_model *m, int l, int b0, int nb, const float *in, float *mid,
                      const mf_block_params *g, const mf_grad_scratch *s);

#endif
