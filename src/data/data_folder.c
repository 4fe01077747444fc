/* Image folders as datasets (torchvision's ImageFolder layout): scanning
 * PATH/{train,test}/<class>/, decoding the images in parallel, resizing them
 * to one square size, and the decode cache that lets a second run skip the
 * decoding.
 *
 * The cache, PATH/.minformer-cache-<settings>.bin, little-endian:
 *   "MFFOLDC2"                magic (8 bytes; "MFFOLDC1" had byte labels)
 *   u64 key                   hash of the cache version, the decoder
 *                             versions, the settings, and every class name
 *                             and file (name, size, modification time)
 *   u32 classes, channels, size, train count, test count, skipped
 *   classes x (u32 length, name bytes)
 *   u64 header checksum       mf_hash_bytes of everything above
 *   train labels, test labels u16 each
 *   train images, test images
 *   u64 data checksum         chained mf_hash_bytes over the data in
 *                             CACHE_CHUNK pieces
 * It is used only when its key equals the one computed from the files now,
 * its class names and counts agree with the scan, its size is exact and both
 * checksums match; otherwise it is rebuilt. */
#define _POSIX_C_SOURCE 200809L
#include "minformer/data.h"
#include "minformer/image.h"
#include "data/dataset_internal.h"
#include "minformer/model.h"

#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <jpeglib.h> /* after stdio.h: it uses FILE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Bump when decoding or resizing changes the pixels of the same files, or
 * the layout changes (2: labels of two bytes). */
#define CACHE_VERSION 2
#define CACHE_CHUNK ((size_t)1 << 20)
#define PATH_CAP 4096
/* The fixed seed of the examples' order within a split. */
#define ORDER_SEED 0x666f6c646572ULL /* "folder" */

_Static_assert(MF_FOLDER_MAX_CLASSES <= MF_MAX_CLASSES && MF_MAX_CLASSES <= 65536,
               "a folder's labels must fit a model and uint16_t");

static const char cache_magic[8] = {'M', 'F', 'F', 'O', 'L', 'D', 'C', '2'};

void mf_folder_opts_default(mf_folder_opts *o)
{
    memset(o, 0, sizeof *o);
    o->use_cache = 1;
}

/* ---- Scanning --------------------------------------------------------------- */

typedef struct {
    char *path;       /* PATH/split/class/name */
    uint64_t size;    /* bytes */
    int64_t mtime_s;  /* modification time */
    long mtime_ns;
    int label;
} folder_file;

typedef struct {
    char **names;
    int count, cap;
} name_list;

static void names_free(name_list *l)
{
    for (int i = 0; i < l->count; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

void mf_folder_class_names_free(char **names, int count)
{
    name_list l = {names, count, count};
    names_free(&l);
}

static int names_push(name_list *l, const char *name)
{
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **n = realloc(l->names, (size_t)cap * sizeof *n);
        if (!n) return 0;
        l->names = n;
        l->cap = cap;
    }
    size_t len = strlen(name);
    char *copy = malloc(len + 1);
    if (!copy) return 0;
    memcpy(copy, name, len + 1);
    l->names[l->count++] = copy;
    return 1;
}

static mf_status join_path(char *out, const char *a, const char *b, mf_error *err)
{
    int n = snprintf(out, PATH_CAP, "%s/%s", a, b);
    if (n < 0 || n >= PATH_CAP) return mf_fail(err, MF_ERR_IO, "%s/%s: path too long", a, b);
    return MF_OK;
}

/* A name and its stat, sorted together. */
typedef struct {
    char *name;
    struct stat sb;
} dir_entry;

static int cmp_entries(const void *a, const void *b)
{
    return strcmp(((const dir_entry *)a)->name, ((const dir_entry *)b)->name);
}

/* The entries of dir that are directories (want_dirs) or regular files,
 * following symbolic links, names starting with '.' left out, sorted.
 * stats receives each entry's stat when non-NULL. */
static mf_status list_dir(const char *dir, int want_dirs, name_list *out, struct stat **stats,
                          mf_error *err)
{
    memset(out, 0, sizeof *out);
    if (stats) *stats = NULL;
    DIR *d = opendir(dir);
    if (!d) return mf_fail(err, MF_ERR_IO, "%s: %s", dir, strerror(errno));
    mf_status st = MF_OK;
    char path[PATH_CAP];
    struct dirent *e;
    dir_entry *entries = NULL;
    size_t cap = 0;
    errno = 0;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if ((st = join_path(path, dir, e->d_name, err))) break;
        struct stat sb;
        if (stat(path, &sb)) {
            st = mf_fail(err, MF_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (want_dirs ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)) continue;
        if (out->count >= MF_FOLDER_MAX_IMAGES) {
            st = mf_fail(err, MF_ERR_FORMAT, "%s: more than %d entries", dir, MF_FOLDER_MAX_IMAGES);
            break;
        }
        if ((size_t)out->count == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            dir_entry *n = realloc(entries, ncap * sizeof *n);
            if (!n) {
                st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", dir);
                break;
            }
            entries = n;
            cap = ncap;
        }
        if (!names_push(out, e->d_name)) st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", dir);
        else entries[out->count - 1] = (dir_entry){out->names[out->count - 1], sb};
        errno = 0;
    }
    if (!st && errno) st = mf_fail(err, MF_ERR_IO, "%s: %s", dir, strerror(errno));
    closedir(d);
    if (!st && out->count > 1) qsort(entries, (size_t)out->count, sizeof *entries, cmp_entries);
    for (int i = 0; !st && i < out->count; i++) out->names[i] = entries[i].name;
    if (!st && stats && out->count > 0) {
        *stats = malloc((size_t)out->count * sizeof **stats);
        if (!*stats) st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", dir);
        for (int i = 0; !st && i < out->count; i++) (*stats)[i] = entries[i].sb;
    }
    free(entries);
    if (st) {
        names_free(out);
        if (stats) {
            free(*stats);
            *stats = NULL;
        }
    }
    return st;
}

static mf_status split_dir(char *out, const char *root, const char *split, mf_error *err)
{
    mf_status st = join_path(out, root, split, err);
    if (st) return st;
    struct stat sb;
    if (stat(out, &sb)) {
        if (errno == ENOENT)
            return mf_fail(err, MF_ERR_IO, "%s: missing; a folder dataset holds %s/train/<class>/ "
                           "and %s/test/<class>/ with the images", out, root, root);
        return mf_fail(err, MF_ERR_IO, "%s: %s", out, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode)) return mf_fail(err, MF_ERR_IO, "%s: not a directory", out);
    return MF_OK;
}

static mf_status check_root(const char *root, mf_error *err)
{
    struct stat sb;
    if (!root || !root[0]) return mf_fail(err, MF_ERR_CONFIG, "the folder dataset's path is empty");
    if (stat(root, &sb)) return mf_fail(err, MF_ERR_IO, "%s: %s", root, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return mf_fail(err, MF_ERR_IO, "%s: not a directory", root);
    return MF_OK;
}

/* name with every byte outside printable ASCII as \xNN, cut to fit out. */
static const char *escaped(const char *name, char out[64])
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && w + 5 < 64; p++) {
        if (*p >= 0x20 && *p < 0x7f) out[w++] = (char)*p;
        else w += (size_t)snprintf(out + w, 64 - w, "\\x%02x", *p);
    }
    out[w] = '\0';
    return out;
}

/* The class folders of root/split; their number and names are checked for
 * train/ (test/ is compared with train/ instead, which names a missing or
 * extra class). */
static mf_status scan_classes(const char *root, const char *split, name_list *classes,
                              mf_error *err)
{
    char dir[PATH_CAP], shown[64];
    mf_status st = split_dir(dir, root, split, err);
    if (!st) st = list_dir(dir, 1, classes, NULL, err);
    if (st || !strcmp(split, "test")) return st;
    if (classes->count < 2)
        st = mf_fail(err, MF_ERR_FORMAT, "%s: %d class folders; a folder dataset needs 2 to %d",
                     dir, classes->count, MF_FOLDER_MAX_CLASSES);
    else if (classes->count > MF_FOLDER_MAX_CLASSES)
        st = mf_fail(err, MF_ERR_FORMAT, "%s: %d class folders, more than the %d a model takes "
                     "(the first beyond them, in sorted order: '%s')", dir, classes->count,
                     MF_FOLDER_MAX_CLASSES,
                     escaped(classes->names[MF_FOLDER_MAX_CLASSES], shown));
    for (int k = 0; !st && k < classes->count; k++) {
        const char *why = mf_class_name_problem(classes->names[k]);
        if (why)
            st = mf_fail(err, MF_ERR_FORMAT, "%s/%s: cannot name a class (%s); rename the "
                         "folder", dir, escaped(classes->names[k], shown), why);
    }
    if (st) names_free(classes);
    return st;
}

mf_status mf_folder_class_names(const char *path, char ***names, int *count, mf_error *err)
{
    *names = NULL;
    *count = 0;
    mf_status st = check_root(path, err);
    name_list classes;
    if (!st) st = scan_classes(path, "train", &classes, err);
    if (st) return st;
    *names = classes.names;
    *count = classes.count;
    return MF_OK;
}

typedef struct {
    folder_file *files;
    int count;
} file_list;

static void files_free(file_list *l)
{
    for (int i = 0; l->files && i < l->count; i++) free(l->files[i].path);
    free(l->files);
    memset(l, 0, sizeof *l);
}

/* Every image file of one split, class by class, then put in the split's
 * fixed pseudo-random order. */
static mf_status scan_split(const char *root, const char *split, const name_list *classes,
                            file_list *out, mf_error *err)
{
    memset(out, 0, sizeof *out);
    char dir[PATH_CAP], cdir[PATH_CAP], path[PATH_CAP];
    mf_status st = split_dir(dir, root, split, err);
    if (st) return st;
    folder_file *files = NULL;
    size_t count = 0, cap = 0;
    for (int k = 0; !st && k < classes->count; k++) {
        if ((st = join_path(cdir, dir, classes->names[k], err))) break;
        name_list names;
        struct stat *stats;
        if ((st = list_dir(cdir, 0, &names, &stats, err))) break;
        if (names.count == 0)
            st = mf_fail(err, MF_ERR_FORMAT, "%s: empty class folder (no image files)", cdir);
        if (!st && count + (size_t)names.count > MF_FOLDER_MAX_IMAGES)
            st = mf_fail(err, MF_ERR_FORMAT, "%s: more than %d images", dir, MF_FOLDER_MAX_IMAGES);
        if (!st && count + (size_t)names.count > cap) {
            size_t ncap = cap ? cap : 1024;
            while (ncap < count + (size_t)names.count) ncap *= 2;
            folder_file *n = realloc(files, ncap * sizeof *n);
            if (!n) st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", dir);
            else files = n, cap = ncap;
        }
        for (int i = 0; !st && i < names.count; i++) {
            if ((st = join_path(path, cdir, names.names[i], err))) break;
            folder_file *f = &files[count];
            f->path = malloc(strlen(path) + 1);
            if (!f->path) {
                st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", dir);
                break;
            }
            strcpy(f->path, path);
            f->size = (uint64_t)stats[i].st_size;
            f->mtime_s = (int64_t)stats[i].st_mtim.tv_sec;
            f->mtime_ns = stats[i].st_mtim.tv_nsec;
            f->label = k;
            count++;
        }
        names_free(&names);
        free(stats);
    }
    file_list l = {files, (int)count};
    if (st) {
        files_free(&l);
        return st;
    }
    int *perm = malloc((count ? count : 1) * sizeof *perm);
    folder_file *ordered = malloc((count ? count : 1) * sizeof *ordered);
    if (!perm || !ordered) {
        free(perm);
        free(ordered);
        files_free(&l);
        return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", dir);
    }
    mf_shuffle(perm, (int)count, ORDER_SEED);
    for (size_t i = 0; i < count; i++) ordered[i] = files[perm[i]];
    free(perm);
    free(files);
    out->files = ordered;
    out->count = (int)count;
    return MF_OK;
}

/* ---- Decoding ------------------------------------------------------------- */

enum { DECODE_OK = 0, DECODE_BAD = 1, DECODE_OTHER_SIZE = 2, DECODE_NOMEM = 3 };

/* One file into a slot of 3 x S x S bytes (planar; a grey image fills the
 * first plane only, *rgb says which). With image_size 0 the image must be
 * want x want. Returns a DECODE_ code; err says why. */
static int decode_file(const folder_file *f, const mf_folder_opts *o, int S, uint8_t *slot,
                       int *rgb, int *width, int *height, mf_error *err)
{
    mf_image img;
    mf_status st = mf_image_read(f->path, &img, err);
    if (st) return st == MF_ERR_NOMEM ? DECODE_NOMEM : DECODE_BAD;
    *width = img.width;
    *height = img.height;
    *rgb = img.channels == 3;
    size_t plane = (size_t)S * S;
    int code = DECODE_OK;
    if (o->image_size == 0) {
        if (img.width != S || img.height != S) {
            code = DECODE_OTHER_SIZE;
        } else {
            memcpy(slot, img.pixels, (size_t)img.channels * plane);
        }
        mf_image_free(&img);
        return code;
    }
    mf_image crop = {0}, out;
    const mf_image *src = &img;
    if (o->center_crop && img.width != img.height) {
        if (mf_image_crop_center(&img, &crop, err)) {
            mf_image_free(&img);
            return DECODE_NOMEM;
        }
        src = &crop;
    }
    st = mf_image_convert(src, img.channels, S, S, &out, err);
    mf_image_free(&crop);
    mf_image_free(&img);
    if (st) return DECODE_NOMEM;
    memcpy(slot, out.pixels, (size_t)out.channels * plane);
    mf_image_free(&out);
    return DECODE_OK;
}

/* ---- The cache -------------------------------------------------------------- */

static uint64_t hash_u64(uint64_t h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return mf_hash_bytes(h, b, 8);
}

static uint64_t cache_key(const mf_folder_opts *o, const name_list *classes, const file_list *s,
                          int nsplits)
{
    uint64_t h = hash_u64(0, CACHE_VERSION);
    h = hash_u64(h, (uint64_t)PNG_LIBPNG_VER);
    h = hash_u64(h, (uint64_t)JPEG_LIB_VERSION);
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
    h = hash_u64(h, (uint64_t)LIBJPEG_TURBO_VERSION_NUMBER);
#endif
    h = hash_u64(h, (uint64_t)o->image_size);
    h = hash_u64(h, (uint64_t)o->center_crop);
    h = hash_u64(h, (uint64_t)o->skip_bad);
    for (int k = 0; k < classes->count; k++)
        h = mf_hash_bytes(h, classes->names[k], strlen(classes->names[k]) + 1);
    for (int i = 0; i < nsplits; i++) {
        h = hash_u64(h, (uint64_t)s[i].count);
        for (int j = 0; j < s[i].count; j++) {
            const folder_file *f = &s[i].files[j];
            h = mf_hash_bytes(h, f->path, strlen(f->path) + 1);
            h = hash_u64(h, f->size);
            h = hash_u64(h, (uint64_t)f->mtime_s);
            h = hash_u64(h, (uint64_t)f->mtime_ns);
        }
    }
    return h;
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The data sections in file order, hashed in CACHE_CHUNK pieces. */
static uint64_t hash_chunks(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t at = 0; at < n; at += CACHE_CHUNK)
        h = mf_hash_bytes(h, p + at, n - at < CACHE_CHUNK ? n - at : CACHE_CHUNK);
    return h;
}

/* The header's bytes in a malloc'd buffer (without its checksum). */
static uint8_t *cache_header(const mf_dataset *d, uint64_t key, int skipped, size_t *len)
{
    size_t n = 8 + 8 + 6 * 4;
    for (int k = 0; k < d->classes; k++) n += 4 + strlen(d->class_names[k]);
    uint8_t *b = malloc(n + 8), *p = b;
    if (!b) return NULL;
    memcpy(p, cache_magic, 8), p += 8;
    put_u64(p, key), p += 8;
    uint32_t v[6] = {(uint32_t)d->classes, (uint32_t)d->channels, (uint32_t)d->size,
                     (uint32_t)d->train.count, (uint32_t)d->test.count, (uint32_t)skipped};
    for (int i = 0; i < 6; i++) put_u32(p, v[i]), p += 4;
    for (int k = 0; k < d->classes; k++) {
        size_t len_k = strlen(d->class_names[k]);
        put_u32(p, (uint32_t)len_k), p += 4;
        memcpy(p, d->class_names[k], len_k), p += len_k;
    }
    *len = n;
    return b;
}

static mf_status cache_write(const char *path, const mf_dataset *d, uint64_t key, int skipped,
                             mf_error *err)
{
    size_t hlen;
    uint8_t *h = cache_header(d, key, skipped, &hlen);
    if (!h) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    put_u64(h + hlen, mf_hash_bytes(0, h, hlen));
    mf_file_replacement r;
    mf_status st = mf_file_replace_begin(&r, path, err);
    if (st) {
        free(h);
        return st;
    }
    mf_file_replace_write(&r, h, hlen + 8, err);
    free(h);
    const mf_split *s[2] = {&d->train, &d->test};
    uint64_t sum = 0;
    for (int i = 0; i < 2; i++) {
        size_t n = (size_t)s[i]->count * 2;
        uint8_t *le = malloc(n ? n : 1);
        if (!le) {
            mf_file_replace_abort(&r);
            return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
        }
        for (int j = 0; j < s[i]->count; j++) put_u16(le + 2 * (size_t)j, s[i]->labels[j]);
        mf_file_replace_write(&r, le, n, err);
        sum = hash_chunks(sum, le, n);
        free(le);
    }
    size_t img = (size_t)d->channels * d->size * d->size;
    for (int i = 0; i < 2; i++) {
        mf_file_replace_write(&r, s[i]->images, (size_t)s[i]->count * img, err);
        sum = hash_chunks(sum, s[i]->images, (size_t)s[i]->count * img);
    }
    uint8_t tail[8];
    put_u64(tail, sum);
    mf_file_replace_write(&r, tail, 8, err);
    return mf_file_replace_commit(&r, err);
}

static int read_exact(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t got = read(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return 0;
        p += got;
        n -= (size_t)got;
    }
    return 1;
}

/* 1 with *d filled when the cache at path is valid for key and the scan
 * (classes, total files); 0 with note saying why not (empty when there is
 * no cache at all). */
static int cache_read(const char *path, uint64_t key, const name_list *classes, int files,
                      mf_dataset *d, int *skipped, char *note, size_t note_cap)
{
    note[0] = '\0';
    struct stat sb;
    if (stat(path, &sb) && errno == ENOENT) return 0;
    mf_error e;
    uint64_t size;
    int fd = mf_open_regular(path, 0, &size, &e);
    if (fd < 0) {
        snprintf(note, note_cap, "%.500s", e.message);
        return 0;
    }
    const char *why = NULL;
    uint8_t fixed[8 + 8 + 24];
    uint8_t *names = NULL;
    mf_split s[2];
    memset(s, 0, sizeof s);
    uint32_t v[6] = {0};
    if (!read_exact(fd, fixed, sizeof fixed) || memcmp(fixed, cache_magic, 8)) {
        why = "not a minformer cache of this version";
    } else if (get_u64(fixed + 8) != key) {
        why = "stale: the files or the settings changed since it was written";
    } else {
        for (int i = 0; i < 6; i++) v[i] = get_u32(fixed + 16 + 4 * i);
        if ((int)v[0] != classes->count || (v[1] != 1 && v[1] != 3) || v[2] < 1 ||
            v[2] > MF_IMAGE_MAX_SIDE || (uint64_t)v[3] + v[4] + v[5] != (uint64_t)files)
            why = "its header disagrees with the folder";
    }
    /* The class names, each checked against the scan. */
    size_t names_len = 0;
    if (!why) {
        for (int k = 0; k < classes->count; k++) names_len += 4 + strlen(classes->names[k]);
        names = malloc(names_len + 8);
        if (!names || !read_exact(fd, names, names_len + 8)) {
            why = "truncated";
        } else {
            const uint8_t *p = names;
            for (int k = 0; k < classes->count && !why; k++) {
                size_t len_k = strlen(classes->names[k]);
                if (get_u32(p) != len_k || memcmp(p + 4, classes->names[k], len_k))
                    why = "its class names disagree with the folder";
                p += 4 + len_k;
            }
            /* The header checksum covers fixed + names as one buffer. */
            uint8_t *all = malloc(sizeof fixed + names_len);
            if (!all) {
                why = "out of memory";
            } else {
                memcpy(all, fixed, sizeof fixed);
                memcpy(all + sizeof fixed, names, names_len);
                uint64_t hh = mf_hash_bytes(0, all, sizeof fixed + names_len);
                free(all);
                if (!why && hh != get_u64(names + names_len)) why = "corrupt (header checksum)";
            }
        }
    }
    size_t img = (size_t)v[1] * v[2] * v[2];
    if (!why) {
        uint64_t want = sizeof fixed + names_len + 8 + 2 * ((uint64_t)v[3] + v[4]) +
                        ((uint64_t)v[3] + v[4]) * img + 8;
        if (size != want) why = "its size is wrong (truncated or padded)";
    }
    uint64_t sum = 0;
    for (int i = 0; i < 2 && !why; i++) {
        s[i].count = (int)v[3 + i];
        s[i].channels = (int)v[1];
        s[i].size = (int)v[2];
        s[i].classes = (int)v[0];
        s[i].labels = malloc(s[i].count ? (size_t)s[i].count * sizeof *s[i].labels : 1);
        s[i].images = malloc(s[i].count ? (size_t)s[i].count * img : 1);
        if (!s[i].labels || !s[i].images) why = "out of memory";
    }
    /* The labels arrive as two bytes each, little-endian, in place: the
     * buffer holds count u16, so its bytes are read first and converted. */
    for (int i = 0; i < 2 && !why; i++) {
        uint8_t *raw = (uint8_t *)s[i].labels;
        size_t n = (size_t)s[i].count * 2;
        if (!read_exact(fd, raw, n)) why = "truncated";
        sum = hash_chunks(sum, raw, n);
        for (int j = 0; j < s[i].count && !why; j++) {
            uint16_t label = (uint16_t)(raw[2 * (size_t)j] | raw[2 * (size_t)j + 1] << 8);
            if (label >= v[0]) why = "corrupt (a label out of range)";
            s[i].labels[j] = label;
        }
    }
    for (int i = 0; i < 2 && !why; i++) {
        size_t n = (size_t)s[i].count * img;
        if (!read_exact(fd, s[i].images, n)) why = "truncated";
        sum = hash_chunks(sum, s[i].images, n);
    }
    uint8_t tail[8];
    if (!why && (!read_exact(fd, tail, 8) || get_u64(tail) != sum)) why = "corrupt (data checksum)";
    close(fd);
    free(names);
    if (why) {
        mf_split_free(&s[0]);
        mf_split_free(&s[1]);
        snprintf(note, note_cap, "%.400s: %s; rebuilt", path, why);
        return 0;
    }
    d->classes = (int)v[0];
    d->channels = (int)v[1];
    d->size = (int)v[2];
    d->train = s[0];
    d->test = s[1];
    *skipped = (int)v[5];
    return 1;
}

/* ---- Loading ------------------------------------------------------------------- */

/* The first file that decodes (in split order, train first), serially: it
 * sets the size when the images keep their own. 0 with *first = -1 when
 * none does (the caller reports the first file's error). */
static int find_reference(const file_list *s, const mf_folder_opts *o, int *first, int *side,
                          mf_error *err)
{
    *first = -1;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < s[i].count; j++) {
            mf_image img;
            mf_error e;
            if (mf_image_read(s[i].files[j].path, &img, &e)) {
                if (!o->skip_bad) {
                    *err = e;
                    return 0;
                }
                continue;
            }
            *first = i * s[0].count + j;
            *side = img.width;
            int ok = img.width == img.height;
            if (!ok)
                mf_fail(err, MF_ERR_FORMAT, "%s: a %dx%d image, not square; pass --image-size S "
                        "to resize the images (with --center-crop to keep their aspect ratio)",
                        s[i].files[j].path, img.width, img.height);
            mf_image_free(&img);
            return ok;
        }
    mf_fail(err, MF_ERR_FORMAT, "%s: no image in the folder could be decoded",
            s[0].count ? s[0].files[0].path : "folder");
    return 0;
}

/* Decodes both splits into d (whose classes and class names are set). */
static mf_status decode_all(mf_dataset *d, const file_list *s, const mf_folder_opts *o,
                            int *skipped, mf_error *err)
{
    int S = o->image_size, reference = -1;
    if (S == 0 && !find_reference(s, o, &reference, &S, err)) return err->status;
    size_t total = (size_t)s[0].count + (size_t)s[1].count, slot = (size_t)3 * S * S;
    uint8_t *codes = calloc(total ? total : 1, 1), *rgb = calloc(total ? total : 1, 1);
    uint8_t *pix[2] = {malloc(s[0].count ? (size_t)s[0].count * slot : 1),
                       malloc(s[1].count ? (size_t)s[1].count * slot : 1)};
    if (!codes || !rgb || !pix[0] || !pix[1]) {
        free(codes), free(rgb), free(pix[0]), free(pix[1]);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for %zu images of %dx%d (%zu MiB)",
                       total, S, S, (total * slot) >> 20);
    }
    /* Each file writes only its own slot, code and flag: any thread count
     * gives the same bytes. */
    long long n = (long long)total;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 8)
#endif
    for (long long g = 0; g < n; g++) {
        int i = g < s[0].count ? 0 : 1;
        int j = i ? (int)(g - s[0].count) : (int)g;
        int is_rgb = 0, w = 0, h = 0;
        mf_error e;
        codes[g] = (uint8_t)decode_file(&s[i].files[j], o, S, pix[i] + (size_t)j * slot, &is_rgb,
                                        &w, &h, &e);
        rgb[g] = (uint8_t)is_rgb;
    }
    mf_status st = MF_OK;
    int bad = 0, any_rgb = 0;
    for (size_t g = 0; g < total && !st; g++) {
        int i = g < (size_t)s[0].count ? 0 : 1;
        const folder_file *f = &s[i].files[i ? g - (size_t)s[0].count : g];
        if (codes[g] == DECODE_OK) {
            any_rgb |= rgb[g];
        } else if (codes[g] == DECODE_BAD && o->skip_bad) {
            bad++;
        } else if (codes[g] == DECODE_OTHER_SIZE) {
            int rs = (size_t)reference < (size_t)s[0].count ? 0 : 1;
            const folder_file *r = &s[rs].files[rs ? reference - s[0].count : reference];
            mf_image img;
            mf_error e;
            int w = 0, h = 0;
            if (!mf_image_read(f->path, &img, &e)) w = img.width, h = img.height;
            mf_image_free(&img);
            st = mf_fail(err, MF_ERR_FORMAT, "%s: a %dx%d image, unlike %s (%dx%d); pass "
                         "--image-size S to resize the images to one size", f->path, w, h,
                         r->path, S, S);
        } else {
            /* The message again, serially: the same for any thread count. */
            int is_rgb, w, h;
            uint8_t *tmp = malloc(slot);
            if (!tmp) st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", f->path);
            else if (decode_file(f, o, S, tmp, &is_rgb, &w, &h, err) == DECODE_OK)
                st = mf_fail(err, MF_ERR_IO, "%s: changed while being read", f->path);
            else st = err->status ? err->status : MF_ERR_FORMAT;
            free(tmp);
        }
    }
    /* Compacts each split in place (skipped images out; one plane for a
     * grey dataset, grey planes replicated for an RGB one). Slot j moves to
     * position k <= j, so copying forward never overwrites a slot not yet
     * moved. */
    int C = any_rgb ? 3 : 1;
    size_t plane = (size_t)S * S, img = (size_t)C * plane;
    for (int i = 0; i < 2 && !st; i++) {
        mf_split *sp = i ? &d->test : &d->train;
        size_t base = i ? (size_t)s[0].count : 0;
        sp->labels = malloc(s[i].count ? (size_t)s[i].count * sizeof *sp->labels : 1);
        if (!sp->labels) {
            st = mf_fail(err, MF_ERR_NOMEM, "out of memory");
            break;
        }
        int k = 0;
        for (int j = 0; j < s[i].count; j++) {
            if (codes[base + j] != DECODE_OK) continue;
            uint8_t *src = pix[i] + (size_t)j * slot, *dst = pix[i] + (size_t)k * img;
            memmove(dst, src, plane);
            for (int c = 1; c < C; c++)
                memmove(dst + c * plane, src + (rgb[base + j] ? c : 0) * plane, plane);
            sp->labels[k++] = (uint16_t)s[i].files[j].label;
        }
        uint8_t *shrunk = realloc(pix[i], k ? (size_t)k * img : 1);
        if (shrunk) pix[i] = shrunk;
        sp->images = pix[i];
        pix[i] = NULL;
        sp->count = k;
        sp->channels = C;
        sp->size = S;
        sp->classes = d->classes;
    }
    /* A class whose every image was skipped would leave a label unused; a
     * split with none at all cannot be trained or evaluated on. */
    for (int i = 0; i < 2 && !st; i++) {
        mf_split *sp = i ? &d->test : &d->train;
        if (sp->count == 0)
            st = mf_fail(err, MF_ERR_FORMAT, "%s/%s: every image was bad", d->folder,
                         i ? "test" : "train");
    }
    free(codes), free(rgb), free(pix[0]), free(pix[1]);
    d->channels = C;
    d->size = S;
    *skipped = bad;
    return st;
}

static void cache_name(char *out, size_t cap, const char *root, const mf_folder_opts *o)
{
    char settings[64];
    if (o->image_size) snprintf(settings, sizeof settings, "s%d%s", o->image_size,
                                o->center_crop ? "-crop" : "");
    else snprintf(settings, sizeof settings, "native");
    snprintf(out, cap, "%s/.minformer-cache-%s%s.bin", root, settings, o->skip_bad ? "-skipbad" : "");
}

mf_status mf_dataset_load_folder(mf_dataset *ds, const char *path, const mf_folder_opts *opts,
                                 mf_folder_report *report, mf_error *err)
{
    double t0 = mf_now_seconds();
    memset(ds, 0, sizeof *ds);
    mf_folder_opts o;
    if (opts) o = *opts;
    else mf_folder_opts_default(&o);
    mf_folder_report rep;
    memset(&rep, 0, sizeof rep);
    if (o.image_size < 0 || o.image_size > MF_IMAGE_MAX_SIDE)
        return mf_fail(err, MF_ERR_CONFIG, "image size %d is out of range 1..%d", o.image_size,
                       MF_IMAGE_MAX_SIDE);
    mf_status st = check_root(path, err);
    if (st) return st;

    name_list classes, test_classes;
    file_list s[2] = {{0}, {0}};
    if ((st = scan_classes(path, "train", &classes, err))) return st;
    if ((st = scan_classes(path, "test", &test_classes, err))) {
        names_free(&classes);
        return st;
    }
    for (int a = 0, b = 0; !st && (a < classes.count || b < test_classes.count);) {
        int c = a == classes.count ? 1 : b == test_classes.count ? -1
                : strcmp(classes.names[a], test_classes.names[b]);
        if (c < 0)
            st = mf_fail(err, MF_ERR_FORMAT, "%s/test: no class folder '%s', which train/ has; "
                         "train/ and test/ must hold the same classes", path, classes.names[a]);
        else if (c > 0)
            st = mf_fail(err, MF_ERR_FORMAT, "%s/test/%s: a class train/ does not have; "
                         "train/ and test/ must hold the same classes", path,
                         test_classes.names[b]);
        a++, b++;
    }
    names_free(&test_classes);
    if (!st) st = scan_split(path, "train", &classes, &s[0], err);
    if (!st) st = scan_split(path, "test", &classes, &s[1], err);
    mf_dataset d;
    memset(&d, 0, sizeof d);
    d.kind = MF_FOLDER;
    d.name = mf_dataset_name(MF_FOLDER);
    d.folder = malloc(strlen(path) + 1);
    if (!st && !d.folder) st = mf_fail(err, MF_ERR_NOMEM, "out of memory");
    if (!st) {
        strcpy(d.folder, path);
        d.classes = classes.count;
        d.class_names = classes.names;
        classes.names = NULL;
        classes.count = 0;
        rep.files = s[0].count + s[1].count;
    }
    name_list cls = {d.class_names, d.classes, d.classes};
    uint64_t key = st ? 0 : cache_key(&o, &cls, s, 2);
    cache_name(rep.cache_path, sizeof rep.cache_path, path, &o);
    int skipped = 0;
    if (!st && o.use_cache &&
        cache_read(rep.cache_path, key, &cls, rep.files, &d, &skipped, rep.note, sizeof rep.note)) {
        rep.cache_used = 1;
    } else if (!st) {
        st = decode_all(&d, s, &o, &skipped, err);
        rep.decoded = st ? 0 : d.train.count + d.test.count;
        if (!st && o.use_cache) {
            mf_error e;
            if (cache_write(rep.cache_path, &d, key, skipped, &e)) {
                size_t used = strlen(rep.note);
                snprintf(rep.note + used, sizeof rep.note - used, "%scache not written: %.400s",
                         used ? "; " : "", e.message);
            } else {
                rep.cache_written = 1;
            }
        }
    }
    names_free(&classes);
    files_free(&s[0]);
    files_free(&s[1]);
    if (st) {
        mf_dataset_free(&d);
        return st;
    }
    rep.skipped = skipped;
    if ((st = mf_dataset_finish(&d, err))) {
        mf_dataset_free(&d);
        return st;
    }
    rep.seconds = mf_now_seconds() - t0;
    if (report) *report = rep;
    *ds = d;
    return MF_OK;
}
