/* The figures drawn from training logs and models: loss curves, accuracy
 * against parameters, attention maps with rollout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figures/figures.h"
#include "figures/page.h"
#include "figures/plot.h"

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

/* The value a curve draws from an epoch's line. */
static double curve_value(const mf_log_epoch *r, int train, int metric_acc)
{
    if (metric_acc) return 100.0 * (train ? r->train_acc : r->test_acc);
    return train ? r->train_loss : r->test_loss;
}

void mf_curve_band_free(mf_curve_band *band)
{
    if (!band) return;
    free(band->epoch);
    memset(band, 0, sizeof *band);
}

/* The index of epoch e in log, or -1 (the epochs are sorted). */
static int find_epoch(const mf_training_log *log, int e)
{
    int lo = 0, hi = log->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, v = log->epochs[mid].epoch;
        if (v == e) return mid;
        if (v < e) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

mf_status mf_curve_band_make(const mf_training_log *logs, int n, int metric_acc,
                             mf_curve_band *band, mf_error *err)
{
    memset(band, 0, sizeof *band);
    if (n < 1 || !logs) return mf_fail(err, MF_ERR_CONFIG, "curve band: no logs");
    int c = logs[0].count;
    int *at = malloc((size_t)n * sizeof *at);
    band->epoch = malloc(5 * (size_t)(c ? c : 1) * sizeof(double));
    if (!at || !band->epoch) {
        free(at);
        mf_curve_band_free(band);
        return mf_fail(err, MF_ERR_NOMEM, "curve band: out of memory");
    }
    band->train_mean = band->epoch + c;
    band->train_std = band->train_mean + c;
    band->test_mean = band->train_std + c;
    band->test_std = band->test_mean + c;
    for (int e = 0; e < c; e++) {
        int epoch = logs[0].epochs[e].epoch, all = 1;
        for (int i = 0; i < n && all; i++) all = (at[i] = find_epoch(&logs[i], epoch)) >= 0;
        if (!all) continue;
        int k = band->count++;
        band->epoch[k] = epoch;
        for (int train = 1; train >= 0; train--) {
            /* Two passes: the mean, then the squares about it. */
            double sum = 0.0, ss = 0.0;
            for (int i = 0; i < n; i++) sum += curve_value(&logs[i].epochs[at[i]], train, metric_acc);
            double mean = sum / n;
            for (int i = 0; i < n; i++) {
                double d = curve_value(&logs[i].epochs[at[i]], train, metric_acc) - mean;
                ss += d * d;
            }
            double std = n > 1 && isfinite(mean) ? sqrt(ss / (n - 1)) : NAN;
            (train ? band->train_mean : band->test_mean)[k] = mean;
            (train ? band->train_std : band->test_std)[k] = std;
        }
    }
    free(at);
    return MF_OK;
}

mf_status mf_figure_curves(const char *path, mf_figure_format format, int width, int height,
                           const char *title, const mf_training_log *logs,
                           const char *const *labels, int n, int metric_acc, mf_error *err)
{
    return mf_figure_curves_rows(path, format, width, height, title, logs, NULL, labels, n,
                                 metric_acc, err);
}

mf_status mf_figure_curves_rows(const char *path, mf_figure_format format, int width, int height,
                                const char *title, const mf_training_log *logs, const int *sizes,
                                const char *const *labels, int n, int metric_acc, mf_error *err)
{
    if (n < 1 || !logs)
        return mf_fail(err, MF_ERR_CONFIG, "%s: curves: no logs to draw", path ? path : "");
    for (int i = 0; sizes && i < n; i++)
        if (sizes[i] < 1)
            return mf_fail(err, MF_ERR_CONFIG, "%s: curves: row %d has %d logs", path ? path : "",
                           i, sizes[i]);
    mf_figure_page page;
    mf_status st = mf_figure_page_begin(&page, path, format, width, height, err);
    if (st) return st;
    /* Per row a train series (solid) and a test series (dashed), same color;
     * the legend names the rows, then says which style is which. */
    mf_plot_series *series = calloc(2 * (size_t)n, sizeof *series);
    mf_legend_entry *legend = calloc((size_t)n + 4, sizeof *legend);
    double **buf = calloc((size_t)n, sizeof *buf);
    if (!series || !legend || !buf) {
        st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory for a figure", path);
        goto done;
    }
    int max_epochs = 1, banded = 0;
    for (int i = 0, first = 0; i < n; first += sizes ? sizes[i] : 1, i++) {
        const mf_training_log *row = logs + first;
        int k = sizes ? sizes[i] : 1;
        mf_curve_band band = {0};
        if (k > 1 && (st = mf_curve_band_make(row, k, metric_acc, &band, err))) goto done;
        int c = k > 1 ? band.count : row->count;
        buf[i] = malloc(6 * (size_t)(c ? c : 1) * sizeof(double));
        if (!buf[i]) {
            mf_curve_band_free(&band);
            st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory for a figure", path);
            goto done;
        }
        /* An epoch without a value (NaN: the run could not compute it) is
         * left out of its curve, which joins its neighbours; a gap would
         * hide a value that has no finite neighbour. */
        double *xtr = buf[i], *tr = xtr + c, *xte = tr + c, *te = xte + c, *btr = te + c,
               *bte = btr + c;
        int ntr = 0, nte = 0;
        for (int e = 0; e < c; e++) {
            double x = k > 1 ? band.epoch[e] : row->epochs[e].epoch;
            double a = k > 1 ? band.train_mean[e] : curve_value(&row->epochs[e], 1, metric_acc);
            double b = k > 1 ? band.test_mean[e] : curve_value(&row->epochs[e], 0, metric_acc);
            if (isfinite(a)) {
                xtr[ntr] = x, tr[ntr] = a;
                btr[ntr++] = k > 1 ? band.train_std[e] : NAN;
            }
            if (isfinite(b)) {
                xte[nte] = x, te[nte] = b;
                bte[nte++] = k > 1 ? band.test_std[e] : NAN;
            }
            if (x > max_epochs) max_epochs = (int)x;
        }
        mf_curve_band_free(&band);
        banded |= k > 1;
        mf_marker marker = run_marker(i, ntr < 2 && nte < 2);
        mf_color color = mf_palette(i);
        series[2 * i] = (mf_plot_series){.x = xtr, .y = tr, .n = ntr, .color = color,
                                         .has_color = 1, .style = MF_LINE_SOLID, .marker = marker,
                                         .y_band = k > 1 ? btr : NULL};
        series[2 * i + 1] = (mf_plot_series){.x = xte, .y = te, .n = nte, .color = color,
                                             .has_color = 1, .style = MF_LINE_DASHED,
                                             .marker = marker, .y_band = k > 1 ? bte : NULL};
        legend[i] = (mf_legend_entry){labels && labels[i] ? labels[i] : "", color, MF_LINE_SOLID,
                                      marker, k > 1};
    }
    const mf_color grey = {0.35, 0.35, 0.35};
    int rows = n + 3;
    legend[n + 1] = (mf_legend_entry){"training", grey, MF_LINE_SOLID, MF_MARKER_NONE, 0};
    legend[n + 2] = (mf_legend_entry){"test = validation", grey, MF_LINE_DASHED, MF_MARKER_NONE, 0};
    if (banded)
        legend[rows++] = (mf_legend_entry){"mean, band \xc2\xb1 1 std over seeds", grey, MF_LINE_NONE,
                                           MF_MARKER_NONE, 1};
    mf_plot_spec spec = {.title = title,
                         .x_title = "epoch",
                         .y_title = metric_acc ? "accuracy (%)" : "cross-entropy loss",
                         .series = series,
                         .series_count = 2 * n,
                         .integer_x = 1,
                         .legend = legend,
                         .legend_count = rows};
    if (max_epochs < 2) {
        spec.x_min = 0.5;
        spec.x_max = 1.5;
    }
    st = mf_plot_draw(page.cr, &spec, (mf_rect){0, 0, width, height}, err);
done:
    if (st == MF_OK) st = mf_figure_page_end(&page, path, err);
    else mf_figure_page_discard(&page);
    for (int i = 0; buf && i < n; i++) free(buf[i]);
    free(buf);
    free(legend);
    free(series);
    return st;
}

mf_status mf_figure_accuracy_params(const char *path, mf_figure_format format, int width,
                                    int height, const char *title, const double *params,
                                    const double *acc_percent, const char *const *point_labels,
                                    const int *group, const char *const *group_names, int groups,
                                    int n, mf_error *err)
{
    return mf_figure_accuracy_params_err(path, format, width, height, title, params, acc_percent,
                                         NULL, point_labels, group, group_names, groups, n, err);
}

mf_status mf_figure_accuracy_params_err(const char *path, mf_figure_format format, int width,
                                        int height, const char *title, const double *params,
                                        const double *acc_percent, const double *acc_err,
                                        const char *const *point_labels, const int *group,
                                        const char *const *group_names, int groups, int n,
                                        mf_error *err)
{
    if (n < 1 || groups < 1)
        return mf_fail(err, MF_ERR_CONFIG, "%s: accuracy figure: no points", path ? path : "");
    mf_figure_page page;
    mf_status st = mf_figure_page_begin(&page, path, format, width, height, err);
    if (st) return st;
    mf_plot_series *series = calloc((size_t)groups, sizeof *series);
    double *xs = malloc(3 * (size_t)n * sizeof *xs);
    const char **labs = calloc((size_t)n, sizeof *labs);
    if (!series || !xs || !labs) {
        st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory for a figure", path);
        goto done;
    }
    double *ys = xs + n, *es = xs + 2 * (size_t)n, lo = INFINITY, hi = -INFINITY;
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
            es[k] = acc_err ? acc_err[i] : NAN;
            labs[k] = point_labels ? point_labels[i] : NULL;
            lo = fmin(lo, params[i]);
            hi = fmax(hi, params[i]);
            k++;
        }
        series[g] = (mf_plot_series){.x = xs + start, .y = ys + start, .n = k - start,
                                     .label = group_names ? group_names[g] : NULL,
                                     .marker = g % 2 ? MF_MARKER_SQUARE : MF_MARKER_CIRCLE,
                                     .point_labels = labs + start,
                                     .y_err = acc_err ? es + start : NULL};
    }
    mf_plot_spec spec = {.title = title,
                         .x_title = "parameters (log scale)",
                         .y_title = "test accuracy (%)",
                         .series = series,
                         .series_count = groups,
                         .scatter = 1,
                         .log_x = 1};
    /* Room for labels on either side of the outermost points. */
    if (k > 0) {
        spec.x_min = lo / 1.7;
        spec.x_max = hi * 1.7;
    }
    st = mf_plot_draw(page.cr, &spec, (mf_rect){0, 0, width, height}, err);
done:
    if (st == MF_OK) st = mf_figure_page_end(&page, path, err);
    else mf_figure_page_discard(&page);
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

/* The picture (planar, C channels) as an S x S Cairo image; faded mixes it
 * halfway to white so a heat map over it reads first and the outline shows. */
static cairo_surface_t *picture_surface(const uint8_t *pixels, int S, int C, int faded)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, S, S);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) return s;
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    size_t plane = (size_t)S * S;
    for (int y = 0; y < S; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        for (int x = 0; x < S; x++) {
            size_t i = (size_t)y * S + x;
            uint32_t rgb[3];
            for (int c = 0; c < 3; c++) {
                uint32_t v = pixels[(C == 3 ? c : 0) * plane + i];
                rgb[c] = faded ? v / 2 + 64 : v;
            }
            row[x] = 0xFF000000u | rgb[0] << 16 | rgb[1] << 8 | rgb[2];
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

/* A G x G map from its own finite minimum to maximum (a constant map sits
 * mid-scale); non-finite cells are transparent. */
static cairo_surface_t *heat_surface(const float *map, int G, float *lo, float *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < G * G; i++)
        if (isfinite(map[i])) {
            *lo = fminf(*lo, map[i]);
            *hi = fmaxf(*hi, map[i]);
        }
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, G, G);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) return s;
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < G; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        for (int x = 0; x < G; x++) {
            float v = map[y * G + x];
            if (!isfinite(v)) {
                row[x] = 0;
                continue;
            }
            uint8_t rgb[3];
            mf_colormap_rgb(MF_COLORMAP_INFERNO, *hi > *lo ? (v - *lo) / (*hi - *lo) : 0.5f, rgb);
            row[x] = 0xFF000000u | (uint32_t)rgb[0] << 16 | (uint32_t)rgb[1] << 8 | rgb[2];
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

/* src (n x n) stretched by nearest neighbour onto the side x side square at
 * (x, y). The blocks are made here, at the largest whole multiple of n that
 * fits, rather than left to the filter: SVG viewers smooth a small image
 * whatever filter the file asks for. */
static void paint_square(cairo_t *cr, cairo_surface_t *src, int n, double x, double y,
                         double side, double alpha)
{
    int k = (int)(side / n);
    if (k < 1) k = 1;
    cairo_surface_t *big = cairo_image_surface_create(cairo_image_surface_get_format(src), n * k,
                                                      n * k);
    if (cairo_surface_status(big) == CAIRO_STATUS_SUCCESS) {
        cairo_surface_flush(src);
        cairo_surface_flush(big);
        const unsigned char *from = cairo_image_surface_get_data(src);
        unsigned char *to = cairo_image_surface_get_data(big);
        int from_stride = cairo_image_surface_get_stride(src);
        int to_stride = cairo_image_surface_get_stride(big);
        for (int yy = 0; yy < n * k; yy++) {
            const uint32_t *row =
                (const uint32_t *)(const void *)(from + (size_t)(yy / k) * from_stride);
            uint32_t *out = (uint32_t *)(void *)(to + (size_t)yy * to_stride);
            for (int xx = 0; xx < n * k; xx++) out[xx] = row[xx / k];
        }
        cairo_surface_mark_dirty(big);
        src = big;
        n *= k;
    }
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_scale(cr, side / n, side / n);
    cairo_set_source_surface(cr, src, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, n, n);
    cairo_clip(cr);
    cairo_paint_with_alpha(cr, alpha);
    cairo_restore(cr);
    cairo_surface_destroy(big);
}

/* Splits text at spaces into lines no wider than room (a word longer than
 * that gets a line of its own); returns the count. The last of max_lines
 * takes what is left. */
static int wrap_text(cairo_t *cr, const char *text, double room, char lines[][256], int max_lines)
{
    int count = 0;
    while (*text && count < max_lines) {
        size_t best = 0, end = 0;
        for (;;) { /* the longest run of whole words that fits */
            size_t next = end;
            while (text[next] && text[next] != ' ') next++;
            if (next > 255) break;
            char trial[256];
            snprintf(trial, sizeof trial, "%.*s", (int)next, text);
            if (best && mf_text_width(cr, trial) > room) break;
            best = next;
            if (!text[next]) break;
            end = next + 1;
        }
        if (!best || count == max_lines - 1) best = strlen(text);
        if (best > 255) best = 255;
        snprintf(lines[count++], 256, "%.*s", (int)best, text);
        text += best;
        while (*text == ' ') text++;
    }
    return count;
}

mf_status mf_figure_attention(const char *path, mf_figure_format format, const mf_config *cfg,
                              const uint8_t *pixels, const float *layer_maps,
                              const float *rollout, const char *header, mf_error *err)
{
    static const char footer[] =
        "CLS token's attention weight on each patch (mean over heads), each map from its own min "
        "(dark) to max (bright); rollout = prod over layers of (0.5 A + 0.5 I)";
    int S = cfg->image_size, C = cfg->channels, G = S / cfg->patch, L = cfg->layers;
    int scale = 6; /* 28 -> 168 px, 32 -> 192 px */
    int side = S * scale, gap = 16, title_h = 26, range_h = 16, top = 40;
    int panels = L + 2; /* picture, layers, rollout */
    int cols = panels < 8 ? panels : 8, rows = (panels + cols - 1) / cols;
    int width = gap + cols * (side + gap);
    const double header_font = 15, title_font = 14, small_font = 10, footer_line = 13;

    /* The footer wraps to the width, which sets the height. */
    char lines[4][256];
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
    cairo_t *measure = cairo_create(scratch);
    mf_text_font(measure, small_font, 0);
    int footer_lines = wrap_text(measure, footer, width - 2 * gap, lines, 4);
    cairo_destroy(measure);
    cairo_surface_destroy(scratch);
    int height = top + rows * (title_h + side + range_h + gap) + 11 +
                 (int)(footer_lines * footer_line);

    mf_figure_page page;
    mf_status st = mf_figure_page_begin(&page, path, format, width, height, err);
    if (st) return st;
    cairo_t *cr = page.cr;
    cairo_surface_t *picture = picture_surface(pixels, S, C, 0);
    cairo_surface_t *faded = picture_surface(pixels, S, C, 1);
    const mf_color ink = {0.12, 0.12, 0.12}, soft = {0.35, 0.35, 0.35};
    if (header && *header) {
        /* Shrunk to the width rather than cut off. */
        mf_text_font(cr, header_font, 1);
        double w = mf_text_width(cr, header), room = width - 2 * gap;
        if (w > room) mf_text_font(cr, header_font * room / w, 1);
        cairo_set_source_rgb(cr, ink.r, ink.g, ink.b);
        mf_text_draw(cr, gap, 10, header);
    }
    for (int k = 0; k < panels; k++) {
        int x = gap + (k % cols) * (side + gap);
        int y = top + (k / cols) * (title_h + side + range_h + gap);
        char title[32];
        if (k == 0) snprintf(title, sizeof title, "input");
        else if (k <= L) snprintf(title, sizeof title, "layer %d", k);
        else snprintf(title, sizeof title, "rollout");
        mf_text_font(cr, title_font, 0);
        cairo_set_source_rgb(cr, ink.r, ink.g, ink.b);
        mf_text_draw(cr, x, y + 4, title);
        int py = y + title_h;
        if (k == 0) {
            paint_square(cr, picture, S, x, py, side, 1.0);
        } else {
            /* Each map on its own scale: the layers differ in sharpness by
             * orders of magnitude, and the question is where each looks. */
            const float *map = k <= L ? layer_maps + (size_t)(k - 1) * G * G : rollout;
            float lo, hi;
            cairo_surface_t *heat = heat_surface(map, G, &lo, &hi);
            paint_square(cr, faded, S, x, py, side, 1.0);
            paint_square(cr, heat, G, x, py, side, 0.75);
            cairo_surface_destroy(heat);
            char range[64];
            if (lo <= hi) snprintf(range, sizeof range, "dark %.3f   bright %.3f", (double)lo, (double)hi);
            else snprintf(range, sizeof range, "no finite weights");
            mf_text_font(cr, small_font, 0);
            cairo_set_source_rgb(cr, soft.r, soft.g, soft.b);
            mf_text_draw(cr, x, py + side + 3, range);
        }
        cairo_set_line_width(cr, 1.0);
        cairo_set_source_rgb(cr, 0.63, 0.63, 0.63);
        cairo_rectangle(cr, x - 0.5, py - 0.5, side + 1, side + 1);
        cairo_stroke(cr);
    }
    mf_text_font(cr, small_font, 0);
    cairo_set_source_rgb(cr, soft.r, soft.g, soft.b);
    for (int i = 0; i < footer_lines; i++)
        mf_text_draw(cr, gap, height - 8 - (footer_lines - i) * footer_line, lines[i]);
    cairo_surface_destroy(picture);
    cairo_surface_destroy(faded);
    return mf_figure_page_end(&page, path, err);
}
