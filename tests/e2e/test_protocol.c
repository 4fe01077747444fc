/* The training regime on the command line: --protocol paper resolves to a
 * constant schedule, no augmentation, batch 256 and weight decay 0; options
 * given explicitly win over the protocol wherever they stand; the schedule is
 * part of a run's identity, so a resume or rerun with another one is refused
 * naming it; checkpoints and run.json files written before the schedule was
 * stored read as cosine and continue exactly. --precision likewise: refused
 * where bf16 cannot run, recorded, kept on resume. Tests that need MNIST SKIP
 * when it is missing. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>

#include "check.h"
#include "child.h"
#include "minformer.h"
#include "minformer/checkpoint.h"

#define TIMEOUT 300.0

/* 256 images: one batch of the paper's 256, or four of 64. */
#define TINY                                                                                 \
    "train --dataset mnist --preset minimal --mlp 0 --dim 16 --layers 1 --limit-train 256 "  \
    "--limit-test 100 --threads 1"
#define GRID "--only mlp0-minimal --epochs 1 --limit-test 100 --threads 1"

static char root[PATH_MAX];
static char data_dir[PATH_MAX];
static int have_mnist;

/* Runs `minformer LINE` with --data, in root. */
#define run_line(r, ...) child_run_linef(r, root, TIMEOUT, data_dir, __VA_ARGS__)

/* Runs LINE and checks that it exits with want. */
static int run_expect(int want, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_expect(int want, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    child_result r;
    run_line(&r, "%s", line);
    int ok = r.status == want;
    CHECK(ok, "'%s' exited %d, not %d:\n%s%s", line, r.status, want, r.out, r.err);
    child_result_free(&r);
    return ok;
}

static void path_in(char *out, const char *name) { text_printf(out, PATH_MAX, "%s/%s", root, name); }

/* The checkpoint's metadata value of key, copied to out ("" when absent or
 * unreadable). */
static void meta(const char *name, const char *key, char *out, size_t size)
{
    char path[PATH_MAX];
    path_in(path, name);
    mf_checkpoint_header h;
    mf_error err;
    out[0] = '\0';
    if (mf_checkpoint_read_header(path, &h, &err)) {
        CHECK(0, "%s", err.message);
        return;
    }
    const char *v = mf_checkpoint_metadata(&h, key);
    if (v) text_printf(out, size, "%s", v);
    mf_checkpoint_header_free(&h);
}

/* The checkpoint's regime is batch, augment, weight decay and schedule. */
static void expect_regime(const char *what, const char *name, int batch, int augment, float wd,
                          const char *schedule)
{
    char b[64], a[64], w[64], s[64];
    meta(name, "batch", b, sizeof b);
    meta(name, "augment", a, sizeof a);
    meta(name, "weight_decay", w, sizeof w);
    meta(name, "schedule", s, sizeof s);
    CHECK(atoi(b) == batch && atoi(a) == augment && strtof(w, NULL) == wd && !strcmp(s, schedule),
          "%s: batch %s, augment %s, weight decay %s, schedule %s; expected %d, %d, %g, %s", what,
          b, a, w, s, batch, augment, (double)wd, schedule);
}

/* The "lr" of each line of a log, up to max lines: the count. */
static int log_rates(const char *name, double *lr, int max)
{
    char path[PATH_MAX];
    path_in(path, name);
    char *t = read_text(path, NULL);
    int n = 0;
    for (const char *p = t; p && n < max && (p = strstr(p, "\"lr\":")); p += 5) lr[n++] = atof(p + 5);
    free(t);
    return n;
}

/* Replaces find in a file by with padded with spaces to the same length,
 * within the first limit bytes (a checkpoint's header: its length and the
 * data offsets stay as they are). 1 when found. */
static int edit_file(const char *name, const char *find, const char *with, size_t limit)
{
    char path[PATH_MAX];
    path_in(path, name);
    size_t len;
    char *t = read_text(path, &len);
    if (!t) return 0;
    char *hit = memmem(t, len < limit ? len : limit, find, strlen(find));
    size_t fl = strlen(find), wl = strlen(with);
    int ok = hit && wl <= fl;
    if (ok) {
        memcpy(hit, with, wl);
        memset(hit + wl, ' ', fl - wl);
        ok = write_bytes(path, t, len) == 0;
    }
    free(t);
    return ok;
}

/* The one run directory of a grid directory (its only subdirectory with a
 * run.json), as a name under root. */
static int grid_run(const char *grid, char *out, size_t size)
{
    char dir[PATH_MAX];
    path_in(dir, grid);
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char probe[PATH_MAX + 300];
        text_printf(probe, sizeof probe, "%s/%s/run.json", dir, e->d_name);
        if (e->d_name[0] != '.' && file_exists(probe)) {
            text_printf(out, size, "%s/%s", grid, e->d_name);
            found++;
        }
    }
    if (d) closedir(d);
    CHECK(found == 1, "%s holds %d runs, expected 1", grid, found);
    return found == 1;
}

/* ---- train ------------------------------------------------------------------------- */

static void test_paper_protocol_resolves(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    if (run_expect(0, TINY " --protocol paper --epochs 2 --save paper.st --log paper.jsonl")) {
        expect_regime("--protocol paper", "paper.st", 256, 0, 0.0f, "constant");
        char lr[64], warm[64];
        meta("paper.st", "lr", lr, sizeof lr);
        meta("paper.st", "warmup_epochs", warm, sizeof warm);
        CHECK(strtof(lr, NULL) == 2e-2f && strtof(warm, NULL) < 0, "lr %s, warmup %s", lr, warm);
        /* Constant: the peak rate at the last step of every epoch, no warmup
         * (one step per epoch, so the first epoch's rate is step 1's). */
        double rates[4];
        int n = log_rates("paper.jsonl", rates, 4);
        CHECK(n == 2 && rates[0] == 0.02 && rates[1] == 0.02, "%d epochs logged, rates %g %g", n,
              n > 0 ? rates[0] : -1, n > 1 ? rates[1] : -1);
    }
    if (run_expect(0, TINY " --protocol default --epochs 1 --save default.st --log default.jsonl"))
        expect_regime("--protocol default", "default.st", 128, 1, 0.05f, "cosine");
    double rates[2];
    CHECK(log_rates("default.jsonl", rates, 2) == 1 && rates[0] == 0, "cosine ends at 0, not %g",
          rates[0]);
    child_result r;
    run_line(&r, TINY " --protocol fast");
    CHECK(r.status == 2 && strstr(r.err, "unknown --protocol 'fast' (choose default, paper)"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    /* The scan for --protocol leaves the arguments in their order: a value
     * missing at the end is still missing. */
    child_run_linef(&r, root, TIMEOUT, NULL, "experiment quick --protocol paper --only");
    CHECK(r.status == 2 && strstr(r.err, "missing value: --only"), "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    run_line(&r, TINY " --schedule linear");
    CHECK(r.status == 2 && strstr(r.err, "unknown --schedule 'linear' (choose cosine, constant)"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
}

static void test_explicit_options_win(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    struct {
        const char *args;
        int batch, augment;
        float wd;
        const char *schedule;
    } cases[] = {
        {"--batch 64 --protocol paper", 64, 0, 0.0f, "constant"},
        {"--protocol paper --batch 64", 64, 0, 0.0f, "constant"},
        {"--augment --protocol paper", 256, 1, 0.0f, "constant"},
        {"--protocol paper --wd 0.01 --schedule cosine", 256, 0, 0.01f, "cosine"},
        {"--schedule cosine --protocol paper", 256, 0, 0.0f, "cosine"},
        {"--schedule constant", 128, 1, 0.05f, "constant"},
        {"--protocol paper --protocol default", 128, 1, 0.05f, "cosine"},
        {"--no-augment --protocol default --batch 32", 32, 0, 0.05f, "cosine"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (run_expect(0, TINY " --epochs 1 %s --save over.st", cases[i].args))
            expect_regime(cases[i].args, "over.st", cases[i].batch, cases[i].augment, cases[i].wd,
                          cases[i].schedule);
}

static void test_resume_with_another_schedule_is_refused(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    if (!run_expect(0, TINY " --schedule constant --batch 64 --epochs 1 --save c.st")) return;
    char ckpt[PATH_MAX], copy[PATH_MAX];
    path_in(ckpt, "c.st");
    path_in(copy, "c-copy.st");
    copy_file(ckpt, copy, -1);
    struct {
        const char *args, *names[3];
    } cases[] = {
        {"--schedule cosine", {"schedule: stored constant, requested cosine", NULL, NULL}},
        {"--protocol default",
         {"schedule: stored constant, requested cosine", "batch: stored 64, requested 128", NULL}},
        {"--protocol paper",
         {"batch: stored 64, requested 256", "augment: stored on, requested off",
          "wd: stored 0.05, requested 0"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        child_result r;
        run_line(&r, "train --resume c.st --epochs 2 %s", cases[i].args);
        CHECK(r.status == 2 && strstr(r.err, "c.st: made with other settings ("),
              "--resume with %s: exit %d: %s", cases[i].args, r.status, r.err);
        for (int k = 0; k < 3 && cases[i].names[k]; k++)
            CHECK(strstr(r.err, cases[i].names[k]), "--resume with %s does not name '%s': %s",
                  cases[i].args, cases[i].names[k], r.err);
        CHECK(count_lines(r.err) == 1, "%d lines: %s", count_lines(r.err), r.err);
        child_result_free(&r);
    }
    CHECK(same_file(ckpt, copy), "a refused resume changed the checkpoint");
    /* The run's own schedule is accepted, and the run stays constant. */
    if (run_expect(0, "train --resume c.st --epochs 2 --schedule constant --log c.jsonl")) {
        double rates[2];
        int n = log_rates("c.jsonl", rates, 2);
        CHECK(n == 1 && rates[0] == 0.02, "%d lines, rate %g after the resume", n, rates[0]);
    }
    /* --batch and the like still come from the checkpoint alone. */
    child_result r;
    run_line(&r, "train --resume c.st --epochs 3 --batch 64");
    CHECK(r.status == 2 && strstr(r.err, "come from the checkpoint"), "exit %d: %s", r.status, r.err);
    child_result_free(&r);
}

static void test_old_checkpoint_loads_as_cosine(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    /* Cosine over 2 epochs of 4 steps, stopped after the first; "old" is the
     * same file without the schedule key, as a build before it wrote. */
    if (!run_expect(0, TINY " --batch 64 --epochs 1 --save new.st")) return;
    char n[PATH_MAX], o[PATH_MAX];
    path_in(n, "new.st");
    path_in(o, "old.st");
    copy_file(n, o, -1);
    CHECK(edit_file("old.st", "\"schedule\":\"cosine\",", "", 1 << 16), "no schedule key to strip");
    char s[64];
    meta("old.st", "schedule", s, sizeof s);
    CHECK(!s[0], "old.st still says schedule %s", s);
    run_expect(0, "eval --checkpoint old.st --limit-test 100");
    child_result r;
    run_line(&r, "train --resume old.st --epochs 2 --schedule constant");
    CHECK(r.status == 2 && strstr(r.err, "schedule: stored cosine, requested constant"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    /* Resumed, both continue the same cosine run to the same bytes. */
    if (run_expect(0, "train --resume new.st --epochs 2 --log new.jsonl") &&
        run_expect(0, "train --resume old.st --epochs 2 --log old.jsonl")) {
        CHECK(same_file(n, o), "the checkpoint without the key did not resume as cosine");
        meta("old.st", "schedule", s, sizeof s);
        CHECK(!strcmp(s, "cosine"), "resumed and saved with schedule '%s'", s);
        double a[2] = {-1, -1}, b[2] = {-1, -1};
        int na = log_rates("new.jsonl", a, 2), nb = log_rates("old.jsonl", b, 2);
        CHECK(na == 1 && nb == 1 && a[0] == 0 && b[0] == 0,
              "%d and %d lines logged; cosine's last rate: %g and %g", na, nb, a[0], b[0]);
    }
}

/* ---- experiment ------------------------------------------------------------------- */

static void test_experiment_protocol(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    if (!run_expect(0, "experiment quick --out gp --protocol paper --limit-train 256 " GRID)) return;
    char run[PATH_MAX], runj[PATH_MAX + 16];
    if (!grid_run("gp", run, sizeof run)) return;
    text_printf(runj, sizeof runj, "%s/%s/run.json", root, run);
    char *t = read_text(runj, NULL);
    const char *want[] = {"\"batch\":\"256\"", "\"augment\":\"off\"", "\"wd\":\"0\"",
                          "\"schedule\":\"constant\""};
    for (size_t i = 0; i < 4; i++)
        CHECK(t && strstr(t, want[i]), "run.json lacks %s: %s", want[i], t ? t : "(none)");
    free(t);
    /* The same values given one by one are the same run: skipped. */
    child_result r;
    run_line(&r, "experiment quick --out gp --schedule constant --no-augment --batch 256 --wd 0 "
                 "--limit-train 256 " GRID);
    CHECK(r.status == 0 && strstr(r.out, "skipped"), "exit %d: %s%s", r.status, r.out, r.err);
    child_result_free(&r);
    run_line(&r, "experiment quick --out gp --protocol paper --schedule cosine --limit-train 256 " GRID);
    CHECK(r.status == 2 && strstr(r.err, "schedule: stored constant, requested cosine"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    run_line(&r, "experiment quick --out gp --limit-train 256 " GRID);
    CHECK(r.status == 2 && strstr(r.err, "schedule: stored constant, requested cosine") &&
              strstr(r.err, "batch: stored 256, requested 128"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
}

static void test_experiment_old_run_reads_as_cosine(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    if (!run_expect(0, "experiment quick --out go --limit-train 200 --batch 50 " GRID)) return;
    char run[PATH_MAX], file[PATH_MAX + 32];
    if (!grid_run("go", run, sizeof run)) return;
    /* As a build before the schedule wrote them. */
    const char *files[] = {"run.json", "result.json"};
    for (int i = 0; i < 2; i++) {
        text_printf(file, sizeof file, "%s/%s", run, files[i]);
        CHECK(edit_file(file, ",\"schedule\":\"cosine\"", "", SIZE_MAX), "%s: no schedule", file);
    }
    text_printf(file, sizeof file, "%s/checkpoint.safetensors", run);
    CHECK(edit_file(file, "\"schedule\":\"cosine\",", "", 1 << 16), "%s: no schedule", file);
    child_result r;
    run_line(&r, "experiment quick --out go --limit-train 200 --batch 50 " GRID);
    CHECK(r.status == 0 && strstr(r.out, "skipped"), "exit %d: %s%s", r.status, r.out, r.err);
    child_result_free(&r);
    run_line(&r, "experiment quick --out go --limit-train 200 --batch 50 --schedule constant " GRID);
    CHECK(r.status == 2 && strstr(r.err, "schedule: stored cosine, requested constant"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
}

/* --precision: an unknown name and bf16 where it cannot run (MINFORMER_NO_BF16
 * stands in for a CPU without AMX) are usage errors naming the problem. */
static void test_precision_refused(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    child_result r;
    run_line(&r, TINY " --epochs 1 --precision fp16");
    CHECK(r.status == 2 && strstr(r.err, "unknown --precision 'fp16' (choose fp32, bf16)") &&
              count_lines(r.err) == 1,
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    setenv("MINFORMER_NO_BF16", "1", 1);
    const char *lines[] = {TINY " --epochs 1 --precision bf16",
                           "experiment quick --out gx --precision bf16 " GRID};
    for (int i = 0; i < 2; i++) {
        run_line(&r, "%s", lines[i]);
        CHECK(r.status == 2 && strstr(r.err, "--precision bf16: bf16 is not available here") &&
                  strstr(r.err, "MINFORMER_NO_BF16") && count_lines(r.err) == 1,
              "'%s': exit %d: %s", lines[i], r.status, r.err);
        child_result_free(&r);
    }
    unsetenv("MINFORMER_NO_BF16");
}

/* Where bf16 runs: the checkpoint records it, evaluates in either precision,
 * resumes only in its own, and an experiment's runs keep it in run.json. */
static void test_precision_bf16_run(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    mf_error err;
    if (mf_precision_check(MF_PRECISION_BF16, &err)) SKIP("%s", err.message);
    if (!run_expect(0, TINY " --epochs 1 --precision bf16 --save b.st")) return;
    if (!run_expect(0, TINY " --epochs 1 --save f.st")) return;
    char p[64];
    meta("b.st", "precision", p, sizeof p);
    CHECK(!strcmp(p, "bf16"), "b.st's precision: '%s'", p);
    meta("f.st", "precision", p, sizeof p);
    CHECK(!strcmp(p, "fp32"), "f.st's precision: '%s'", p);
    run_expect(0, "eval --checkpoint b.st --limit-test 100 --precision fp32");
    run_expect(0, "eval --checkpoint b.st --limit-test 100 --precision bf16");
    run_expect(0, "eval --checkpoint f.st --limit-test 100 --precision bf16");
    child_result r;
    run_line(&r, "train --resume b.st --epochs 2 --precision fp32");
    CHECK(r.status == 2 && strstr(r.err, "precision: stored bf16, requested fp32") &&
              count_lines(r.err) == 1,
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    if (run_expect(0, "train --resume b.st --epochs 2")) {
        meta("b.st", "precision", p, sizeof p);
        CHECK(!strcmp(p, "bf16"), "after the resume b.st's precision is '%s'", p);
    }
    if (!run_expect(0, "experiment quick --out gb --precision bf16 --limit-train 256 " GRID)) return;
    char run[PATH_MAX], runj[PATH_MAX + 16];
    if (!grid_run("gb", run, sizeof run)) return;
    text_printf(runj, sizeof runj, "%s/%s/run.json", root, run);
    char *t = read_text(runj, NULL);
    CHECK(t && strstr(t, "\"precision\":\"bf16\""), "run.json: %s", t ? t : "(none)");
    free(t);
    run_line(&r, "experiment quick --out gb --limit-train 256 " GRID);
    CHECK(r.status == 2 && strstr(r.err, "precision: stored bf16, requested fp32"), "exit %d: %s",
          r.status, r.err);
    child_result_free(&r);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (child_setup(root, sizeof root, "protocol", argv[0], data_dir)) return 1;
    char probe[PATH_MAX + 64];
    text_printf(probe, sizeof probe, "%s/mnist", data_dir);
    have_mnist = file_exists(probe);

    RUN(test_paper_protocol_resolves);
    RUN(test_explicit_options_win);
    RUN(test_resume_with_another_schedule_is_refused);
    RUN(test_old_checkpoint_loads_as_cosine);
    RUN(test_experiment_protocol);
    RUN(test_experiment_old_run_reads_as_cosine);
    RUN(test_precision_refused);
    RUN(test_precision_bf16_run);
    remove_tree(root);
    return check_report();
}
