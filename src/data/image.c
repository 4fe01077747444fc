/* Image files: the readers `predict` and folder datasets use for PNG
 * (libpng), JPEG (libjpeg-turbo), PGM and PPM, plus resampling to the
 * model's input size.
 *
 * Readers take the whole file into memory first and parse from there with
 * every length checked against what is left, so a short or hostile file
 * yields an error, never a read past the end. */
#define _POSIX_C_SOURCE 200809L
#include "minformer/image.h"

#include <errno.h>
#include <inttypes.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
/* After stdio.h, which jpeglib.h needs for FILE. */
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char not_an_image[] = "not a PNG, JPEG, PGM or PPM image";
static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

/* The largest image file `predict` reads: 256 MiB, refused before any of it
 * is read. A digit or a photo to classify is kilobytes to megabytes; this
 * still takes an 8-bit 9000x9000 RGB PPM or a 16-bit 6500x6500 one. */
#define MAX_FILE_BYTES ((uint64_t)256 << 20)

/* ---- Reading files ------------------------------------------------------- */

void mf_image_free(mf_image *img)
{
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

typedef enum { KIND_UNKNOWN, KIND_PNG, KIND_JPEG, KIND_PNM } image_kind;

static image_kind detect_kind(const uint8_t *data, size_t size)
{
    if (size >= sizeof png_signature && memcmp(data, png_signature, sizeof png_signature) == 0)
        return KIND_PNG;
    /* SOI then the first marker's 0xFF. */
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return KIND_JPEG;
    if (size >= 2 && data[0] == 'P' &&
        (data[1] == '2' || data[1] == '3' || data[1] == '5' || data[1] == '6'))
        return KIND_PNM;
    return KIND_UNKNOWN;
}

/* Whether the first bytes could still begin a PNG or PNM once more arrive. */
static int could_be_image(const uint8_t *data, size_t size)
{
    if (size >= 8) return detect_kind(data, size) != KIND_UNKNOWN;
    if (memcmp(data, png_signature, size) == 0) return 1;
    static const uint8_t jpeg_start[3] = {0xFF, 0xD8, 0xFF};
    if (memcmp(data, jpeg_start, size < 3 ? size : 3) == 0) return 1;
    return detect_kind(data, size) != KIND_UNKNOWN;
}

static mf_status read_whole_file(const char *path, uint8_t **out, size_t *out_size,
                                 mf_error *err)
{
    *out = NULL;
    *out_size = 0;
    /* Only a regular file: a FIFO would block the open, a device such as
     * /dev/zero would never end. */
    uint64_t file_size;
    int fd = mf_open_regular(path, 0, &file_size, err);
    if (fd < 0) return MF_ERR_IO;
    if (file_size > MAX_FILE_BYTES) {
        close(fd);
        return mf_fail(err, MF_ERR_IO, "%s: %llu bytes, over the %llu MiB limit for an image",
                       path, (unsigned long long)file_size,
                       (unsigned long long)(MAX_FILE_BYTES >> 20));
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        mf_status st = mf_fail(err, MF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    /* One byte more than the size on disk, to notice a file that grew. */
    size_t cap = (size_t)file_size + 1, size = 0;
    uint8_t *data = malloc(cap);
    mf_status status = MF_OK;
    if (!data) status = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    while (status == MF_OK && size < cap) {
        /* The first 8 bytes alone tell a non-image (a large file passed by
         * mistake), which is then not read any further. */
        size_t want = cap - size;
        if (size < 8 && want > 8 - size) want = 8 - size;
        size_t got = fread(data + size, 1, want, f);
        size += got;
        if (got < want) {
            if (ferror(f))
                status = mf_fail(err, MF_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (size == 8 && !could_be_image(data, 8)) break;
    }
    if (status == MF_OK && size == cap)
        status = mf_fail(err, MF_ERR_IO, "%s: grew while being read", path);
    fclose(f);
    if (status != MF_OK) {
        free(data);
        return status;
    }
    *out = data;
    *out_size = size;
    return MF_OK;
}

mf_status mf_image_read(const char *path, mf_image *img, mf_error *err)
{
    memset(img, 0, sizeof *img);
    if (!path || !*path) return mf_fail(err, MF_ERR_CONFIG, "image path is empty");
    uint8_t *data;
    size_t size;
    mf_status status = read_whole_file(path, &data, &size, err);
    if (status != MF_OK) return status;
    status = mf_image_decode(data, size, path, img, err);
    free(data);
    return status;
}

static mf_status alloc_image(mf_image *img, int width, int height, int channels,
                             const char *name, mf_error *err)
{
    img->pixels = malloc((size_t)width * (size_t)height * (size_t)channels);
    if (!img->pixels)
        return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory for a %dx%d image", name, width,
                       height);
    img->width = width;
    img->height = height;
    img->channels = channels;
    return MF_OK;
}

/* ---- PNG reader ------------------------------------------------------------ */

typedef struct {
    const uint8_t *data;
    size_t size, pos;
    char message[160]; /* libpng's error */
    char warning[160]; /* its last warning, which often says why the error came */
    int out_of_memory;
    uint8_t *rows;     /* one decoded row, or the whole image when interlaced */
    mf_image *img;
} png_reader;

static void png_read_error(png_structp png, png_const_charp msg)
{
    png_reader *r = png_get_error_ptr(png);
    snprintf(r->message, sizeof r->message, "%s", msg);
    png_longjmp(png, 1);
}

static void png_read_warning(png_structp png, png_const_charp msg)
{
    png_reader *r = png_get_error_ptr(png);
    snprintf(r->warning, sizeof r->warning, "%s", msg);
}

static void png_read_data(png_structp png, png_bytep out, size_t length)
{
    png_reader *r = png_get_io_ptr(png);
    if (length > r->size - r->pos) png_error(png, "file is truncated");
    memcpy(out, r->data + r->pos, length);
    r->pos += length;
}

/* One row after libpng's transforms (8-bit grey, grey+alpha, RGB or RGBA)
 * into the planar output, alpha composited over black. */
static void png_store_row(mf_image *img, int y, const uint8_t *row, int samples)
{
    size_t plane = (size_t)img->width * (size_t)img->height;
    uint8_t *dst = img->pixels + (size_t)y * (size_t)img->width;
    int has_alpha = samples == img->channels + 1;
    for (int x = 0; x < img->width; x++, row += samples) {
        unsigned alpha = has_alpha ? row[img->channels] : 255;
        for (int c = 0; c < img->channels; c++)
            dst[c * plane + (size_t)x] = (uint8_t)((row[c] * alpha + 127) / 255);
    }
}

/* Everything libpng may longjmp out of lives here, and what it changes is
 * reached through r, whose storage is the caller's, so nothing the caller
 * reads afterwards is left indeterminate by the longjmp. */
static int png_decode_guarded(png_structp png, png_infop info, png_reader *r)
{
    if (setjmp(png_jmpbuf(png))) return 0;
    png_set_read_fn(png, r, png_read_data);
    png_set_user_limits(png, MF_IMAGE_MAX_SIDE, MF_IMAGE_MAX_SIDE);
    /* Caps what one ancillary chunk (text, ICC profile) may inflate to. */
    png_set_chunk_malloc_max(png, (png_alloc_size_t)8 << 20);
#ifdef PNG_HANDLE_AS_UNKNOWN_SUPPORTED
    /* Skips every chunk but IHDR, PLTE, tRNS, IDAT and IEND, the only ones
     * the pixels depend on here. libpng 1.6 reads a text, ICC or eXIf chunk
     * into a zeroed buffer of its declared length before it finds the file
     * shorter, and only warns past the cap above: a 79-byte file claiming a
     * 1.3 GB iTXt chunk cost 1.3 GB and seconds (fuzz/regressions/image/).
     * Skipped chunks are read through a small buffer. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
#endif
    png_read_info(png, info);

    png_uint_32 width, height;
    int depth, color, interlace;
    png_get_IHDR(png, info, &width, &height, &depth, &color, &interlace, NULL, NULL);
    if ((uint64_t)width * height > MF_IMAGE_MAX_PIXELS) png_error(png, "image has too many pixels");
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_scale_16(png); /* rounds, where strip_16 truncates */
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = (color & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    int samples = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((samples != channels && samples != channels + 1) || png_get_bit_depth(png, info) != 8 ||
        rowbytes != (size_t)width * (size_t)samples)
        png_error(png, "unexpected pixel layout after conversion");

    int interlaced = passes > 1;
    r->rows = malloc(interlaced ? rowbytes * height : rowbytes);
    r->img->pixels = malloc((size_t)width * height * (size_t)channels);
    if (!r->rows || !r->img->pixels) {
        r->out_of_memory = 1;
        return 0;
    }
    r->img->width = (int)width;
    r->img->height = (int)height;
    r->img->channels = channels;
    /* Interlaced rows fill in over several passes, so they need the whole
     * image at once; otherwise one row at a time keeps memory small. */
    for (int pass = 0; pass < passes; pass++)
        for (png_uint_32 y = 0; y < height; y++) {
            uint8_t *row = interlaced ? r->rows + (size_t)y * rowbytes : r->rows;
            png_read_row(png, row, NULL);
            if (!interlaced) png_store_row(r->img, (int)y, row, samples);
        }
    if (interlaced)
        for (png_uint_32 y = 0; y < height; y++)
            png_store_row(r->img, (int)y, r->rows + (size_t)y * rowbytes, samples);
    return 1;
}

static uint32_t read_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static mf_status decode_png(const uint8_t *data, size_t size, const char *name, mf_image *img,
                            mf_error *err)
{
    /* Checked here too so the message says what is wrong in plain words;
     * libpng would only report "Invalid IHDR data". */
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint32_t w = read_be32(data + 16), h = read_be32(data + 20);
        if (w == 0 || h == 0)
            return mf_fail(err, MF_ERR_FORMAT, "%s: PNG has zero size (%" PRIu32 "x%" PRIu32 ")",
                           name, w, h);
        if (w > MF_IMAGE_MAX_SIDE || h > MF_IMAGE_MAX_SIDE ||
            (uint64_t)w * h > MF_IMAGE_MAX_PIXELS)
            return mf_fail(err, MF_ERR_FORMAT, "%s: PNG size %" PRIu32 "x%" PRIu32
                           " is over the limit of %dx%d (%d megapixels)", name, w, h,
                           MF_IMAGE_MAX_SIDE, MF_IMAGE_MAX_SIDE, (int)(MF_IMAGE_MAX_PIXELS >> 20));
    }
    png_reader r = {.data = data, .size = size, .img = img};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_read_error, png_read_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    mf_status status = MF_OK;
    if (!png || !info) {
        status = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory for the PNG decoder", name);
    } else if (!png_decode_guarded(png, info, &r)) {
        if (r.out_of_memory)
            status = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory for the PNG pixels", name);
        else if (r.warning[0])
            status = mf_fail(err, MF_ERR_FORMAT, "%s: bad PNG: %s (%s)", name, r.message, r.warning);
        else
            status = mf_fail(err, MF_ERR_FORMAT, "%s: bad PNG: %s", name, r.message);
    }
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    free(r.rows);
    if (status != MF_OK) mf_image_free(img);
    return status;
}

/* ---- JPEG reader ----------------------------------------------------------- */

/* libjpeg reports through an error manager whose error_exit must not return:
 * it longjmps back here. Warnings (a truncated file, corrupt entropy data,
 * which libjpeg would paper over with grey) are errors too: a training image
 * silently half grey is worse than a refused one. */
typedef struct {
    struct jpeg_error_mgr pub;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int too_large; /* the header's size is over the caps */
    uint8_t *row;  /* one decoded, interleaved row */
} jpeg_reader;

static void jpeg_error_exit(j_common_ptr cinfo)
{
    jpeg_reader *r = (jpeg_reader *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, r->message);
    longjmp(r->jump, 1);
}

static void jpeg_emit_message(j_common_ptr cinfo, int level)
{
    if (level < 0) jpeg_error_exit(cinfo); /* a warning */
}

/* A progressive JPEG may hold any number of scans, each a pass over the
 * whole image: a small file with thousands of them costs minutes. Real
 * encoders write about 10; 100 is refused, as libjpeg-turbo's own fuzzers
 * and tjDecompress's scan limit do. */
#define JPEG_MAX_SCANS 100

static void jpeg_progress(j_common_ptr cinfo)
{
    jpeg_reader *r = (jpeg_reader *)cinfo->err;
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(r->message, sizeof r->message, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(r->jump, 1);
    }
}

/* Everything libjpeg may longjmp out of; what it changes lives in r and img,
 * the caller's storage (see png_decode_guarded). */
static int jpeg_decode_guarded(struct jpeg_decompress_struct *cinfo, jpeg_reader *r,
                               const uint8_t *data, size_t size, mf_image *img)
{
    if (setjmp(r->jump)) return 0;
    jpeg_create_decompress(cinfo);
    r->progress.progress_monitor = jpeg_progress;
    cinfo->progress = &r->progress;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    /* Checked on the header alone, before libjpeg allocates for the image. */
    if (cinfo->image_width > MF_IMAGE_MAX_SIDE || cinfo->image_height > MF_IMAGE_MAX_SIDE ||
        (uint64_t)cinfo->image_width * cinfo->image_height > MF_IMAGE_MAX_PIXELS) {
        r->too_large = 1;
        return 0;
    }
    int channels;
    if (cinfo->jpeg_color_space == JCS_GRAYSCALE) {
        cinfo->out_color_space = JCS_GRAYSCALE;
        channels = 1;
    } else if (cinfo->jpeg_color_space == JCS_YCbCr || cinfo->jpeg_color_space == JCS_RGB) {
        cinfo->out_color_space = JCS_RGB;
        channels = 3;
    } else {
        snprintf(r->message, sizeof r->message, "CMYK or YCCK color is not supported");
        return 0;
    }
    /* The exact integer DCT: the same pixels on every machine. */
    cinfo->dct_method = JDCT_ISLOW;
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != channels) {
        snprintf(r->message, sizeof r->message, "unexpected pixel layout after conversion");
        return 0;
    }
    int width = (int)cinfo->output_width, height = (int)cinfo->output_height;
    r->row = malloc((size_t)width * (size_t)channels);
    img->pixels = malloc((size_t)width * (size_t)height * (size_t)channels);
    if (!r->row || !img->pixels) {
        snprintf(r->message, sizeof r->message, "out of memory for a %dx%d image", width, height);
        return 0;
    }
    img->width = width;
    img->height = height;
    img->channels = channels;
    size_t plane = (size_t)width * (size_t)height;
    while (cinfo->output_scanline < cinfo->output_height) {
        int y = (int)cinfo->output_scanline;
        JSAMPROW rows[1] = {r->row};
        if (jpeg_read_scanlines(cinfo, rows, 1) != 1) {
            snprintf(r->message, sizeof r->message, "file is truncated");
            return 0;
        }
        for (int x = 0; x < width; x++)
            for (int c = 0; c < channels; c++)
                img->pixels[c * plane + (size_t)y * width + x] = r->row[(size_t)x * channels + c];
    }
    jpeg_finish_decompress(cinfo);
    return 1;
}

static mf_status decode_jpeg(const uint8_t *data, size_t size, const char *name, mf_image *img,
                             mf_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_reader r;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&r, 0, sizeof r);
    cinfo.err = jpeg_std_error(&r.pub);
    r.pub.error_exit = jpeg_error_exit;
    r.pub.emit_message = jpeg_emit_message;
    mf_status status = MF_OK;
    if (!jpeg_decode_guarded(&cinfo, &r, data, size, img)) {
        if (r.too_large)
            status = mf_fail(err, MF_ERR_FORMAT, "%s: JPEG size %ux%u is over the limit of %dx%d "
                             "(%d megapixels)", name, (unsigned)cinfo.image_width,
                             (unsigned)cinfo.image_height, MF_IMAGE_MAX_SIDE, MF_IMAGE_MAX_SIDE,
                             (int)(MF_IMAGE_MAX_PIXELS >> 20));
        else
            status = mf_fail(err, MF_ERR_FORMAT, "%s: bad JPEG: %s", name, r.message);
    }
    jpeg_destroy_decompress(&cinfo);
    free(r.row);
    if (status != MF_OK) mf_image_free(img);
    return status;
}

/* ---- PGM / PPM reader -------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
    const char *name;
} pnm_cursor;

static int is_space(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static int is_digit(int ch) { return ch >= '0' && ch <= '9'; }

/* Whitespace and '#' comments, which run to the end of the line. */
static void skip_space(pnm_cursor *c)
{
    while (c->p < c->end) {
        if (is_space(*c->p)) {
            c->p++;
        } else if (*c->p == '#') {
            while (c->p < c->end && *c->p != '\n' && *c->p != '\r') c->p++;
        } else {
            break;
        }
    }
}

/* Reads a decimal number, saturating at limit + 1 so an absurd value is
 * reported rather than overflowing. Returns 0 when there is none: *missing
 * says whether the data ended (truncation) or held something else. */
static int read_number(pnm_cursor *c, uint32_t limit, uint32_t *value, int *missing)
{
    skip_space(c);
    *missing = c->p == c->end;
    if (*missing || !is_digit(*c->p)) return 0;
    uint64_t v = 0;
    while (c->p < c->end && is_digit(*c->p)) {
        v = v * 10 + (uint64_t)(*c->p++ - '0');
        if (v > limit) v = (uint64_t)limit + 1;
    }
    /* "28x" is not the number 28. */
    if (c->p < c->end && !is_space(*c->p) && *c->p != '#') return 0;
    *value = (uint32_t)v;
    return 1;
}

static mf_status header_number(pnm_cursor *c, const char *what, uint32_t limit,
                               uint32_t *value, mf_error *err)
{
    int missing;
    if (read_number(c, limit, value, &missing)) return MF_OK;
    if (missing)
        return mf_fail(err, MF_ERR_FORMAT, "%s: header is truncated before the %s", c->name,
                       what);
    return mf_fail(err, MF_ERR_FORMAT, "%s: bad header: the %s is not a number", c->name, what);
}

static uint8_t scale_sample(uint32_t v, uint32_t maxval)
{
    return (uint8_t)((v * 255u + maxval / 2) / maxval);
}

static mf_status decode_pnm(const uint8_t *data, size_t size, const char *name, mf_image *img,
                            mf_error *err)
{
    int ascii = data[1] == '2' || data[1] == '3';
    int channels = data[1] == '3' || data[1] == '6' ? 3 : 1;
    const char *kind = channels == 3 ? "PPM" : "PGM";
    pnm_cursor c = {data + 2, data + size, name};
    if (c.p < c.end && !is_space(*c.p) && *c.p != '#')
        return mf_fail(err, MF_ERR_FORMAT, "%s: %s", name, not_an_image);

    uint32_t width, height, maxval;
    mf_status status;
    if ((status = header_number(&c, "width", MF_IMAGE_MAX_SIDE, &width, err)) ||
        (status = header_number(&c, "height", MF_IMAGE_MAX_SIDE, &height, err)) ||
        (status = header_number(&c, "maxval", 65535, &maxval, err)))
        return status;
    if (width == 0 || height == 0)
        return mf_fail(err, MF_ERR_FORMAT, "%s: %s has zero size (%" PRIu32 "x%" PRIu32 ")",
                       name, kind, width, height);
    if (width > MF_IMAGE_MAX_SIDE || height > MF_IMAGE_MAX_SIDE ||
        (uint64_t)width * height > MF_IMAGE_MAX_PIXELS)
        return mf_fail(err, MF_ERR_FORMAT, "%s: %s size is over the limit of %dx%d (%d "
                       "megapixels)", name, kind, MF_IMAGE_MAX_SIDE, MF_IMAGE_MAX_SIDE,
                       (int)(MF_IMAGE_MAX_PIXELS >> 20));
    if (maxval == 0 || maxval > 65535)
        return mf_fail(err, MF_ERR_FORMAT, "%s: %s maxval must be 1..65535", name, kind);

    size_t samples = (size_t)width * height * (size_t)channels;
    size_t plane = (size_t)width * height;
    if (ascii) {
        /* Each sample takes a digit and all but the last a separator: a
         * cheap bound that rejects a short file before allocating. */
        if ((size_t)(c.end - c.p) < 2 * samples - 1)
            return mf_fail(err, MF_ERR_FORMAT, "%s: %s pixel data is truncated (%zu bytes left "
                           "for %zu samples)", name, kind, (size_t)(c.end - c.p), samples);
    } else {
        /* Exactly one whitespace byte separates maxval from the pixels
         * (read_number left it unread); the pixels may begin with any byte. */
        if (c.p == c.end)
            return mf_fail(err, MF_ERR_FORMAT, "%s: %s pixel data is missing", name, kind);
        if (!is_space(*c.p))
            return mf_fail(err, MF_ERR_FORMAT, "%s: bad header: maxval must be followed by "
                           "one whitespace byte", name);
        c.p++;
        size_t bytes = samples * (maxval > 255 ? 2 : 1), left = (size_t)(c.end - c.p);
        if (left < bytes)
            return mf_fail(err, MF_ERR_FORMAT, "%s: %s pixel data is truncated (%zu of %zu "
                           "bytes)", name, kind, left, bytes);
    }
    if ((status = alloc_image(img, (int)width, (int)height, channels, name, err))) return status;

    /* The file interleaves channels; the output is planar. */
    for (size_t i = 0; i < samples; i++) {
        uint32_t v;
        if (ascii) {
            int missing;
            if (!read_number(&c, 65535, &v, &missing)) {
                mf_image_free(img);
                if (missing)
                    return mf_fail(err, MF_ERR_FORMAT, "%s: %s pixel data is truncated (%zu of "
                                   "%zu samples)", name, kind, i, samples);
                return mf_fail(err, MF_ERR_FORMAT, "%s: bad %s pixel data: sample %zu is not a "
                               "number", name, kind, i);
            }
        } else if (maxval > 255) {
            v = (uint32_t)c.p[0] << 8 | c.p[1]; /* big-endian */
            c.p += 2;
        } else {
            v = *c.p++;
        }
        if (v > maxval) {
            mf_image_free(img);
            return mf_fail(err, MF_ERR_FORMAT, "%s: bad %s pixel data: sample %zu is %" PRIu32
                           ", over maxval %" PRIu32, name, kind, i, v, maxval);
        }
        size_t pixel = i / (size_t)channels, channel = i % (size_t)channels;
        img->pixels[channel * plane + pixel] = scale_sample(v, maxval);
    }
    return MF_OK;
}

mf_status mf_image_decode(const uint8_t *data, size_t size, const char *name, mf_image *img,
                          mf_error *err)
{
    memset(img, 0, sizeof *img);
    if (!name) name = "image";
    if (!data || size == 0)
        return mf_fail(err, MF_ERR_FORMAT, "%s: empty file, %s", name, not_an_image);
    switch (detect_kind(data, size)) {
    case KIND_PNG:
        return decode_png(data, size, name, img, err);
    case KIND_JPEG:
        return decode_jpeg(data, size, name, img, err);
    case KIND_PNM:
        return decode_pnm(data, size, name, img, err);
    default:
        return mf_fail(err, MF_ERR_FORMAT, "%s: %s", name, not_an_image);
    }
}

/* ---- Resampling ----------------------------------------------------------- */

mf_status mf_image_convert(const mf_image *src, int channels, int width, int height,
                           mf_image *dst, mf_error *err)
{
    memset(dst, 0, sizeof *dst);
    if (!src || !src->pixels || src->width < 1 || src->height < 1 ||
        (src->channels != 1 && src->channels != 3))
        return mf_fail(err, MF_ERR_CONFIG, "image to convert is empty or malformed");
    if ((channels != 1 && channels != 3) || width < 1 || height < 1 ||
        width > MF_IMAGE_MAX_SIDE || height > MF_IMAGE_MAX_SIDE)
        return mf_fail(err, MF_ERR_CONFIG, "cannot convert an image to %dx%d with %d channels",
                       width, height, channels);
    mf_status status = alloc_image(dst, width, height, channels, "converted image", err);
    if (status) return status;

    size_t src_plane = (size_t)src->width * (size_t)src->height;
    size_t dst_plane = (size_t)width * (size_t)height;
    for (int oy = 0; oy < height; oy++) {
        /* Source rows [y0, y1) fall under this output row; at least one, so
         * enlarging repeats pixels (nearest neighbour). */
        int y0 = (int)((long long)oy * src->height / height);
        int y1 = (int)((long long)(oy + 1) * src->height / height);
        if (y1 <= y0) y1 = y0 + 1;
        for (int ox = 0; ox < width; ox++) {
            int x0 = (int)((long long)ox * src->width / width);
            int x1 = (int)((long long)(ox + 1) * src->width / width);
            if (x1 <= x0) x1 = x0 + 1;
            uint64_t sum[3] = {0, 0, 0};
            for (int c = 0; c < src->channels; c++)
                for (int y = y0; y < y1; y++) {
                    const uint8_t *row = src->pixels + c * src_plane + (size_t)y * src->width;
                    for (int x = x0; x < x1; x++) sum[c] += row[x];
                }
            uint64_t area = (uint64_t)(y1 - y0) * (uint64_t)(x1 - x0);
            uint8_t mean[3];
            for (int c = 0; c < src->channels; c++)
                mean[c] = (uint8_t)((sum[c] + area / 2) / area);
            size_t at = (size_t)oy * (size_t)width + (size_t)ox;
            if (channels == 1 && src->channels == 3)
                dst->pixels[at] =
                    (uint8_t)((299u * mean[0] + 587u * mean[1] + 114u * mean[2] + 500u) / 1000u);
            else
                for (int c = 0; c < channels; c++)
                    dst->pixels[c * dst_plane + at] = mean[src->channels == 3 ? c : 0];
        }
    }
    return MF_OK;
}

mf_status mf_image_crop_center(const mf_image *src, mf_image *dst, mf_error *err)
{
    memset(dst, 0, sizeof *dst);
    if (!src || !src->pixels || src->width < 1 || src->height < 1 ||
        (src->channels != 1 && src->channels != 3))
        return mf_fail(err, MF_ERR_CONFIG, "image to crop is empty or malformed");
    int side = src->width < src->height ? src->width : src->height;
    int x0 = (src->width - side) / 2, y0 = (src->height - side) / 2;
    mf_status status = alloc_image(dst, side, side, src->channels, "cropped image", err);
    if (status) return status;
    size_t sp = (size_t)src->width * (size_t)src->height, cp = (size_t)side * (size_t)side;
    for (int c = 0; c < src->channels; c++)
        for (int y = 0; y < side; y++)
            memcpy(dst->pixels + c * cp + (size_t)y * side,
                   src->pixels + c * sp + (size_t)(y + y0) * src->width + x0, (size_t)side);
    return MF_OK;
}
