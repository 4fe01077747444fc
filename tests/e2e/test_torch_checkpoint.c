/* minformer checkpoints read by PyTorch: for each preset (and the Cholesky
 * similarity, mean pooling, every data format) a small model is trained for
 * one epoch with `minformer train --save`, evaluated with `minformer eval`,
 * and evaluated again by tools/torch_checkpoint.py, which parses the
 * safetensors file and the dataset itself and runs tools/torch_reference.py's
 * model. Both must count the same correct predictions (at most 2 apart, for
 * near-ties under different float rounding) and agree on the loss. The
 * script also verifies the checksums: a copy with one data byte changed is
 * refused, naming the tensor. SKIP
 * without /usr/bin/python3 with torch and numpy, or without the data. */
#define _GNU_SOURCE
#include <math.h>

#include "check.h"
#include "child.h"

#define TIMEOUT 600.0
#define PYTHON "/usr/bin/python3"
#define SCRIPT "tools/torch_checkpoint.py" /* relative to the repository root (make test's cwd) */
#define LIMIT_TEST "1000"
#define COMMON                                                                               \
    "--dim 32 --layers 2 --limit-train 2000 --limit-test " LIMIT_TEST " --batch 50 "          \
    "--epochs 1 --lr 1e-2 --no-augment --threads 1"

static char root[256];
static char data_dir[PATH_MAX];
static char script[PATH_MAX];
static char a_checkpoint[PATH_MAX]; /* one trained by the first test, "" if none */

static const struct {
    const char *name, *dataset, *flags;
} cases[] = {
    {"unchanged", "mnist", "--preset unchanged --heads 2 --mlp 2"},
    {"wqk", "mnist", "--preset wqk --mlp 2"},
    {"minimal", "mnist", "--preset minimal --mlp 0"},
    {"symmetric", "fashion-mnist", "--preset symmetric --heads 4 --mlp 0"},
    {"cholesky", "cifar10", "--preset minimal --mlp 0 --qk cholesky"},
    {"pool-mean", "mnist", "--pool mean --qk symmetric --vo collapsed --mlp 2"},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static int have_dataset(const char *name)
{
    char probe[PATH_MAX + 64];
    text_printf(probe, sizeof probe, "%s/%s", data_dir,
                !strcmp(name, "cifar10") ? "cifar-10-batches-bin/test_batch.bin" : name);
    return file_exists(probe);
}

static void test_torch_reproduces_eval(void)
{
    child_result r;
    child_args probe = {0};
    args_add(&probe, "-c", "import torch, numpy", NULL);
    if (access(PYTHON, X_OK) || child_run_exe(&r, NULL, PYTHON, TIMEOUT, &probe) != 0) {
        child_result_free(&r);
        SKIP("no %s with torch and numpy", PYTHON);
    }
    child_result_free(&r);
    if (!realpath(SCRIPT, script)) SKIP("no %s here (run from the repository root)", SCRIPT);

    char paths[NCASES][PATH_MAX];
    double acc[NCASES], loss[NCASES], count[NCASES];
    int trained[NCASES] = {0};
    child_args py = {0};
    args_add(&py, script, "--json", "--limit-test", LIMIT_TEST, "--data", data_dir, NULL);
    for (int i = 0; i < NCASES; i++) {
        if (!have_dataset(cases[i].dataset)) {
            fprintf(stderr, "note: no %s data; case %s left out\n", cases[i].dataset, cases[i].name);
            continue;
        }
        text_printf(paths[i], sizeof paths[i], "%s/%s.safetensors", root, cases[i].name);
        child_args t = {0};
        args_add(&t, "train", "--dataset", cases[i].dataset, "--data", data_dir, "--save", paths[i],
                 NULL);
        args_split(&t, COMMON);
        args_split(&t, cases[i].flags);
        if (child_run(&r, NULL, TIMEOUT, &t) != 0) {
            CHECK(0, "%s: 'minformer %s' failed: %s", cases[i].name, args_text(&t), r.err);
            child_result_free(&r);
            continue;
        }
        child_result_free(&r);
        child_args e = {0};
        json_line j;
        args_add(&e, "eval", "--checkpoint", paths[i], "--data", data_dir, "--limit-test", LIMIT_TEST,
                 "--json", NULL);
        if (child_run(&r, NULL, TIMEOUT, &e) == 0 && json_last_line(r.out, &j)) {
            acc[i] = json_number(&j, "test_acc");
            loss[i] = json_number(&j, "test_loss");
            count[i] = json_number(&j, "count");
            trained[i] = 1;
            args_add(&py, paths[i], NULL);
            if (!a_checkpoint[0]) text_printf(a_checkpoint, sizeof a_checkpoint, "%s", paths[i]);
            json_line_free(&j);
        } else {
            CHECK(0, "%s: minformer eval failed: %s", cases[i].name, r.err);
        }
        child_result_free(&r);
    }
    int any = 0;
    for (int i = 0; i < NCASES; i++) any |= trained[i];
    if (!any) SKIP("no checkpoint to compare (no data in %s?)", data_dir);
    if (child_run_exe(&r, NULL, PYTHON, TIMEOUT, &py) != 0) {
        CHECK(0, "'%s' failed (status %d): %s", args_text(&py), r.status, r.err);
        child_result_free(&r);
        return;
    }
    int line = 0;
    for (int i = 0; i < NCASES; i++) {
        if (!trained[i]) continue;
        json_line j;
        /* One line per checkpoint, in the order given. */
        const char *p = r.out;
        for (int k = 0; k < line && p; k++) p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
        line++;
        char one[4096] = "";
        if (p) text_printf(one, sizeof one, "%.*s\n", (int)strcspn(p, "\n"), p);
        if (!json_last_line(one, &j)) {
            CHECK(0, "%s: no JSON line from the script: %s", cases[i].name, r.out);
            continue;
        }
        const mf_json *ck = mf_json_get(&j.root, "checkpoint");
        CHECK(ck && ck->type == MF_JSON_STRING && !strcmp(ck->u.string, paths[i]),
              "%s: the script's line is about another file", cases[i].name);
        double n = json_number(&j, "count"), correct = json_number(&j, "correct");
        double tloss = json_number(&j, "test_loss");
        double mf_correct = round(acc[i] * count[i]);
        printf("# %-10s %-13s minformer %4.0f/%.0f correct (%.2f%%, loss %.5f)   "
               "PyTorch %4.0f/%.0f (%.2f%%, loss %.5f)\n",
               cases[i].name, cases[i].dataset, mf_correct, count[i], 100.0 * acc[i], loss[i],
               correct, n, 100.0 * correct / n, tloss);
        CHECK(n == count[i], "%s: PyTorch evaluated %g images, minformer %g", cases[i].name, n,
              count[i]);
        CHECK(fabs(correct - mf_correct) <= 2, "%s: PyTorch counts %g correct, minformer %g",
              cases[i].name, correct, mf_correct);
        CHECK(fabs(tloss - loss[i]) <= 1e-4 * fmax(1.0, loss[i]),
              "%s: PyTorch loss %.6f, minformer %.6f", cases[i].name, tloss, loss[i]);
        json_line_free(&j);
    }
    child_result_free(&r);
}

static void test_torch_refuses_damaged_data(void)
{
    if (!a_checkpoint[0] || !script[0]) SKIP("no checkpoint from the first test");
    size_t len;
    unsigned char *bytes = (unsigned char *)read_text(a_checkpoint, &len);
    CHECK(bytes && len > 8, "cannot read %s", a_checkpoint);
    if (!bytes || len <= 8) {
        free(bytes);
        return;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | bytes[i];
    CHECK(8 + n + 100 < len, "%s: no data section", a_checkpoint);
    if (8 + n + 100 < len) {
        bytes[8 + n + 100] ^= 1;
        char damaged[PATH_MAX + 32];
        text_printf(damaged, sizeof damaged, "%s/damaged.safetensors", root);
        CHECK(write_bytes(damaged, bytes, len) == 0, "cannot write %s", damaged);
        child_result r;
        child_args py = {0};
        args_add(&py, script, "--data", data_dir, damaged, NULL);
        int status = child_run_exe(&r, NULL, PYTHON, TIMEOUT, &py);
        CHECK(status == 1 && strstr(r.err, "fails its checksum (stored "),
              "the script on a damaged checkpoint: status %d, %s", status, r.err);
        child_result_free(&r);
    }
    free(bytes);
}

int main(int argc, char **argv)
{
    (void)argc;
    snprintf(root, sizeof root, "/dev/shm/mf_test_torch_XXXXXX");
    if (!mkdtemp(root)) {
        snprintf(root, sizeof root, "/tmp/mf_test_torch_XXXXXX");
        if (!mkdtemp(root)) {
            perror("mkdtemp");
            return 1;
        }
    }
    if (child_init(argv[0], root)) {
        remove_tree(root);
        return 1;
    }
    setenv("OMP_WAIT_POLICY", "passive", 0);
    child_data_dir(data_dir);
    RUN(test_torch_reproduces_eval);
    RUN(test_torch_refuses_damaged_data);
    remove_tree(root);
    return check_report();
}
