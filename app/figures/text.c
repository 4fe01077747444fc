/* Text through Cairo's toy API: one face, measured the way it is drawn, so
 * layouts computed from these sizes hold on the page. */
#include <fontconfig/fontconfig.h>
#include <stdlib.h>

#include "figures/plot.h"

/* Cairo's font caches and fontconfig's configuration otherwise live until
 * exit and show up as leaks under AddressSanitizer and valgrind. By then no
 * figure holds a Cairo object. */
static void release_fonts(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}

void mf_text_font(cairo_t *cr, double size, int bold)
{
    static int registered; /* figures are drawn from one thread */
    if (!registered) registered = atexit(release_fonts) == 0;
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double mf_text_width(cairo_t *cr, const char *text)
{
    if (!text || !*text) return 0.0;
    cairo_text_extents_t te;
    cairo_text_extents(cr, text, &te);
    return te.x_advance;
}

double mf_text_line_height(cairo_t *cr)
{
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    return fe.ascent + fe.descent;
}

void mf_text_draw(cairo_t *cr, double x, double y, const char *text)
{
    if (!text || !*text) return;
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    cairo_move_to(cr, x, y + fe.ascent);
    cairo_show_text(cr, text);
    cairo_new_path(cr);
}
