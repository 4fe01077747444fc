/* What identifies a run, and the grid directory that relies on it: run
 * identities (make, compare, JSON round trip, strict parsing), the log line
 * (null for non-finite numbers), and end to end through the binary on small
 * subsets of the real MNIST: a rerun with any other setting or other data is
 * refused with the list of what differs, result.json and lr.json are
 * validated, runs are locked so that concurrent processes share a grid and
 * together produce a serial grid's results, the summary covers every finished
 * run, and train keeps its work when the log, the output or the terminal
 * goes away. Tests that need MNIST SKIP when it is missing. */
#define _GNU_SOURCE
#include <sys/file.h>

#include "check.h"
#include "child.h"
#include "minformer.h"
#include "experiment/experiment.h"
#include "minformer/run.h"

#define TIMEOUT 300.0

/* A grid run small enough for tests: 3 runs of 1 epoch on 200 images. */
#define GRID "--epochs 1 --limit-train 200 --limit-test 100 --batch 50 --threads 1"
#define TRAIN_TINY                                                                           \
    "train --dataset mnist --preset minimal --mlp 0 --dim 16 --layers 1 --limit-train 100 "        \
    "--limit-test 100 --batch 50 --threads 1"

static char root[PATH_MAX];
static char data_dir[PATH_MAX];
static int have_mnist;

/* ---- helpers ------------------------------------------------------------------- */

/* Runs `minformer LINE` (words split at spaces) plus --data when data is set. */
#define run_line(r, data, ...) child_run_linef(r, root, TIMEOUT, (data) ? data_dir : NULL, __VA_ARGS__)

static char *slurp(const char *path)
{
    char *t = read_text(path, NULL);
    return t ? t : calloc(1, 1);
}

/* The file's text equals want (both may be NULL for "absent"). */
static int text_is(const char *path, const char *want)
{
    char *t = read_text(path, NULL);
    int same = (!t && !want) || (t && want && !strcmp(t, want));
    free(t);
    return same;
}

static int count_of(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* results.csv without its last two columns (seconds, img/s: timing). */
static char *csv_without_timing(const char *path)
{
    char *t = slurp(path);
    char *out = calloc(strlen(t) + 1, 1);
    size_t n = 0;
    for (char *line = t; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t keep = len;
        for (int cut = 0; cut < 2; cut++) {
            while (keep && line[keep - 1] != ',') keep--;
            if (keep) keep--;
        }
        memcpy(out + n, line, keep);
        n += keep;
        out[n++] = '\n';
        line += len + (end ? 1 : 0);
    }
    free(t);
    return out;
}

/* ---- the identity itself ------------------------------------------------------------- */

static void test_identity_compare_and_round_trip(void)
{
    mf_config cfg;
    mf_config_default(&cfg, 28, 1, 10);
    mf_train_opts o;
    mf_train_opts_default(&o);
    o.lr = 0.02f;
    mf_run_identity a, b, c;
    mf_run_identity_make(&a, MF_MNIST, &cfg, &o, 500, 0, 0x1234);
    CHECK(!strcmp(mf_run_identity_get(&a, "lr"), "0.02"), "lr written as %s", mf_run_identity_get(&a, "lr"));
    CHECK(!strcmp(mf_run_identity_get(&a, "data"), "0000000000001234"), "data %s",
          mf_run_identity_get(&a, "data"));
    b = a;
    char diff[400];
    CHECK(mf_run_identity_diff(&a, &b, diff, sizeof diff) == 0, "equal identities differ: %s", diff);
    o.seed = 2;
    o.lr = nextafterf(0.02f, 1.0f); /* one ulp: must differ */
    mf_run_identity_make(&b, MF_MNIST, &cfg, &o, 500, 0, 0x1234);
    CHECK(mf_run_identity_diff(&a, &b, diff, sizeof diff) == 2, "%s", diff);
    CHECK(strstr(diff, "seed: stored 1, requested 2") && strstr(diff, "lr: stored 0.02, requested"),
          "%s", diff);
    mf_error err;
    CHECK(mf_run_identity_check("X", &a, &b, "hint", &err) == MF_ERR_CONFIG &&
          strstr(err.message, "X: made with other settings (") && strstr(err.message, "; hint"),
          "%s", err.message);
    /* A setting in one only is a difference too. */
    b = a;
    mf_run_identity_set(&b, "extra", "1", NULL);
    CHECK(mf_run_identity_diff(&a, &b, diff, sizeof diff) == 1 && strstr(diff, "stored absent"), "%s",
          diff);
    /* JSON round trip, and strict parsing. */
    char *json = mf_run_identity_to_json(&a);
    CHECK(json && !mf_run_identity_parse(json, strlen(json), &c, "id", &err), "%s", err.message);
    CHECK(mf_run_identity_diff(&a, &c, diff, sizeof diff) == 0, "round trip: %s", diff);
    free(json);
    const char *bad[] = {"", "[]", "{\"a\":1}", "{\"a\":\"1\",\"a\":\"2\"}", "{\"\":\"1\"}",
                         "{\"a\":\"0123456789012345678901234567890123456789012345678\"}",
                         "{\"a\":\"x\\u0000\"}", "{\"a\":\"1\"", "{\"a\":null}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mf_error_clear(&err);
        CHECK(mf_run_identity_parse(bad[i], strlen(bad[i]), &c, "id", &err) == MF_ERR_FORMAT &&
                  c.count == 0 && !strncmp(err.message, "id: ", 4),
              "accepted or misreported %s: %s", bad[i], err.message);
    }
}

static void test_log_line_is_json_with_null_for_non_finite(void)
{
    mf_epoch_stats s = {.epoch = 3, .lr = 0.001f, .train_loss = NAN, .train_acc = 0.5f,
                        .test_loss = INFINITY, .test_acc = 0.25f, .seconds = 1.5,
                        .images_per_second = -INFINITY, .images = 100, .train_seconds = 1.0};
    char line[1024];
    int n = mf_run_log_line(&s, line, sizeof line);
    CHECK(n > 0 && line[n - 1] == '\n', "no line");
    CHECK(!strstr(line, "nan") && !strstr(line, "inf"), "non-finite written as such: %s", line);
    mf_json root;
    char msg[128];
    CHECK(mf_json_parse(line, (size_t)n, &root, msg, sizeof msg) == 0, "not JSON (%s): %s", msg, line);
    const mf_json *v = mf_json_get(&root, "train_loss");
    CHECK(v && v->type == MF_JSON_NULL, "train_loss is not null");
    CHECK(mf_json_number(&root, "test_acc", -1) == 0.25, "test_acc wrong");
    mf_json_free(&root);
    CHECK(mf_run_log_line(&s, line, 20) == -1, "a short buffer is not reported");
}

/* ---- experiment: identity on every skip and resume ------------------------------------ */

static void test_rerun_with_other_settings_is_refused(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    child_result r;
    run_line(&r, 1, "experiment quick --out g1 " GRID);
    CHECK(r.status == 0, "grid failed (%d): %s", r.status, r.err);
    child_result_free(&r);
    char result[PATH_MAX + 64];
    text_printf(result, sizeof result, "%s/g1/mnist-L6-H1-mlp0-minimal/result.json", root);
    char *before = slurp(result);
    struct {
        const char *extra, *setting;
    } cases[] = {{"--seed 2", "seed: stored 1, requested 2"},
                 {"--batch 25", "batch: stored 50, requested 25"},
                 {"--lr 0.01", "lr: stored 0.004, requested 0.01"},
                 {"--no-augment", "augment: stored on, requested off"},
                 {"--limit-test 50", "limit_test: stored 100, requested 50"},
                 {"--tune-lr", "lr_choice: stored default, requested tuned"},
                 {"--epochs 2", "epochs: stored 1, requested 2"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[512];
        text_printf(line, sizeof line, "experiment quick --out g1 " GRID " %s", cases[i].extra);
        /* A later option wins: --epochs 2 after --epochs 1. */
        run_line(&r, 1, "%s", line);
        CHECK(r.status == 2, "'%s' exited %d, not 2: %s", line, r.status, r.err);
        CHECK(strstr(r.err, cases[i].setting) && strstr(r.err, "made with other settings"),
              "'%s' does not name '%s': %s", line, cases[i].setting, r.err);
        CHECK(count_of(r.err, "minformer") == 1, "'%s': the error is printed %d times:\n%s", line,
              count_of(r.err, "minformer"), r.err);
        child_result_free(&r);
    }
    CHECK(text_is(result, before), "a refused rerun changed %s", result);
    free(before);
}

static void test_checkpoint_of_another_run_is_refused(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    child_result r;
    /* Two grids with other seeds; one run of the second is left unfinished
     * with the first's checkpoint in its place. */
    run_line(&r, 1, "experiment quick --out g2a --only minimal " GRID);
    CHECK(r.status == 0, "grid failed: %s", r.err);
    child_result_free(&r);
    run_line(&r, 1, "experiment quick --out g2b --only minimal --seed 5 " GRID);
    CHECK(r.status == 0, "grid failed: %s", r.err);
    child_result_free(&r);
    char from[PATH_MAX + 64], to[PATH_MAX + 64];
    text_printf(from, sizeof from, "%s/g2a/mnist-L6-H1-mlp0-minimal/checkpoint.safetensors", root);
    text_printf(to, sizeof to, "%s/g2b/mnist-L6-H1-mlp0-minimal/checkpoint.safetensors", root);
    CHECK(copy_file(from, to, -1) == 0, "copy failed");
    text_printf(to, sizeof to, "%s/g2b/mnist-L6-H1-mlp0-minimal/result.json", root);
    unlink(to);
    run_line(&r, 1, "experiment quick --out g2b --only minimal --seed 5 " GRID);
    CHECK(r.status == 2 && strstr(r.err, "checkpoint.safetensors: made with other settings") &&
              strstr(r.err, "seed: stored 1, requested 5"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
}

/* Fashion-MNIST's files put in the MNIST folder of a copy of the data. */
static void make_swapped_data(char *dir, size_t size)
{
    text_printf(dir, size, "%s/swapped", root);
    char sub[PATH_MAX + 64], from[PATH_MAX + 64], to[PATH_MAX + 128];
    mkdir(dir, 0777);
    text_printf(sub, sizeof sub, "%s/mnist", dir);
    mkdir(sub, 0777);
    const char *files[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int i = 0; i < 4; i++) {
        text_printf(from, sizeof from, "%s/fashion-mnist/%s", data_dir, files[i]);
        text_printf(to, sizeof to, "%s/%s", sub, files[i]);
        copy_file(from, to, -1);
    }
}

static void test_other_data_is_refused(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    char fm[PATH_MAX + 64];
    text_printf(fm, sizeof fm, "%s/fashion-mnist/t10k-labels-idx1-ubyte.gz", data_dir);
    if (!file_exists(fm)) SKIP("no Fashion-MNIST in %s", data_dir);
    char swapped[PATH_MAX];
    make_swapped_data(swapped, sizeof swapped);
    child_result r;
    /* An interrupted grid (SIGTERM in the first run's second epoch)... */
    child_args a = {0};
    args_split(&a, "experiment quick --out g3 --only minimal --epochs 3 --limit-train 2000 "
                   "--limit-test 100 --batch 50 --threads 1");
    args_add(&a, "--data", data_dir, NULL);
    child_proc p;
    child_start(&p, root, &a);
    char ckpt[PATH_MAX + 64];
    text_printf(ckpt, sizeof ckpt, "%s/g3/mnist-L6-H1-mlp0-minimal/checkpoint.safetensors", root);
    while (!file_exists(ckpt) && !child_ended(&p) && child_now() - p.started < TIMEOUT)
        child_sleep(0.005);
    kill(p.pid, SIGTERM);
    child_wait(&p, TIMEOUT, &r);
    int interrupted = r.status == 143;
    child_result_free(&r);
    if (!interrupted) SKIP("the grid ended before SIGTERM reached it");
    /* ... resumed on other data is refused. */
    a = (child_args){0};
    args_split(&a, "experiment quick --out g3 --only minimal --epochs 3 --limit-train 2000 "
                   "--limit-test 100 --batch 50 --threads 1");
    args_add(&a, "--data", swapped, NULL);
    child_run(&r, root, TIMEOUT, &a);
    CHECK(r.status == 2 && strstr(r.err, "data: stored ") && strstr(r.err, "made with other settings"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    /* train --resume too. */
    run_line(&r, 1, TRAIN_TINY " --epochs 2 --save t3.safetensors");
    CHECK(r.status == 0, "train failed: %s", r.err);
    child_result_free(&r);
    a = (child_args){0};
    args_split(&a, "train --resume t3.safetensors --epochs 3");
    args_add(&a, "--data", swapped, NULL);
    child_run(&r, root, TIMEOUT, &a);
    CHECK(r.status == 2 && strstr(r.err, "t3.safetensors: made with other settings (data: stored"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
}

static void test_result_json_is_validated(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    child_result r;
    run_line(&r, 1, "experiment quick --out g4 " GRID);
    CHECK(r.status == 0, "grid failed: %s", r.err);
    child_result_free(&r);
    char min[PATH_MAX + 64], full[PATH_MAX + 64];
    text_printf(min, sizeof min, "%s/g4/mnist-L6-H1-mlp0-minimal/result.json", root);
    text_printf(full, sizeof full, "%s/g4/mnist-L6-H1-mlp4-unchanged/result.json", root);
    char *orig = slurp(min), *other = slurp(full);
    struct {
        const char *what, *text, *expect;
    } cases[] = {
        {"a copy of another run's", other, "'name' is missing or invalid"},
        {"an empty object", "{}", "is missing or invalid"},
        {"not JSON", "{\"name\":", "not JSON"},
        {"an array", "[1,2]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_bytes(min, cases[i].text, strlen(cases[i].text));
        run_line(&r, 1, "experiment quick --out g4 " GRID);
        CHECK(r.status == 1 && strstr(r.err, "result.json") && strstr(r.err, cases[i].expect),
              "%s result.json: exit %d: %s", cases[i].what, r.status, r.err);
        child_result_free(&r);
    }
    /* Each member out of range in turn. */
    const char *members[] = {"\"test_acc\":", "\"best_epoch\":", "\"params\":", "\"epochs\":",
                             "\"train_loss\":"};
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        char *bad = malloc(strlen(orig) + 16);
        /* The members after the identity object (which has an "epochs" too). */
        const char *at = strstr(strstr(orig, "\"params\":") ? strstr(orig, "\"params\":") : orig, members[i]);
        if (i == 2) at = strstr(orig, members[i]);
        CHECK(at != NULL, "%s not in result.json", members[i]);
        if (!at) {
            free(bad);
            continue;
        }
        size_t head = (size_t)(at - orig) + strlen(members[i]);
        const char *rest = at + strlen(members[i]);
        while (*rest && *rest != ',' && *rest != '}') rest++;
        sprintf(bad, "%.*s-7%s", (int)head, orig, rest);
        write_bytes(min, bad, strlen(bad));
        run_line(&r, 1, "experiment quick --out g4 " GRID);
        CHECK(r.status == 1 && strstr(r.err, "is missing or invalid"), "%s -7: exit %d: %s",
              members[i], r.status, r.err);
        child_result_free(&r);
        free(bad);
    }
    /* The original is accepted again. */
    write_bytes(min, orig, strlen(orig));
    run_line(&r, 1, "experiment quick --out g4 " GRID);
    CHECK(r.status == 0 && count_of(r.out, "skipped") >= 3, "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    free(orig);
    free(other);
}

static void test_lr_json_is_validated(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    mf_config cfg;
    mf_config_default(&cfg, 28, 1, 10);
    mf_experiment_opts o;
    mf_experiment_opts_default(&o);
    o.tune_lr = 1;
    const mf_experiment_grid *g = mf_experiment_grid_find("quick");
    mf_run_identity id;
    mf_experiment_identity(&o, &g->specs[0], 7, &id);
    char *ids = mf_run_identity_to_json(&id);
    char good[4096];
    text_printf(good, sizeof good,
                "{\"identity\":%s,\"train_images\":10,\"val_images\":5,\"epochs\":1,\"sweep\":["
                "{\"lr\":0.001,\"val_acc\":0.5,\"val_loss\":1},{\"lr\":0.003,\"val_acc\":0.6,"
                "\"val_loss\":1},{\"lr\":0.01,\"val_acc\":0.4,\"val_loss\":-1}],\"lr\":0.003}",
                ids);
    float lr = 0;
    mf_error err;
    CHECK(mf_experiment_parse_lr(good, strlen(good), &id, &lr, "lr.json", &err) == MF_OK &&
              lr == 3e-3f,
          "%s", err.message);
    const char *edits[][2] = {{"\"lr\":0.003}", "\"lr\":0.005}"}, {"\"epochs\":1", "\"epochs\":2"},
                              {"\"val_acc\":0.6", "\"val_acc\":1.6"},
                              {"\"seed\":\"1\"", "\"seed\":\"2\""}};
    for (int i = 0; i < 4; i++) {
        char bad[4096];
        const char *at = strstr(good, edits[i][0]);
        text_printf(bad, sizeof bad, "%.*s%s%s", (int)(at - good), good, edits[i][1],
                    at + strlen(edits[i][0]));
        mf_status st = mf_experiment_parse_lr(bad, strlen(bad), &id, &lr, "lr.json", &err);
        CHECK(st == (i == 3 ? MF_ERR_CONFIG : MF_ERR_FORMAT) && lr == 0.0f &&
                  !strncmp(err.message, "lr.json: ", 9),
              "edit %s: status %d lr %g: %s", edits[i][1], (int)st, (double)lr, err.message);
    }
    free(ids);
}

/* ---- locks and the summary ------------------------------------------------------------- */

static void test_a_locked_run_is_left_to_its_owner(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    char dir[PATH_MAX + 64], lock[PATH_MAX + 64];
    text_printf(dir, sizeof dir, "%s/g5", root);
    mkdir(dir, 0777);
    text_printf(dir, sizeof dir, "%s/g5/mnist-L6-H1-mlp0-unchanged", root);
    mkdir(dir, 0777);
    text_printf(lock, sizeof lock, "%s/lock", dir);
    mf_error err;
    int fd = mf_run_lock_try(lock, &err);
    CHECK(fd >= 0, "cannot lock: %s", err.message);
    CHECK(mf_run_lock_try(lock, &err) == -2, "a second lock on a held file was granted");
    child_result r;
    run_line(&r, 1, "experiment quick --out g5 " GRID);
    CHECK(r.status == 0 && strstr(r.out, "in progress in another process") &&
              strstr(r.out, "(2 finished runs of 3)"),
          "exit %d: %s %s", r.status, r.out, r.err);
    child_result_free(&r);
    char f[PATH_MAX + 96];
    text_printf(f, sizeof f, "%s/run.json", dir);
    CHECK(!file_exists(f), "the locked run was touched");
    mf_run_lock_release(fd);
    run_line(&r, 1, "experiment quick --out g5 " GRID);
    CHECK(r.status == 0 && strstr(r.out, "(3 finished runs of 3)"), "exit %d: %s %s", r.status,
          r.out, r.err);
    child_result_free(&r);
    /* A holder that dies releases its lock: a child takes it and is killed. */
    pid_t pid = fork();
    if (pid == 0) {
        int cfd = open(lock, O_RDWR);
        flock(cfd, LOCK_EX);
        pause();
        _exit(0);
    }
    child_sleep(0.2);
    CHECK(mf_run_lock_try(lock, &err) == -2, "the child's lock was not seen");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fd = mf_run_lock_try(lock, &err);
    CHECK(fd >= 0, "a dead holder kept its lock");
    mf_run_lock_release(fd);
}

static void test_concurrent_grids_equal_a_serial_one(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    child_result r;
    run_line(&r, 1, "experiment table2 --out serial --epochs 1 --limit-train 300 --limit-test 100 "
                    "--batch 50 --threads 1 --only mnist-L6-H1-mlp0");
    CHECK(r.status == 0, "serial grid failed: %s", r.err);
    child_result_free(&r);
    child_args a = {0};
    args_split(&a, "experiment table2 --out shared --epochs 1 --limit-train 300 --limit-test 100 "
                   "--batch 50 --threads 1 --only mnist-L6-H1-mlp0");
    args_add(&a, "--data", data_dir, NULL);
    child_proc p1, p2;
    child_start(&p1, root, &a);
    child_start(&p2, root, &a);
    child_result r1, r2;
    child_wait(&p1, TIMEOUT, &r1);
    child_wait(&p2, TIMEOUT, &r2);
    CHECK(r1.status == 0 && r2.status == 0, "exits %d %d: %s %s", r1.status, r2.status, r1.err,
          r2.err);
    /* Each run trained by exactly one of them. */
    int done1 = count_of(r1.out, "  done:"), done2 = count_of(r2.out, "  done:");
    CHECK(done1 + done2 == 8, "runs trained: %d + %d, expected 8 in all", done1, done2);
    child_result_free(&r1);
    child_result_free(&r2);
    /* A last pass writes the summary of all runs (each process wrote one of
     * what it saw; the later one saw everything finished by then). */
    run_line(&r, 1, "experiment table2 --out shared --epochs 1 --limit-train 300 --limit-test 100 "
                    "--batch 50 --threads 1 --only mnist-L6-H1-mlp0");
    CHECK(r.status == 0 && count_of(r.out, "skipped") == 8, "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    char a_csv[PATH_MAX + 64], b_csv[PATH_MAX + 64];
    text_printf(a_csv, sizeof a_csv, "%s/serial/results.csv", root);
    text_printf(b_csv, sizeof b_csv, "%s/shared/results.csv", root);
    char *x = csv_without_timing(a_csv), *y = csv_without_timing(b_csv);
    CHECK(strlen(x) > 100 && !strcmp(x, y), "concurrent results differ from serial ones:\n%s\n---\n%s",
          x, y);
    free(x);
    free(y);
    /* No log has a line twice. */
    const char *runs[] = {"unchanged", "symmetric", "wqk", "minimal", "mirrored", "cholesky", "wvo"};
    for (int i = 0; i < 7; i++) {
        char log[PATH_MAX + 96];
        text_printf(log, sizeof log, "%s/shared/mnist-L6-H1-mlp0-%s/log.jsonl", root, runs[i]);
        char *t = slurp(log);
        CHECK(count_lines(t) == 1, "%s has %d lines", log, count_lines(t));
        free(t);
    }
}

static void test_summary_covers_every_finished_run(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    child_result r;
    run_line(&r, 1, "experiment quick --out g6 " GRID);
    CHECK(r.status == 0, "grid failed: %s", r.err);
    child_result_free(&r);
    char md[PATH_MAX + 64];
    text_printf(md, sizeof md, "%s/g6/results.md", root);
    char *before = slurp(md);
    run_line(&r, 1, "experiment quick --out g6 --only minimal " GRID);
    CHECK(r.status == 0, "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    char *after = slurp(md);
    CHECK(count_of(after, "| mnist |") == 3 && !strcmp(before, after),
          "--only rewrote the summary:\n%s", after);
    free(before);
    free(after);
}

/* ---- empty paths, signals, lost output ---------------------------------------------------- */

static void test_empty_paths_and_bad_numbers(void)
{
    const char *cases[][8] = {
        {"experiment", "quick", "--out", "", NULL},
        {"experiment", "quick", "--data", "", NULL},
        {"train", "--dataset", "mnist", "--save", "", NULL},
        {"train", "--dataset", "mnist", "--log", "", NULL},
        {"train", "--dataset", "mnist", "--data", "", NULL},
        {"train", "--resume", "", NULL},
        {"train", "--dataset", "mnist", "--seed", " -1", NULL},
        {"experiment", "quick", "--seed", " -1", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        child_args a = {0};
        for (int k = 0; cases[i][k]; k++) args_add(&a, cases[i][k], NULL);
        child_result r;
        child_run(&r, root, TIMEOUT, &a);
        CHECK(r.status == 2 && count_lines(r.err) == 1, "'%s' exited %d: %s", args_text(&a),
              r.status, r.err);
        child_result_free(&r);
    }
}

static void test_train_keeps_its_work_when_the_log_fails(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    if (!file_exists("/dev/full")) SKIP("no /dev/full");
    child_result r;
    run_line(&r, 1, TRAIN_TINY " --epochs 3 --save full.safetensors --log /dev/full");
    CHECK(r.status == 1 && strstr(r.err, "/dev/full: cannot write the log: No space left on device") &&
              strstr(r.err, "epoch 1 is saved in full.safetensors"),
          "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    run_line(&r, 1, "train --resume full.safetensors");
    CHECK(r.status == 0 && strstr(r.out, "resuming full.safetensors at epoch 2"), "exit %d: %s %s",
          r.status, r.out, r.err);
    child_result_free(&r);
    /* The same file for the log and the checkpoint. */
    run_line(&r, 1, TRAIN_TINY " --epochs 1 --save same.x --log same.x");
    CHECK(r.status == 2 && strstr(r.err, "--log same.x is the checkpoint's file"), "exit %d: %s",
          r.status, r.err);
    child_result_free(&r);
    char same[PATH_MAX + 16];
    text_printf(same, sizeof same, "%s/same.x", root);
    CHECK(!file_exists(same), "same.x was written");
}

static void test_sighup_saves_like_sigterm(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    child_args a = {0};
    args_split(&a, "train --dataset mnist --dim 32 --layers 2 --limit-train 3000 --limit-test 100 "
                   "--batch 50 --threads 1 --epochs 50 --save hup.safetensors");
    args_add(&a, "--data", data_dir, NULL);
    child_proc p;
    child_start(&p, root, &a);
    child_wait_for_output(&p, "epoch 1/50", TIMEOUT); /* after the first epoch's line */
    kill(p.pid, SIGHUP);
    child_result r;
    child_wait(&p, TIMEOUT, &r);
    CHECK(r.status == 129 && r.signal == 0 && strstr(r.err, "saved hup.safetensors; resume with"),
          "exit %d (signal %d): %s", r.status, r.signal, r.err);
    child_result_free(&r);
}

static void test_closed_output_stops_after_saving(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    /* stdout is a pipe whose reader is gone: SIGPIPE must not kill the run. */
    int fds[2];
    if (pipe(fds)) SKIP("no pipe");
    close(fds[0]);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        int e = open("/dev/null", O_WRONLY);
        dup2(e, 2);
        if (chdir(root)) _exit(126);
        execl(child_bin, child_bin, "train", "--dataset", "mnist", "--preset", "minimal", "--mlp",
              "0", "--dim", "16", "--layers", "1", "--limit-train", "100", "--limit-test", "100",
              "--batch", "50", "--threads", "1", "--epochs", "3", "--save", "pipe.safetensors",
              "--data", data_dir, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    int ws = 0;
    waitpid(pid, &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "ended with %s %d",
          WIFEXITED(ws) ? "exit" : "signal", WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
    child_result r;
    run_line(&r, 0, "eval --checkpoint pipe.safetensors --data %s", data_dir);
    CHECK(r.status == 0, "the run saved no usable checkpoint: %s", r.err);
    child_result_free(&r);
}

static void test_sigterm_while_tuning_claims_no_checkpoint(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    child_args a = {0};
    args_split(&a, "experiment quick --out g7 --only minimal --tune-lr --tune-images 20000 "
                   "--tune-val 1000 --threads 1");
    args_add(&a, "--data", data_dir, NULL);
    child_proc p;
    child_start(&p, root, &a);
    child_wait_for_output(&p, "tuning the learning rate", TIMEOUT);
    child_sleep(0.3);
    kill(p.pid, SIGTERM);
    child_result r;
    child_wait(&p, TIMEOUT, &r);
    char ckpt[PATH_MAX + 96];
    text_printf(ckpt, sizeof ckpt, "%s/g7/mnist-L6-H1-mlp0-minimal/checkpoint.safetensors", root);
    CHECK(r.status == 143, "exit %d: %s", r.status, r.err);
    CHECK(!file_exists(ckpt) && !strstr(r.err, "saved") && strstr(r.err, "no checkpoint yet"),
          "claims a save: %s", r.err);
    child_result_free(&r);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (child_setup(root, sizeof root, "runs", argv[0], data_dir)) return 1;
    char probe[PATH_MAX + 64];
    text_printf(probe, sizeof probe, "%s/mnist", data_dir);
    have_mnist = file_exists(probe);

    RUN(test_identity_compare_and_round_trip);
    RUN(test_log_line_is_json_with_null_for_non_finite);
    RUN(test_rerun_with_other_settings_is_refused);
    RUN(test_checkpoint_of_another_run_is_refused);
    RUN(test_other_data_is_refused);
    RUN(test_result_json_is_validated);
    RUN(test_lr_json_is_validated);
    RUN(test_a_locked_run_is_left_to_its_owner);
    RUN(test_concurrent_grids_equal_a_serial_one);
    RUN(test_summary_covers_every_finished_run);
    RUN(test_empty_paths_and_bad_numbers);
    RUN(test_train_keeps_its_work_when_the_log_fails);
    RUN(test_sighup_saves_like_sigterm);
    RUN(test_closed_output_stops_after_saving);
    RUN(test_sigterm_while_tuning_claims_no_checkpoint);
    remove_tree(root);
    return check_report();
}
