/* export_folder: writes a built-in dataset's splits as an image folder, the
 * layout `--dataset folder:PATH` reads (OUT/{train,test}/<class>/<n>.png or
 * .jpg), to check the folder reader against the built-in loaders and to make
 * real folders for measurements.
 *
 *   build/tools/export_folder --dataset mnist --out /tmp/mnist-png
 *   build/tools/export_folder --dataset cifar10 --out /tmp/c64 --format jpeg --quality 95 --size 64
 *
 * <n> is the image's index in the split (zero-padded), so a file names its
 * original. Class folders are the dataset's class names ('/' becomes '_'),
 * prefixed with the label ("3-Dress") when sorting the names would not give
 * back the labels' order (Fashion-MNIST), so the folder's labels equal the
 * original ones. --size S resizes with the library's area filter
 * (mf_image_convert; nearest neighbour when enlarging). Writes with plain
 * fopen: an export is a throwaway copy, not state to protect. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jpeglib.h> /* after stdio.h: it uses FILE */

#include "minformer.h"

static int make_dir(const char *path)
{
    if (mkdir(path, 0777) && errno != EEXIST) {
        fprintf(stderr, "export_folder: %s: %s\n", path, strerror(errno));
        return 0;
    }
    return 1;
}

/* rows: height rows of width * channels interleaved bytes. */
static int write_png(const char *path, const uint8_t *rows, int width, int height, int channels)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int ok = png && info;
    if (ok && setjmp(png_jmpbuf(png))) ok = 0;
    else if (ok) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                     channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int y = 0; y < height; y++)
            png_write_row(png, (png_bytep)(rows + (size_t)y * width * channels));
        png_write_end(png, NULL);
    }
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    return fclose(f) == 0 && ok;
}

static int write_jpeg(const char *path, const uint8_t *rows, int width, int height, int channels,
                      int quality)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr); /* its error_exit ends the tool: fine for a tool */
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)width;
    c.image_height = (JDIMENSION)height;
    c.input_components = channels;
    c.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (quality >= 90 && channels == 3) {
        /* No chroma subsampling at high quality (4:4:4), as "quality 100" suggests. */
        for (int i = 0; i < c.num_components; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    }
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rows + (size_t)c.next_scanline * width * channels);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f) == 0;
}

static void usage(void)
{
    fputs("Usage: export_folder --dataset mnist|cifar10|fashion-mnist --out DIR\n"
          "                     [--data DIR] [--format png|jpeg] [--quality Q] [--size S]\n"
          "                     [--limit-train N] [--limit-test N]\n", stderr);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dataset", required_argument, 0, 'd'}, {"out", required_argument, 0, 'o'},
        {"data", required_argument, 0, 'D'},    {"format", required_argument, 0, 'f'},
        {"quality", required_argument, 0, 'q'}, {"size", required_argument, 0, 's'},
        {"limit-train", required_argument, 0, 'T'}, {"limit-test", required_argument, 0, 't'},
        {0, 0, 0, 0}};
    const char *dataset = NULL, *out = NULL, *data = NULL, *format = "png";
    int quality = 100, size = 0, limit_train = 0, limit_test = 0, opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dataset = optarg; break;
        case 'o': out = optarg; break;
        case 'D': data = optarg; break;
        case 'f': format = optarg; break;
        case 'q': quality = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'T': limit_train = atoi(optarg); break;
        case 't': limit_test = atoi(optarg); break;
        default: usage(); return 2;
        }
    }
    int jpeg = !strcmp(format, "jpeg") || !strcmp(format, "jpg");
    if (!dataset || !out || (!jpeg && strcmp(format, "png")) || quality < 1 || quality > 100 ||
        size < 0 || size > 4096) {
        usage();
        return 2;
    }
    mf_error err;
    mf_dataset_kind kind;
    mf_dataset ds;
    if (mf_dataset_parse(dataset, &kind, &err) || kind == MF_FOLDER ||
        mf_dataset_load(&ds, kind, mf_data_dir(data), &err)) {
        fprintf(stderr, "export_folder: %s\n", kind == MF_FOLDER ? "a built-in dataset only" : err.message);
        return 1;
    }
    mf_dataset_limit(&ds, limit_train, limit_test);

    /* Class folder names; prefixed when sorting would reorder the labels. */
    char names[10][64];
    int sorted = 1;
    for (int k = 0; k < ds.classes; k++) {
        snprintf(names[k], sizeof names[k], "%s", mf_dataset_class_name(kind, k));
        for (char *p = names[k]; *p; p++)
            if (*p == '/') *p = '_';
        if (k && strcmp(names[k - 1], names[k]) >= 0) sorted = 0;
    }
    if (!sorted)
        for (int k = 0; k < ds.classes; k++) {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%d-%.48s", k, names[k]);
            memcpy(names[k], tmp, sizeof tmp);
        }

    int rc = make_dir(out) ? 0 : 1;
    const char *split_names[2] = {"train", "test"};
    const mf_split *splits[2] = {&ds.train, &ds.test};
    char path[4096];
    long written = 0;
    for (int sp = 0; sp < 2 && !rc; sp++) {
        snprintf(path, sizeof path, "%s/%s", out, split_names[sp]);
        if (!make_dir(path)) rc = 1;
        for (int k = 0; k < ds.classes && !rc; k++) {
            snprintf(path, sizeof path, "%s/%s/%s", out, split_names[sp], names[k]);
            if (!make_dir(path)) rc = 1;
        }
        const mf_split *s = splits[sp];
        int C = s->channels, S0 = s->size, S = size ? size : S0;
        uint8_t *rows = malloc((size_t)S * S * C);
        if (!rows) rc = 1;
        for (int i = 0; i < s->count && !rc; i++) {
            mf_image src = {S0, S0, C, s->images + (size_t)i * C * S0 * S0}, dst = {0};
            const mf_image *img = &src;
            if (S != S0) {
                if (mf_image_convert(&src, C, S, S, &dst, &err)) {
                    fprintf(stderr, "export_folder: %s\n", err.message);
                    rc = 1;
                    break;
                }
                img = &dst;
            }
            size_t plane = (size_t)S * S;
            for (size_t p = 0; p < plane; p++)
                for (int c = 0; c < C; c++) rows[p * C + c] = img->pixels[c * plane + p];
            mf_image_free(&dst);
            snprintf(path, sizeof path, "%s/%s/%s/%05d.%s", out, split_names[sp],
                     names[s->labels[i]], i, jpeg ? "jpg" : "png");
            int ok = jpeg ? write_jpeg(path, rows, S, S, C, quality) : write_png(path, rows, S, S, C);
            if (!ok) {
                fprintf(stderr, "export_folder: %s: cannot write: %s\n", path, strerror(errno));
                rc = 1;
            }
            written++;
        }
        free(rows);
    }
    if (!rc) printf("wrote %ld %s images to %s\n", written, jpeg ? "JPEG" : "PNG", out);
    mf_dataset_free(&ds);
    return rc;
}
