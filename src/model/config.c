/* Model configuration: defaults, presets and the validity rules, without
 * building a model. The attention kinds' names and rules are their registry
 * entries' (variants.c); the parameter counts come from the tensor table
 * (param_table.c). */
#include <string.h>

#include "model/variants.h"

static const char *const pool_names[] = {"cls", "mean"};

const char *mf_pool_name(mf_pool_kind k) { return (unsigned)k < 2 ? pool_names[k] : "?"; }

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
    if (c->classes < 2 || c->classes > MF_MAX_CLASSES)
        return mf_fail(err, MF_ERR_CONFIG, "the number of classes must be 2 to %d",
                       MF_MAX_CLASSES);
    if (c->patch <= 0 || c->image_size % c->patch)
        return mf_fail(err, MF_ERR_CONFIG, "the patch size %d must divide the image size %d",
                       c->patch, c->image_size);
    if (c->dim <= 0 || c->layers <= 0 || c->heads <= 0)
        return mf_fail(err, MF_ERR_CONFIG, "width, layers and heads must be positive");
    if (c->dim % c->heads)
        return mf_fail(err, MF_ERR_CONFIG, "the width %d must be divisible by the heads %d",
                       c->dim, c->heads);
    const mf_qk_variant *qk = qk_variant((int)c->qk);
    const mf_vo_variant *vo = vo_variant((int)c->vo);
    if (!qk || !vo || (unsigned)c->pool > MF_POOL_MEAN)
        return mf_fail(err, MF_ERR_CONFIG, "unknown attention or pooling kind");
    if (c->heads > 1 && qk->one_head)
        return mf_fail(err, MF_ERR_CONFIG, "--qk %s needs --heads 1: with %d heads %s", qk->name,
                       c->heads, qk->one_head);
    if (c->heads > 1 && vo->one_head)
        return mf_fail(err, MF_ERR_CONFIG, "--vo %s needs --heads 1: with %d heads %s", vo->name,
                       c->heads, vo->one_head);
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
