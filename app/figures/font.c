/* The built-in bitmap font and text drawing. Glyphs are 5 pixels wide and 7
 * tall above the baseline, with 2 rows below it for descenders (g, j, p, q,
 * y, comma); each sits in a 6 x 10 cell so letters and lines never touch. */
#include "minformer/image.h"

#include <string.h>

enum { GLYPH_W = 5, GLYPH_H = 9, CELL_W = 6, CELL_H = 10 };

/* The glyph sheet for bytes 32..127, drawn as pixels ('#' on, '.' off):
 * 6 blocks of 16 glyphs side by side, 9 rows each, one space between glyphs.
 * Keeping it as a picture makes a wrong pixel easy to spot and fix. The last
 * slot (127, DEL) is blank. */
static const char *const font_sheet[6 * GLYPH_H] = {
    /*   ! " # $ % & ' ( ) * + , - . / */
    "..... ..#.. .#.#. .#.#. ..#.. ##... .##.. ..#.. ...#. .#... ..... ..... ..... ..... ..... .....",
    "..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..... ..... ....#",
    "..... ..#.. .#.#. ##### #.#.. ...#. #.#.. .#... .#... ...#. #.#.# ..#.. ..... ..... ..... ...#.",
    "..... ..#.. ..... .#.#. .###. ..#.. .#... ..... .#... ...#. .###. ##### ..... ##### ..... ..#..",
    "..... ..#.. ..... ##### ..#.# .#... #.#.# ..... .#... ...#. #.#.# ..#.. ..... ..... ..... .#...",
    "..... ..... ..... .#.#. ####. #..## #..#. ..... ..#.. ..#.. ..#.. ..#.. .##.. ..... .##.. #....",
    "..... ..#.. ..... .#.#. ..#.. ...## .##.# ..... ...#. .#... ..... ..... .##.. ..... .##.. .....",
    "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..#.. ..... ..... .....",
    "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... .....",
    /* 0 1 2 3 4 5 6 7 8 9 : ; < = > ? */
    ".###. ..#.. .###. ##### ...#. ##### ..##. ##### .###. .###. ..... ..... ...#. ..... .#... .###.",
    "#...# .##.. #...# ...#. ..##. #.... .#... ....# #...# #...# .##.. .##.. ..#.. ..... ..#.. #...#",
    "#..## ..#.. ....# ..#.. .#.#. ####. #.... ...#. #...# #...# .##.. .##.. .#... ##### ...#. ....#",
    "#.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#.. .###. .#### ..... ..... #.... ..... ....# ...#.",
    "##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....# .##.. .##.. .#... ##### ...#. ..#..",
    "#...# ..#.. .#... #...# ...#. #...# #...# .#... #...# ...#. .##.. .##.. ..#.. ..... ..#.. .....",
    ".###. .###. ##### .###. ...#. .###. .###. .#... .###. .##.. ..... ..#.. ...#. ..... .#... ..#..",
    "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... ..... .....",
    "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....",
    /* @ A B C D E F G H I J K L M N O */
    ".###. .###. ####. .###. ###.. ##### ##### .###. #...# .###. ..### #...# #.... #...# #...# .###.",
    "#...# #...# #...# #...# #..#. #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.## #...# #...#",
    "....# #...# #...# #.... #...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#",
    ".##.# #...# ####. #.... #...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#",
    "#.#.# ##### #...# #.... #...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...# #..## #...#",
    "#.#.# #...# #...# #...# #..#. #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...# #...# #...#",
    ".###. #...# ####. .###. ###.. ##### #.... .#### #...# .###. .##.. #...# ##### #...# #...# .###.",
    "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....",
    "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....",
    /* P Q R S T U V W X Y Z [ \ ] ^ _ */
    "####. .###. ####. .#### ##### #...# #...# #...# #...# #...# ##### .###. ..... .###. ..#.. .....",
    "#...# #...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....# .#... #.... ...#. .#.#. .....",
    "#...# #...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#. .#... .#... ...#. #...# .....",
    "####. #...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#.. .#... ..#.. ...#. ..... .....",
    "#.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#... .#... ...#. ...#. ..... .....",
    "#.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...# ..#.. #.... .#... ....# ...#. ..... .....",
    "#.... .##.# #...# ####. ..#.. .###. ..#.. .#.#. #...# ..#.. ##### .###. ..... .###. ..... .....",
    "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... #####",
    "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....",
    /* ` a b c d e f g h i j k l m n o */
    ".#... ..... #.... ..... ....# ..... ..##. ..... #.... ..#.. ...#. #.... .##.. ..... ..... .....",
    "..#.. ..... #.... ..... ....# ..... .#..# ..... #.... ..... ..... #.... ..#.. ..... ..... .....",
    "...#. .###. #.##. .###. .##.# .###. .#... .#### #.##. .##.. ..##. #..#. ..#.. ##.#. #.##. .###.",
    "..... ....# ##..# #.... #..## #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#.. #.#.# ##..# #...#",
    "..... .#### #...# #.... #...# ##### .#... #...# #...# ..#.. ...#. ##... ..#.. #.#.# #...# #...#",
    "..... #...# #...# #...# #...# #.... .#... #...# #...# ..#.. ...#. #.#.. ..#.. #...# #...# #...#",
    "..... .#### ####. .###. .#### .###. .#... .#### #...# .###. ...#. #..#. .###. #...# #...# .###.",
    "..... ..... ..... ..... ..... ..... ..... ....# ..... ..... #..#. ..... ..... ..... ..... .....",
    "..... ..... ..... ..... ..... ..... ..... .###. ..... ..... .##.. ..... ..... ..... ..... .....",
    /* p q r s t u v w x y z { | } ~ */
    "..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ...#. ..#.. .#... ..... .....",
    "..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ..#.. ..#.. ..#.. ..... .....",
    "####. .#### #.##. .#### ###.. #...# #...# #...# #...# #...# ##### ..#.. ..#.. ..#.. .#... .....",
    "#...# #...# ##..# #.... .#... #...# #...# #...# .#.#. #...# ...#. .#... ..#.. ...#. #.#.# .....",
    "#...# #...# #.... .###. .#... #...# #...# #.#.# ..#.. #...# ..#.. ..#.. ..#.. ..#.. ...#. .....",
    "#...# #...# #.... ....# .#..# #..## .#.#. #.#.# .#.#. #...# .#... ..#.. ..#.. ..#.. ..... .....",
    "####. .#### #.... ####. ..##. .##.# ..#.. .#.#. #...# .#### ##### ...#. ..#.. .#... ..... .....",
    "#.... ....# ..... ..... ..... ..... ..... ..... ..... ....# ..... ..... ..#.. ..... ..... .....",
    "#.... ....# ..... ..... ..... ..... ..... ..... ..... .###. ..... ..... ..... ..... ..... .....",
};

/* Whether pixel (col, row) of the glyph for byte ch is on; ch in 32..126. */
static int glyph_pixel(int ch, int col, int row)
{
    int index = ch - 32;
    const char *line = font_sheet[(index / 16) * GLYPH_H + row];
    return line[(index % 16) * (GLYPH_W + 1) + col] == '#';
}

/* Advances *s past one character and returns the byte to draw for it:
 * printable ASCII as is, '\n' as is, anything else (a control byte or a
 * whole UTF-8 sequence) as '?'. */
static int next_char(const char **s)
{
    const unsigned char *p = (const unsigned char *)*s;
    int ch = *p++;
    if (ch >= 0x80) {
        while ((*p & 0xC0) == 0x80) p++; /* continuation bytes of the same character */
        ch = '?';
    } else if (ch != '\n' && (ch < 32 || ch > 126)) {
        ch = '?';
    }
    *s = (const char *)p;
    return ch;
}

static int clamp_scale(int scale) { return scale < 1 ? 1 : scale; }

int mf_text_width(const char *text, int scale)
{
    if (!text) return 0;
    scale = clamp_scale(scale);
    int widest = 0, chars = 0;
    while (*text) {
        if (next_char(&text) == '\n') {
            chars = 0;
            continue;
        }
        chars++;
        if (chars > widest) widest = chars;
    }
    /* The last cell's spacing column is not part of the text's extent. */
    return widest ? (widest * CELL_W - 1) * scale : 0;
}

int mf_text_height(const char *text, int scale)
{
    if (!text || !*text) return 0;
    scale = clamp_scale(scale);
    int lines = 1;
    for (const char *p = text; *p; p++)
        if (*p == '\n') lines++;
    return (lines * CELL_H - 1) * scale;
}

/* Draws glyph ch with its top-left at (x, y); when vertical, the glyph is
 * turned a quarter counter-clockwise with its top-left (after turning) there. */
static void draw_glyph(mf_canvas *c, int x, int y, int ch, int scale, int vertical,
                       mf_rgb color)
{
    for (int row = 0; row < GLYPH_H; row++) {
        for (int col = 0; col < GLYPH_W; col++) {
            if (!glyph_pixel(ch, col, row)) continue;
            /* A counter-clockwise turn puts the glyph's top row on the left
             * and its first column at the bottom. */
            int px = vertical ? x + row * scale : x + col * scale;
            int py = vertical ? y + (GLYPH_W - 1 - col) * scale : y + row * scale;
            mf_fill_rect(c, px, py, scale, scale, color);
        }
    }
}

static int draw_text(mf_canvas *c, int x, int y, const char *text, int scale, int vertical,
                     mf_rgb color)
{
    if (!c || !text) return 0;
    scale = clamp_scale(scale);
    /* Vertical text runs upward from the bottom of its box. */
    int extent = mf_text_width(text, scale);
    int pen = 0, line = 0;
    while (*text) {
        int ch = next_char(&text);
        if (ch == '\n') {
            pen = 0;
            line++;
            continue;
        }
        if (ch != ' ') {
            if (vertical)
                draw_glyph(c, x + line * CELL_H * scale,
                           y + extent - pen - GLYPH_W * scale, ch, scale, 1, color);
            else
                draw_glyph(c, x + pen, y + line * CELL_H * scale, ch, scale, 0, color);
        }
        pen += CELL_W * scale;
    }
    return extent;
}

int mf_draw_text(mf_canvas *canvas, int x, int y, const char *text, int scale, mf_rgb color)
{
    return draw_text(canvas, x, y, text, scale, 0, color);
}

int mf_draw_text_vertical(mf_canvas *canvas, int x, int y, const char *text, int scale,
                          mf_rgb color)
{
    return draw_text(canvas, x, y, text, scale, 1, color);
}
