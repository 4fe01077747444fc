/* End-to-end tests of a folder of more than 20 classes on the command line:
 * a model trains on 24 classes of tiny non-square images (--image-size 4
 * --center-crop), and its checkpoint alone then names the classes and the
 * folder settings: eval reads the folder as training did and prints the
 * per-class table with the most frequent confusions, predict and attention
 * name the classes without --dataset. A folder whose class names differ is
 * refused, a checkpoint with tampered names gives one error line, one
 * without names (as written before they were stored) still works with the
 * labels as names, and a folder of 1001 classes is refused naming the first
 * beyond the limit. The binary is BUILD/minformer beside
 * BUILD/tests/test_many_classes_cli, or $MINFORMER_BIN. */
#define _GNU_SOURCE
#include <stdint.h>

#include "check.h"
#include "child.h"

#define TIMEOUT 300.0
enum { K = 24, TRAIN_PER = 8, TEST_PER = 2 };

static const char *const names[K] = {
    "alfa",  "bravo", "charlie", "delta",  "echo",  "foxtrot", "golf",    "hotel",
    "india", "juliett", "kilo",  "lima",   "mike",  "november", "oscar",  "papa",
    "quebec", "romeo", "sierra", "tango",  "uniform", "victor", "whiskey", "xray"};

static char root[PATH_MAX], data_dir[PATH_MAX], folder[PATH_MAX], ck[PATH_MAX];

/* 'minformer LINE' (printf-style) with no --data, checked to exit with want. */
#define run_line(r, want, ...) child_expect_linef((r), NULL, TIMEOUT, NULL, (want), __VA_ARGS__)

/* A 6x4 grey PGM (cropped to its central 4x4 by --center-crop): class k is
 * a bright pixel at position k % 16 of the central square on a dim
 * background, and for k >= 16 a second one at (k + 5) % 16. */
static void write_image(const char *dir, int k, int n)
{
    char p[PATH_MAX];
    text_printf(p, sizeof p, "%s/%d.pgm", dir, n);
    unsigned char file[64];
    int len = snprintf((char *)file, sizeof file, "P5\n6 4\n255\n");
    unsigned char *pix = file + len;
    for (int i = 0; i < 24; i++) pix[i] = (unsigned char)(20 + (i * 7 + n * 3) % 30);
    int at = k % 16, also = (k + 5) % 16;
    pix[at / 4 * 6 + 1 + at % 4] = 240;
    if (k >= 16) pix[also / 4 * 6 + 1 + also % 4] = 240; /* the last 8: a second pixel */
    write_bytes(p, file, (size_t)len + 24);
}

static void make_folder(const char *dir, const char *const *cls, int count)
{
    char p[PATH_MAX];
    mkdir(dir, 0777);
    for (int s = 0; s < 2; s++) {
        const char *split = s ? "test" : "train";
        text_printf(p, sizeof p, "%s/%s", dir, split);
        mkdir(p, 0777);
        for (int k = 0; k < count; k++) {
            text_printf(p, sizeof p, "%s/%s/%s", dir, split, cls[k]);
            mkdir(p, 0777);
            for (int n = 0; n < (s ? TEST_PER : TRAIN_PER); n++) write_image(p, k, n + 10 * s);
        }
    }
}

/* 1 when the text at s starts with one of the class names and a quote or
 * comma or space after it. */
static int names_a_class(const char *s)
{
    for (int k = 0; s && k < K; k++) {
        size_t n = strlen(names[k]);
        if (!strncmp(s, names[k], n) && (s[n] == '"' || s[n] == ',' || s[n] == ' ')) return 1;
    }
    return 0;
}

/* The checkpoint's bytes with its header's `find` replaced by `with` (the
 * header length updated) written to out. 0 when find is absent. */
static int tamper(const char *out, const char *find_from, const char *find_to, const char *with)
{
    size_t len;
    char *file = read_text(ck, &len);
    if (!file || len < 8) return 0;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | (unsigned char)file[i];
    char *header = malloc(hl + 1);
    memcpy(header, file + 8, hl);
    header[hl] = '\0';
    char *a = strstr(header, find_from), *b = a ? strstr(a, find_to) : NULL;
    int ok = b != NULL;
    if (ok) {
        b += strlen(find_to);
        size_t nl = (size_t)(a - header) + strlen(with) + strlen(b);
        char *buf = malloc(8 + nl + (len - 8 - hl));
        for (int i = 0; i < 8; i++) buf[i] = (char)((uint64_t)nl >> (8 * i));
        size_t at = 8;
        memcpy(buf + at, header, (size_t)(a - header)), at += (size_t)(a - header);
        memcpy(buf + at, with, strlen(with)), at += strlen(with);
        memcpy(buf + at, b, strlen(b)), at += strlen(b);
        memcpy(buf + at, file + 8 + hl, len - 8 - hl), at += len - 8 - hl;
        ok = write_bytes(out, buf, at) == 0;
        free(buf);
    }
    free(header);
    free(file);
    return ok;
}

static void test_train_and_name_from_checkpoint(void)
{
    child_result r;
    json_line j;
    if (!run_line(&r, 0, "train --dataset folder:%s --image-size 4 --center-crop --patch 2 "
                  "--dim 16 --layers 1 --mlp 0 --batch 16 --epochs 30 --lr 1e-2 --no-augment --threads 1 "
                  "--save %s --json", folder, ck)) {
        child_result_free(&r);
        return;
    }
    if (json_last_line(r.out, &j)) {
        CHECK(json_number(&j, "test_acc") > 0.2, "24 classes after 30 epochs: %s", r.out);
        json_line_free(&j);
    }
    child_result_free(&r);

    /* eval: the checkpoint's --image-size 4 --center-crop, its names. */
    if (run_line(&r, 0, "eval --checkpoint %s --dataset folder:%s --threads 1 --json", ck, folder)) {
        CHECK(strstr(r.out, "on folder test (48 images)") && strstr(r.out, "\nxray ") &&
                  strstr(r.out, "24 classes: the confusion matrix is in --json") &&
                  strstr(r.out, "\"class_names\":[\"alfa\",\"bravo\","),
              "%s", r.out);
        CHECK(!strstr(r.out, "confusion (rows"), "a 24x24 matrix printed: %s", r.out);
    }
    child_result_free(&r);

    /* predict without --dataset, with --resize: the checkpoint's names and crop. */
    char img[PATH_MAX];
    text_printf(img, sizeof img, "%s/test/xray/10.pgm", folder);
    if (run_line(&r, 0, "predict --checkpoint %s --resize %s --json", ck, img)) {
        const char *c = strstr(r.out, "\"class\":\"");
        CHECK(c && names_a_class(c + 9), "predict names no class: %s", r.out);
    }
    child_result_free(&r);
    if (run_line(&r, 0, "predict --checkpoint %s --resize %s", ck, img)) {
        const char *c = strchr(r.out, ':');
        CHECK(c && names_a_class(c + 2), "predict text names no class: %s", r.out);
    }
    child_result_free(&r);

    /* attention prints the names, not '?'. */
    char png[PATH_MAX];
    text_printf(png, sizeof png, "%s/attention.png", root);
    if (run_line(&r, 0, "attention --checkpoint %s --dataset folder:%s --out %s --threads 1", ck,
                 folder, png)) {
        const char *l = strstr(r.out, "label "), *p = strstr(r.out, "predicted ");
        CHECK(l && p && names_a_class(l + 6) && !strchr(r.out, '?'), "%s", r.out);
    }
    child_result_free(&r);
}

static void test_other_names_refused(void)
{
    char other[PATH_MAX];
    text_printf(other, sizeof other, "%s/other", root);
    const char *renamed[K];
    memcpy(renamed, names, sizeof renamed);
    renamed[K - 1] = "zulu";
    make_folder(other, renamed, K);
    child_result r;
    run_line(&r, 2, "eval --checkpoint %s --dataset folder:%s", ck, other);
    CHECK(strstr(r.err, "the model's class 23 is 'xray'") && strstr(r.err, "'zulu'") &&
              count_lines(r.err) == 1,
          "%s", r.err);
    child_result_free(&r);
    run_line(&r, 2, "predict --checkpoint %s --dataset folder:%s %s/test/zulu/10.pgm --resize",
             ck, other, other);
    CHECK(strstr(r.err, "'zulu'") && count_lines(r.err) == 1, "%s", r.err);
    child_result_free(&r);
}

static void test_tampered_and_old_checkpoints(void)
{
    char bad[PATH_MAX], old[PATH_MAX], img[PATH_MAX];
    text_printf(bad, sizeof bad, "%s/bad.safetensors", root);
    text_printf(old, sizeof old, "%s/old.safetensors", root);
    text_printf(img, sizeof img, "%s/test/alfa/10.pgm", folder);
    child_result r;
    /* A duplicate name. */
    CHECK(tamper(bad, "\\\"bravo\\\"", "\\\"bravo\\\"", "\\\"alfa\\\""), "tamper");
    const char *cmds[3] = {"eval --checkpoint %s --dataset folder:%s", "predict --checkpoint %s "
                           "--resize %s", "attention --checkpoint %s --dataset folder:%s"};
    const char *args[3] = {folder, img, folder};
    for (int i = 0; i < 3; i++) {
        char line[PATH_MAX * 3];
        text_printf(line, sizeof line, cmds[i], bad, args[i]);
        run_line(&r, 1, "%s", line);
        CHECK(strstr(r.err, "metadata 'class_names': name 1 ('alfa') is not after name 0") &&
                  count_lines(r.err) == 1,
              "%s: %s", line, r.err);
        child_result_free(&r);
    }
    /* A name with an escape for a control character. */
    CHECK(tamper(bad, "\\\"lima\\\"", "\\\"lima\\\"", "\\\"li\\\\u001bm\\\""), "tamper");
    run_line(&r, 1, "predict --checkpoint %s --resize %s", bad, img);
    CHECK(strstr(r.err, "a control character") && !strchr(r.err, 0x1b) && count_lines(r.err) == 1,
          "%s", r.err);
    child_result_free(&r);

    /* Without the names and settings: the labels name the classes. */
    CHECK(tamper(old, "\"class_names\"", "\"folder_center_crop\":\"1\",", ""), "tamper");
    if (run_line(&r, 0, "predict --checkpoint %s --resize --center-crop %s --json", old, img)) {
        const char *c = strstr(r.out, "\"class\":\"");
        CHECK(c && c[9] >= '0' && c[9] <= '9', "an old checkpoint's classes: %s", r.out);
    }
    child_result_free(&r);
    /* ... and eval needs the folder options again, naming by the folder. */
    run_line(&r, 1, "eval --checkpoint %s --dataset folder:%s", old, folder);
    CHECK(strstr(r.err, "--image-size"), "%s", r.err);
    child_result_free(&r);
    if (run_line(&r, 0, "eval --checkpoint %s --dataset folder:%s --image-size 4 --center-crop",
                 old, folder))
        CHECK(strstr(r.out, "\nxray "), "%s", r.out);
    child_result_free(&r);
}

static void test_too_many_classes(void)
{
    char dir[PATH_MAX], p[PATH_MAX];
    text_printf(dir, sizeof dir, "%s/many", root);
    mkdir(dir, 0777);
    text_printf(p, sizeof p, "%s/train", dir);
    mkdir(p, 0777);
    for (int k = 0; k <= 1000; k++) {
        text_printf(p, sizeof p, "%s/train/n%05d", dir, k);
        mkdir(p, 0777);
    }
    child_result r;
    run_line(&r, 1, "info --dataset folder:%s", dir);
    CHECK(strstr(r.err, "1001 class folders, more than the 1000 a model takes") &&
              strstr(r.err, "'n01000'") && count_lines(r.err) == 1,
          "%s", r.err);
    child_result_free(&r);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (child_setup(root, sizeof root, "many_classes", argv[0], data_dir)) return 1;
    text_printf(folder, sizeof folder, "%s/nato", root);
    text_printf(ck, sizeof ck, "%s/nato.safetensors", root);
    make_folder(folder, names, K);
    RUN(test_train_and_name_from_checkpoint);
    RUN(test_other_names_refused);
    RUN(test_tampered_and_old_checkpoints);
    RUN(test_too_many_classes);
    remove_tree(root);
    return check_report();
}
