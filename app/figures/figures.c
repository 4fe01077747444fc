/* The figures drawn from training logs and models: loss curves, accuracy
 * against parameters, attention maps with rollout. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "figures/figures.h"

/* ---- curves ---------------------------------------------------------------- */

/* Runs past the palette's ten colors repeat a color with a marker shape of
 * their own, so fourteen runs stay apart. */
static mf_marker run_marker(int i, int single_point)
{
    static const mf_marker shapes[] = {MF_MARKER_NONE, MF_MARKER_TRIANGLE, MF_MARKER_SQUARE,
                                       MF_MARKER_DIAMOND, MF_MARKER_CROSS};
    mf_marker m = shapes[(i / MF_PALETTE_SIZE) % 5];
    return m == MF_MARKER_NONE && single_point ? MF_MARKER_CIRCLE : m;
}

mf_status mf_figure_curves(const char *path, int width, int height, const char *title,
                           const mf_training_log *logs, const char *const *labels, int n,
                           int metric_acc, mf_error *err)
{
    if (n < 1) return mf_fail(err, MF_ERR_CONFIG, "curves: no logs to draw");
    /* Per log a train series (solid) and a test series (dashed), same color. */
    int ns = 2 * n;
    mf_plot_series *series = calloc((size_t)ns, sizeof *series);
    double **buf = calloc((size_t)n, sizeof *buf);
    mf_canvas cv = {0};
    if (!series || !buf) {
        free(series);
        free(buf);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for a figure");
    }
    mf_status st = MF_OK;
    int max_epochs = 1;
    for (int i = 0; i < n; i++) {
        int c = logs[i].count;
        if (c && logs[i].epochs[c - 1].epoch > max_epochs) max_epochs = logs[i].epochs[c - 1].epoch;
        buf[i] = malloc(4 * (size_t)(c ? c : 1) * sizeof(double));
        if (!buf[i]) {
            st = mf_fail(err, MF_ERR_NOMEM, "out of memory for a figure");
            goto done;
        }
        /* An epoch without a value (NaN: the run could not compute it) is
         * left out of its curve, which joins its neighbours; a gap would
         * hide a value that has no finite neighbour. */
        double *xtr = buf[i], *tr = xtr + c, *xte = tr + c, *te = xte + c;
        int ntr = 0, nte = 0;
        for (int e = 0; e < c; e++) {
            const mf_log_epoch *r = &logs[i].epochs[e];
            double a = metric_acc ? 100.0 * r->train_acc : r->train_loss;
            double b = metric_acc ? 100.0 * r->test_acc : r->test_loss;
            if (isfinite(a)) xtr[ntr] = r->epoch, tr[ntr++] = a;
            if (isfinite(b)) xte[nte] = r->epoch, te[nte++] = b;
        }
        mf_marker marker = run_marker(i, ntr < 2 && nte < 2);
        mf_rgb color = mf_palette(i);
        series[2 * i] = (mf_plot_series){.x = xtr, .y = tr, .n = ntr, .color = color, .has_color = 1,
                                         .style = MF_LINE_SOLID, .marker = marker};
        series[2 * i + 1] = (mf_plot_series){.x = xte, .y = te, .n = nte, .color = color,
                                             .has_color = 1, .style = MF_LINE_DASHED,
                                             .marker = marker};
    }
    /* The legend goes in a column right of the chart: with a dozen runs an
     * inner legend would hide the curves. */
    int scale = width >= 900 ? 2 : 1, row_h = 12 * scale + 6, sample = 36 * scale;
    int text_w = mf_text_width("(dashed) test = validation", scale);
    for (int i = 0; labels && i < n; i++) {
        int w = mf_text_width(labels[i] ? labels[i] : "", scale);
        if (w > text_w) text_w = w;
    }
    int legend_w = sample + 12 + text_w + 16;
    if (legend_w > width / 2) legend_w = width / 2;
    if ((st = mf_canvas_create(&cv, width, height, MF_WHITE, err))) goto done;
    mf_plot_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.title = title;
    spec.x_title = "epoch";
    spec.y_title = metric_acc ? "accuracy (%)" : "cross-entropy loss";
    spec.series = series;
    spec.series_count = ns;
    spec.legend = MF_LEGEND_NONE;
    spec.text_scale = scale;
    spec.region_w = width - legend_w;
    spec.region_h = height;
    if (max_epochs < 2) {
        spec.x_min = 0.5;
        spec.x_max = 1.5;
    }
    if ((st = mf_plot_lines(&cv, &spec, err))) goto done;
    {
        int x0 = width - legend_w + 4, y = 60;
        mf_rgb ink = MF_RGB(30, 30, 30), grey = MF_RGB(90, 90, 90);
        double xs[2] = {x0, x0 + sample};
        for (int i = 0; i < n; i++, y += row_h) { /* one row per run */
            double ly = y + 6 * scale, ys[2] = {ly, ly};
            mf_draw_polyline(&cv, xs, ys, 2, 2.0 * scale, MF_LINE_SOLID, mf_palette(i));
            if (run_marker(i, 0) != MF_MARKER_NONE)
                mf_draw_marker(&cv, x0 + sample / 2.0, ly, 4.0 * scale + 3.0, run_marker(i, 0),
                               mf_palette(i));
            mf_draw_text(&cv, x0 + sample + 12, y, labels && labels[i] ? labels[i] : "", scale, ink);
        }
        y += row_h; /* a blank row, then the style key */
        static const char *const keys[2] = {"(solid) training", "(dashed) test = validation"};
        const mf_line_style styles[2] = {MF_LINE_SOLID, MF_LINE_DASHED};
        for (int k = 0; k < 2; k++, y += row_h) {
            double ly = y + 6 * scale, ys[2] = {ly, ly};
            mf_draw_polyline(&cv, xs, ys, 2, 2.0 * scale, styles[k], grey);
            mf_draw_text(&cv, x0 + sample + 12, y, keys[k], scale, ink);
        }
    }
    st = mf_png_write(path, &cv, err);
done:
    mf_canvas_free(&cv);
    for (int i = 0; i < n; i++) free(buf[i]);
    free(buf);
    free(series);
    return st;
}

mf_status mf_figure_accuracy_params(const char *path, int width, int height, const char *title,
                                    const double *params, const double *acc_percent,
                                    const char *const *point_labels, const int *group,
                                    const char *const *group_names, int groups, int n,
                                    mf_error *err)
{
    if (n < 1 || groups < 1) return mf_fail(err, MF_ERR_CONFIG, "accuracy figure: no points");
    mf_plot_series *series = calloc((size_t)groups, sizeof *series);
    double *xs = malloc(2 * (size_t)n * sizeof *xs);
    const char **labs = calloc((size_t)n, sizeof *labs);
    if (!series || !xs || !labs) {
        free(series);
        free(xs);
        free(labs);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for a figure");
    }
    double *ys = xs + n, lo = INFINITY, hi = -INFINITY;
    int k = 0;
    for (int g = 0; g < groups; g++) {
        int start = k;
        for (int i = 0; i < n; i++) {
            /* A point without a value (NaN) or off the log axis is left out. */
            if (group[i] != g || !isfinite(params[i]) || params[i] <= 0 ||
                !isfinite(acc_percent[i]))
                continue;
            xs[k] = params[i];
            ys[k] = acc_percent[i];
            labs[k] = point_labels ? point_labels[i] : NULL;
            if (params[i] < lo) lo = params[i];
            if (params[i] > hi) hi = params[i];
            k++;
        }
        series[g] = (mf_plot_series){.x = xs + start, .y = ys + start, .n = k - start,
                                     .label = group_names ? group_names[g] : NULL,
                                     .marker = g % 2 ? MF_MARKER_SQUARE : MF_MARKER_CIRCLE,
                                     .point_labels = labs + start};
    }
    mf_plot_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.title = title;
    spec.x_title = "parameters (log scale)";
    spec.y_title = "test accuracy (%)";
    spec.series = series;
    spec.series_count = groups;
    spec.log_x = 1;
    /* Room for the point labels on the right (none to make without points). */
    if (k > 0) {
        spec.x_min = lo / 1.5;
        spec.x_max = hi * 2.5;
    }
    mf_status st = mf_plot_scatter_png(path, width, height, &spec, err);
    free(series);
    free(xs);
    free(labs);
    return st;
}

/* ---- attention --------------------------------------------------------------- */

void mf_attention_cls_maps(const mf_config *cfg, const float *maps, float *out_layers,
                           float *out_rollout)
{
    int T = mf_config_tokens(cfg), P = mf_config_patches(cfg), first = T - P; /* 1 with CLS */
    size_t TT = (size_t)T * T;
    double *roll = malloc(TT * sizeof *roll), *tmp = malloc(TT * sizeof *tmp),
           *step = malloc(TT * sizeof *step);
    for (int l = 0; l < cfg->layers; l++) {
        const float *A = maps + (size_t)l * TT;
        for (int p = 0; p < P; p++) {
            double v = 0.0;
            if (first) v = A[first + p]; /* row 0: the CLS token */
            else {
                for (int i = 0; i < T; i++) v += A[(size_t)i * T + p];
                v /= T;
            }
            out_layers[(size_t)l * P + p] = (float)v;
        }
    }
    if (!roll || !tmp || !step) { /* no memory: leave the rollout undrawn */
        for (int p = 0; p < P; p++) out_rollout[p] = NAN;
        free(roll);
        free(tmp);
        free(step);
        return;
    }
    for (size_t i = 0; i < TT; i++) roll[i] = i % (size_t)(T + 1) == 0 ? 1.0 : 0.0;
    for (int l = 0; l < cfg->layers; l++) {
        const float *A = maps + (size_t)l * TT;
        for (int i = 0; i < T; i++) {
            double sum = 0.0;
            for (int j = 0; j < T; j++) {
                double v = 0.5 * A[(size_t)i * T + j] + (i == j ? 0.5 : 0.0);
                step[(size_t)i * T + j] = v;
                sum += v;
            }
            for (int j = 0; j < T; j++) step[(size_t)i * T + j] /= sum > 0 ? sum : 1.0;
        }
        /* R <- step * R: layer l mixes what the layers below already mixed. */
        for (int i = 0; i < T; i++)
            for (int j = 0; j < T; j++) {
                double v = 0.0;
                for (int k = 0; k < T; k++) v += step[(size_t)i * T + k] * roll[(size_t)k * T + j];
                tmp[(size_t)i * T + j] = v;
            }
        memcpy(roll, tmp, TT * sizeof *roll);
    }
    for (int p = 0; p < P; p++) {
        double v = 0.0;
        if (first) v = roll[first + p];
        else {
            for (int i = 0; i < T; i++) v += roll[(size_t)i * T + p];
            v /= T;
        }
        out_rollout[p] = (float)v;
    }
    free(roll);
    free(tmp);
    free(step);
}

mf_status mf_figure_attention(const char *path, const mf_config *cfg, const uint8_t *pixels,
                              const float *layer_maps, const float *rollout, const char *header,
                              mf_error *err)
{
    int S = cfg->image_size, C = cfg->channels, G = S / cfg->patch, L = cfg->layers;
    int scale = 6;                 /* 28 -> 168 px, 32 -> 192 px */
    int side = S * scale, gap = 16, title_h = 26, range_h = 16, top = 40;
    int panels = L + 2;            /* picture, layers, rollout */
    int cols = panels < 8 ? panels : 8, rows = (panels + cols - 1) / cols;
    int width = gap + cols * (side + gap);
    int height = top + rows * (title_h + side + range_h + gap) + 24;
    mf_canvas cv;
    mf_status st = mf_canvas_create(&cv, width, height, MF_WHITE, err);
    if (st) return st;
    mf_rgb ink = MF_RGB(30, 30, 30), soft = MF_RGB(90, 90, 90);
    if (header) mf_draw_text(&cv, gap, 12, header, 2, ink);
    /* The faded picture under each map: mixed halfway to white so the map
     * reads first and the digit's outline still shows. */
    size_t npix = (size_t)C * S * S;
    uint8_t *faded = malloc(npix);
    if (!faded) {
        mf_canvas_free(&cv);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for the attention figure");
    }
    for (size_t i = 0; i < npix; i++) faded[i] = (uint8_t)(pixels[i] / 2 + 64);
    for (int k = 0; k < panels; k++) {
        int x = gap + (k % cols) * (side + gap);
        int y = top + (k / cols) * (title_h + side + range_h + gap);
        char title[32];
        if (k == 0) snprintf(title, sizeof title, "input");
        else if (k <= L) snprintf(title, sizeof title, "layer %d", k);
        else snprintf(title, sizeof title, "rollout");
        mf_draw_text(&cv, x, y + 4, title, 2, ink);
        int py = y + title_h;
        if (k == 0) {
            mf_blit_image(&cv, x, py, side, side, pixels, S, S, C);
        } else {
            const float *map = k <= L ? layer_maps + (size_t)(k - 1) * G * G : rollout;
            mf_blit_image(&cv, x, py, side, side, faded, S, S, C);
            /* Each map on its own scale: the layers differ in sharpness by
             * orders of magnitude, and the question is where each looks. */
            mf_blit_heatmap(&cv, x, py, side, side, map, G, G, 0.0f, 0.0f, MF_COLORMAP_INFERNO, 0.75f);
            float lo = INFINITY, hi = -INFINITY;
            for (int i = 0; i < G * G; i++) {
                if (map[i] < lo) lo = map[i];
                if (map[i] > hi) hi = map[i];
            }
            char range[48];
            snprintf(range, sizeof range, "dark %.3f  bright %.3f", (double)lo, (double)hi);
            mf_draw_text(&cv, x, py + side + 4, range, 1, soft);
        }
        mf_draw_rect(&cv, x - 1, py - 1, side + 2, side + 2, 1, MF_RGB(160, 160, 160));
    }
    mf_draw_text(&cv, gap, height - 18,
                 "CLS token's attention weight on each patch (mean over heads), each map from its "
                 "own min (dark) to max (bright); rollout = prod over layers of (0.5 A + 0.5 I)",
                 1, soft);
    st = mf_png_write(path, &cv, err);
    free(faded);
    mf_canvas_free(&cv);
    return st;
}
