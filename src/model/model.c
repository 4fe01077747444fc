/* The model object: creating it from a configuration (the tensor table gives
 * its layout and views), freeing it, its mode, and what a forward pass leaves
 * to read (logits, attention maps). Forward and backward are forward.c and
 * backward.c; the activations arena activations.c; memory limits memory.c. */
#include <string.h>

#include "model/param_table.h"
#include "base/profile.h"
#include "kernels/cpu.h"

/* The test hook of model_alloc: fail the n-th allocation from now. */
static long alloc_fail_at;

void model_alloc_fail_after(long n) { alloc_fail_at = n; }

void *model_alloc(size_t bytes)
{
    if (alloc_fail_at > 0 && --alloc_fail_at == 0) return NULL;
    return mf_alloc(bytes);
}

const mf_tensor_info *mf_model_find_tensor(const mf_model *m, const char *name)
{
    for (int i = 0; i < m->num_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

mf_status mf_model_create(mf_model *m, const mf_config *cfg, mf_error *err)
{
    memset(m, 0, sizeof *m);
    mf_status st = mf_config_validate(cfg, err);
    if (st) return st;
    /* Before allocating: the allocation below zero-fills at once, and a
     * model too large for the machine would be killed by the kernel with no
     * message. Any use of a model needs activations for at least one image. */
    mf_memory_estimate need;
    if ((st = mf_model_memory_estimate(cfg, 1, &need, err))) return st;
    if ((st = memory_check(&need, 0, 1, err))) return st;
    m->cfg = *cfg;
    size_t floats = param_layout(cfg, NULL, &m->num_tensors);
    m->num_params = floats;
    m->tensors = model_alloc((size_t)m->num_tensors * sizeof *m->tensors);
    m->block_views = model_alloc(2 * (size_t)cfg->layers * sizeof *m->block_views);
    m->memory = model_alloc(4 * m->num_params * sizeof(float));
    if (!m->tensors || !m->block_views || !m->memory) {
        mf_model_free(m);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for a model of %zu parameters",
                       floats);
    }
    param_layout(cfg, m->tensors, NULL);
    m->params = m->memory;
    m->grads = m->params + m->num_params;
    m->adam_m = m->grads + m->num_params;
    m->adam_v = m->adam_m + m->num_params;
    param_bind_views(cfg, m->params, &m->p, m->block_views);
    param_bind_views(cfg, m->grads, &m->g, m->block_views + cfg->layers);
    return MF_OK;
}

void mf_model_free(mf_model *m)
{
    if (!m) return;
    mf_free(m->tensors);
    mf_free(m->block_views);
    mf_free(m->memory);
    free_activations(m->acts);
    memset(m, 0, sizeof *m);
}

void mf_model_zero_grad(mf_model *m)
{
    double t0 = mf_prof_begin();
    memset(m->grads, 0, m->num_params * sizeof(float));
    mf_prof_end(MF_PROF_ZERO_GRAD, MF_PROF_OTHER, t0);
}

void mf_model_set_mode(mf_model *m, unsigned mode) { m->mode = mode; }
unsigned mf_model_mode(const mf_model *m) { return m->mode; }

mf_status mf_precision_check(mf_precision precision, mf_error *err)
{
    if (precision != MF_PRECISION_FP32 && precision != MF_PRECISION_BF16)
        return mf_fail(err, MF_ERR_CONFIG, "unknown precision %d", (int)precision);
    if (precision == MF_PRECISION_BF16 && !mf_bf16_available())
        return mf_fail(err, MF_ERR_CONFIG, "bf16 is not available here: %s", mf_bf16_unavailable_reason());
    return MF_OK;
}

mf_status mf_model_set_precision(mf_model *m, mf_precision precision, mf_error *err)
{
    mf_status st = mf_precision_check(precision, err);
    if (st == MF_OK) m->precision = precision;
    return st;
}

const char *mf_precision_name(mf_precision precision)
{
    return precision == MF_PRECISION_BF16 ? "bf16" : "fp32";
}

int mf_precision_parse(const char *name, mf_precision *out)
{
    if (!strcmp(name, "fp32")) *out = MF_PRECISION_FP32;
    else if (!strcmp(name, "bf16")) *out = MF_PRECISION_BF16;
    else return -1;
    return 0;
}

const float *mf_model_logits(const mf_model *m) { return m->acts ? m->acts->logits : NULL; }

void mf_model_attention_maps(const mf_model *m, int b, float *out)
{
    const mf_config *c = &m->cfg;
    int T = mf_config_tokens(c), H = c->heads;
    for (int l = 0; l < c->layers; l++) {
        const float *att = m->acts->layers[l].att + (size_t)b * H * T * T;
        float *o = out + (size_t)l * T * T;
        for (int i = 0; i < T * T; i++) {
            float sum = 0.0f;
            for (int h = 0; h < H; h++) sum += att[(size_t)h * T * T + i];
            o[i] = sum / (float)H;
        }
    }
}
