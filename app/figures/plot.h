/* Line and scatter charts drawn with Cairo, and what they are made of:
 * colors, colormaps, text measured by Cairo, point labels placed so that no
 * two overlap. Coordinates are Cairo user units (pixels for PNG, points for
 * SVG and PDF), x to the right and y down. */
#ifndef MF_FIGURES_PLOT_H
#define MF_FIGURES_PLOT_H

#include <cairo.h>
#include <stdint.h>

#include "minformer/core.h"

/* ---- colors ----------------------------------------------------------------- */

typedef struct {
    double r, g, b; /* 0..1 */
} mf_color;

/* Ten distinct colors (matplotlib's tab10) for series; i wraps around. */
#define MF_PALETTE_SIZE 10
mf_color mf_palette(int i);

typedef enum {
    MF_COLORMAP_VIRIDIS = 0, /* dark blue -> green -> yellow */
    MF_COLORMAP_INFERNO,     /* black -> red -> pale yellow */
    MF_COLORMAP_GREY
} mf_colormap;

/* The map's color at t in [0, 1] as 8-bit RGB (t clamped; NaN gives t = 0). */
void mf_colormap_rgb(mf_colormap map, float t, uint8_t rgb[3]);

/* ---- text ------------------------------------------------------------------- */

/* "DejaVu Sans" at size units (the em), bold or not. */
void mf_text_font(cairo_t *cr, double size, int bold);
/* The advance width of text in the current font. */
double mf_text_width(cairo_t *cr, const char *text);
/* Ascent plus descent of the current font: the height of one line's box. */
double mf_text_line_height(cairo_t *cr);
/* Draws text with its box's top-left corner at (x, y). */
void mf_text_draw(cairo_t *cr, double x, double y, const char *text);

/* ---- point labels ------------------------------------------------------------ */

typedef struct {
    double x, y, w, h;
} mf_rect;

/* Whether a and b share any area (touching edges do not count). */
int mf_rect_overlap(mf_rect a, mf_rect b);

typedef struct {
    double px, py; /* the point the label names */
    double w, h;   /* its text's box */
    mf_rect box;   /* out: where the text goes */
    int placed;    /* out: 0 when no free room was found; then not drawn */
    int leader;    /* out: set when box is away from the point and needs a line */
} mf_point_label;

/* Places each label beside its point: first in one of eight positions around
 * it (gap away from its centre), else farther out along rings of growing
 * radius, to be joined by a leader line. A box must lie inside area and
 * overlap no box placed before it and no obstacle (markers, a legend).
 * Greedy in the given order. */
void mf_place_labels(mf_point_label *labels, int n, mf_rect area, const mf_rect *obstacles,
                     int obstacle_count, double gap);

/* ---- charts ------------------------------------------------------------------ */

typedef enum {
    MF_LINE_SOLID = 0,
    MF_LINE_DASHED,
    MF_LINE_DOTTED,
    MF_LINE_NONE /* markers only */
} mf_line_style;

typedef enum {
    MF_MARKER_NONE = 0,
    MF_MARKER_CIRCLE,
    MF_MARKER_SQUARE,
    MF_MARKER_TRIANGLE,
    MF_MARKER_DIAMOND,
    MF_MARKER_CROSS
} mf_marker;

typedef struct {
    const double *x;   /* n values, or NULL for 0, 1, ..., n-1 */
    const double *y;   /* n values; a non-finite x or y leaves the point out */
    int n;
    const char *label; /* legend entry; NULL or "" keeps it out of the legend */
    mf_color color;    /* used when has_color is set, else mf_palette(index) */
    int has_color;
    mf_line_style style; /* lines only */
    mf_marker marker;    /* lines: none by default; scatter: none means circle */
    const char *const *point_labels; /* scatter: n labels (entries may be NULL) */
    /* n half-lengths of a vertical error bar through each point (y +- y_err[i],
     * e.g. a standard deviation), or NULL; a non-finite or non-positive one
     * draws no bar. The y range fits the bars too. */
    const double *y_err;
    /* Lines only: n half-widths of a shaded band y +- y_band[i] (e.g. the
     * standard deviation over seeds) in the series' color at MF_BAND_ALPHA,
     * drawn under every line of the chart; NULL: no band. A point whose
     * half-width is not finite (or whose y is not) breaks the band there; a
     * lone point gets a short bar. The y range fits the band too. */
    const double *y_band;
} mf_plot_series;

/* The opacity of bands: light enough that a band's own line and the other
 * rows' lines read through it, and that two overlapping bands still differ. */
#define MF_BAND_ALPHA 0.18

/* One legend row; a NULL label is a blank row between groups. */
typedef struct {
    const char *label;
    mf_color color;
    mf_line_style style; /* MF_LINE_NONE: a marker alone */
    mf_marker marker;
    int band; /* a shaded patch of the band's color behind the sample */
} mf_legend_entry;

/* Zero-initialise and fill in what you need; zeros give sensible defaults. */
typedef struct {
    const char *title, *x_title, *y_title; /* any may be NULL */
    const mf_plot_series *series;
    int series_count;
    int scatter; /* markers and point labels instead of lines */
    /* A fixed range when min < max (both > 0 on a log axis), else fitted
     * to the data with a 5% margin. */
    double x_min, x_max, y_min, y_max;
    int log_x, log_y; /* base-10 axes; values <= 0 are left out */
    int integer_x;    /* x ticks on whole numbers only (epochs) */
    /* The legend, right of the plot area; NULL: one row per labelled series. */
    const mf_legend_entry *legend;
    int legend_count;
    double font_size;  /* 0: picked from the region's size */
    double line_width; /* 0: picked from the font size */
} mf_plot_spec;

#define MF_AXIS_MAX_TICKS 64

typedef struct {
    int log;             /* values are drawn as log10(value) */
    int integer;         /* linear ticks at least 1 apart */
    double lo, hi;       /* the range, in drawn (possibly log10) units */
    double at_lo, at_hi; /* where lo and hi land on the page */
    int count;
    double ticks[MF_AXIS_MAX_TICKS]; /* in drawn units */
    char labels[MF_AXIS_MAX_TICKS][24];
    int minor_count;
    double minor[MF_AXIS_MAX_TICKS * 8]; /* unlabelled log ticks at 2..9 x 10^k */
} mf_axis;

/* Where everything of a chart goes, computed before anything is drawn. */
typedef struct {
    mf_rect region, plot, legend; /* legend.w == 0: no legend */
    double font, title_font, legend_font, line_width, marker_size;
    mf_axis x, y;
    /* Scatter: one label per point with a label inside the plot, in series
     * order; text[i] is label i's string. */
    mf_point_label *labels;
    const char **text;
    int label_count;
} mf_plot_layout;

/* Lays out the chart in region of the surface cr draws on (text measured
 * through cr). MF_ERR_CONFIG on a malformed spec or a region too small to
 * hold a chart. mf_plot_layout_free releases it (safe on a zeroed one). */
mf_status mf_plot_layout_make(cairo_t *cr, const mf_plot_spec *spec, mf_rect region,
                              mf_plot_layout *layout, mf_error *err);
void mf_plot_layout_free(mf_plot_layout *layout);

/* Lays out and draws the chart: white region, axes with ticks at round
 * values, titles, the data, point labels, the legend. */
mf_status mf_plot_draw(cairo_t *cr, const mf_plot_spec *spec, mf_rect region, mf_error *err);

#endif
