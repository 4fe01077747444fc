/* minformer figures: the pictures drawn from training logs (run.h) and
 * models: loss curves like the paper's Figures 1 and 2, accuracy against
 * parameter count, and attention maps with attention rollout; as PNG, SVG
 * or PDF, drawn with Cairo. Every figure checks its output path before it
 * draws, and replaces the file atomically once the whole figure is encoded. */
#ifndef MINFORMER_FIGURES_H
#define MINFORMER_FIGURES_H

#include "minformer/core.h"
#include "minformer/model.h"
#include "minformer/run.h"

typedef enum { MF_FIGURE_PNG = 0, MF_FIGURE_SVG, MF_FIGURE_PDF } mf_figure_format;

/* The largest figure side, in pixels (PNG) or points (SVG, PDF). */
#define MF_FIGURE_MAX_SIDE 16384

/* "png", "svg" or "pdf" in any case; MF_ERR_CONFIG naming name otherwise. */
mf_status mf_figure_format_parse(const char *name, mf_figure_format *format, mf_error *err);
/* The format from path's extension (.png, .svg, .pdf in any case);
 * MF_ERR_CONFIG "PATH: unknown figure extension '.EXT' ..." otherwise. */
mf_status mf_figure_format_from_path(const char *path, mf_figure_format *format, mf_error *err);
/* The format named (name not NULL, e.g. from --format) or else the one of
 * path's extension. */
mf_status mf_figure_format_choose(const char *name, const char *path, mf_figure_format *format,
                                 mf_error *err);
const char *mf_figure_format_name(mf_figure_format format); /* "png", "svg", "pdf" */
/* MF_ERR_IO "PATH: cannot write the figure: ..." when path is a directory or
 * another file that is not a regular one, or its directory is missing or not
 * writable. */
mf_status mf_figure_check_path(const char *path, mf_error *err);

/* Loss against epoch: each log its own color, training loss solid and test
 * (the paper's validation) loss dashed; with metric_acc set, accuracy in %
 * instead. labels[i] names log i in the legend, right of the chart. Epochs
 * without a value (NaN) are left out of their curve. */
mf_status mf_figure_curves(const char *path, mf_figure_format format, int width, int height,
                           const char *title, const mf_training_log *logs,
                           const char *const *labels, int n, int metric_acc, mf_error *err);

/* Curves in rows, e.g. a grid's rows with their seeds: row r is the next
 * sizes[r] of logs (sizes NULL: one log each), labels[r] names it. A row of
 * one log draws as mf_figure_curves draws a log. A row of several draws
 * the mean over its logs at each epoch (mf_curve_band) with a shaded band
 * of +- one sample standard deviation in the row's color, for training and
 * test alike, and the legend says so. */
mf_status mf_figure_curves_rows(const char *path, mf_figure_format format, int width, int height,
                                const char *title, const mf_training_log *logs, const int *sizes,
                                const char *const *labels, int rows, int metric_acc,
                                mf_error *err);

/* The per-epoch mean and sample standard deviation (divisor n - 1) of n
 * logs' curves, loss or (metric_acc) accuracy in %: what a row of seeds
 * draws. Only the epochs that every log has are kept, in order: runs that
 * stopped at different epochs are compared over the epochs all of them
 * reached. At an epoch where some log has no value (NaN) the mean and std
 * are NaN, so the curve leaves it out rather than average fewer runs
 * there. std is NaN for n = 1. */
typedef struct {
    int count;     /* epochs kept */
    double *epoch; /* count each, as are the four below */
    double *train_mean, *train_std, *test_mean, *test_std;
} mf_curve_band;

mf_status mf_curve_band_make(const mf_training_log *logs, int n, int metric_acc,
                             mf_curve_band *band, mf_error *err);
void mf_curve_band_free(mf_curve_band *band); /* safe on a zeroed one */

/* Test accuracy (%) against parameter count (log axis), one color per group
 * (e.g. dataset), each point labelled without overlaps. group[i] in
 * [0, groups). Points with a NaN or a count <= 0 are left out. */
mf_status mf_figure_accuracy_params(const char *path, mf_figure_format format, int width,
                                    int height, const char *title, const double *params,
                                    const double *acc_percent, const char *const *point_labels,
                                    const int *group, const char *const *group_names, int groups,
                                    int n, mf_error *err);
/* The same with a vertical error bar of half-length acc_err[i] (percent
 * points, e.g. the standard deviation over seeds) through each point;
 * acc_err NULL, or an entry NaN or <= 0: no bar. */
mf_status mf_figure_accuracy_params_err(const char *path, mf_figure_format format, int width,
                                        int height, const char *title, const double *params,
                                        const double *acc_percent, const double *acc_err,
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
mf_status mf_figure_attention(const char *path, mf_figure_format format, const mf_config *cfg,
                              const uint8_t *pixels, const float *layer_maps,
                              const float *rollout, const char *header, mf_error *err);

#endif
