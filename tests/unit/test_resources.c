/* Resources a run must not be able to exhaust or hang on: files that are not
 * regular (a FIFO blocks an open for reading, /dev/zero never ends) given to
 * every reader, files and lines over the readers' limits, training logs with
 * null metrics, data whose classes or geometry differ from the model's, and
 * the memory estimate and refusal (MINFORMER_MEMORY_LIMIT). */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "minformer.h"
#include "figures/figures.h"

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A reader that blocked would stop the whole test program here: SIGALRM
 * kills it, and the suite reports it as crashed instead of hanging. */
static void guard(unsigned seconds) { alarm(seconds); }

/* ---- files that are not regular ---------------------------------------------- */

/* Calls every reader on path; each must fail with MF_ERR_IO naming it, at once. */
static void expect_every_reader_refuses(const char *path)
{
    const char *ok_img = tpath("ok-img"), *ok_lbl = tpath("ok-lbl");
    mf_error err;
    mf_split s;
    double t0 = now();
    guard(10);

    mf_error_clear(&err);
    mf_status st = mf_idx_load(path, ok_lbl, 10, &s, &err);
    CHECK(st == MF_ERR_IO && strstr(err.message, path), "IDX images %s: %d %s", path, st, err.message);
    mf_error_clear(&err);
    st = mf_idx_load(ok_img, path, 10, &s, &err);
    CHECK(st == MF_ERR_IO && strstr(err.message, path), "IDX labels %s: %d %s", path, st, err.message);
    const char *paths[1] = {path};
    mf_error_clear(&err);
    st = mf_cifar_load(paths, 1, &s, &err);
    CHECK(st == MF_ERR_IO && strstr(err.message, path), "CIFAR %s: %d %s", path, st, err.message);
    mf_image img;
    mf_error_clear(&err);
    st = mf_image_read(path, &img, &err);
    CHECK(st == MF_ERR_IO && strstr(err.message, path), "image %s: %d %s", path, st, err.message);
    mf_training_log log;
    mf_error_clear(&err);
    st = mf_training_log_read(path, &log, &err);
    CHECK(st == MF_ERR_IO && strstr(err.message, path), "log %s: %d %s", path, st, err.message);
    CHECK(log.count == 0 && log.epochs == NULL, "a refused log is left empty");

    alarm(0);
    CHECK(now() - t0 < 5.0, "the readers took %.1f s on %s", now() - t0, path);
}

static void write_ok_idx(void)
{
    /* A valid IDX pair of 2 images of 4x4, for the other file of each call. */
    uint8_t img[16 + 32] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4};
    uint8_t lbl[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 3, 7};
    FILE *f = fopen(tpath("ok-img"), "wb");
    fwrite(img, 1, sizeof img, f);
    fclose(f);
    f = fopen(tpath("ok-lbl"), "wb");
    fwrite(lbl, 1, sizeof lbl, f);
    fclose(f);
}

static void test_fifo_refused_by_every_reader(void)
{
    write_ok_idx();
    const char *fifo = tpath("a-fifo");
    unlink(fifo);
    if (mkfifo(fifo, 0600)) SKIP("cannot make a FIFO in %s", tmpdir);
    expect_every_reader_refuses(fifo);
    /* With a writer holding it open, an open would not block, but reading
     * would wait for that writer for ever. */
    int wfd = open(fifo, O_RDWR | O_NONBLOCK);
    if (wfd >= 0) {
        expect_every_reader_refuses(fifo);
        close(wfd);
    }
    unlink(fifo);
}

static void test_devices_refused_by_every_reader(void)
{
    write_ok_idx();
    expect_every_reader_refuses("/dev/zero");
    expect_every_reader_refuses("/dev/null");
    expect_every_reader_refuses(tmpdir); /* a directory */
}

/* ---- size limits ------------------------------------------------------------- */

/* A sparse file of n bytes: no disk or memory behind it. */
static int sparse_file(const char *path, off_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    int rc = ftruncate(fd, n);
    close(fd);
    return rc;
}

static void test_oversize_files_refused_before_reading(void)
{
    const char *big = tpath("big");
    if (sparse_file(big, ((off_t)256 << 20) + 1)) SKIP("cannot make a sparse file");
    mf_error err;
    mf_training_log log;
    double t0 = now();
    mf_error_clear(&err);
    CHECK(mf_training_log_read(big, &log, &err) == MF_ERR_IO && strstr(err.message, big) &&
              strstr(err.message, "256 MiB limit"),
          "oversize log: %s", err.message);
    mf_image img;
    mf_error_clear(&err);
    CHECK(mf_image_read(big, &img, &err) == MF_ERR_IO && strstr(err.message, "256 MiB limit"),
          "oversize image: %s", err.message);
    if (sparse_file(big, ((off_t)1 << 30) + 3073)) SKIP("cannot make a sparse file");
    const char *paths[1] = {big};
    mf_split s;
    mf_error_clear(&err);
    CHECK(mf_cifar_load(paths, 1, &s, &err) == MF_ERR_IO && strstr(err.message, "1024 MiB limit"),
          "oversize CIFAR batch: %s", err.message);
    if (sparse_file(big, ((off_t)4 << 30) + 1)) SKIP("cannot make a sparse file");
    mf_error_clear(&err);
    CHECK(mf_idx_load(big, tpath("ok-lbl"), 10, &s, &err) == MF_ERR_IO &&
              strstr(err.message, "4096 MiB limit"),
          "oversize IDX file: %s", err.message);
    CHECK(now() - t0 < 5.0, "refusing took %.1f s: the files were read", now() - t0);
    unlink(big);
}

static void test_idx_raw_size_checked_before_the_payload(void)
{
    /* A raw IDX header announcing 60000 28x28 images over a 1 GiB sparse
     * file: refused from the size alone, without reading a gigabyte. */
    const char *img = tpath("raw-big");
    if (sparse_file(img, (off_t)1 << 30)) SKIP("cannot make a sparse file");
    int fd = open(img, O_WRONLY);
    uint8_t head[16] = {0, 0, 8, 3, 0, 0, 0xea, 0x60, 0, 0, 0, 28, 0, 0, 0, 28};
    CHECK(fd >= 0 && write(fd, head, sizeof head) == (ssize_t)sizeof head, "write the header");
    close(fd);
    mf_error err;
    mf_split s;
    double t0 = now();
    mf_error_clear(&err);
    CHECK(mf_idx_load(img, tpath("ok-lbl"), 10, &s, &err) == MF_ERR_FORMAT &&
              strstr(err.message, "trailing bytes after the 47040016"),
          "%s", err.message);
    CHECK(now() - t0 < 2.0, "took %.1f s: the payload was read", now() - t0);
    unlink(img);
}

static void test_log_line_limit(void)
{
    const char *path = tpath("long-line.jsonl");
    size_t n = (64 << 10) + 100;
    char *text = malloc(n + 64);
    int at = snprintf(text, n + 64, "{\"epoch\":1}\n{\"epoch\":2,\"pad\":\"");
    memset(text + at, 'x', n);
    strcpy(text + at + n, "\"}\n");
    write_text(path, text);
    free(text);
    mf_training_log log;
    mf_error err;
    mf_error_clear(&err);
    CHECK(mf_training_log_read(path, &log, &err) == MF_ERR_FORMAT && strstr(err.message, path) &&
              strstr(err.message, ":2:") && strstr(err.message, "64 KiB limit"),
          "%s", err.message);
    CHECK(log.count == 0 && log.epochs == NULL, "a refused log is left empty");
}

static void test_log_long_run(void)
{
    /* 100,000 epochs, each line across the reader's chunks at some point,
     * epochs out of order and every tenth repeated (the last line wins). */
    const char *path = tpath("long-run.jsonl");
    FILE *f = fopen(path, "wb");
    if (!f) SKIP("cannot write %s", path);
    const int E = 100000;
    for (int e = E; e >= 1; e--) {
        fprintf(f, "{\"epoch\":%d,\"lr\":0.001,\"train_loss\":%d.5,\"train_acc\":0.5,"
                   "\"test_loss\":1.0,\"test_acc\":0.5,\"seconds\":1.0,\"images_per_second\":1000.0,"
                   "\"images\":60000,\"train_seconds\":0.9}\n", e, e);
        if (e % 10 == 0) fprintf(f, "{\"epoch\":%d,\"train_loss\":-1}\n", e);
    }
    fclose(f);
    mf_training_log log;
    mf_error err;
    mf_error_clear(&err);
    double t0 = now();
    CHECK(mf_training_log_read(path, &log, &err) == MF_OK, "%s", err.message);
    double dt = now() - t0;
    CHECK(log.count == E, "%d epochs", log.count);
    int bad = 0;
    for (int i = 0; i < log.count && !bad; i++) {
        const mf_log_epoch *r = &log.epochs[i];
        float want = r->epoch % 10 == 0 ? -1.0f : (float)r->epoch + 0.5f;
        bad = r->epoch != i + 1 || r->train_loss != want ||
              (r->epoch % 10 == 0 ? r->images != 0 : r->images != 60000);
    }
    CHECK(!bad, "the epochs read back wrong");
    CHECK(dt < 20.0, "reading took %.1f s", dt);
    mf_training_log_free(&log);
}

/* ---- null metrics -------------------------------------------------------------- */

static void test_log_null_metrics(void)
{
    const char *path = tpath("null.jsonl");
    write_text(path,
               "{\"epoch\":1,\"lr\":0.001,\"train_loss\":null,\"train_acc\":null,\"test_loss\":null,"
               "\"test_acc\":null,\"seconds\":null,\"images_per_second\":null,\"images\":null,"
               "\"train_seconds\":null}\n"
               "{\"epoch\":2,\"lr\":null,\"train_loss\":0.5,\"train_acc\":0.8,\"test_loss\":0.6,"
               "\"test_acc\":0.7,\"seconds\":2.5,\"images_per_second\":100.0,\"images\":256,"
               "\"train_seconds\":2.0}\n");
    mf_training_log log;
    mf_error err;
    mf_error_clear(&err);
    CHECK(mf_training_log_read(path, &log, &err) == MF_OK, "%s", err.message);
    if (log.count != 2) {
        CHECK(log.count == 2, "%d epochs", log.count);
        mf_training_log_free(&log);
        return;
    }
    const mf_log_epoch *a = &log.epochs[0], *b = &log.epochs[1];
    CHECK(a->lr == 0.001f && isnan(a->train_loss) && isnan(a->train_acc) && isnan(a->test_loss) &&
              isnan(a->test_acc) && isnan(a->seconds) && isnan(a->images_per_second) &&
              isnan(a->train_seconds) && a->images == 0,
          "nulls read as NaN (images: 0)");
    CHECK(isnan(b->lr) && b->train_loss == 0.5f && b->test_acc == 0.7f && b->images == 256 &&
              b->train_seconds == 2.0,
          "numbers read as written");
    mf_training_log_free(&log);

    /* The epoch stays required and integral; a metric is a number or null. */
    static const char *const bad[][2] = {
        {"{\"epoch\":null,\"train_loss\":1}\n", "epoch"},
        {"{\"epoch\":1.5}\n", "epoch"},
        {"{\"train_loss\":1}\n", "epoch"},
        {"{\"epoch\":1,\"test_loss\":\"1.0\"}\n", "\"test_loss\" is neither a number nor null"},
        {"{\"epoch\":1,\"lr\":true}\n", "\"lr\""},
        {"{\"epoch\":1,\"images\":-5}\n", "\"images\""},
        {"{\"epoch\":1,\"images\":1e300}\n", "\"images\""},
        {"{\"epoch\":1,\"test_loss\":-nan}\n", "not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(path, bad[i][0]);
        mf_error_clear(&err);
        CHECK(mf_training_log_read(path, &log, &err) == MF_ERR_FORMAT && strstr(err.message, ":1:") &&
                  strstr(err.message, bad[i][1]),
              "%s -> %s", bad[i][0], err.message);
    }
}

static void test_figures_skip_nan_points(void)
{
    mf_log_epoch e[4];
    memset(e, 0, sizeof e);
    for (int i = 0; i < 4; i++) {
        e[i].epoch = i + 1;
        e[i].train_loss = 2.0f - 0.3f * (float)i;
        e[i].test_loss = i == 1 ? NAN : 2.2f - 0.3f * (float)i;
        e[i].train_acc = i == 3 ? NAN : 0.2f * (float)i;
        e[i].test_acc = NAN;
    }
    mf_log_epoch none[2];
    memset(none, 0, sizeof none);
    for (int i = 0; i < 2; i++) {
        none[i].epoch = i + 1;
        none[i].train_loss = none[i].test_loss = none[i].train_acc = none[i].test_acc = NAN;
    }
    mf_training_log logs[2] = {{4, e}, {2, none}};
    const char *labels[2] = {"some NaN", "all NaN"};
    mf_error err;
    for (int acc = 0; acc < 2; acc++) {
        const char *out = tpath(acc ? "nan-acc.png" : "nan-loss.png");
        mf_error_clear(&err);
        CHECK(mf_figure_curves(out, MF_FIGURE_PNG, 640, 400, "NaN", logs, labels, 2, acc, &err) ==
                  MF_OK, "%s", err.message);
        struct stat sb;
        CHECK(stat(out, &sb) == 0 && sb.st_size > 0, "%s written", out);
        mf_error_clear(&err);
        CHECK(mf_figure_curves(out, MF_FIGURE_PNG, 640, 400, "NaN", logs + 1, labels + 1, 1, acc,
                               &err) == MF_OK, "only NaN: %s", err.message);
    }
    double params[3] = {1000, NAN, 3000}, acc[3] = {90, 95, NAN};
    const char *names[3] = {"a", "b", "c"};
    int group[3] = {0, 0, 0};
    const char *gname[1] = {"g"};
    mf_error_clear(&err);
    CHECK(mf_figure_accuracy_params(tpath("nan-params.png"), MF_FIGURE_PNG, 640, 400, "NaN", params,
                                    acc, names, group, gname, 1, 3, &err) == MF_OK,
          "%s", err.message);
    double nan3[3] = {NAN, NAN, NAN};
    mf_error_clear(&err);
    CHECK(mf_figure_accuracy_params(tpath("nan-params2.pdf"), MF_FIGURE_PDF, 640, 400, "NaN", params,
                                    nan3, names, group, gname, 1, 3, &err) == MF_OK,
          "only NaN: %s", err.message);
}

/* ---- classes and geometry -------------------------------------------------------- */

/* n random 28x28 images with labels i mod classes. */
static void synthetic_split(mf_split *s, int n, int classes)
{
    memset(s, 0, sizeof *s);
    s->count = n;
    s->channels = 1;
    s->size = 28;
    s->images = malloc((size_t)n * 784);
    s->labels = malloc((size_t)n * sizeof *s->labels);
    mf_rng rng;
    mf_rng_seed(&rng, 7);
    for (size_t i = 0; i < (size_t)n * 784; i++) s->images[i] = (uint8_t)mf_rng_below(&rng, 256);
    for (int i = 0; i < n; i++) s->labels[i] = (uint16_t)(i % classes);
}

static void small_model(mf_model *m, int classes)
{
    mf_config c;
    mf_error err;
    mf_config_default(&c, 28, 1, classes);
    c.dim = 16;
    c.layers = 1;
    c.mlp_ratio = 0;
    CHECK(mf_model_create(m, &c, &err) == MF_OK, "%s", err.message);
    mf_model_init_weights(m, 1);
}

static void test_class_count_checked_against_the_data(void)
{
    mf_model m;
    small_model(&m, 2);
    float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.3f, 0.3f, 0.3f};
    mf_eval_result r;
    mf_error err;

    /* A hand-built split (classes unknown): its labels 0..9 are checked. */
    mf_split s;
    synthetic_split(&s, 40, 10);
    mf_error_clear(&err);
    CHECK(mf_evaluate(&m, &s, mean, std, 20, &r, &err) == MF_ERR_CONFIG &&
              strstr(err.message, "the model has 2 classes") && strstr(err.message, "label 2"),
          "%s", err.message);
    /* A loaded split says how many classes its dataset has. */
    s.classes = 10;
    mf_error_clear(&err);
    CHECK(mf_evaluate(&m, &s, mean, std, 20, &r, &err) == MF_ERR_CONFIG &&
              strstr(err.message, "the model has 2 classes; the data has 10"),
          "%s", err.message);
    /* Even with labels all below 2. */
    for (int i = 0; i < s.count; i++) s.labels[i] %= 2;
    mf_error_clear(&err);
    CHECK(mf_evaluate(&m, &s, mean, std, 20, &r, &err) == MF_ERR_CONFIG, "%s", err.message);
    s.classes = 2;
    mf_error_clear(&err);
    CHECK(mf_evaluate(&m, &s, mean, std, 20, &r, &err) == MF_OK, "a 2-class split: %s", err.message);

    /* mf_train: the dataset's class count, named with the dataset. */
    mf_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.kind = MF_MNIST;
    ds.name = "mnist";
    ds.classes = 10;
    ds.channels = 1;
    ds.size = 28;
    synthetic_split(&ds.train, 64, 10);
    synthetic_split(&ds.test, 32, 10);
    ds.train.classes = ds.test.classes = 10;
    ds.mean[0] = 0.5f;
    ds.std[0] = 0.3f;
    mf_train_opts o;
    mf_train_opts_default(&o);
    o.epochs = 1;
    o.batch = 16;
    mf_train_state st;
    mf_train_state_init(&st);
    mf_error_clear(&err);
    CHECK(mf_train(&m, &ds, &o, &st, NULL, NULL, &err) == MF_ERR_CONFIG &&
              strstr(err.message, "the model has 2 classes; the mnist data has 10"),
          "%s", err.message);
    CHECK(st.step == 0, "trained %ld steps anyway", st.step);
    mf_model_free(&m);

    /* Geometry: a 3-channel or 32x32 split on a 1-channel 28x28 model. */
    small_model(&m, 10);
    mf_split c3 = s;
    c3.channels = 3;
    c3.classes = 10;
    mf_error_clear(&err);
    CHECK(mf_evaluate(&m, &c3, mean, std, 20, &r, &err) == MF_ERR_CONFIG &&
              strstr(err.message, "1x28x28") && strstr(err.message, "3x28x28"),
          "%s", err.message);
    ds.test.size = 32;
    mf_error_clear(&err);
    CHECK(mf_train(&m, &ds, &o, &st, NULL, NULL, &err) == MF_ERR_CONFIG &&
              strstr(err.message, "32x32"),
          "a test split of another size: %s", err.message);
    ds.test.size = 28;
    mf_model_free(&m);
    mf_split_free(&s);
    mf_dataset_free(&ds);
}

static void test_forward_defends_against_bad_labels(void)
{
    mf_model m;
    small_model(&m, 2);
    mf_error err;
    CHECK(mf_model_reserve(&m, 2, &err) == MF_OK, "%s", err.message);
    float *x = calloc(2 * 784, sizeof *x);
    int good[2] = {0, 1}, bad[2] = {1, 9}, negative[2] = {-1, 0};
    CHECK(isfinite(mf_model_forward(&m, x, good, 2)), "valid labels give a loss");
    CHECK(isnan(mf_model_forward(&m, x, bad, 2)), "label 9 of 2 classes is not read");
    CHECK(isnan(mf_model_forward(&m, x, negative, 2)), "label -1 is not read");
    free(x);
    mf_model_free(&m);
}

/* ---- memory -------------------------------------------------------------------- */

static void set_limit(const char *value)
{
    if (value) setenv("MINFORMER_MEMORY_LIMIT", value, 1);
    else unsetenv("MINFORMER_MEMORY_LIMIT");
}

static void test_memory_refused_under_the_limit(void)
{
    mf_config c;
    mf_config_default(&c, 28, 1, 10);
    mf_memory_estimate e1, e128;
    mf_error err;
    CHECK(mf_model_memory_estimate(&c, 1, &e1, &err) == MF_OK, "%s", err.message);
    CHECK(mf_model_memory_estimate(&c, 128, &e128, &err) == MF_OK, "%s", err.message);
    CHECK(e1.parameters == e128.parameters && e128.activations > 50 * e1.activations &&
              e1.total == e1.parameters + e1.activations,
          "parameters %llu, activations %llu (1) %llu (128)", (unsigned long long)e1.parameters,
          (unsigned long long)e1.activations, (unsigned long long)e128.activations);

    char v[32];
    mf_model m;
    set_limit("1000000");
    mf_error_clear(&err);
    CHECK(mf_model_create(&m, &c, &err) == MF_ERR_NOMEM && strstr(err.message, "the model needs about") &&
              strstr(err.message, "parameters") && strstr(err.message, "activations") &&
              strstr(err.message, "only 0 MiB available (MINFORMER_MEMORY_LIMIT)"),
          "%s", err.message);
    CHECK(m.memory == NULL && m.tensors == NULL, "nothing allocated");

    /* Room for the model and one image, not for a batch of 128. */
    snprintf(v, sizeof v, "%llu", (unsigned long long)e1.total);
    set_limit(v);
    mf_error_clear(&err);
    CHECK(mf_model_create(&m, &c, &err) == MF_OK, "%s", err.message);
    mf_error_clear(&err);
    CHECK(mf_model_reserve(&m, 128, &err) == MF_ERR_NOMEM && strstr(err.message, "batch of 128") &&
              m.acts == NULL,
          "%s", err.message);
    CHECK(mf_model_reserve(&m, 1, &err) == MF_OK, "one image fits: %s", err.message);
    snprintf(v, sizeof v, "%llu", (unsigned long long)e128.total);
    set_limit(v);
    CHECK(mf_model_reserve(&m, 128, &err) == MF_OK, "the estimate itself fits: %s", err.message);
    mf_model_free(&m);

    /* A training run is refused before its first step. */
    set_limit(v);
    mf_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.kind = MF_MNIST;
    ds.name = "mnist";
    ds.classes = 10;
    synthetic_split(&ds.train, 300, 10);
    synthetic_split(&ds.test, 10, 10);
    ds.train.classes = ds.test.classes = 10;
    ds.channels = 1;
    ds.size = 28;
    ds.std[0] = 1.0f;
    CHECK(mf_model_create(&m, &c, &err) == MF_OK, "%s", err.message);
    mf_train_opts o;
    mf_train_opts_default(&o);
    o.epochs = 1;
    o.batch = 256;
    mf_train_state st;
    mf_train_state_init(&st);
    mf_error_clear(&err);
    CHECK(mf_train(&m, &ds, &o, &st, NULL, NULL, &err) == MF_ERR_NOMEM && st.step == 0 &&
              strstr(err.message, "batch of 256"),
          "%s", err.message);
    mf_model_free(&m);
    mf_dataset_free(&ds);

    set_limit("12abc");
    mf_error_clear(&err);
    CHECK(mf_model_create(&m, &c, &err) == MF_ERR_CONFIG && strstr(err.message, "MINFORMER_MEMORY_LIMIT"),
          "%s", err.message);
    set_limit(NULL);

    uint64_t avail = 0;
    const char *source = NULL;
    CHECK(mf_memory_available(&avail, &source, &err) == MF_OK, "%s", err.message);
    CHECK(source && (!strcmp(source, "cgroup limit") || !strcmp(source, "MemAvailable")) &&
              avail > 0 && avail < UINT64_MAX,
          "available %llu (%s)", (unsigned long long)avail, source ? source : "?");
    CHECK(mf_model_create(&m, &c, &err) == MF_OK, "without a limit: %s", err.message);
    mf_model_free(&m);

    /* A configuration far past any machine is refused, not overflowed. */
    mf_config huge = c;
    huge.image_size = 4096;
    huge.patch = 1;
    huge.dim = 16384;
    huge.layers = 4096;
    huge.heads = 16;
    mf_memory_estimate eh;
    CHECK(mf_model_memory_estimate(&huge, 1000000, &eh, &err) == MF_OK &&
              eh.total >= eh.parameters && eh.parameters > ((uint64_t)1 << 40),
          "huge: %llu", (unsigned long long)eh.total);
    mf_error_clear(&err);
    CHECK(mf_model_create(&m, &huge, &err) == MF_ERR_NOMEM, "%s", err.message);
}

/* Resident memory of this process, from /proc/self/statm. */
static double resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, rss = 0;
    if (!f) return -1;
    int n = fscanf(f, "%ld %ld", &size, &rss);
    fclose(f);
    return n == 2 ? (double)rss * (double)sysconf(_SC_PAGESIZE) : -1;
}

static void test_memory_estimate_matches_allocation(void)
{
    /* Large enough that every block is a fresh mapping, zero-filled at once
     * (mf_alloc), so resident memory grows by what was allocated. */
    mf_config c;
    mf_config_default(&c, 28, 1, 10);
    c.dim = 256;
    c.layers = 6;
    const int B = 64;
    mf_memory_estimate e;
    mf_error err;
    CHECK(mf_model_memory_estimate(&c, B, &e, &err) == MF_OK, "%s", err.message);
    double r0 = resident_bytes();
    if (r0 < 0) SKIP("no /proc/self/statm");
    mf_model m;
    CHECK(mf_model_create(&m, &c, &err) == MF_OK, "%s", err.message);
    double r1 = resident_bytes();
    CHECK(mf_model_reserve(&m, B, &err) == MF_OK, "%s", err.message);
    double r2 = resident_bytes();
    /* The inputs the trainer fills are part of the estimate, not of reserve. */
    double inputs = (double)B * (784.0 * 4 + 3 * sizeof(int));
    double params = r1 - r0, acts = r2 - r1;
    printf("  estimate: parameters %.1f MiB (allocated %.1f), activations %.1f MiB (allocated %.1f)\n",
           (double)e.parameters / 1048576, params / 1048576, (double)e.activations / 1048576,
           acts / 1048576);
    CHECK(params > 0.8 * (double)e.parameters && params < 1.25 * (double)e.parameters,
          "parameters: estimate %llu, allocated %.0f", (unsigned long long)e.parameters, params);
    CHECK(acts > 0.8 * ((double)e.activations - inputs) && acts < 1.25 * (double)e.activations,
          "activations: estimate %llu, allocated %.0f", (unsigned long long)e.activations, acts);
    mf_model_free(&m);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mf_test_resources_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    unsetenv("MINFORMER_MEMORY_LIMIT");
    RUN(test_memory_estimate_matches_allocation); /* first: the heap is still fresh */
    RUN(test_fifo_refused_by_every_reader);
    RUN(test_devices_refused_by_every_reader);
    RUN(test_oversize_files_refused_before_reading);
    RUN(test_idx_raw_size_checked_before_the_payload);
    RUN(test_log_line_limit);
    RUN(test_log_long_run);
    RUN(test_log_null_metrics);
    RUN(test_figures_skip_nan_points);
    RUN(test_class_count_checked_against_the_data);
    RUN(test_forward_defends_against_bad_labels);
    RUN(test_memory_refused_under_the_limit);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report();
}
