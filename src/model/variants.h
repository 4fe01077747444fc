/* The attention variants as data. A query/key entry and a value/output entry
 * each hold the variant's CLI name, its tensors (names, shapes as rules of the
 * configuration, weight decay, initialization, the mf_block_params view each
 * one backs), its functions and its rules; the configuration picks one entry
 * of each (cfg.qk, cfg.vo index the registry in variants.c). Every tensor of
 * a model, the variants' included, is an mf_tensor_spec: the layout, the
 * checkpoint names, the views, the counts and the initialization all derive
 * from these specs (param_table.c). */
#ifndef MF_VARIANTS_H
#define MF_VARIANTS_H

#include <stddef.h>

#include "model/model_internal.h"

/* One dimension of a tensor's shape, from the configuration. */
typedef enum {
    DIM_ONE = 0,  /* 1 */
    DIM_WIDTH,    /* N */
    DIM_MLP,      /* F = rN */
    DIM_TRIL,     /* N(N+1)/2: a lower triangle, row-major */
    DIM_TOKENS,   /* T: patches, plus one with CLS pooling */
    DIM_PATCH_IN, /* C*P*P */
    DIM_CLASSES   /* K */
} mf_dim_rule;

/* How mf_model_init_weights fills a tensor (docs/model.md, Initialization).
 * Tensors draw from the generator in layout order. */
typedef enum {
    INIT_ZERO = 0,      /* biases */
    INIT_ONE,           /* LayerNorm weights */
    INIT_FAN_IN,        /* uniform in +-1/sqrt(shape[1]): PyTorch's Linear bound */
    INIT_NORMAL,        /* normal with std init_value */
    INIT_CONST,         /* every entry init_value */
    INIT_WIDTH_UNIFORM, /* uniform in +-1/sqrt(N) */
    INIT_CHOLESKY       /* normal with std sqrt(2)/N^(3/4): |L^T h|^2/sqrt(N) about 1 */
} mf_init_kind;

/* The mf_param_breakdown component a tensor counts toward. */
typedef enum {
    PART_PATCH_EMBED = 0, PART_CLS_TOKEN, PART_POS_EMBED, PART_ATTENTION, PART_NORMS, PART_MLP,
    PART_FINAL_NORM, PART_HEAD
} mf_param_part;

typedef struct {
    const char *name;    /* model-level: the checkpoint name; block-level: what follows
                          * "blocks.{i}." */
    int ndim;
    mf_dim_rule dim[3];
    int decay;           /* 1: AdamW's weight decay applies */
    mf_init_kind init;
    float init_value;    /* INIT_NORMAL's std */
    size_t view;         /* offsetof the float * in mf_params (model-level) or
                          * mf_block_params (block-level) */
    mf_param_part part;
} mf_tensor_spec;

/* A Linear's weight (out,in) and bias (out), under prefix. */
#define MF_LINEAR_SPECS(prefix, type, w, b, out, in, part)                                         \
    {prefix ".weight", 2, {out, in, DIM_ONE}, 1, INIT_FAN_IN, 0.0f, offsetof(type, w), part},      \
    {prefix ".bias", 1, {out, DIM_ONE, DIM_ONE}, 0, INIT_ZERO, 0.0f, offsetof(type, b), part}
/* A LayerNorm's weight and bias (n). */
#define MF_NORM_SPECS(prefix, type, w, b, part)                                                    \
    {prefix ".weight", 1, {DIM_WIDTH, DIM_ONE, DIM_ONE}, 0, INIT_ONE, 0.0f, offsetof(type, w), part}, \
    {prefix ".bias", 1, {DIM_WIDTH, DIM_ONE, DIM_ONE}, 0, INIT_ZERO, 0.0f, offsetof(type, b), part}

/* The activation buffers a variant needs beyond those of every block. */
enum {
    ACTS_KEYS = 1,        /* mf_layer_acts.k: keys of their own */
    ACTS_FULL_WEIGHT = 2, /* w_full (N,N) and its gradient dw_full: W built from qk_tril */
    ACTS_VALUES = 4       /* mf_layer_acts.v: values of their own */
};

/* A query/key variant. forward fills a->q (and a->k) and a->att from
 * a->ln1. backward turns s->datt (dL/dA) into dL/dS, fills the gradients of
 * q (and k) and adds dL/dh into s->dh. Both work on the images of d only, so
 * a, s and d may describe a slice of the batch (a thread's share): they touch
 * nothing shared. backward_params then adds the parameter gradients of those
 * images into g (the model sums the slices' gradients in slice order).
 * prepare (optional) runs once per forward before the threads split the
 * images (W from qk_tril); params_finish (optional) once per backward after
 * the slices are summed (dL/dW back to qk_tril). */
typedef struct {
    const char *name; /* --qk NAME */
    const mf_tensor_spec *tensors;
    int num_tensors;
    unsigned acts;        /* ACTS_* */
    const char *one_head; /* non-NULL: needs H = 1, and why (ends the usage error) */
    void (*prepare)(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
    void (*forward)(mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
    void (*backward)(mf_grad_scratch *s, const mf_layer_acts *a, const mf_block_params *p,
                     const mf_attn_dims *d);
    void (*backward_params)(mf_block_params *g, const mf_grad_scratch *s, const mf_layer_acts *a,
                            const mf_attn_dims *d);
    void (*params_finish)(mf_block_params *g, const mf_grad_scratch *s, const mf_block_params *p,
                          const mf_attn_dims *d);
    /* Exact collapse of a trained single-head model (mf_model_collapse):
     * collapse writes the tensors of entry collapses_to from this entry's;
     * collapse is NULL when the variant has no collapsed form. */
    int collapses_to;
    void (*collapse)(mf_block_params *out, const mf_block_params *in, int N);
} mf_qk_variant;

/* A value/output variant: forward writes the branch output out (M,N) from
 * a->att and a->ln1; backward takes dout, writes dL/dA into s->datt and adds
 * dL/dh into s->dh; both on the images of d, as above. backward_params
 * (NULL without parameters) adds the parameter gradients of those images into
 * g, from the same dout. */
typedef struct {
    const char *name; /* --vo NAME */
    const mf_tensor_spec *tensors;
    int num_tensors;
    unsigned acts;
    const char *one_head;
    void (*forward)(float *out, mf_layer_acts *a, const mf_block_params *p, const mf_attn_dims *d);
    void (*backward)(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                     const mf_block_params *p, const mf_attn_dims *d);
    void (*backward_params)(mf_block_params *g, const mf_grad_scratch *s, const float *dout,
                            const mf_layer_acts *a, const mf_attn_dims *d);
    int collapses_to;
    void (*collapse)(mf_block_params *out, const mf_block_params *in, int N);
    /* Optional: after every tensor's own initialization, adjusts one block's
     * parameters (its own or the query/key entry's) where the starting point
     * depends on both entries. */
    void (*init)(mf_block_params *p, const mf_config *c);
} mf_vo_variant;

/* The entries, beside their functions (attention_qk.c, attention_vo.c, or a
 * variant's own file). */
extern const mf_qk_variant qk_separate, qk_shared, qk_collapsed, qk_symmetric, qk_cholesky;
extern const mf_vo_variant vo_separate, vo_collapsed, vo_none, vo_shaped;

/* The registry (variants.c): entry k for kind k, NULL outside the table. */
const mf_qk_variant *qk_variant(int kind);
const mf_vo_variant *vo_variant(int kind);
int qk_variant_count(void);
int vo_variant_count(void);

/* The collapse rules (collapse.c): W_qk = W_k^T W_q, b_qk = W_k^T b_q; and
 * W_vo = W_o W_v, b_vo = W_o b_v + b_o. */
void collapse_qk_separate(mf_block_params *out, const mf_block_params *in, int N);
void collapse_vo_separate(mf_block_params *out, const mf_block_params *in, int N);

#endif
