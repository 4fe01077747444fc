/* Private state of the model: the activations forward keeps for backward, the
 * gradient scratch. Shapes use
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

#endif
