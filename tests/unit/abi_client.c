/* A program built against the shared library alone (-lminformer, public
 * headers only) by test_abi: the public API links from libminformer.so and
 * works there. Also the confusion matrix sized by the class count, for 2 and
 * 7 classes. Prints "FAIL ..." lines and exits 1 on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minformer.h"

static int failures;
#define EXPECT(cond, ...)                                                       \
    do {                                                                        \
        if (!(cond)) {                                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                         \
            printf(__VA_ARGS__);                                                \
            putchar('\n');                                                      \
            failures++;                                                         \
        }                                                                       \
    } while (0)

/* n random 8x8 grey images labelled i % classes, a model with classes
 * outputs: the confusion matrix must be classes x classes, its rows the
 * label counts, its diagonal the correct predictions, and each count what
 * the model's own forward pass predicts. */
static void check_confusion(int classes)
{
    enum { N = 60, S = 8 };
    mf_error err;
    mf_error_clear(&err);
    mf_config c;
    mf_config_default(&c, S, 1, classes);
    c.patch = 4;
    c.dim = 8;
    c.layers = 1;
    c.mlp_ratio = 0;
    mf_model m;
    if (mf_model_create(&m, &c, &err)) {
        EXPECT(0, "%d classes: %s", classes, err.message);
        return;
    }
    mf_model_init_weights(&m, 3);
    static uint8_t images[N * S * S];
    static uint16_t labels[N];
    mf_rng rng;
    mf_rng_seed(&rng, 11);
    for (int i = 0; i < N * S * S; i++) images[i] = (uint8_t)mf_rng_below(&rng, 256);
    for (int i = 0; i < N; i++) labels[i] = (uint16_t)(i % classes);
    mf_split split = {N, 1, S, images, labels, classes};
    float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};

    int *conf = malloc((size_t)classes * classes * sizeof *conf);
    int *want = calloc((size_t)classes * classes, sizeof *want);
    for (int i = 0; conf && i < classes * classes; i++) conf[i] = -7; /* must be zeroed */
    mf_eval_result r;
    mf_status st = mf_evaluate_confusion(&m, &split, mean, std, 16, &r, conf, &err);
    EXPECT(st == MF_OK, "%d classes: %s", classes, err.message);
    EXPECT(r.classes == classes && r.count == N, "%d classes: result says %d classes, %d images",
           classes, r.classes, r.count);

    /* The expected matrix from the forward pass, one image at a time. */
    float x[S * S];
    int y, correct = 0;
    if (st == MF_OK && mf_model_reserve(&m, 1, &err)) st = err.status;
    for (int i = 0; i < N && st == MF_OK; i++) {
        mf_batch_fill(&split, &i, 1, mean, std, MF_AUGMENT_NONE, 0, x, &y);
        mf_model_forward(&m, x, NULL, 1);
        int pred = mf_argmax(mf_model_logits(&m), classes);
        want[y * classes + pred]++;
        correct += pred == y;
    }
    int differ = 0, diag = 0, total = 0;
    for (int i = 0; i < classes * classes; i++) {
        differ += conf[i] != want[i];
        total += conf[i];
    }
    for (int k = 0; k < classes; k++) diag += conf[k * classes + k];
    EXPECT(st || !differ, "%d classes: %d of %d confusion entries differ from the predictions",
           classes, differ, classes * classes);
    EXPECT(st || total == N, "%d classes: the matrix counts %d images of %d", classes, total, N);
    EXPECT(st || (diag == correct && (float)diag / N == r.acc),
           "%d classes: diagonal %d, correct %d, accuracy %g", classes, diag, correct, r.acc);
    /* Without a buffer: the same loss and accuracy. */
    mf_eval_result r2;
    EXPECT(mf_evaluate(&m, &split, mean, std, 16, &r2, &err) == MF_OK && r2.acc == r.acc &&
               r2.loss == r.loss,
           "%d classes: mf_evaluate differs from mf_evaluate_confusion", classes);
    free(conf);
    free(want);
    mf_model_free(&m);
}

int main(void)
{
    mf_set_threads(1);
    check_confusion(2);
    check_confusion(7);
    if (!failures) printf("ok\n");
    return failures ? 1 : 0;
}
