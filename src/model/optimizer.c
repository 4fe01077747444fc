/* AdamW, computed in the same order as PyTorch 1.13's single-tensor AdamW so
 * that parity tests can compare parameters after several steps. */
#include <math.h>

#include "minformer/model.h"
#include "kernels/ops.h"
#include "base/profile.h"

void mf_adamw_default(mf_adamw *opt)
{
    opt->beta1 = 0.9f;
    opt->beta2 = 0.999f;
    opt->eps = 1e-8f;
    opt->weight_decay = 0.05f;
}

void mf_adamw_step(mf_model *m, const mf_adamw *opt, float lr, long step)
{
    float b1 = opt->beta1, b2 = opt->beta2;
    float bc1 = 1.0f - powf(b1, (float)step);
    float bc2 = 1.0f - powf(b2, (float)step);
    float step_size = lr / bc1;
    float bc2_sqrt = sqrtf(bc2);
    float decay = 1.0f - lr * opt->weight_decay;
    double t0 = mf_prof_begin();
    /* One team for every tensor: each thread takes its static share of each
     * tensor and moves on without waiting (the tensors are disjoint). */
#pragma omp parallel if (m->num_params >= MF_PAR_MIN_FLOPS)
    for (int t = 0; t < m->num_tensors; t++) {
        const mf_tensor_info *ti = &m->tensors[t];
        float *p = m->params + ti->offset, *g = m->grads + ti->offset;
        float *mm = m->adam_m + ti->offset, *vv = m->adam_v + ti->offset;
        float dcy = ti->decay ? decay : 1.0f;
        long n = (long)ti->numel;
#pragma omp for schedule(static) nowait
        for (long i = 0; i < n; i++) {
            p[i] *= dcy;
            mm[i] = mm[i] * b1 + (1.0f - b1) * g[i]; /* torch: m.lerp_(g, 1-b1) */
            vv[i] = vv[i] * b2 + (1.0f - b2) * g[i] * g[i];
            float denom = sqrtf(vv[i]) / bc2_sqrt + opt->eps;
            p[i] -= step_size * (mm[i] / denom);
        }
    }
    mf_prof_end(MF_PROF_OPTIMIZER, MF_PROF_OTHER, t0);
}
