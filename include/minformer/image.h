/* minformer pictures: an RGB canvas with drawing primitives and a built-in
 * bitmap font, PNG output, PNG/PGM/PPM input for `predict`, heat maps and
 * line/scatter charts. Everything is drawn in C so no plotting stack is
 * needed to look at a training run.
 *
 * Coordinates are pixels, x to the right and y down, (0, 0) the top-left
 * corner. Drawing never fails: whatever falls outside the canvas (or its clip
 * rectangle) is dropped. */
#ifndef MINFORMER_IMAGE_H
#define MINFORMER_IMAGE_H

#include "core.h"

/* ---- Canvas ------------------------------------------------------------ */

typedef struct {
    uint8_t r, g, b;
} mf_rgb;

#define MF_RGB(r, g, b) ((mf_rgb){(uint8_t)(r), (uint8_t)(g), (uint8_t)(b)})
#define MF_WHITE MF_RGB(255, 255, 255)
#define MF_BLACK MF_RGB(0, 0, 0)

typedef struct {
    int width, height;
    uint8_t *pixels; /* height x width x 3, interleaved RGB, rows top to bottom */
    /* Drawing touches only [clip_x0, clip_x1) x [clip_y0, clip_y1), so a
     * chart's data cannot spill over its axes. The whole canvas after create. */
    int clip_x0, clip_y0, clip_x1, clip_y1;
} mf_canvas;

/* The largest canvas or image side accepted anywhere (also the reader's cap). */
#define MF_IMAGE_MAX_SIDE 16384

/* Allocates a width x height canvas (each side 1..MF_IMAGE_MAX_SIDE) filled
 * with background. On failure *canvas is zeroed. */
mf_status mf_canvas_create(mf_canvas *canvas, int width, int height, mf_rgb background,
                           mf_error *err);
void mf_canvas_free(mf_canvas *canvas); /* safe on a zeroed or freed canvas */
void mf_canvas_fill(mf_canvas *canvas, mf_rgb color); /* ignores the clip */
/* Limits drawing to the rectangle (intersected with the canvas). */
void mf_canvas_set_clip(mf_canvas *canvas, int x, int y, int w, int h);
void mf_canvas_reset_clip(mf_canvas *canvas);
void mf_canvas_set_pixel(mf_canvas *canvas, int x, int y, mf_rgb color);
/* Black outside the canvas. */
mf_rgb mf_canvas_get_pixel(const mf_canvas *canvas, int x, int y);
/* Mixes color over the pixel with opacity alpha in [0, 1]. */
void mf_canvas_blend_pixel(mf_canvas *canvas, int x, int y, mf_rgb color, float alpha);

/* ---- Shapes (anti-aliased unless noted) ---------------------------------- */

typedef enum {
    MF_LINE_SOLID = 0,
    MF_LINE_DASHED,
    MF_LINE_DOTTED,
    MF_LINE_NONE /* charts: markers only */
} mf_line_style;

typedef enum {
    MF_MARKER_NONE = 0,
    MF_MARKER_CIRCLE,
    MF_MARKER_SQUARE,
    MF_MARKER_TRIANGLE,
    MF_MARKER_DIAMOND,
    MF_MARKER_CROSS
} mf_marker;

/* A segment with round ends, thickness pixels wide. */
void mf_draw_line(mf_canvas *canvas, double x0, double y0, double x1, double y1,
                  double thickness, mf_rgb color);
/* Joins n points. The dash pattern runs on across vertices, so a dashed curve
 * made of many short segments still shows dashes. A non-finite coordinate
 * breaks the line there. */
void mf_draw_polyline(mf_canvas *canvas, const double *xs, const double *ys, int n,
                      double thickness, mf_line_style style, mf_rgb color);
/* Axis-aligned, not anti-aliased. */
void mf_fill_rect(mf_canvas *canvas, int x, int y, int w, int h, mf_rgb color);
void mf_draw_rect(mf_canvas *canvas, int x, int y, int w, int h, int thickness, mf_rgb color);
void mf_fill_circle(mf_canvas *canvas, double cx, double cy, double radius, mf_rgb color);
void mf_draw_circle(mf_canvas *canvas, double cx, double cy, double radius, double thickness,
                    mf_rgb color);
/* A filled marker about size pixels across, centred on (cx, cy). */
void mf_draw_marker(mf_canvas *canvas, double cx, double cy, double size, mf_marker marker,
                    mf_rgb color);

/* ---- Text ---------------------------------------------------------------- */

/* A 5x7 bitmap font (descenders 2 pixels below) covering printable ASCII;
 * other bytes draw as '?', one per UTF-8 character. Each glyph cell is
 * 6 x 10 pixels times scale (scale >= 1; smaller values count as 1). '\n'
 * starts a new line. (x, y) is the top-left corner of the text. */
int mf_text_width(const char *text, int scale);  /* of the widest line */
int mf_text_height(const char *text, int scale); /* of all lines */
/* Returns the width drawn. */
int mf_draw_text(mf_canvas *canvas, int x, int y, const char *text, int scale, mf_rgb color);
/* Rotated a quarter turn counter-clockwise so it reads bottom to top, as a
 * y-axis title does; (x, y) is the top-left corner of the rotated box, which
 * is mf_text_height wide and mf_text_width tall. Returns the height drawn. */
int mf_draw_text_vertical(mf_canvas *canvas, int x, int y, const char *text, int scale,
                          mf_rgb color);

/* ---- Images and heat maps --------------------------------------------------- */

/* Draws a width x height image with channels 1 (grey) or 3 (RGB), pixels
 * planar (c, y, x) as the datasets and mf_image store them, stretched by
 * nearest neighbour onto the w x h rectangle at (x, y). Use a whole multiple
 * of the image size for even pixels (28 x 28 shown at 280 x 280). */
void mf_blit_image(mf_canvas *canvas, int x, int y, int w, int h, const uint8_t *pixels,
                   int width, int height, int channels);

typedef enum {
    MF_COLORMAP_VIRIDIS = 0, /* dark blue -> green -> yellow */
    MF_COLORMAP_INFERNO,     /* black -> red -> pale yellow */
    MF_COLORMAP_GREY
} mf_colormap;

/* The map's color at t in [0, 1] (clamped; NaN gives the t = 0 color). */
mf_rgb mf_colormap_color(mf_colormap map, float t);

/* Draws a rows x cols grid of values (row-major) stretched by nearest
 * neighbour onto the w x h rectangle at (x, y), value vmin mapping to the
 * map's start and vmax to its end. vmin >= vmax (or a non-finite bound)
 * means the grid's own finite minimum and maximum. alpha in [0, 1] is the
 * opacity over what is already there, so an attention map can be laid over
 * the image it looks at. Non-finite cells are left undrawn. */
void mf_blit_heatmap(mf_canvas *canvas, int x, int y, int w, int h, const float *values,
                     int rows, int cols, float vmin, float vmax, mf_colormap map, float alpha);

/* A vertical color scale in the w x h rectangle, vmax at the top, with the
 * two values printed to its right in label_color. */
void mf_draw_colorbar(mf_canvas *canvas, int x, int y, int w, int h, mf_colormap map,
                      float vmin, float vmax, int text_scale, mf_rgb label_color);

/* ---- Files -------------------------------------------------------------- */

/* Writes the canvas as an 8-bit RGB PNG. The file appears complete or not at
 * all: the data goes to PATH.tmp in the same directory, is flushed and
 * fsync'd, then renamed over path. Refuses a path that exists and is not a
 * regular file (renaming over /dev/null would replace the device). */
mf_status mf_png_write(const char *path, const mf_canvas *canvas, mf_error *err);

/* A decoded picture: channels 1 (grey) or 3 (RGB), 8 bits per sample,
 * pixels PLANAR (c, y, x), the layout the model takes. */
typedef struct {
    int width, height, channels;
    uint8_t *pixels; /* channels x height x width */
} mf_image;

/* Reads a PNG (any bit depth and color type: palettes expand to RGB, 16-bit
 * samples round to 8 bits, alpha is composited over black, interlacing is
 * undone), a PGM (P5 binary, P2 ASCII) or a PPM (P6, P3) with maxval up to
 * 65535 (scaled to 0..255) and '#' comments. The format is detected from the
 * content, not the name. Grey files give 1 channel, color files 3. Sides are
 * limited to MF_IMAGE_MAX_SIDE. Errors: MF_ERR_IO when the file cannot be
 * read, MF_ERR_FORMAT (naming the file and the problem) when its content is
 * not a valid image. On failure *img is zeroed. */
mf_status mf_image_read(const char *path, mf_image *img, mf_error *err);
/* The same from memory; name only labels error messages. */
mf_status mf_image_decode(const uint8_t *data, size_t size, const char *name, mf_image *img,
                          mf_error *err);
/* Resamples src to width x height with channels 1 or 3 (grey from RGB by
 * Rec. 601 luma, RGB from grey by copying), averaging the source area under
 * each output pixel so a large photo shrinks without aliasing. dst must not
 * be src. */
mf_status mf_image_convert(const mf_image *src, int channels, int width, int height,
                           mf_image *dst, mf_error *err);
void mf_image_free(mf_image *img); /* safe on a zeroed or freed image */

/* ---- Charts ------------------------------------------------------------- */

/* Ten distinct colors (matplotlib's tab10) for series; i wraps around. */
#define MF_PALETTE_SIZE 10
mf_rgb mf_palette(int i);

typedef struct {
    const double *x;   /* n values, or NULL for 0, 1, ..., n-1 */
    const double *y;   /* n values; a non-finite y leaves a gap */
    int n;
    const char *label; /* legend entry; NULL or "" keeps it out of the legend */
    /* Used only when has_color is set; otherwise the series takes
     * mf_palette(its index in the spec). Give a train curve and its
     * validation curve the same color and different styles. */
    mf_rgb color;
    int has_color;
    mf_line_style style; /* MF_LINE_SOLID by default; ignored by scatter plots */
    mf_marker marker;    /* lines: MF_MARKER_NONE by default; scatter: none means circle */
    /* Scatter plots: n labels (entries may be NULL) printed beside the points. */
    const char *const *point_labels;
} mf_plot_series;

typedef enum {
    MF_LEGEND_AUTO = 0, /* the inner corner that hides the fewest points */
    MF_LEGEND_TOP_RIGHT,
    MF_LEGEND_TOP_LEFT,
    MF_LEGEND_BOTTOM_RIGHT,
    MF_LEGEND_BOTTOM_LEFT,
    MF_LEGEND_NONE
} mf_legend_position;

/* Zero-initialise and fill in what you need; zeros give sensible defaults. */
typedef struct {
    const char *title, *x_title, *y_title; /* any may be NULL */
    const mf_plot_series *series;
    int series_count;
    /* A fixed range when min < max (both > 0 on a log axis), else fitted
     * to the data with a 5% margin. */
    double x_min, x_max, y_min, y_max;
    int log_x, log_y;           /* base-10 axes; values <= 0 are left out */
    mf_legend_position legend;
    int no_grid;                /* set to drop the light grid lines */
    double line_width;          /* pixels; 0 means 2 */
    int text_scale;             /* font scale; 0 picks one from the size */
    /* The rectangle of the canvas to draw in; w or h 0 means the whole
     * canvas, so several charts can share one picture. */
    int region_x, region_y, region_w, region_h;
} mf_plot_spec;

/* Draws a line chart: axes with ticks at round values and their labels, axis
 * titles, a title, a legend and each series as a polyline (plus markers if
 * it asks for them). MF_ERR_CONFIG on a malformed spec or a region too small
 * to hold a chart (under 120 x 90 pixels). */
mf_status mf_plot_lines(mf_canvas *canvas, const mf_plot_spec *spec, mf_error *err);
/* The same with markers only and point labels, e.g. accuracy against
 * parameter count with log_x set. */
mf_status mf_plot_scatter(mf_canvas *canvas, const mf_plot_spec *spec, mf_error *err);
/* Draw on a new white width x height canvas and write it with mf_png_write. */
mf_status mf_plot_lines_png(const char *path, int width, int height, const mf_plot_spec *spec,
                            mf_error *err);
mf_status mf_plot_scatter_png(const char *path, int width, int height,
                              const mf_plot_spec *spec, mf_error *err);

#endif
