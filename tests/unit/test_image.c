/* The picture layer: PNG written and read back bit for bit, the PNG reader's
 * conversions (palette, 16-bit, alpha, 1-bit, interlaced), PGM/PPM in binary
 * and ASCII, every malformed file rejected with a message naming it, charts
 * rendering to PNGs of the requested size, and failed writes leaving no file
 * under the final name. */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, setrlimit, mkfifo */
#include "check.h"
#include "minformer/core.h"
#include "minformer/image.h"

#include <errno.h>
#include <ftw.h>
#include <png.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[512];

static const char *tmp_path(const char *name)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmp_dir, name);
    return p;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* The whole file, or NULL; *n gets its size. */
static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *data = malloc(1 << 22);
    *n = data ? fread(data, 1, 1 << 22, f) : 0;
    fclose(f);
    return data;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- PNG round trip ---------------------------------------------------------- */

static void test_png_round_trip(void)
{
    mf_error err = {0};
    mf_canvas c;
    CHECK(mf_canvas_create(&c, 37, 23, MF_BLACK, &err) == MF_OK, "%s", err.message);
    if (!c.pixels) return;
    mf_rng rng;
    mf_rng_seed(&rng, 7);
    for (size_t i = 0; i < (size_t)37 * 23 * 3; i++) c.pixels[i] = (uint8_t)mf_rng_next(&rng);

    const char *path = tmp_path("round.png");
    CHECK(mf_png_write(path, &c, &err) == MF_OK, "%s", err.message);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(!file_exists(tmp), "the temporary file %s was left behind", tmp);

    size_t n = 0;
    uint8_t *bytes = slurp(path, &n);
    CHECK(bytes && n > 33, "cannot read back %s", path);
    if (bytes && n > 33) {
        static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
        CHECK(memcmp(bytes, sig, 8) == 0, "PNG signature wrong");
        CHECK(memcmp(bytes + 12, "IHDR", 4) == 0, "first chunk is not IHDR");
        CHECK(be32(bytes + 16) == 37 && be32(bytes + 20) == 23, "IHDR says %ux%u, want 37x23",
              (unsigned)be32(bytes + 16), (unsigned)be32(bytes + 20));
        CHECK(bytes[24] == 8 && bytes[25] == 2, "IHDR depth %d color type %d, want 8 and 2 (RGB)",
              bytes[24], bytes[25]);
    }
    free(bytes);

    mf_image img;
    CHECK(mf_image_read(path, &img, &err) == MF_OK, "%s", err.message);
    CHECK(img.width == 37 && img.height == 23 && img.channels == 3, "read back %dx%dx%d",
          img.width, img.height, img.channels);
    if (img.pixels && img.width == 37 && img.height == 23 && img.channels == 3) {
        int diffs = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 37 * 23; i++)
                diffs += img.pixels[ch * 37 * 23 + i] != c.pixels[i * 3 + ch];
        CHECK(diffs == 0, "%d samples differ after the round trip", diffs);
    }
    mf_image_free(&img);
    CHECK(img.pixels == NULL, "mf_image_free leaves pixels set");

    /* Overwriting an existing file replaces it completely. */
    mf_canvas_fill(&c, MF_RGB(1, 2, 3));
    CHECK(mf_png_write(path, &c, &err) == MF_OK, "%s", err.message);
    CHECK(mf_image_read(path, &img, &err) == MF_OK, "%s", err.message);
    CHECK(img.pixels && img.pixels[0] == 1 && img.pixels[37 * 23] == 2 &&
              img.pixels[2 * 37 * 23 + 5] == 3, "the rewrite did not take");
    mf_image_free(&img);
    mf_canvas_free(&c);
}

/* ---- PNG reader conversions, with files written here through libpng ------ */

typedef struct {
    int width, height, depth, color, interlace;
    const uint8_t *rows; /* packed rows as libpng wants them */
    size_t rowbytes;
    const png_color *palette;
    int palette_size;
} png_spec;

static int write_png_spec(const char *path, const png_spec *s)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    int ok = 0;
    if (setjmp(png_jmpbuf(png)) == 0) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)s->width, (png_uint_32)s->height, s->depth, s->color,
                     s->interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        if (s->palette) png_set_PLTE(png, info, s->palette, s->palette_size);
        png_write_info(png, info);
        int passes = png_set_interlace_handling(png);
        for (int p = 0; p < passes; p++)
            for (int y = 0; y < s->height; y++) png_write_row(png, s->rows + (size_t)y * s->rowbytes);
        png_write_end(png, NULL);
        ok = 1;
    }
    png_destroy_write_struct(&png, &info);
    return fclose(f) == 0 && ok;
}

static void test_png_reader_conversions(void)
{
    mf_error err = {0};
    mf_image img;
    const char *path = tmp_path("variant.png");

    /* 16-bit grey: 257 * k must come back as exactly k. */
    uint8_t grey16[2 * 3 * 2];
    for (int i = 0; i < 6; i++) {
        unsigned v = 257u * (unsigned)(i * 50);
        grey16[2 * i] = (uint8_t)(v >> 8);
        grey16[2 * i + 1] = (uint8_t)v;
    }
    png_spec g16 = {3, 2, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, grey16, 6, NULL, 0};
    CHECK(write_png_spec(path, &g16), "cannot write test PNG");
    CHECK(mf_image_read(path, &img, &err) == MF_OK, "%s", err.message);
    CHECK(img.channels == 1 && img.width == 3 && img.height == 2, "16-bit grey read as %dx%dx%d",
          img.width, img.height, img.channels);
    for (int i = 0; img.pixels && i < 6; i++)
        CHECK(img.pixels[i] == i * 50, "16-bit grey pixel %d is %d, want %d", i, img.pixels[i], i * 50);
    mf_image_free(&img);

    /* 1-bit grey: bits 1,0,1,1 -> 255,0,255,255. */
    uint8_t bits[1] = {0xB0};
    png_spec g1 = {4, 1, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, bits, 1, NULL, 0};
    CHECK(write_png_spec(path, &g1), "cannot write test PNG");
    CHECK(mf_image_read(path, &img, &err) == MF_OK, "%s", err.message);
    CHECK(img.pixels && img.channels == 1 && img.pixels[0] == 255 && img.pixels[1] == 0 &&
              img.pixels[2] == 255 && img.pixels[3] == 255, "1-bit grey expanded wrongly");
    mf_image_free(&img);

    /* 2-bit palette -> RGB. */
    png_color pal[4] = {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}, {255, 0, 128}};
    uint8_t idx[1] = {0x1B}; /* indices 0,1,2,3 */
    png_spec p2 = {4, 1, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, 1, pal, 4};
    CHECK(write_png_spec(path, &p2), "cannot write test PNG");
    CHECK(mf_image_read(path, &img, &err) == MF_OK, "%s", err.message);
    CHECK(img.channels == 3 && img.width == 4, "palette read as %dx%dx%d", img.width, img.height,
          img.channels);
    for (int i = 0; img.pixels && img.channels == 3 && i < 4; i++)
        CHECK(img.pixels[i] == pal[i].red && img.pixels[4 + i] == pal[i].green &&
                  img.pixels[8 + i] == pal[i].blue, "palette pixel %d is (%d,%d,%d)", i,
              img.pixels[i], img.pixels[4 + i], img.pixels[8 + i]);
    mf_image_free(&img);

    /* RGBA: alpha composited over black. */
    uint8_t rgba[8] = {200, 100, 50, 128, 10, 20, 30, 255};
    png_spec a8 = {2, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, rgba, 8, NULL, 0};
    CHECK(write_png_spec(path, &a8), "cannot write test PNG");
    CHECK(mf_image_read(path, &img, &err) == MF_OK, "%s", err.message);
    if (img.pixels && img.channels == 3) {
        CHECK(img.pixels[0] == (200 * 128 + 127) / 255 && img.pixels[2] == (100 * 128 + 127) / 255,
              "alpha compositing: got %d, %d", img.pixels[0], img.pixels[2]);
        CHECK(img.pixels[1] == 10 && img.pixels[3] == 20 && img.pixels[5] == 30,
              "an opaque pixel changed");
    } else {
        CHECK(0, "RGBA read as %d channels", img.channels);
    }
    mf_image_free(&img);

    /* Interlaced RGB equals the same data written plainly. */
    enum { W = 13, H = 11 };
    uint8_t rgb[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 37 + 11);
    png_spec il = {W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, rgb, W * 3, NULL, 0};
    CHECK(write_png_spec(path, &il), "cannot write test PNG");
    CHECK(mf_image_read(path, &img, &err) == MF_OK, "%s", err.message);
    int diffs = 0;
    for (int i = 0; img.pixels && img.channels == 3 && i < W * H; i++)
        for (int ch = 0; ch < 3; ch++) diffs += img.pixels[ch * W * H + i] != rgb[i * 3 + ch];
    CHECK(img.width == W && img.height == H && diffs == 0, "interlaced: %dx%d, %d samples differ",
          img.width, img.height, diffs);
    mf_image_free(&img);
}

/* ---- PGM / PPM ------------------------------------------------------------------ */

static void expect_image(const char *name, const char *content, size_t size, int w, int h,
                         int channels, const uint8_t *planar)
{
    mf_error err = {0};
    mf_image img;
    const char *path = tmp_path(name);
    CHECK(write_bytes(path, content, size), "cannot write %s", path);
    mf_status st = mf_image_read(path, &img, &err);
    CHECK(st == MF_OK, "%s: %s", name, err.message);
    CHECK(img.width == w && img.height == h && img.channels == channels,
          "%s: read as %dx%dx%d, want %dx%dx%d", name, img.width, img.height, img.channels, w, h,
          channels);
    if (st == MF_OK && img.width == w && img.height == h && img.channels == channels)
        for (int i = 0; i < w * h * channels; i++)
            CHECK(img.pixels[i] == planar[i], "%s: sample %d is %d, want %d", name, i,
                  img.pixels[i], planar[i]);
    mf_image_free(&img);
}

static void test_pnm_binary(void)
{
    static const char p5[] = "P5\n# made by hand\n3 2\n# another comment\n255\n\x00\x10\xff\x80\x01\x02";
    static const uint8_t p5_want[] = {0, 16, 255, 128, 1, 2};
    expect_image("a.pgm", p5, sizeof p5 - 1, 3, 2, 1, p5_want);

    /* Interleaved RGB in the file, planar out. */
    static const char p6[] = "P6 2 1 255\n\x0a\x14\x1e\x28\x32\x3c";
    static const uint8_t p6_want[] = {10, 40, 20, 50, 30, 60};
    expect_image("a.ppm", p6, sizeof p6 - 1, 2, 1, 3, p6_want);

    /* 16-bit big-endian samples scale by 255 / maxval with rounding. */
    static const char p5_16[] = "P5 3 1 65535\n\x00\x00\x80\x00\xff\xff";
    static const uint8_t p5_16_want[] = {0, 128, 255};
    expect_image("b.pgm", p5_16, sizeof p5_16 - 1, 3, 1, 1, p5_16_want);

    static const char p5_15[] = "P5 3 1 15\n\x00\x07\x0f";
    static const uint8_t p5_15_want[] = {0, 119, 255};
    expect_image("c.pgm", p5_15, sizeof p5_15 - 1, 3, 1, 1, p5_15_want);

    /* The extension means nothing: a PGM named .png is still a PGM. */
    expect_image("really_a_pgm.png", p5, sizeof p5 - 1, 3, 2, 1, p5_want);
}

static void test_pnm_ascii(void)
{
    static const char p2[] = "P2\n#c\n 2   2\n\t100 # maxval\n0 50\n  100\n# mid-data comment\n 25";
    static const uint8_t p2_want[] = {0, 128, 255, 64};
    expect_image("a2.pgm", p2, sizeof p2 - 1, 2, 2, 1, p2_want);

    static const char p3[] = "P3\n2 1\n255\n1 2 3\n4 5 6\n";
    static const uint8_t p3_want[] = {1, 4, 2, 5, 3, 6};
    expect_image("a3.ppm", p3, sizeof p3 - 1, 2, 1, 3, p3_want);

    static const char p3_16[] = "P3 1 1 1000 0 500 1000";
    static const uint8_t p3_16_want[] = {0, 128, 255};
    expect_image("b3.ppm", p3_16, sizeof p3_16 - 1, 1, 1, 3, p3_16_want);
}

/* ---- Malformed files ----------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *content;
    size_t size;
    const char *problem; /* must appear in the message */
} bad_case;

#define BAD(name, text, problem) {name, text, sizeof text - 1, problem}

static void expect_rejected(const char *name, const uint8_t *content, size_t size,
                            const char *problem)
{
    mf_error err = {0};
    mf_image img;
    const char *path = tmp_path(name);
    CHECK(write_bytes(path, content, size), "cannot write %s", path);
    mf_status st = mf_image_read(path, &img, &err);
    CHECK(st == MF_ERR_FORMAT, "%s: status %d, want MF_ERR_FORMAT (message: %s)", name, st,
          err.message);
    CHECK(starts_with(err.message, path), "%s: message does not name the file: %s", name,
          err.message);
    CHECK(strstr(err.message, problem) != NULL, "%s: message lacks \"%s\": %s", name, problem,
          err.message);
    CHECK(img.pixels == NULL && img.width == 0, "%s: image not cleared on failure", name);
    mf_image_free(&img);
}

static void test_malformed_rejected(void)
{
    static const bad_case cases[] = {
        BAD("empty.pgm", "", "not a PNG, PGM or PPM image"),
        BAD("gif.png", "GIF89a\x01\x00\x01\x00", "not a PNG, PGM or PPM image"),
        BAD("pbm.pgm", "P4 8 1\n\x55", "not a PNG, PGM or PPM image"),
        BAD("p7.pgm", "P7\nWIDTH 1\n", "not a PNG, PGM or PPM image"),
        BAD("magic_glued.pgm", "P55 5 255\n", "not a PNG, PGM or PPM image"),
        BAD("header_cut.pgm", "P5\n", "truncated"),
        BAD("height_cut.pgm", "P5 4 # no height", "truncated"),
        BAD("width_text.pgm", "P5 abc 2 255\n....", "width is not a number"),
        BAD("width_glued.pgm", "P5 2x 2 255\n....", "width is not a number"),
        BAD("maxval_text.ppm", "P6 1 1 max\n...", "maxval is not a number"),
        BAD("negative.pgm", "P5 -2 2 255\n....", "not a number"),
        BAD("maxval0.pgm", "P5 2 2 0\n....", "maxval"),
        BAD("maxval_big.pgm", "P5 2 2 70000\n........", "maxval"),
        BAD("zero.pgm", "P5 0 2 255\n", "zero size"),
        BAD("huge.pgm", "P5 99999 2 255\n", "over the limit"),
        BAD("huge_digits.ppm", "P6 2 123456789012345678901234567890 255\n", "over the limit"),
        BAD("no_pixels.pgm", "P5 2 2 255", "missing"),
        BAD("short.pgm", "P5 4 4 255\n0123456789", "truncated"),
        BAD("short16.pgm", "P5 2 2 65535\n1234567", "truncated"),
        BAD("short.ppm", "P6 2 2 255\n01234567890", "truncated"),
        BAD("over_maxval16.pgm", "P5 1 1 1000\n\xff\xff", "over maxval"),
        BAD("short_ascii.pgm", "P2 2 2 255\n1 2 3\n", "truncated"),
        BAD("short_ascii2.pgm", "P2 2 2 255\n1 2 3\n#\n\n\n\n", "truncated"),
        BAD("text_ascii.pgm", "P2 2 2 255\n1 2 x 4\n", "not a number"),
        BAD("over_maxval.pgm", "P2 2 2 10\n1 2 11 4\n", "over maxval"),
        BAD("png_sig_only.png", "\x89PNG\r\n\x1a\n", "bad PNG"),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_rejected(cases[i].name, (const uint8_t *)cases[i].content, cases[i].size,
                        cases[i].problem);

    /* Damaged real PNGs: cut short, a corrupt header checksum, an absurd size. */
    mf_error err = {0};
    mf_canvas c;
    CHECK(mf_canvas_create(&c, 40, 30, MF_RGB(9, 99, 199), &err) == MF_OK, "%s", err.message);
    for (int i = 0; i < 40 * 30 * 3; i++) c.pixels[i] = (uint8_t)(i * 7);
    const char *good = tmp_path("good.png");
    CHECK(mf_png_write(good, &c, &err) == MF_OK, "%s", err.message);
    mf_canvas_free(&c);
    size_t n = 0;
    uint8_t *bytes = slurp(good, &n);
    CHECK(bytes && n > 100, "cannot read %s", good);
    if (!bytes || n <= 100) {
        free(bytes);
        return;
    }
    expect_rejected("cut_in_ihdr.png", bytes, 20, "bad PNG");
    expect_rejected("cut_in_data.png", bytes, n / 2, "bad PNG");
    uint8_t *copy = malloc(n);
    memcpy(copy, bytes, n);
    copy[29] ^= 0xFF; /* IHDR's CRC */
    expect_rejected("bad_crc.png", copy, n, "bad PNG");
    memcpy(copy, bytes, n);
    copy[17] = 0x01; /* width 65536 + 40 */
    expect_rejected("huge.png", copy, n, "over the limit");
    memcpy(copy, bytes, n);
    memset(copy + 16, 0, 4); /* width 0 */
    expect_rejected("zero.png", copy, n, "zero size");
    free(copy);
    free(bytes);

    /* Files that cannot be read at all are I/O errors, still naming the file. */
    mf_image img;
    const char *missing = tmp_path("missing.png");
    CHECK(mf_image_read(missing, &img, &err) == MF_ERR_IO && starts_with(err.message, missing),
          "missing file: %s", err.message);
    CHECK(mf_image_read(tmp_dir, &img, &err) == MF_ERR_IO && starts_with(err.message, tmp_dir),
          "a directory: %s", err.message);
}

/* ---- Charts ----------------------------------------------------------------------- */

static int count_non_white(const mf_image *img)
{
    int n = 0;
    size_t plane = (size_t)img->width * img->height;
    for (size_t i = 0; i < plane; i++)
        n += img->pixels[i] != 255 || img->pixels[plane + i] != 255 ||
             img->pixels[2 * plane + i] != 255;
    return n;
}

static void test_plot_renders_png(void)
{
    mf_error err = {0};
    double epochs[12], train[12], val[12];
    for (int i = 0; i < 12; i++) {
        epochs[i] = i + 1;
        train[i] = 2.3 * exp(-i / 3.0) + 0.05;
        val[i] = i == 5 ? NAN : 2.2 * exp(-i / 3.5) + 0.12; /* a gap */
    }
    mf_plot_series series[2] = {
        {.x = epochs, .y = train, .n = 12, .label = "train"},
        {.x = epochs, .y = val, .n = 12, .label = "validation", .color = MF_RGB(0, 0, 0),
         .has_color = 1, .style = MF_LINE_DASHED, .marker = MF_MARKER_DIAMOND},
    };
    mf_plot_spec spec = {.title = "loss", .x_title = "epoch", .y_title = "loss",
                         .series = series, .series_count = 2};
    const char *path = tmp_path("loss.png");
    CHECK(mf_plot_lines_png(path, 640, 400, &spec, &err) == MF_OK, "%s", err.message);
    mf_image img;
    CHECK(mf_image_read(path, &img, &err) == MF_OK, "%s", err.message);
    CHECK(img.width == 640 && img.height == 400 && img.channels == 3, "chart is %dx%dx%d",
          img.width, img.height, img.channels);
    if (img.pixels) {
        int inked = count_non_white(&img);
        CHECK(inked > 2000 && inked < 640 * 400 / 2, "chart has %d non-white pixels", inked);
        /* Some pixel carries the first palette color (the train curve). */
        mf_rgb blue = mf_palette(0);
        int found = 0;
        size_t plane = 640 * 400;
        for (size_t i = 0; i < plane && !found; i++)
            found = img.pixels[i] == blue.r && img.pixels[plane + i] == blue.g &&
                    img.pixels[2 * plane + i] == blue.b;
        CHECK(found, "no pixel of the train curve's color");
    }
    mf_image_free(&img);

    /* Scatter on a log axis, into a region of a larger canvas. */
    double params[3] = {12e3, 150e3, 2.1e6}, acc[3] = {0.95, 0.98, 0.99};
    const char *names[3] = {"small", NULL, "large"};
    mf_plot_series dots = {.x = params, .y = acc, .n = 3, .label = "MNIST", .point_labels = names};
    mf_plot_spec sspec = {.title = "accuracy", .series = &dots, .series_count = 1, .log_x = 1,
                          .region_x = 100, .region_y = 50, .region_w = 400, .region_h = 300};
    mf_canvas c;
    CHECK(mf_canvas_create(&c, 600, 400, MF_RGB(0, 0, 0), &err) == MF_OK, "%s", err.message);
    CHECK(mf_plot_scatter(&c, &sspec, &err) == MF_OK, "%s", err.message);
    mf_rgb outside = mf_canvas_get_pixel(&c, 50, 20), inside = mf_canvas_get_pixel(&c, 110, 60);
    CHECK(outside.r == 0 && outside.g == 0, "the chart drew outside its region");
    CHECK(inside.r == 255 && inside.g == 255, "the chart did not fill its region");
    CHECK(c.clip_x0 == 0 && c.clip_x1 == 600 && c.clip_y1 == 400, "clip not restored");

    /* Degenerate data draws an empty frame rather than failing. */
    double nan_y[2] = {NAN, INFINITY}, one_y[1] = {3.0};
    mf_plot_series odd[3] = {{.y = nan_y, .n = 2}, {.y = one_y, .n = 1}, {.n = 0}};
    mf_plot_spec ospec = {.series = odd, .series_count = 3, .log_y = 1};
    CHECK(mf_plot_lines(&c, &ospec, &err) == MF_OK, "degenerate data: %s", err.message);
    double wild_x[4] = {-1e308, 0, 1, 1e308}, wild_y[4] = {1e308, -1e308, 1e-310, 5};
    const char *wild_names[4] = {"a", "b", "c", "d"};
    mf_plot_series wild = {.x = wild_x, .y = wild_y, .n = 4, .label = "wild",
                           .point_labels = wild_names, .style = MF_LINE_DOTTED};
    mf_plot_spec wspec = {.series = &wild, .series_count = 1};
    CHECK(mf_plot_lines(&c, &wspec, &err) == MF_OK, "extreme values: %s", err.message);
    wspec.x_min = 0.5;
    wspec.x_max = 0.6; /* everything far outside a narrow fixed range */
    wspec.y_min = -INFINITY;
    wspec.y_max = 1;
    CHECK(mf_plot_scatter(&c, &wspec, &err) == MF_OK, "extreme values: %s", err.message);

    /* A malformed spec is a configuration error. */
    mf_plot_series broken = {.n = 5};
    mf_plot_spec bad = {.series = &broken, .series_count = 1};
    CHECK(mf_plot_lines(&c, &bad, &err) == MF_ERR_CONFIG, "series without y accepted");
    mf_plot_spec tiny = {.region_w = 50, .region_h = 40};
    CHECK(mf_plot_lines(&c, &tiny, &err) == MF_ERR_CONFIG, "a 50x40 region accepted");
    mf_plot_spec off = {.region_x = 500, .region_w = 300, .region_h = 200};
    CHECK(mf_plot_lines(&c, &off, &err) == MF_ERR_CONFIG, "a region off the canvas accepted");
    mf_canvas_free(&c);
}

/* ---- Failed writes ------------------------------------------------------------------ */

static void test_failed_write_leaves_no_file(void)
{
    mf_error err = {0};
    mf_canvas c;
    CHECK(mf_canvas_create(&c, 64, 64, MF_RGB(10, 20, 30), &err) == MF_OK, "%s", err.message);

    /* A directory that does not exist. */
    const char *nodir = tmp_path("no/such/dir/out.png");
    CHECK(mf_png_write(nodir, &c, &err) == MF_ERR_IO, "write into a missing directory succeeded");
    CHECK(starts_with(err.message, nodir), "message does not name the file: %s", err.message);
    CHECK(!file_exists(nodir), "a file appeared");

    /* The temporary name is blocked: the old complete file must survive. */
    const char *kept = tmp_path("kept.png");
    CHECK(mf_png_write(kept, &c, &err) == MF_OK, "%s", err.message);
    char blocked[1100];
    snprintf(blocked, sizeof blocked, "%s.tmp", kept);
    CHECK(mkdir(blocked, 0700) == 0, "cannot create %s", blocked);
    mf_canvas_fill(&c, MF_RGB(200, 0, 0));
    CHECK(mf_png_write(kept, &c, &err) == MF_ERR_IO, "write through a blocked .tmp succeeded");
    mf_image img;
    CHECK(mf_image_read(kept, &img, &err) == MF_OK && img.pixels && img.pixels[0] == 10,
          "the old file was damaged");
    mf_image_free(&img);
    rmdir(blocked);

    /* A target that is a directory or a FIFO is refused, not renamed over. */
    const char *dir = tmp_path("a_dir.png");
    CHECK(mkdir(dir, 0700) == 0, "cannot create %s", dir);
    CHECK(mf_png_write(dir, &c, &err) == MF_ERR_IO, "write over a directory succeeded");
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "the directory was replaced");
    const char *fifo = tmp_path("a_fifo.png");
    if (mkfifo(fifo, 0600) == 0) {
        CHECK(mf_png_write(fifo, &c, &err) == MF_ERR_IO, "write over a FIFO succeeded");
        CHECK(stat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");
    }

    /* The disk filling up mid-write, simulated with a file size limit: the
     * write must fail, and neither the final name nor the .tmp may remain. */
    mf_canvas noisy;
    CHECK(mf_canvas_create(&noisy, 512, 512, MF_BLACK, &err) == MF_OK, "%s", err.message);
    mf_rng rng;
    mf_rng_seed(&rng, 3);
    for (size_t i = 0; i < (size_t)512 * 512 * 3; i++) noisy.pixels[i] = (uint8_t)mf_rng_next(&rng);
    struct rlimit old;
    const char *full = tmp_path("full.png");
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        struct rlimit small = old;
        small.rlim_cur = 4096;
        void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of death */
        if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
            mf_status st2 = mf_png_write(full, &noisy, &err);
            setrlimit(RLIMIT_FSIZE, &old);
            CHECK(st2 == MF_ERR_IO, "write beyond the size limit returned %d", st2);
            CHECK(starts_with(err.message, full), "message does not name the file: %s",
                  err.message);
            char tmp[1100];
            snprintf(tmp, sizeof tmp, "%s.tmp", full);
            CHECK(!file_exists(full) && !file_exists(tmp), "a partial file was left behind");
        }
        signal(SIGXFSZ, old_handler);
    }
    mf_canvas_free(&noisy);
    mf_canvas_free(&c);
}

/* ---- Canvas, text, colormaps, conversion ------------------------------------------- */

static void test_canvas_drawing(void)
{
    mf_error err = {0};
    mf_canvas c;
    CHECK(mf_canvas_create(&c, 0, 10, MF_WHITE, &err) == MF_ERR_CONFIG, "0-wide canvas made");
    CHECK(mf_canvas_create(&c, 100, 60, MF_WHITE, &err) == MF_OK, "%s", err.message);
    if (!c.pixels) return;

    mf_canvas_set_pixel(&c, 3, 4, MF_RGB(1, 2, 3));
    mf_rgb p = mf_canvas_get_pixel(&c, 3, 4);
    CHECK(p.r == 1 && p.g == 2 && p.b == 3, "set/get pixel");
    mf_canvas_set_pixel(&c, -1, 4, MF_BLACK); /* dropped, no crash */
    mf_canvas_set_pixel(&c, 100, 60, MF_BLACK);

    /* The clip holds drawing to its rectangle. */
    mf_canvas_set_clip(&c, 10, 10, 20, 20);
    mf_fill_rect(&c, 0, 0, 100, 60, MF_BLACK);
    CHECK(mf_canvas_get_pixel(&c, 9, 15).r == 255 && mf_canvas_get_pixel(&c, 10, 15).r == 0 &&
              mf_canvas_get_pixel(&c, 29, 29).r == 0 && mf_canvas_get_pixel(&c, 30, 29).r == 255,
          "clip rectangle not respected");
    mf_canvas_reset_clip(&c);
    mf_canvas_fill(&c, MF_WHITE);

    /* A 1-pixel horizontal line fills exactly its row. */
    mf_draw_line(&c, 5, 20, 60, 20, 1, MF_BLACK);
    CHECK(mf_canvas_get_pixel(&c, 30, 20).r == 0 && mf_canvas_get_pixel(&c, 30, 19).r == 255 &&
              mf_canvas_get_pixel(&c, 30, 21).r == 255, "1-pixel line is not crisp");
    /* Absurd coordinates are clipped, neither crashing nor hanging. */
    mf_draw_line(&c, -1e300, -1e300, 1e300, 1e300, 3, MF_BLACK);
    double xs[3] = {-1e12, 50, 1e15}, ys[3] = {30, 30, 1e15};
    mf_draw_polyline(&c, xs, ys, 3, 2, MF_LINE_DASHED, MF_BLACK);
    mf_draw_polyline(&c, xs, ys, 3, 2, MF_LINE_DOTTED, MF_BLACK);
    mf_fill_circle(&c, 50, 30, 1e9, MF_BLACK);
    CHECK(mf_canvas_get_pixel(&c, 0, 0).r == 0, "a huge circle did not cover the canvas");

    /* Text: cell 6 x 10, 5 x 7 capitals, every printable glyph but space inks. */
    CHECK(mf_text_width("abc", 1) == 17 && mf_text_width("abc", 2) == 34, "text width %d",
          mf_text_width("abc", 1));
    CHECK(mf_text_height("abc", 1) == 9 && mf_text_height("a\nb", 1) == 19, "text height %d",
          mf_text_height("abc", 1));
    CHECK(mf_text_width("caf\xc3\xa9", 1) == 4 * 6 - 1, "UTF-8 not counted per character");
    for (int ch = 32; ch < 127; ch++) {
        char s[2] = {(char)ch, 0};
        mf_canvas_fill(&c, MF_WHITE);
        mf_draw_text(&c, 10, 10, s, 1, MF_BLACK);
        int inked = 0;
        for (int y = 0; y < 60; y++)
            for (int x = 0; x < 100; x++) {
                int on = mf_canvas_get_pixel(&c, x, y).r == 0;
                inked += on;
                CHECK(!on || (x >= 10 && x < 15 && y >= 10 && y < 19),
                      "glyph '%c' inks (%d, %d) outside its 5x9 box", ch, x, y);
            }
        CHECK((ch == ' ') == (inked == 0), "glyph '%c' has %d pixels", ch, inked);
    }
    /* "L" turned a quarter counter-clockwise: its 7-pixel stem (column 0)
     * becomes the bottom row of a 5-tall box. */
    mf_canvas_fill(&c, MF_WHITE);
    CHECK(mf_draw_text_vertical(&c, 10, 10, "L", 1, MF_BLACK) == 5, "vertical text extent");
    int bottom_row = 0;
    for (int x = 10; x < 17; x++) bottom_row += mf_canvas_get_pixel(&c, x, 14).r == 0;
    CHECK(bottom_row == 7, "vertical L: %d pixels on its bottom row, want 7", bottom_row);

    /* Colormap ends match matplotlib's tables (within the fit's error). */
    struct { mf_colormap map; float t; int r, g, b; } ends[] = {
        {MF_COLORMAP_VIRIDIS, 0, 68, 1, 84},   {MF_COLORMAP_VIRIDIS, 1, 253, 231, 37},
        {MF_COLORMAP_INFERNO, 0, 0, 0, 4},     {MF_COLORMAP_INFERNO, 1, 252, 255, 164},
        {MF_COLORMAP_VIRIDIS, 0.5f, 33, 145, 140}, {MF_COLORMAP_GREY, 1, 255, 255, 255},
    };
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        mf_rgb m = mf_colormap_color(ends[i].map, ends[i].t);
        CHECK(abs(m.r - ends[i].r) <= 4 && abs(m.g - ends[i].g) <= 4 && abs(m.b - ends[i].b) <= 4,
              "colormap %d at %.1f is (%d,%d,%d), want about (%d,%d,%d)", ends[i].map,
              (double)ends[i].t, m.r, m.g, m.b, ends[i].r, ends[i].g, ends[i].b);
    }

    /* A 2x2 grey image shown at 4x: each source pixel becomes a 4x4 block. */
    uint8_t grey[4] = {0, 50, 100, 150};
    mf_blit_image(&c, 0, 0, 8, 8, grey, 2, 2, 1);
    CHECK(mf_canvas_get_pixel(&c, 3, 3).r == 0 && mf_canvas_get_pixel(&c, 4, 3).g == 50 &&
              mf_canvas_get_pixel(&c, 3, 4).b == 100 && mf_canvas_get_pixel(&c, 7, 7).r == 150,
          "nearest-neighbour blit");
    /* A heat map at alpha 1 shows the map's ends at the grid's min and max. */
    float heat[2] = {5.0f, 9.0f};
    mf_blit_heatmap(&c, 20, 0, 20, 10, heat, 1, 2, 0, 0, MF_COLORMAP_GREY, 1.0f);
    CHECK(mf_canvas_get_pixel(&c, 25, 5).r == 0 && mf_canvas_get_pixel(&c, 35, 5).r == 255,
          "heat map range");
    /* At alpha 0.5 over white, black becomes mid grey. */
    mf_fill_rect(&c, 50, 0, 10, 10, MF_WHITE);
    mf_blit_heatmap(&c, 50, 0, 10, 10, heat, 1, 1, 5.0f, 9.0f, MF_COLORMAP_GREY, 0.5f);
    CHECK(abs(mf_canvas_get_pixel(&c, 55, 5).r - 128) <= 1, "heat map alpha blend gave %d",
          mf_canvas_get_pixel(&c, 55, 5).r);
    mf_canvas_free(&c);
    mf_canvas_free(&c); /* twice is harmless */
}

static void test_image_convert(void)
{
    mf_error err = {0};
    /* 4x2 RGB, planar: red plane, green plane, blue plane. */
    uint8_t px[24] = {
        255, 255, 0, 0, 255, 255, 0, 0, /* R */
        0,   0,   0, 0, 0,   0,   0, 0, /* G */
        0,   0,   255, 255, 0, 0, 255, 255 /* B */
    };
    mf_image src = {4, 2, 3, px}, dst;
    CHECK(mf_image_convert(&src, 1, 2, 1, &dst, &err) == MF_OK, "%s", err.message);
    CHECK(dst.width == 2 && dst.height == 1 && dst.channels == 1, "converted to %dx%dx%d",
          dst.width, dst.height, dst.channels);
    if (dst.pixels) {
        CHECK(dst.pixels[0] == (299 * 255 + 500) / 1000, "grey of red is %d", dst.pixels[0]);
        CHECK(dst.pixels[1] == (114 * 255 + 500) / 1000, "grey of blue is %d", dst.pixels[1]);
    }
    mf_image_free(&dst);
    /* Averaging: a 2x2 block of 0, 100, 200, 100 shrinks to 100. */
    uint8_t g[4] = {0, 100, 200, 100};
    mf_image grey = {2, 2, 1, g};
    CHECK(mf_image_convert(&grey, 3, 1, 1, &dst, &err) == MF_OK, "%s", err.message);
    CHECK(dst.pixels && dst.pixels[0] == 100 && dst.pixels[1] == 100 && dst.pixels[2] == 100,
          "grey to RGB average");
    mf_image_free(&dst);
    /* Enlarging repeats pixels. */
    CHECK(mf_image_convert(&grey, 1, 4, 4, &dst, &err) == MF_OK, "%s", err.message);
    CHECK(dst.pixels && dst.pixels[0] == 0 && dst.pixels[1] == 0 && dst.pixels[2] == 100 &&
              dst.pixels[15] == 100 && dst.pixels[8] == 200, "enlarging");
    mf_image_free(&dst);
    CHECK(mf_image_convert(&grey, 2, 4, 4, &dst, &err) == MF_ERR_CONFIG, "2 channels accepted");
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/mf_test_image_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "cannot create a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_png_round_trip);
    RUN(test_png_reader_conversions);
    RUN(test_pnm_binary);
    RUN(test_pnm_ascii);
    RUN(test_malformed_rejected);
    RUN(test_plot_renders_png);
    RUN(test_failed_write_leaves_no_file);
    RUN(test_canvas_drawing);
    RUN(test_image_convert);
    nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_report();
}
