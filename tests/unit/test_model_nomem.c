/* Running out of memory is a status, never NaN: every allocation of a model
 * (mf_model_create, mf_model_reserve, mf_model_collapse, and mf_train and
 * mf_evaluate through them) is made to fail in turn through the model's
 * allocation hook, and each failure must give MF_ERR_NOMEM with a message,
 * leave nothing half-built, and leave the model usable once memory returns. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "minformer.h"
#include "model/model_internal.h"

enum { B = 8 };

static void tiny_config(mf_config *c, const char *preset, int mlp)
{
    mf_error err;
    mf_config_default(c, 28, 1, 10);
    c->dim = 16;
    c->layers = 2;
    mf_config_apply_preset(c, preset, &err);
    c->mlp_ratio = mlp;
}

static void fill_batch(float *x, int *y)
{
    mf_rng rng;
    mf_rng_seed(&rng, 3);
    for (int i = 0; i < B * 784; i++) x[i] = 2.0f * mf_rng_uniform(&rng) - 1.0f;
    for (int b = 0; b < B; b++) y[b] = b % 10;
}

static int is_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i]) return 0;
    return 1;
}

/* Fails allocation k = 1, 2, ... of mf_model_create until it succeeds. */
static void test_create_fails_as_status(void)
{
    const char *presets[] = {"unchanged", "minimal", "symmetric"};
    for (int pi = 0; pi < 3; pi++) {
        mf_config c;
        tiny_config(&c, presets[pi], pi == 0 ? 2 : 0);
        int failures = 0;
        for (long k = 1; k < 100; k++) {
            mf_model m;
            mf_error err;
            mf_error_clear(&err);
            model_alloc_fail_after(k);
            mf_status st = mf_model_create(&m, &c, &err);
            model_alloc_fail_after(0);
            if (st == MF_OK) {
                mf_model_free(&m);
                break;
            }
            failures++;
            CHECK(st == MF_ERR_NOMEM && strstr(err.message, "out of memory"),
                  "%s: allocation %ld failing gives status %d '%s'", presets[pi], k, (int)st,
                  err.message);
            CHECK(is_zero(&m, sizeof m), "%s: allocation %ld failing leaves a half-built model",
                  presets[pi], k);
        }
        CHECK(failures >= 3, "%s: only %d of create's allocations could be made to fail",
              presets[pi], failures);
    }
}

/* Fails allocation k of mf_model_reserve; afterwards the model has no
 * activations, and a reserve with memory back gives a finite loss. */
static void test_reserve_fails_as_status(void)
{
    mf_config c;
    tiny_config(&c, "unchanged", 2);
    c.dropout = 0.1f;
    mf_model m;
    mf_error err;
    if (mf_model_create(&m, &c, &err)) {
        CHECK(0, "create: %s", err.message);
        return;
    }
    mf_model_init_weights(&m, 1);
    float x[B * 784];
    int y[B];
    fill_batch(x, y);
    int failures = 0;
    for (long k = 1; k < 100; k++) {
        mf_error_clear(&err);
        model_alloc_fail_after(k);
        mf_status st = mf_model_reserve(&m, B, &err);
        model_alloc_fail_after(0);
        if (st == MF_OK) break;
        failures++;
        CHECK(st == MF_ERR_NOMEM && strstr(err.message, "out of memory for activations"),
              "allocation %ld failing gives status %d '%s'", k, (int)st, err.message);
        CHECK(m.acts == NULL && m.batch_capacity == 0 && mf_model_logits(&m) == NULL,
              "allocation %ld failing leaves activations behind", k);
    }
    CHECK(failures >= 3, "only %d of reserve's allocations could be made to fail", failures);
    CHECK(m.acts && m.batch_capacity == B, "no activations after a successful reserve");
    if (m.acts) {
        mf_model_set_mode(&m, MF_MODE_TRAIN);
        float loss = mf_model_forward(&m, x, y, B);
        CHECK(isfinite(loss) && loss > 0.0f, "loss %g after the failures", (double)loss);
    }
    /* A larger batch that cannot be had drops the old activations: no
     * forward may run on a buffer smaller than its batch. */
    model_alloc_fail_after(1);
    CHECK(mf_model_reserve(&m, 2 * B, &err) == MF_ERR_NOMEM && m.acts == NULL &&
              m.batch_capacity == 0,
          "a failed larger reserve: status '%s', capacity %d", err.message, m.batch_capacity);
    model_alloc_fail_after(0);
    mf_model_free(&m);
}

static void test_collapse_fails_as_status(void)
{
    mf_config c;
    tiny_config(&c, "unchanged", 0);
    mf_model m, out;
    mf_error err;
    if (mf_model_create(&m, &c, &err)) {
        CHECK(0, "create: %s", err.message);
        return;
    }
    model_alloc_fail_after(2);
    mf_status st = mf_model_collapse(&m, &out, &err);
    model_alloc_fail_after(0);
    CHECK(st == MF_ERR_NOMEM && is_zero(&out, sizeof out), "collapse: status %d '%s'", (int)st,
          err.message);
    mf_model_free(&m);
}

/* n random 28x28 images with labels i mod 10. */
static void synthetic_split(mf_split *s, int n)
{
    memset(s, 0, sizeof *s);
    s->count = n;
    s->channels = 1;
    s->size = 28;
    s->classes = 10;
    s->images = malloc((size_t)n * 784);
    s->labels = malloc((size_t)n * sizeof *s->labels);
    mf_rng rng;
    mf_rng_seed(&rng, 7);
    for (size_t i = 0; i < (size_t)n * 784; i++) s->images[i] = (uint8_t)mf_rng_below(&rng, 256);
    for (int i = 0; i < n; i++) s->labels[i] = (uint16_t)(i % 10);
}

/* Training and evaluation report a failed reserve before any step. */
static void test_train_and_evaluate_fail_as_status(void)
{
    mf_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.kind = MF_MNIST;
    ds.name = "mnist";
    ds.classes = 10;
    ds.channels = 1;
    ds.size = 28;
    ds.std[0] = 1.0f;
    synthetic_split(&ds.train, 64);
    synthetic_split(&ds.test, 16);
    mf_config c;
    tiny_config(&c, "minimal", 0);
    mf_model m;
    mf_error err;
    if (mf_model_create(&m, &c, &err)) {
        CHECK(0, "create: %s", err.message);
        mf_dataset_free(&ds);
        return;
    }
    mf_model_init_weights(&m, 1);
    mf_train_opts o;
    mf_train_opts_default(&o);
    o.epochs = 1;
    o.batch = 16;
    mf_train_state st;
    mf_train_state_init(&st);
    mf_error_clear(&err);
    model_alloc_fail_after(3);
    mf_status s = mf_train(&m, &ds, &o, &st, NULL, NULL, &err);
    model_alloc_fail_after(0);
    CHECK(s == MF_ERR_NOMEM && st.step == 0 && strstr(err.message, "out of memory"),
          "train: status %d, step %ld, '%s'", (int)s, st.step, err.message);
    mf_eval_result r;
    memset(&r, 0, sizeof r);
    mf_error_clear(&err);
    model_alloc_fail_after(1);
    s = mf_evaluate(&m, &ds.test, ds.mean, ds.std, 16, &r, &err);
    model_alloc_fail_after(0);
    CHECK(s == MF_ERR_NOMEM && strstr(err.message, "out of memory"), "evaluate: status %d, '%s'",
          (int)s, err.message);
    mf_model_free(&m);
    mf_dataset_free(&ds);
}

int main(void)
{
    RUN(test_create_fails_as_status);
    RUN(test_reserve_fails_as_status);
    RUN(test_collapse_fails_as_status);
    RUN(test_train_and_evaluate_fail_as_status);
    return check_report();
}
