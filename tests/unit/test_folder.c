/* Folder datasets (src/data/data_folder.c): the ImageFolder layout and its
 * labels, PNG and JPEG, grey and RGB, resizing, the decode cache (used when
 * valid, rebuilt when stale or corrupt), results independent of the thread
 * count, and hostile folders and images refused with the file named. Each
 * test builds its folder of tiny images in a temporary directory. The MNIST
 * test (skipped without the data) checks that the built-in test images
 * written as PNG files give the same predictions as the IDX ones. */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#include <errno.h>
#include <ftw.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>
#include <jpeglib.h> /* after stdio.h: it uses FILE */

#include "check.h"
#include "minformer.h"

static char root[64];

static void path_of(char *out, const char *rel) { snprintf(out, 4096, "%s/%s", root, rel); }

/* mkdir -p for root/rel. */
static void make_dirs(const char *rel)
{
    char p[4096];
    path_of(p, rel);
    for (char *s = p + strlen(root) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0777);
            *s = '/';
        }
    mkdir(p, 0777);
}

static void write_bytes(const char *rel, const void *data, size_t n)
{
    char p[4096];
    path_of(p, rel);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n) fprintf(stderr, "cannot write %s\n", p);
    if (f) fclose(f);
}

/* Interleaved pixels through libpng's simplified writer. */
static void write_png(const char *rel, int w, int h, int channels, const uint8_t *pix)
{
    char p[4096];
    path_of(p, rel);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    if (!png_image_write_to_file(&img, p, 0, pix, 0, NULL)) fprintf(stderr, "png %s\n", p);
}

/* A JPEG in memory (malloc'd by libjpeg's memory destination). */
static unsigned char *jpeg_bytes(int w, int h, int channels, const uint8_t *pix, int quality,
                                 unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = channels;
    c.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < h; y++) {
        JSAMPROW row = (JSAMPROW)(pix + (size_t)y * w * channels);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

/* An RGB progressive JPEG: scans 0 (libjpeg's simple progression, about 10
 * scans), or one scan for DC and one per AC coefficient and component (190). */
static void write_progressive_jpeg(const char *rel, int many_scans)
{
    uint8_t pix[16 * 16 * 3];
    for (int i = 0; i < (int)sizeof pix; i++) pix[i] = (uint8_t)(i * 11);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    unsigned long len = 0;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &len);
    c.image_width = c.image_height = 16;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    static jpeg_scan_info scans[1 + 3 * 63];
    if (many_scans) {
        scans[0] = (jpeg_scan_info){3, {0, 1, 2, 0}, 0, 0, 0, 0};
        for (int comp = 0, n = 1; comp < 3; comp++)
            for (int k = 1; k < 64; k++) scans[n++] = (jpeg_scan_info){1, {comp, 0, 0, 0}, k, k, 0, 0};
        c.scan_info = scans;
        c.num_scans = 1 + 3 * 63;
    } else {
        jpeg_simple_progression(&c);
    }
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < 16; y++) {
        JSAMPROW row = pix + y * 16 * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    write_bytes(rel, out, len);
    free(out);
}

static void write_jpeg(const char *rel, int w, int h, int channels, const uint8_t *pix)
{
    unsigned long len = 0;
    unsigned char *b = jpeg_bytes(w, h, channels, pix, 100, &len);
    write_bytes(rel, b, len);
    free(b);
}

/* An 8x8 grey image whose every pixel is v: the value tells the file apart. */
static void write_flat_png(const char *rel, int v)
{
    uint8_t pix[64];
    memset(pix, v, sizeof pix);
    write_png(rel, 8, 8, 1, pix);
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void fresh_root(void)
{
    if (root[0]) nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    snprintf(root, sizeof root, "/tmp/mf-test-folder-XXXXXX");
    if (!mkdtemp(root)) fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
}

/* classes "cat" and "ant" (sorted: ant = 0, cat = 1); in train 3 images each,
 * in test 2; a pixel value of 10 * label + n + (test ? 100 : 0). */
static void make_basic_folder(void)
{
    fresh_root();
    const char *cls[2] = {"ant", "cat"};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++) {
            char rel[256];
            snprintf(rel, sizeof rel, "%s/%s", s ? "test" : "train", cls[k]);
            make_dirs(rel);
            for (int n = 0; n < (s ? 2 : 3); n++) {
                snprintf(rel, sizeof rel, "%s/%s/img%d.png", s ? "test" : "train", cls[k], n);
                write_flat_png(rel, 10 * k + n + (s ? 100 : 0));
            }
        }
}

/* err is cleared first, so err->status tells whether this load failed. */
static mf_status load(mf_dataset *ds, const mf_folder_opts *o, mf_folder_report *rep,
                      mf_error *err)
{
    mf_error_clear(err);
    return mf_dataset_load_folder(ds, root, o, rep, err);
}

static void test_folder_layout_labels_and_cache(void)
{
    make_basic_folder();
    mf_dataset ds;
    mf_folder_report rep;
    mf_error err;
    CHECK(load(&ds, NULL, &rep, &err) == MF_OK, "%s", err.message);
    if (ds.train.count != 6) return;
    CHECK(ds.kind == MF_FOLDER && !strcmp(ds.name, "folder"), "kind %d", ds.kind);
    CHECK(ds.classes == 2 && !strcmp(mf_dataset_label_name(&ds, 0), "ant") &&
              !strcmp(mf_dataset_label_name(&ds, 1), "cat"), "class names");
    CHECK(ds.channels == 1 && ds.size == 8 && ds.test.count == 4, "%d x %d, %d test", ds.channels,
          ds.size, ds.test.count);
    CHECK(ds.train.classes == 2 && ds.test.classes == 2, "split classes");
    /* Every image's pixel says which file it came from: its label must match. */
    for (int s = 0; s < 2; s++) {
        const mf_split *sp = s ? &ds.test : &ds.train;
        int seen[2] = {0, 0};
        for (int i = 0; i < sp->count; i++) {
            int v = sp->images[(size_t)i * 64] - (s ? 100 : 0);
            CHECK(v / 10 == sp->labels[i], "split %d image %d: pixel %d, label %d", s, i, v,
                  sp->labels[i]);
            seen[sp->labels[i]]++;
        }
        CHECK(seen[0] == (s ? 2 : 3) && seen[1] == (s ? 2 : 3), "split %d counts %d %d", s, seen[0],
              seen[1]);
    }
    CHECK(rep.decoded == 10 && !rep.cache_used && rep.cache_written && rep.files == 10,
          "decoded %d used %d written %d", rep.decoded, rep.cache_used, rep.cache_written);
    /* The training pixels are 0,1,2,10,11,12 / 255: their mean. */
    CHECK(check_close(ds.mean[0], 36.0f / 6 / 255, 1e-6f, 0), "mean %g", ds.mean[0]);

    mf_dataset again;
    mf_folder_report rep2;
    CHECK(load(&again, NULL, &rep2, &err) == MF_OK, "%s", err.message);
    CHECK(rep2.cache_used && rep2.decoded == 0 && !rep2.note[0], "second load: used %d decoded %d "
          "note '%s'", rep2.cache_used, rep2.decoded, rep2.note);
    CHECK(again.fingerprint == ds.fingerprint && again.train.count == 6 &&
              !memcmp(again.train.images, ds.train.images, 6 * 64) &&
              !memcmp(again.test.labels, ds.test.labels, 4 * sizeof *ds.test.labels) &&
              !strcmp(mf_dataset_label_name(&again, 1), "cat"),
          "the cache gives back the same dataset");
    mf_dataset_free(&again);

    /* The data fingerprint covers the contents: one changed image changes it
     * (and the cache, keyed by size and time, is rebuilt, saying why). */
    uint8_t pix[64];
    memset(pix, 200, sizeof pix);
    pix[5] = 3;
    write_png("train/cat/img1.png", 8, 8, 1, pix);
    char p[4096];
    path_of(p, "train/cat/img1.png");
    struct timeval tv[2] = {{1000000, 0}, {1000000, 0}};
    utimes(p, tv);
    CHECK(load(&again, NULL, &rep2, &err) == MF_OK, "%s", err.message);
    CHECK(!rep2.cache_used && rep2.decoded == 10 && strstr(rep2.note, "stale"),
          "after a change: used %d note '%s'", rep2.cache_used, rep2.note);
    CHECK(again.fingerprint != ds.fingerprint, "the fingerprint follows the pixels");
    mf_dataset_free(&again);
    mf_dataset_free(&ds);
}

/* A cache whose bytes were damaged is rebuilt, never used. */
static void test_folder_corrupt_cache_rebuilt(void)
{
    make_basic_folder();
    mf_dataset ds;
    mf_folder_report rep;
    mf_error err;
    CHECK(load(&ds, NULL, &rep, &err) == MF_OK, "%s", err.message);
    uint64_t fp = ds.fingerprint;
    mf_dataset_free(&ds);
    FILE *f = fopen(rep.cache_path, "r+b");
    CHECK(f != NULL, "%s", rep.cache_path);
    if (!f) return;
    fseek(f, -20, SEEK_END); /* inside the test images */
    fputc(0x55, f);
    fclose(f);
    CHECK(load(&ds, NULL, &rep, &err) == MF_OK, "%s", err.message);
    CHECK(!rep.cache_used && strstr(rep.note, "corrupt") && ds.fingerprint == fp,
          "used %d note '%s'", rep.cache_used, rep.note);
    mf_dataset_free(&ds);
    /* Cut short: refused on its size. */
    CHECK(truncate(rep.cache_path, 100) == 0, "truncate");
    CHECK(load(&ds, NULL, &rep, &err) == MF_OK, "%s", err.message);
    CHECK(!rep.cache_used && strstr(rep.note, "size"), "note '%s'", rep.note);
    mf_dataset_free(&ds);
    /* Garbage in its place. */
    write_bytes(".minformer-cache-native.bin", "not a cache", 11);
    CHECK(load(&ds, NULL, &rep, &err) == MF_OK, "%s", err.message);
    CHECK(!rep.cache_used && rep.note[0] && ds.fingerprint == fp, "note '%s'", rep.note);
    mf_dataset_free(&ds);
    /* use_cache 0 neither reads nor writes it. */
    mf_folder_opts o;
    mf_folder_opts_default(&o);
    o.use_cache = 0;
    CHECK(load(&ds, &o, &rep, &err) == MF_OK && !rep.cache_used && !rep.cache_written,
          "no cache");
    mf_dataset_free(&ds);
}

/* Grey and RGB, PNG and JPEG, sizes: the dataset is RGB when any image is,
 * grey images replicated; different sizes need image_size. */
static void test_folder_mixed_formats_and_resize(void)
{
    fresh_root();
    make_dirs("train/a");
    make_dirs("train/b");
    make_dirs("test/a");
    make_dirs("test/b");
    uint8_t grey[16 * 16], rgb[16 * 16 * 3];
    for (int i = 0; i < 256; i++) grey[i] = (uint8_t)(i < 128 ? 40 : 200);
    for (int i = 0; i < 256; i++) rgb[3 * i] = 250, rgb[3 * i + 1] = 0, rgb[3 * i + 2] = 0;
    write_png("train/a/g.png", 16, 16, 1, grey);
    write_jpeg("train/b/r.jpg", 16, 16, 3, rgb);
    write_png("test/a/g.png", 16, 16, 1, grey);
    write_png("test/b/small.png", 8, 8, 1, grey);
    mf_dataset ds;
    mf_folder_report rep;
    mf_error err;
    CHECK(load(&ds, NULL, &rep, &err) == MF_ERR_FORMAT && strstr(err.message, "small.png") &&
              strstr(err.message, "--image-size"),
          "different sizes: %s", err.message);
    mf_folder_opts o;
    mf_folder_opts_default(&o);
    o.image_size = 8;
    CHECK(load(&ds, &o, &rep, &err) == MF_OK, "%s", err.message);
    if (!err.status) {
        CHECK(ds.channels == 3 && ds.size == 8, "%d x %d", ds.channels, ds.size);
        /* The grey image, halved: rows 0-3 are 40, rows 4-7 are 200, in all three planes. */
        int gi = ds.train.labels[0] == 0 ? 0 : 1;
        const uint8_t *g = ds.train.images + (size_t)gi * 3 * 64;
        CHECK(g[0] == 40 && g[63] == 200 && g[64] == 40 && g[128 + 63] == 200, "grey replicated: "
              "%d %d %d %d", g[0], g[63], g[64], g[128 + 63]);
        const uint8_t *r = ds.train.images + (size_t)(1 - gi) * 3 * 64;
        CHECK(abs(r[0] - 250) <= 3 && r[64] <= 3 && r[128] <= 3, "JPEG red %d %d %d", r[0], r[64],
              r[128]);
        mf_dataset_free(&ds);
    }
    /* Center crop of a 16x8 image keeps its middle 8x8. */
    uint8_t wide[8 * 16];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++) wide[y * 16 + x] = (uint8_t)(x < 4 || x >= 12 ? 0 : 90);
    write_png("test/b/small.png", 16, 8, 1, wide);
    o.center_crop = 1;
    CHECK(load(&ds, &o, &rep, &err) == MF_OK, "%s", err.message);
    if (!err.status) {
        int wi = ds.test.labels[0] == 1 ? 0 : 1;
        const uint8_t *w = ds.test.images + (size_t)wi * 3 * 64;
        CHECK(w[0] == 90 && w[7] == 90 && w[63] == 90, "cropped %d %d %d", w[0], w[7], w[63]);
        mf_dataset_free(&ds);
    }
    /* Without image_size a non-square image is refused. */
    CHECK(load(&ds, NULL, &rep, &err) == MF_ERR_FORMAT && strstr(err.message, "16x8") &&
              strstr(err.message, "--image-size"), "non-square: %s", err.message);
    fresh_root();
    make_dirs("train/a");
    make_dirs("train/b");
    make_dirs("test/a");
    make_dirs("test/b");
    write_png("train/a/w.png", 16, 8, 1, wide);
    write_png("train/b/w.png", 16, 8, 1, wide);
    write_png("test/a/w.png", 16, 8, 1, wide);
    write_png("test/b/w.png", 16, 8, 1, wide);
    CHECK(load(&ds, NULL, &rep, &err) == MF_ERR_FORMAT && strstr(err.message, "not square") &&
              strstr(err.message, "--center-crop"), "non-square: %s", err.message);
}

/* Bytes decoded with 1 and with several threads are the same. */
static void test_folder_thread_count_independent(void)
{
    fresh_root();
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 2; s++) {
            char rel[256];
            snprintf(rel, sizeof rel, "%s/c%d", s ? "test" : "train", k);
            make_dirs(rel);
            for (int n = 0; n < 20; n++) {
                uint8_t pix[12 * 12 * 3];
                for (int i = 0; i < (int)sizeof pix; i++) pix[i] = (uint8_t)(i * 7 + n * 13 + k);
                snprintf(rel, sizeof rel, "%s/c%d/%02d.%s", s ? "test" : "train", k, n,
                         n % 2 ? "jpg" : "png");
                if (n % 2) write_jpeg(rel, 12, 12, 3, pix);
                else write_png(rel, 12, 12, 3, pix);
            }
        }
    mf_folder_opts o;
    mf_folder_opts_default(&o);
    o.use_cache = 0;
    o.image_size = 5;
    mf_dataset a, b;
    mf_error err;
    mf_set_threads(1);
    CHECK(load(&a, &o, NULL, &err) == MF_OK, "%s", err.message);
    mf_set_threads(4);
    CHECK(load(&b, &o, NULL, &err) == MF_OK, "%s", err.message);
    mf_set_threads(0);
    CHECK(a.fingerprint == b.fingerprint && a.train.count == 60 && b.train.count == 60 &&
              !memcmp(a.train.images, b.train.images, (size_t)60 * 3 * 25),
          "1 vs 4 threads");
    mf_dataset_free(&a);
    mf_dataset_free(&b);
}

/* A PNG header claiming side x side, with a valid CRC and nothing after it. */
static void write_huge_png(const char *rel, uint32_t side)
{
    uint8_t b[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    for (int i = 0; i < 4; i++) b[16 + i] = b[20 + i] = (uint8_t)(side >> (24 - 8 * i));
    b[24] = 8; /* depth */
    b[25] = 2; /* RGB */
    uint32_t crc = (uint32_t)crc32(0, b + 12, 17);
    for (int i = 0; i < 4; i++) b[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
    write_bytes(rel, b, sizeof b);
}

/* A JPEG of 8x8 with its frame header's size patched to 60000x60000 (a
 * JPEG's sides are 16-bit, and libjpeg itself refuses more than 65500). */
static void write_huge_jpeg(const char *rel)
{
    uint8_t pix[64] = {0};
    unsigned long len = 0;
    unsigned char *b = jpeg_bytes(8, 8, 1, pix, 90, &len);
    for (unsigned long i = 0; i + 8 < len; i++)
        if (b[i] == 0xFF && (b[i + 1] == 0xC0 || b[i + 1] == 0xC2)) {
            b[i + 5] = b[i + 7] = 0xEA;
            b[i + 6] = b[i + 8] = 0x60;
            break;
        }
    write_bytes(rel, b, len);
    free(b);
}

/* Expects the load to fail with a message holding each of the needles. */
#define REFUSED(o, needle1, needle2)                                                         \
    do {                                                                                     \
        mf_dataset ds_;                                                                      \
        mf_error e_;                                                                         \
        mf_status st_ = load(&ds_, o, NULL, &e_);                                            \
        CHECK(st_ != MF_OK && strstr(e_.message, needle1) && strstr(e_.message, needle2),   \
              "status %d: '%s' lacks '%s' / '%s'", st_, st_ ? e_.message : "", needle1,      \
              needle2);                                                                      \
        if (!st_) mf_dataset_free(&ds_);                                                     \
    } while (0)

static void test_folder_hostile_refused(void)
{
    mf_folder_opts skip;
    mf_folder_opts_default(&skip);
    skip.skip_bad = 1;

    fresh_root();
    REFUSED(NULL, "train", "missing");
    make_dirs("train/a");
    make_dirs("train/b");
    write_flat_png("train/a/1.png", 1);
    write_flat_png("train/b/1.png", 2);
    REFUSED(NULL, "test", "missing");
    make_dirs("test/a");
    write_flat_png("test/a/1.png", 1);
    REFUSED(NULL, "no class folder 'b'", "same classes");
    make_dirs("test/b");
    make_dirs("test/c");
    write_flat_png("test/b/1.png", 2);
    write_flat_png("test/c/1.png", 3);
    REFUSED(NULL, "test/c", "same classes");
    rmdir(root); /* fails (not empty): harmless */
    char p[4096];
    path_of(p, "test/c/1.png");
    remove(p);
    path_of(p, "test/c");
    rmdir(p);
    /* An empty class folder. */
    make_dirs("train/a/../../train/zz");
    make_dirs("test/zz");
    write_flat_png("test/zz/1.png", 4);
    REFUSED(NULL, "train/zz", "empty class folder");
    REFUSED(&skip, "train/zz", "empty class folder");
    write_flat_png("train/zz/1.png", 4);
    mf_dataset ds;
    mf_folder_report rep;
    mf_error err;
    CHECK(load(&ds, NULL, &rep, &err) == MF_OK, "the repaired folder: %s", err.message);
    if (!err.status) mf_dataset_free(&ds);

    /* A non-image file; with skip_bad it is left out and counted. */
    write_bytes("train/a/notes.txt", "just some words\n", 16);
    REFUSED(NULL, "train/a/notes.txt", "not a PNG, JPEG");
    CHECK(load(&ds, &skip, &rep, &err) == MF_OK && rep.skipped == 1 && ds.train.count == 3,
          "skip_bad: %s, skipped %d", err.status ? err.message : "ok", rep.skipped);
    if (!err.status) mf_dataset_free(&ds);
    path_of(p, "train/a/notes.txt");
    remove(p);

    /* A truncated JPEG (half its bytes). */
    uint8_t pix[32 * 32];
    for (int i = 0; i < 32 * 32; i++) pix[i] = (uint8_t)(i * 31);
    unsigned long len = 0;
    unsigned char *jb = jpeg_bytes(32, 32, 1, pix, 90, &len);
    write_bytes("train/b/cut.jpg", jb, len / 2);
    free(jb);
    REFUSED(NULL, "train/b/cut.jpg", "bad JPEG");
    path_of(p, "train/b/cut.jpg");
    remove(p);

    /* Headers claiming 100000x100000 (PNG) and 60000x60000 (JPEG): refused
     * on the header, before any pixel memory. */
    write_huge_png("test/a/huge.png", 100000);
    REFUSED(NULL, "test/a/huge.png", "over the limit");
    path_of(p, "test/a/huge.png");
    remove(p);
    write_huge_jpeg("test/b/huge.jpg");
    REFUSED(NULL, "test/b/huge.jpg", "over the limit");
    CHECK(load(&ds, &skip, &rep, &err) == MF_OK && rep.skipped == 1, "skip_bad: %s",
          err.status ? err.message : "ok");
    if (!err.status) mf_dataset_free(&ds);
    path_of(p, "test/b/huge.jpg");
    remove(p);
    /* A progressive JPEG decodes; one of 190 scans (a cheap file that costs
     * a pass over the image per scan) is refused. */
    mf_folder_opts resize;
    mf_folder_opts_default(&resize);
    resize.image_size = 8;
    write_progressive_jpeg("test/b/prog.jpg", 0);
    CHECK(load(&ds, &resize, &rep, &err) == MF_OK && ds.channels == 3, "progressive: %s",
          err.message);
    if (!err.status) mf_dataset_free(&ds);
    write_progressive_jpeg("test/b/prog.jpg", 1);
    REFUSED(&resize, "test/b/prog.jpg", "progressive scans");
    path_of(p, "test/b/prog.jpg");
    remove(p);
    /* An empty file, and one class only. */
    write_bytes("test/b/empty.png", "", 0);
    REFUSED(NULL, "test/b/empty.png", "empty file");
    fresh_root();
    make_dirs("train/only");
    make_dirs("test/only");
    write_flat_png("train/only/1.png", 1);
    write_flat_png("test/only/1.png", 1);
    REFUSED(NULL, "1 class folders", "2 to");
    /* A path that is a file, and no path. */
    write_bytes("file", "x", 1);
    char file[4096];
    path_of(file, "file");
    CHECK(mf_dataset_load_folder(&ds, file, NULL, NULL, &err) == MF_ERR_IO &&
              strstr(err.message, "not a directory"), "%s", err.message);
    CHECK(mf_dataset_load_folder(&ds, "", NULL, NULL, &err) == MF_ERR_CONFIG, "%s", err.message);
}

static void test_folder_dataset_names(void)
{
    mf_dataset_kind k = MF_MNIST;
    mf_error err;
    CHECK(mf_dataset_parse("folder:/x/y", &k, &err) == MF_OK && k == MF_FOLDER, "folder:PATH");
    CHECK(mf_dataset_parse("folder", &k, &err) == MF_OK && k == MF_FOLDER, "folder");
    CHECK(mf_dataset_parse("folder:", &k, &err) == MF_ERR_CONFIG && strstr(err.message, "path"),
          "%s", err.message);
    CHECK(!strcmp(mf_dataset_folder_path("folder:/x/y"), "/x/y") &&
              !mf_dataset_folder_path("folder") && !mf_dataset_folder_path("mnist"),
          "folder path");
    CHECK(!strcmp(mf_dataset_name(MF_FOLDER), "folder") && mf_dataset_image_size(MF_FOLDER) == 0,
          "name");
    make_basic_folder();
    char **names;
    int n;
    mf_error_clear(&err);
    CHECK(mf_folder_class_names(root, &names, &n, &err) == MF_OK && n == 2 &&
              !strcmp(names[0], "ant") && !strcmp(names[1], "cat"), "class names");
    if (!err.status) mf_folder_class_names_free(names, n);
    /* mf_dataset_load with MF_FOLDER takes the folder as its directory. */
    mf_dataset ds;
    mf_error_clear(&err);
    CHECK(mf_dataset_load(&ds, MF_FOLDER, root, &err) == MF_OK && ds.classes == 2, "%s",
          err.message);
    if (!err.status) mf_dataset_free(&ds);
}

/* Writes split s of ds (1 channel) as PNG files under root/<split>/<label>/. */
static void export_split(const mf_split *s, const char *split, int n)
{
    for (int k = 0; k < 10; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%s/%d", split, k);
        make_dirs(rel);
    }
    for (int i = 0; i < n && i < s->count; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%s/%d/%05d.png", split, s->labels[i], i);
        write_png(rel, s->size, s->size, 1, s->images + (size_t)i * s->size * s->size);
    }
}

/* MNIST's first 300 test images as PNG files: a model gives the same
 * confusion matrix on them as on the IDX images (the pixels are the same;
 * the order is the folder's own). */
static void test_folder_mnist_png_same_predictions(void)
{
    mf_dataset mn;
    mf_error err;
    if (mf_dataset_load(&mn, MF_MNIST, mf_data_dir(NULL), &err)) SKIP("no MNIST: %s", err.message);
    fresh_root();
    export_split(&mn.train, "train", 200);
    export_split(&mn.test, "test", 300);
    mf_dataset fd;
    CHECK(load(&fd, NULL, NULL, &err) == MF_OK, "%s", err.message);
    if (err.status) {
        mf_dataset_free(&mn);
        return;
    }
    mf_dataset_limit(&mn, 200, 300);
    mf_config cfg;
    mf_config_default(&cfg, 28, 1, 10);
    cfg.dim = 16;
    cfg.layers = 1;
    mf_model m;
    CHECK(mf_model_create(&m, &cfg, &err) == MF_OK, "%s", err.message);
    mf_model_init_weights(&m, 7);
    int ca[100], cb[100];
    mf_eval_result ra, rb;
    CHECK(mf_evaluate_confusion(&m, &mn.test, mn.mean, mn.std, 100, &ra, ca, &err) == MF_OK, "%s",
          err.message);
    CHECK(mf_evaluate_confusion(&m, &fd.test, mn.mean, mn.std, 100, &rb, cb, &err) == MF_OK, "%s",
          err.message);
    CHECK(ra.count == 300 && rb.count == 300 && ra.acc == rb.acc && !memcmp(ca, cb, sizeof ca),
          "acc %g vs %g", ra.acc, rb.acc);
    CHECK(fabsf(ra.loss - rb.loss) < 1e-5f, "loss %g vs %g", ra.loss, rb.loss);
    mf_model_free(&m);
    mf_dataset_free(&fd);
    mf_dataset_free(&mn);
}

int main(void)
{
    RUN(test_folder_dataset_names);
    RUN(test_folder_layout_labels_and_cache);
    RUN(test_folder_corrupt_cache_rebuilt);
    RUN(test_folder_mixed_formats_and_resize);
    RUN(test_folder_thread_count_independent);
    RUN(test_folder_hostile_refused);
    RUN(test_folder_mnist_png_same_predictions);
    if (root[0]) nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_report();
}
