/* Pictures in and out. In: the PNG reader's conversions (palette, 16-bit,
 * alpha, 1-bit, interlaced), PGM/PPM in binary and ASCII, every malformed
 * file rejected with a message naming it, resampling. Out (the figures, in
 * the application, drawn with Cairo): PNG, SVG and PDF files that are what
 * they say, the format from --format or the extension, point labels that
 * overlap neither each other nor the legend in a crowded chart, and failed
 * writes that leave the old file or none. */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, setrlimit, mkfifo */
#include "check.h"
#include "minformer/core.h"
#include "minformer/image.h"
#include "figures/figures.h"
#include "figures/plot.h"

#include <dirent.h>
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

/* ---- PNG files written here through libpng ------------------------------------ */

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

/* ---- PNG round trip ---------------------------------------------------------- */

/* An 8-bit RGB PNG of w x h interleaved pixels. */
static int write_rgb_png(const char *path, int w, int h, const uint8_t *rgb)
{
    png_spec spec = {.width = w, .height = h, .depth = 8, .color = PNG_COLOR_TYPE_RGB,
                     .interlace = PNG_INTERLACE_NONE, .rows = rgb, .rowbytes = (size_t)w * 3};
    return write_png_spec(path, &spec);
}

static void test_png_round_trip(void)
{
    mf_error err = {0};
    uint8_t px[37 * 23 * 3];
    mf_rng rng;
    mf_rng_seed(&rng, 7);
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)mf_rng_next(&rng);
    const char *path = tmp_path("round.png");
    CHECK(write_rgb_png(path, 37, 23, px), "cannot write %s", path);

    mf_image img;
    CHECK(mf_image_read(path, &img, &err) == MF_OK, "%s", err.message);
    CHECK(img.width == 37 && img.height == 23 && img.channels == 3, "read back %dx%dx%d",
          img.width, img.height, img.channels);
    if (img.pixels && img.width == 37 && img.height == 23 && img.channels == 3) {
        int diffs = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 37 * 23; i++) diffs += img.pixels[ch * 37 * 23 + i] != px[i * 3 + ch];
        CHECK(diffs == 0, "%d samples differ after the round trip", diffs);
    }
    mf_image_free(&img);
    CHECK(img.pixels == NULL, "mf_image_free leaves pixels set");
}


/* ---- PNG reader conversions ----------------------------------------------------- */

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
        BAD("empty.pgm", "", "not a PNG, JPEG, PGM or PPM image"),
        BAD("gif.png", "GIF89a\x01\x00\x01\x00", "not a PNG, JPEG, PGM or PPM image"),
        BAD("pbm.pgm", "P4 8 1\n\x55", "not a PNG, JPEG, PGM or PPM image"),
        BAD("p7.pgm", "P7\nWIDTH 1\n", "not a PNG, JPEG, PGM or PPM image"),
        BAD("magic_glued.pgm", "P55 5 255\n", "not a PNG, JPEG, PGM or PPM image"),
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
    uint8_t px[40 * 30 * 3];
    for (int i = 0; i < 40 * 30 * 3; i++) px[i] = (uint8_t)(i * 7);
    const char *good = tmp_path("good.png");
    CHECK(write_rgb_png(good, 40, 30, px), "cannot write %s", good);
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

/* ---- Figures: formats ------------------------------------------------------------- */

static int count_non_white(const mf_image *img)
{
    int n = 0;
    size_t plane = (size_t)img->width * img->height;
    for (size_t i = 0; i < plane; i++)
        n += img->pixels[i] != 255 || img->pixels[plane + i] != 255 ||
             img->pixels[2 * plane + i] != 255;
    return n;
}

/* A log of 12 epochs with a NaN test loss at epoch 6 (a gap). */
static mf_log_epoch curve_epochs[12];
static mf_training_log curve_log(void)
{
    memset(curve_epochs, 0, sizeof curve_epochs);
    for (int i = 0; i < 12; i++) {
        curve_epochs[i].epoch = i + 1;
        curve_epochs[i].train_loss = (float)(2.3 * exp(-i / 3.0) + 0.05);
        curve_epochs[i].test_loss = i == 5 ? NAN : (float)(2.2 * exp(-i / 3.5) + 0.12);
    }
    return (mf_training_log){.count = 12, .epochs = curve_epochs};
}

static void check_png_file(const char *path, int w, int h)
{
    size_t n = 0;
    uint8_t *bytes = slurp(path, &n);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    CHECK(bytes && n > 33 && memcmp(bytes, sig, 8) == 0 && memcmp(bytes + 12, "IHDR", 4) == 0,
          "%s: no PNG signature and IHDR", path);
    if (bytes && n > 33)
        CHECK(be32(bytes + 16) == (uint32_t)w && be32(bytes + 20) == (uint32_t)h,
              "%s: IHDR says %ux%u, want %dx%d", path, (unsigned)be32(bytes + 16),
              (unsigned)be32(bytes + 20), w, h);
    free(bytes);
}

static void check_svg_file(const char *path, int w)
{
    size_t n = 0;
    char *text = (char *)slurp(path, &n);
    CHECK(text && n > 100, "%s: empty", path);
    if (!text || n <= 100) {
        free(text);
        return;
    }
    text[n < ((size_t)1 << 22) ? n : n - 1] = '\0';
    CHECK(starts_with(text, "<?xml") || starts_with(text, "<svg"), "%s starts with %.10s", path,
          text);
    char width[32];
    snprintf(width, sizeof width, "width=\"%d", w);
    CHECK(strstr(text, "<svg") && strstr(text, width), "%s: no <svg ... %s", path, width);
    const char *close = strstr(text, "</svg>");
    CHECK(close && strspn(close + 6, " \r\n") == strlen(close + 6), "%s does not end in </svg>",
          path);
    free(text);
}

static void check_pdf_file(const char *path)
{
    size_t n = 0;
    uint8_t *bytes = slurp(path, &n);
    CHECK(bytes && n > 100 && memcmp(bytes, "%PDF-", 5) == 0, "%s does not start with %%PDF-",
          path);
    if (bytes && n > 100) {
        size_t end = n;
        while (end > 0 && (bytes[end - 1] == '\n' || bytes[end - 1] == '\r')) end--;
        CHECK(end >= 5 && memcmp(bytes + end - 5, "%%EOF", 5) == 0, "%s does not end in %%%%EOF",
              path);
    }
    free(bytes);
}

/* A log of the given epochs with these train and test values (acc the same). */
static mf_training_log band_log(mf_log_epoch *e, const int *epochs, const double *train,
                                const double *test, int n)
{
    memset(e, 0, (size_t)n * sizeof *e);
    for (int i = 0; i < n; i++) {
        e[i].epoch = epochs[i];
        e[i].train_loss = (float)train[i];
        e[i].test_loss = (float)test[i];
        e[i].train_acc = (float)(train[i] / 10);
        e[i].test_acc = (float)(test[i] / 10);
    }
    return (mf_training_log){.count = n, .epochs = e};
}

/* Whether the file's bytes hold text. */
static int file_has(const char *path, const char *text)
{
    size_t n = 0, k = strlen(text);
    uint8_t *bytes = slurp(path, &n);
    int found = 0;
    for (size_t i = 0; bytes && !found && i + k <= n; i++) found = !memcmp(bytes + i, text, k);
    free(bytes);
    return found;
}

static int near(double a, double b) { return fabs(a - b) < 1e-6; }

/* The band a seeded row draws: per epoch the mean and the sample standard
 * deviation (n - 1) over the epochs every log reached; NaN where a log has
 * no value; std NaN for one log. */
static void test_curve_band(void)
{
    mf_error err = {0};
    mf_log_epoch ea[3], eb[3], ec[2];
    const int e123[3] = {1, 2, 3};
    /* c stopped after epoch 2: the band holds epochs 1 and 2. */
    mf_training_log logs[3] = {
        band_log(ea, e123, (double[]){2, 2, 2}, (double[]){1, 2, 3}, 3),
        band_log(eb, e123, (double[]){2, 2, 2}, (double[]){3, 4, 5}, 3),
        band_log(ec, e123, (double[]){2, 5}, (double[]){2, 3}, 2)};
    mf_curve_band b;
    CHECK(mf_curve_band_make(logs, 3, 0, &b, &err) == MF_OK, "%s", err.message);
    CHECK(b.count == 2 && b.epoch[0] == 1 && b.epoch[1] == 2, "band over %d epochs", b.count);
    if (b.count == 2) {
        CHECK(near(b.test_mean[0], 2) && near(b.test_std[0], 1), "epoch 1 test: %g ± %g",
              b.test_mean[0], b.test_std[0]);
        CHECK(near(b.test_mean[1], 3) && near(b.test_std[1], 1), "epoch 2 test: %g ± %g",
              b.test_mean[1], b.test_std[1]);
        CHECK(near(b.train_mean[0], 2) && near(b.train_std[0], 0), "epoch 1 train: %g ± %g",
              b.train_mean[0], b.train_std[0]);
        /* 2, 2, 5: mean 3, squares 1 + 1 + 4 over n - 1 = 2 (sqrt 2 with n). */
        CHECK(near(b.train_mean[1], 3) && near(b.train_std[1], sqrt(3.0)), "epoch 2 train: %g ± %g",
              b.train_mean[1], b.train_std[1]);
    }
    mf_curve_band_free(&b);
    /* Accuracy in percent: 0.1, 0.3, 0.2 at epoch 1. */
    CHECK(mf_curve_band_make(logs, 3, 1, &b, &err) == MF_OK, "%s", err.message);
    CHECK(b.count == 2 && near(b.test_mean[0], 20) && near(b.test_std[0], 10),
          "accuracy band: %g ± %g", b.count ? b.test_mean[0] : NAN, b.count ? b.test_std[0] : NAN);
    mf_curve_band_free(&b);
    /* Epochs {1, 2, 3} and {1, 3}: the band skips 2. A NaN test loss at
     * epoch 3 makes the test mean NaN there; the train mean stays. */
    mf_log_epoch ed[2];
    logs[2] = band_log(ed, (const int[]){1, 3}, (double[]){4, 6}, (double[]){NAN, NAN}, 2);
    ed[0].test_loss = 5;
    CHECK(mf_curve_band_make(logs + 1, 2, 0, &b, &err) == MF_OK, "%s", err.message);
    CHECK(b.count == 2 && b.epoch[0] == 1 && b.epoch[1] == 3, "epochs both logs have: %d",
          b.count);
    if (b.count == 2) {
        CHECK(near(b.test_mean[0], 4) && near(b.test_std[0], sqrt(2.0)), "epoch 1: %g ± %g",
              b.test_mean[0], b.test_std[0]);
        CHECK(isnan(b.test_mean[1]) && isnan(b.test_std[1]), "a NaN test loss: %g ± %g",
              b.test_mean[1], b.test_std[1]);
        CHECK(near(b.train_mean[1], 4) && near(b.train_std[1], sqrt(8.0)), "epoch 3 train: %g ± %g",
              b.train_mean[1], b.train_std[1]);
    }
    mf_curve_band_free(&b);
    CHECK(mf_curve_band_make(logs, 1, 0, &b, &err) == MF_OK && b.count == 3 &&
              near(b.test_mean[2], 3) && isnan(b.test_std[2]),
          "one log: its values, no std");
    mf_curve_band_free(&b);
    CHECK(mf_curve_band_make(logs, 0, 0, &b, &err) == MF_ERR_CONFIG, "no logs");
}

/* A row of three seeds draws its mean with a band in the row's color at
 * MF_BAND_ALPHA over white, next to a row of one log; in SVG and PDF the
 * band is a translucent fill. */
static void test_figure_bands(void)
{
    mf_error err = {0};
    mf_log_epoch e[4][5];
    const int ep[5] = {1, 2, 3, 4, 5};
    mf_training_log logs[4];
    for (int k = 0; k < 4; k++) {
        double tr[5], te[5];
        for (int i = 0; i < 5; i++) {
            tr[i] = 2.0 / (i + 1) + 0.3 * k;
            te[i] = 2.2 / (i + 1) + 0.4 * k;
        }
        logs[k] = band_log(e[k], ep, tr, te, 5);
    }
    const int sizes[2] = {3, 1};
    const char *labels[2] = {"three seeds", "one run"};
    const char *png = tmp_path("band.png"), *svg = tmp_path("band.svg"), *pdf = tmp_path("band.pdf");
    CHECK(mf_figure_curves_rows(png, MF_FIGURE_PNG, 800, 500, "bands", logs, sizes, labels, 2, 0,
                                &err) == MF_OK, "%s", err.message);
    check_png_file(png, 800, 500);
    mf_image img;
    CHECK(mf_image_read(png, &img, &err) == MF_OK, "%s", err.message);
    if (img.pixels) {
        mf_color c = mf_palette(0);
        const double a = MF_BAND_ALPHA;
        int want[3] = {(int)lrint(255 * (1 - a + a * c.r)), (int)lrint(255 * (1 - a + a * c.g)),
                       (int)lrint(255 * (1 - a + a * c.b))};
        int found = 0;
        size_t plane = (size_t)img.width * img.height;
        for (size_t i = 0; i < plane; i++)
            found += abs(img.pixels[i] - want[0]) <= 2 && abs(img.pixels[plane + i] - want[1]) <= 2 &&
                     abs(img.pixels[2 * plane + i] - want[2]) <= 2;
        CHECK(found > 2000, "%d pixels of the band's tint", found);
    }
    mf_image_free(&img);
    CHECK(mf_figure_curves_rows(svg, MF_FIGURE_SVG, 800, 500, "bands", logs, sizes, labels, 2, 1,
                                &err) == MF_OK, "%s", err.message);
    check_svg_file(svg, 800);
    CHECK(file_has(svg, "fill-opacity:0.18"), "the SVG has a translucent band");
    CHECK(mf_figure_curves_rows(pdf, MF_FIGURE_PDF, 800, 500, "bands", logs, sizes, labels, 2, 0,
                                &err) == MF_OK, "%s", err.message);
    check_pdf_file(pdf);
    CHECK(file_has(pdf, "/ca 0.18"), "the PDF has a translucent band");
    CHECK(mf_figure_curves_rows(png, MF_FIGURE_PNG, 800, 500, "bands", logs, (const int[]){3, 0},
                                labels, 2, 0, &err) == MF_ERR_CONFIG, "a row of 0 logs");
}

static void test_figure_formats(void)
{
    mf_error err = {0};
    mf_training_log log = curve_log();
    const char *labels[1] = {"run"};
    const char *png = tmp_path("loss.png"), *svg = tmp_path("loss.svg"), *pdf = tmp_path("loss.pdf");
    CHECK(mf_figure_curves(png, MF_FIGURE_PNG, 640, 400, "loss", &log, labels, 1, 0, &err) == MF_OK,
          "%s", err.message);
    check_png_file(png, 640, 400);
    mf_image img;
    CHECK(mf_image_read(png, &img, &err) == MF_OK, "%s", err.message);
    CHECK(img.width == 640 && img.height == 400 && img.channels == 3, "chart is %dx%dx%d",
          img.width, img.height, img.channels);
    if (img.pixels) {
        int inked = count_non_white(&img);
        CHECK(inked > 2000 && inked < 640 * 400 / 2, "chart has %d non-white pixels", inked);
        /* Some pixel carries the first palette color (the curve, its legend line). */
        mf_color blue = mf_palette(0);
        int found = 0;
        size_t plane = 640 * 400;
        for (size_t i = 0; i < plane && !found; i++)
            found = abs(img.pixels[i] - (int)lrint(blue.r * 255)) <= 3 &&
                    abs(img.pixels[plane + i] - (int)lrint(blue.g * 255)) <= 3 &&
                    abs(img.pixels[2 * plane + i] - (int)lrint(blue.b * 255)) <= 3;
        CHECK(found, "no pixel of the train curve's color");
    }
    mf_image_free(&img);
    CHECK(mf_figure_curves(svg, MF_FIGURE_SVG, 640, 400, "loss", &log, labels, 1, 1, &err) == MF_OK,
          "%s", err.message);
    check_svg_file(svg, 640);
    CHECK(mf_figure_curves(pdf, MF_FIGURE_PDF, 640, 400, "loss", &log, labels, 1, 0, &err) == MF_OK,
          "%s", err.message);
    check_pdf_file(pdf);

    double params[3] = {12e3, 150e3, 2.1e6}, acc[3] = {95, 98, 99};
    const char *names[3] = {"small", NULL, "large"}, *group_names[1] = {"MNIST"};
    int group[3] = {0, 0, 0};
    const mf_figure_format formats[3] = {MF_FIGURE_PNG, MF_FIGURE_SVG, MF_FIGURE_PDF};
    const char *acc_paths[3] = {tmp_path("acc.png"), tmp_path("acc.svg"), tmp_path("acc.pdf")};
    for (int f = 0; f < 3; f++)
        CHECK(mf_figure_accuracy_params(acc_paths[f], formats[f], 800, 500, "accuracy", params, acc,
                                        names, group, group_names, 1, 3, &err) == MF_OK,
              "%s", err.message);
    check_png_file(acc_paths[0], 800, 500);
    check_svg_file(acc_paths[1], 800);
    check_pdf_file(acc_paths[2]);

    /* Attention: input, 2 layers, rollout in 168-pixel panels: 16 + 4 * 184 wide. */
    mf_config cfg;
    mf_config_default(&cfg, 28, 1, 10);
    cfg.layers = 2;
    int G = 28 / cfg.patch;
    uint8_t pixels[28 * 28];
    for (int i = 0; i < 28 * 28; i++) pixels[i] = (uint8_t)(i % 28 * 9);
    float layers[2 * 64], roll[64];
    for (int i = 0; i < 2 * G * G; i++) layers[i] = (float)(i % (G * G)) / (G * G);
    for (int i = 0; i < G * G; i++) roll[i] = i == 3 ? NAN : 1.0f / (G * G);
    const char *att[3] = {tmp_path("att.png"), tmp_path("att.svg"), tmp_path("att.pdf")};
    for (int f = 0; f < 3; f++)
        CHECK(mf_figure_attention(att[f], formats[f], &cfg, pixels, layers, roll, "header", &err) ==
                  MF_OK, "%s", err.message);
    size_t n = 0;
    uint8_t *bytes = slurp(att[0], &n);
    CHECK(bytes && n > 24 && be32(bytes + 16) == 752, "attention PNG %u wide, want 752",
          bytes && n > 24 ? (unsigned)be32(bytes + 16) : 0u);
    free(bytes);
    check_svg_file(att[1], 752);
    check_pdf_file(att[2]);

    /* The format by name or by extension, in any case; anything else named. */
    mf_figure_format fmt = MF_FIGURE_PNG;
    CHECK(mf_figure_format_parse("SVG", &fmt, &err) == MF_OK && fmt == MF_FIGURE_SVG, "SVG");
    CHECK(mf_figure_format_parse("jpg", &fmt, &err) == MF_ERR_CONFIG && strstr(err.message, "'jpg'"),
          "jpg: %s", err.message);
    CHECK(mf_figure_format_from_path("out/fig.Pdf", &fmt, &err) == MF_OK && fmt == MF_FIGURE_PDF,
          "fig.Pdf");
    CHECK(mf_figure_format_from_path("fig.png", &fmt, &err) == MF_OK && fmt == MF_FIGURE_PNG,
          "fig.png");
    CHECK(mf_figure_format_from_path("fig.jpeg", &fmt, &err) == MF_ERR_CONFIG &&
              starts_with(err.message, "fig.jpeg") && strstr(err.message, "'.jpeg'"),
          "fig.jpeg: %s", err.message);
    CHECK(mf_figure_format_from_path("a.d/fig", &fmt, &err) == MF_ERR_CONFIG &&
              strstr(err.message, "no file extension"), "a.d/fig: %s", err.message);
    CHECK(mf_figure_format_choose("pdf", "fig.png", &fmt, &err) == MF_OK && fmt == MF_FIGURE_PDF,
          "--format wins over the extension");
    CHECK(mf_figure_format_choose(NULL, "fig.svg", &fmt, &err) == MF_OK && fmt == MF_FIGURE_SVG,
          "the extension without --format");
}

/* ---- Figures: chart layout ---------------------------------------------------------- */

/* Every placed label box inside the plot and clear of the other labels, the
 * legend and every marker; returns how many were placed. */
static int check_label_boxes(const mf_plot_layout *lay, const char *what)
{
    int placed = 0;
    double m = lay->marker_size / 2;
    for (int i = 0; i < lay->label_count; i++) {
        const mf_point_label *a = &lay->labels[i];
        if (!a->placed) continue;
        placed++;
        mf_rect b = a->box;
        CHECK(b.x >= lay->plot.x && b.y >= lay->plot.y && b.x + b.w <= lay->plot.x + lay->plot.w &&
                  b.y + b.h <= lay->plot.y + lay->plot.h,
              "%s: label '%s' leaves the plot area", what, lay->text[i]);
        CHECK(lay->legend.w == 0 || !mf_rect_overlap(b, lay->legend),
              "%s: label '%s' overlaps the legend", what, lay->text[i]);
        for (int j = 0; j < lay->label_count; j++) {
            const mf_point_label *c = &lay->labels[j];
            mf_rect marker = {c->px - m, c->py - m, 2 * m, 2 * m};
            CHECK(!mf_rect_overlap(b, marker), "%s: label '%s' covers the marker of '%s'", what,
                  lay->text[i], lay->text[j]);
            if (j > i && c->placed)
                CHECK(!mf_rect_overlap(b, c->box), "%s: labels '%s' and '%s' overlap", what,
                      lay->text[i], lay->text[j]);
        }
    }
    return placed;
}

static void test_label_layout(void)
{
    /* Fourteen runs like table2's: the no-MLP variants crowd around 70k-110k
     * parameters and 51-55% accuracy, two MLP runs sit almost on each other. */
    static const double params[14] = {30858, 56000, 68000, 68000, 82000, 82000, 82000,
                                      82000, 105000, 105000, 236000, 280000, 305000, 310000};
    static const double acc[14] = {62.3, 66.5, 54.1, 41.7, 54.3, 54.0, 53.2,
                                   47.1, 53.8, 51.0, 62.4, 56.9, 57.1, 57.0};
    static const char *const names[14] = {
        "H1 noMLP minimal",    "H4 noMLP vo-none",  "H1 noMLP shared",    "H1 noMLP cholesky",
        "H1 noMLP wqk",        "H4 noMLP minimal",  "H4 noMLP symmetric", "H1 noMLP symmetric",
        "H4 noMLP unchanged",  "H1 noMLP unchanged", "H1 MLP4 minimal",   "H1 MLP4 wqk",
        "H4 MLP4 unchanged",   "H1 MLP4 unchanged"};
    mf_plot_series series = {.x = params, .y = acc, .n = 14, .label = "mnist (a long legend entry)",
                             .point_labels = names};
    mf_plot_spec spec = {.title = "test accuracy against parameters", .x_title = "parameters",
                         .y_title = "test accuracy (%)", .series = &series, .series_count = 1,
                         .scatter = 1, .log_x = 1, .x_min = 30858 / 1.7, .x_max = 310000 * 1.7};
    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *cr = cairo_create(surface);
    mf_error err = {0};
    const int sizes[3][2] = {{1200, 800}, {800, 500}, {640, 400}};
    for (int k = 0; k < 3; k++) {
        char what[32];
        snprintf(what, sizeof what, "%dx%d", sizes[k][0], sizes[k][1]);
        mf_plot_layout lay;
        mf_rect region = {0, 0, sizes[k][0], sizes[k][1]};
        CHECK(mf_plot_layout_make(cr, &spec, region, &lay, &err) == MF_OK, "%s", err.message);
        CHECK(lay.label_count == 14, "%s: %d labels laid out, want 14", what, lay.label_count);
        CHECK(lay.legend.w > 0 && !mf_rect_overlap(lay.legend, lay.plot) &&
                  lay.legend.x + lay.legend.w <= region.w,
              "%s: the legend is not right of the plot area inside the figure", what);
        int placed = check_label_boxes(&lay, what);
        CHECK(placed == 14, "%s: %d of 14 labels placed", what, placed);
        mf_plot_layout_free(&lay);
    }

    /* All fourteen on one spot: leader lines take them out, still apart. */
    double same_x[14], same_y[14];
    for (int i = 0; i < 14; i++) same_x[i] = 1e5, same_y[i] = 50;
    mf_plot_series heap = {.x = same_x, .y = same_y, .n = 14, .label = "g", .point_labels = names};
    spec.series = &heap;
    mf_plot_layout lay;
    CHECK(mf_plot_layout_make(cr, &spec, (mf_rect){0, 0, 1200, 800}, &lay, &err) == MF_OK, "%s",
          err.message);
    int placed = check_label_boxes(&lay, "one spot");
    CHECK(placed == 14, "one spot: %d of 14 labels placed", placed);
    int leaders = 0;
    for (int i = 0; i < lay.label_count; i++) leaders += lay.labels[i].leader;
    CHECK(leaders > 0, "one spot: no label needed a leader line");
    mf_plot_layout_free(&lay);
    cairo_destroy(cr);
    cairo_surface_destroy(surface);

    /* A label goes left when an obstacle takes the right, and is dropped
     * rather than overlapping when there is no room at all. */
    mf_point_label one = {.px = 50, .py = 50, .w = 30, .h = 10};
    mf_rect right = {55, 0, 100, 100};
    mf_place_labels(&one, 1, (mf_rect){0, 0, 100, 100}, &right, 1, 4);
    CHECK(one.placed && !one.leader && one.box.x + one.box.w <= 46.0001, "label at x %g",
          one.box.x);
    mf_rect all = {0, 0, 100, 100};
    mf_place_labels(&one, 1, (mf_rect){0, 0, 100, 100}, &all, 1, 4);
    CHECK(!one.placed, "a label placed over an obstacle that covers everything");

    /* Malformed specs are configuration errors. */
    surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cr = cairo_create(surface);
    mf_plot_series broken = {.n = 5};
    mf_plot_spec bad = {.series = &broken, .series_count = 1};
    CHECK(mf_plot_layout_make(cr, &bad, (mf_rect){0, 0, 400, 300}, &lay, &err) == MF_ERR_CONFIG,
          "series without y accepted");
    mf_plot_spec empty = {0};
    CHECK(mf_plot_layout_make(cr, &empty, (mf_rect){0, 0, 50, 40}, &lay, &err) == MF_ERR_CONFIG,
          "a 50x40 region accepted");
    /* Degenerate and extreme data draw a frame rather than failing. */
    double nan_y[2] = {NAN, INFINITY}, one_y[1] = {3.0};
    mf_plot_series odd[3] = {{.y = nan_y, .n = 2}, {.y = one_y, .n = 1}, {.n = 0}};
    mf_plot_spec ospec = {.series = odd, .series_count = 3, .log_y = 1};
    CHECK(mf_plot_draw(cr, &ospec, (mf_rect){0, 0, 400, 300}, &err) == MF_OK, "degenerate: %s",
          err.message);
    double wild_x[4] = {-1e308, 0, 1, 1e308}, wild_y[4] = {1e308, -1e308, 1e-310, 5};
    const char *wild_names[4] = {"a", "b", "c", "d"};
    mf_plot_series wild = {.x = wild_x, .y = wild_y, .n = 4, .label = "wild",
                           .point_labels = wild_names, .style = MF_LINE_DOTTED};
    mf_plot_spec wspec = {.series = &wild, .series_count = 1};
    CHECK(mf_plot_draw(cr, &wspec, (mf_rect){0, 0, 400, 300}, &err) == MF_OK, "extreme: %s",
          err.message);
    wspec.scatter = 1;
    wspec.x_min = 0.5;
    wspec.x_max = 0.6; /* everything far outside a narrow fixed range */
    CHECK(mf_plot_draw(cr, &wspec, (mf_rect){0, 0, 400, 300}, &err) == MF_OK, "extreme: %s",
          err.message);
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
}

/* ---- Figures: failed writes ------------------------------------------------------------ */

/* Whether the temporary directory holds a file whose name starts with
 * prefix (a temporary file left behind). */
static int leftover(const char *prefix)
{
    DIR *d = opendir(tmp_dir);
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d));)
        found = starts_with(e->d_name, prefix);
    if (d) closedir(d);
    return found;
}

static void test_failed_write_leaves_old_or_none(void)
{
    mf_error err = {0};
    mf_training_log log = curve_log();
    const char *labels[1] = {"run"};

    /* A directory that does not exist: refused before drawing, named. */
    const char *nodir = tmp_path("no/such/dir/out.png");
    CHECK(mf_figure_curves(nodir, MF_FIGURE_PNG, 320, 200, "t", &log, labels, 1, 0, &err) ==
              MF_ERR_IO, "write into a missing directory succeeded");
    CHECK(starts_with(err.message, nodir) && strstr(err.message, "directory"),
          "message does not name the file and its directory: %s", err.message);
    CHECK(!file_exists(nodir), "a file appeared");

    /* A target that is a directory or a FIFO is refused, not renamed over. */
    const char *dir = tmp_path("a_dir.svg");
    CHECK(mkdir(dir, 0700) == 0, "cannot create %s", dir);
    CHECK(mf_figure_curves(dir, MF_FIGURE_SVG, 320, 200, "t", &log, labels, 1, 0, &err) ==
              MF_ERR_IO && strstr(err.message, "is a directory"), "over a directory: %s", err.message);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "the directory was replaced");
    const char *fifo = tmp_path("a_fifo.pdf");
    if (mkfifo(fifo, 0600) == 0) {
        CHECK(mf_figure_curves(fifo, MF_FIGURE_PDF, 320, 200, "t", &log, labels, 1, 0, &err) ==
                  MF_ERR_IO, "write over a FIFO succeeded");
        CHECK(stat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");
    }

    /* The disk filling up mid-write, simulated with a file size limit: the
     * write fails, the old complete figure stays, no temporary remains. */
    const char *kept = tmp_path("kept.png");
    CHECK(mf_figure_curves(kept, MF_FIGURE_PNG, 320, 200, "t", &log, labels, 1, 0, &err) == MF_OK,
          "%s", err.message);
    size_t before_n = 0, after_n = 0;
    uint8_t *before = slurp(kept, &before_n);
    struct rlimit old;
    if (before && getrlimit(RLIMIT_FSIZE, &old) == 0) {
        struct rlimit small = old;
        small.rlim_cur = 2048;
        void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of death */
        if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
            mf_status st2 =
                mf_figure_curves(kept, MF_FIGURE_PNG, 1600, 1000, "t", &log, labels, 1, 0, &err);
            setrlimit(RLIMIT_FSIZE, &old);
            CHECK(st2 == MF_ERR_IO, "write beyond the size limit returned %d", st2);
            CHECK(starts_with(err.message, kept), "message does not name the file: %s",
                  err.message);
            uint8_t *after = slurp(kept, &after_n);
            CHECK(after && after_n == before_n && memcmp(after, before, before_n) == 0,
                  "the old figure was damaged");
            free(after);
            CHECK(!leftover("kept.png."), "a temporary file was left behind");
        }
        signal(SIGXFSZ, old_handler);
    }
    free(before);
}

/* ---- Colors, conversion -------------------------------------------------------------- */

static void test_colors(void)
{
    /* Colormap ends match matplotlib's tables (within the fit's error). */
    struct { mf_colormap map; float t; int r, g, b; } ends[] = {
        {MF_COLORMAP_VIRIDIS, 0, 68, 1, 84},   {MF_COLORMAP_VIRIDIS, 1, 253, 231, 37},
        {MF_COLORMAP_INFERNO, 0, 0, 0, 4},     {MF_COLORMAP_INFERNO, 1, 252, 255, 164},
        {MF_COLORMAP_VIRIDIS, 0.5f, 33, 145, 140}, {MF_COLORMAP_GREY, 1, 255, 255, 255},
        {MF_COLORMAP_GREY, NAN, 0, 0, 0},      {MF_COLORMAP_INFERNO, 7, 252, 255, 164},
    };
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        uint8_t m[3];
        mf_colormap_rgb(ends[i].map, ends[i].t, m);
        CHECK(abs(m[0] - ends[i].r) <= 4 && abs(m[1] - ends[i].g) <= 4 && abs(m[2] - ends[i].b) <= 4,
              "colormap %d at %.1f is (%d,%d,%d), want about (%d,%d,%d)", ends[i].map,
              (double)ends[i].t, m[0], m[1], m[2], ends[i].r, ends[i].g, ends[i].b);
    }
    mf_color first = mf_palette(0), wrapped = mf_palette(MF_PALETTE_SIZE), last = mf_palette(-1);
    CHECK(lrint(first.r * 255) == 31 && lrint(first.g * 255) == 119 && lrint(first.b * 255) == 180,
          "palette(0) is not tab10 blue");
    CHECK(wrapped.r == first.r && last.r == mf_palette(MF_PALETTE_SIZE - 1).r, "palette wraps");
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
    RUN(test_figure_formats);
    RUN(test_curve_band);
    RUN(test_figure_bands);
    RUN(test_label_layout);
    RUN(test_failed_write_leaves_old_or_none);
    RUN(test_colors);
    RUN(test_image_convert);
    nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_report();
}
