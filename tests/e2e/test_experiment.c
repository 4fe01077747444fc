/* Experiments, figures and their commands on a small synthetic MNIST written
 * to a temporary directory: a grid writes its tables and valid PNGs, a second
 * call skips every run, --format draws the grid's figures as SVG or PDF, an
 * interrupted run resumes to exactly the result of
 * an uninterrupted one, --tune-lr records its choice, and plot and attention
 * draw pictures of the stated size in PNG, SVG or PDF (by extension or
 * --format; an unknown extension is a usage error). A grid run serially, with
 * --jobs 2 and as two processes on one directory gives the same checkpoints
 * and results; a run another process held is taken over once that one died;
 * a signal to a --jobs grid stops its workers. */
#define _GNU_SOURCE /* child.h */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "child.h"
#include "minformer.h"
#include "experiment/experiment.h"
#include "figures/figures.h"

static char root[] = "/tmp/minformer-test-experiment-XXXXXX";
static char bin[PATH_MAX];
static int have_data;

/* ---- helpers ------------------------------------------------------------------ */

static void put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* An easy ten-class problem: class k is a bright bar on row 2 + 2k, plus noise. */
static int write_split(const char *dir, const char *prefix, int count, uint64_t seed)
{
    char path[600];
    mf_rng rng;
    mf_rng_seed(&rng, seed);
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    FILE *fl = fopen(path, "wb");
    if (!fi || !fl) {
        if (fi) fclose(fi);
        if (fl) fclose(fl);
        return -1;
    }
    put_be32(fi, 0x803);
    put_be32(fi, (uint32_t)count);
    put_be32(fi, 28);
    put_be32(fi, 28);
    put_be32(fl, 0x801);
    put_be32(fl, (uint32_t)count);
    for (int i = 0; i < count; i++) {
        int label = (int)mf_rng_below(&rng, 10);
        unsigned char img[28 * 28];
        for (int p = 0; p < 28 * 28; p++) img[p] = (unsigned char)mf_rng_below(&rng, 60);
        for (int x = 4; x < 24; x++) img[(2 + 2 * label) * 28 + x] = 255;
        fwrite(img, 1, sizeof img, fi);
        unsigned char l = (unsigned char)label;
        fwrite(&l, 1, 1, fl);
    }
    int bad = fclose(fi) | fclose(fl);
    return bad ? -1 : 0;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Reads a PNG's signature and IHDR: 0 and the size, or -1. */
static int png_size(const char *path, int *w, int *h)
{
    unsigned char b[24];
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n != sizeof b || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) return -1;
    *w = (b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19];
    *h = (b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23];
    return 0;
}

/* Whether the file's first bytes are head and its last ones (trailing
 * newlines aside) tail: "<svg" ... "</svg>", "%PDF-" ... "%%EOF". The head
 * may follow an XML declaration when xml is set. */
static int file_framed(const char *path, const char *head, const char *tail, int xml)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    size_t h = strlen(head), t = strlen(tail), start = 0;
    if (xml && n > 5 && !memcmp(buf, "<?xml", 5)) {
        char *end = memchr(buf, '>', n);
        start = end ? (size_t)(end - buf) + 1 : n;
        while (start < n && (buf[start] == '\n' || buf[start] == '\r')) start++;
    }
    return n >= start + h + t && !memcmp(buf + start, head, h) && !memcmp(buf + n - t, tail, t);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    if (buf) fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    return buf;
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; s && *s; s++) n += *s == c;
    return n;
}

static int count_substr(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

/* Runs the CLI with stdout and stderr to out_file; returns its exit status. */
static int run_cli(const char *args, const char *out_file)
{
    char cmd[PATH_MAX + 2048];
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=passive %s %s > %s 2>&1", bin, args, out_file);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ---- tests ------------------------------------------------------------------- */

/* CSV field col (0-based) of line, copied into out. */
static void csv_field(const char *line, int col, char *out, size_t size)
{
    for (int c = 0; c < col && line; c++) {
        line = strchr(line, ',');
        if (line) line++;
    }
    size_t len = line ? strcspn(line, ",\n") : 0;
    if (len >= size) len = size - 1;
    if (line) memcpy(out, line, len);
    out[len] = '\0';
}

/* --seeds 2: two runs per row named -s1 and -s2, a mean and a std line per
 * row that are the per-seed values' mean and sample std, the figures drawn,
 * and a rerun with the same seeds as a list skips them all; bad --seeds are
 * usage errors. */
static void test_seeds_give_runs_and_aggregates(void)
{
    if (!have_data) SKIP("no synthetic data directory");
    if (!exists(bin)) SKIP("%s not built", bin);
    char args[1024], out[600], path[700];
    snprintf(out, sizeof out, "%s/seeds.out", root);
    snprintf(args, sizeof args, "experiment quick --seeds 2 --only mlp0 --epochs 1 --limit-train 256 "
             "--jobs 2 --threads 2 --data %s --out %s/seeds", root, root);
    int rc = run_cli(args, out);
    CHECK(rc == 0, "experiment --seeds 2 exited %d", rc);
    const char *runs[] = {"mnist-L6-H1-mlp0-unchanged-s1", "mnist-L6-H1-mlp0-unchanged-s2",
                          "mnist-L6-H1-mlp0-minimal-s1", "mnist-L6-H1-mlp0-minimal-s2"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/seeds/%s/result.json", root, runs[i]);
        CHECK(exists(path), "%s finished", runs[i]);
    }
    snprintf(path, sizeof path, "%s/seeds/results.csv", root);
    char *csv = slurp(path);
    CHECK(csv && count_char(csv, '\n') == 9, "header + 4 runs + 2 mean + 2 std lines:\n%s",
          csv ? csv : "");
    CHECK(csv && strstr(csv, "images_per_second,best_test_loss,seed,stat,seeds\n"), "seeded header");
    /* Columns: 16 test_loss, 17 test_acc, 18 best_test_acc, 22 best_test_loss, 24 stat. */
    static const int cols[] = {16, 17, 18, 22};
    for (int row = 0; csv && row < 2; row++) {
        const char *name = row ? "mnist-L6-H1-mlp0-minimal" : "mnist-L6-H1-mlp0-unchanged";
        double v[4][2] = {{0}}, mean[4] = {0}, sd[4] = {0};
        int runs_seen = 0, got_mean = 0, got_std = 0;
        for (char *line = csv; *line;) {
            char *end = strchr(line, '\n');
            char f0[96], stat[16], x[64];
            csv_field(line, 0, f0, sizeof f0);
            csv_field(line, 24, stat, sizeof stat);
            for (int c = 0; c < 4; c++) {
                csv_field(line, cols[c], x, sizeof x);
                double d = atof(x);
                if (!strcmp(stat, "run") && !strncmp(f0, name, strlen(name)) && runs_seen < 2)
                    v[c][runs_seen] = d;
                else if (!strcmp(stat, "mean") && !strcmp(f0, name)) mean[c] = d;
                else if (!strcmp(stat, "std") && !strcmp(f0, name)) sd[c] = d;
            }
            runs_seen += !strcmp(stat, "run") && !strncmp(f0, name, strlen(name));
            got_mean += !strcmp(stat, "mean") && !strcmp(f0, name);
            got_std += !strcmp(stat, "std") && !strcmp(f0, name);
            line = end ? end + 1 : line + strlen(line);
        }
        CHECK(runs_seen == 2 && got_mean == 1 && got_std == 1, "%s: %d runs, %d mean, %d std lines",
              name, runs_seen, got_mean, got_std);
        for (int c = 0; c < 4; c++) {
            double m = (v[c][0] + v[c][1]) / 2;
            double s = sqrt(((v[c][0] - m) * (v[c][0] - m) + (v[c][1] - m) * (v[c][1] - m)) / 1.0);
            CHECK(fabs(mean[c] - m) < 2e-6 && fabs(sd[c] - s) < 2e-6,
                  "%s column %d: mean %.6f std %.6f, want %.6f %.6f", name, cols[c], mean[c], sd[c], m, s);
        }
    }
    free(csv);
    snprintf(path, sizeof path, "%s/seeds/results.md", root);
    char *md = slurp(path);
    CHECK(md && strstr(md, "Mean ± sample standard deviation") && strstr(md, "| 1,2 |"),
          "results.md has the seeds table");
    free(md);
    /* The figures of a seeded grid: each row's mean loss with a band, and
     * accuracy against parameters with error bars. */
    const char *figures[] = {"loss-mnist.png", "accuracy-params.png"};
    for (int i = 0; i < 2; i++) {
        int w = 0, h = 0;
        snprintf(path, sizeof path, "%s/seeds/%s", root, figures[i]);
        CHECK(png_size(path, &w, &h) == 0 && w == 1200 && h == 800, "%s: %d x %d", figures[i], w, h);
    }

    /* The same seeds as a list: every run is found finished. */
    snprintf(args, sizeof args, "experiment quick --seeds 1,2 --only mlp0 --epochs 1 --limit-train 256 "
             "--data %s --out %s/seeds", root, root);
    rc = run_cli(args, out);
    char *text = slurp(out);
    CHECK(rc == 0 && count_substr(text, "skipped") == 4, "rerun with --seeds 1,2 exited %d:\n%s", rc,
          text ? text : "");
    free(text);

    const char *bad[] = {"--seeds 0", "--seeds 1,1", "--seeds x", "--seeds 1,,2", "--seeds 65"};
    for (int i = 0; i < 5; i++) {
        snprintf(args, sizeof args, "experiment quick %s --data %s --out %s/seeds-bad", bad[i], root, root);
        rc = run_cli(args, out);
        text = slurp(out);
        CHECK(rc == 2 && text && strstr(text, "seeds") && count_char(text, '\n') == 1,
              "%s exited %d:\n%s", bad[i], rc, text ? text : "");
        free(text);
    }
}

static void test_grids_are_well_formed(void)
{
    int n;
    const mf_experiment_grid *g = mf_experiment_grids(&n);
    CHECK(n == 4, "%d grids", n);
    CHECK(mf_experiment_grid_find("table1")->count == 16, "table1 has 16 runs");
    CHECK(mf_experiment_grid_find("table2")->count == 15, "table2 has 15 runs");
    CHECK(mf_experiment_grid_find("table3")->count == 15, "table3 has 15 runs");
    CHECK(mf_experiment_grid_find("nope") == NULL, "unknown grid");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g[i].count; j++) {
            mf_config cfg;
            mf_error err;
            char a[96], b[96];
            CHECK(mf_experiment_config(&g[i].specs[j], &cfg, &err) == MF_OK, "%s row %d: %s",
                  g[i].name, j, err.message);
            mf_experiment_run_name(&g[i].specs[j], a, sizeof a);
            for (int k = 0; k < j; k++) {
                mf_experiment_run_name(&g[i].specs[k], b, sizeof b);
                CHECK(strcmp(a, b), "%s: run name %s repeats", g[i].name, a);
            }
        }
    const mf_experiment_spec *q = mf_experiment_grid_find("quick")->specs;
    char name[96];
    mf_experiment_run_name(&q[0], name, sizeof name);
    CHECK(!strcmp(name, "mnist-L6-H1-mlp4-unchanged"), "run name %s", name);
}

static void test_grid_command_writes_results_and_skips(void)
{
    if (!have_data) SKIP("no synthetic data directory");
    if (!exists(bin)) SKIP("%s not built", bin);
    char args[1024], out[600], path[700];
    snprintf(out, sizeof out, "%s/grid.out", root);
    snprintf(args, sizeof args, "experiment quick --epochs 2 --limit-train 512 --data %s --out %s/grid",
             root, root);
    int rc = run_cli(args, out);
    CHECK(rc == 0, "experiment quick exited %d", rc);
    snprintf(path, sizeof path, "%s/grid/results.md", root);
    char *md = slurp(path);
    CHECK(md && count_substr(md, "| mnist |") == 3, "results.md has 3 rows");
    free(md);
    snprintf(path, sizeof path, "%s/grid/results.csv", root);
    char *csv = slurp(path);
    CHECK(csv != NULL, "results.csv exists");
    if (csv) {
        CHECK(count_char(csv, '\n') == 4, "header + 3 rows, got %d lines", count_char(csv, '\n'));
        const char *header = "run,dataset,encoders,heads,mlp,variant,qk,vo,parameters,pct_of_baseline,"
                             "q,lr,lr_tuned,epochs,train_loss,train_acc,test_loss,test_acc,"
                             "best_test_acc,best_epoch,seconds,images_per_second\n";
        CHECK(!strncmp(csv, header, strlen(header)), "CSV header");
        /* 22 columns on every line: 21 commas. */
        for (char *line = csv; *line;) {
            char *end = strchr(line, '\n');
            int commas = 0;
            for (char *p = line; p < end; p++) commas += *p == ',';
            CHECK(commas == 21, "a CSV line has %d commas: %.60s", commas, line);
            line = end + 1;
        }
        CHECK(strstr(csv, "mnist-L6-H1-mlp0-minimal,mnist,6,1,0,minimal,collapsed,none,30858,") != NULL,
              "the minimal row");
    }
    free(csv);
    const char *figures[] = {"loss-mnist.png", "accuracy-params.png"};
    for (int i = 0; i < 2; i++) {
        int w = 0, h = 0;
        snprintf(path, sizeof path, "%s/grid/%s", root, figures[i]);
        CHECK(png_size(path, &w, &h) == 0 && w == 1200 && h == 800, "%s: %d x %d", figures[i], w, h);
    }
    snprintf(path, sizeof path, "%s/grid/mnist-L6-H1-mlp4-unchanged/log.jsonl", root);
    mf_training_log log;
    mf_error err;
    CHECK(mf_training_log_read(path, &log, &err) == MF_OK && log.count == 2, "log with 2 epochs");
    mf_training_log_free(&log);

    /* Second call: every run is skipped, nothing retrains. */
    struct stat before, after;
    snprintf(path, sizeof path, "%s/grid/mnist-L6-H1-mlp4-unchanged/checkpoint.safetensors", root);
    stat(path, &before);
    rc = run_cli(args, out);
    stat(path, &after);
    char *text = slurp(out);
    CHECK(rc == 0, "second call exited %d", rc);
    CHECK(count_substr(text, "skipped") == 3, "3 runs skipped:\n%s", text ? text : "");
    /* Saves go through a new file renamed over the old one: a rewrite changes the inode (the
     * mtime alone has a one-second grain, as long as this whole test). */
    CHECK(before.st_ino == after.st_ino && before.st_mtime == after.st_mtime &&
          before.st_size == after.st_size, "checkpoint rewritten");
    free(text);

    /* Another epoch count in the same directory is refused, not mixed in. */
    snprintf(args, sizeof args, "experiment quick --epochs 3 --limit-train 512 --data %s --out %s/grid",
             root, root);
    rc = run_cli(args, out);
    CHECK(rc == 2, "a different --epochs in a finished directory exited %d", rc);
}

/* --format svg and pdf: the grid's figures in that format, with its extension,
 * and no PNG; a rerun in another format redraws them from the finished runs. */
static void test_grid_figures_in_each_format(void)
{
    if (!have_data) SKIP("no synthetic data directory");
    if (!exists(bin)) SKIP("%s not built", bin);
    char args[1024], out[600], path[700];
    snprintf(out, sizeof out, "%s/format.out", root);
    const char *kinds[2][4] = {{"svg", "<svg", "</svg>", "SVG"}, {"pdf", "%PDF-", "%%EOF", "pdf"}};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "experiment quick --epochs 1 --limit-train 256 --limit-test 100 "
                 "--format %s --data %s --out %s/grid-format", kinds[k][3], root, root);
        int rc = run_cli(args, out);
        CHECK(rc == 0, "experiment --format %s exited %d", kinds[k][3], rc);
        const char *figures[] = {"loss-mnist", "accuracy-params"};
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/grid-format/%s.%s", root, figures[i], kinds[k][0]);
            CHECK(file_framed(path, kinds[k][1], kinds[k][2], k == 0), "%s is not a%s %s", path,
                  k == 0 ? "n" : "", kinds[k][0]);
            snprintf(path, sizeof path, "%s/grid-format/%s.png", root, figures[i]);
            CHECK(!exists(path), "%s written with --format %s", path, kinds[k][3]);
        }
        snprintf(path, sizeof path, "%s/grid-format/results.md", root);
        char *md = slurp(path), want[64];
        snprintf(want, sizeof want, "accuracy-params.%s", kinds[k][0]);
        CHECK(md && strstr(md, want), "results.md does not name %s", want);
        free(md);
    }
    snprintf(args, sizeof args, "experiment quick --epochs 1 --format gif --data %s --out %s/grid-gif",
             root, root);
    CHECK(run_cli(args, out) == 2, "an unknown --format is a usage error");
    char *said = slurp(out);
    CHECK(said && strstr(said, "'gif'"), "the message names the format: %s", said ? said : "(none)");
    free(said);
    snprintf(path, sizeof path, "%s/grid-gif", root);
    CHECK(!exists(path), "a refused command made its directory");
}

/* ---- grids in parallel --------------------------------------------------------- */

/* The grid the parallel tests run: the quick grid's three runs, one epoch on
 * 300 synthetic images (a few seconds in all). */
static void parallel_args(child_args *a, const char *out, const char *extra)
{
    args_add(a, "experiment", "quick", "--epochs", "1", "--limit-train", "300", "--limit-test",
             "100", NULL);
    args_addf(a, "--data");
    args_addf(a, "%s", root);
    args_addf(a, "--out");
    args_addf(a, "%s/%s", root, out);
    args_split(a, extra);
}

/* results.csv without its last two columns (seconds, images_per_second). */
static char *csv_without_times(const char *dir)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s/results.csv", root, dir);
    char *csv = slurp(path);
    if (!csv) return NULL;
    char *out = calloc(1, strlen(csv) + 1), *o = out;
    for (char *line = csv; out && *line;) {
        char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        char *cut = end;
        for (int commas = 0; cut > line && commas < 2; cut--) commas += cut[-1] == ',';
        memcpy(o, line, (size_t)(cut - line));
        o += cut - line;
        *o++ = '\n';
        line = *end ? end + 1 : end;
    }
    free(csv);
    return out;
}

static void test_parallel_grids_match_serial(void)
{
    if (!have_data) SKIP("no synthetic data directory");
    if (!exists(bin)) SKIP("%s not built", bin);
    child_args a;
    child_result r;
    memset(&a, 0, sizeof a);
    parallel_args(&a, "par-serial", "--threads 2");
    CHECK(child_run(&r, NULL, 120, &a) == 0, "serial grid exited %d: %s", r.status, r.err);
    child_result_free(&r);

    memset(&a, 0, sizeof a);
    parallel_args(&a, "par-jobs", "--threads 2 --jobs 2");
    CHECK(child_run(&r, NULL, 120, &a) == 0, "--jobs 2 exited %d: %s", r.status, r.err);
    CHECK(count_substr(r.out, "  done:") == 3, "--jobs 2 trained %d runs, not 3:\n%s",
          count_substr(r.out, "  done:"), r.out);
    CHECK(strstr(r.out, "[job 1/2] ") && strstr(r.out, "[job 2/2] ") &&
          strstr(r.out, "(3 finished runs of 3)"), "--jobs 2 output:\n%s", r.out);
    child_result_free(&r);

    /* Two processes on one directory, started together: each run is trained
     * by exactly one of them, and the one that ends last prints the whole
     * grid's summary. */
    child_args b;
    child_proc p[2];
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    parallel_args(&a, "par-two", "--threads 1");
    parallel_args(&b, "par-two", "--threads 1");
    int started = child_start(&p[0], NULL, &a) == 0 && child_start(&p[1], NULL, &b) == 0;
    CHECK(started, "could not start two processes");
    if (!started) return;
    int trained = 0, complete = 0;
    for (int i = 0; i < 2; i++) {
        child_wait(&p[i], 120, &r);
        CHECK(r.status == 0, "process %d exited %d: %s", i + 1, r.status, r.err);
        complete += strstr(r.out, "(3 finished runs of 3)") != NULL;
        trained += count_substr(r.out, "  done:");
        child_result_free(&r);
    }
    CHECK(trained == 3, "the two processes trained %d runs, not 3", trained);
    CHECK(complete >= 1, "neither process printed the whole grid's summary");

    const mf_experiment_grid *g = mf_experiment_grid_find("quick");
    for (int i = 0; i < g->count; i++) {
        char run[96], x[700], y[700];
        mf_experiment_run_name(&g->specs[i], run, sizeof run);
        snprintf(x, sizeof x, "%s/par-serial/%s/checkpoint.safetensors", root, run);
        const char *others[2] = {"par-jobs", "par-two"};
        for (int k = 0; k < 2; k++) {
            snprintf(y, sizeof y, "%s/%s/%s/checkpoint.safetensors", root, others[k], run);
            CHECK(same_file(x, y), "%s: the checkpoint of %s differs from the serial one", run,
                  others[k]);
        }
    }
    char *serial = csv_without_times("par-serial"), *jobs = csv_without_times("par-jobs"),
         *two = csv_without_times("par-two");
    CHECK(serial && count_char(serial, '\n') == 4, "serial results.csv:\n%s", serial ? serial : "");
    CHECK(serial && jobs && !strcmp(serial, jobs), "--jobs 2 results.csv differs:\n%s\n%s",
          serial ? serial : "", jobs ? jobs : "");
    CHECK(serial && two && !strcmp(serial, two), "two processes' results.csv differs:\n%s\n%s",
          serial ? serial : "", two ? two : "");
    free(serial);
    free(jobs);
    free(two);

    memset(&a, 0, sizeof a);
    parallel_args(&a, "par-bad", "--jobs 0");
    CHECK(child_run(&r, NULL, 30, &a) == 2 && strstr(r.err, "jobs"), "--jobs 0: %d %s", r.status,
          r.err);
    child_result_free(&r);
    memset(&a, 0, sizeof a);
    parallel_args(&a, "par-bad", "--worker 3/2/1");
    CHECK(child_run(&r, NULL, 30, &a) == 2 && strstr(r.err, "--worker"), "--worker 3/2/1: %d %s",
          r.status, r.err);
    child_result_free(&r);
}

/* A run whose lock another process holds is left to it and tried again after
 * the grid's other runs: its holder died meanwhile (the kernel dropped its
 * flock), so the grid's process trains the run itself. */
static void test_a_held_run_is_taken_over_when_its_holder_dies(void)
{
    if (!have_data) SKIP("no synthetic data directory");
    if (!exists(bin)) SKIP("%s not built", bin);
    char dir[700], lockp[760], done[760];
    snprintf(dir, sizeof dir, "%s/held", root);
    mkdir(dir, 0777);
    snprintf(dir, sizeof dir, "%s/held/mnist-L6-H1-mlp4-unchanged", root); /* the first run */
    mkdir(dir, 0777);
    snprintf(lockp, sizeof lockp, "%s/lock", dir);
    snprintf(done, sizeof done, "%s/result.json", dir);
    int ready[2];
    if (pipe(ready)) SKIP("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t holder = fork();
    if (holder == 0) {
        alarm(120); /* never outlives a test that failed to kill it */
        mf_error err;
        char ok = mf_run_lock_try(lockp, &err) >= 0 ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1) _exit(1);
        for (;;) pause();
    }
    char ok = 'n';
    CHECK(holder > 0 && read(ready[0], &ok, 1) == 1 && ok == 'y', "the holder did not lock %s", lockp);
    close(ready[0]);
    close(ready[1]);
    if (check_current_failures) {
        if (holder > 0) kill(holder, SIGKILL), waitpid(holder, NULL, 0);
        return;
    }
    child_args a;
    memset(&a, 0, sizeof a);
    parallel_args(&a, "held", "--threads 2");
    child_proc p;
    CHECK(child_start(&p, NULL, &a) == 0, "could not start the grid");
    /* Killed as soon as the grid has seen the lock, while it trains the other two runs. */
    int said = child_wait_for_output(&p, "in progress in another process", 60);
    CHECK(said, "the grid did not say the run is held");
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    child_result r;
    child_wait(&p, 120, &r);
    CHECK(r.status == 0, "the grid exited %d: %s", r.status, r.err);
    CHECK(exists(done) && count_substr(r.out, "  done:") == 3 &&
          strstr(r.out, "(3 finished runs of 3)"),
          "the grid did not train the held run once its holder died:\n%s", r.out);
    child_result_free(&r);
}

/* SIGTERM to a --jobs grid reaches its workers: each saves its run and
 * stops, the grid exits 143 after them, and no run is left locked. */
static void test_signal_stops_the_jobs(void)
{
    if (!have_data) SKIP("no synthetic data directory");
    if (!exists(bin)) SKIP("%s not built", bin);
    child_args a;
    memset(&a, 0, sizeof a);
    args_add(&a, "experiment", "quick", "--epochs", "200", "--jobs", "2", "--threads", "2", NULL);
    args_addf(&a, "--data");
    args_addf(&a, "%s", root);
    args_addf(&a, "--out");
    args_addf(&a, "%s/stopped", root);
    child_proc p;
    CHECK(child_start(&p, NULL, &a) == 0, "could not start the grid");
    /* Both workers are training once two runs' headers are out that are not
     * a held run's: a run's header comes with its first batch. 200 epochs
     * keep either from finishing, even under a sanitizer. */
    int both = 0;
    while (!both && !child_ended(&p) && child_now() - p.started < 120) {
        char *t = read_text(p.out_path, NULL);
        both = t && count_substr(t, "/3] mnist-") -
                    count_substr(t, "in progress in another process") >= 2;
        free(t);
        child_sleep(0.01);
    }
    CHECK(both, "the two workers did not start training");
    kill(p.pid, SIGTERM);
    child_result r;
    child_wait(&p, 120, &r);
    CHECK(r.status == 143, "the stopped grid exited %d: %s", r.status, r.err);
    CHECK(count_substr(r.err, "checkpoint.safetensors") == 2, "two runs saved:\n%s", r.err);
    child_result_free(&r);
    const mf_experiment_grid *g = mf_experiment_grid_find("quick");
    for (int i = 0; i < g->count; i++) {
        char run[96], lockp[760];
        mf_experiment_run_name(&g->specs[i], run, sizeof run);
        snprintf(lockp, sizeof lockp, "%s/stopped/%s/lock", root, run);
        if (!exists(lockp)) continue;
        mf_error err;
        int fd = mf_run_lock_try(lockp, &err);
        CHECK(fd >= 0, "%s is still locked after the grid exited", run);
        mf_run_lock_release(fd);
    }
}

typedef struct {
    volatile sig_atomic_t *stop;
    int batches, stop_after;
} stopper;

static void stop_soon(void *vctx, int epoch, int batch, int batches, float loss, float acc, double ips)
{
    (void)epoch, (void)batch, (void)batches, (void)loss, (void)acc, (void)ips;
    stopper *s = vctx;
    if (++s->batches == s->stop_after) *s->stop = 1;
}

static void test_interrupted_run_resumes_exactly(void)
{
    if (!have_data) SKIP("no synthetic data directory");
    mf_dataset ds;
    mf_error err;
    CHECK(mf_dataset_load(&ds, MF_MNIST, root, &err) == MF_OK, "%s", err.message);
    if (check_current_failures) return;
    const mf_experiment_spec *spec = &mf_experiment_grid_find("quick")->specs[2]; /* minimal */
    mf_experiment_opts o;
    mf_experiment_opts_default(&o);
    o.epochs = 2;
    char a[600], b[600], path[700];
    snprintf(a, sizeof a, "%s/interrupted", root);
    snprintf(b, sizeof b, "%s/straight", root);
    mf_experiment_result ra, rb;

    volatile sig_atomic_t stop = 0;
    stopper s = {&stop, 0, 7}; /* batch 2 of epoch 2 (640 images: 5 batches of 128 each) */
    mf_experiment_hooks hooks = {&s, NULL, stop_soon, NULL};
    o.out_dir = a;
    mf_status st = mf_experiment_run(&o, spec, &ds, &hooks, &stop, &ra, &err);
    CHECK(st == MF_ERR_INTERRUPTED, "interrupted run returned %d: %s", st, err.message);
    snprintf(path, sizeof path, "%s/mnist-L6-H1-mlp0-minimal/checkpoint.safetensors", a);
    CHECK(exists(path), "checkpoint saved on interrupt");
    snprintf(path, sizeof path, "%s/mnist-L6-H1-mlp0-minimal/result.json", a);
    CHECK(!exists(path), "no result.json for an unfinished run");
    stop = 0;
    st = mf_experiment_run(&o, spec, &ds, NULL, &stop, &ra, &err);
    CHECK(st == MF_OK && ra.resumed && !ra.skipped, "resume: %d %s", st, err.message);
    CHECK(exists(path), "result.json after the resumed run");

    o.out_dir = b;
    st = mf_experiment_run(&o, spec, &ds, NULL, &stop, &rb, &err);
    CHECK(st == MF_OK, "%s", err.message);
    CHECK(ra.test_loss == rb.test_loss && ra.test_acc == rb.test_acc && ra.train_loss == rb.train_loss,
          "resumed run differs: test loss %.9g vs %.9g, train loss %.9g vs %.9g", (double)ra.test_loss,
          (double)rb.test_loss, (double)ra.train_loss, (double)rb.train_loss);
    CHECK(ra.epochs == 2 && ra.best_epoch >= 1 && ra.best_epoch <= 2 && ra.params == 30858,
          "result fields");
    snprintf(path, sizeof path, "%s/mnist-L6-H1-mlp0-minimal/log.jsonl", a);
    mf_training_log log;
    CHECK(mf_training_log_read(path, &log, &err) == MF_OK && log.count == 2, "resumed log: 2 epochs");
    mf_training_log_free(&log);

    /* And a finished run is skipped with its stored numbers. */
    o.out_dir = a;
    st = mf_experiment_run(&o, spec, &ds, NULL, &stop, &rb, &err);
    CHECK(st == MF_OK && rb.skipped && rb.test_acc == ra.test_acc, "skip: %d", st);
    mf_dataset_free(&ds);
}

static void test_tune_lr_records_its_choice(void)
{
    if (!have_data) SKIP("no synthetic data directory");
    mf_dataset ds;
    mf_error err;
    CHECK(mf_dataset_load(&ds, MF_MNIST, root, &err) == MF_OK, "%s", err.message);
    if (check_current_failures) return;
    const mf_experiment_spec *spec = &mf_experiment_grid_find("quick")->specs[2];
    mf_experiment_opts o;
    mf_experiment_opts_default(&o);
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/tuned", root);
    o.out_dir = dir;
    o.epochs = 1;
    o.tune_lr = 1;
    o.tune_images = 256;
    o.tune_val = 128;
    mf_experiment_result r;
    volatile sig_atomic_t stop = 0;
    CHECK(mf_experiment_run(&o, spec, &ds, NULL, &stop, &r, &err) == MF_OK, "%s", err.message);
    CHECK(r.lr_tuned && (r.lr == 1e-3f || r.lr == 3e-3f || r.lr == 1e-2f), "tuned lr %g", (double)r.lr);
    snprintf(path, sizeof path, "%s/mnist-L6-H1-mlp0-minimal/lr.json", dir);
    char *text = slurp(path);
    CHECK(text && strstr(text, "\"val_images\":128") && count_substr(text, "val_acc") == 3,
          "lr.json: %s", text ? text : "(missing)");
    free(text);
    mf_dataset_free(&ds);
}

static void test_log_reader(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/log-reader.jsonl", root);
    FILE *f = fopen(path, "w");
    if (!f) SKIP("cannot write %s", path);
    fputs("{\"epoch\":2,\"train_loss\":1.0,\"test_loss\":1.5}\n\n"
          "{\"epoch\":1,\"train_loss\":2.0,\"test_loss\":2.5}\n"
          "{\"epoch\":2,\"train_loss\":0.5,\"test_loss\":0.75,\"test_acc\":0.9}",
          f);
    fclose(f);
    mf_training_log log;
    mf_error err;
    CHECK(mf_training_log_read(path, &log, &err) == MF_OK, "%s", err.message);
    CHECK(log.count == 2 && log.epochs[0].epoch == 1 && log.epochs[1].epoch == 2, "sorted, deduplicated");
    CHECK(log.count == 2 && log.epochs[1].train_loss == 0.5f && log.epochs[1].test_acc == 0.9f,
          "the last line of a repeated epoch wins");
    CHECK(log.count == 2 && isnan(log.epochs[0].test_acc), "missing metrics are NaN");
    mf_training_log_free(&log);
    f = fopen(path, "w");
    fputs("{\"epoch\":1}\nnot json\n", f);
    fclose(f);
    CHECK(mf_training_log_read(path, &log, &err) == MF_ERR_FORMAT && strstr(err.message, ":2:"),
          "a bad line is named: %s", err.message);
}

static void test_rollout_of_uniform_attention(void)
{
    mf_config cfg;
    mf_config_default(&cfg, 28, 1, 10);
    cfg.layers = 2;
    int T = mf_config_tokens(&cfg), G = 4;
    float *maps = malloc(sizeof(float) * 2 * T * T), layers[2 * 16], roll[16];
    for (int i = 0; i < 2 * T * T; i++) maps[i] = 1.0f / T;
    mf_attention_cls_maps(&cfg, maps, layers, roll);
    /* A = U = (1/T) 1 1^T, and U U = U, so (0.5 U + 0.5 I)^2 = 0.75 U + 0.25 I:
     * every patch gets 0.75/T of the CLS row. */
    int equal = 1;
    for (int p = 1; p < G * G; p++) equal &= fabsf(roll[p] - roll[0]) < 1e-7f;
    CHECK(equal, "rollout of uniform attention is uniform over patches");
    float expect = 0.75f / T;
    CHECK(check_close(roll[0], expect, 1e-6f, 1e-5f), "patch weight %g, expected %g", (double)roll[0],
          (double)expect);
    CHECK(check_close(layers[0], 1.0f / T, 0, 1e-6f), "layer map is the CLS row");
    free(maps);
}

static void test_plot_and_attention_commands(void)
{
    if (!have_data) SKIP("no synthetic data directory");
    if (!exists(bin)) SKIP("%s not built", bin);
    char args[2048], out[600], path[700];
    snprintf(out, sizeof out, "%s/plot.out", root);
    /* The two logs of the interrupted/straight runs, or of the grid. */
    snprintf(path, sizeof path, "%s/plot.png", root);
    snprintf(args, sizeof args,
             "plot %s/grid/mnist-L6-H1-mlp4-unchanged/log.jsonl %s/grid/mnist-L6-H1-mlp0-minimal/log.jsonl "
             "--out %s --width 640 --height 480", root, root, path);
    int rc = run_cli(args, out), w = 0, h = 0;
    CHECK(rc == 0, "plot exited %d", rc);
    CHECK(png_size(path, &w, &h) == 0 && w == 640 && h == 480, "plot.png %d x %d", w, h);
    snprintf(args, sizeof args, "plot --out %s/x.png %s/missing.jsonl", root, root);
    CHECK(run_cli(args, out) == 1, "a missing log is a runtime error");

    /* --mean-seeds: the seeds test's runs <row>-s1, <row>-s2 as one row each,
     * its mean with a translucent band; without it, one curve per log. */
    for (int mean = 0; mean < 2; mean++) {
        snprintf(path, sizeof path, "%s/plot-seeds%d.svg", root, mean);
        snprintf(args, sizeof args,
                 "plot %s/seeds/mnist-L6-H1-mlp0-minimal-s1/log.jsonl "
                 "%s/seeds/mnist-L6-H1-mlp0-unchanged-s1/log.jsonl "
                 "%s/seeds/mnist-L6-H1-mlp0-minimal-s2/log.jsonl --accuracy --out %s%s",
                 root, root, root, path, mean ? " --mean-seeds" : "");
        CHECK(run_cli(args, out) == 0, "plot --accuracy%s exited non-zero", mean ? " --mean-seeds" : "");
        char *svg = slurp(path);
        CHECK(svg && !strstr(svg, "fill-opacity:0.18") == !mean, "%s: a band %s", path,
              mean ? "missing" : "without --mean-seeds");
        free(svg);
    }

    /* SVG and PDF, by the extension or by --format, which wins. */
    const char *log = "grid/mnist-L6-H1-mlp4-unchanged/log.jsonl";
    snprintf(path, sizeof path, "%s/plot.svg", root);
    snprintf(args, sizeof args, "plot %s/%s --out %s --width 640 --height 480", root, log, path);
    CHECK(run_cli(args, out) == 0, "plot to .svg exited non-zero");
    CHECK(file_framed(path, "<svg", "</svg>", 1), "plot.svg is not an SVG document");
    snprintf(path, sizeof path, "%s/plot.pdf", root);
    snprintf(args, sizeof args, "plot %s/%s --out %s", root, log, path);
    CHECK(run_cli(args, out) == 0, "plot to .pdf exited non-zero");
    CHECK(file_framed(path, "%PDF-", "%%EOF", 0), "plot.pdf is not a PDF");
    snprintf(path, sizeof path, "%s/plot-pdf.png", root);
    snprintf(args, sizeof args, "plot %s/%s --out %s --format PDF", root, log, path);
    CHECK(run_cli(args, out) == 0, "plot --format PDF exited non-zero");
    CHECK(file_framed(path, "%PDF-", "%%EOF", 0), "--format pdf did not win over .png");
    snprintf(path, sizeof path, "%s/plot.jpg", root);
    snprintf(args, sizeof args, "plot %s/%s --out %s", root, log, path);
    CHECK(run_cli(args, out) == 2, "an unknown extension is a usage error");
    char *said = slurp(out);
    CHECK(said && strstr(said, path) && strstr(said, "'.jpg'"), "the message names the file "
          "and its extension: %s", said ? said : "(none)");
    free(said);
    CHECK(!exists(path), "plot.jpg was written");
    snprintf(args, sizeof args, "plot %s/%s --out %s/p.png --format gif", root, log, root);
    CHECK(run_cli(args, out) == 2, "an unknown --format is a usage error");
    snprintf(args, sizeof args, "plot %s/%s --out %s/no/such/dir/p.svg", root, log, root);
    CHECK(run_cli(args, out) == 1, "a missing directory is a runtime error");

    snprintf(path, sizeof path, "%s/attention.png", root);
    snprintf(args, sizeof args,
             "attention --checkpoint %s/grid/mnist-L6-H1-mlp0-minimal/checkpoint.safetensors "
             "--index 5 --data %s --out %s", root, root, path);
    rc = run_cli(args, out);
    CHECK(rc == 0, "attention exited %d", rc);
    /* input + 6 layers + rollout, 168-pixel panels: 16 + 8 * (168 + 16) wide. */
    CHECK(png_size(path, &w, &h) == 0 && w == 1488 && h == 290, "attention.png %d x %d", w, h);
    const char *kinds[2][3] = {{"svg", "<svg", "</svg>"}, {"pdf", "%PDF-", "%%EOF"}};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/attention.%s", root, kinds[k][0]);
        snprintf(args, sizeof args,
                 "attention --checkpoint %s/grid/mnist-L6-H1-mlp0-minimal/checkpoint.safetensors "
                 "--index 5 --data %s --out %s", root, root, path);
        CHECK(run_cli(args, out) == 0, "attention to .%s exited non-zero", kinds[k][0]);
        CHECK(file_framed(path, kinds[k][1], kinds[k][2], k == 0), "attention.%s is not one",
              kinds[k][0]);
    }
    snprintf(args, sizeof args,
             "attention --checkpoint %s/grid/mnist-L6-H1-mlp0-minimal/checkpoint.safetensors "
             "--data %s --out %s/attention.tiff", root, root, root);
    CHECK(run_cli(args, out) == 2, "attention to .tiff is a usage error");
    snprintf(args, sizeof args,
             "attention --checkpoint %s/grid/mnist-L6-H1-mlp0-minimal/checkpoint.safetensors "
             "--index 999999 --data %s --out %s", root, root, path);
    CHECK(run_cli(args, out) == 2, "an index past the test split is a usage error");
}

int main(int argc, char **argv)
{
    (void)argc;
    mf_set_threads(2);
    if (mkdtemp(root)) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/mnist", root);
        have_data = mkdir(dir, 0777) == 0 && write_split(dir, "train", 640, 1) == 0 &&
                    write_split(dir, "t10k", 200, 2) == 0;
        /* The binary beside BUILD/tests/ (or $MINFORMER_BIN); missing: those tests skip. */
        if (child_init(argv[0], root) == 0) snprintf(bin, sizeof bin, "%s", child_bin);
    } else {
        perror("mkdtemp");
    }
    RUN(test_grids_are_well_formed);
    RUN(test_log_reader);
    RUN(test_rollout_of_uniform_attention);
    RUN(test_grid_command_writes_results_and_skips);
    RUN(test_grid_figures_in_each_format);
    RUN(test_parallel_grids_match_serial);
    RUN(test_seeds_give_runs_and_aggregates);
    RUN(test_a_held_run_is_taken_over_when_its_holder_dies);
    RUN(test_signal_stops_the_jobs);
    RUN(test_interrupted_run_resumes_exactly);
    RUN(test_tune_lr_records_its_choice);
    RUN(test_plot_and_attention_commands);
    if (have_data) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    }
    return check_report();
}
