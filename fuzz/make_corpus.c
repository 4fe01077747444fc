/* Writes the seed corpora of the fuzz targets: a few small valid inputs per
 * target and near-valid ones that fail one check each, framed as targets.h
 * describes. The seeds are committed; rerun this when a format changes:
 *
 *   make && cc -std=c11 -Iinclude fuzz/make_corpus.c build/libminformer.a \
 *       -lpng -lz -lm -fopenmp -o build/make_corpus && build/make_corpus fuzz/corpus
 */
#define _POSIX_C_SOURCE 200809L
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "minformer.h"
#include "minformer/checkpoint.h"

static const char *out_dir;

static void die(const char *what)
{
    fprintf(stderr, "make_corpus: %s\n", what);
    exit(1);
}

static const char *path_of(const char *target, const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    return path;
}

static void write_seed(const char *target, const char *name, const void *data, size_t size)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", out_dir, target);
    mkdir(dir, 0777);
    const char *path = path_of(target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) die(path);
}

/* A growing byte buffer. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->data = realloc(b->data, b->cap);
        if (!b->data) die("out of memory");
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_byte(bytes *b, int v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void put_be32(bytes *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, p, 4);
}

static void put_le16(bytes *b, size_t v)
{
    put_byte(b, (int)(v & 0xff));
    put_byte(b, (int)((v >> 8) & 0xff));
}

static void put_str(bytes *b, const char *s) { put(b, s, strlen(s)); }

static void gzip(const bytes *in, bytes *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) die("zlib");
    out->cap = deflateBound(&z, (uLong)in->len);
    out->data = malloc(out->cap);
    z.next_in = in->data;
    z.avail_in = (uInt)in->len;
    z.next_out = out->data;
    z.avail_out = (uInt)out->cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) die("zlib");
    out->len = z.total_out;
    deflateEnd(&z);
}

/* ---- IDX: flags, labels length, labels file, images file ------------------- */

static void idx_images(bytes *b, uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols,
                       size_t pixels)
{
    put_be32(b, magic), put_be32(b, count), put_be32(b, rows), put_be32(b, cols);
    for (size_t i = 0; i < pixels; i++) put_byte(b, (int)(i * 37 % 256));
}

static void idx_labels(bytes *b, uint32_t magic, uint32_t count, size_t actual, int first)
{
    put_be32(b, magic), put_be32(b, count);
    for (size_t i = 0; i < actual; i++) put_byte(b, i == 0 ? first : (int)(i % 10));
}

static void idx_seed(const char *name, int flags, const bytes *labels, const bytes *images)
{
    bytes b = {0};
    put_byte(&b, flags);
    put_le16(&b, labels->len);
    put(&b, labels->data, labels->len);
    put(&b, images->data, images->len);
    write_seed("idx", name, b.data, b.len);
    free(b.data);
}

static void make_idx(void)
{
    bytes lab = {0}, img = {0}, gz = {0}, one = {0}, mnist = {0};
    idx_labels(&lab, 0x801, 3, 3, 7);
    idx_images(&img, 0x803, 3, 4, 4, 48);
    idx_seed("valid_raw", 0, &lab, &img);
    idx_seed("valid_gzip_both", 3, &lab, &img);
    idx_seed("valid_gzip_images", 1, &lab, &img);
    gzip(&img, &gz);
    idx_seed("valid_images_gzipped_in_input", 0, &lab, &gz);
    idx_labels(&one, 0x801, 1, 1, 5);
    idx_images(&mnist, 0x803, 1, 28, 28, 784);
    idx_seed("valid_one_28x28", 0, &one, &mnist);

    bytes b[8] = {{0}};
    idx_images(&b[0], 0x803, 3, 4, 4, 47);
    idx_seed("truncated_images", 0, &lab, &b[0]);
    idx_images(&b[1], 0x803, 3, 4, 4, 49);
    idx_seed("trailing_byte", 0, &lab, &b[1]);
    idx_labels(&b[2], 0x801, 3, 3, 10);
    idx_seed("label_out_of_range", 0, &b[2], &img);
    idx_labels(&b[3], 0x801, 2, 2, 1);
    idx_seed("count_mismatch", 0, &b[3], &img);
    idx_images(&b[4], 0x803, 3, 4, 5, 60);
    idx_seed("not_square", 0, &lab, &b[4]);
    idx_seed("magic_swapped", 0, &img, &lab);
    idx_images(&b[5], 0x803, 0xffffffffu, 1024, 1024, 8);
    idx_seed("huge_count", 0, &lab, &b[5]);
    gz.len -= 5; /* cut inside the deflate stream and its trailer */
    idx_seed("gzip_cut_short", 0, &lab, &gz);
    free(lab.data), free(img.data), free(gz.data), free(one.data), free(mnist.data);
    for (int i = 0; i < 8; i++) free(b[i].data);
}

/* ---- CIFAR-10: file count byte, lengths, files --------------------------------- */

static void cifar_record(bytes *b, int label, int shade, size_t pixels)
{
    put_byte(b, label);
    for (size_t i = 0; i < pixels; i++) put_byte(b, (int)((i * 7 + (size_t)shade) % 256));
}

static void make_cifar(void)
{
    bytes b = {0};
    put_byte(&b, 0);
    cifar_record(&b, 3, 0, 3072);
    write_seed("cifar", "valid_one_file", b.data, b.len);

    b.len = 0;
    put_byte(&b, 1), put_le16(&b, 3073);
    cifar_record(&b, 0, 1, 3072), cifar_record(&b, 9, 2, 3072);
    write_seed("cifar", "valid_two_files", b.data, b.len);

    b.len = 0;
    put_byte(&b, 2), put_le16(&b, 3073), put_le16(&b, 0);
    cifar_record(&b, 1, 3, 3072);
    write_seed("cifar", "second_file_empty", b.data, b.len);

    b.len = 0;
    put_byte(&b, 0);
    cifar_record(&b, 4, 0, 3071);
    write_seed("cifar", "record_cut_short", b.data, b.len);

    b.len = 0;
    put_byte(&b, 0);
    cifar_record(&b, 10, 0, 3072);
    write_seed("cifar", "label_out_of_range", b.data, b.len);

    b.len = 0;
    put_byte(&b, 1), put_le16(&b, 3072);
    cifar_record(&b, 2, 5, 3072);
    write_seed("cifar", "split_mid_record", b.data, b.len);
    free(b.data);
}

/* ---- pictures -------------------------------------------------------------- */

static void png_to_bytes(png_structp png, png_bytep data, size_t n)
{
    put(png_get_io_ptr(png), data, n);
}

static void png_no_flush(png_structp png) { (void)png; }

/* A width x height PNG of the given type and depth whose samples are a
 * gradient; palettes get 4 entries and a tRNS chunk. */
static void png_seed(const char *name, int width, int height, int color, int depth, int interlace)
{
    bytes b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || setjmp(png_jmpbuf(png))) die("libpng");
    png_set_write_fn(png, &b, png_to_bytes, png_no_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_color palette[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
        png_byte alpha[2] = {0, 128};
        png_set_PLTE(png, info, palette, 4);
        png_set_tRNS(png, info, alpha, 2, NULL);
    }
    png_write_info(png, info);
    int samples = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGB_ALPHA ? 4
                  : color == PNG_COLOR_TYPE_GRAY_ALPHA                           ? 2
                                                                                 : 1;
    size_t rowbytes = ((size_t)width * (size_t)samples * (size_t)depth + 7) / 8;
    png_bytep image = malloc(rowbytes * (size_t)height);
    png_bytepp rows = malloc((size_t)height * sizeof *rows);
    for (size_t i = 0; i < rowbytes * (size_t)height; i++)
        image[i] = color == PNG_COLOR_TYPE_PALETTE && depth == 8 ? (png_byte)(i % 4)
                                                                 : (png_byte)(i * 29);
    for (int y = 0; y < height; y++) rows[y] = image + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    write_seed("image", name, b.data, b.len);
    if (!strcmp(name, "png_rgb_8x8.png")) write_seed("image", "png_cut_short.png", b.data, b.len - 20);
    free(image);
    free(rows);
    free(b.data);
}

static void pnm_binary(const char *name, const char *header, size_t samples, int wide)
{
    bytes b = {0};
    put_str(&b, header);
    for (size_t i = 0; i < samples; i++) {
        if (wide) put_byte(&b, (int)(i % 4));
        put_byte(&b, (int)(i * 41 % 200));
    }
    write_seed("image", name, b.data, b.len);
    free(b.data);
}

static void make_image(void)
{
    png_seed("png_gray_8x8.png", 8, 8, PNG_COLOR_TYPE_GRAY, 8, 0);
    png_seed("png_gray_1bit_9x3.png", 9, 3, PNG_COLOR_TYPE_GRAY, 1, 0);
    png_seed("png_gray_alpha_4x4.png", 4, 4, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0);
    png_seed("png_rgb_8x8.png", 8, 8, PNG_COLOR_TYPE_RGB, 8, 0);
    png_seed("png_rgba_5x3.png", 5, 3, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0);
    png_seed("png_rgb16_3x3.png", 3, 3, PNG_COLOR_TYPE_RGB, 16, 0);
    png_seed("png_palette_tRNS_6x2.png", 6, 2, PNG_COLOR_TYPE_PALETTE, 8, 0);
    png_seed("png_palette_2bit_5x5.png", 5, 5, PNG_COLOR_TYPE_PALETTE, 2, 0);
    png_seed("png_interlaced_rgb_9x9.png", 9, 9, PNG_COLOR_TYPE_RGB, 8, 1);

    pnm_binary("pgm_p5_4x3.pgm", "P5\n4 3\n255\n", 12, 0);
    pnm_binary("pgm_p5_16bit_3x2.pgm", "P5 3 2 1023\n", 6, 1);
    pnm_binary("ppm_p6_3x2.ppm", "P6\n# a comment\n3 2\n255\n", 18, 0);
    pnm_binary("ppm_p6_cut_short.ppm", "P6\n3 2\n255\n", 17, 0);
    pnm_binary("pgm_p5_zero_width.pgm", "P5\n0 3\n255\n", 3, 0);
    static const char p2[] = "P2\n# grey\n3 2\n15\n0 1 2\n3 4 15\n";
    static const char p3[] = "P3\n2 2\n255\n255 0 0  0 255 0\n0 0 255  255 255 255\n";
    static const char p3_bad[] = "P3\n2 1\n100\n1 2 3 4 5 101\n";
    static const char p5_bad_header[] = "P5\n4x3\n255\n";
    write_seed("image", "pgm_p2_ascii_3x2.pgm", p2, sizeof p2 - 1);
    write_seed("image", "ppm_p3_ascii_2x2.ppm", p3, sizeof p3 - 1);
    write_seed("image", "ppm_p3_sample_over_maxval.ppm", p3_bad, sizeof p3_bad - 1);
    write_seed("image", "pgm_p5_bad_header.pgm", p5_bad_header, sizeof p5_bad_header - 1);
}

/* ---- checkpoints --------------------------------------------------------------- */

/* class_names: NULL, or a folder model's cfg->classes names. */
static void checkpoint_seed(const char *name, const mf_config *cfg, int with_optimizer,
                            uint64_t data_fingerprint, char *const *class_names)
{
    mf_model m;
    mf_error err;
    if (mf_model_create(&m, cfg, &err)) die(err.message);
    mf_model_init_weights(&m, 1);
    for (size_t i = 0; i < m.num_params; i++) {
        m.adam_m[i] = 0.01f * (float)(i % 7);
        m.adam_v[i] = 0.001f * (float)(i % 5);
    }
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    for (int c = 0; c < 3; c++) info.mean[c] = 0.5f, info.std[c] = 0.25f;
    info.state.epoch = 2;
    info.state.step = 10;
    info.data_fingerprint = data_fingerprint;
    if (class_names) {
        info.dataset = MF_FOLDER;
        info.class_names = class_names;
        info.folder_image_size = cfg->image_size;
        info.folder_center_crop = 1;
    }
    if (mf_checkpoint_save(path_of("checkpoint", name), &m, &info, with_optimizer, &err))
        die(err.message);
    mf_model_free(&m);
}

/* A safetensors file with a given JSON header and n bytes of data. */
static void safetensors_seed(const char *name, const char *json, size_t data_bytes)
{
    bytes b = {0};
    size_t n = strlen(json);
    for (int i = 0; i < 8; i++) put_byte(&b, (int)((n >> (8 * i)) & 0xff));
    put_str(&b, json);
    for (size_t i = 0; i < data_bytes; i++) put_byte(&b, (int)(i * 13));
    write_seed("checkpoint", name, b.data, b.len);
    free(b.data);
}

/* A seed written by checkpoint_seed, split into header text and data. */
typedef struct {
    char *header;
    uint8_t *data;
    size_t data_len;
} checkpoint_parts;

static checkpoint_parts read_checkpoint_seed(const char *name)
{
    FILE *f = fopen(path_of("checkpoint", name), "rb");
    if (!f) die(name);
    bytes b = {0};
    uint8_t chunk[4096];
    for (size_t got; (got = fread(chunk, 1, sizeof chunk, f)) > 0;) put(&b, chunk, got);
    fclose(f);
    size_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b.data[i];
    checkpoint_parts c;
    c.header = malloc(n + 1);
    c.data_len = b.len - 8 - n;
    c.data = malloc(c.data_len + 1);
    if (!c.header || !c.data) die("out of memory");
    memcpy(c.header, b.data + 8, n);
    c.header[n] = '\0';
    memcpy(c.data, b.data + 8 + n, c.data_len);
    free(b.data);
    return c;
}

/* header (trailing padding dropped, padded again) and data as a seed. */
static void write_checkpoint_parts(const char *name, const char *header, const uint8_t *data,
                                   size_t data_len)
{
    bytes b = {0};
    size_t n = strlen(header);
    while (n > 0 && header[n - 1] == ' ') n--;
    size_t padded = (n + 7) / 8 * 8;
    for (int i = 0; i < 8; i++) put_byte(&b, (int)((padded >> (8 * i)) & 0xff));
    put(&b, header, n);
    for (size_t i = n; i < padded; i++) put_byte(&b, ' ');
    put(&b, data, data_len);
    write_seed("checkpoint", name, b.data, b.len);
    free(b.data);
}

/* Drops the checksum entries ("crc32.NAME") from a minformer header. */
static void strip_checksums(char *header)
{
    for (char *at; (at = strstr(header, ",\"crc32."));) {
        char *end = strchr(strchr(strchr(at + 2, '"') + 1, '"') + 1, '"');
        memmove(at, end + 1, strlen(end + 1) + 1);
    }
}

/* Seeds derived from a valid one: the format before checksums (version 1,
 * so mutations of the data reach the value checks behind the checksums) and
 * near-valid files that each break one checksum rule. */
static void checksum_seeds(const char *from, const char *v1_name, int broken)
{
    checkpoint_parts c = read_checkpoint_seed(from);
    char *v1 = strdup(c.header);
    char *version = strstr(v1, "\"version\":\"2\"");
    if (!v1 || !version) die("no version 2 header");
    strip_checksums(v1);
    version = strstr(v1, "\"version\":\"2\"");
    version[11] = '1';
    write_checkpoint_parts(v1_name, v1, c.data, c.data_len);
    if (broken) {
        char *v2 = strdup(v1);
        strstr(v2, "\"version\":\"1\"")[11] = '2';
        write_checkpoint_parts("checksums_missing_version2.safetensors", v2, c.data, c.data_len);
        free(v2);
        c.data[c.data_len / 2] ^= 0x01;
        write_checkpoint_parts("checksum_mismatch.safetensors", c.header, c.data, c.data_len);
        c.data[c.data_len / 2] ^= 0x01;
        char *key = strstr(c.header, "\"crc32.");
        char *digits = strchr(strchr(key + 1, '"') + 1, '"') + 1;
        digits[0] = 'X';
        write_checkpoint_parts("checksum_not_hex.safetensors", c.header, c.data, c.data_len);
    }
    free(v1);
    free(c.header);
    free(c.data);
}

static void make_checkpoint(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/checkpoint", out_dir);
    mkdir(dir, 0777);
    mf_config c = {.image_size = 4, .channels = 1, .classes = 10, .patch = 2, .dim = 4,
                   .layers = 1, .heads = 1, .mlp_ratio = 1, .qk = MF_QK_SEPARATE,
                   .vo = MF_VO_SEPARATE, .pool = MF_POOL_CLS};
    checkpoint_seed("separate_cls.safetensors", &c, 0, 0, NULL);
    checkpoint_seed("separate_cls_optimizer.safetensors", &c, 1, 0x0123456789abcdefu, NULL);
    mf_config d = c;
    d.channels = 3, d.qk = MF_QK_CHOLESKY, d.vo = MF_VO_NONE, d.pool = MF_POOL_MEAN;
    d.mlp_ratio = 0, d.dim = 2;
    checkpoint_seed("cholesky_none_mean.safetensors", &d, 0, 0, NULL);
    mf_config e = c;
    e.qk = MF_QK_COLLAPSED, e.vo = MF_VO_COLLAPSED, e.layers = 2, e.dim = 2, e.dropout = 0.25f;
    checkpoint_seed("collapsed_two_layers.safetensors", &e, 1, 0, NULL);
    mf_config f = c;
    f.qk = MF_QK_SHARED, f.heads = 2, f.classes = 2, f.mlp_ratio = 0;
    checkpoint_seed("shared_two_heads.safetensors", &f, 0, 0, NULL);
    /* A folder model of 12 classes with its class names. */
    mf_config g = c;
    g.classes = 12, g.mlp_ratio = 0;
    char *names[12] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "z\xc3\xa9"};
    checkpoint_seed("folder_class_names.safetensors", &g, 0, 0, names);
    checksum_seeds("separate_cls_optimizer.safetensors", "version1_separate_cls_optimizer.safetensors", 1);
    checksum_seeds("collapsed_two_layers.safetensors", "version1_collapsed_two_layers.safetensors", 0);
    safetensors_seed("checksum_of_no_tensor.safetensors",
                     "{\"__metadata__\":{\"crc32.a\":\"00000000\",\"crc32.b\":\"00000000\"},"
                     "\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
                     0);
    {
        /* A generic file with checksums: zlib's CRC-32 of safetensors_seed's data. */
        uint8_t data[15];
        for (int i = 0; i < 15; i++) data[i] = (uint8_t)(i * 13);
        char json[600];
        snprintf(json, sizeof json,
                 "{\"__metadata__\":{\"crc32.a\":\"%08lx\",\"crc32.b\":\"%08lx\","
                 "\"crc32.c\":\"%08lx\",\"crc32.d\":\"%08lx\"},"
                 "\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]},"
                 "\"c\":{\"dtype\":\"I8\",\"shape\":[0,3],\"data_offsets\":[12,12]},"
                 "\"d\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[12,15]}}",
                 crc32(0, data, 8), crc32(0, data + 8, 4), crc32(0, data + 12, 0),
                 crc32(0, data + 12, 3));
        safetensors_seed("generic_with_checksums.safetensors", json, 15);
    }

    safetensors_seed("generic_dtypes.safetensors",
                     "{\"__metadata__\":{\"k\":\"v\"},"
                     "\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]},"
                     "\"c\":{\"dtype\":\"I8\",\"shape\":[0,3],\"data_offsets\":[12,12]},"
                     "\"d\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[12,15]}}",
                     15);
    safetensors_seed("metadata_only.safetensors", "{\"__metadata__\":{\"format\":\"minformer\"}}",
                     0);
    safetensors_seed("overlapping.safetensors",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                     8);
    safetensors_seed("escapes.safetensors",
                     "{\"\\u00e9\\n\":{\"dtype\":\"U8\",\"shape\":[1e0],\"data_offsets\":[0,1]}}", 1);
    safetensors_seed("metadata_not_object.safetensors", "{\"__metadata__\":\"x\"}", 0);
    safetensors_seed("dtype_not_string.safetensors",
                     "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    safetensors_seed("nine_dimensions.safetensors",
                     "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                     "\"data_offsets\":[0,1]}}",
                     1);
    safetensors_seed("shape_overflows.safetensors",
                     "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],"
                     "\"data_offsets\":[0,8]}}",
                     8);
    static const uint8_t too_long[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    write_seed("checkpoint", "header_length_too_large", too_long, sizeof too_long);
}

/* ---- the command line: arguments separated by NUL bytes ------------------------ */

static void cli_seed(const char *name, const char *const *args)
{
    bytes b = {0};
    for (int i = 0; args[i]; i++) {
        if (i) put_byte(&b, 0);
        put_str(&b, args[i]);
    }
    write_seed("cli", name, b.data, b.len);
    free(b.data);
}

static void make_cli(void)
{
    cli_seed("mnist", (const char *const[]){"--dataset", "mnist", NULL});
    cli_seed("cifar_minimal_json",
             (const char *const[]){"--dataset", "cifar10", "--preset", "minimal", "--json", NULL});
    cli_seed("fashion_equals_form",
             (const char *const[]){"--dataset=fashion-mnist", "--dim=48", "--heads=3", NULL});
    cli_seed("every_model_option",
             (const char *const[]){"--dataset", "mnist", "--qk", "cholesky", "--vo", "none",
                                   "--pool", "mean", "--mlp", "0", "--patch", "4", "--layers",
                                   "2", "--dim", "16", "--dropout", "0.5", NULL});
    cli_seed("abbreviated", (const char *const[]){"--data", "cifar-10", "--pre", "wqk", NULL});
    cli_seed("help", (const char *const[]){"-h", NULL});
    cli_seed("unknown_option", (const char *const[]){"--dataset", "mnist", "--bogus", NULL});
    cli_seed("bad_numbers", (const char *const[]){"--dataset", "mnist", "--dim", "0x10", "1e3",
                                                  "-5", "18446744073709551616", NULL});
    cli_seed("invalid_config",
             (const char *const[]){"--dataset", "mnist", "--heads", "3", "--dim", "64", NULL});
    cli_seed("missing_value", (const char *const[]){"--dataset", NULL});
    cli_seed("stray_argument", (const char *const[]){"--dataset", "mnist", "--", "extra", NULL});
}

int main(int argc, char **argv)
{
    out_dir = argc > 1 ? argv[1] : "fuzz/corpus";
    mkdir(out_dir, 0777);
    make_idx();
    make_cifar();
    make_image();
    make_checkpoint();
    make_cli();
    static const char *const targets[] = {"idx", "cifar", "image", "checkpoint", "cli"};
    for (int i = 0; i < 5; i++) write_seed(targets[i], "empty", NULL, 0);
    return 0;
}
