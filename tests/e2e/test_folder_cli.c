/* End-to-end tests of folder datasets on the command line: MNIST images
 * written as a PNG folder (skipped without MNIST) are described by info (the
 * second run from the cache), give a MNIST-trained checkpoint the same
 * accuracy in eval as the IDX files, and name the classes in predict; a
 * model trains on the folder and is evaluated there; hostile folders give
 * one error line naming the file and exit 1; folder options on a built-in
 * dataset are usage errors. The binary is BUILD/minformer beside
 * BUILD/tests/test_folder_cli, or $MINFORMER_BIN. */
#define _GNU_SOURCE
#include <math.h>
#include <png.h>
#include <stdint.h>

#include "check.h"
#include "child.h"
#include "minformer.h"

#define TIMEOUT 300.0

static char root[256], folder[PATH_MAX], data_dir[PATH_MAX];
static int have_mnist;
static mf_dataset mnist;

static void path_in(char *out, const char *name) { text_printf(out, PATH_MAX, "%s/%s", root, name); }

/* 'minformer LINE' (printf-style) with no --data, checked to exit with want. */
#define run_line(r, want, ...) child_expect_linef((r), NULL, TIMEOUT, NULL, (want), __VA_ARGS__)

/* The first n images of s as DIR/<split>/<label>/<index>.png. */
static void write_split(const char *dir, const char *split, const mf_split *s, int n)
{
    char p[PATH_MAX];
    text_printf(p, sizeof p, "%s/%s", dir, split);
    mkdir(p, 0777);
    for (int k = 0; k < 10; k++) {
        text_printf(p, sizeof p, "%s/%s/%d", dir, split, k);
        mkdir(p, 0777);
    }
    for (int i = 0; i < n && i < s->count; i++) {
        text_printf(p, sizeof p, "%s/%s/%d/%05d.png", dir, split, s->labels[i], i);
        png_image img;
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        img.width = img.height = (png_uint_32)s->size;
        img.format = PNG_FORMAT_GRAY;
        png_image_write_to_file(&img, p, 0, s->images + (size_t)i * s->size * s->size, 0, NULL);
    }
}

static void test_info_and_cache(void)
{
    if (!have_mnist) SKIP("no MNIST");
    child_result r;
    json_line j;
    if (run_line(&r, 0, "info --dataset folder:%s --json --threads 2", folder) &&
        json_last_line(r.out, &j)) {
        CHECK(json_number(&j, "classes") == 10 && json_number(&j, "train") == 300 &&
                  json_number(&j, "test") == 200 && json_number(&j, "decoded") == 500 &&
                  json_number(&j, "cache_used") == 0 && json_number(&j, "image_size") == 28,
              "first info: %s", r.out);
        json_line_free(&j);
    }
    child_result_free(&r);
    if (run_line(&r, 0, "info --dataset folder:%s --json --threads 1", folder) &&
        json_last_line(r.out, &j)) {
        CHECK(json_number(&j, "decoded") == 0 && json_number(&j, "cache_used") == 1,
              "second info decodes nothing: %s", r.out);
        json_line_free(&j);
    }
    child_result_free(&r);
    run_line(&r, 0, "info --dataset folder:%s", folder);
    CHECK(strstr(r.out, "from the cache") && strstr(r.out, "1 x 28 x 28"), "%s", r.out);
    child_result_free(&r);
}

/* A checkpoint trained on the built-in MNIST gives the same accuracy on
 * the same test images read from the PNG folder. */
static void test_eval_mnist_checkpoint_on_folder(void)
{
    if (!have_mnist) SKIP("no MNIST");
    char ck[PATH_MAX];
    path_in(ck, "mnist.safetensors");
    child_result r;
    json_line a, b;
    if (!run_line(&r, 0, "train --dataset mnist --data %s --dim 16 --layers 1 --mlp 2 "
                  "--limit-train 500 --limit-test 100 --batch 50 --epochs 1 --threads 1 --save %s",
                  data_dir, ck)) {
        child_result_free(&r);
        return;
    }
    child_result_free(&r);
    run_line(&r, 0, "eval --checkpoint %s --data %s --limit-test 200 --json", ck, data_dir);
    int ok = json_last_line(r.out, &a);
    child_result_free(&r);
    run_line(&r, 0, "eval --checkpoint %s --dataset folder:%s --json", ck, folder);
    ok = json_last_line(r.out, &b) && ok;
    CHECK(strstr(r.out, "on folder test (200 images)"), "%s", r.out);
    child_result_free(&r);
    if (ok) {
        CHECK(json_number(&a, "count") == 200 && json_number(&b, "count") == 200 &&
                  json_number(&a, "test_acc") == json_number(&b, "test_acc") &&
                  fabs(json_number(&a, "test_loss") - json_number(&b, "test_loss")) < 1e-5,
              "IDX acc %g loss %g, PNG folder acc %g loss %g", json_number(&a, "test_acc"),
              json_number(&a, "test_loss"), json_number(&b, "test_acc"),
              json_number(&b, "test_loss"));
    }
    if (a.text) json_line_free(&a);
    if (b.text) json_line_free(&b);
    /* predict reads the PNG; a built-in model's classes are its own. */
    char png[PATH_MAX];
    text_printf(png, sizeof png, "%s/test/%d/00000.png", folder, mnist.test.labels[0]);
    run_line(&r, 0, "predict --checkpoint %s %s", ck, png);
    CHECK(strstr(r.out, "00000.png:"), "%s", r.out);
    child_result_free(&r);
    /* Folder options belong to folder datasets. */
    run_line(&r, 2, "eval --checkpoint %s --data %s --image-size 28", ck, data_dir);
    CHECK(strstr(r.err, "folder datasets"), "%s", r.err);
    child_result_free(&r);
    run_line(&r, 2, "info --dataset mnist --data %s --skip-bad", data_dir);
    child_result_free(&r);
    /* A 28x28 grey model cannot take the folder resized to 14. */
    run_line(&r, 2, "eval --checkpoint %s --dataset folder:%s --image-size 14", ck, folder);
    CHECK(strstr(r.err, "14"), "%s", r.err);
    child_result_free(&r);
}

/* A model trains on the PNG folder; eval and predict use the folder's classes. */
static void test_train_on_folder(void)
{
    if (!have_mnist) SKIP("no MNIST");
    char ck[PATH_MAX];
    path_in(ck, "folder.safetensors");
    child_result r;
    json_line j;
    if (!run_line(&r, 0, "train --dataset folder:%s --dim 16 --layers 1 --mlp 2 --batch 50 "
                  "--epochs 2 --threads 1 --lr 1e-2 --save %s --json", folder, ck)) {
        child_result_free(&r);
        return;
    }
    if (json_last_line(r.out, &j)) {
        CHECK(json_number(&j, "test_acc") > 0.2, "trained on 300 images: %s", r.out);
        json_line_free(&j);
    }
    child_result_free(&r);
    run_line(&r, 0, "eval --checkpoint %s --dataset folder:%s", ck, folder);
    CHECK(strstr(r.out, "200 images"), "%s", r.out);
    child_result_free(&r);
    run_line(&r, 2, "eval --checkpoint %s", ck);
    CHECK(strstr(r.err, "folder:PATH"), "%s", r.err);
    child_result_free(&r);
    char png[PATH_MAX];
    text_printf(png, sizeof png, "%s/test/%d/00000.png", folder, mnist.test.labels[0]);
    run_line(&r, 0, "predict --checkpoint %s --dataset folder:%s %s --json", ck, folder, png);
    CHECK(strstr(r.out, "\"class\":\""), "%s", r.out);
    child_result_free(&r);
    /* Resuming needs the folder again. */
    run_line(&r, 2, "train --resume %s --epochs 3", ck);
    CHECK(strstr(r.err, "folder:PATH"), "%s", r.err);
    child_result_free(&r);
    run_line(&r, 0, "train --resume %s --dataset folder:%s --epochs 3", ck, folder);
    CHECK(strstr(r.out, "epoch 3/3"), "%s", r.out);
    child_result_free(&r);
}

/* One line on stderr naming the file, exit 1. */
static void expect_refused(const char *dir, const char *needle)
{
    child_result r;
    run_line(&r, 1, "info --dataset folder:%s", dir);
    CHECK(strstr(r.err, needle) && count_lines(r.err) == 1, "stderr: %s", r.err);
    child_result_free(&r);
}

static void test_hostile_folders(void)
{
    char dir[PATH_MAX], p[PATH_MAX];
    path_in(dir, "hostile");
    mkdir(dir, 0777);
    expect_refused(dir, "train: missing");
    const char *sub[] = {"train", "train/a", "train/b", "test", "test/a", "test/b"};
    for (int i = 0; i < 6; i++) {
        text_printf(p, sizeof p, "%s/%s", dir, sub[i]);
        mkdir(p, 0777);
    }
    /* One good 8x8 image in every class folder but train/a. */
    for (int i = 2; i < 6; i++) {
        if (i == 3) continue;
        text_printf(p, sizeof p, "%s/%s/ok.png", dir, sub[i]);
        png_image img;
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        img.width = img.height = 8;
        img.format = PNG_FORMAT_GRAY;
        uint8_t pix[64] = {0};
        png_image_write_to_file(&img, p, 0, pix, 0, NULL);
    }
    expect_refused(dir, "train/a: empty class folder");
    text_printf(p, sizeof p, "%s/train/a/x.png", dir);
    write_bytes(p, "\x89PNG\r\n\x1a\n", 8); /* a signature and nothing else */
    expect_refused(p, "not a directory");
    expect_refused(dir, "train/a/x.png");
    text_printf(p, sizeof p, "%s/train/a/x.png", dir);
    uint8_t jpeg_start[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0};
    write_bytes(p, jpeg_start, sizeof jpeg_start);
    expect_refused(dir, "bad JPEG");
    child_result r;
    run_line(&r, 2, "info --dataset folder:");
    child_result_free(&r);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (child_init(argv[0], "/tmp")) return 1;
    text_printf(root, sizeof root, "/tmp/mf-folder-cli-XXXXXX");
    if (!mkdtemp(root)) return 1;
    child_data_dir(data_dir);
    mf_error err;
    have_mnist = mf_dataset_load(&mnist, MF_MNIST, data_dir, &err) == MF_OK;
    path_in(folder, "mnist-png");
    if (have_mnist) {
        mkdir(folder, 0777);
        write_split(folder, "train", &mnist.train, 300);
        write_split(folder, "test", &mnist.test, 200);
    }
    RUN(test_info_and_cache);
    RUN(test_eval_mnist_checkpoint_on_folder);
    RUN(test_train_on_folder);
    RUN(test_hostile_folders);
    if (have_mnist) mf_dataset_free(&mnist);
    remove_tree(root);
    return check_report();
}
