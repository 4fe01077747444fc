/* Figure output: the format from a name or an extension, the output path
 * checked before anything is drawn, and the page that is encoded in memory
 * and then written atomically. */
#define _POSIX_C_SOURCE 200809L
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "figures/page.h"

static const char *const format_names[3] = {"png", "svg", "pdf"};

const char *mf_figure_format_name(mf_figure_format format)
{
    return (unsigned)format < 3 ? format_names[format] : "?";
}

mf_status mf_figure_format_parse(const char *name, mf_figure_format *format, mf_error *err)
{
    for (int i = 0; name && i < 3; i++)
        if (!strcasecmp(name, format_names[i])) {
            *format = (mf_figure_format)i;
            return MF_OK;
        }
    return mf_fail(err, MF_ERR_CONFIG, "unknown figure format '%s' (png, svg or pdf)",
                   name ? name : "");
}

mf_status mf_figure_format_from_path(const char *path, mf_figure_format *format, mf_error *err)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path ? path : "";
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return mf_fail(err, MF_ERR_CONFIG, "%s: no file extension to tell the figure format "
                       "(.png, .svg or .pdf)", path ? path : "");
    if (mf_figure_format_parse(dot + 1, format, NULL) == MF_OK) return MF_OK;
    return mf_fail(err, MF_ERR_CONFIG, "%s: unknown figure extension '%s' (.png, .svg or .pdf)",
                   path, dot);
}

mf_status mf_figure_format_choose(const char *name, const char *path, mf_figure_format *format,
                                 mf_error *err)
{
    if (name) return mf_figure_format_parse(name, format, err);
    return mf_figure_format_from_path(path, format, err);
}

mf_status mf_figure_check_path(const char *path, mf_error *err)
{
    if (!path || !*path) return mf_fail(err, MF_ERR_CONFIG, "figure: the output path is empty");
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return mf_fail(err, MF_ERR_IO, "%s: cannot write the figure: it is a directory", path);
        /* Renaming over a FIFO or a device would replace it. */
        if (!S_ISREG(st.st_mode))
            return mf_fail(err, MF_ERR_IO, "%s: cannot write the figure: not a regular file",
                           path);
    }
    const char *slash = strrchr(path, '/');
    char dir[4096];
    int n = !slash ? 0 : slash == path ? 1 : (int)(slash - path);
    snprintf(dir, sizeof dir, "%.*s", n ? n : 1, n ? path : ".");
    if (stat(dir, &st) != 0)
        return mf_fail(err, MF_ERR_IO, "%s: cannot write the figure: directory %s: %s", path, dir,
                       strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return mf_fail(err, MF_ERR_IO, "%s: cannot write the figure: %s is not a directory", path,
                       dir);
    if (access(dir, W_OK | X_OK) != 0)
        return mf_fail(err, MF_ERR_IO, "%s: cannot write the figure: directory %s: %s", path, dir,
                       strerror(errno));
    return MF_OK;
}

/* Cairo's write callback: appends to the page's buffer. */
static cairo_status_t collect(void *closure, const unsigned char *data, unsigned int length)
{
    mf_figure_page *page = closure;
    if (length > page->cap - page->len) {
        size_t cap = page->cap ? page->cap : 1 << 16;
        while (cap - page->len < length && cap < ((size_t)1 << 40)) cap *= 2;
        unsigned char *grown = cap - page->len >= length ? realloc(page->data, cap) : NULL;
        if (!grown) {
            page->out_of_memory = 1;
            return CAIRO_STATUS_WRITE_ERROR;
        }
        page->data = grown;
        page->cap = cap;
    }
    memcpy(page->data + page->len, data, length);
    page->len += length;
    return CAIRO_STATUS_SUCCESS;
}

void mf_figure_page_discard(mf_figure_page *page)
{
    if (!page) return;
    if (page->cr) cairo_destroy(page->cr);
    if (page->surface) cairo_surface_destroy(page->surface);
    free(page->data);
    memset(page, 0, sizeof *page);
}

mf_status mf_figure_page_begin(mf_figure_page *page, const char *path, mf_figure_format format,
                               int width, int height, mf_error *err)
{
    memset(page, 0, sizeof *page);
    mf_status st = mf_figure_check_path(path, err);
    if (st) return st;
    if (width < 1 || height < 1 || width > MF_FIGURE_MAX_SIDE || height > MF_FIGURE_MAX_SIDE)
        return mf_fail(err, MF_ERR_CONFIG, "%s: figure size %dx%d outside 1..%d", path, width,
                       height, MF_FIGURE_MAX_SIDE);
    page->format = format;
    switch (format) {
    case MF_FIGURE_PNG:
        page->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
        break;
    case MF_FIGURE_SVG:
        page->surface = cairo_svg_surface_create_for_stream(collect, page, width, height);
        /* Sized in pixels like the PNG, not in points. */
        cairo_svg_surface_set_document_unit(page->surface, CAIRO_SVG_UNIT_PX);
        break;
    case MF_FIGURE_PDF:
        page->surface = cairo_pdf_surface_create_for_stream(collect, page, width, height);
        break;
    default:
        return mf_fail(err, MF_ERR_CONFIG, "%s: unknown figure format %d", path, (int)format);
    }
    page->cr = cairo_create(page->surface);
    if (cairo_status(page->cr) != CAIRO_STATUS_SUCCESS) {
        st = mf_fail(err, MF_ERR_NOMEM, "%s: cannot make a %dx%d %s figure: %s", path, width,
                     height, mf_figure_format_name(format),
                     cairo_status_to_string(cairo_status(page->cr)));
        mf_figure_page_discard(page);
        return st;
    }
    cairo_set_source_rgb(page->cr, 1, 1, 1);
    cairo_paint(page->cr);
    return MF_OK;
}

mf_status mf_figure_page_end(mf_figure_page *page, const char *path, mf_error *err)
{
    cairo_status_t cs = cairo_status(page->cr);
    cairo_destroy(page->cr);
    page->cr = NULL;
    if (cs == CAIRO_STATUS_SUCCESS) {
        if (page->format == MF_FIGURE_PNG) {
            cairo_surface_flush(page->surface);
            cs = cairo_surface_write_to_png_stream(page->surface, collect, page);
        } else {
            /* Finishing a vector surface writes the rest of the file. */
            cairo_surface_finish(page->surface);
            cs = cairo_surface_status(page->surface);
        }
    }
    mf_status st = MF_OK;
    if (cs != CAIRO_STATUS_SUCCESS || page->out_of_memory)
        st = mf_fail(err, MF_ERR_NOMEM, "%s: cannot encode the %s figure: %s", path,
                     mf_figure_format_name(page->format),
                     page->out_of_memory ? "out of memory" : cairo_status_to_string(cs));
    else
        st = mf_file_replace(path, page->data, page->len, err);
    mf_figure_page_discard(page);
    return st;
}
