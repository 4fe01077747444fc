/* Line and scatter charts drawn on a canvas: loss and accuracy curves,
 * accuracy against parameter count. Layout follows the text: margins are
 * sized from the actual tick labels and titles, tick steps are 1, 2 or 5
 * times a power of ten and thinned until their labels do not collide. */
#include "minformer/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_COLOR MF_RGB(40, 40, 40)
#define FRAME_COLOR MF_RGB(110, 110, 110)
#define GRID_COLOR MF_RGB(228, 228, 228)
#define LEGEND_BORDER MF_RGB(190, 190, 190)

mf_rgb mf_palette(int i)
{
    /* matplotlib's tab10: familiar from every paper's plots and distinct at
     * line widths of two pixels. */
    static const mf_rgb colors[MF_PALETTE_SIZE] = {
        {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
        {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
    };
    i %= MF_PALETTE_SIZE;
    return colors[i < 0 ? i + MF_PALETTE_SIZE : i];
}

/* ---- Axes ------------------------------------------------------------------- */

#define MAX_TICKS 64

typedef struct {
    int log;               /* values are drawn as log10(value) */
    double lo, hi;         /* the range, in drawn (possibly log10) units */
    int pixel_lo, pixel_hi; /* where lo and hi land on the canvas */
    int count;
    double ticks[MAX_TICKS]; /* in drawn units */
    char labels[MAX_TICKS][24];
    int minor_count;
    double minor[MAX_TICKS * 8]; /* unlabelled log ticks at 2..9 x 10^k */
} axis;

/* The drawn coordinate of a data value; NaN when it cannot be drawn. */
static double axis_value(const axis *a, double v)
{
    /* Beyond 1e300 the span of an axis could overflow to infinity. */
    if (!isfinite(v) || fabs(v) > 1e300) return NAN;
    if (a->log) return v > 0 ? log10(v) : NAN;
    return v;
}

static double axis_pixel(const axis *a, double drawn)
{
    return a->pixel_lo + (drawn - a->lo) / (a->hi - a->lo) * (a->pixel_hi - a->pixel_lo);
}

static double nice_step(double raw)
{
    double mag = pow(10.0, floor(log10(raw))), norm = raw / mag;
    return (norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0) * mag;
}

/* "0.25", "40", "1.2M": large values get an SI suffix chosen from the
 * largest value on the axis so all labels share it, decimals follow the step. */
static void format_linear(double v, double step, double largest, char *out, size_t n)
{
    if (fabs(v) < step * 1e-6) v = 0.0; /* no "-0.0" from rounding */
    double div = 1.0;
    const char *suffix = "";
    if (largest >= 1e10) {
        div = 1e9;
        suffix = "G";
    } else if (largest >= 1e7) {
        div = 1e6;
        suffix = "M";
    } else if (largest >= 1e4) {
        div = 1e3;
        suffix = "k";
    }
    double scaled_step = step / div;
    int decimals = (int)ceil(-log10(scaled_step) - 1e-9);
    if (decimals < 0) decimals = 0;
    if (v == 0.0 && *suffix)
        snprintf(out, n, "0");
    else if (decimals > 6 || fabs(v) / div >= 1e12)
        snprintf(out, n, "%g%s", v / div, suffix);
    else
        snprintf(out, n, "%.*f%s", decimals, v / div, suffix);
}

/* "100", "1k", "20k", "1M", "0.01". */
static void format_log(double v, char *out, size_t n)
{
    if (v >= 1e9)
        snprintf(out, n, "%gG", v / 1e9);
    else if (v >= 1e6)
        snprintf(out, n, "%gM", v / 1e6);
    else if (v >= 1e3)
        snprintf(out, n, "%gk", v / 1e3);
    else
        snprintf(out, n, "%g", v);
}

static int widest_label(const axis *a, int scale)
{
    int w = 0;
    for (int i = 0; i < a->count; i++) {
        int lw = mf_text_width(a->labels[i], scale);
        if (lw > w) w = lw;
    }
    return w;
}

static void linear_ticks(axis *a, int target)
{
    double step = nice_step((a->hi - a->lo) / (target > 1 ? target : 1));
    double largest = fmax(fabs(a->lo), fabs(a->hi));
    a->count = 0;
    a->minor_count = 0;
    for (double k = ceil(a->lo / step - 1e-9); a->count < MAX_TICKS; k++) {
        double v = k * step;
        if (v > a->hi + step * 1e-9) break;
        a->ticks[a->count] = v;
        format_linear(v, step, largest, a->labels[a->count], sizeof a->labels[0]);
        a->count++;
    }
}

/* Decades, every `every` of them; within less than two decades also 2 and 5
 * times each, so a short log axis still has labels. */
static void log_ticks(axis *a, int every)
{
    int first = (int)ceil(a->lo - 1e-9), last = (int)floor(a->hi + 1e-9);
    int decades = last - first + 1;
    a->count = 0;
    a->minor_count = 0;
    for (int k = (int)floor(a->lo); k <= (int)ceil(a->hi); k++) {
        double base = pow(10.0, k);
        for (int m = 1; m <= 9; m++) {
            double v = log10(m * base);
            if (v < a->lo - 1e-9 || v > a->hi + 1e-9) continue;
            int labelled = m == 1 ? ((k - first) % every == 0) : (decades < 2 && (m == 2 || m == 5));
            if (labelled && a->count < MAX_TICKS) {
                a->ticks[a->count] = v;
                format_log(m * base, a->labels[a->count], sizeof a->labels[0]);
                a->count++;
            } else if (a->minor_count < MAX_TICKS * 8) {
                a->minor[a->minor_count++] = v;
            }
        }
    }
}

/* Picks the densest ticks whose labels keep a gap of `gap` pixels between
 * them: along x the label widths matter, along y their heights. */
static void choose_ticks(axis *a, int horizontal, int scale)
{
    int length = abs(a->pixel_hi - a->pixel_lo);
    int gap = 12 * scale;
    int text_h = 7 * scale;
    if (a->log) {
        for (int every = 1; every < 64; every++) {
            log_ticks(a, every);
            double spacing = a->count > 1 ? length * (a->ticks[1] - a->ticks[0]) / (a->hi - a->lo)
                                          : length;
            int need = (horizontal ? widest_label(a, scale) : text_h) + gap;
            if (spacing >= need) return;
        }
        return;
    }
    int most = length / (horizontal ? 40 * scale : 25 * scale);
    if (most > MAX_TICKS / 2) most = MAX_TICKS / 2;
    for (int target = most; target >= 1; target--) {
        linear_ticks(a, target);
        double spacing = a->count > 1 ? length * (a->ticks[1] - a->ticks[0]) / (a->hi - a->lo)
                                      : length;
        int need = (horizontal ? widest_label(a, scale) : text_h) + gap;
        if (spacing >= need) return;
    }
    linear_ticks(a, 1);
}

/* Fits [lo, hi] (drawn units) around the finite values with a 5% margin. */
static void fit_range(axis *a, double data_lo, double data_hi, double fixed_lo, double fixed_hi)
{
    double lo = axis_value(a, fixed_lo), hi = axis_value(a, fixed_hi);
    if (isfinite(lo) && isfinite(hi) && lo < hi) {
        a->lo = lo;
        a->hi = hi;
        return;
    }
    if (!(data_lo <= data_hi)) { /* no data */
        a->lo = 0;
        a->hi = 1;
        return;
    }
    if (data_lo == data_hi) {
        double d = a->log ? 0.5 : (data_lo != 0 ? fabs(data_lo) * 0.1 : 1.0);
        data_lo -= d;
        data_hi += d;
    }
    double pad = (data_hi - data_lo) * 0.05;
    a->lo = data_lo - pad;
    a->hi = data_hi + pad;
}

/* ---- Series helpers --------------------------------------------------------- */

static double series_x(const mf_plot_series *s, int i) { return s->x ? s->x[i] : (double)i; }

static mf_rgb series_color(const mf_plot_series *s, int index)
{
    return s->has_color ? s->color : mf_palette(index);
}

static int has_label(const char *text) { return text && *text; }

/* ---- Legend ------------------------------------------------------------------ */

typedef struct {
    int x, y, w, h;
} box;

static int box_contains(box b, double x, double y)
{
    return x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h;
}

/* How much of the data a legend at b would hide: points along every drawn
 * line, sampled every few pixels, so a line through the box counts too. */
static long data_under(box b, double *const *px, double *const *py, const mf_plot_spec *spec,
                       int scatter)
{
    long hits = 0;
    for (int s = 0; s < spec->series_count; s++) {
        const mf_plot_series *ser = &spec->series[s];
        int lines = !scatter && ser->style != MF_LINE_NONE;
        for (int i = 0; i < ser->n; i++) {
            double x0 = px[s][i], y0 = py[s][i];
            if (!isfinite(x0) || !isfinite(y0)) continue;
            hits += box_contains(b, x0, y0);
            if (!lines || i + 1 == ser->n) continue;
            double x1 = px[s][i + 1], y1 = py[s][i + 1];
            if (!isfinite(x1) || !isfinite(y1)) continue;
            int steps = (int)fmin(hypot(x1 - x0, y1 - y0) / 4.0, 10000.0);
            for (int k = 1; k < steps; k++)
                hits += box_contains(b, x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps);
        }
    }
    return hits;
}

static void draw_legend(mf_canvas *c, const mf_plot_spec *spec, int scatter, box plot,
                        double *const *px, double *const *py, int scale, double line_width)
{
    int entries = 0, text_w = 0;
    for (int s = 0; s < spec->series_count; s++)
        if (has_label(spec->series[s].label)) {
            entries++;
            int w = mf_text_width(spec->series[s].label, scale);
            if (w > text_w) text_w = w;
        }
    if (!entries || spec->legend == MF_LEGEND_NONE) return;

    int pad = 6 * scale, row = 12 * scale, sample = scatter ? 10 * scale : 30 * scale;
    box b = {0, 0, pad + sample + pad + text_w + pad, pad + entries * row - 5 * scale + pad};
    int inset = 8 * scale;
    box corners[4]; /* top-right, top-left, bottom-right, bottom-left */
    for (int k = 0; k < 4; k++) {
        corners[k] = b;
        corners[k].x = (k % 2 == 0) ? plot.x + plot.w - inset - b.w : plot.x + inset;
        corners[k].y = (k < 2) ? plot.y + inset : plot.y + plot.h - inset - b.h;
    }
    switch (spec->legend) {
    case MF_LEGEND_TOP_RIGHT: b = corners[0]; break;
    case MF_LEGEND_TOP_LEFT: b = corners[1]; break;
    case MF_LEGEND_BOTTOM_RIGHT: b = corners[2]; break;
    case MF_LEGEND_BOTTOM_LEFT: b = corners[3]; break;
    default: {
        long best = -1;
        for (int k = 0; k < 4; k++) {
            long hidden = data_under(corners[k], px, py, spec, scatter);
            if (best < 0 || hidden < best) {
                best = hidden;
                b = corners[k];
            }
        }
    }
    }

    mf_fill_rect(c, b.x, b.y, b.w, b.h, MF_WHITE);
    mf_draw_rect(c, b.x, b.y, b.w, b.h, 1, LEGEND_BORDER);
    int y = b.y + pad;
    for (int s = 0; s < spec->series_count; s++) {
        const mf_plot_series *ser = &spec->series[s];
        if (!has_label(ser->label)) continue;
        mf_rgb color = series_color(ser, s);
        double mid_y = y + 3 * scale, x0 = b.x + pad, x1 = x0 + sample;
        if (!scatter && ser->style != MF_LINE_NONE) {
            double xs[2] = {x0, x1}, ys[2] = {mid_y, mid_y};
            mf_draw_polyline(c, xs, ys, 2, line_width, ser->style, color);
        }
        mf_marker marker = ser->marker;
        if (scatter && marker == MF_MARKER_NONE) marker = MF_MARKER_CIRCLE;
        if (marker != MF_MARKER_NONE)
            mf_draw_marker(c, (x0 + x1) / 2, mid_y, 4.0 + 3.0 * scale, marker, color);
        mf_draw_text(c, (int)x1 + pad, y, ser->label, scale, TEXT_COLOR);
        y += row;
    }
}

/* ---- The chart -------------------------------------------------------------- */

static mf_status validate(const mf_canvas *c, const mf_plot_spec *spec, box *region,
                          mf_error *err)
{
    if (!c || !c->pixels) return mf_fail(err, MF_ERR_CONFIG, "plot: no canvas");
    if (!spec) return mf_fail(err, MF_ERR_CONFIG, "plot: no spec");
    if (spec->series_count < 0 || (spec->series_count > 0 && !spec->series))
        return mf_fail(err, MF_ERR_CONFIG, "plot: series_count is %d but series is %s",
                       spec->series_count, spec->series ? "set" : "NULL");
    for (int s = 0; s < spec->series_count; s++) {
        const mf_plot_series *ser = &spec->series[s];
        if (ser->n < 0 || (ser->n > 0 && !ser->y))
            return mf_fail(err, MF_ERR_CONFIG, "plot: series %d has n = %d%s", s, ser->n,
                           ser->n < 0 ? "" : " but no y values");
    }
    *region = (box){spec->region_x, spec->region_y, spec->region_w, spec->region_h};
    if (region->w == 0 || region->h == 0) *region = (box){0, 0, c->width, c->height};
    if (region->x < 0 || region->y < 0 || region->w < 0 || region->h < 0 ||
        region->w > c->width - region->x || region->h > c->height - region->y)
        return mf_fail(err, MF_ERR_CONFIG, "plot: region %dx%d at (%d, %d) is not inside the "
                       "%dx%d canvas", region->w, region->h, region->x, region->y, c->width,
                       c->height);
    if (region->w < 120 || region->h < 90)
        return mf_fail(err, MF_ERR_CONFIG, "plot: region %dx%d is too small for a chart "
                       "(at least 120x90)", region->w, region->h);
    return MF_OK;
}

static mf_status render(mf_canvas *c, const mf_plot_spec *spec, int scatter, mf_error *err)
{
    box region = {0, 0, 0, 0};
    mf_status status = validate(c, spec, &region, err);
    if (status) return status;

    int scale = spec->text_scale > 0 ? spec->text_scale : 1;
    if (spec->text_scale <= 0) {
        /* About 7-pixel text up to ~1000 pixels wide, then larger, so the
         * labels stay in proportion when a big chart is scaled down. */
        int by_size = (int)fmin(region.w / 900.0, region.h / 600.0) + 1;
        scale = by_size < 1 ? 1 : by_size;
    }
    double line_width = spec->line_width > 0 ? spec->line_width : 2.0 * scale;
    double marker_size = scatter ? 5.0 + 3.0 * scale : 2.0 * line_width + 3.0;

    /* Data extent in drawn units. */
    axis ax = {.log = spec->log_x}, ay = {.log = spec->log_y};
    double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
    for (int s = 0; s < spec->series_count; s++) {
        const mf_plot_series *ser = &spec->series[s];
        for (int i = 0; i < ser->n; i++) {
            double x = axis_value(&ax, series_x(ser, i)), y = axis_value(&ay, ser->y[i]);
            if (!isfinite(x) || !isfinite(y)) continue;
            x_lo = fmin(x_lo, x);
            x_hi = fmax(x_hi, x);
            y_lo = fmin(y_lo, y);
            y_hi = fmax(y_hi, y);
        }
    }
    fit_range(&ax, x_lo, x_hi, spec->x_min, spec->x_max);
    fit_range(&ay, y_lo, y_hi, spec->y_min, spec->y_max);

    /* Vertical layout first: it does not depend on the tick labels. */
    int pad = 8 * scale, text_h = 7 * scale, tick = 4 * scale;
    int title_scale = scale + 1;
    int top = pad + (has_label(spec->title) ? mf_text_height(spec->title, title_scale) + pad : 0);
    int bottom = tick + 4 * scale + text_h + pad +
                 (has_label(spec->x_title) ? mf_text_height(spec->x_title, scale) + pad : 0);
    box plot = {0, region.y + top, 0, region.h - top - bottom};
    if (plot.h < 30)
        return mf_fail(err, MF_ERR_CONFIG, "plot: region %dx%d leaves no room for the data "
                       "after titles (try a smaller text_scale)", region.w, region.h);
    ay.pixel_lo = plot.y + plot.h - 1;
    ay.pixel_hi = plot.y;
    choose_ticks(&ay, 0, scale);

    /* Then the left margin holds the widest y label and the y title. */
    int left = pad + (has_label(spec->y_title) ? mf_text_height(spec->y_title, scale) + pad : 0) +
               widest_label(&ay, scale) + 4 * scale + tick;
    int right = pad + 12 * scale; /* room for half of the last x label */
    plot.x = region.x + left;
    plot.w = region.w - left - right;
    if (plot.w < 40)
        return mf_fail(err, MF_ERR_CONFIG, "plot: region %dx%d leaves no room for the data "
                       "after labels (try a smaller text_scale)", region.w, region.h);
    ax.pixel_lo = plot.x;
    ax.pixel_hi = plot.x + plot.w - 1;
    choose_ticks(&ax, 1, scale);

    /* Every series in pixel coordinates, NaN where a point cannot be drawn. */
    double **px = calloc((size_t)spec->series_count + 1, sizeof *px);
    double **py = calloc((size_t)spec->series_count + 1, sizeof *py);
    if (!px || !py) {
        free(px);
        free(py);
        return mf_fail(err, MF_ERR_NOMEM, "plot: out of memory");
    }
    for (int s = 0; s < spec->series_count && status == MF_OK; s++) {
        const mf_plot_series *ser = &spec->series[s];
        px[s] = malloc(((size_t)ser->n + 1) * sizeof **px);
        py[s] = malloc(((size_t)ser->n + 1) * sizeof **py);
        if (!px[s] || !py[s]) {
            status = mf_fail(err, MF_ERR_NOMEM, "plot: out of memory for series %d", s);
            break;
        }
        for (int i = 0; i < ser->n; i++) {
            double x = axis_value(&ax, series_x(ser, i)), y = axis_value(&ay, ser->y[i]);
            int ok = isfinite(x) && isfinite(y);
            px[s][i] = ok ? axis_pixel(&ax, x) : NAN;
            py[s][i] = ok ? axis_pixel(&ay, y) : NAN;
        }
    }

    if (status == MF_OK) {
        mf_canvas_set_clip(c, region.x, region.y, region.w, region.h);
        mf_fill_rect(c, region.x, region.y, region.w, region.h, MF_WHITE);

        /* Grid and ticks. */
        int y_end = plot.y + plot.h - 1;
        for (int i = 0; i < ax.count; i++) {
            int x = (int)lround(axis_pixel(&ax, ax.ticks[i]));
            if (!spec->no_grid) mf_fill_rect(c, x, plot.y, 1, plot.h, GRID_COLOR);
            mf_fill_rect(c, x, y_end + 1, 1, tick, FRAME_COLOR);
            int w = mf_text_width(ax.labels[i], scale);
            mf_draw_text(c, x - w / 2, y_end + tick + 4 * scale, ax.labels[i], scale, TEXT_COLOR);
        }
        for (int i = 0; i < ay.count; i++) {
            int y = (int)lround(axis_pixel(&ay, ay.ticks[i]));
            if (!spec->no_grid) mf_fill_rect(c, plot.x, y, plot.w, 1, GRID_COLOR);
            mf_fill_rect(c, plot.x - tick, y, tick, 1, FRAME_COLOR);
            int w = mf_text_width(ay.labels[i], scale);
            mf_draw_text(c, plot.x - tick - 4 * scale - w, y - text_h / 2, ay.labels[i], scale,
                         TEXT_COLOR);
        }
        for (int i = 0; i < ax.minor_count; i++)
            mf_fill_rect(c, (int)lround(axis_pixel(&ax, ax.minor[i])), y_end + 1, 1, tick / 2,
                         FRAME_COLOR);
        for (int i = 0; i < ay.minor_count; i++)
            mf_fill_rect(c, plot.x - tick / 2, (int)lround(axis_pixel(&ay, ay.minor[i])),
                         tick / 2, 1, FRAME_COLOR);
        mf_draw_rect(c, plot.x - 1, plot.y - 1, plot.w + 2, plot.h + 2, 1, FRAME_COLOR);

        /* Titles. */
        if (has_label(spec->title))
            mf_draw_text(c, plot.x + (plot.w - mf_text_width(spec->title, title_scale)) / 2,
                         region.y + pad, spec->title, title_scale, TEXT_COLOR);
        if (has_label(spec->x_title))
            mf_draw_text(c, plot.x + (plot.w - mf_text_width(spec->x_title, scale)) / 2,
                         region.y + region.h - pad - mf_text_height(spec->x_title, scale),
                         spec->x_title, scale, TEXT_COLOR);
        if (has_label(spec->y_title))
            mf_draw_text_vertical(c, region.x + pad,
                                  plot.y + (plot.h - mf_text_width(spec->y_title, scale)) / 2,
                                  spec->y_title, scale, TEXT_COLOR);

        /* Data, kept inside the frame. */
        mf_canvas_set_clip(c, plot.x, plot.y, plot.w, plot.h);
        for (int s = 0; s < spec->series_count; s++) {
            const mf_plot_series *ser = &spec->series[s];
            mf_rgb color = series_color(ser, s);
            if (!scatter)
                mf_draw_polyline(c, px[s], py[s], ser->n, line_width, ser->style, color);
            mf_marker marker = ser->marker;
            if (scatter && marker == MF_MARKER_NONE) marker = MF_MARKER_CIRCLE;
            for (int i = 0; marker != MF_MARKER_NONE && i < ser->n; i++)
                mf_draw_marker(c, px[s][i], py[s][i], marker_size, marker, color);
        }
        /* Point labels after all markers so no marker covers a label; to the
         * left of the point when the right side would leave the frame. */
        for (int s = 0; scatter && s < spec->series_count; s++) {
            const mf_plot_series *ser = &spec->series[s];
            for (int i = 0; ser->point_labels && i < ser->n; i++) {
                const char *text = ser->point_labels[i];
                if (!has_label(text) || !box_contains(plot, px[s][i], py[s][i])) continue;
                int w = mf_text_width(text, scale), gap = (int)(marker_size / 2) + 3 * scale;
                int x = (int)lround(px[s][i]) + gap;
                if (x + w > plot.x + plot.w - 2) x = (int)lround(px[s][i]) - gap - w;
                mf_draw_text(c, x, (int)lround(py[s][i]) - text_h / 2, text, scale, TEXT_COLOR);
            }
        }
        draw_legend(c, spec, scatter, plot, px, py, scale, line_width);
        mf_canvas_reset_clip(c);
    }

    for (int s = 0; s < spec->series_count; s++) {
        free(px[s]);
        free(py[s]);
    }
    free(px);
    free(py);
    return status;
}

mf_status mf_plot_lines(mf_canvas *canvas, const mf_plot_spec *spec, mf_error *err)
{
    return render(canvas, spec, 0, err);
}

mf_status mf_plot_scatter(mf_canvas *canvas, const mf_plot_spec *spec, mf_error *err)
{
    return render(canvas, spec, 1, err);
}

static mf_status plot_png(const char *path, int width, int height, const mf_plot_spec *spec,
                          int scatter, mf_error *err)
{
    mf_canvas canvas;
    mf_status status = mf_canvas_create(&canvas, width, height, MF_WHITE, err);
    if (status) return status;
    status = render(&canvas, spec, scatter, err);
    if (status == MF_OK) status = mf_png_write(path, &canvas, err);
    mf_canvas_free(&canvas);
    return status;
}

mf_status mf_plot_lines_png(const char *path, int width, int height, const mf_plot_spec *spec,
                            mf_error *err)
{
    return plot_png(path, width, height, spec, 0, err);
}

mf_status mf_plot_scatter_png(const char *path, int width, int height,
                              const mf_plot_spec *spec, mf_error *err)
{
    return plot_png(path, width, height, spec, 1, err);
}
