/* The table of a model's tensors: the model-level tensors, and per block
 * norm1, the query/key entry's tensors, the value/output entry's and, with an
 * MLP, norm2, fc1 and fc2. The layout (checkpoint names, shapes, order,
 * offsets), the views, the counts and the initialization all walk it. */
#ifndef MF_PARAM_TABLE_H
#define MF_PARAM_TABLE_H

#include "model/variants.h"

/* The tensors of a configuration in checkpoint order into out (count
 * entries; out may be NULL to count them); returns the number of floats. */
size_t param_layout(const mf_config *c, mf_tensor_info *out, int *count);
/* Points every view of v (and v->blocks = blocks, L entries) at base, a
 * parameter, gradient or moment block in the layout. */
void param_bind_views(const mf_config *c, float *base, mf_params *v, mf_block_params *blocks);
/* Points the views of one block at base, the block's first float (a block's
 * tensors lie one after another, the same for every block). */
void param_bind_block(const mf_config *c, float *base, mf_block_params *v);
/* Floats of one block's parameters, and where block 0's begin. */
size_t param_block_floats(const mf_config *c);
size_t param_block0(const mf_config *c);

#endif
