/* The bodies of the fuzz targets (see targets.h). Beyond "no crash", each
 * checks what the library promises for any input: an accepted file gives a
 * result within its documented limits whose every byte can be read; a refused
 * one gives MF_ERR_FORMAT (or MF_ERR_NOMEM) with a message and a zeroed
 * output. Sanitizers see the rest: overreads, leaks on error paths, UB. */
#define _POSIX_C_SOURCE 200809L
#include "targets.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/cli.h"
#include "minformer.h"
#include "minformer/checkpoint.h"
#include "experiment/experiment.h"
#include "minformer/run.h"

char fuzz_last_problem[600];

/* Names the target and the broken promise on stderr and in
 * fuzz_last_problem; returns 1. */
static int fuzz_problem(const char *target, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fuzz_problem(const char *target, const char *fmt, ...)
{
    int n = snprintf(fuzz_last_problem, sizeof fuzz_last_problem, "fuzz %s: ", target);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fuzz_last_problem + n, sizeof fuzz_last_problem - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", fuzz_last_problem);
    return 1;
}

int fuzz_verbose;

/* With fuzz_verbose, what the library said about the input. */
static void fuzz_say(const char *what, mf_status st, const mf_error *err)
{
    if (!fuzz_verbose) return;
    if (st == MF_OK)
        fprintf(stderr, "  %s: accepted\n", what);
    else
        fprintf(stderr, "  %s: refused (%d): %s\n", what, (int)st, err->message);
}

/* Folds n bytes into a value the compiler must compute, so every byte is
 * read and AddressSanitizer checks the whole buffer is allocated. */
static volatile unsigned fuzz_sink;

static void fuzz_touch(const uint8_t *p, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) sum += p[i];
    fuzz_sink += sum;
}

/* A refusal says why, with a status a caller can act on. */
static int fuzz_check_refusal(const char *target, mf_status st, const mf_error *err)
{
    if (st != MF_ERR_FORMAT && st != MF_ERR_NOMEM)
        return fuzz_problem(target, "refused with status %d, expected MF_ERR_FORMAT: %s", (int)st,
                            err->message);
    if (err->status != st)
        return fuzz_problem(target, "returned status %d but recorded %d", (int)st,
                            (int)err->status);
    if (!err->message[0]) return fuzz_problem(target, "refused without a message");
    return 0;
}

/* The message of a format error starts with "PATH: ", as the CLI prints it. */
static int fuzz_check_names_path(const char *target, const mf_error *err, const char *path)
{
    size_t n = strlen(path);
    if (err->status == MF_ERR_FORMAT &&
        (strncmp(err->message, path, n) || err->message[n] != ':'))
        return fuzz_problem(target, "message does not start with the path: %s", err->message);
    return 0;
}

/* ---- scratch files -------------------------------------------------------- */

/* The loaders take paths, so inputs pass through files: one per role, made
 * once per process in $TMPDIR (else /tmp), rewritten for every input and
 * removed at exit. */
enum {
    SCRATCH_IDX_IMAGES,
    SCRATCH_IDX_LABELS,
    SCRATCH_CIFAR, /* three: up to three batch files */
    SCRATCH_IMAGE = SCRATCH_CIFAR + 3,
    SCRATCH_CHECKPOINT,
    SCRATCH_COUNT
};

static struct {
    int fd;
    char path[512];
} fuzz_scratch[SCRATCH_COUNT];

static void fuzz_scratch_remove(void)
{
    for (int i = 0; i < SCRATCH_COUNT; i++)
        if (fuzz_scratch[i].path[0]) {
            close(fuzz_scratch[i].fd);
            unlink(fuzz_scratch[i].path);
            fuzz_scratch[i].path[0] = '\0';
        }
}

/* Makes the file `which` hold exactly data[0..size) and returns its path.
 * Aborts when the file system fails: that is no finding about the library. */
static const char *fuzz_scratch_write(int which, const uint8_t *data, size_t size)
{
    static int registered;
    if (!fuzz_scratch[which].path[0]) {
        const char *dir = getenv("TMPDIR");
        if (!dir || !*dir) dir = "/tmp";
        char *path = fuzz_scratch[which].path;
        snprintf(path, sizeof fuzz_scratch[which].path, "%s/minformer-fuzz-XXXXXX", dir);
        fuzz_scratch[which].fd = mkstemp(path);
        if (fuzz_scratch[which].fd < 0) {
            perror(path);
            abort();
        }
        if (!registered) atexit(fuzz_scratch_remove);
        registered = 1;
    }
    int fd = fuzz_scratch[which].fd;
    if (ftruncate(fd, 0) != 0) {
        perror(fuzz_scratch[which].path);
        abort();
    }
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) {
            perror(fuzz_scratch[which].path);
            abort();
        }
        done += (size_t)n;
    }
    return fuzz_scratch[which].path;
}

/* data as one gzip member, malloc'd into *out; 0 on failure. */
static int fuzz_gzip(const uint8_t *data, size_t size, uint8_t **out, size_t *out_size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    *out = NULL;
    /* windowBits 15 + 16 asks for the gzip wrapper; level 1 keeps it fast. */
    if (size > 1u << 30 ||
        deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    uLong cap = deflateBound(&z, (uLong)size);
    *out = malloc(cap);
    int ok = *out != NULL;
    if (ok) {
        z.next_in = (Bytef *)(uintptr_t)data;
        z.avail_in = (uInt)size;
        z.next_out = *out;
        z.avail_out = (uInt)cap;
        ok = deflate(&z, Z_FINISH) == Z_STREAM_END;
        *out_size = z.total_out;
    }
    deflateEnd(&z);
    if (!ok) {
        free(*out);
        *out = NULL;
    }
    return ok;
}

/* ---- datasets -------------------------------------------------------------- */

static int fuzz_check_split(const char *target, const mf_split *s, int channels, int max_size,
                            int classes)
{
    if (s->count < 1 || s->channels != channels || s->size < 1 || s->size > max_size)
        return fuzz_problem(target, "accepted a split of %d images of %dx%dx%d", s->count,
                            s->channels, s->size, s->size);
    if (!s->images || !s->labels) return fuzz_problem(target, "accepted a split without data");
    for (int i = 0; i < s->count; i++)
        if (s->labels[i] >= classes)
            return fuzz_problem(target, "accepted label %d at %d", s->labels[i], i);
    fuzz_touch(s->images, (size_t)s->count * (size_t)channels * (size_t)s->size * (size_t)s->size);
    return 0;
}

static int fuzz_check_split_zeroed(const char *target, const mf_split *s)
{
    if (s->count || s->channels || s->size || s->images || s->labels)
        return fuzz_problem(target, "refused, but the output split is not zeroed");
    return 0;
}

int fuzz_one_idx(const uint8_t *data, size_t size)
{
    int flags = size > 0 ? data[0] : 0;
    size_t at = size < 3 ? size : 3;
    size_t nlabels = size >= 3 ? (size_t)data[1] | (size_t)data[2] << 8 : 0;
    if (nlabels > size - at) nlabels = size - at;
    const uint8_t *labels = data + at, *images = data + at + nlabels;
    size_t nimages = size - at - nlabels;
    uint8_t *gz_labels = NULL, *gz_images = NULL;
    if ((flags & 1) && fuzz_gzip(images, nimages, &gz_images, &nimages)) images = gz_images;
    if ((flags & 2) && fuzz_gzip(labels, nlabels, &gz_labels, &nlabels)) labels = gz_labels;
    const char *images_path = fuzz_scratch_write(SCRATCH_IDX_IMAGES, images, nimages);
    const char *labels_path = fuzz_scratch_write(SCRATCH_IDX_LABELS, labels, nlabels);

    mf_split s;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_idx_load(images_path, labels_path, 10, &s, &err);
    fuzz_say("mf_idx_load", st, &err);
    int bad = st == MF_OK ? fuzz_check_split("idx", &s, 1, 1024, 10)
                          : fuzz_check_refusal("idx", st, &err) ||
                                fuzz_check_split_zeroed("idx", &s);
    mf_split_free(&s);
    free(gz_images);
    free(gz_labels);
    return bad;
}

int fuzz_one_cifar(const uint8_t *data, size_t size)
{
    int files = size > 0 ? data[0] % 3 + 1 : 1;
    size_t at = size > 0 ? 1 : 0, len[3] = {0, 0, 0};
    for (int i = 0; i + 1 < files; i++) {
        if (at + 2 <= size) len[i] = (size_t)data[at] | (size_t)data[at + 1] << 8;
        at = at + 2 <= size ? at + 2 : size;
    }
    const char *paths[3];
    for (int i = 0; i < files; i++) {
        size_t n = i + 1 < files && len[i] < size - at ? len[i] : size - at;
        paths[i] = fuzz_scratch_write(SCRATCH_CIFAR + i, data + at, n);
        at += n;
    }

    mf_split s;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_cifar_load(paths, files, &s, &err);
    fuzz_say("mf_cifar_load", st, &err);
    int bad = st == MF_OK ? fuzz_check_split("cifar", &s, 3, 32, 10)
                          : fuzz_check_refusal("cifar", st, &err) ||
                                fuzz_check_split_zeroed("cifar", &s);
    if (!bad && st == MF_OK && s.size != 32) bad = fuzz_problem("cifar", "images of side %d", s.size);
    mf_split_free(&s);
    return bad;
}

/* ---- pictures -------------------------------------------------------------- */

static int fuzz_check_image(const char *what, const mf_image *img)
{
    if (img->width < 1 || img->height < 1 || img->width > MF_IMAGE_MAX_SIDE ||
        img->height > MF_IMAGE_MAX_SIDE || (img->channels != 1 && img->channels != 3) ||
        !img->pixels)
        return fuzz_problem("image", "%s gave a %dx%d image of %d channels", what, img->width,
                            img->height, img->channels);
    fuzz_touch(img->pixels, (size_t)img->width * (size_t)img->height * (size_t)img->channels);
    return 0;
}

static int fuzz_check_image_zeroed(const char *what, const mf_image *img)
{
    if (img->width || img->height || img->channels || img->pixels)
        return fuzz_problem("image", "%s refused, but the output image is not zeroed", what);
    return 0;
}

/* Resampling as `predict` does for the model's input; cannot fail on a valid
 * image except for memory. */
static int fuzz_convert(const mf_image *src, int channels, int side)
{
    mf_image dst;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_image_convert(src, channels, side, side, &dst, &err);
    int bad = 0;
    if (st == MF_OK) {
        if (dst.width != side || dst.height != side || dst.channels != channels)
            bad = fuzz_problem("image", "converted to %dx%dx%d, asked for %dx%dx%d", dst.channels,
                               dst.height, dst.width, channels, side, side);
        else
            bad = fuzz_check_image("mf_image_convert", &dst);
    } else if (st != MF_ERR_NOMEM) {
        bad = fuzz_problem("image", "mf_image_convert refused a decoded image: %s", err.message);
    }
    mf_image_free(&dst);
    return bad;
}

int fuzz_one_image(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_write(SCRATCH_IMAGE, data, size);
    mf_image mem, file;
    mf_error mem_err, file_err;
    mf_error_clear(&mem_err);
    mf_error_clear(&file_err);
    mf_status mem_st = mf_image_decode(data, size, path, &mem, &mem_err);
    mf_status file_st = mf_image_read(path, &file, &file_err);
    fuzz_say("mf_image_decode", mem_st, &mem_err);
    int bad = 0;
    if (mem_st != file_st) {
        bad = fuzz_problem("image", "mf_image_decode says %d (%s) but mf_image_read %d (%s)",
                           (int)mem_st, mem_err.message, (int)file_st, file_err.message);
    } else if (mem_st != MF_OK) {
        bad = fuzz_check_refusal("image", mem_st, &mem_err) ||
              fuzz_check_image_zeroed("mf_image_decode", &mem) ||
              fuzz_check_image_zeroed("mf_image_read", &file);
        if (!bad && strcmp(mem_err.message, file_err.message))
            bad = fuzz_problem("image", "mf_image_decode says '%s' but mf_image_read '%s'",
                               mem_err.message, file_err.message);
    } else {
        bad = fuzz_check_image("mf_image_decode", &mem) ||
              fuzz_check_image("mf_image_read", &file);
        if (!bad && (mem.width != file.width || mem.height != file.height ||
                     mem.channels != file.channels ||
                     memcmp(mem.pixels, file.pixels,
                            (size_t)mem.width * (size_t)mem.height * (size_t)mem.channels)))
            bad = fuzz_problem("image", "mf_image_decode and mf_image_read disagree on pixels");
        if (!bad) bad = fuzz_convert(&mem, 1, 28) || fuzz_convert(&mem, 3, 32);
    }
    mf_image_free(&mem);
    mf_image_free(&file);
    return bad;
}

/* ---- checkpoints ------------------------------------------------------------ */

/* The safetensors layer alone: an accepted header is consistent with the
 * file, and every F32 tensor in it can be read. */
static int fuzz_header(const char *path, size_t size)
{
    mf_checkpoint_header h;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_checkpoint_read_header(path, &h, &err);
    fuzz_say("mf_checkpoint_read_header", st, &err);
    if (st != MF_OK) {
        int bad = fuzz_check_refusal("checkpoint", st, &err) ||
                  fuzz_check_names_path("checkpoint", &err, path);
        if (!bad && (h.tensors || h.metadata || h.internal || h.num_tensors || h.num_metadata))
            bad = fuzz_problem("checkpoint", "header refused, but the output is not zeroed");
        mf_checkpoint_header_free(&h);
        return bad;
    }
    int bad = 0;
    if (h.file_size != size || h.data_start != 8 + h.header_size ||
        h.data_size != h.file_size - h.data_start)
        bad = fuzz_problem("checkpoint", "header sizes do not add up to the file's %zu bytes",
                           size);
    uint64_t pos = 0;
    for (int i = 0; !bad && i < h.num_tensors; i++) {
        const mf_checkpoint_tensor *t = &h.tensors[i];
        if (t->begin != pos || t->end < t->begin || t->end > h.data_size)
            bad = fuzz_problem("checkpoint", "accepted tensor %d at [%llu, %llu)", i,
                               (unsigned long long)t->begin, (unsigned long long)t->end);
        else if (mf_checkpoint_find(&h, t->name) == NULL)
            bad = fuzz_problem("checkpoint", "tensor %d cannot be found by its name", i);
        pos = t->end;
        if (bad || strcmp(t->dtype, "F32")) continue;
        size_t bytes = (size_t)(t->end - t->begin);
        float *x = malloc(bytes ? bytes : 1);
        if (!x) continue;
        st = mf_checkpoint_read_f32(&h, t, x, &err);
        if (st != MF_OK)
            bad = fuzz_problem("checkpoint", "an accepted F32 tensor cannot be read: %s",
                               err.message);
        else
            fuzz_touch((const uint8_t *)x, bytes);
        free(x);
    }
    if (!bad && pos != h.data_size)
        bad = fuzz_problem("checkpoint", "accepted tensors that leave the data section's tail");
    for (int i = 0; !bad && i < h.num_metadata; i++)
        if (!mf_checkpoint_metadata(&h, h.metadata[i].key) || !h.metadata[i].value)
            bad = fuzz_problem("checkpoint", "metadata entry %d cannot be found by its key", i);
    mf_checkpoint_header_free(&h);
    return bad;
}

int fuzz_one_checkpoint(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_write(SCRATCH_CHECKPOINT, data, size);
    int bad = fuzz_header(path, size);
    mf_model m;
    mf_checkpoint_info info;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_checkpoint_load(path, &m, &info, &err);
    fuzz_say("mf_checkpoint_load", st, &err);
    if (st != MF_OK) {
        bad = bad || fuzz_check_refusal("checkpoint", st, &err) ||
              fuzz_check_names_path("checkpoint", &err, path);
        if (!bad && (m.params || m.tensors || m.memory))
            bad = fuzz_problem("checkpoint", "load refused, but the model is not zeroed");
    } else if (!bad) {
        mf_error e;
        if (mf_config_validate(&m.cfg, &e) || !m.params || m.num_params < 1)
            bad = fuzz_problem("checkpoint", "loaded an invalid model");
        else if ((info.has_optimizer != 0 && info.has_optimizer != 1) ||
                 (info.has_train_state != 0 && info.has_train_state != 1))
            bad = fuzz_problem("checkpoint", "loaded with flags %d/%d", info.has_optimizer,
                               info.has_train_state);
        else
            fuzz_touch((const uint8_t *)m.params, m.num_params * sizeof *m.params);
    }
    /* The class names: read whenever load accepts the file (which checks
     * more), then as many as the classes, each a valid name, sorted and
     * unique. */
    char **names;
    int count;
    mf_error_clear(&err);
    mf_status nst = mf_checkpoint_read_classes(path, &names, &count, &err);
    fuzz_say("mf_checkpoint_read_classes", nst, &err);
    if (!bad && st == MF_OK && nst != MF_OK && nst != MF_ERR_NOMEM)
        bad = fuzz_problem("checkpoint", "load said %d, read_classes %d", st, nst);
    if (!bad && nst == MF_OK && st == MF_OK && (info.has_class_names ? count != m.cfg.classes
                                                : count != 0 || names != NULL))
        bad = fuzz_problem("checkpoint", "%d class names for %d classes (has_class_names %d)",
                           count, m.cfg.classes, info.has_class_names);
    for (int k = 0; !bad && nst == MF_OK && k < count; k++)
        if (mf_class_name_problem(names[k]) || (k && strcmp(names[k - 1], names[k]) >= 0))
            bad = fuzz_problem("checkpoint", "accepted class name %d", k);
    if (nst == MF_OK) mf_checkpoint_class_names_free(names, count);
    mf_model_free(&m);
    return bad;
}

/* ---- the command line ------------------------------------------------------ */

/* getopt keeps a pointer into the previous argv when a parse stopped inside
 * a cluster of short options ("-hh"); optind = 0 makes glibc and musl start
 * afresh, and one call with no options applies it. */
static void fuzz_reset_getopt(void)
{
    char prog[] = "minformer";
    char *argv[] = {prog, NULL};
    optind = 0;
    opterr = 0;
    while (getopt(1, argv, "") != -1) {
    }
}

static int fuzz_check_usage_rc(const char *what, int rc)
{
    if (rc != 0 && rc != EXIT_USAGE)
        return fuzz_problem("cli", "%s returned %d, expected 0 or %d", what, rc, EXIT_USAGE);
    return 0;
}

int fuzz_one_cli(const uint8_t *data, size_t size)
{
    /* Each argument in an allocation of its own, so reading past its NUL is
     * seen; argv itself may be permuted by getopt_long, hence the copy. */
    size_t pieces = 1;
    for (size_t i = 0; i < size; i++) pieces += data[i] == '\0';
    if (size > 0 && data[size - 1] == '\0') pieces--; /* "a\0" is one argument */
    if (size == 0) pieces = 0;
    char **args = calloc(pieces + 1, sizeof *args);
    char **argv = calloc(pieces + 2, sizeof *argv);
    int bad = 0;
    if (!args || !argv) goto done;
    for (size_t k = 0, at = 0; k < pieces; k++) {
        size_t len = strnlen((const char *)data + at, size - at);
        args[k] = malloc(len + 1);
        if (!args[k]) goto done;
        memcpy(args[k], data + at, len);
        args[k][len] = '\0';
        at += len + 1;
    }
    char command[] = "params";
    argv[0] = command;
    for (size_t k = 0; k < pieces; k++) argv[k + 1] = args[k];
    fuzz_reset_getopt();
    int rc = cmd_params((int)pieces + 1, argv);
    if (fuzz_verbose) fprintf(stderr, "  cmd_params: exit status %d\n", rc);
    bad = fuzz_check_usage_rc("cmd_params", rc);
    fflush(stdout);

    for (size_t k = 0; !bad && k < pieces; k++) {
        const char *s = args[k];
        int i = 12345;
        float f = 12345.0f;
        uint64_t u = 0;
        int rc = cli_parse_int("fuzz", "int", s, -1000, 1000, &i);
        bad = fuzz_check_usage_rc("cli_parse_int", rc);
        if (!bad && rc == 0 && (i < -1000 || i > 1000))
            bad = fuzz_problem("cli", "cli_parse_int gave %d for '%s'", i, s);
        rc = cli_parse_float("fuzz", "float", s, -1e6, 1e6, &f);
        bad = bad || fuzz_check_usage_rc("cli_parse_float", rc);
        if (!bad && rc == 0 && !(f >= -1e6f && f <= 1e6f))
            bad = fuzz_problem("cli", "cli_parse_float gave %g for '%s'", (double)f, s);
        rc = cli_parse_u64("fuzz", "u64", s, &u);
        bad = bad || fuzz_check_usage_rc("cli_parse_u64", rc);
    }
done:
    for (size_t k = 0; args && k < pieces; k++) free(args[k]);
    free(args);
    free(argv);
    return bad;
}

/* ---- run directory files --------------------------------------------------------- */

int fuzz_one_run_identity(const uint8_t *data, size_t size)
{
    mf_run_identity id, back;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_run_identity_parse((const char *)data, size, &id, "fuzz", &err);
    fuzz_say("run identity", st, &err);
    if (st) {
        if (st != MF_ERR_FORMAT && st != MF_ERR_NOMEM)
            return fuzz_problem("run_identity", "refused with status %d", (int)st);
        if (id.count != 0) return fuzz_problem("run_identity", "refused but %d settings kept", id.count);
        if (strncmp(err.message, "fuzz: ", 6))
            return fuzz_problem("run_identity", "message does not name the file: %s", err.message);
        return 0;
    }
    if (id.count < 0 || id.count > MF_RUN_MAX_SETTINGS)
        return fuzz_problem("run_identity", "%d settings", id.count);
    for (int i = 0; i < id.count; i++)
        if (!id.items[i].name[0] || strlen(id.items[i].name) >= MF_RUN_NAME_MAX ||
            strlen(id.items[i].value) >= MF_RUN_VALUE_MAX)
            return fuzz_problem("run_identity", "setting %d out of its limits", i);
    char *json = mf_run_identity_to_json(&id);
    if (!json) return 0;
    st = mf_run_identity_parse(json, strlen(json), &back, "again", &err);
    char diff[200];
    int n = st ? -1 : mf_run_identity_diff(&id, &back, diff, sizeof diff);
    free(json);
    if (n) return fuzz_problem("run_identity", "round trip changed it: %s", st ? err.message : diff);
    return 0;
}

void fuzz_requested_identity(int tuned, mf_run_identity *out)
{
    mf_experiment_opts o;
    mf_experiment_opts_default(&o);
    o.tune_lr = tuned;
    const mf_experiment_grid *g = mf_experiment_grid_find("quick");
    mf_experiment_identity(&o, &g->specs[0], 0x0123456789abcdefULL, out);
}

int fuzz_one_result(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int flags = data[0];
    mf_run_identity req;
    fuzz_requested_identity(0, &req);
    mf_experiment_result r;
    memset(&r, 0, sizeof r);
    if (!(flags & 2)) {
        snprintf(r.name, sizeof r.name, "mnist-L6-H1-mlp4-unchanged");
        r.params = 305034;
        r.epochs = 1;
    }
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_experiment_parse_result((const char *)data + 1, size - 1, &req, flags & 1, &r,
                                              "fuzz", &err);
    fuzz_say("result.json", st, &err);
    if (st) {
        if (st != MF_ERR_FORMAT && st != MF_ERR_CONFIG && st != MF_ERR_NOMEM)
            return fuzz_problem("result", "refused with status %d", (int)st);
        if (strncmp(err.message, "fuzz: ", 6))
            return fuzz_problem("result", "message does not name the file: %s", err.message);
        return 0;
    }
    /* What an accepted result promises to the tables. */
    if (!(r.train_acc >= 0 && r.train_acc <= 1 && r.test_acc >= 0 && r.test_acc <= 1 &&
          r.best_test_acc >= r.test_acc && r.best_test_acc <= 1))
        return fuzz_problem("result", "accuracies out of range");
    if (r.epochs < 1 || r.best_epoch < 1 || r.best_epoch > r.epochs)
        return fuzz_problem("result", "best epoch %d of %d", r.best_epoch, r.epochs);
    if (!(r.train_loss >= 0 && r.test_loss >= 0 && isfinite(r.seconds) && r.seconds >= 0 &&
          isfinite(r.images_per_second) && r.images_per_second >= 0 && r.lr > 0 && isfinite(r.lr)))
        return fuzz_problem("result", "a loss, time, rate or learning rate out of range");
    if (!(flags & 2) && (strcmp(r.name, "mnist-L6-H1-mlp4-unchanged") || r.params != 305034))
        return fuzz_problem("result", "accepted another run's name or size");
    if (r.lr != 4e-3f || r.lr_tuned) return fuzz_problem("result", "accepted learning rate %g", (double)r.lr);
    return 0;
}

int fuzz_one_lr(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    mf_run_identity req;
    fuzz_requested_identity(1, &req);
    float lr = -1.0f;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_experiment_parse_lr((const char *)data + 1, size - 1,
                                          (data[0] & 1) ? NULL : &req, &lr, "fuzz", &err);
    fuzz_say("lr.json", st, &err);
    if (st) {
        if (st != MF_ERR_FORMAT && st != MF_ERR_CONFIG && st != MF_ERR_NOMEM)
            return fuzz_problem("lr", "refused with status %d", (int)st);
        if (lr != 0.0f) return fuzz_problem("lr", "refused but the learning rate is %g", (double)lr);
        if (strncmp(err.message, "fuzz: ", 6))
            return fuzz_problem("lr", "message does not name the file: %s", err.message);
        return 0;
    }
    const float lrs[MF_EXPERIMENT_TUNE_COUNT] = MF_EXPERIMENT_TUNE_LRS;
    int ok = 0;
    for (int i = 0; i < MF_EXPERIMENT_TUNE_COUNT; i++) ok |= lr == lrs[i];
    if (!ok) return fuzz_problem("lr", "accepted learning rate %g, not a candidate", (double)lr);
    return 0;
}

int fuzz_one_grid(const uint8_t *data, size_t size)
{
    mf_experiment_grid g;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_experiment_grid_parse((const char *)data, size, "fuzz.json", "fuzz", &g, &err);
    fuzz_say("grid file", st, &err);
    if (st) {
        if (st != MF_ERR_CONFIG && st != MF_ERR_NOMEM)
            return fuzz_problem("grid", "refused with status %d", (int)st);
        if (strncmp(err.message, "fuzz.json", 9) || strchr(err.message, '\n'))
            return fuzz_problem("grid", "not one line naming the file: %s", err.message);
        return 0;
    }
    int bad = 0;
    if (g.count < 1 || g.count > MF_EXPERIMENT_MAX_ROWS)
        bad = fuzz_problem("grid", "accepted %d rows", g.count);
    for (int i = 0; !bad && i < g.count; i++) {
        mf_config cfg;
        if (mf_experiment_config(&g.specs[i], &cfg, &err))
            bad = fuzz_problem("grid", "row %d's model is invalid: %s", i, err.message);
        else if (!g.specs[i].name[0] || strlen(g.specs[i].name) > MF_EXPERIMENT_NAME_MAX)
            bad = fuzz_problem("grid", "row %d's name has %zu characters", i, strlen(g.specs[i].name));
        for (int j = 0; !bad && j < i; j++)
            if (!strcmp(g.specs[i].name, g.specs[j].name))
                bad = fuzz_problem("grid", "rows %d and %d are both %s", j, i, g.specs[i].name);
    }
    mf_experiment_grid_free(&g);
    return bad;
}

const fuzz_target fuzz_targets[] = {
    {"idx", fuzz_one_idx},
    {"cifar", fuzz_one_cifar},
    {"image", fuzz_one_image},
    {"checkpoint", fuzz_one_checkpoint},
    {"cli", fuzz_one_cli},
    {"run_identity", fuzz_one_run_identity},
    {"result", fuzz_one_result},
    {"lr", fuzz_one_lr},
    {"grid", fuzz_one_grid},
};
const int fuzz_target_count = (int)(sizeof fuzz_targets / sizeof fuzz_targets[0]);
