/* Grid files (`minformer experiment FILE.json`): the built-in grids are the
 * files in grids/ with their run names; every prefix and a set of broken
 * files are refused with one line naming the file and the key; and through
 * the binary, on small subsets of the real MNIST, a file's runs (runs x
 * axes) train, are skipped when finished, take the command line's options
 * over the file's, and a run interrupted by SIGINT resumes to the bits of an
 * uninterrupted one. Tests that need MNIST SKIP when it is missing. */
#define _GNU_SOURCE
#include "check.h"
#include "child.h"
#include "minformer.h"
#include "experiment/experiment.h"

#define TIMEOUT 300.0

static char root[PATH_MAX];
static char data_dir[PATH_MAX];
static int have_mnist;

static char *slurp(const char *path)
{
    char *t = read_text(path, NULL);
    return t ? t : calloc(1, 1);
}

static int count_substr(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

/* Writes root/name with text; returns the path in out. */
static void write_grid(const char *name, const char *text, char *out, size_t size)
{
    text_printf(out, size, "%s/%s", root, name);
    write_bytes(out, text, strlen(text));
}

/* `minformer experiment FILE --out root/OUT --data DATA EXTRA`, in root. */
static int run_grid(child_result *r, const char *file, const char *out, const char *extra)
{
    child_args a = {0};
    args_add(&a, "experiment", file, "--data", data_dir, NULL);
    args_addf(&a, "--out");
    args_addf(&a, "%s/%s", root, out);
    args_split(&a, extra);
    return child_run(r, root, TIMEOUT, &a);
}

/* ---- the built-in grids ------------------------------------------------------------ */

static void test_builtin_grids_are_the_files(void)
{
    int n;
    const mf_experiment_grid *g = mf_experiment_grids(&n);
    CHECK(n == 4 && mf_experiment_builtin_grid_count == 4, "%d grids of %d files", n,
          mf_experiment_builtin_grid_count);
    static const char *names[4] = {"quick", "table1", "table2", "table3"};
    static const int counts[4] = {3, 16, 15, 15};
    for (int i = 0; i < n && i < 4; i++)
        CHECK(!strcmp(g[i].name, names[i]) && g[i].count == counts[i], "grid %d: %s with %d runs", i,
              g[i].name, g[i].count);
    /* The names runs had when the grids were C tables: directories of
     * earlier grids resume. table1: dataset x layers x MLP x heads. */
    const mf_experiment_grid *t1 = mf_experiment_grid_find("table1");
    static const char *t1_names[16] = {
        "mnist-L6-H1-mlp4-unchanged",   "mnist-L6-H4-mlp4-unchanged",   "mnist-L6-H1-mlp0-unchanged",
        "mnist-L6-H4-mlp0-unchanged",   "mnist-L12-H1-mlp4-unchanged",  "mnist-L12-H4-mlp4-unchanged",
        "mnist-L12-H1-mlp0-unchanged",  "mnist-L12-H4-mlp0-unchanged",  "cifar10-L6-H1-mlp4-unchanged",
        "cifar10-L6-H4-mlp4-unchanged", "cifar10-L6-H1-mlp0-unchanged", "cifar10-L6-H4-mlp0-unchanged",
        "cifar10-L12-H1-mlp4-unchanged", "cifar10-L12-H4-mlp4-unchanged",
        "cifar10-L12-H1-mlp0-unchanged", "cifar10-L12-H4-mlp0-unchanged"};
    for (int i = 0; t1 && i < 16 && i < t1->count; i++)
        CHECK(!strcmp(t1->specs[i].name, t1_names[i]), "table1 run %d: %s", i, t1->specs[i].name);
    const mf_experiment_grid *t3 = mf_experiment_grid_find("table3");
    static const char *t3_names[15] = {
        "unchanged", "unchanged", "wqk", "minimal", "unchanged", "unchanged", "symmetric", "symmetric",
        "wqk", "minimal", "mirrored", "cholesky", "wvo", "vo-none", "shaped"};
    static const int t3_heads[15] = {1, 4, 1, 1, 1, 4, 1, 4, 1, 1, 1, 1, 1, 4, 1};
    static const mf_qk_kind t3_qk[15] = {
        MF_QK_SEPARATE, MF_QK_SEPARATE, MF_QK_COLLAPSED, MF_QK_COLLAPSED, MF_QK_SEPARATE,
        MF_QK_SEPARATE, MF_QK_SHARED, MF_QK_SHARED, MF_QK_COLLAPSED, MF_QK_COLLAPSED,
        MF_QK_SYMMETRIC, MF_QK_CHOLESKY, MF_QK_SEPARATE, MF_QK_SEPARATE, MF_QK_COLLAPSED};
    static const mf_vo_kind t3_vo[15] = {
        MF_VO_SEPARATE, MF_VO_SEPARATE, MF_VO_SEPARATE, MF_VO_NONE, MF_VO_SEPARATE, MF_VO_SEPARATE,
        MF_VO_SEPARATE, MF_VO_SEPARATE, MF_VO_SEPARATE, MF_VO_NONE, MF_VO_SEPARATE, MF_VO_SEPARATE,
        MF_VO_COLLAPSED, MF_VO_NONE, MF_VO_SHAPED};
    for (int i = 0; t3 && i < 15 && i < t3->count; i++) {
        const mf_experiment_spec *s = &t3->specs[i];
        char want[96];
        text_printf(want, sizeof want, "cifar10-L6-H%d-mlp%d-%s", t3_heads[i], i < 4 ? 4 : 0,
                    t3_names[i]);
        CHECK(!strcmp(s->name, want) && s->cfg.qk == t3_qk[i] && s->cfg.vo == t3_vo[i] &&
              s->dataset == MF_CIFAR10 && s->set == MF_EXP_EPOCHS && s->epochs == 10,
              "table3 run %d: %s, want %s", i, s->name, want);
    }
    /* The embedded texts are the files of this checkout (when the tests
     * run from it). */
    for (int i = 0; i < mf_experiment_builtin_grid_count; i++) {
        char path[128];
        text_printf(path, sizeof path, "grids/%s.json", mf_experiment_builtin_grids[i].name);
        size_t len;
        char *t = read_text(path, &len);
        if (!t) continue;
        CHECK(len == mf_experiment_builtin_grids[i].len &&
              !memcmp(t, mf_experiment_builtin_grids[i].text, len), "%s differs from the binary's", path);
        free(t);
    }
}

/* ---- malformed files --------------------------------------------------------------- */

static const char good[] =
    "{\"title\": \"t\", \"dataset\": \"mnist\", \"epochs\": 1, \"dim\": 16,\n"
    " \"name\": \"{dataset}-{variant}-lr{lr}-{augment}\",\n"
    " \"runs\": [{\"variant\": \"a\", \"preset\": \"minimal\", \"mlp\": 0},\n"
    "          {\"variant\": \"b\", \"qk\": \"cholesky\", \"vo\": \"shaped\", \"seed\": 3}],\n"
    " \"axes\": {\"lr\": [0.001, 0.01], \"augment\": [true, false]}}\n";

/* Every prefix of a valid file but the whole (without its last newline), and
 * the file with each byte replaced, is parsed or refused with one line that
 * starts with the file's name (an escaped newline in a key or value shows
 * up in messages as '?'). */
static void test_every_prefix_and_byte_is_handled(void)
{
    mf_experiment_grid g;
    mf_error err;
    CHECK(mf_experiment_grid_parse(good, strlen(good), "g.json", "g", &g, &err) == MF_OK, "%s",
          err.message);
    CHECK(g.count == 8 && !strcmp(g.specs[0].name, "mnist-a-lr0.001-true") &&
          !strcmp(g.specs[7].name, "mnist-b-lr0.01-false"), "%d rows, %s", g.count,
          g.count ? g.specs[0].name : "");
    CHECK(g.count == 8 && g.specs[1].augment == 0 && (g.specs[1].set & MF_EXP_AUGMENT) &&
          g.specs[4].seed == 3 && g.specs[4].cfg.vo == MF_VO_SHAPED && g.specs[0].cfg.dim == 16,
          "row settings");
    mf_experiment_grid_free(&g);
    /* protocol: train's --protocol values, the row's own batch winning. */
    static const char paper[] = "{\"dataset\": \"cifar10\", \"protocol\": \"paper\", "
                                "\"runs\": [{\"name\": \"a\"}, {\"name\": \"b\", \"batch\": 64, "
                                "\"precision\": \"bf16\"}]}";
    CHECK(mf_experiment_grid_parse(paper, strlen(paper), "p.json", "p", &g, &err) == MF_OK, "%s",
          err.message);
    CHECK(g.count == 2 && g.specs[0].batch == 256 && g.specs[1].batch == 64 && !g.specs[0].augment &&
          g.specs[1].wd == 0.0f && g.specs[1].schedule == MF_SCHEDULE_CONSTANT &&
          g.specs[1].precision == MF_PRECISION_BF16 && (g.specs[1].set & MF_EXP_PRECISION) &&
          !(g.specs[0].set & MF_EXP_PRECISION), "protocol paper, precision");
    mf_experiment_grid_free(&g);
    int refused = 0, bad_message = 0;
    size_t n = strlen(good);
    char buf[sizeof good];
    for (size_t len = 0; len < n; len++) {
        mf_status st = mf_experiment_grid_parse(good, len, "g.json", "g", &g, &err);
        if (st) {
            refused++;
            bad_message += strncmp(err.message, "g.json", 6) != 0 || strchr(err.message, '\n');
        }
        mf_experiment_grid_free(&g);
    }
    CHECK(refused == (int)n - 1 && bad_message == 0, "%d of %zu prefixes refused, %d badly", refused,
          n, bad_message);
    static const char subst[] = "\"{}[],:0x-\\\n";
    for (size_t i = 0; i < n; i++)
        for (const char *c = subst; *c; c++) {
            memcpy(buf, good, n);
            buf[i] = *c;
            if (!mf_experiment_grid_parse(buf, n, "g.json", "g", &g, &err)) mf_experiment_grid_free(&g);
            else if (strncmp(err.message, "g.json", 6) || strchr(err.message, '\n')) {
                bad_message++;
                fprintf(stderr, "byte %zu as '%c': %s\n", i, *c, err.message);
            }
        }
    CHECK(bad_message == 0, "%d messages without the file's name", bad_message);
}

static void test_malformed_files_give_one_line(void)
{
    static const struct {
        const char *name, *text, *needle;
    } cases[] = {
        {"unknown.json", "{\"dataset\":\"mnist\",\"runs\":[{\"hedas\":2}]}", "'runs[0].hedas'"},
        {"type.json", "{\"dataset\":\"mnist\",\"runs\":[{\"heads\":\"2\"}]}", "'runs[0].heads': needs an integer"},
        {"range.json", "{\"dataset\":\"mnist\",\"axes\":{\"lr\":[0.1,-1]}}", "'axes.lr[1]'"},
        {"fraction.json", "{\"dataset\":\"mnist\",\"runs\":[{\"layers\":1.5}]}", "'runs[0].layers'"},
        {"value.json", "{\"dataset\":\"mnist\",\"runs\":[{\"qk\":\"sideways\"}]}", "'runs[0].qk'"},
        {"emptyaxis.json", "{\"dataset\":\"mnist\",\"axes\":{\"lr\":[]}}", "'axes.lr'"},
        {"emptyruns.json", "{\"dataset\":\"mnist\",\"runs\":[]}", "'runs'"},
        {"duplicate.json", "{\"dataset\":\"mnist\",\"runs\":[{\"name\":\"x\",\"lr\":0.1},{\"name\":\"x\"}]}",
         "both named 'x'"},
        {"same.json", "{\"dataset\":\"mnist\",\"runs\":[{\"lr\":0.1},{\"lr\":0.1}]}", "both named"},
        {"array.json", "[{\"dataset\":\"mnist\"}]", "a JSON object"},
        {"truncated.json", "{\"dataset\":\"mnist\",\n\"runs\":[{\"lr\":0.1}", ":2:"},
        {"syntax.json", "{\"dataset\":\"mnist\",\n  \"runs\":[{\"lr\":0.1,}]}", ":2:"},
        {"nothing.json", "{\"dataset\":\"mnist\"}", "'runs'"},
        {"rule.json", "{\"dataset\":\"mnist\",\"runs\":[{\"qk\":\"collapsed\",\"heads\":4}]}", "runs[0]"},
        {"twice.json", "{\"dataset\":\"mnist\",\"runs\":[{\"lr\":0.1}],\"axes\":{\"lr\":[1]}}", "'runs[0].lr'"},
        {"template.json", "{\"dataset\":\"mnist\",\"name\":\"{nope}\",\"axes\":{\"lr\":[1]}}", "'name'"},
        {"slash.json", "{\"dataset\":\"mnist\",\"runs\":[{\"name\":\"../x\"}]}", "'../x'"},
        {"folder.json", "{\"dataset\":\"folder:/tmp\",\"runs\":[{}]}", "'dataset'"},
        {"seed.json", "{\"dataset\":\"mnist\",\"runs\":[{\"seed\":1e3}]}", "'runs[0].seed'"},
        {"empty.json", "", "empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[PATH_MAX + 64];
        write_grid(cases[i].name, cases[i].text, path, sizeof path);
        child_result r;
        run_grid(&r, path, "never", "");
        CHECK(r.status == 2 && count_lines(r.err) == 1 && !r.out[0] && strstr(r.err, path) &&
                  strstr(r.err, cases[i].needle),
              "%s: exit %d, want one line naming it and %s:\n%s%s", cases[i].name, r.status,
              cases[i].needle, r.out, r.err);
        child_result_free(&r);
    }
    /* Too large, missing: runtime errors naming the file. */
    char path[PATH_MAX + 64];
    text_printf(path, sizeof path, "%s/large.json", root);
    FILE *f = fopen(path, "w");
    for (int i = 0; f && i < (1 << 20) + 8; i++) fputc(' ', f);
    if (f) fclose(f);
    child_result r;
    run_grid(&r, path, "never", "");
    CHECK(r.status == 1 && count_lines(r.err) == 1 && strstr(r.err, path), "large: %d %s", r.status,
          r.err);
    child_result_free(&r);
    text_printf(path, sizeof path, "%s/missing.json", root);
    run_grid(&r, path, "never", "");
    CHECK(r.status == 1 && count_lines(r.err) == 1 && strstr(r.err, path), "missing: %d %s", r.status,
          r.err);
    child_result_free(&r);
    run_grid(&r, "nosuchgrid", "never", "");
    CHECK(r.status == 2 && strstr(r.err, "unknown grid 'nosuchgrid'"), "unknown: %d %s", r.status, r.err);
    child_result_free(&r);
    text_printf(path, sizeof path, "%s/never", root);
    CHECK(!file_exists(path), "a refused grid made its directory");
}

/* ---- through the binary -------------------------------------------------------------- */

static const char small[] =
    "{\"title\": \"two models by two learning rates\", \"dataset\": \"mnist\",\n"
    " \"epochs\": 1, \"dim\": 16, \"layers\": 1, \"limit_train\": 256, \"limit_test\": 128,\n"
    " \"runs\": [{\"preset\": \"unchanged\", \"mlp\": 0}, {\"preset\": \"minimal\", \"mlp\": 0}],\n"
    " \"axes\": {\"lr\": [0.001, 0.01]}}\n";

static void test_a_file_grid_runs_and_skips(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    char path[PATH_MAX + 64], csvp[PATH_MAX + 64];
    write_grid("small.json", small, path, sizeof path);
    child_result r;
    run_grid(&r, path, "small", "--threads 1");
    CHECK(r.status == 0, "exit %d: %s", r.status, r.err);
    CHECK(strstr(r.out, "experiment small: 4 runs, 1 epoch each, limited to the first") &&
          strstr(r.out, "\n  two models by two learning rates\n") &&
          strstr(r.out, "(first 256 training images)") && strstr(r.out, "(4 finished runs of 4)"),
          "output:\n%s", r.out);
    child_result_free(&r);
    text_printf(csvp, sizeof csvp, "%s/small/results.csv", root);
    char *csv = slurp(csvp);
    static const char *runs[4] = {"unchanged-lr0.001,", "unchanged-lr0.01,", "minimal-lr0.001,",
                                  "minimal-lr0.01,"};
    int order = count_lines(csv) == 5;
    const char *at = csv;
    for (int i = 0; i < 4 && order; i++) {
        const char *p = strstr(at, runs[i]);
        order = p != NULL;
        at = p ? p : at;
    }
    CHECK(order && strstr(csv, "minimal-lr0.01,mnist,1,1,0,minimal,collapsed,none,"),
          "results.csv:\n%s", csv);
    free(csv);
    text_printf(csvp, sizeof csvp, "%s/small/results.md", root);
    char *md = slurp(csvp);
    CHECK(!strncmp(md, "# small\n", 8), "results.md starts: %.40s", md);
    free(md);
    /* Again: all skipped; --only; the command line's epochs win over the file's. */
    run_grid(&r, path, "small", "--threads 1");
    CHECK(r.status == 0 && count_substr(r.out, "skipped") == 4, "rerun %d:\n%s", r.status, r.out);
    child_result_free(&r);
    run_grid(&r, path, "small", "--threads 1 --only minimal");
    CHECK(r.status == 0 && count_substr(r.out, "skipped") == 2 && strstr(r.out, ": 2 runs"),
          "--only %d:\n%s", r.status, r.out);
    child_result_free(&r);
    run_grid(&r, path, "small", "--threads 1 --epochs 2");
    CHECK(r.status == 2 && strstr(r.err, "epochs: stored 1, requested 2"), "--epochs 2 %d: %s", r.status,
          r.err);
    child_result_free(&r);
    /* The built-in grids from any directory (the tests run in root). */
    child_args a = {0};
    args_split(&a, "experiment quick --only minimal --epochs 1 --limit-train 200 --limit-test 100 "
                   "--batch 50 --threads 1");
    args_add(&a, "--data", data_dir, "--out", "builtin", NULL);
    child_run(&r, root, TIMEOUT, &a);
    CHECK(r.status == 0 && strstr(r.out, "[1/1] mnist-L6-H1-mlp0-minimal"), "quick: %d %s%s",
          r.status, r.out, r.err);
    child_result_free(&r);
}

/* SIGINT in the second epoch; the rerun resumes and ends with the summary,
 * with the checkpoint of a run never stopped. */
static void test_an_interrupted_file_grid_resumes(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    static const char text[] =
        "{\"dataset\": \"mnist\", \"epochs\": 3, \"limit_train\": 3000, \"limit_test\": 100,\n"
        " \"batch\": 50, \"dim\": 16, \"layers\": 2,\n"
        " \"runs\": [{\"name\": \"first\", \"preset\": \"minimal\", \"mlp\": 0},\n"
        "          {\"name\": \"second\", \"mlp\": 0, \"seed\": 2}]}\n";
    char path[PATH_MAX + 64], ckpt[PATH_MAX + 64], other[PATH_MAX + 64];
    write_grid("stop.json", text, path, sizeof path);
    child_args a = {0};
    args_add(&a, "experiment", path, "--data", data_dir, "--threads", "1", NULL);
    args_addf(&a, "--out");
    args_addf(&a, "%s/stopped", root);
    child_proc p;
    child_start(&p, root, &a);
    text_printf(ckpt, sizeof ckpt, "%s/stopped/first/checkpoint.safetensors", root);
    while (!file_exists(ckpt) && !child_ended(&p) && child_now() - p.started < TIMEOUT)
        child_sleep(0.005);
    kill(p.pid, SIGINT);
    child_result r;
    child_wait(&p, TIMEOUT, &r);
    int interrupted = r.status == 130;
    CHECK(!interrupted || strstr(r.err, "stopped/first/checkpoint.safetensors"), "%s", r.err);
    child_result_free(&r);
    if (!interrupted) SKIP("the grid ended before SIGINT reached it");
    run_grid(&r, path, "stopped", "--threads 1");
    CHECK(r.status == 0 && strstr(r.out, "first: resuming at epoch") &&
          strstr(r.out, "(2 finished runs of 2)"), "resume %d:\n%s%s", r.status, r.out, r.err);
    child_result_free(&r);
    run_grid(&r, path, "straight", "--threads 1");
    CHECK(r.status == 0, "straight %d: %s", r.status, r.err);
    child_result_free(&r);
    for (int i = 0; i < 2; i++) {
        const char *run = i ? "second" : "first";
        text_printf(ckpt, sizeof ckpt, "%s/stopped/%s/checkpoint.safetensors", root, run);
        text_printf(other, sizeof other, "%s/straight/%s/checkpoint.safetensors", root, run);
        CHECK(same_file(ckpt, other), "%s: the resumed checkpoint differs", run);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    if (child_setup(root, sizeof root, "grid_file", argv[0], data_dir)) return 1;
    char probe[PATH_MAX + 64];
    text_printf(probe, sizeof probe, "%s/mnist", data_dir);
    have_mnist = file_exists(probe);
    RUN(test_builtin_grids_are_the_files);
    RUN(test_every_prefix_and_byte_is_handled);
    RUN(test_malformed_files_give_one_line);
    RUN(test_a_file_grid_runs_and_skips);
    RUN(test_an_interrupted_file_grid_resumes);
    remove_tree(root);
    return check_report();
}
