/* Private state of the model: the activations forward keeps for backward, the
 * gradient scratch, and the per-variant attention functions. Shapes use
 * B images, T tokens per image (T+1 with CLS), M = B*T rows, N width,
 * H heads, F = rN MLP width. */
#ifndef MF_MODEL_INTERNAL_H
#define MF_MODEL_INTERNAL_H

#include "minformer/model.h"

/* Q: query rows per image, T, or 1 when only the CLS row's output is
 * needed (the last block with CLS pooling): then queries, scores, mixing
 * and the output matrix cover row 0 of each image, keys and values all T. */
typedef struct {
    int B, T, N, H, Q;
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
                                          * GELU' there (unless forward_only); GELU(fc1's output) */
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
};

/* The functions of each query/key variant. forward fills a->q (and a->k) and
 * a->att from a->ln1. backward turns s->datt (dL/dA) into dL/dS, fills the
 * gradients of q (and k) and adds dL/dh into s->dh. Both work on the images
 * of d only, so a, s and d may describe a slice of the batch (a thread's
 * share): they touch nothing shared. backward_params then adds the
 * parameter gradients of those images into g, summed in a fixed order (the
 * model sums the slices' gradients in slice order). The symmetric and
 * Cholesky forms also build W from qk_tril once per forward (prepare) and
 * map dL/dW back to qk_tril once per backward (params_finish). */
void attention_qk_separate_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_separate_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                    const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_separate_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                           const mf_layer_acts *a, const mf_attn_dims *d);
void attention_qk_shared_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_shared_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                  const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_shared_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                         const mf_layer_acts *a, const mf_attn_dims *d);
void attention_qk_collapsed_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_collapsed_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                     const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_collapsed_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                            const mf_layer_acts *a, const mf_attn_dims *d);
void attention_qk_symmetric_prepare(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_symmetric_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_symmetric_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                     const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_symmetric_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                            const mf_layer_acts *a, const mf_attn_dims *d);
void attention_qk_symmetric_params_finish(mf_block_params *g, const mf_grad_scratch *s,
                                          const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_cholesky_prepare(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_cholesky_forward(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_cholesky_backward(mf_grad_scratch *s, const mf_layer_acts *a,
                                    const mf_block_params *p, const mf_attn_dims *d);
void attention_qk_cholesky_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                           const mf_layer_acts *a, const mf_attn_dims *d);
void attention_qk_cholesky_params_finish(mf_block_params *g, const mf_grad_scratch *s,
                                         const mf_block_params *p, const mf_attn_dims *d);

/* The functions of each value/output variant: forward writes the branch
 * output out (M,N) from a->att and a->ln1; backward takes dout, writes dL/dA
 * into s->datt and adds dL/dh into s->dh; both on the images of d, as above.
 * backward_params adds the parameter gradients of those images into g, from
 * the same dout. */
void attention_vo_separate_forward(float *out, mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_vo_separate_backward(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                                    const mf_block_params *p, const mf_attn_dims *d);
void attention_vo_separate_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                           const float *dout, const mf_layer_acts *a,
                                           const mf_attn_dims *d);
void attention_vo_collapsed_forward(float *out, mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_vo_collapsed_backward(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                                     const mf_block_params *p, const mf_attn_dims *d);
void attention_vo_collapsed_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                            const float *dout, const mf_layer_acts *a,
                                            const mf_attn_dims *d);
void attention_vo_none_forward(float *out, mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
void attention_vo_none_backward(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                                const mf_block_params *p, const mf_attn_dims *d);

#endif
