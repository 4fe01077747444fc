/* Line and scatter charts with Cairo. The layout is computed first from the
 * measured text (margins from the actual tick labels and titles, the legend
 * right of the plot area, point labels placed clear of each other), then
 * drawn; tick steps are 1, 2 or 5 times a power of ten, thinned until their
 * labels keep apart. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figures/plot.h"

#define PI 3.14159265358979323846

static const mf_color text_color = {0.16, 0.16, 0.16};
static const mf_color frame_color = {0.43, 0.43, 0.43};
static const mf_color grid_color = {0.9, 0.9, 0.9};
static const mf_color legend_border = {0.75, 0.75, 0.75};
static const mf_color leader_color = {0.6, 0.6, 0.6};

static void set_color(cairo_t *cr, mf_color c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

static int has_text(const char *s) { return s && *s; }

/* ---- axes ------------------------------------------------------------------- */

/* The drawn coordinate of a data value; NaN when it cannot be drawn. */
static double axis_value(const mf_axis *a, double v)
{
    /* Beyond 1e300 the span of an axis could overflow to infinity. */
    if (!isfinite(v) || fabs(v) > 1e300) return NAN;
    if (a->log) return v > 0 ? log10(v) : NAN;
    return v;
}

static double axis_at(const mf_axis *a, double drawn)
{
    return a->at_lo + (drawn - a->lo) / (a->hi - a->lo) * (a->at_hi - a->at_lo);
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
    int decimals = (int)ceil(-log10(step / div) - 1e-9);
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
    if (v >= 1e9) snprintf(out, n, "%gG", v / 1e9);
    else if (v >= 1e6) snprintf(out, n, "%gM", v / 1e6);
    else if (v >= 1e3) snprintf(out, n, "%gk", v / 1e3);
    else snprintf(out, n, "%g", v);
}

static double widest_label(cairo_t *cr, const mf_axis *a)
{
    double w = 0;
    for (int i = 0; i < a->count; i++) w = fmax(w, mf_text_width(cr, a->labels[i]));
    return w;
}

static void linear_ticks(mf_axis *a, int target)
{
    double step = nice_step((a->hi - a->lo) / (target > 1 ? target : 1));
    if (a->integer && step < 1) step = 1;
    double largest = fmax(fabs(a->lo), fabs(a->hi));
    a->count = 0;
    a->minor_count = 0;
    for (double k = ceil(a->lo / step - 1e-9); a->count < MF_AXIS_MAX_TICKS; k++) {
        double v = k * step;
        if (v > a->hi + step * 1e-9) break;
        a->ticks[a->count] = v;
        format_linear(v, step, largest, a->labels[a->count], sizeof a->labels[0]);
        a->count++;
    }
}

/* Decades, every `every` of them; within less than two decades also 2 and 5
 * times each, so a short log axis still has labels. */
static void log_ticks(mf_axis *a, int every)
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
            if (labelled && a->count < MF_AXIS_MAX_TICKS) {
                a->ticks[a->count] = v;
                format_log(m * base, a->labels[a->count], sizeof a->labels[0]);
                a->count++;
            } else if (a->minor_count < MF_AXIS_MAX_TICKS * 8) {
                a->minor[a->minor_count++] = v;
            }
        }
    }
}

/* The densest ticks whose labels keep a gap of about one em between them:
 * along x the label widths matter, along y their heights. */
static void choose_ticks(cairo_t *cr, mf_axis *a, int horizontal, double font)
{
    double length = fabs(a->at_hi - a->at_lo), text_h = mf_text_line_height(cr);
    if (a->log) {
        for (int every = 1; every < 64; every++) {
            log_ticks(a, every);
            double spacing = a->count > 1 ? length * (a->ticks[1] - a->ticks[0]) / (a->hi - a->lo)
                                          : length;
            if (spacing >= (horizontal ? widest_label(cr, a) : text_h) + font) return;
        }
        return;
    }
    int most = (int)(length / (horizontal ? 3.5 * font : 2.2 * font));
    if (most > MF_AXIS_MAX_TICKS / 2) most = MF_AXIS_MAX_TICKS / 2;
    for (int target = most; target >= 1; target--) {
        linear_ticks(a, target);
        double spacing = a->count > 1 ? length * (a->ticks[1] - a->ticks[0]) / (a->hi - a->lo)
                                      : length;
        if (spacing >= (horizontal ? widest_label(cr, a) : text_h) + font) return;
    }
    linear_ticks(a, 1);
}

/* Fits [lo, hi] (drawn units) around the finite values with a 5% margin. */
static void fit_range(mf_axis *a, double data_lo, double data_hi, double fixed_lo,
                      double fixed_hi)
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

/* ---- series ----------------------------------------------------------------- */

static mf_color series_color(const mf_plot_series *s, int index)
{
    return s->has_color ? s->color : mf_palette(index);
}

static mf_marker series_marker(const mf_plot_spec *spec, const mf_plot_series *s)
{
    return spec->scatter && s->marker == MF_MARKER_NONE ? MF_MARKER_CIRCLE : s->marker;
}

/* Point i of s on the page; 0 when it cannot be drawn. */
static int point_at(const mf_plot_layout *lay, const mf_plot_series *s, int i, double *x,
                    double *y)
{
    double vx = axis_value(&lay->x, s->x ? s->x[i] : (double)i), vy = axis_value(&lay->y, s->y[i]);
    if (!isfinite(vx) || !isfinite(vy)) return 0;
    *x = axis_at(&lay->x, vx);
    *y = axis_at(&lay->y, vy);
    /* Far outside a fixed range the page coordinate loses all meaning. */
    return fabs(*x) < 1e7 && fabs(*y) < 1e7;
}

static int inside(mf_rect r, double x, double y)
{
    return x >= r.x && x <= r.x + r.w && y >= r.y && y <= r.y + r.h;
}

/* ---- layout ------------------------------------------------------------------ */

static int legend_rows(const mf_plot_spec *spec)
{
    if (spec->legend) return spec->legend_count;
    int rows = 0;
    for (int s = 0; s < spec->series_count; s++) rows += has_text(spec->series[s].label);
    return rows;
}

static const char *legend_text(const mf_plot_spec *spec, int row)
{
    if (spec->legend) return spec->legend[row].label;
    for (int s = 0; s < spec->series_count; s++)
        if (has_text(spec->series[s].label) && row-- == 0) return spec->series[s].label;
    return NULL;
}

static double legend_sample_width(const mf_plot_spec *spec, double font)
{
    return spec->scatter ? font : 2.6 * font;
}

static mf_status validate(const mf_plot_spec *spec, mf_rect region, mf_error *err)
{
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
    if (spec->legend_count < 0 || (spec->legend_count > 0 && !spec->legend))
        return mf_fail(err, MF_ERR_CONFIG, "plot: legend_count is %d but legend is %s",
                       spec->legend_count, spec->legend ? "set" : "NULL");
    if (!(region.w >= 120 && region.h >= 90) || !isfinite(region.w + region.h + region.x + region.y))
        return mf_fail(err, MF_ERR_CONFIG, "plot: region %gx%g is too small for a chart "
                       "(at least 120x90)", region.w, region.h);
    return MF_OK;
}

void mf_plot_layout_free(mf_plot_layout *lay)
{
    if (!lay) return;
    free(lay->labels);
    free(lay->text);
    lay->labels = NULL;
    lay->text = NULL;
    lay->label_count = 0;
}

/* Scatter: every labelled point inside the plot gets a box clear of the
 * markers, the legend and the labels placed before it. */
static mf_status place_point_labels(cairo_t *cr, const mf_plot_spec *spec, mf_plot_layout *lay,
                                    mf_error *err)
{
    int points = 0, labelled = 0;
    for (int s = 0; s < spec->series_count; s++) {
        const mf_plot_series *ser = &spec->series[s];
        for (int i = 0; i < ser->n; i++) {
            double x, y;
            if (!point_at(lay, ser, i, &x, &y) || !inside(lay->plot, x, y)) continue;
            points++;
            labelled += ser->point_labels && has_text(ser->point_labels[i]);
        }
    }
    if (!labelled) return MF_OK;
    mf_rect *obstacles = malloc(((size_t)points + 1) * sizeof *obstacles);
    lay->labels = calloc((size_t)labelled, sizeof *lay->labels);
    lay->text = calloc((size_t)labelled, sizeof *lay->text);
    if (!obstacles || !lay->labels || !lay->text) {
        free(obstacles);
        mf_plot_layout_free(lay);
        return mf_fail(err, MF_ERR_NOMEM, "plot: out of memory for the point labels");
    }
    mf_text_font(cr, lay->font * 0.85, 0);
    double h = mf_text_line_height(cr), m = lay->marker_size / 2 + 1;
    int k = 0, o = 0;
    for (int s = 0; s < spec->series_count; s++) {
        const mf_plot_series *ser = &spec->series[s];
        for (int i = 0; i < ser->n; i++) {
            double x, y;
            if (!point_at(lay, ser, i, &x, &y) || !inside(lay->plot, x, y)) continue;
            obstacles[o++] = (mf_rect){x - m, y - m, 2 * m, 2 * m};
            if (!ser->point_labels || !has_text(ser->point_labels[i])) continue;
            lay->text[k] = ser->point_labels[i];
            lay->labels[k] = (mf_point_label){.px = x, .py = y, .h = h,
                                              .w = mf_text_width(cr, ser->point_labels[i])};
            k++;
        }
    }
    if (lay->legend.w > 0) obstacles[o++] = lay->legend;
    lay->label_count = k;
    mf_rect area = {lay->plot.x + 2, lay->plot.y + 2, lay->plot.w - 4, lay->plot.h - 4};
    mf_place_labels(lay->labels, k, area, obstacles, o, lay->marker_size / 2 + lay->font * 0.3);
    free(obstacles);
    return MF_OK;
}

mf_status mf_plot_layout_make(cairo_t *cr, const mf_plot_spec *spec, mf_rect region,
                              mf_plot_layout *lay, mf_error *err)
{
    memset(lay, 0, sizeof *lay);
    mf_status status = validate(spec, region, err);
    if (status) return status;
    lay->region = region;
    double font = spec->font_size > 0 ? spec->font_size
                                      : fmax(10.0, fmin(28.0, fmin(region.w / 75, region.h / 50)));
    double pad = font * 0.6, tick = font * 0.35;
    lay->font = font;
    lay->title_font = font * 1.25;
    lay->line_width = spec->line_width > 0 ? spec->line_width : fmax(1.5, font / 8);
    lay->marker_size = spec->scatter ? font * 0.7 : 2 * lay->line_width + 3;

    /* Data extent in drawn units. */
    lay->x.log = spec->log_x;
    lay->x.integer = spec->integer_x;
    lay->y.log = spec->log_y;
    double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
    for (int s = 0; s < spec->series_count; s++) {
        const mf_plot_series *ser = &spec->series[s];
        for (int i = 0; i < ser->n; i++) {
            double x = axis_value(&lay->x, ser->x ? ser->x[i] : (double)i);
            double y = axis_value(&lay->y, ser->y[i]);
            if (!isfinite(x) || !isfinite(y)) continue;
            x_lo = fmin(x_lo, x);
            x_hi = fmax(x_hi, x);
            y_lo = fmin(y_lo, y);
            y_hi = fmax(y_hi, y);
            double e = ser->y_err ? ser->y_err[i] : 0.0;
            if (!spec->scatter && ser->y_band && isfinite(ser->y_band[i]))
                e = fmax(isfinite(e) ? e : 0.0, ser->y_band[i]);
            if (isfinite(e) && e > 0) {
                double lo = axis_value(&lay->y, ser->y[i] - e), hi = axis_value(&lay->y, ser->y[i] + e);
                if (isfinite(lo)) y_lo = fmin(y_lo, lo);
                if (isfinite(hi)) y_hi = fmax(y_hi, hi);
            }
        }
    }
    fit_range(&lay->x, x_lo, x_hi, spec->x_min, spec->x_max);
    fit_range(&lay->y, y_lo, y_hi, spec->y_min, spec->y_max);

    /* Vertical layout first: it does not depend on the tick labels. */
    mf_text_font(cr, lay->title_font, 1);
    double title_h = has_text(spec->title) ? mf_text_line_height(cr) + pad : 0;
    mf_text_font(cr, font, 0);
    double text_h = mf_text_line_height(cr);
    double top = pad + title_h + pad * 0.5;
    double bottom = tick + pad * 0.5 + text_h + pad + (has_text(spec->x_title) ? text_h + pad * 0.5 : 0);
    lay->plot = (mf_rect){0, region.y + top, 0, region.h - top - bottom};
    if (lay->plot.h < 30)
        return mf_fail(err, MF_ERR_CONFIG, "plot: region %gx%g leaves no room for the data "
                       "after titles (try a smaller font)", region.w, region.h);

    /* The legend: as wide as its longest entry (up to 38% of the region;
     * longer entries are shortened when drawn), its font shrunk until every
     * row fits beside the plot area. */
    int rows = legend_rows(spec);
    double legend_w = 0;
    if (rows > 0) {
        double lf = font * 0.9;
        for (int tries = 0;; tries++) {
            mf_text_font(cr, lf, 0);
            double widest = 0;
            for (int r = 0; r < rows; r++) widest = fmax(widest, mf_text_width(cr, legend_text(spec, r)));
            /* One unit spare so that rounding cannot shorten the widest entry. */
            legend_w = fmin(region.w * 0.38, 3 * pad + legend_sample_width(spec, lf) + widest + 1);
            double legend_h = 2 * pad * 0.8 + rows * lf * 1.45;
            if (legend_h <= lay->plot.h || lf <= 6.0 || tries == 8) {
                lay->legend = (mf_rect){0, lay->plot.y, legend_w, fmin(legend_h, lay->plot.h)};
                break;
            }
            lf = fmax(6.0, lf * lay->plot.h / legend_h);
        }
        lay->legend_font = lf;
        mf_text_font(cr, font, 0);
    }

    lay->y.at_lo = lay->plot.y + lay->plot.h;
    lay->y.at_hi = lay->plot.y;
    choose_ticks(cr, &lay->y, 0, font);

    /* Then the left margin holds the widest y label and the y title, the
     * right one the legend (or half of the last x label). */
    double left = pad + (has_text(spec->y_title) ? text_h + pad * 0.5 : 0) +
                  widest_label(cr, &lay->y) + pad * 0.5 + tick;
    double right = rows > 0 ? pad + legend_w + pad : pad + font * 1.5;
    lay->plot.x = region.x + left;
    lay->plot.w = region.w - left - right;
    if (lay->plot.w < 40)
        return mf_fail(err, MF_ERR_CONFIG, "plot: region %gx%g leaves no room for the data "
                       "after labels (try a smaller font)", region.w, region.h);
    lay->x.at_lo = lay->plot.x;
    lay->x.at_hi = lay->plot.x + lay->plot.w;
    choose_ticks(cr, &lay->x, 1, font);
    if (rows > 0) lay->legend.x = lay->plot.x + lay->plot.w + pad;

    if (spec->scatter) return place_point_labels(cr, spec, lay, err);
    return MF_OK;
}

/* ---- drawing ------------------------------------------------------------------- */

/* A 1-unit line on pixel centres, so grid lines and the frame stay sharp in PNG. */
static double crisp(double v) { return floor(v) + 0.5; }

static void set_dash(cairo_t *cr, mf_line_style style, double lw)
{
    if (style == MF_LINE_DASHED) {
        double d[2] = {3 * lw + 4, 2 * lw + 3};
        cairo_set_dash(cr, d, 2, 0);
    } else if (style == MF_LINE_DOTTED) {
        double d[2] = {0, 2 * lw + 1}; /* with round caps: dots */
        cairo_set_dash(cr, d, 2, 0);
    } else {
        cairo_set_dash(cr, NULL, 0, 0);
    }
}

static void draw_marker(cairo_t *cr, double x, double y, double size, mf_marker marker,
                        mf_color color, int outline)
{
    double h = size / 2;
    cairo_new_path(cr);
    switch (marker) {
    case MF_MARKER_CIRCLE: cairo_arc(cr, x, y, h, 0, 2 * PI); break;
    case MF_MARKER_SQUARE: cairo_rectangle(cr, x - h * 0.85, y - h * 0.85, 1.7 * h, 1.7 * h); break;
    case MF_MARKER_DIAMOND:
        cairo_move_to(cr, x, y - h * 1.15);
        cairo_line_to(cr, x + h * 1.15, y);
        cairo_line_to(cr, x, y + h * 1.15);
        cairo_line_to(cr, x - h * 1.15, y);
        cairo_close_path(cr);
        break;
    case MF_MARKER_TRIANGLE:
        cairo_move_to(cr, x, y - h * 1.1);
        cairo_line_to(cr, x + h * 1.1, y + h * 0.75);
        cairo_line_to(cr, x - h * 1.1, y + h * 0.75);
        cairo_close_path(cr);
        break;
    case MF_MARKER_CROSS:
        cairo_save(cr);
        set_dash(cr, MF_LINE_SOLID, 0);
        cairo_set_line_width(cr, h * 0.55);
        cairo_move_to(cr, x - h, y - h);
        cairo_line_to(cr, x + h, y + h);
        cairo_move_to(cr, x - h, y + h);
        cairo_line_to(cr, x + h, y - h);
        set_color(cr, color);
        cairo_stroke(cr);
        cairo_restore(cr);
        return;
    default: return;
    }
    set_color(cr, color);
    if (!outline) {
        cairo_fill(cr);
        return;
    }
    /* A white rim keeps touching markers of a scatter plot apart. */
    cairo_fill_preserve(cr);
    cairo_save(cr);
    set_dash(cr, MF_LINE_SOLID, 0);
    cairo_set_line_width(cr, fmax(0.8, size / 10));
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_stroke(cr);
    cairo_restore(cr);
}

/* text cut at a UTF-8 boundary and ended with an ellipsis so it fits room. */
static const char *fit_text(cairo_t *cr, const char *text, double room, char *buf, size_t size)
{
    if (mf_text_width(cr, text) <= room) return text;
    size_t n = strlen(text);
    if (n + 4 > size) n = size - 4;
    for (; n > 0; n--) {
        if (((unsigned char)text[n] & 0xC0) == 0x80) continue; /* inside a character */
        memcpy(buf, text, n);
        memcpy(buf + n, "\xe2\x80\xa6", 4);
        if (mf_text_width(cr, buf) <= room) return buf;
    }
    return "";
}

static void draw_axes(cairo_t *cr, const mf_plot_spec *spec, const mf_plot_layout *lay)
{
    mf_rect p = lay->plot;
    double font = lay->font, pad = font * 0.6, tick = font * 0.35;
    cairo_set_line_width(cr, 1.0);
    set_dash(cr, MF_LINE_SOLID, 0);
    /* Grid. */
    set_color(cr, grid_color);
    for (int i = 0; i < lay->x.count; i++) {
        double x = crisp(axis_at(&lay->x, lay->x.ticks[i]));
        cairo_move_to(cr, x, p.y);
        cairo_line_to(cr, x, p.y + p.h);
    }
    for (int i = 0; i < lay->y.count; i++) {
        double y = crisp(axis_at(&lay->y, lay->y.ticks[i]));
        cairo_move_to(cr, p.x, y);
        cairo_line_to(cr, p.x + p.w, y);
    }
    cairo_stroke(cr);
    /* Ticks, minor ticks and the frame. */
    set_color(cr, frame_color);
    double bottom = p.y + p.h;
    for (int i = 0; i < lay->x.count; i++) {
        double x = crisp(axis_at(&lay->x, lay->x.ticks[i]));
        cairo_move_to(cr, x, bottom);
        cairo_line_to(cr, x, bottom + tick);
    }
    for (int i = 0; i < lay->x.minor_count; i++) {
        double x = crisp(axis_at(&lay->x, lay->x.minor[i]));
        cairo_move_to(cr, x, bottom);
        cairo_line_to(cr, x, bottom + tick / 2);
    }
    for (int i = 0; i < lay->y.count; i++) {
        double y = crisp(axis_at(&lay->y, lay->y.ticks[i]));
        cairo_move_to(cr, p.x, y);
        cairo_line_to(cr, p.x - tick, y);
    }
    for (int i = 0; i < lay->y.minor_count; i++) {
        double y = crisp(axis_at(&lay->y, lay->y.minor[i]));
        cairo_move_to(cr, p.x, y);
        cairo_line_to(cr, p.x - tick / 2, y);
    }
    cairo_stroke(cr);
    cairo_rectangle(cr, crisp(p.x), crisp(p.y), floor(p.w), floor(p.h));
    cairo_stroke(cr);

    /* Tick labels and titles. */
    set_color(cr, text_color);
    mf_text_font(cr, font, 0);
    double text_h = mf_text_line_height(cr);
    for (int i = 0; i < lay->x.count; i++) {
        double x = axis_at(&lay->x, lay->x.ticks[i]);
        mf_text_draw(cr, x - mf_text_width(cr, lay->x.labels[i]) / 2, bottom + tick + pad * 0.5,
                     lay->x.labels[i]);
    }
    for (int i = 0; i < lay->y.count; i++) {
        double y = axis_at(&lay->y, lay->y.ticks[i]);
        mf_text_draw(cr, p.x - tick - pad * 0.5 - mf_text_width(cr, lay->y.labels[i]),
                     y - text_h / 2, lay->y.labels[i]);
    }
    mf_rect r = lay->region;
    if (has_text(spec->x_title))
        mf_text_draw(cr, p.x + (p.w - mf_text_width(cr, spec->x_title)) / 2,
                     r.y + r.h - pad - text_h, spec->x_title);
    if (has_text(spec->y_title)) {
        /* A quarter turn counter-clockwise: reads bottom to top. */
        cairo_save(cr);
        cairo_translate(cr, r.x + pad, p.y + p.h / 2);
        cairo_rotate(cr, -PI / 2);
        mf_text_draw(cr, -mf_text_width(cr, spec->y_title) / 2, 0, spec->y_title);
        cairo_restore(cr);
    }
    if (has_text(spec->title)) {
        mf_text_font(cr, lay->title_font, 1);
        double w = mf_text_width(cr, spec->title);
        /* Centred over the plot area unless that would cut it off. */
        double x = fmax(r.x + pad, fmin(p.x + (p.w - w) / 2, r.x + r.w - pad - w));
        mf_text_draw(cr, x, r.y + pad, spec->title);
    }
}

/* Point i's band edges on the page (y - band at *lo, y + band at *hi); 0
 * when the point or its band cannot be drawn. */
static int band_at(const mf_plot_layout *lay, const mf_plot_series *s, int i, double *x,
                   double *lo, double *hi)
{
    double y, e = s->y_band[i];
    if (!isfinite(e) || e < 0 || !point_at(lay, s, i, x, &y)) return 0;
    double a = axis_value(&lay->y, s->y[i] - e), b = axis_value(&lay->y, s->y[i] + e);
    if (!isfinite(a) || !isfinite(b)) return 0;
    *lo = axis_at(&lay->y, a);
    *hi = axis_at(&lay->y, b);
    return fabs(*lo) < 1e7 && fabs(*hi) < 1e7;
}

/* s's band: one filled polygon per run of drawable points (upper edge left
 * to right, lower edge back), a lone point a bar one marker wide. */
static void draw_band(cairo_t *cr, const mf_plot_layout *lay, const mf_plot_series *s,
                      mf_color color)
{
    cairo_new_path(cr);
    for (int i = 0; i < s->n;) {
        double x, lo, hi;
        if (!band_at(lay, s, i, &x, &lo, &hi)) {
            i++;
            continue;
        }
        int j = i + 1;
        while (j < s->n && band_at(lay, s, j, &x, &lo, &hi)) j++;
        if (j - i == 1) {
            band_at(lay, s, i, &x, &lo, &hi);
            double h = lay->marker_size / 2 + lay->line_width;
            cairo_rectangle(cr, x - h, hi, 2 * h, lo - hi);
        } else {
            for (int k = i; k < j; k++) {
                band_at(lay, s, k, &x, &lo, &hi);
                if (k == i) cairo_move_to(cr, x, hi);
                else cairo_line_to(cr, x, hi);
            }
            for (int k = j - 1; k >= i; k--) {
                band_at(lay, s, k, &x, &lo, &hi);
                cairo_line_to(cr, x, lo);
            }
            cairo_close_path(cr);
        }
        i = j;
    }
    cairo_set_source_rgba(cr, color.r, color.g, color.b, MF_BAND_ALPHA);
    cairo_fill(cr);
}

static void draw_data(cairo_t *cr, const mf_plot_spec *spec, const mf_plot_layout *lay)
{
    cairo_save(cr);
    cairo_rectangle(cr, lay->plot.x, lay->plot.y, lay->plot.w, lay->plot.h);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    /* Every band before any line, so that no band hides another row's line. */
    for (int s = 0; !spec->scatter && s < spec->series_count; s++)
        if (spec->series[s].y_band) draw_band(cr, lay, &spec->series[s], series_color(&spec->series[s], s));
    for (int s = 0; s < spec->series_count; s++) {
        const mf_plot_series *ser = &spec->series[s];
        mf_color color = series_color(ser, s);
        if (!spec->scatter && ser->style != MF_LINE_NONE) {
            /* A point that cannot be drawn breaks the line there. */
            int open = 0;
            for (int i = 0; i < ser->n; i++) {
                double x, y;
                if (!point_at(lay, ser, i, &x, &y)) {
                    open = 0;
                    continue;
                }
                if (open) cairo_line_to(cr, x, y);
                else cairo_move_to(cr, x, y);
                open = 1;
            }
            cairo_set_line_width(cr, lay->line_width);
            set_dash(cr, ser->style, lay->line_width);
            set_color(cr, color);
            cairo_stroke(cr);
        }
        /* Error bars under the markers: a vertical line with short caps. */
        for (int i = 0; ser->y_err && i < ser->n; i++) {
            double x, y, e = ser->y_err[i];
            if (!(isfinite(e) && e > 0) || !point_at(lay, ser, i, &x, &y)) continue;
            double lo = axis_value(&lay->y, ser->y[i] - e), hi = axis_value(&lay->y, ser->y[i] + e);
            if (!isfinite(lo) || !isfinite(hi)) continue;
            double y0 = axis_at(&lay->y, lo), y1 = axis_at(&lay->y, hi), cap = lay->marker_size;
            cairo_move_to(cr, x, y0);
            cairo_line_to(cr, x, y1);
            cairo_move_to(cr, x - cap, y0);
            cairo_line_to(cr, x + cap, y0);
            cairo_move_to(cr, x - cap, y1);
            cairo_line_to(cr, x + cap, y1);
            cairo_set_line_width(cr, fmax(1.0, 0.6 * lay->line_width));
            set_dash(cr, MF_LINE_SOLID, 0);
            set_color(cr, color);
            cairo_stroke(cr);
        }
        mf_marker marker = series_marker(spec, ser);
        for (int i = 0; marker != MF_MARKER_NONE && i < ser->n; i++) {
            double x, y;
            if (point_at(lay, ser, i, &x, &y))
                draw_marker(cr, x, y, lay->marker_size, marker, color, spec->scatter);
        }
    }
    cairo_restore(cr);
}

static void draw_point_labels(cairo_t *cr, const mf_plot_layout *lay)
{
    mf_text_font(cr, lay->font * 0.85, 0);
    cairo_set_line_width(cr, 0.8);
    set_dash(cr, MF_LINE_SOLID, 0);
    set_color(cr, leader_color);
    for (int i = 0; i < lay->label_count; i++) {
        const mf_point_label *l = &lay->labels[i];
        if (!l->placed || !l->leader) continue;
        /* From the marker's rim to the nearest point of the box. */
        double tx = fmax(l->box.x, fmin(l->px, l->box.x + l->box.w));
        double ty = fmax(l->box.y, fmin(l->py, l->box.y + l->box.h));
        double dx = tx - l->px, dy = ty - l->py, d = hypot(dx, dy), r = lay->marker_size / 2 + 1;
        if (d <= r) continue;
        cairo_move_to(cr, l->px + dx * r / d, l->py + dy * r / d);
        cairo_line_to(cr, tx, ty);
    }
    cairo_stroke(cr);
    set_color(cr, text_color);
    for (int i = 0; i < lay->label_count; i++)
        if (lay->labels[i].placed)
            mf_text_draw(cr, lay->labels[i].box.x, lay->labels[i].box.y, lay->text[i]);
}

static void draw_legend(cairo_t *cr, const mf_plot_spec *spec, const mf_plot_layout *lay)
{
    mf_rect b = lay->legend;
    if (!(b.w > 0)) return;
    double lf = lay->legend_font, pad = lay->font * 0.6, row = lf * 1.45;
    double sample = legend_sample_width(spec, lf), room = b.w - 3 * pad - sample;
    cairo_rectangle(cr, crisp(b.x), crisp(b.y), floor(b.w), floor(b.h));
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_fill_preserve(cr);
    cairo_set_line_width(cr, 1.0);
    set_dash(cr, MF_LINE_SOLID, 0);
    set_color(cr, legend_border);
    cairo_stroke(cr);
    mf_text_font(cr, lf, 0);
    double text_h = mf_text_line_height(cr);
    int rows = legend_rows(spec);
    for (int r = 0; r < rows; r++) {
        double top = b.y + pad * 0.8 + r * row, mid = top + row / 2;
        if (top + row > b.y + b.h + 0.5) break;
        mf_legend_entry e = {0};
        if (spec->legend) {
            e = spec->legend[r];
        } else {
            for (int s = 0, k = r; s < spec->series_count; s++)
                if (has_text(spec->series[s].label) && k-- == 0) {
                    const mf_plot_series *ser = &spec->series[s];
                    e = (mf_legend_entry){ser->label, series_color(ser, s),
                                          spec->scatter ? MF_LINE_NONE : ser->style,
                                          series_marker(spec, ser),
                                          !spec->scatter && ser->y_band != NULL};
                    break;
                }
        }
        if (!has_text(e.label)) continue;
        double x0 = b.x + pad, x1 = x0 + sample;
        if (e.band) {
            double h = fmin(row * 0.8, lf * 1.1);
            cairo_rectangle(cr, x0, mid - h / 2, sample, h);
            cairo_set_source_rgba(cr, e.color.r, e.color.g, e.color.b, MF_BAND_ALPHA);
            cairo_fill(cr);
        }
        if (e.style != MF_LINE_NONE) {
            cairo_move_to(cr, x0, mid);
            cairo_line_to(cr, x1, mid);
            cairo_set_line_width(cr, lay->line_width);
            cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
            set_dash(cr, e.style, lay->line_width);
            set_color(cr, e.color);
            cairo_stroke(cr);
            set_dash(cr, MF_LINE_SOLID, 0);
        }
        if (e.marker != MF_MARKER_NONE)
            draw_marker(cr, (x0 + x1) / 2, mid, fmin(lay->marker_size, lf * 0.8), e.marker, e.color,
                        spec->scatter);
        char buf[256];
        set_color(cr, text_color);
        mf_text_draw(cr, x1 + pad, mid - text_h / 2, fit_text(cr, e.label, room, buf, sizeof buf));
    }
}

mf_status mf_plot_draw(cairo_t *cr, const mf_plot_spec *spec, mf_rect region, mf_error *err)
{
    mf_plot_layout lay;
    mf_status status = mf_plot_layout_make(cr, spec, region, &lay, err);
    if (status) return status;
    cairo_save(cr);
    cairo_rectangle(cr, region.x, region.y, region.w, region.h);
    cairo_clip_preserve(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_fill(cr);
    draw_axes(cr, spec, &lay);
    draw_data(cr, spec, &lay);
    draw_point_labels(cr, &lay);
    draw_legend(cr, spec, &lay);
    cairo_restore(cr);
    mf_plot_layout_free(&lay);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        return mf_fail(err, MF_ERR_NOMEM, "plot: drawing failed: %s",
                       cairo_status_to_string(cairo_status(cr)));
    return MF_OK;
}
