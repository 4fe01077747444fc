/* The RGB canvas and what draws on it: pixels, anti-aliased lines, circles
 * and markers, rectangles, image and heat-map blits, colormaps.
 *
 * Pixel (x, y) is centred on the integer point (x, y), so a 1-pixel line
 * drawn along y = 10 fills row 10 exactly instead of half-filling rows 9 and
 * 10. Anti-aliasing uses the distance from a pixel's centre to the shape:
 * coverage = clamp(edge + 0.5 - distance, 0, 1). */
#include "minformer/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Canvas ------------------------------------------------------------ */

mf_status mf_canvas_create(mf_canvas *canvas, int width, int height, mf_rgb background,
                           mf_error *err)
{
    memset(canvas, 0, sizeof *canvas);
    if (width < 1 || height < 1 || width > MF_IMAGE_MAX_SIDE || height > MF_IMAGE_MAX_SIDE)
        return mf_fail(err, MF_ERR_CONFIG, "canvas size %dx%d outside 1..%d", width, height,
                       MF_IMAGE_MAX_SIDE);
    uint8_t *pixels = malloc((size_t)width * (size_t)height * 3);
    if (!pixels)
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for a %dx%d canvas", width, height);
    canvas->width = width;
    canvas->height = height;
    canvas->pixels = pixels;
    mf_canvas_reset_clip(canvas);
    mf_canvas_fill(canvas, background);
    return MF_OK;
}

void mf_canvas_free(mf_canvas *canvas)
{
    if (!canvas) return;
    free(canvas->pixels);
    memset(canvas, 0, sizeof *canvas);
}

void mf_canvas_fill(mf_canvas *canvas, mf_rgb color)
{
    size_t n = (size_t)canvas->width * (size_t)canvas->height;
    uint8_t *p = canvas->pixels;
    for (size_t i = 0; i < n; i++, p += 3) {
        p[0] = color.r;
        p[1] = color.g;
        p[2] = color.b;
    }
}

static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void mf_canvas_set_clip(mf_canvas *canvas, int x, int y, int w, int h)
{
    /* Computed in 64 bits so x + w cannot overflow. */
    long long x1 = (long long)x + (w > 0 ? w : 0), y1 = (long long)y + (h > 0 ? h : 0);
    canvas->clip_x0 = clamp_int(x, 0, canvas->width);
    canvas->clip_y0 = clamp_int(y, 0, canvas->height);
    canvas->clip_x1 = (int)(x1 < canvas->clip_x0 ? canvas->clip_x0
                            : x1 > canvas->width ? canvas->width : x1);
    canvas->clip_y1 = (int)(y1 < canvas->clip_y0 ? canvas->clip_y0
                            : y1 > canvas->height ? canvas->height : y1);
}

void mf_canvas_reset_clip(mf_canvas *canvas)
{
    canvas->clip_x0 = canvas->clip_y0 = 0;
    canvas->clip_x1 = canvas->width;
    canvas->clip_y1 = canvas->height;
}

static int in_clip(const mf_canvas *c, int x, int y)
{
    return x >= c->clip_x0 && x < c->clip_x1 && y >= c->clip_y0 && y < c->clip_y1;
}

void mf_canvas_set_pixel(mf_canvas *canvas, int x, int y, mf_rgb color)
{
    if (!in_clip(canvas, x, y)) return;
    uint8_t *p = canvas->pixels + ((size_t)y * (size_t)canvas->width + (size_t)x) * 3;
    p[0] = color.r;
    p[1] = color.g;
    p[2] = color.b;
}

mf_rgb mf_canvas_get_pixel(const mf_canvas *canvas, int x, int y)
{
    if (x < 0 || y < 0 || x >= canvas->width || y >= canvas->height) return MF_BLACK;
    const uint8_t *p = canvas->pixels + ((size_t)y * (size_t)canvas->width + (size_t)x) * 3;
    return MF_RGB(p[0], p[1], p[2]);
}

static uint8_t mix(uint8_t under, uint8_t over, float alpha)
{
    return (uint8_t)lrintf((float)under + ((float)over - (float)under) * alpha);
}

void mf_canvas_blend_pixel(mf_canvas *canvas, int x, int y, mf_rgb color, float alpha)
{
    if (!(alpha > 0.0f) || !in_clip(canvas, x, y)) return; /* also drops NaN */
    if (alpha > 1.0f) alpha = 1.0f;
    uint8_t *p = canvas->pixels + ((size_t)y * (size_t)canvas->width + (size_t)x) * 3;
    p[0] = mix(p[0], color.r, alpha);
    p[1] = mix(p[1], color.g, alpha);
    p[2] = mix(p[2], color.b, alpha);
}

/* ---- Shapes ------------------------------------------------------------ */

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The integer range [*lo, *hi] of pixel centres within [a, b], limited to
 * [min, max); empty when *lo > *hi. Clamping in double first keeps a huge
 * coordinate from overflowing the conversion to int. */
static void pixel_span(double a, double b, int min, int max, int *lo, int *hi)
{
    *lo = (int)ceil(clampd(a, min - 1.0, max + 1.0));
    *hi = (int)floor(clampd(b, min - 1.0, max + 1.0));
    if (*lo < min) *lo = min;
    if (*hi > max - 1) *hi = max - 1;
}

/* A capsule: every point within r of the segment (x0,y0)-(x1,y1). Scans only
 * the pixels near the segment on each row, so a long diagonal costs its
 * length, not its bounding box. */
static void draw_capsule(mf_canvas *c, double x0, double y0, double x1, double y1, double r,
                         mf_rgb color)
{
    double reach = r + 1.0;
    int ya, yb;
    pixel_span(fmin(y0, y1) - reach, fmax(y0, y1) + reach, c->clip_y0, c->clip_y1, &ya, &yb);
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy, len = sqrt(len2);
    double box_x0 = fmin(x0, x1) - reach, box_x1 = fmax(x0, x1) + reach;
    for (int y = ya; y <= yb; y++) {
        double lo = box_x0, hi = box_x1;
        if (fabs(dy) > 1e-9 * len) {
            /* Points within reach of the infinite line on this row. */
            double mid = x0 + (y - y0) * dx / dy, half = reach * len / fabs(dy);
            lo = fmax(lo, mid - half);
            hi = fmin(hi, mid + half);
        }
        int xa, xb;
        pixel_span(lo, hi, c->clip_x0, c->clip_x1, &xa, &xb);
        for (int x = xa; x <= xb; x++) {
            double t = len2 > 0 ? ((x - x0) * dx + (y - y0) * dy) / len2 : 0.0;
            t = clampd(t, 0.0, 1.0);
            double d = hypot(x - (x0 + t * dx), y - (y0 + t * dy));
            double coverage = r + 0.5 - d;
            if (coverage > 0) mf_canvas_blend_pixel(c, x, y, color, (float)fmin(coverage, 1.0));
        }
    }
}

/* Cuts the segment to the clip rectangle grown by margin (Liang-Barsky).
 * Returns 0 when nothing is left; *t0, *t1 give the kept part as fractions
 * of the original, which the dash pattern needs to keep its phase. */
static int clip_segment(const mf_canvas *c, double x0, double y0, double x1, double y1,
                        double margin, double *t0, double *t1)
{
    double p[4] = {-(x1 - x0), x1 - x0, -(y1 - y0), y1 - y0};
    double q[4] = {x0 - (c->clip_x0 - margin), (c->clip_x1 - 1 + margin) - x0,
                   y0 - (c->clip_y0 - margin), (c->clip_y1 - 1 + margin) - y0};
    *t0 = 0.0;
    *t1 = 1.0;
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0.0) {
            if (q[i] < 0) return 0;
        } else {
            double t = q[i] / p[i];
            if (p[i] < 0) {
                if (t > *t1) return 0;
                if (t > *t0) *t0 = t;
            } else {
                if (t < *t0) return 0;
                if (t < *t1) *t1 = t;
            }
        }
    }
    return 1;
}

static int finite4(double a, double b, double c, double d)
{
    return isfinite(a) && isfinite(b) && isfinite(c) && isfinite(d);
}

void mf_draw_line(mf_canvas *canvas, double x0, double y0, double x1, double y1,
                  double thickness, mf_rgb color)
{
    double r = thickness / 2, t0, t1;
    if (!finite4(x0, y0, x1, y1) || !(r > 0)) return;
    if (!clip_segment(canvas, x0, y0, x1, y1, r + 2, &t0, &t1)) return;
    double dx = x1 - x0, dy = y1 - y0;
    draw_capsule(canvas, x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy, r, color);
}

void mf_draw_polyline(mf_canvas *canvas, const double *xs, const double *ys, int n,
                      double thickness, mf_line_style style, mf_rgb color)
{
    double r = thickness / 2;
    if (!xs || !ys || n < 1 || !(r > 0) || style == MF_LINE_NONE) return;
    /* Dash lengths grow with thickness so the pattern reads the same at any
     * width; a dot is a capsule of almost no length, i.e. a round dot. */
    double on, off;
    if (style == MF_LINE_DASHED) {
        on = 3.0 * thickness + 4.0;
        off = 2.0 * thickness + 3.0;
    } else if (style == MF_LINE_DOTTED) {
        on = 0.01;
        off = 2.0 * thickness + 1.0;
    } else {
        on = INFINITY;
        off = 0.0;
    }
    double period = on + off, phase = 0.0;
    for (int i = 0; i + 1 < n; i++) {
        double x0 = xs[i], y0 = ys[i], x1 = xs[i + 1], y1 = ys[i + 1];
        if (!finite4(x0, y0, x1, y1)) {
            phase = 0.0; /* a gap restarts the pattern */
            continue;
        }
        double dx = x1 - x0, dy = y1 - y0, len = hypot(dx, dy), t0, t1;
        if (!isfinite(len)) continue;
        if (!clip_segment(canvas, x0, y0, x1, y1, r + 2, &t0, &t1)) {
            if (isfinite(period)) phase = fmod(phase + len, period);
            continue;
        }
        if (!isfinite(period)) {
            draw_capsule(canvas, x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy, r,
                         color);
            continue;
        }
        /* Walk only the visible part, after moving the phase over the hidden
         * start, so a huge off-screen segment costs nothing. */
        double s = t0 * len, end = t1 * len;
        phase = fmod(phase + s, period);
        /* The 1e-9 tolerances make every step long enough to move s, so
         * rounding cannot stall the loop; the visible part is short. */
        while (end - s > 1e-9) {
            double step;
            if (phase < on - 1e-9) {
                step = fmin(on - phase, end - s);
                double a = s / len, b = (s + step) / len;
                draw_capsule(canvas, x0 + a * dx, y0 + a * dy, x0 + b * dx, y0 + b * dy, r, color);
            } else if (phase < period - 1e-9) {
                step = fmin(period - phase, end - s);
            } else {
                phase = 0.0;
                continue;
            }
            s += step;
            phase += step;
        }
        phase = fmod(phase + (len - end), period);
    }
    if (n == 1 && isfinite(xs[0]) && isfinite(ys[0]))
        draw_capsule(canvas, xs[0], ys[0], xs[0], ys[0], r, color);
}

void mf_fill_rect(mf_canvas *canvas, int x, int y, int w, int h, mf_rgb color)
{
    if (w <= 0 || h <= 0) return;
    long long x1 = (long long)x + w, y1 = (long long)y + h;
    int xa = x > canvas->clip_x0 ? x : canvas->clip_x0;
    int ya = y > canvas->clip_y0 ? y : canvas->clip_y0;
    int xb = x1 < canvas->clip_x1 ? (int)x1 : canvas->clip_x1;
    int yb = y1 < canvas->clip_y1 ? (int)y1 : canvas->clip_y1;
    for (int yy = ya; yy < yb; yy++) {
        uint8_t *p = canvas->pixels + ((size_t)yy * (size_t)canvas->width + (size_t)xa) * 3;
        for (int xx = xa; xx < xb; xx++, p += 3) {
            p[0] = color.r;
            p[1] = color.g;
            p[2] = color.b;
        }
    }
}

void mf_draw_rect(mf_canvas *canvas, int x, int y, int w, int h, int thickness, mf_rgb color)
{
    if (w <= 0 || h <= 0 || thickness <= 0) return;
    /* Drawn inside the rectangle, so its outer size is exactly w x h. */
    int t = thickness;
    if (2 * t >= w || 2 * t >= h) {
        mf_fill_rect(canvas, x, y, w, h, color);
        return;
    }
    mf_fill_rect(canvas, x, y, w, t, color);
    mf_fill_rect(canvas, x, y + h - t, w, t, color);
    mf_fill_rect(canvas, x, y + t, t, h - 2 * t, color);
    mf_fill_rect(canvas, x + w - t, y + t, t, h - 2 * t, color);
}

/* Calls coverage(dx, dy) for each pixel near (cx, cy) within reach and
 * blends color by the result. */
typedef double (*coverage_fn)(double dx, double dy, const double *shape);

static void fill_shape(mf_canvas *c, double cx, double cy, double reach, coverage_fn coverage,
                       const double *shape, mf_rgb color)
{
    if (!isfinite(cx) || !isfinite(cy) || !(reach > 0) || !isfinite(reach)) return;
    int xa, xb, ya, yb;
    pixel_span(cx - reach - 1, cx + reach + 1, c->clip_x0, c->clip_x1, &xa, &xb);
    pixel_span(cy - reach - 1, cy + reach + 1, c->clip_y0, c->clip_y1, &ya, &yb);
    for (int y = ya; y <= yb; y++)
        for (int x = xa; x <= xb; x++) {
            double a = coverage(x - cx, y - cy, shape);
            if (a > 0) mf_canvas_blend_pixel(c, x, y, color, (float)fmin(a, 1.0));
        }
}

static double disc_coverage(double dx, double dy, const double *shape)
{
    return shape[0] + 0.5 - hypot(dx, dy);
}

static double ring_coverage(double dx, double dy, const double *shape)
{
    return shape[1] / 2 + 0.5 - fabs(hypot(dx, dy) - shape[0]);
}

void mf_fill_circle(mf_canvas *canvas, double cx, double cy, double radius, mf_rgb color)
{
    double shape[1] = {radius};
    fill_shape(canvas, cx, cy, radius, disc_coverage, shape, color);
}

void mf_draw_circle(mf_canvas *canvas, double cx, double cy, double radius, double thickness,
                    mf_rgb color)
{
    if (!(thickness > 0)) return;
    double shape[2] = {radius, thickness};
    fill_shape(canvas, cx, cy, radius + thickness / 2, ring_coverage, shape, color);
}

/* Polygonal markers have no simple distance, so coverage is the fraction of
 * a 4 x 4 grid of samples inside the shape; shape[0] is the half size. */
static int inside_marker(double x, double y, mf_marker marker, double half)
{
    switch (marker) {
    case MF_MARKER_SQUARE:
        return fabs(x) <= half * 0.85 && fabs(y) <= half * 0.85;
    case MF_MARKER_DIAMOND:
        return fabs(x) + fabs(y) <= half * 1.15;
    case MF_MARKER_TRIANGLE: {
        /* Pointing up, centred on its centroid. */
        double top = -half * 1.1, bottom = half * 0.75, w = half * 1.1;
        if (y < top || y > bottom) return 0;
        return fabs(x) <= w * (y - top) / (bottom - top);
    }
    case MF_MARKER_CROSS: {
        double arm = half * 0.28; /* half the stroke width of an X */
        return fabs(x) <= half && fabs(y) <= half &&
               (fabs(x - y) <= arm * 1.414 || fabs(x + y) <= arm * 1.414);
    }
    default:
        return 0;
    }
}

static double marker_coverage(double dx, double dy, const double *s)
{
    int hits = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            hits += inside_marker(dx + (i - 1.5) / 4, dy + (j - 1.5) / 4, (mf_marker)s[1], s[0]);
    return hits / 16.0;
}

void mf_draw_marker(mf_canvas *canvas, double cx, double cy, double size, mf_marker marker,
                    mf_rgb color)
{
    if (!(size > 0)) return;
    if (marker == MF_MARKER_CIRCLE) {
        mf_fill_circle(canvas, cx, cy, size / 2, color);
    } else if (marker == MF_MARKER_SQUARE || marker == MF_MARKER_DIAMOND ||
               marker == MF_MARKER_TRIANGLE || marker == MF_MARKER_CROSS) {
        double shape[2] = {size / 2, (double)marker};
        fill_shape(canvas, cx, cy, size * 0.6, marker_coverage, shape, color);
    }
}

/* ---- Images and heat maps ---------------------------------------------- */

/* The destination rectangle clipped, with the source index of each pixel. */
static int blit_bounds(const mf_canvas *c, int x, int y, int w, int h, int *xa, int *xb,
                       int *ya, int *yb)
{
    if (w <= 0 || h <= 0) return 0;
    long long x1 = (long long)x + w, y1 = (long long)y + h;
    *xa = x > c->clip_x0 ? x : c->clip_x0;
    *ya = y > c->clip_y0 ? y : c->clip_y0;
    *xb = x1 < c->clip_x1 ? (int)x1 : c->clip_x1;
    *yb = y1 < c->clip_y1 ? (int)y1 : c->clip_y1;
    return *xa < *xb && *ya < *yb;
}

void mf_blit_image(mf_canvas *canvas, int x, int y, int w, int h, const uint8_t *pixels,
                   int width, int height, int channels)
{
    int xa, xb, ya, yb;
    if (!pixels || width <= 0 || height <= 0 || (channels != 1 && channels != 3)) return;
    if (!blit_bounds(canvas, x, y, w, h, &xa, &xb, &ya, &yb)) return;
    size_t plane = (size_t)width * (size_t)height;
    for (int yy = ya; yy < yb; yy++) {
        size_t sy = (size_t)((long long)(yy - y) * height / h);
        uint8_t *p = canvas->pixels + ((size_t)yy * (size_t)canvas->width + (size_t)xa) * 3;
        for (int xx = xa; xx < xb; xx++, p += 3) {
            size_t sx = (size_t)((long long)(xx - x) * width / w), i = sy * (size_t)width + sx;
            p[0] = pixels[i];
            p[1] = channels == 3 ? pixels[plane + i] : pixels[i];
            p[2] = channels == 3 ? pixels[2 * plane + i] : pixels[i];
        }
    }
}

/* Degree-6 polynomial fits to matplotlib's viridis and inferno (Matt Zucker,
 * CC0), per channel, constant term first: within about 1/255 of the tables,
 * without 256-entry tables in the source. */
static const double viridis_fit[3][7] = {
    {0.2777273272234177, 0.1050930431085774, -0.3308618287255563, -4.634230498983486,
     6.228269936347081, 4.776384997670288, -5.435455855934631},
    {0.005407344544966578, 1.404613529898575, 0.214847559468213, -5.799100973351585,
     14.17993336680509, -13.74514537774601, 4.645852612178535},
    {0.3340998053353061, 1.384590162594685, 0.09509516302823659, -19.33244095627987,
     56.69055260068105, -65.35303263337234, 26.3124352495832},
};
static const double inferno_fit[3][7] = {
    {0.0002189403691192265, 0.1065134194856116, 11.60249308247187, -41.70399613139459,
     77.162935699427, -71.31942824499214, 25.13112622477341},
    {0.001651004631001012, 0.5639564367884091, -3.972853965665698, 17.43639888205313,
     -33.40235894210092, 32.62606426397723, -12.24266895238567},
    {-0.01948089843709184, 3.932712388889277, -15.9423941062914, 44.35414519872813,
     -81.80730925738993, 73.20951985803202, -23.07032500287172},
};

static uint8_t channel_from_fit(const double *c, double t)
{
    double v = c[6];
    for (int k = 5; k >= 0; k--) v = v * t + c[k];
    return (uint8_t)lrint(clampd(v, 0.0, 1.0) * 255.0);
}

mf_rgb mf_colormap_color(mf_colormap map, float t)
{
    double u = isnan(t) ? 0.0 : clampd(t, 0.0, 1.0);
    if (map == MF_COLORMAP_GREY) {
        uint8_t v = (uint8_t)lrint(u * 255.0);
        return MF_RGB(v, v, v);
    }
    const double(*fit)[7] = map == MF_COLORMAP_INFERNO ? inferno_fit : viridis_fit;
    return MF_RGB(channel_from_fit(fit[0], u), channel_from_fit(fit[1], u),
                  channel_from_fit(fit[2], u));
}

void mf_blit_heatmap(mf_canvas *canvas, int x, int y, int w, int h, const float *values,
                     int rows, int cols, float vmin, float vmax, mf_colormap map, float alpha)
{
    int xa, xb, ya, yb;
    if (!values || rows <= 0 || cols <= 0 || !(alpha > 0)) return;
    if (!blit_bounds(canvas, x, y, w, h, &xa, &xb, &ya, &yb)) return;
    size_t count = (size_t)rows * (size_t)cols;
    if (!(vmin < vmax) || !isfinite(vmin) || !isfinite(vmax)) {
        vmin = INFINITY;
        vmax = -INFINITY;
        for (size_t i = 0; i < count; i++)
            if (isfinite(values[i])) {
                vmin = fminf(vmin, values[i]);
                vmax = fmaxf(vmax, values[i]);
            }
        if (!(vmin <= vmax)) return; /* no finite value at all */
    }
    /* A constant grid maps to the middle of the scale rather than dividing by zero. */
    float span = vmax > vmin ? vmax - vmin : 0.0f;
    for (int yy = ya; yy < yb; yy++) {
        size_t sy = (size_t)((long long)(yy - y) * rows / h);
        for (int xx = xa; xx < xb; xx++) {
            size_t sx = (size_t)((long long)(xx - x) * cols / w);
            float v = values[sy * (size_t)cols + sx];
            if (!isfinite(v)) continue;
            float t = span > 0 ? (v - vmin) / span : 0.5f;
            mf_canvas_blend_pixel(canvas, xx, yy, mf_colormap_color(map, t), alpha);
        }
    }
}

void mf_draw_colorbar(mf_canvas *canvas, int x, int y, int w, int h, mf_colormap map,
                      float vmin, float vmax, int text_scale, mf_rgb label_color)
{
    if (w <= 0 || h <= 0) return;
    for (int i = 0; i < h; i++) {
        float t = h > 1 ? 1.0f - (float)i / (float)(h - 1) : 0.5f;
        mf_fill_rect(canvas, x, y + i, w, 1, mf_colormap_color(map, t));
    }
    mf_draw_rect(canvas, x, y, w, h, 1, label_color);
    char top[32], bottom[32];
    snprintf(top, sizeof top, "%.3g", (double)vmax);
    snprintf(bottom, sizeof bottom, "%.3g", (double)vmin);
    int s = text_scale < 1 ? 1 : text_scale;
    mf_draw_text(canvas, x + w + 4 * s, y, top, s, label_color);
    mf_draw_text(canvas, x + w + 4 * s, y + h - 7 * s, bottom, s, label_color);
}
