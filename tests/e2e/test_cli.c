/* End-to-end tests of the minformer command line. The binary runs as a child
 * process (tests/support/child.h) on small subsets of the real data: exit codes and
 * messages of usage and runtime errors, parameter counts, dataset reports,
 * train -> eval -> predict -> collapse, SIGINT/SIGTERM with an exact resume,
 * SIGKILL at varied moments (inside a save too), and numerical, disk and data
 * faults. Tests that need a dataset SKIP when it is missing. The binary is
 * BUILD/minformer beside BUILD/tests/test_cli, or $MINFORMER_BIN. */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#ifdef __linux__
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#endif

#include "check.h"
#include "child.h"
#include "minformer.h"
#include "minformer/checkpoint.h"

#define TIMEOUT 300.0 /* seconds for any one command (generous for sanitizer builds) */

/* The small MNIST run most tests use: 500 training images in batches of 50
 * (10 steps per epoch), 200 test images, a 2-block model of width 32. */
#define MNIST_SMALL                                                                          \
    "--dataset mnist --dim 32 --layers 2 --mlp 2 --limit-train 500 --limit-test 200 "        \
    "--batch 50 --threads 1"
/* A smaller model still, for runs whose model is not the point. */
#define MNIST_TINY                                                                           \
    "--dataset mnist --preset minimal --mlp 0 --dim 16 --layers 1 --limit-train 100 "        \
    "--limit-test 100 --batch 50 --threads 1"
/* The run the signal and kill tests interrupt: 5 epochs of 6 steps, a save
 * after each. */
#define SIGNAL_RUN                                                                           \
    "--dataset mnist --dim 32 --layers 2 --mlp 2 --limit-train 300 --limit-test 100 "        \
    "--batch 50 --threads 1 --epochs 5 --seed 7"
#define SIGNAL_EPOCHS 5

static char root[256];          /* scratch directory (tmpfs when there is one), removed at the end */
static char disk_root[256];     /* scratch directory on a disk, for the kill test; removed too */
static char data_dir[PATH_MAX]; /* absolute */
static int have_mnist, have_cifar;
static int disk_is_ram; /* disk_root is a tmpfs too: saves are too quick to catch reliably */
static int verbose;     /* MF_TEST_VERBOSE: timings and kill outcomes */

static void path_in(char *out, const char *name) { text_printf(out, PATH_MAX, "%s/%s", root, name); }

/* ---- helpers --------------------------------------------------------------------- */

/* Runs a (with --data DIR appended when data is set) and checks its status. */
static int run_expect(child_result *r, const char *cwd, child_args *a, int data, int want)
{
    if (data) args_add(a, "--data", data_dir, NULL);
    child_run(r, cwd, TIMEOUT, a);
    CHECK(r->status == want,
          "'minformer %s' exited with %d, expected %d\n  stdout: %.2000s\n  stderr: %.2000s",
          args_text(a), r->status, want, r->out, r->err);
    return r->status == want;
}

/* Builds the arguments from a format, runs them with --data and checks the status. */
static int run_line(child_result *r, int want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int run_line(child_result *r, int want, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    child_args a = {0};
    args_split(&a, line);
    return run_expect(r, NULL, &a, 1, want);
}

/* A runtime or usage error is one line on stderr, "minformer...", holding needle. */
static void expect_one_error(const child_result *r, const char *what, const char *needle)
{
    CHECK(count_lines(r->err) == 1 && !strncmp(r->err, "minformer", 9),
          "%s: expected one error line starting 'minformer', got: %s", what, r->err);
    CHECK(strstr(r->err, needle) != NULL, "%s: the error does not mention '%s': %s", what, needle,
          r->err);
}

/* The largest N of the lines "epoch N/E" in a train command's stdout. */
static int epochs_printed(const char *out)
{
    int best = 0;
    for (const char *p = out; (p = strstr(p, "epoch ")); p += 6) {
        if (p != out && p[-1] != '\n') continue;
        int e;
        if (sscanf(p, "epoch %d/", &e) == 1 && e > best) best = e;
    }
    return best;
}

/* Files in dir whose names start with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

/* Loads a checkpoint through the library: its epoch, or -1 with the error. */
static int checkpoint_epoch(const char *path, char *why, size_t why_size)
{
    mf_model m;
    mf_checkpoint_info info;
    mf_error err;
    if (mf_checkpoint_load(path, &m, &info, &err)) {
        text_printf(why, why_size, "%s", err.message);
        return -1;
    }
    mf_model_free(&m);
    return info.state.epoch;
}

/* Writes a PGM (P5, or P2 when ascii) or PPM (P6) from planar pixels. */
static int write_pnm(const char *path, const uint8_t *planar, int w, int h, int channels, int ascii)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fprintf(f, "%s\n# written by test_cli\n%d %d\n255\n", channels == 3 ? "P6" : ascii ? "P2" : "P5",
            w, h);
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < channels; c++) {
            if (ascii) fprintf(f, "%d%c", planar[c * n + i], (i + 1) % 16 ? ' ' : '\n');
            else fputc(planar[c * n + i], f);
        }
    return fclose(f);
}

/* An 8-bit RGB PNG through libpng (the library only reads images). */
static int write_png(const char *path, const uint8_t *planar, int w, int h, int channels)
{
    size_t n = (size_t)w * h;
    uint8_t *rgb = malloc(n * 3);
    FILE *f = rgb ? fopen(path, "wb") : NULL;
    png_structp png = f ? png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL) : NULL;
    png_infop info = png ? png_create_info_struct(png) : NULL;
    volatile int ok = 0; /* read after a longjmp */
    if (info && setjmp(png_jmpbuf(png)) == 0) {
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) rgb[i * 3 + c] = planar[(channels == 3 ? c : 0) * n + i];
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * w * 3);
        png_write_end(png, NULL);
        ok = 1;
    }
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    if (f && fclose(f) != 0) ok = 0;
    free(rgb);
    return ok ? 0 : -1;
}

/* The model's most probable class and its probability for one test image. */
static int library_predict(const char *ckpt, const mf_split *split, int index, double *prob)
{
    mf_model m;
    mf_checkpoint_info info;
    mf_error err;
    if (mf_checkpoint_load(ckpt, &m, &info, &err) || mf_model_reserve(&m, 1, &err)) {
        fprintf(stderr, "%s\n", err.message);
        mf_model_free(&m);
        return -1;
    }
    size_t img = (size_t)split->channels * split->size * split->size;
    float *x = malloc(img * sizeof(float));
    int y;
    mf_batch_fill(split, &index, 1, info.mean, info.std, MF_AUGMENT_NONE, 0, x, &y);
    mf_model_forward(&m, x, NULL, 1);
    const float *z = mf_model_logits(&m);
    int K = m.cfg.classes, best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best]) best = k;
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += exp((double)z[k] - z[best]);
    *prob = 1.0 / sum;
    free(x);
    mf_model_free(&m);
    return best;
}

/* Line i (0-based) of text, parsed as a JSON object. */
static int json_nth_line(const char *text, int i, json_line *j)
{
    const char *p = text;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p) {
        memset(j, 0, sizeof *j);
        return 0;
    }
    size_t len = strcspn(p, "\n");
    char *line = malloc(len + 2);
    memcpy(line, p, len);
    line[len] = '\n';
    line[len + 1] = '\0';
    int ok = json_last_line(line, j);
    free(line);
    return ok;
}

/* The top prediction of a predict --json line: label and probability. */
static int predict_top(const json_line *j, double *prob)
{
    const mf_json *top = j->ok ? mf_json_get(&j->root, "top") : NULL;
    if (!top || top->type != MF_JSON_ARRAY || top->count < 1) return -1;
    const mf_json *first = &top->u.items[0];
    const mf_json *label = mf_json_get(first, "label"), *p = mf_json_get(first, "probability");
    if (!label || !p || label->type != MF_JSON_NUMBER || p->type != MF_JSON_NUMBER) return -1;
    *prob = p->u.number.value;
    return (int)label->u.number.value;
}

/* A data directory of symbolic links to the real MNIST files, so single files
 * can be damaged without touching the real ones. */
static int make_mnist_links(const char *dir)
{
    char sub[PATH_MAX], from[PATH_MAX + 256], to[PATH_MAX + 256], real_sub[PATH_MAX];
    text_printf(sub, sizeof sub, "%s/mnist", dir);
    text_printf(real_sub, sizeof real_sub, "%s/mnist", data_dir);
    mkdir(dir, 0755);
    if (mkdir(sub, 0755) && errno != EEXIST) return -1;
    DIR *d = opendir(real_sub);
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        text_printf(from, sizeof from, "%s/%s", real_sub, e->d_name);
        text_printf(to, sizeof to, "%s/%s", sub, e->d_name);
        unlink(to);
        if (symlink(from, to)) {
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    return 0;
}

/* The name (raw, else .gz) of an MNIST file in DIR/mnist, written to out. */
static int mnist_file(const char *dir, const char *base, char *out)
{
    text_printf(out, PATH_MAX, "%s/mnist/%s", dir, base);
    if (file_exists(out)) return 0;
    text_printf(out, PATH_MAX, "%s/mnist/%s.gz", dir, base);
    return file_exists(out) ? 0 : -1;
}

/* ---- usage ---------------------------------------------------------------------------- */

static void test_version_and_help(void)
{
    child_result r;
    child_args a = {0};
    args_add(&a, "--version", NULL);
    if (run_expect(&r, NULL, &a, 0, 0))
        CHECK(!strcmp(r.out, "minformer " MF_VERSION "\n"), "--version printed '%s'", r.out);
    child_result_free(&r);

    static const char *const helps[][2] = {
        {"--help", "Usage: minformer <command>"}, {"help", "Usage: minformer <command>"},
        {"info", "Usage: minformer info"},       {"params", "Usage: minformer params"},
        {"train", "Usage: minformer train"},     {"eval", "Usage: minformer eval"},
        {"predict", "Usage: minformer predict"}, {"collapse", "Usage: minformer collapse"}};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        child_args h = {0};
        args_add(&h, helps[i][0], NULL);
        if (helps[i][0][0] != '-' && strcmp(helps[i][0], "help")) args_add(&h, "--help", NULL);
        if (run_expect(&r, NULL, &h, 0, 0)) {
            CHECK(strstr(r.out, helps[i][1]) != NULL, "'minformer %s' does not print '%s'",
                  args_text(&h), helps[i][1]);
            CHECK(r.err[0] == '\0', "'minformer %s' wrote to stderr: %s", args_text(&h), r.err);
        }
        child_result_free(&r);
    }
    /* No command: the usage on stderr, status 2. */
    child_args none = {0};
    if (run_expect(&r, NULL, &none, 0, 2))
        CHECK(strstr(r.err, "Usage: minformer") != NULL, "no command: stderr %s", r.err);
    child_result_free(&r);
}

/* Each line: the arguments, then after '|' a text the one-line error must hold. */
static void expect_usage_errors(const char *const *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char line[512];
        snprintf(line, sizeof line, "%s", cases[i]);
        char *bar = strchr(line, '|');
        *bar = '\0';
        const char *needle = bar + 1;
        child_args a = {0};
        args_split(&a, line);
        child_result r;
        if (run_expect(&r, NULL, &a, 0, 2)) {
            expect_one_error(&r, line, needle);
            CHECK(r.out[0] == '\0', "'%s': a usage error printed to stdout: %s", line, r.out);
        }
        child_result_free(&r);
    }
}

static void test_usage_errors(void)
{
    static const char *const cases[] = {
        "frobnicate|unknown command 'frobnicate'",
        "train --dataset mnist --bogus|--bogus",
        "train --dataset mnist --epochs|--epochs",
        "info --dataset|--dataset",
        "params --dataset|--dataset",
        "eval --checkpoint|--checkpoint",
        "predict --checkpoint|--checkpoint",
        "collapse --checkpoint x.st --out|--out",
        "eval --checkpoint x.st --limit-test 0|--limit-test",
        "eval --checkpoint x.st --batch -5|--batch",
        "train --dataset mnist --dim abc|--dim",
        "train --dataset mnist --dim 0|--dim",
        "train --dataset mnist --layers 1.5|--layers",
        "train --dataset mnist --epochs 0|--epochs",
        "train --dataset mnist --batch 9999999|--batch",
        "train --dataset mnist --lr -1|--lr",
        "train --dataset mnist --lr nan|--lr",
        "train --dataset mnist --lr 1e3x|--lr",
        "train --dataset mnist --seed -3|--seed",
        "train --dataset mnist --dropout 1|--dropout",
        "train --dataset mnist --threads 0|--threads",
        "train --dataset mnist --save-every 0|--save-every",
        "train --dataset mnst|unknown dataset 'mnst'",
        "train --dataset mnist --qk diagonal|--qk 'diagonal'",
        "train --dataset mnist --vo both|--vo 'both'",
        "train --dataset mnist --pool max|--pool 'max'",
        "train --dataset mnist --preset tiny|tiny",
        "train|--dataset is required",
        "train --dataset mnist extra|unexpected argument 'extra'",
        "train --resume x.st --lr 1e-3|--resume",
        "params|--dataset is required",
        "eval|--checkpoint is required",
        "predict --checkpoint x.st|image file",
        "collapse --checkpoint x.st|--out",
        /* The shared options, parsed in one place, say the same everywhere. */
        "eval --checkpoint x.st --threads 0|--threads needs an integer in [1, 1024]",
        "collapse --checkpoint x.st --out y.st --threads 2000|--threads needs an integer in [1, 1024]",
        "attention --checkpoint x.st --threads x|--threads needs an integer in [1, 1024]",
        "experiment quick --threads 0|--threads needs an integer in [1, 1024]",
        "experiment quick --limit-train 0|--limit-train needs an integer",
        "train --dataset mnist --limit-test -1|--limit-test needs an integer",
        "collapse --checkpoint x.st --out y.st --limit-test 0|--limit-test needs an integer",
        "info --dataset mnist --data|missing value: --data",
        "attention --checkpoint x.st --data|missing value: --data",
        /* Missing values are named by the long option in every command. */
        "experiment quick --epochs|missing value: --epochs",
        "experiment quick --only|missing value: --only",
        "plot a.jsonl --out|missing value: --out",
        "attention --checkpoint x.st --index|missing value: --index",
    };
    expect_usage_errors(cases, sizeof cases / sizeof cases[0]);
}

/* The rules of docs/model.md, stated in the message, before any data is read. */
static void test_invalid_model_combinations(void)
{
    static const char *const cases[] = {
        "params --dataset mnist --qk collapsed --heads 4|heads 1",
        "params --dataset mnist --preset minimal --heads 4|heads 1",
        "params --dataset mnist --qk symmetric --heads 2|heads 1",
        "params --dataset mnist --qk cholesky --heads 2|heads 1",
        "params --dataset mnist --vo collapsed --heads 2|heads 1",
        "params --dataset mnist --dim 10 --heads 4|divisible",
        "params --dataset mnist --patch 5|must divide",
        "params --dataset cifar10 --patch 7|must divide",
        "train --dataset mnist --data /nonexistent --qk collapsed --heads 4|heads 1",
        "train --dataset mnist --data /nonexistent --dim 10 --heads 4|divisible",
        "train --dataset mnist --data /nonexistent --patch 5|must divide",
    };
    expect_usage_errors(cases, sizeof cases / sizeof cases[0]);
}

/* ---- params and info ---------------------------------------------------------------------- */

static void test_params_totals(void)
{
    /* docs/model.md, "Measured with minformer params". */
    static const struct {
        const char *args;
        double params;
    } cases[] = {
        {"--dataset mnist", 305034},
        {"--dataset mnist --preset unchanged", 305034},
        {"--dataset mnist --preset unchanged --mlp 0", 105738},
        {"--dataset mnist --preset wqk --mlp 0", 80778},
        {"--dataset mnist --preset minimal --mlp 0", 30858},
        {"--dataset cifar10", 308042},
        {"--dataset cifar10 --preset unchanged --mlp 0", 108746},
        {"--dataset cifar10 --preset wqk --mlp 0", 83786},
        {"--dataset cifar10 --preset minimal --mlp 0", 33866},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        child_args a = {0};
        args_add(&a, "params", NULL);
        args_split(&a, cases[i].args);
        args_add(&a, "--json", NULL);
        child_result r;
        json_line j;
        if (run_expect(&r, NULL, &a, 0, 0) && json_last_line(r.out, &j)) {
            double p = json_number(&j, "params"), base = json_number(&j, "baseline_params");
            CHECK(p == cases[i].params, "params %s: %.0f, expected %.0f", cases[i].args, p,
                  cases[i].params);
            double want_base = strstr(cases[i].args, "cifar") ? 308042 : 305034;
            CHECK(base == want_base, "params %s: baseline %.0f, expected %.0f", cases[i].args, base,
                  want_base);
            char total[64];
            snprintf(total, sizeof total, "%.0f\n", cases[i].params);
            CHECK(strstr(r.out, total) != NULL, "params %s: the table has no total %s", cases[i].args,
                  total);
        }
        json_line_free(&j);
        child_result_free(&r);
    }
}

static void check_info(const char *dataset, int train, int test, int channels, int size)
{
    child_result r;
    json_line j = {0};
    child_args a = {0};
    args_add(&a, "info", "--dataset", dataset, "--json", NULL);
    if (run_expect(&r, NULL, &a, 1, 0) && json_last_line(r.out, &j)) {
        CHECK(json_number(&j, "train") == train && json_number(&j, "test") == test,
              "%s: %g train / %g test images, expected %d / %d", dataset, json_number(&j, "train"),
              json_number(&j, "test"), train, test);
        CHECK(json_number(&j, "channels") == channels && json_number(&j, "image_size") == size,
              "%s: shape", dataset);
        const char *keys[2] = {"train_class_counts", "test_class_counts"};
        int totals[2] = {train, test};
        for (int s = 0; s < 2; s++) {
            const mf_json *c = mf_json_get(&j.root, keys[s]);
            CHECK(c && c->type == MF_JSON_ARRAY && c->count == 10, "%s: %s is not 10 numbers", dataset,
                  keys[s]);
            if (!c || c->type != MF_JSON_ARRAY || c->count != 10) continue;
            double sum = 0;
            for (int k = 0; k < 10; k++) {
                double v = c->u.items[k].u.number.value;
                sum += v;
                /* CIFAR-10 is balanced: 5000 / 1000 per class. */
                if (!strcmp(dataset, "cifar10"))
                    CHECK(v == totals[s] / 10, "cifar10 %s[%d] = %g, expected %d", keys[s], k, v,
                          totals[s] / 10);
            }
            CHECK(sum == totals[s], "%s: %s sum to %g, expected %d", dataset, keys[s], sum, totals[s]);
        }
    }
    json_line_free(&j);
    child_result_free(&r);
}

static void test_info_cifar10(void)
{
    if (!have_cifar) SKIP("no CIFAR-10 in %s", data_dir);
    check_info("cifar10", 50000, 10000, 3, 32);
}

static void test_info_mnist(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    check_info("mnist", 60000, 10000, 1, 28);
}

/* A truncated or missing IDX file: exit 1, one line naming the file. */
static void test_info_bad_idx_file(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    char dir[PATH_MAX], file[PATH_MAX], real[PATH_MAX];
    path_in(dir, "truncated-data");
    static const char *const bases[] = {"t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                        "train-images-idx3-ubyte"};
    for (int i = 0; i < 3; i++) {
        CHECK(make_mnist_links(dir) == 0, "cannot make %s", dir);
        if (mnist_file(dir, bases[i], file) || mnist_file(data_dir, bases[i], real)) {
            CHECK(0, "no %s", bases[i]);
            continue;
        }
        struct stat sb;
        stat(real, &sb);
        unlink(file);
        CHECK(copy_file(real, file, (long)sb.st_size * 2 / 3) == 0, "copy %s", real);
        child_result r;
        child_args a = {0};
        args_add(&a, "info", "--dataset", "mnist", "--data", dir, NULL);
        if (run_expect(&r, NULL, &a, 0, 1)) expect_one_error(&r, "truncated IDX", file);
        CHECK(r.out[0] == '\0', "a failed info printed: %s", r.out);
        child_result_free(&r);
        /* Gone altogether. */
        unlink(file);
        if (run_expect(&r, NULL, &a, 0, 1)) expect_one_error(&r, "missing IDX", bases[i]);
        child_result_free(&r);
    }
    remove_tree(dir);
}

/* ---- train, eval, predict, collapse -------------------------------------------------------- */

static char mnist_ckpt[PATH_MAX]; /* set once test_train_eval has made it */
static char cifar_ckpt[PATH_MAX];

static void test_train_eval(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    char path[PATH_MAX];
    path_in(path, "mnist.safetensors");
    child_result r, e;
    json_line jt = {0}, je = {0};
    if (run_line(&r, 0, "train " MNIST_SMALL " --epochs 2 --save %s --json", path) &&
        json_last_line(r.out, &jt)) {
        CHECK(epochs_printed(r.out) == 2, "train printed %d epoch lines", epochs_printed(r.out));
        CHECK(json_number(&jt, "epochs") == 2 && json_number(&jt, "params") > 0, "train --json: %s",
              r.out);
        char why[512];
        CHECK(checkpoint_epoch(path, why, sizeof why) == 2, "the saved checkpoint: %s", why);
        if (run_line(&e, 0, "eval --checkpoint %s --limit-test 200 --json", path) &&
            json_last_line(e.out, &je)) {
            double ta = json_number(&jt, "test_acc"), ea = json_number(&je, "test_acc");
            CHECK(ta == ea, "eval test_acc %.6f differs from the train run's final %.6f", ea, ta);
            CHECK(fabs(json_number(&je, "test_loss") - json_number(&jt, "test_loss")) < 1e-5,
                  "eval test_loss %.6f, train %.6f", json_number(&je, "test_loss"),
                  json_number(&jt, "test_loss"));
            CHECK(json_number(&je, "count") == 200, "eval counted %g images", json_number(&je, "count"));
            const mf_json *conf = mf_json_get(&je.root, "confusion");
            const mf_json *pc = mf_json_get(&je.root, "per_class_acc");
            double sum = 0, diag = 0;
            for (int t = 0; conf && conf->type == MF_JSON_ARRAY && t < conf->count; t++)
                for (int p = 0; p < conf->u.items[t].count; p++) {
                    sum += conf->u.items[t].u.items[p].u.number.value;
                    if (p == t) diag += conf->u.items[t].u.items[p].u.number.value;
                }
            CHECK(conf && conf->count == 10 && pc && pc->count == 10, "eval: confusion/per_class_acc");
            CHECK(sum == 200 && fabs(diag / 200 - ea) < 1e-6, "confusion sums to %g, diagonal %g", sum,
                  diag);
            CHECK(strstr(e.out, "accuracy") != NULL, "eval's table: %s", e.out);
            text_printf(mnist_ckpt, sizeof mnist_ckpt, "%s", path);
        }
        child_result_free(&e);
        json_line_free(&je);
    }
    child_result_free(&r);
    json_line_free(&jt);

    /* Runtime errors of eval: not a checkpoint, a model of the wrong image shape. */
    char junk[PATH_MAX];
    path_in(junk, "junk.safetensors");
    write_bytes(junk, "not a checkpoint at all", 23);
    if (run_line(&e, 1, "eval --checkpoint %s", junk)) expect_one_error(&e, "eval junk", junk);
    child_result_free(&e);
    if (run_line(&e, 1, "eval --checkpoint %s/missing.safetensors", root))
        expect_one_error(&e, "eval missing", "missing.safetensors");
    child_result_free(&e);
    if (mnist_ckpt[0] && run_line(&e, 2, "eval --checkpoint %s --dataset cifar10", mnist_ckpt))
        expect_one_error(&e, "eval on cifar10", "1x28x28");
    child_result_free(&e);
}

static void test_predict_mnist(void)
{
    if (!mnist_ckpt[0]) SKIP("no MNIST checkpoint (test_train_eval)");
    mf_dataset ds;
    mf_error err;
    if (mf_dataset_load(&ds, MF_MNIST, data_dir, &err)) SKIP("%s", err.message);
    char files[3][PATH_MAX];
    const char *names[3] = {"digit0.pgm", "digit1.pgm", "digit2.png"};
    for (int i = 0; i < 3; i++) path_in(files[i], names[i]);
    write_pnm(files[0], ds.test.images, 28, 28, 1, 0);
    write_pnm(files[1], ds.test.images + 784, 28, 28, 1, 1); /* P2, ASCII */
    child_result r;
    child_args a = {0};
    args_add(&a, "predict", "--checkpoint", mnist_ckpt, "--json", files[0], files[1], NULL);
    if (run_expect(&r, NULL, &a, 0, 0)) {
        CHECK(count_lines(r.out) == 2, "predict printed %d lines for 2 files", count_lines(r.out));
        for (int i = 0; i < 2; i++) {
            json_line j;
            double p = 0, want_p = 0;
            json_nth_line(r.out, i, &j);
            int got = predict_top(&j, &p), want = library_predict(mnist_ckpt, &ds.test, i, &want_p);
            CHECK(got == want && fabs(p - want_p) < 2e-6,
                  "%s: predict says %d (%.6f), the library %d (%.6f)", names[i], got, p, want, want_p);
            json_line_free(&j);
        }
    }
    child_result_free(&r);
    /* Text output: one line per file naming it. */
    child_args t = {0};
    args_add(&t, "predict", "--checkpoint", mnist_ckpt, files[0], NULL);
    if (run_expect(&r, NULL, &t, 0, 0))
        CHECK(count_lines(r.out) == 1 && strstr(r.out, files[0]) && strstr(r.out, "%"),
              "predict text: %s", r.out);
    child_result_free(&r);

    /* Wrong size, wrong channels, not an image: exit 1 with one line naming the file. */
    char small[PATH_MAX], rgb[PATH_MAX], text[PATH_MAX];
    path_in(small, "small.pgm");
    path_in(rgb, "rgb.ppm");
    path_in(text, "notes.pgm");
    write_pnm(small, ds.test.images, 27, 27, 1, 0);
    uint8_t planar[3 * 784];
    for (int c = 0; c < 3; c++) memcpy(planar + c * 784, ds.test.images, 784);
    write_pnm(rgb, planar, 28, 28, 3, 0);
    write_bytes(text, "hello, not an image\n", 20);
    write_png(files[2], planar, 28, 28, 3);
    const struct {
        const char *file, *needle, *what;
    } bad[] = {{small, "27x27", "wrong size"},
               {rgb, "RGB", "wrong channels (PPM)"},
               {files[2], "RGB", "wrong channels (PNG)"},
               {text, text, "not an image"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        child_args b = {0};
        args_add(&b, "predict", "--checkpoint", mnist_ckpt, bad[i].file, NULL);
        if (run_expect(&r, NULL, &b, 0, 1)) {
            expect_one_error(&r, bad[i].what, bad[i].needle);
            expect_one_error(&r, bad[i].what, bad[i].file);
        }
        CHECK(r.out[0] == '\0', "%s: predict printed %s", bad[i].what, r.out);
        child_result_free(&r);
    }
    /* A bad file among good ones: the good ones are still classified, status 1. */
    child_args mixed = {0};
    args_add(&mixed, "predict", "--checkpoint", mnist_ckpt, files[0], small, files[1], NULL);
    if (run_expect(&r, NULL, &mixed, 0, 1))
        CHECK(count_lines(r.out) == 2 && count_lines(r.err) == 1, "mixed files: stdout %s stderr %s",
              r.out, r.err);
    child_result_free(&r);
    mf_dataset_free(&ds);
}

static void test_predict_cifar10(void)
{
    if (!have_cifar) SKIP("no CIFAR-10 in %s", data_dir);
    child_result r;
    path_in(cifar_ckpt, "cifar.safetensors");
    if (!run_line(&r, 0,
                  "train --dataset cifar10 --dim 16 --layers 1 --mlp 0 --limit-train 100 "
                  "--limit-test 100 --batch 50 --epochs 1 --threads 1 --save %s",
                  cifar_ckpt)) {
        cifar_ckpt[0] = '\0';
        child_result_free(&r);
        return;
    }
    child_result_free(&r);
    char batch[PATH_MAX];
    text_printf(batch, sizeof batch, "%s/cifar-10-batches-bin/test_batch.bin", data_dir);
    const char *paths[1] = {batch};
    mf_split test;
    mf_error err;
    if (mf_cifar_load(paths, 1, &test, &err)) {
        CHECK(0, "%s", err.message);
        return;
    }
    char ppm[PATH_MAX], png[PATH_MAX], grey[PATH_MAX];
    path_in(ppm, "cifar0.ppm");
    path_in(png, "cifar1.png");
    path_in(grey, "cifar-grey.pgm");
    write_pnm(ppm, test.images, 32, 32, 3, 0);
    write_png(png, test.images + 3072, 32, 32, 3);
    write_pnm(grey, test.images, 32, 32, 1, 0);
    child_args a = {0};
    args_add(&a, "predict", "--checkpoint", cifar_ckpt, "--json", ppm, png, NULL);
    if (run_expect(&r, NULL, &a, 0, 0)) {
        for (int i = 0; i < 2; i++) {
            json_line j;
            double p = 0, want_p = 0;
            json_nth_line(r.out, i, &j);
            int got = predict_top(&j, &p), want = library_predict(cifar_ckpt, &test, i, &want_p);
            CHECK(got == want && fabs(p - want_p) < 2e-6,
                  "%s: predict says %d (%.6f), library %d (%.6f)", i ? png : ppm, got, p, want, want_p);
            json_line_free(&j);
        }
    }
    child_result_free(&r);
    child_args g = {0};
    args_add(&g, "predict", "--checkpoint", cifar_ckpt, grey, NULL);
    if (run_expect(&r, NULL, &g, 0, 1)) expect_one_error(&r, "grey image, RGB model", "grey");
    child_result_free(&r);
    mf_split_free(&test);
}

static void test_collapse(void)
{
    if (!mnist_ckpt[0]) SKIP("no MNIST checkpoint (test_train_eval)");
    char out[PATH_MAX];
    path_in(out, "collapsed.safetensors");
    child_result r, e1, e2;
    json_line j = {0}, a1 = {0}, a2 = {0};
    if (run_line(&r, 0, "collapse --checkpoint %s --out %s --limit-test 200 --json", mnist_ckpt, out) &&
        json_last_line(r.out, &j)) {
        double images = json_number(&j, "images"), same = json_number(&j, "identical_predictions");
        CHECK(images == 200 && same == images, "collapse: %g of %g predictions identical", same, images);
        CHECK(json_number(&j, "params_after") < json_number(&j, "params_before"),
              "collapse saved no parameters: %s", r.out);
        CHECK(json_number(&j, "test_acc_before") == json_number(&j, "test_acc_after"),
              "collapse changed the accuracy: %s", r.out);
        char why[512];
        CHECK(checkpoint_epoch(out, why, sizeof why) >= 0, "the collapsed model: %s", why);
        /* The collapsed file evaluates to the same accuracy. */
        if (run_line(&e1, 0, "eval --checkpoint %s --limit-test 200 --json", mnist_ckpt) &&
            run_line(&e2, 0, "eval --checkpoint %s --limit-test 200 --json", out) &&
            json_last_line(e1.out, &a1) && json_last_line(e2.out, &a2))
            CHECK(json_number(&a1, "test_acc") == json_number(&a2, "test_acc"),
                  "eval: %.6f before collapsing, %.6f after", json_number(&a1, "test_acc"),
                  json_number(&a2, "test_acc"));
        child_result_free(&e1);
        child_result_free(&e2);
        json_line_free(&a1);
        json_line_free(&a2);
        /* Collapsing again: nothing left to collapse. */
        char again[PATH_MAX];
        path_in(again, "collapsed-twice.safetensors");
        if (run_line(&e1, 2, "collapse --checkpoint %s --out %s", out, again))
            expect_one_error(&e1, "collapse twice", "nothing to collapse");
        CHECK(!file_exists(again), "a refused collapse wrote %s", again);
        child_result_free(&e1);
    }
    json_line_free(&j);
    child_result_free(&r);

    /* Several heads: refused with the rule, status 2, nothing written. */
    char heads[PATH_MAX], hout[PATH_MAX];
    path_in(heads, "heads4.safetensors");
    path_in(hout, "heads4-collapsed.safetensors");
    if (run_line(&r, 0,
                 "train --dataset mnist --dim 16 --layers 1 --mlp 0 --heads 4 --limit-train 50 "
                 "--limit-test 50 --batch 50 --epochs 1 --threads 1 --save %s",
                 heads)) {
        child_result_free(&r);
        if (run_line(&r, 2, "collapse --checkpoint %s --out %s", heads, hout))
            expect_one_error(&r, "collapse 4 heads", "4 heads");
        CHECK(!file_exists(hout), "a refused collapse wrote %s", hout);
    }
    child_result_free(&r);
}

/* ---- signals and kills --------------------------------------------------------------------- */

static char reference[PATH_MAX]; /* SIGNAL_RUN without interruption */

static int make_reference(void)
{
    if (reference[0]) return 1;
    char path[PATH_MAX];
    path_in(path, "reference.safetensors");
    child_result r;
    int ok = run_line(&r, 0, "train " SIGNAL_RUN " --save %s", path);
    child_result_free(&r);
    if (ok) text_printf(reference, sizeof reference, "%s", path);
    return ok;
}

/* Waits until the child's stdout shows "epoch k/" (or it ends): 1 if seen. */
static int wait_for_epoch_line(child_proc *p, int k, double timeout)
{
    double t0 = child_now();
    while (child_now() - t0 < timeout) {
        char *out = read_text(p->out_path, NULL);
        int seen = out && epochs_printed(out) >= k;
        free(out);
        if (seen) return 1;
        if (child_ended(p)) return 0;
        child_sleep(0.001);
    }
    return 0;
}

/* Resumes path to the end of SIGNAL_RUN (threads differ on purpose: results
 * do not depend on them) and compares the bytes with the reference. */
static void resume_and_compare(const char *label, const char *path)
{
    child_result r;
    char why[512];
    int epoch = checkpoint_epoch(path, why, sizeof why);
    if (epoch < 0) {
        CHECK(0, "%s: %s does not load: %s", label, path, why);
        return;
    }
    if (epoch < SIGNAL_EPOCHS) {
        if (run_line(&r, 0, "train --resume %s --threads 2", path))
            CHECK(strstr(r.out, "resuming") && strstr(r.out, path), "%s: resume said %s", label, r.out);
        child_result_free(&r);
    }
    CHECK(same_file(path, reference), "%s: the resumed run's checkpoint differs from the "
          "uninterrupted run's (cmp %s %s)", label, path, reference);
}

/* Signals the run delay seconds after its first epoch line: with no delay it
 * usually lands in the save after epoch 1 (the stop between epochs), with a
 * few steps' delay inside epoch 2 (the stop between steps). */
static void check_stop_signal(int sig, int want_status, double delay)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    if (!make_reference()) return;
    char dir[PATH_MAX], path[PATH_MAX];
    path_in(dir, sig == SIGINT ? "sigint" : "sigterm");
    mkdir(dir, 0755);
    text_printf(path, sizeof path, "%s/run.safetensors", dir);
    child_args a = {0};
    args_split(&a, "train " SIGNAL_RUN);
    args_add(&a, "--data", data_dir, "--save", path, NULL);
    child_proc p;
    child_result r;
    CHECK(child_start(&p, NULL, &a) == 0, "fork");
    CHECK(wait_for_epoch_line(&p, 1, TIMEOUT), "the run never finished its first epoch");
    child_sleep(delay);
    kill(p.pid, sig);
    child_wait(&p, TIMEOUT, &r);
    CHECK(r.status == want_status && r.signal == 0,
          "signal %d: status %d (signal %d), expected exit %d; stderr %s", sig, r.status, r.signal,
          want_status, r.err);
    char hint[2 * PATH_MAX + 64];
    text_printf(hint, sizeof hint, "resume with: minformer train --resume %s --data %s\n", path,
                data_dir);
    CHECK(strstr(r.err, hint) != NULL, "signal %d: no resume hint in: %s", sig, r.err);
    CHECK(strstr(r.err, "interrupted") != NULL, "signal %d: stderr %s", sig, r.err);
    CHECK(count_prefixed(dir, "run.safetensors.tmp") == 0, "signal %d left a temporary file", sig);
    child_result_free(&r);
    /* Where it stopped: usually inside epoch 2 (a mid-epoch state). */
    mf_model m;
    mf_checkpoint_info info;
    mf_error err;
    if (mf_checkpoint_load(path, &m, &info, &err) == MF_OK) {
        CHECK(info.has_optimizer && info.has_train_state && info.state.step >= 6,
              "signal %d: the checkpoint cannot resume (step %ld)", sig, info.state.step);
        if (verbose)
            fprintf(stderr, "signal %d: stopped after epoch %d + %d batches (step %ld)\n", sig,
                    info.state.epoch, info.state.batch_in_epoch, info.state.step);
        mf_model_free(&m);
    }
    resume_and_compare(sig == SIGINT ? "SIGINT" : "SIGTERM", path);
}

/* An epoch of SIGNAL_RUN takes about 8 ms on a current core: 30 ms after the
 * first epoch line the whole run could be over before the signal. */
static void test_sigint_then_resume(void) { check_stop_signal(SIGINT, 130, 0.003); }
static void test_sigterm_then_resume(void) { check_stop_signal(SIGTERM, 143, 0.0); }

/* Without --save an interrupted run saves minformer-interrupted.safetensors in
 * the working directory. */
static void test_sigint_without_save(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    if (!make_reference()) return;
    char dir[PATH_MAX], path[PATH_MAX];
    path_in(dir, "nosave");
    mkdir(dir, 0755);
    text_printf(path, sizeof path, "%s/minformer-interrupted.safetensors", dir);
    child_args a = {0};
    args_split(&a, "train " SIGNAL_RUN);
    args_add(&a, "--data", data_dir, NULL);
    child_proc p;
    child_result r;
    CHECK(child_start(&p, dir, &a) == 0, "fork");
    CHECK(wait_for_epoch_line(&p, 1, TIMEOUT), "the run never finished its first epoch");
    kill(p.pid, SIGINT);
    child_wait(&p, TIMEOUT, &r);
    CHECK(r.status == 130 && strstr(r.err, "--resume minformer-interrupted.safetensors --data "),
          "status %d, stderr %s", r.status, r.err);
    child_result_free(&r);
    resume_and_compare("SIGINT without --save", path);
}

enum { KILL_AFTER_START, KILL_AFTER_EPOCH, KILL_IN_SAVE };

/* Starts SIGNAL_RUN with --save, SIGKILLs it at the moment asked for, then
 * checks what is on disk and that resuming from it ends exactly like the
 * uninterrupted run. Returns 1 when the kill landed inside a save (a
 * temporary file was left behind). */
static int kill_once(const char *label, int mode, int k, double delay)
{
    /* On a disk a save takes long enough (fsync) for the poll below to catch it. */
    char dir[PATH_MAX], path[PATH_MAX];
    text_printf(dir, sizeof dir, "%s/kill", disk_root);
    remove_tree(dir);
    mkdir(dir, 0755);
    text_printf(path, sizeof path, "%s/run.safetensors", dir);
    child_args a = {0};
    args_split(&a, "train " SIGNAL_RUN);
    args_add(&a, "--data", data_dir, "--save", path, NULL);
    child_proc p;
    child_result r;
    if (child_start(&p, NULL, &a)) {
        CHECK(0, "fork");
        return 0;
    }
    if (mode == KILL_AFTER_START) {
        child_sleep(delay);
    } else if (mode == KILL_AFTER_EPOCH) {
        wait_for_epoch_line(&p, k, TIMEOUT);
        child_sleep(delay);
    } else {
        /* Save k writes PATH.tmp-PID-k: kill as soon as it exists. Short
         * sleeps rather than a busy loop: a task that sleeps is woken at
         * once, a spinning one waits its turn on a busy machine. */
        char tmp[PATH_MAX + 64];
        text_printf(tmp, sizeof tmp, "%s.tmp-%ld-%d", path, (long)p.pid, k);
        double t0 = child_now();
        while (!file_exists(tmp) && child_now() - t0 < TIMEOUT && !child_ended(&p))
            child_sleep(0.0002);
    }
    kill(p.pid, SIGKILL);
    child_wait(&p, TIMEOUT, &r);
    int printed = epochs_printed(r.out), temps = count_prefixed(dir, "run.safetensors.tmp");
    char why[512] = "";
    int epoch = file_exists(path) ? checkpoint_epoch(path, why, sizeof why) : -2;
    CHECK(epoch != -1, "%s: after SIGKILL the checkpoint does not load: %s", label, why);
    /* Saves follow the epoch line: at most the epoch being saved is lost. */
    if (epoch >= 0)
        CHECK(epoch == printed || epoch == printed - 1,
              "%s: the checkpoint holds epoch %d, the run had printed epoch %d", label, epoch, printed);
    else
        CHECK(printed <= 1, "%s: no checkpoint, but the run had printed epoch %d", label, printed);
    if (r.signal != SIGKILL) CHECK(r.status == 0, "%s: status %d: %s", label, r.status, r.err);
    if (verbose)
        fprintf(stderr, "%s: printed %d, checkpoint epoch %d, %d temporary files\n", label, printed,
                epoch, temps);
    child_result_free(&r);
    if (epoch == -1) return 0;
    if (epoch == -2) {
        /* Killed before the first save finished: start again. */
        CHECK(run_line(&r, 0, "train " SIGNAL_RUN " --save %s", path), "%s: fresh run", label);
        child_result_free(&r);
        CHECK(same_file(path, reference), "%s: a fresh run differs from the reference", label);
    } else {
        resume_and_compare(label, path);
    }
    /* A stray temporary file never replaces the checkpoint. */
    CHECK(count_prefixed(dir, "run.safetensors.tmp") == temps, "%s: temporary files changed", label);
    return temps > 0;
}

static void test_sigkill_at_varied_moments(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    if (!make_reference()) return;
    kill_once("kill while loading data", KILL_AFTER_START, 0, 0.02);
    kill_once("kill after epoch 1 + 2 ms", KILL_AFTER_EPOCH, 1, 0.002);
    kill_once("kill after epoch 2 + 15 ms", KILL_AFTER_EPOCH, 2, 0.015);
    kill_once("kill after epoch 4 + 40 ms", KILL_AFTER_EPOCH, 4, 0.040);
    /* Inside saves 0, 2 and 4 (the last), then 1 and 3 if none was caught. */
    static const int saves[SIGNAL_EPOCHS] = {0, 2, 4, 1, 3};
    int hits = 0, tries = 0;
    for (; tries < SIGNAL_EPOCHS && (tries < 3 || hits == 0); tries++) {
        char label[64];
        snprintf(label, sizeof label, "kill inside save %d", saves[tries]);
        hits += kill_once(label, KILL_IN_SAVE, saves[tries], 0.0);
    }
    /* A kill has to land inside a save for the test to mean something; on a
     * RAM disk a save is over in microseconds, so there it is only reported. */
    if (disk_is_ram)
        fprintf(stderr, "note: %s is a tmpfs; %d of %d kills landed inside a save\n", disk_root, hits,
                tries);
    else
        CHECK(hits > 0, "none of %d kills landed inside a save (no temporary file was left)", tries);
}

/* ---- faults ------------------------------------------------------------------------------ */

/* lr 1e30: one message naming epoch and step, status 1, the last good checkpoint intact. */
static void test_numeric_fault(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    char path[PATH_MAX], before[PATH_MAX], resumable[PATH_MAX], rbefore[PATH_MAX];
    path_in(path, "numeric.safetensors");
    path_in(before, "numeric-before.safetensors");
    path_in(resumable, "numeric-resume.safetensors");
    path_in(rbefore, "numeric-resume-before.safetensors");
    child_result r;
    if (!run_line(&r, 0, "train " MNIST_SMALL " --epochs 1 --save %s", path)) {
        child_result_free(&r);
        return;
    }
    child_result_free(&r);
    copy_file(path, before, -1);
    if (run_line(&r, 1, "train " MNIST_SMALL " --epochs 2 --lr 1e30 --save %s", path)) {
        expect_one_error(&r, "lr 1e30", "non-finite");
        expect_one_error(&r, "lr 1e30", "epoch 1, step ");
    }
    CHECK(same_file(path, before), "a diverged run changed the last good checkpoint");
    CHECK(count_prefixed(root, "numeric.safetensors.tmp") == 0, "temporary file left");
    child_result_free(&r);

    /* Diverging in the second epoch of a resumed run: the checkpoint of epoch 1 stays. */
    mf_model m;
    mf_checkpoint_info info;
    mf_error err;
    if (mf_checkpoint_load(path, &m, &info, &err)) {
        CHECK(0, "%s", err.message);
        return;
    }
    info.opts.lr = 1e29f; /* the metadata holds at most 1e30 */
    info.opts.epochs = 3;
    CHECK(mf_checkpoint_save(resumable, &m, &info, 1, &err) == MF_OK, "%s", err.message);
    mf_model_free(&m);
    copy_file(resumable, rbefore, -1);
    if (run_line(&r, 1, "train --resume %s", resumable)) {
        const char *at = strstr(r.err, "epoch 2, step ");
        long step = at ? strtol(at + 14, NULL, 10) : -1;
        expect_one_error(&r, "resumed lr 1e30", "non-finite");
        CHECK(step > 10 && step <= 20, "the error names step %ld, expected one of epoch 2 (11..20): %s",
              step, r.err);
        CHECK(epochs_printed(r.out) == 0, "a diverged epoch was reported: %s", r.out);
    }
    CHECK(same_file(resumable, rbefore), "a diverged resumed run changed its checkpoint");
    child_result_free(&r);
}

/* --save into a missing directory or onto a directory: a clear error, and
 * before any training (nothing is lost to a typo in the path). */
static void test_save_bad_path(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    char path[PATH_MAX], dir[PATH_MAX];
    child_result r;
    path_in(path, "no-such-dir/run.safetensors");
    if (run_line(&r, 1, "train " MNIST_TINY " --epochs 1 --save %s", path)) {
        expect_one_error(&r, "missing directory", path);
        expect_one_error(&r, "missing directory", "No such file or directory");
        CHECK(epochs_printed(r.out) == 0, "trained before finding out the path is bad: %s", r.out);
    }
    path_in(dir, "no-such-dir");
    CHECK(!file_exists(dir), "created %s", dir);
    child_result_free(&r);

    path_in(dir, "a-directory");
    mkdir(dir, 0755);
    if (run_line(&r, 1, "train " MNIST_TINY " --epochs 1 --save %s", dir)) {
        expect_one_error(&r, "onto a directory", dir);
        CHECK(epochs_printed(r.out) == 0, "trained before finding out the path is bad: %s", r.out);
    }
    struct stat sb;
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode), "the directory is gone");
    CHECK(count_prefixed(root, "a-directory.tmp") == 0, "temporary file left");
    child_result_free(&r);

#ifdef __linux__
    /* A device node (a private /dev/null): the save's rename would replace it. */
    char node[PATH_MAX];
    path_in(node, "null-device");
    if (mknod(node, S_IFCHR | 0666, makedev(1, 3))) {
        fprintf(stderr, "note: cannot make a device node (%s); that case is left out\n",
                strerror(errno));
        return;
    }
    if (run_line(&r, 1, "train " MNIST_TINY " --epochs 1 --save %s", node)) {
        expect_one_error(&r, "onto a device", "not a regular file");
        CHECK(epochs_printed(r.out) == 0, "trained before finding out the path is bad: %s", r.out);
    }
    child_result_free(&r);
    if (mnist_ckpt[0] && run_line(&r, 1, "collapse --checkpoint %s --out %s", mnist_ckpt, node))
        expect_one_error(&r, "collapse onto a device", "not a regular file");
    child_result_free(&r);
    CHECK(lstat(node, &sb) == 0 && S_ISCHR(sb.st_mode), "the device node was replaced");
    unlink(node);
#endif
}

/* A full disk (a 64 KiB tmpfs, where this runs as root): a clear error, no
 * partial file, the previous checkpoint intact. */
static void test_save_disk_full(void)
{
#ifdef __linux__
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    char dir[PATH_MAX], path[PATH_MAX], before[PATH_MAX];
    path_in(dir, "tiny-disk");
    mkdir(dir, 0755);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=64k"))
        SKIP("cannot mount a tmpfs here (%s)", strerror(errno));
    text_printf(path, sizeof path, "%s/run.safetensors", dir);
    path_in(before, "tiny-disk-before.safetensors");
    child_result r;
    /* A small model fits (about 20 KB); the 2-block one (about 240 KB) does not. */
    if (run_line(&r, 0, "train " MNIST_TINY " --epochs 1 --save %s", path)) {
        copy_file(path, before, -1);
        child_result_free(&r);
        if (run_line(&r, 1, "train " MNIST_SMALL " --epochs 1 --save %s", path)) {
            expect_one_error(&r, "disk full", path);
            expect_one_error(&r, "disk full", "No space left on device");
        }
        CHECK(same_file(path, before), "a failed save changed the previous checkpoint");
        CHECK(count_prefixed(dir, "run.safetensors.tmp") == 0, "a failed save left a temporary file");
        char why[512];
        CHECK(checkpoint_epoch(path, why, sizeof why) == 1, "the old checkpoint: %s", why);
    }
    child_result_free(&r);
    umount2(dir, MNT_DETACH);
#else
    SKIP("tmpfs mounting is Linux only");
#endif
}

/* Data files that are truncated, disappear or change between runs. */
static void test_data_changes_between_runs(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    char dir[PATH_MAX], path[PATH_MAX], before[PATH_MAX], file[PATH_MAX], real[PATH_MAX];
    path_in(dir, "changing-data");
    path_in(path, "changing.safetensors");
    path_in(before, "changing-before.safetensors");
    CHECK(make_mnist_links(dir) == 0, "cannot make %s", dir);
    child_result r;
    child_args a = {0};
    args_split(&a, "train " MNIST_SMALL " --epochs 1");
    args_add(&a, "--data", dir, "--save", path, NULL);
    if (!run_expect(&r, NULL, &a, 0, 0)) {
        child_result_free(&r);
        return;
    }
    child_result_free(&r);
    copy_file(path, before, -1);

    static const char *const bases[] = {"t10k-labels-idx1-ubyte", "train-images-idx3-ubyte"};
    for (int i = 0; i < 2; i++) {
        if (mnist_file(dir, bases[i], file) || mnist_file(data_dir, bases[i], real)) continue;
        struct stat sb;
        stat(real, &sb);
        for (int gone = 0; gone < 2; gone++) {
            unlink(file);
            if (!gone) copy_file(real, file, (long)sb.st_size - 100);
            const char *what = gone ? "a data file removed" : "a data file truncated";
            child_args e = {0}, t = {0};
            args_add(&e, "eval", "--checkpoint", path, "--data", dir, NULL);
            if (run_expect(&r, NULL, &e, 0, 1)) expect_one_error(&r, what, bases[i]);
            child_result_free(&r);
            args_add(&t, "train", "--resume", path, "--epochs", "2", "--data", dir, NULL);
            if (run_expect(&r, NULL, &t, 0, 1)) expect_one_error(&r, what, bases[i]);
            CHECK(epochs_printed(r.out) == 0, "%s: trained anyway", what);
            child_result_free(&r);
            CHECK(same_file(path, before), "%s: the checkpoint changed", what);
        }
        unlink(file);
        CHECK(symlink(real, file) == 0, "restore %s", file);
    }

    /* Same size, different content: the labels of the first two training
     * images changed. A resumed run must notice (the checkpoint's data
     * fingerprint) rather than continue on other data: a usage error (2)
     * naming the setting that differs, as for every identity mismatch. */
    if (mnist_file(dir, "train-labels-idx1-ubyte", file) || strstr(file, ".gz")) {
        remove_tree(dir);
        return;
    }
    mnist_file(data_dir, "train-labels-idx1-ubyte", real);
    size_t len;
    char *bytes = read_text(real, &len);
    CHECK(bytes && len > 10, "read %s", real);
    if (bytes && len > 10) {
        bytes[8] = (char)((bytes[8] + 1) % 10);
        bytes[9] = (char)((bytes[9] + 3) % 10);
        unlink(file);
        write_bytes(file, bytes, len);
        child_args t = {0};
        args_add(&t, "train", "--resume", path, "--epochs", "2", "--data", dir, NULL);
        if (run_expect(&r, NULL, &t, 0, 2))
            expect_one_error(&r, "changed labels", "made with other settings (data: stored ");
        CHECK(epochs_printed(r.out) == 0, "changed labels: trained anyway");
        CHECK(same_file(path, before), "changed labels: the checkpoint changed");
        child_result_free(&r);
    }
    free(bytes);
    remove_tree(dir);
}

/* ---- paths, data directories, class counts, closed output --------------------------------- */

/* A checkpoint made through the library, without data or training: a 1-block
 * MNIST model of width 16 with `classes` outputs and separate Q/K/V/O (so
 * collapse has something to do), with its AdamW moments (resumable). */
static int library_checkpoint(const char *path, int classes)
{
    mf_config cfg;
    mf_config_default(&cfg, 28, 1, classes);
    cfg.dim = 16;
    cfg.layers = 1;
    cfg.mlp_ratio = 0;
    mf_model m;
    mf_error err;
    mf_checkpoint_info info;
    if (mf_model_create(&m, &cfg, &err)) {
        CHECK(0, "mf_model_create: %s", err.message);
        return -1;
    }
    mf_model_init_weights(&m, 5);
    mf_checkpoint_info_init(&info);
    info.mean[0] = 0.1307f;
    info.std[0] = 0.3081f;
    mf_status st = mf_checkpoint_save(path, &m, &info, 1, &err);
    CHECK(st == MF_OK, "mf_checkpoint_save %s: %s", path, err.message);
    mf_model_free(&m);
    return st == MF_OK ? 0 : -1;
}

/* Entries of dir other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* An empty string for any path is a usage error naming the option, before any
 * work: nothing printed, nothing written (the commands run in an empty
 * directory, where "" must not turn into ./data or a file of their own). */
static void test_empty_paths(void)
{
    char ckpt[PATH_MAX], cwd[PATH_MAX];
    path_in(ckpt, "empty-paths.safetensors");
    path_in(cwd, "empty-paths-cwd");
    mkdir(cwd, 0755);
    if (library_checkpoint(ckpt, 10)) return;
    /* "@" stands for the checkpoint, "" is the empty argument; the last field
     * is what the message must mention. */
    static const char *const cases[][9] = {
        {"eval", "--checkpoint", "", NULL, NULL, NULL, NULL, NULL, "--checkpoint"},
        {"eval", "--checkpoint", "@", "--data", "", NULL, NULL, NULL, "--data"},
        {"predict", "--checkpoint", "", "digit.png", NULL, NULL, NULL, NULL, "--checkpoint"},
        {"predict", "--checkpoint", "@", "", NULL, NULL, NULL, NULL, "an image file"},
        {"collapse", "--checkpoint", "", "--out", "c.safetensors", NULL, NULL, NULL, "--checkpoint"},
        {"collapse", "--checkpoint", "@", "--out", "", NULL, NULL, NULL, "--out"},
        {"collapse", "--checkpoint", "@", "--out", "c.safetensors", "--data", "", NULL, "--data"},
        {"plot", "--out", "", "log.jsonl", NULL, NULL, NULL, NULL, "--out"},
        {"plot", "--out", "p.png", "", NULL, NULL, NULL, NULL, "a log file"},
        {"attention", "--checkpoint", "", NULL, NULL, NULL, NULL, NULL, "--checkpoint"},
        {"attention", "--checkpoint", "@", "--out", "", NULL, NULL, NULL, "--out"},
        {"attention", "--checkpoint", "@", "--data", "", NULL, NULL, NULL, "--data"},
        {"info", "--dataset", "mnist", "--data", "", NULL, NULL, NULL, "--data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        child_args a = {0};
        for (int k = 0; k < 8 && cases[i][k]; k++)
            args_add(&a, strcmp(cases[i][k], "@") ? cases[i][k] : ckpt, NULL);
        char what[256];
        text_printf(what, sizeof what, "%s (an empty %s)", args_text(&a), cases[i][8]);
        child_result r;
        if (run_expect(&r, cwd, &a, 0, 2)) {
            expect_one_error(&r, what, cases[i][8]);
            expect_one_error(&r, what, "empty");
        }
        CHECK(r.out[0] == '\0', "%s: printed %s", what, r.out);
        CHECK(count_entries(cwd) == 0, "%s: wrote into the working directory", what);
        child_result_free(&r);
    }
    remove_tree(cwd);
}

/* A data directory that is a file or a symlink loop is not fixed by fetching
 * the data: the message says what is wrong instead of "run make data". */
static void test_data_dir_errors(void)
{
    char file[PATH_MAX], loop[PATH_MAX], missing[PATH_MAX], ckpt[PATH_MAX];
    path_in(file, "data-is-a-file");
    path_in(loop, "data-loop");
    path_in(missing, "no-such-data");
    path_in(ckpt, "data-dir.safetensors");
    write_bytes(file, "not a directory\n", 16);
    unlink(loop);
    CHECK(symlink(loop, loop) == 0, "symlink %s: %s", loop, strerror(errno));
    if (library_checkpoint(ckpt, 10)) return;
    const struct {
        const char *dir, *needle;
    } cases[] = {{file, "not a directory"}, {loop, strerror(ELOOP)}, {missing, "make data"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int cmd = 0; cmd < 2; cmd++) {
            child_args a = {0};
            if (cmd) args_add(&a, "eval", "--checkpoint", ckpt, "--data", cases[i].dir, NULL);
            else args_add(&a, "info", "--dataset", "mnist", "--data", cases[i].dir, NULL);
            child_result r;
            if (run_expect(&r, NULL, &a, 0, 1)) {
                expect_one_error(&r, args_text(&a), cases[i].dir);
                expect_one_error(&r, args_text(&a), cases[i].needle);
                if (cases[i].dir != missing)
                    CHECK(!strstr(r.err, "make data"), "%s: fetching would not help: %s",
                          args_text(&a), r.err);
            }
            child_result_free(&r);
        }
    }
    unlink(file);
    unlink(loop);
}

/* A 2-class head used with a 10-class dataset: refused with both counts, not
 * evaluated with labels past the logits. */
static void test_class_count_mismatch(void)
{
    char ckpt[PATH_MAX], out[PATH_MAX], png[PATH_MAX], img[PATH_MAX];
    path_in(ckpt, "two-classes.safetensors");
    path_in(out, "two-classes-collapsed.safetensors");
    path_in(png, "two-classes.png");
    path_in(img, "two-classes-digit.pgm");
    uint8_t pixels[784] = {0};
    write_pnm(img, pixels, 28, 28, 1, 0);
    if (library_checkpoint(ckpt, 2)) return;
    const char *const lines[][10] = {
        {"eval", "--checkpoint", ckpt, "--limit-test", "100", "--data", data_dir, NULL},
        {"predict", "--checkpoint", ckpt, img, NULL},
        {"attention", "--checkpoint", ckpt, "--out", png, "--data", data_dir, NULL},
        {"collapse", "--checkpoint", ckpt, "--out", out, "--limit-test", "100", "--data", data_dir,
         NULL},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        child_args a = {0};
        for (int k = 0; lines[i][k]; k++) args_add(&a, lines[i][k], NULL);
        child_result r;
        if (run_expect(&r, NULL, &a, 0, 2)) {
            expect_one_error(&r, args_text(&a), "2 classes");
            expect_one_error(&r, args_text(&a), "10");
        }
        CHECK(r.out[0] == '\0', "%s: printed %s", args_text(&a), r.out);
        child_result_free(&r);
    }
    CHECK(!file_exists(out) && !file_exists(png), "a refused command wrote its output");
}

/* collapse --out naming its own input (the same path, another spelling, a
 * hard or symbolic link) would replace a resumable checkpoint with the
 * collapsed model: refused before any work, the input byte for byte as it
 * was. A bad OUT is found before the work too. */
static void test_collapse_out_is_input(void)
{
    char dir[PATH_MAX], in[PATH_MAX], copy[PATH_MAX], hard[PATH_MAX], soft[PATH_MAX],
        nodir[PATH_MAX];
    path_in(dir, "collapse-onto-input");
    path_in(copy, "collapse-onto-input.safetensors");
    text_printf(in, sizeof in, "%s/run.safetensors", dir);
    text_printf(hard, sizeof hard, "%s/hard.safetensors", dir);
    text_printf(soft, sizeof soft, "%s/soft.safetensors", dir);
    text_printf(nodir, sizeof nodir, "%s/no-such-dir/out.safetensors", dir);
    if (library_checkpoint(copy, 10)) return;
    const struct {
        const char *cwd, *in, *out, *what;
    } cases[] = {{NULL, in, in, "the same path"},
                 {dir, "run.safetensors", "./run.safetensors", "another spelling"},
                 {NULL, in, hard, "a hard link"},
                 {NULL, in, soft, "a symbolic link"},
                 {NULL, hard, in, "the input a hard link"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* Afresh for each case, so that one overwritten input cannot hide the next. */
        remove_tree(dir);
        mkdir(dir, 0755);
        CHECK(copy_file(copy, in, -1) == 0 && link(in, hard) == 0 &&
                  symlink("run.safetensors", soft) == 0,
              "cannot set up %s: %s", dir, strerror(errno));
        child_args a = {0};
        args_add(&a, "collapse", "--checkpoint", cases[i].in, "--out", cases[i].out,
                 "--limit-test", "100", NULL);
        child_result r;
        if (run_expect(&r, cases[i].cwd, &a, 1, 2)) expect_one_error(&r, cases[i].what, "same file");
        CHECK(r.out[0] == '\0', "%s: collapse worked first: %s", cases[i].what, r.out);
        CHECK(same_file(in, copy) && same_file(hard, copy), "%s: the input checkpoint changed",
              cases[i].what);
        struct stat sb;
        CHECK(lstat(soft, &sb) == 0 && S_ISLNK(sb.st_mode), "%s: the symbolic link was replaced",
              cases[i].what);
        child_result_free(&r);
    }

    const struct {
        const char *out, *needle;
    } bad[] = {{nodir, "No such file or directory"}, {dir, "it is a directory"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        child_args a = {0};
        args_add(&a, "collapse", "--checkpoint", copy, "--out", bad[i].out, "--limit-test", "100",
                 NULL);
        child_result r;
        if (run_expect(&r, NULL, &a, 1, 1)) {
            expect_one_error(&r, args_text(&a), bad[i].out);
            expect_one_error(&r, args_text(&a), bad[i].needle);
        }
        CHECK(r.out[0] == '\0', "%s: collapse worked before finding out: %s", args_text(&a), r.out);
        child_result_free(&r);
    }
    remove_tree(dir);
}

/* Runs the binary with stdout on fd and stderr captured. SIGPIPE is put back
 * to its default in the child, so that only minformer's own handling keeps
 * it alive (the test runner might ignore it). */
static int run_with_stdout(child_result *r, int fd, const child_args *a)
{
    child_proc p;
    memset(&p, 0, sizeof p);
    int id = child_serial++;
    text_printf(p.out_path, sizeof p.out_path, "%s/child-%d.none", child_tmp, id);
    text_printf(p.err_path, sizeof p.err_path, "%s/child-%d.err", child_tmp, id);
    text_printf(p.cmd, sizeof p.cmd, "minformer %s", args_text(a));
    const char *argv[130];
    argv[0] = child_bin;
    for (int i = 0; i <= a->n; i++) argv[i + 1] = a->v[i];
    fflush(stdout);
    fflush(stderr);
    p.started = child_now();
    p.pid = fork();
    if (p.pid < 0) {
        memset(r, 0, sizeof *r);
        r->status = -1;
        r->out = calloc(1, 1);
        r->err = calloc(1, 1);
        return -1;
    }
    if (p.pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        int err = open(p.err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (err < 0 || dup2(fd, 1) < 0 || dup2(err, 2) < 0) _exit(126);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execv(child_bin, (char *const *)argv);
        _exit(127);
    }
    child_wait(&p, TIMEOUT, r);
    return r->status;
}

/* Output that cannot be written (a reader that went away, a full disk) is a
 * runtime error with the system's reason, not a silent death by SIGPIPE nor
 * a success with the output lost. */
static void test_output_write_errors(void)
{
    char ckpt[PATH_MAX];
    path_in(ckpt, "closed-pipe.safetensors");
    if (library_checkpoint(ckpt, 10)) return;
    child_args params = {0}, eval = {0};
    args_add(&params, "params", "--dataset", "mnist", "--json", NULL);
    args_add(&eval, "eval", "--checkpoint", ckpt, "--limit-test", "100", "--json", "--data",
             data_dir, NULL);
    const child_args *runs[2] = {&params, &eval};
    for (int i = 0; i < 2; i++) {
        if (i == 1 && !have_mnist) {
            fprintf(stderr, "note: no MNIST in %s; eval into a closed pipe is left out\n", data_dir);
            continue;
        }
        int fds[2];
        if (pipe(fds)) {
            CHECK(0, "pipe: %s", strerror(errno));
            return;
        }
        close(fds[0]); /* no reader: every write fails with EPIPE */
        child_result r;
        run_with_stdout(&r, fds[1], runs[i]);
        close(fds[1]);
        CHECK(r.signal == 0, "'%s' into a closed pipe died by signal %d", args_text(runs[i]),
              r.signal);
        CHECK(r.status == 1, "'%s' into a closed pipe: status %d, expected 1; stderr %s",
              args_text(runs[i]), r.status, r.err);
        expect_one_error(&r, "closed pipe", "cannot write the output");
        expect_one_error(&r, "closed pipe", strerror(EPIPE));
        child_result_free(&r);
    }
    int full = open("/dev/full", O_WRONLY);
    if (full < 0) {
        fprintf(stderr, "note: no /dev/full (%s); the full-disk case is left out\n", strerror(errno));
        return;
    }
    child_result r;
    run_with_stdout(&r, full, &params);
    close(full);
    CHECK(r.status == 1, "params into /dev/full: status %d, expected 1; stderr %s", r.status, r.err);
    expect_one_error(&r, "/dev/full", "cannot write the output");
    expect_one_error(&r, "/dev/full", strerror(ENOSPC));
    child_result_free(&r);
}

/* RUN, and in verbose mode how long the test took. */
#define RUN_TIMED(test)                                                                         \
    do {                                                                                        \
        double t0_ = child_now();                                                               \
        RUN(test);                                                                              \
        if (verbose) fprintf(stderr, "  %s: %.1f s\n", #test, child_now() - t0_);               \
    } while (0)

int main(int argc, char **argv)
{
    (void)argc;
    snprintf(root, sizeof root, "/dev/shm/mf_test_cli_XXXXXX");
    if (!mkdtemp(root)) {
        snprintf(root, sizeof root, "/tmp/mf_test_cli_XXXXXX");
        if (!mkdtemp(root)) {
            perror("mkdtemp");
            return 1;
        }
    }
    if (child_init(argv[0], root)) {
        remove_tree(root);
        return 1;
    }
    verbose = getenv("MF_TEST_VERBOSE") != NULL;
    const char *disks[] = {"/var/tmp", "/tmp"};
    for (int i = 0; i < 2 && !disk_root[0]; i++) {
        snprintf(disk_root, sizeof disk_root, "%s/mf_test_cli_XXXXXX", disks[i]);
        if (!mkdtemp(disk_root)) disk_root[0] = '\0';
    }
    if (!disk_root[0]) snprintf(disk_root, sizeof disk_root, "%s", root);
#ifdef __linux__
    struct statfs fs;
    disk_is_ram = statfs(disk_root, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
#endif
    /* Two shared cores: OpenMP threads sleep rather than spin while waiting. */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    child_data_dir(data_dir);
    char probe[PATH_MAX + 64];
    text_printf(probe, sizeof probe, "%s/mnist", data_dir);
    have_mnist = file_exists(probe);
    text_printf(probe, sizeof probe, "%s/cifar-10-batches-bin/test_batch.bin", data_dir);
    have_cifar = file_exists(probe);

    RUN_TIMED(test_version_and_help);
    RUN_TIMED(test_usage_errors);
    RUN_TIMED(test_invalid_model_combinations);
    RUN_TIMED(test_params_totals);
    RUN_TIMED(test_info_mnist);
    RUN_TIMED(test_info_cifar10);
    RUN_TIMED(test_info_bad_idx_file);
    RUN_TIMED(test_train_eval);
    RUN_TIMED(test_predict_mnist);
    RUN_TIMED(test_predict_cifar10);
    RUN_TIMED(test_collapse);
    RUN_TIMED(test_sigint_then_resume);
    RUN_TIMED(test_sigterm_then_resume);
    RUN_TIMED(test_sigint_without_save);
    RUN_TIMED(test_sigkill_at_varied_moments);
    RUN_TIMED(test_numeric_fault);
    RUN_TIMED(test_save_bad_path);
    RUN_TIMED(test_save_disk_full);
    RUN_TIMED(test_data_changes_between_runs);
    RUN_TIMED(test_empty_paths);
    RUN_TIMED(test_data_dir_errors);
    RUN_TIMED(test_class_count_mismatch);
    RUN_TIMED(test_collapse_out_is_input);
    RUN_TIMED(test_output_write_errors);
    remove_tree(root);
    remove_tree(disk_root);
    return check_report();
}
