/* Model configuration: defaults, presets, the validity rules and parameter
 * counts, all without building a model. */
#include <string.h>

#include "minformer/model.h"

static const char *const qk_names[] = {"separate", "shared", "collapsed", "symmetric", "cholesky"};
static const char *const vo_names[] = {"separate", "collapsed", "none"};
static const char *const pool_names[] = {"cls", "mean"};

const char *mf_qk_name(mf_qk_kind k) { return (unsigned)k < 5 ? qk_names[k] : "?"; }
const char *mf_vo_name(mf_vo_kind k) { return (unsigned)k < 3 ? vo_names[k] : "?"; }
const char *mf_pool_name(mf_pool_kind k) { return (unsigned)k < 2 ? pool_names[k] : "?"; }

mf_status mf_qk_parse(const char *s, mf_qk_kind *out, mf_error *err)
{
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, qk_names[i])) {
            *out = (mf_qk_kind)i;
            return MF_OK;
        }
    return mf_fail(err, MF_ERR_CONFIG,
                   "unknown --qk '%s' (choose separate, shared, collapsed, symmetric, cholesky)", s);
}

mf_status mf_vo_parse(const char *s, mf_vo_kind *out, mf_error *err)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, vo_names[i])) {
            *out = (mf_vo_kind)i;
            return MF_OK;
        }
    return mf_fail(err, MF_ERR_CONFIG, "unknown --vo '%s' (choose separate, collapsed, none)", s);
}

mf_status mf_pool_parse(const char *s, mf_pool_kind *out, mf_error *err)
{
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, pool_names[i])) {
            *out = (mf_pool_kind)i;
            return MF_OK;
        }
    return mf_fail(err, MF_ERR_CONFIG, "unknown --pool '%s' (choose cls, mean)", s);
}

void mf_config_default(mf_config *cfg, int image_size, int channels, int classes)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->image_size = image_size;
    cfg->channels = channels;
    cfg->classes = classes;
    cfg->patch = image_size % 7 == 0 ? 7 : 4;
    cfg->dim = 64;
    cfg->layers = 6;
    cfg->heads = 1;
    cfg->mlp_ratio = 4;
    cfg->qk = MF_QK_SEPARATE;
    cfg->vo = MF_VO_SEPARATE;
    cfg->pool = MF_POOL_CLS;
    cfg->dropout = 0.0f;
}

mf_status mf_config_apply_preset(mf_config *cfg, const char *preset, mf_error *err)
{
    if (!strcmp(preset, "unchanged")) {
        cfg->qk = MF_QK_SEPARATE;
        cfg->vo = MF_VO_SEPARATE;
        cfg->mlp_ratio = 4;
    } else if (!strcmp(preset, "wqk")) {
        cfg->qk = MF_QK_COLLAPSED;
        cfg->vo = MF_VO_SEPARATE;
        cfg->heads = 1;
    } else if (!strcmp(preset, "minimal")) {
        cfg->qk = MF_QK_COLLAPSED;
        cfg->vo = MF_VO_NONE;
        cfg->heads = 1;
    } else if (!strcmp(preset, "symmetric")) {
        cfg->qk = MF_QK_SHARED;
        cfg->vo = MF_VO_SEPARATE;
    } else {
        return mf_fail(err, MF_ERR_CONFIG,
                       "unknown preset '%s' (choose unchanged, wqk, minimal, symmetric)", preset);
    }
    return MF_OK;
}

mf_status mf_config_validate(const mf_config *c, mf_error *err)
{
    if (c->image_size <= 0 || c->channels <= 0 || c->channels > 3)
        return mf_fail(err, MF_ERR_CONFIG, "images must have 1 to 3 channels and a positive size");
    /* The bounds a checkpoint may hold: within them every size computed
     * from a configuration (tensor shapes in int, counts in size_t) is exact. */
    if (c->image_size > 4096 || c->dim > 16384 || c->layers > 4096 || c->heads > 16384 ||
        c->mlp_ratio > 64)
        return mf_fail(err, MF_ERR_CONFIG, "image size, width, layers, heads or MLP ratio over "
                       "the limits 4096, 16384, 4096, 16384, 64");
    if (c->classes < 2 || c->classes > 10)
        return mf_fail(err, MF_ERR_CONFIG, "the number of classes must be 2 to 10");
    if (c->patch <= 0 || c->image_size % c->patch)
        return mf_fail(err, MF_ERR_CONFIG, "the patch size %d must divide the image size %d",
                       c->patch, c->image_size);
    if (c->dim <= 0 || c->layers <= 0 || c->heads <= 0)
        return mf_fail(err, MF_ERR_CONFIG, "width, layers and heads must be positive");
    if (c->dim % c->heads)
        return mf_fail(err, MF_ERR_CONFIG, "the width %d must be divisible by the heads %d",
                       c->dim, c->heads);
    if ((unsigned)c->qk > MF_QK_CHOLESKY || (unsigned)c->vo > MF_VO_NONE ||
        (unsigned)c->pool > MF_POOL_MEAN)
        return mf_fail(err, MF_ERR_CONFIG, "unknown attention or pooling kind");
    if (c->heads > 1 && (c->qk == MF_QK_COLLAPSED || c->qk == MF_QK_SYMMETRIC ||
                         c->qk == MF_QK_CHOLESKY))
        return mf_fail(err, MF_ERR_CONFIG,
                       "--qk %s needs --heads 1: with %d heads each head's collapsed N x N matrix "
                       "would cost more than the 2N^2/H parameters of W_q and W_k it replaces",
                       mf_qk_name(c->qk), c->heads);
    if (c->heads > 1 && c->vo == MF_VO_COLLAPSED)
        return mf_fail(err, MF_ERR_CONFIG,
                       "--vo collapsed needs --heads 1: with %d heads each head's W_vo would be "
                       "N x N, more than the 2N^2/H of W_v and W_o it replaces",
                       c->heads);
    if (c->mlp_ratio < 0) return mf_fail(err, MF_ERR_CONFIG, "the MLP ratio must be 0 or more");
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return mf_fail(err, MF_ERR_CONFIG, "dropout must be in [0, 1)");
    return MF_OK;
}

int mf_config_patches(const mf_config *cfg)
{
    int g = cfg->image_size / cfg->patch;
    return g * g;
}

int mf_config_tokens(const mf_config *cfg)
{
    return mf_config_patches(cfg) + (cfg->pool == MF_POOL_CLS ? 1 : 0);
}

void mf_config_param_breakdown(const mf_config *c, mf_param_breakdown *o)
{
    size_t N = (size_t)c->dim, L = (size_t)c->layers, F = (size_t)c->mlp_ratio * N;
    size_t cpp = (size_t)c->channels * c->patch * c->patch;
    size_t lin = N * N + N; /* one N x N Linear with bias */
    memset(o, 0, sizeof *o);
    o->patch_embed = N * cpp + N;
    o->cls_token = c->pool == MF_POOL_CLS ? N : 0;
    o->pos_embed = (size_t)mf_config_tokens(c) * N;
    size_t attn = 0;
    switch (c->qk) {
    case MF_QK_SEPARATE: attn += 2 * lin; break;
    case MF_QK_SHARED: attn += lin; break;
    case MF_QK_COLLAPSED: attn += lin; break;
    case MF_QK_SYMMETRIC:
    case MF_QK_CHOLESKY: attn += N * (N + 1) / 2; break;
    }
    switch (c->vo) {
    case MF_VO_SEPARATE: attn += 2 * lin; break;
    case MF_VO_COLLAPSED: attn += lin; break;
    case MF_VO_NONE: break;
    }
    o->attention = L * attn;
    o->norms = L * (F ? 4 * N : 2 * N);
    o->mlp = F ? L * (F * N + F + N * F + N) : 0;
    o->final_norm = 2 * N;
    o->head = (size_t)c->classes * N + (size_t)c->classes;
    o->total = o->patch_embed + o->cls_token + o->pos_embed + o->attention + o->norms + o->mlp +
               o->final_norm + o->head;
}

size_t mf_config_num_params(const mf_config *cfg)
{
    mf_param_breakdown b;
    mf_config_param_breakdown(cfg, &b);
    return b.total;
}
