/* minformer image files: PNG, JPEG, PGM and PPM read into planar pixels for
 * `predict` and folder datasets, and resampled to the model's input size. Drawing and writing
 * pictures is the application's business (app/figures), not the library's. */
#ifndef MINFORMER_IMAGE_H
#define MINFORMER_IMAGE_H

#include "core.h"

MF_BEGIN_API

/* The largest image side the reader accepts, and the most pixels (64 Mi, an
 * 8192x8192 image: 192 MiB as RGB), both checked on the header before any
 * pixel memory is allocated. */
#define MF_IMAGE_MAX_SIDE 16384
#define MF_IMAGE_MAX_PIXELS ((uint64_t)1 << 26)

/* A decoded picture: channels 1 (grey) or 3 (RGB), 8 bits per sample,
 * pixels PLANAR (c, y, x), the layout the model takes. */
typedef struct {
    int width, height, channels;
    uint8_t *pixels; /* channels x height x width */
} mf_image;

/* Reads a PNG (any bit depth and color type: palettes expand to RGB, 16-bit
 * samples round to 8 bits, alpha is composited over black, interlacing is
 * undone), a baseline or progressive JPEG (grey or YCbCr/RGB, decoded with
 * the exact integer DCT; CMYK is refused, and so is any file libjpeg would
 * warn about, such as a truncated one), a PGM (P5 binary, P2 ASCII) or a PPM (P6, P3) with maxval up to
 * 65535 (scaled to 0..255) and '#' comments. The format is detected from the
 * content, not the name. Grey files give 1 channel, color files 3. Sides are
 * limited to MF_IMAGE_MAX_SIDE, pixels to MF_IMAGE_MAX_PIXELS. Errors: MF_ERR_IO when the file cannot be
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
/* The central square of src (side min(width, height); the left/top one of
 * two middles), so a resize keeps the aspect ratio. dst must not be src. */
mf_status mf_image_crop_center(const mf_image *src, mf_image *dst, mf_error *err);
void mf_image_free(mf_image *img); /* safe on a zeroed or freed image */

MF_END_API

#endif
