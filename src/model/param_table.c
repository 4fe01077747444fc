/* The table of a model's tensors and what derives from it: the layout with
 * PyTorch's (timm-style ViT) names and shapes, the named views, the
 * parameter counts per component and the initialization. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/param_table.h"

static const mf_tensor_spec cls_tensors[] = {
    {"cls_token", 3, {DIM_ONE, DIM_ONE, DIM_WIDTH}, 0, INIT_NORMAL, 0.02f,
     offsetof(mf_params, cls_token), PART_CLS_TOKEN},
};

static const mf_tensor_spec embed_tensors[] = {
    {"pos_embed", 3, {DIM_ONE, DIM_TOKENS, DIM_WIDTH}, 0, INIT_NORMAL, 0.02f,
     offsetof(mf_params, pos_embed), PART_POS_EMBED},
    MF_LINEAR_SPECS("patch_embed", mf_params, patch_w, patch_b, DIM_WIDTH, DIM_PATCH_IN,
                    PART_PATCH_EMBED),
};

static const mf_tensor_spec norm1_tensors[] = {
    MF_NORM_SPECS("norm1", mf_block_params, norm1_w, norm1_b, PART_NORMS),
};

static const mf_tensor_spec mlp_tensors[] = {
    MF_NORM_SPECS("norm2", mf_block_params, norm2_w, norm2_b, PART_NORMS),
    MF_LINEAR_SPECS("mlp.fc1", mf_block_params, fc1_w, fc1_b, DIM_MLP, DIM_WIDTH, PART_MLP),
    MF_LINEAR_SPECS("mlp.fc2", mf_block_params, fc2_w, fc2_b, DIM_WIDTH, DIM_MLP, PART_MLP),
};

static const mf_tensor_spec final_tensors[] = {
    MF_NORM_SPECS("norm", mf_params, norm_w, norm_b, PART_FINAL_NORM),
    MF_LINEAR_SPECS("head", mf_params, head_w, head_b, DIM_CLASSES, DIM_WIDTH, PART_HEAD),
};

typedef struct {
    const mf_tensor_spec *spec;
    int count;
} tensor_group;

#define GROUP(a) ((tensor_group){a, (int)(sizeof a / sizeof *a)})

/* The groups of one block, in order; returns how many. */
static int block_groups(const mf_config *c, tensor_group g[4])
{
    const mf_qk_variant *qk = qk_variant((int)c->qk);
    const mf_vo_variant *vo = vo_variant((int)c->vo);
    int n = 0;
    g[n++] = GROUP(norm1_tensors);
    g[n++] = (tensor_group){qk->tensors, qk->num_tensors};
    g[n++] = (tensor_group){vo->tensors, vo->num_tensors};
    if (c->mlp_ratio > 0) g[n++] = GROUP(mlp_tensors);
    return n;
}

static int dim_size(const mf_config *c, mf_dim_rule r)
{
    int N = c->dim;
    switch (r) {
    case DIM_ONE: return 1;
    case DIM_WIDTH: return N;
    case DIM_MLP: return c->mlp_ratio * N;
    case DIM_TRIL: return N * (N + 1) / 2;
    case DIM_TOKENS: return mf_config_tokens(c);
    case DIM_PATCH_IN: return c->channels * c->patch * c->patch;
    case DIM_CLASSES: return c->classes;
    }
    return 0;
}

static size_t spec_shape(const mf_config *c, const mf_tensor_spec *s, int shape[3])
{
    size_t numel = 1;
    for (int i = 0; i < 3; i++) {
        shape[i] = i < s->ndim ? dim_size(c, s->dim[i]) : 0;
        if (i < s->ndim) numel *= (size_t)shape[i];
    }
    return numel;
}

/* Calls visit for every tensor in checkpoint order: its spec, its block
 * (-1 for a model-level tensor), shape, size and offset in floats. */
typedef void (*tensor_visit)(void *ctx, const mf_tensor_spec *s, int layer, const int shape[3],
                             size_t numel, size_t offset);

static size_t visit_group(const mf_config *c, tensor_group g, int layer, size_t offset,
                          tensor_visit visit, void *ctx)
{
    for (int i = 0; i < g.count; i++) {
        int shape[3];
        size_t numel = spec_shape(c, &g.spec[i], shape);
        visit(ctx, &g.spec[i], layer, shape, numel, offset);
        offset += numel;
    }
    return offset;
}

static size_t walk_tensors(const mf_config *c, tensor_visit visit, void *ctx)
{
    size_t offset = 0;
    if (c->pool == MF_POOL_CLS) offset = visit_group(c, GROUP(cls_tensors), -1, offset, visit, ctx);
    offset = visit_group(c, GROUP(embed_tensors), -1, offset, visit, ctx);
    tensor_group g[4];
    int n = block_groups(c, g);
    for (int l = 0; l < c->layers; l++)
        for (int i = 0; i < n; i++) offset = visit_group(c, g[i], l, offset, visit, ctx);
    return visit_group(c, GROUP(final_tensors), -1, offset, visit, ctx);
}

/* ---- the layout ---------------------------------------------------------- */

typedef struct {
    mf_tensor_info *out;
    int count;
} layout_ctx;

static void layout_visit(void *ctx, const mf_tensor_spec *s, int layer, const int shape[3],
                         size_t numel, size_t offset)
{
    layout_ctx *lc = ctx;
    if (lc->out) {
        mf_tensor_info *t = &lc->out[lc->count];
        memset(t, 0, sizeof *t);
        if (layer < 0) snprintf(t->name, sizeof t->name, "%s", s->name);
        else snprintf(t->name, sizeof t->name, "blocks.%d.%s", layer, s->name);
        t->ndim = s->ndim;
        for (int i = 0; i < s->ndim; i++) t->shape[i] = shape[i];
        t->offset = offset;
        t->numel = numel;
        t->decay = s->decay;
    }
    lc->count++;
}

size_t param_layout(const mf_config *c, mf_tensor_info *out, int *count)
{
    layout_ctx lc = {out, 0};
    size_t floats = walk_tensors(c, layout_visit, &lc);
    if (count) *count = lc.count;
    return floats;
}

/* ---- views --------------------------------------------------------------- */

static void set_view(void *views, const mf_tensor_spec *s, float *at)
{
    memcpy((char *)views + s->view, &at, sizeof at);
}

typedef struct {
    float *base;
    mf_params *model;
    mf_block_params *blocks;
} views_ctx;

static void views_visit(void *ctx, const mf_tensor_spec *s, int layer, const int shape[3],
                        size_t numel, size_t offset)
{
    (void)shape, (void)numel;
    views_ctx *vc = ctx;
    set_view(layer < 0 ? (void *)vc->model : (void *)&vc->blocks[layer], s, vc->base + offset);
}

void param_bind_views(const mf_config *c, float *base, mf_params *v, mf_block_params *blocks)
{
    memset(v, 0, sizeof *v);
    memset(blocks, 0, (size_t)c->layers * sizeof *blocks);
    v->blocks = blocks;
    views_ctx vc = {base, v, blocks};
    walk_tensors(c, views_visit, &vc);
}

void param_bind_block(const mf_config *c, float *base, mf_block_params *v)
{
    tensor_group g[4];
    int n = block_groups(c, g);
    memset(v, 0, sizeof *v);
    size_t offset = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g[i].count; j++) {
            int shape[3];
            set_view(v, &g[i].spec[j], base + offset);
            offset += spec_shape(c, &g[i].spec[j], shape);
        }
}

static size_t group_floats(const mf_config *c, tensor_group g)
{
    size_t floats = 0;
    for (int i = 0; i < g.count; i++) {
        int shape[3];
        floats += spec_shape(c, &g.spec[i], shape);
    }
    return floats;
}

size_t param_block_floats(const mf_config *c)
{
    tensor_group g[4];
    int n = block_groups(c, g);
    size_t floats = 0;
    for (int i = 0; i < n; i++) floats += group_floats(c, g[i]);
    return floats;
}

size_t param_block0(const mf_config *c)
{
    return (c->pool == MF_POOL_CLS ? group_floats(c, GROUP(cls_tensors)) : 0) +
           group_floats(c, GROUP(embed_tensors));
}

/* ---- counts -------------------------------------------------------------- */

static void count_visit(void *ctx, const mf_tensor_spec *s, int layer, const int shape[3],
                        size_t numel, size_t offset)
{
    (void)layer, (void)shape, (void)offset;
    mf_param_breakdown *o = ctx;
    size_t *part[] = {&o->patch_embed, &o->cls_token, &o->pos_embed, &o->attention,
                      &o->norms, &o->mlp, &o->final_norm, &o->head};
    *part[s->part] += numel;
}

void mf_config_param_breakdown(const mf_config *c, mf_param_breakdown *o)
{
    memset(o, 0, sizeof *o);
    o->total = walk_tensors(c, count_visit, o);
}

size_t mf_config_num_params(const mf_config *cfg) { return param_layout(cfg, NULL, NULL); }

/* ---- initialization ------------------------------------------------------ */

static void fill_uniform(float *x, size_t n, float bound, mf_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = (2.0f * mf_rng_uniform(rng) - 1.0f) * bound;
}

static void fill_normal(float *x, size_t n, float std, mf_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = std * mf_rng_normal(rng);
}

typedef struct {
    float *params;
    int N;
    mf_rng rng;
} init_ctx;

static void init_visit(void *ctx, const mf_tensor_spec *s, int layer, const int shape[3],
                       size_t numel, size_t offset)
{
    (void)layer;
    init_ctx *ic = ctx;
    float *x = ic->params + offset;
    float N = (float)ic->N;
    switch (s->init) {
    case INIT_ZERO: break;
    case INIT_ONE:
        for (size_t j = 0; j < numel; j++) x[j] = 1.0f;
        break;
    case INIT_FAN_IN: fill_uniform(x, numel, 1.0f / sqrtf((float)shape[1]), &ic->rng); break;
    case INIT_NORMAL: fill_normal(x, numel, s->init_value, &ic->rng); break;
    case INIT_CONST:
        for (size_t j = 0; j < numel; j++) x[j] = s->init_value;
        break;
    case INIT_WIDTH_UNIFORM: fill_uniform(x, numel, 1.0f / sqrtf(N), &ic->rng); break;
    case INIT_CHOLESKY: fill_normal(x, numel, sqrtf(2.0f) / powf(N, 0.75f), &ic->rng); break;
    }
}

/* Each tensor by its spec's rule, drawn in layout order (docs/model.md,
 * Initialization); everything else 0. Then the value/output entry's init,
 * where it has one, per block. */
void mf_model_init_weights(mf_model *m, uint64_t seed)
{
    init_ctx ic;
    ic.params = m->params;
    ic.N = m->cfg.dim;
    mf_rng_seed(&ic.rng, seed);
    memset(m->params, 0, m->num_params * sizeof(float));
    walk_tensors(&m->cfg, init_visit, &ic);
    const mf_vo_variant *vo = vo_variant((int)m->cfg.vo);
    if (vo->init)
        for (int l = 0; l < m->cfg.layers; l++) vo->init(&m->p.blocks[l], &m->cfg);
}
