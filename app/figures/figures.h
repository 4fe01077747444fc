/* minformer figures: the pictures drawn from training logs (run.h) and
 * models: loss curves like the paper's Figures 1 and 2, accuracy against
 * parameter count, and attention maps with attention rollout. */
#ifndef MINFORMER_FIGURES_H
#define MINFORMER_FIGURES_H

#include "minformer/core.h"
#include "minformer/image.h"
#include "minformer/model.h"
#include "minformer/run.h"

/* Loss against epoch: each log its own color, training loss solid and test
 * (the paper's validation) loss dashed; with metric_acc set, accuracy in %
 * instead. labels[i] names log i in the legend. */
mf_status mf_figure_curves(const char *path, int width, int height, const char *title,
                           const mf_training_log *logs, const char *const *labels, int n,
                           int metric_acc, mf_error *err);

/* Test accuracy (%) against parameter count (log axis), one color per group
 * (e.g. dataset), each point labelled. group[i] in [0, groups). */
mf_status mf_figure_accuracy_params(const char *path, int width, int height, const char *title,
                                    const double *params, const double *acc_percent,
                                    const char *const *point_labels, const int *group,
                                    const char *const *group_names, int groups, int n,
                                    mf_error *err);

/* The CLS token's attention over the patches in every layer, and the
 * attention rollout (Abnar & Zuidema 2020): R = prod_l norm(0.5 A_l + 0.5 I),
 * rows renormalized, taking the CLS row over the patches. With mean pooling
 * (no CLS token) the mean of all rows is used. maps holds L x T x T as
 * mf_model_attention_maps fills it; out_layers gets L x G x G and
 * out_rollout G x G, G = image_size / patch. */
void mf_attention_cls_maps(const mf_config *cfg, const float *maps, float *out_layers,
                           float *out_rollout);

/* Draws the picture next to one heat map per layer and the rollout, each at
 * the picture's resolution (maps stretched by nearest neighbour over the
 * faded picture), titled, with a header line; pixels planar (c, y, x). */
mf_status mf_figure_attention(const char *path, const mf_config *cfg, const uint8_t *pixels,
                              const float *layer_maps, const float *rollout, const char *header,
                              mf_error *err);

#endif
