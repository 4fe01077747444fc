/* One figure's page: a Cairo surface of the chosen format that draws into
 * memory, then replaces the output file in one step (mf_file_replace), so a
 * crash leaves the old figure or the new one, never a torn file. */
#ifndef MF_FIGURES_PAGE_H
#define MF_FIGURES_PAGE_H

#include <cairo.h>

#include "figures/figures.h"

typedef struct {
    mf_figure_format format;
    cairo_surface_t *surface;
    cairo_t *cr;          /* draw on this */
    unsigned char *data;  /* the encoded file so far */
    size_t len, cap;
    int out_of_memory;
} mf_figure_page;

/* Checks path (mf_figure_check_path) and the size (1..MF_FIGURE_MAX_SIDE
 * each way; pixels for PNG, points for SVG and PDF), then makes a white page
 * with anti-aliased drawing. On failure *page is zeroed. */
mf_status mf_figure_page_begin(mf_figure_page *page, const char *path, mf_figure_format format,
                               int width, int height, mf_error *err);
/* Finishes the drawing, encodes it and replaces path with it; releases the
 * page either way. Errors name path. */
mf_status mf_figure_page_end(mf_figure_page *page, const char *path, mf_error *err);
/* Releases a page without writing anything (safe on a zeroed one). */
void mf_figure_page_discard(mf_figure_page *page);

#endif
