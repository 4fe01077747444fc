/* minformer model: a pre-LN vision transformer encoder whose query/key path,
 * value/output path and MLP can each be reduced as in Bermeitinger et al.,
 * "Reducing the Transformer Architecture to a Minimum" (arXiv 2410.13732). */
#ifndef MINFORMER_MODEL_H
#define MINFORMER_MODEL_H

#include "core.h"

MF_BEGIN_API

typedef enum {
    MF_QK_SEPARATE = 0, /* q = hWq^T + bq, k = hWk^T + bk, S = q_h k_h^T / sqrt(d) */
    MF_QK_SHARED,       /* k = q: symmetric similarity with W_k = W_q, any H */
    MF_QK_COLLAPSED,    /* H = 1: S = (hWqk^T + bqk) h^T / sqrt(N) */
    MF_QK_SYMMETRIC,    /* H = 1: S = h W h^T / sqrt(N), W = W^T stored as lower triangle */
    MF_QK_CHOLESKY      /* H = 1: S = h L L^T h^T / sqrt(N), L lower triangular */
} mf_qk_kind;

typedef enum {
    MF_VO_SEPARATE = 0, /* v = hWv^T + bv, O = concat_h(A_h v_h) Wo^T + bo */
    MF_VO_COLLAPSED,    /* H = 1: O = (A h) Wvo^T + bvo */
    MF_VO_NONE,         /* O = (1/H) sum_h A_h h: a convex combination of the inputs */
    MF_VO_SHAPED        /* H = 1: O = (alpha I + beta A - gamma U) h, U = 1/T (He & Hofmann) */
} mf_vo_kind;

typedef enum { MF_POOL_CLS = 0, MF_POOL_MEAN = 1 } mf_pool_kind;

/* A model's classes: 2 to MF_MAX_CLASSES (ImageNet-1k). */
#define MF_MAX_CLASSES 1000

typedef struct {
    int image_size; /* S: images are S x S */
    int channels;   /* C */
    int classes;
    int patch;      /* P, divides S */
    int dim;        /* N, width */
    int layers;     /* L */
    int heads;      /* H, divides N */
    int mlp_ratio;  /* r: MLP hidden width r*N; 0 = no MLP and no LN2 */
    mf_qk_kind qk;
    mf_vo_kind vo;
    mf_pool_kind pool;
    float dropout;  /* on both residual branches and the embeddings; 0 = off */
} mf_config;

/* Defaults for a dataset's geometry: N 64, L 6, H 1, r 4, separate/separate,
 * CLS pooling, patch 7 for 28x28 images and 4 for 32x32. */
void mf_config_default(mf_config *cfg, int image_size, int channels, int classes);
/* "unchanged", "wqk", "minimal", "symmetric": sets qk, vo, heads, mlp_ratio. */
mf_status mf_config_apply_preset(mf_config *cfg, const char *preset, mf_error *err);
mf_status mf_config_validate(const mf_config *cfg, mf_error *err);
mf_status mf_qk_parse(const char *s, mf_qk_kind *out, mf_error *err);
mf_status mf_vo_parse(const char *s, mf_vo_kind *out, mf_error *err);
mf_status mf_pool_parse(const char *s, mf_pool_kind *out, mf_error *err);
const char *mf_qk_name(mf_qk_kind k);
const char *mf_vo_name(mf_vo_kind k);
const char *mf_pool_name(mf_pool_kind k);
/* Tokens per image: T = (S/P)^2 patches, plus one for the CLS token. */
int mf_config_patches(const mf_config *cfg);
int mf_config_tokens(const mf_config *cfg);

/* Views into one parameter block (or into a gradient or AdamW moment block
 * with the same layout). A tensor a variant does not use is NULL. */
typedef struct {
    float *norm1_w, *norm1_b;           /* (N), (N) */
    float *q_w, *q_b, *k_w, *k_b;       /* (N,N), (N); k only for separate */
    float *qk_w, *qk_b;                 /* (N,N), (N); collapsed */
    float *qk_tril;                     /* (N(N+1)/2); symmetric, cholesky */
    float *v_w, *v_b, *proj_w, *proj_b; /* (N,N), (N); vo separate */
    float *vo_w, *vo_b;                 /* (N,N), (N); vo collapsed */
    float *norm2_w, *norm2_b;           /* (N); only with an MLP */
    float *fc1_w, *fc1_b;               /* (rN,N), (rN) */
    float *fc2_w, *fc2_b;               /* (N,rN), (N) */
    float *variant[4];                  /* an attention variant's own tensors beyond those
                                         * named above, as its table entry lists them */
} mf_block_params;

typedef struct {
    float *cls_token;          /* (1,1,N) */
    float *pos_embed;          /* (1,T+1,N); (1,T,N) with mean pooling */
    float *patch_w, *patch_b;  /* (N, C*P*P), (N) */
    mf_block_params *blocks;   /* L */
    float *norm_w, *norm_b;    /* (N) */
    float *head_w, *head_b;    /* (classes,N), (classes) */
} mf_params;

/* One named tensor of the parameter block, in checkpoint order. */
typedef struct {
    char name[64];   /* e.g. "blocks.3.attn.qk.weight" */
    int ndim;
    int shape[4];
    size_t offset;   /* in floats, from the start of the block */
    size_t numel;
    int decay;       /* 1 for weight matrices that take weight decay */
} mf_tensor_info;

typedef struct mf_activations mf_activations; /* private: forward state kept for backward */

/* How mf_model_forward runs: MF_MODE_EVAL, or an or of the flags. A forward
 * records its mode, and mf_model_backward differentiates that forward with
 * it (the same dropout masks, the same rows). A new model is in
 * MF_MODE_EVAL. */
enum {
    MF_MODE_EVAL = 0,          /* no dropout; forward keeps what backward reads */
    MF_MODE_TRAIN = 1,         /* dropout on (when cfg.dropout > 0): a training step */
    MF_MODE_FORWARD_ONLY = 2,  /* forward skips what only backward reads (GELU's slope):
                                * evaluation; mf_model_backward must not follow */
    MF_MODE_FULL_ATTENTION = 4 /* with CLS pooling the head reads only the CLS row of the
                                * last block, so forward computes only that row's attention;
                                * this computes every row (for mf_model_attention_maps) */
};

/* The precision of the matrix products in the linear layers (every weight
 * matrix, forward and backward). fp32 is the bitwise-reproducible reference;
 * bf16 rounds both operands to bfloat16 and sums in fp32 (on AMX tiles, or
 * VDPBF16PS without AMX), also in the attention's per-image products where
 * an image has more than 32 tokens, while parameters, gradients, LayerNorm,
 * softmax, GELU, the loss and AdamW stay fp32. A new model is fp32. */
typedef enum { MF_PRECISION_FP32 = 0, MF_PRECISION_BF16 = 1 } mf_precision;

typedef struct {
    mf_config cfg;
    size_t num_params;
    int num_tensors;
    mf_tensor_info *tensors;
    /* One allocation of 4 * num_params floats: parameters, gradients and the
     * two AdamW moments, each reached through the same kind of named views. */
    float *memory;
    float *params, *grads, *adam_m, *adam_v;
    mf_params p, g;
    mf_block_params *block_views; /* 2L entries backing p.blocks and g.blocks */
    unsigned mode;           /* MF_MODE_* flags: read through mf_model_mode, set through
                              * mf_model_set_mode */
    uint64_t dropout_seed;   /* set per step by the trainer */
    /* Forward/backward state for up to batch_capacity images. */
    int batch_capacity;
    mf_activations *acts;
    mf_precision precision;  /* set through mf_model_set_precision */
} mf_model;

/* Sets the mode (MF_MODE_* flags) of the forward passes that follow, and
 * reads it. */
void mf_model_set_mode(mf_model *m, unsigned mode);
unsigned mf_model_mode(const mf_model *m);

/* Sets the precision of the passes that follow. MF_ERR_CONFIG, the model
 * unchanged, when this machine cannot run bf16 (the message says why: it
 * needs AVX-512 with AVX512_BF16, with the operating system's consent). */
mf_status mf_model_set_precision(mf_model *m, mf_precision precision, mf_error *err);
/* MF_OK when this machine can run `precision`, else MF_ERR_CONFIG saying why. */
mf_status mf_precision_check(mf_precision precision, mf_error *err);
/* "fp32" or "bf16"; mf_precision_parse returns -1 for any other name. */
const char *mf_precision_name(mf_precision precision);
int mf_precision_parse(const char *name, mf_precision *out);

/* Allocates a model (parameters zero until mf_model_init_weights). Refuses
 * with MF_ERR_NOMEM, before allocating, when the model with activations for
 * one image would not fit in the memory available (mf_memory_available). */
mf_status mf_model_create(mf_model *m, const mf_config *cfg, mf_error *err);
void mf_model_free(mf_model *m);
/* The documented initialization (docs/model.md), drawn from seed. */
void mf_model_init_weights(mf_model *m, uint64_t seed);
/* Ensures activations for batches of up to B images. Refuses with
 * MF_ERR_NOMEM, before allocating, when they would not fit beside the
 * parameters in the memory available. */
mf_status mf_model_reserve(mf_model *m, int B, mf_error *err);

/* The memory a model of cfg needs for batches of `batch` images, in bytes:
 * what mf_model_create allocates (parameters, gradients and the two AdamW
 * moments: 16 bytes per parameter) and what mf_model_reserve allocates for
 * the batch (the activations forward keeps for backward, the gradient
 * scratch), plus the batch of inputs mf_train and mf_evaluate fill. The
 * dataset itself is not included. */
typedef struct {
    uint64_t parameters, activations, total;
} mf_memory_estimate;
mf_status mf_model_memory_estimate(const mf_config *cfg, int batch, mf_memory_estimate *out,
                                   mf_error *err);

/* Bytes this process can still allocate, and where that figure comes from
 * (*source, may be NULL): "cgroup limit" (the memory cgroup of the process or
 * one above it, cgroup v2 memory.max less memory.current or v1's
 * memory.limit_in_bytes less memory.usage_in_bytes, the reclaimable file
 * cache not counted as used) or "MemAvailable" (/proc/meminfo), whichever is
 * smaller; UINT64_MAX and "unknown" when neither can be read.
 * The environment variable MINFORMER_MEMORY_LIMIT=BYTES (decimal) replaces
 * both ("MINFORMER_MEMORY_LIMIT"): then the whole model, parameters and
 * activations, must fit in BYTES; a value that is not a number is
 * MF_ERR_CONFIG. Reads only small files, never blocking. */
mf_status mf_memory_available(uint64_t *bytes, const char **source, mf_error *err);
const mf_tensor_info *mf_model_find_tensor(const mf_model *m, const char *name);
/* Parameter count of a configuration without building it. */
size_t mf_config_num_params(const mf_config *cfg);

/* Forward pass on B images (B x C x S x S, normalized), in the model's mode
 * (mf_model_set_mode); B at most the reserved capacity. Returns the mean
 * cross-entropy over the batch when labels is non-NULL (0 otherwise). The
 * logits (B x classes) stay in the model: see mf_model_logits. */
float mf_model_forward(mf_model *m, const float *images, const int *labels, int B);
/* (A label outside [0, classes) makes the loss NaN: it is never used as an
 * index.) */
const float *mf_model_logits(const mf_model *m);
/* The predicted class of one row of logits: the index of the largest of n
 * values (the first one on ties). */
int mf_argmax(const float *x, int n);
/* Backward of the mean cross-entropy of the last forward (which had labels),
 * in the mode that forward ran in; accumulates (+=) into m->grads. */
void mf_model_backward(mf_model *m);
void mf_model_zero_grad(mf_model *m);
/* Mean attention weights (T1 x T1 per layer, averaged over heads) of image b
 * of the last forward; out holds L * T1 * T1 floats. The forward needs
 * MF_MODE_FULL_ATTENTION: otherwise, with CLS pooling, the last layer's map
 * holds only its first row (the CLS token's). */
void mf_model_attention_maps(const mf_model *m, int b, float *out);

/* AdamW as PyTorch computes it: p *= 1 - lr*wd (decayed tensors only), then
 * m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). step t is 1-based. */
typedef struct {
    float beta1, beta2, eps, weight_decay;
} mf_adamw;
void mf_adamw_default(mf_adamw *opt); /* 0.9, 0.999, 1e-8, wd 0.05 */
void mf_adamw_step(mf_model *m, const mf_adamw *opt, float lr, long step);

/* Rewrites a trained single-head model into collapsed form where the algebra
 * is exact: separate query/key becomes W_qk = W_k^T W_q, b_qk = W_k^T b_q (the
 * other bias terms are constant along each softmax row); separate
 * value/output becomes W_vo = W_o W_v, b_vo = W_o b_v + b_o (attention rows
 * sum to 1). Creates *out. MF_ERR_CONFIG when in has several heads (each
 * head's collapsed N x N matrix would cost more than the 2N^2/H it replaces)
 * or nothing to collapse. */
mf_status mf_model_collapse(const mf_model *in, mf_model *out, mf_error *err);

/* Parameters per component, for the params report. */
typedef struct {
    size_t patch_embed, cls_token, pos_embed;
    size_t attention, norms, mlp; /* summed over all blocks */
    size_t final_norm, head;
    size_t total;
} mf_param_breakdown;
void mf_config_param_breakdown(const mf_config *cfg, mf_param_breakdown *out);

MF_END_API

#endif
