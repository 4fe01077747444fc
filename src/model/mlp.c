/* The MLP branch of a block: fc1, the exact GELU, fc2, and back. fc1's bias
 * is added by the GELU pass and fc2's by the residual add that follows, so
 * neither costs a pass of its own. */
#include "model/model_internal.h"
#include "kernels/ops.h"

void mlp_forward(mf_gemm_kind kind, float *out, float *gelu, uint16_t *gelu16, float *pre, const float *h,
                 const mf_block_params *p, int rows, int N, int F, int keep_slope)
{
    linear_forward(kind, pre, h, p->fc1_w, NULL, rows, N, F);
#ifdef MF_BF16_KERNEL
    if (kind == MF_GEMM_BF16) {
        bias_gelu_forward_bf16(gelu16, keep_slope ? pre : NULL, pre, p->fc1_b, rows, F);
        linear_forward_held(out, gelu16, p->fc2_w, NULL, rows, F, N);
        return;
    }
#endif
    (void)gelu16;
    bias_gelu_forward(gelu, keep_slope ? pre : NULL, pre, p->fc1_b, rows, F);
    linear_forward(kind, out, gelu, p->fc2_w, NULL, rows, F, N);
}

/* dgelu = dout fc2_w lands in dpre, then goes through GELU' in place. */
void mlp_backward(mf_gemm_kind kind, float *dh, float *dpre, const mf_block_params *g, const float *dout,
                  const float *gelu, const uint16_t *gelu16, const float *slope, const float *h,
                  const mf_block_params *p, int rows, int N, int F)
{
    linear_backward_input(kind, dpre, dout, p->fc2_w, rows, F, N, 0);
#ifdef MF_BF16_KERNEL
    if (kind == MF_GEMM_BF16) linear_backward_params_held(g->fc2_w, g->fc2_b, dout, gelu16, rows, F, N);
    else
#endif
        linear_backward_params(kind, g->fc2_w, g->fc2_b, dout, gelu, rows, F, N);
    (void)gelu16;
    gelu_backward(dpre, slope, (size_t)rows * F);
    linear_backward_input(kind, dh, dpre, p->fc1_w, rows, N, F, 0);
    linear_backward_params(kind, g->fc1_w, g->fc1_b, dpre, h, rows, N, F);
}
