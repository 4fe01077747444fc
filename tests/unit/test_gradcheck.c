/* Gradient checks by finite differences, in float32.
 *
 * Ops: every differentiable op of src/ops.h (linear, layernorm, gelu, softmax
 * rows, cross-entropy, dropout), element by element, by central differences
 * on the scalar L = sum(r * y) for a random r (the loss itself for
 * cross-entropy), step OP_STEP:
 *   rel = |num - ana| / max(|num|, |ana|, OP_FLOOR) <= OP_TOL.
 * The floor is absolute because these derivatives are of order 0.1 to 1 while
 * float32 rounding puts about 1e-5 of noise on a difference quotient.
 *
 * Whole model: every qk x vo combination with MLP ratio 0 and 4, one head and
 * four heads where valid, mean pooling and dropout (fixed masks), at a tiny
 * geometry (4x4x2 images, patch 2, N 8, L 2, 3 classes, batch 3), from
 * mf_model_init_weights with biases, LayerNorm parameters and embeddings then
 * moved off their initial values. Single entries are too noisy in float32, so
 * each tensor moves as a whole along MODEL_DIRECTIONS random directions
 * v ~ N(0, I), and the directional derivative from a five-point stencil is
 * compared with g.v. The loss is recomputed in double from the float32
 * logits. The stencil runs at two steps, h and h/2; the h/2 value is compared
 * and the gap between the two, an estimate of its own error, is allowed on
 * top of the tolerance:
 *   rel = max(0, |num - ana| - gap) / max(|num|, |ana|, DIRECTION_FLOOR |g|,
 *                                          ABS_FLOOR) <= MODEL_TOL,
 * and gap itself must stay below MAX_UNSURE of that scale. Every tensor's
 * analytic gradient must be non-zero (max |g| > NONZERO_MIN), so the check
 * cannot pass vacuously; the one exception is attn.k.bias, whose exact
 * gradient is zero (softmax ignores the constant q.b_k that b_k adds to all of
 * a query's scores): there both the analytic and the numeric directional
 * derivatives must vanish. GC_SEED=n in the environment changes the random
 * draws (100 seeds pass, worst rel err 0.0064). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "minformer/model.h"
#include "kernels/ops.h"
#include "model/model_internal.h"

#define OP_STEP 1e-2f
#define OP_TOL 1e-2
#define OP_FLOOR 1e-2

#define MODEL_STEP 3e-2 /* how far each tensor moves in all (see h below) */
#define MODEL_DIRECTIONS 3
#define MODEL_TOL 1e-2
/* g.v for v ~ N(0, I) is N(0, |g|^2): relative errors are taken against at
 * least DIRECTION_FLOOR |g|, so a direction that happens to be nearly
 * orthogonal to g is not judged on rounding noise alone. */
#define DIRECTION_FLOOR 0.1
/* Float32 rounding of a loss of order 1 leaves a few 1e-6 of noise on the
 * difference quotient, so directional derivatives below ABS_FLOOR are judged
 * against ABS_FLOOR: a 1e-2 threshold then means 1e-5 absolute. */
#define ABS_FLOOR 3e-3
/* Fail when the difference quotient itself is this uncertain (relative). */
#define MAX_UNSURE 0.05
#define NONZERO_MIN 1e-6
/* attn.k.bias: analytic and numeric directional derivatives must stay below
 * this, against ~1e-1 for the other tensors. */
#define ZERO_GRAD_MAX 1e-3

static mf_rng rng;

static void fill_normal(float *x, size_t n, float mean, float std)
{
    for (size_t i = 0; i < n; i++) x[i] = mean + std * mf_rng_normal(&rng);
}

static double dot_f(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double rel_err(double num, double ana, double floor)
{
    double den = fmax(fmax(fabs(num), fabs(ana)), floor);
    return fabs(num - ana) / den;
}

/* ---- op level ---------------------------------------------------------- */

/* Evaluates the op's scalar loss at the current inputs. */
typedef double (*op_loss_fn)(void *ctx);

/* Central differences of loss over every entry of x, against ana. */
static void op_check(const char *op, const char *input, op_loss_fn loss, void *ctx, float *x,
                     const float *ana, size_t n)
{
    double worst = 0.0, amax = 0.0;
    size_t worst_i = 0;
    double worst_num = 0.0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + OP_STEP;
        double up = loss(ctx);
        x[i] = keep - OP_STEP;
        double down = loss(ctx);
        x[i] = keep;
        /* divide by the step float32 actually took */
        double num = (up - down) / ((double)(keep + OP_STEP) - (double)(keep - OP_STEP));
        double e = rel_err(num, ana[i], OP_FLOOR);
        if (e > worst) {
            worst = e;
            worst_i = i;
            worst_num = num;
        }
        amax = fmax(amax, fabs(ana[i]));
    }
    CHECK(worst <= OP_TOL, "%s d/d%s: rel err %.3g at [%zu]: numeric %.6g, analytic %.6g", op,
          input, worst, worst_i, worst_num, (double)ana[worst_i]);
    CHECK(amax > NONZERO_MIN, "%s d/d%s: analytic gradient is all zero", op, input);
}

enum { LM = 3, LIN = 5, LOUT = 4 };
typedef struct {
    float x[LM * LIN], w[LOUT * LIN], b[LOUT], r[LM * LOUT], y[LM * LOUT];
} linear_ctx;

static double linear_loss(void *p)
{
    linear_ctx *c = p;
    linear_forward(MF_GEMM_FP32, c->y, c->x, c->w, c->b, LM, LIN, LOUT);
    return dot_f(c->y, c->r, LM * LOUT);
}

static void gradcheck_linear(void)
{
    linear_ctx c;
    fill_normal(c.x, LM * LIN, 0, 1);
    fill_normal(c.w, LOUT * LIN, 0, 0.5f);
    fill_normal(c.b, LOUT, 0, 0.5f);
    fill_normal(c.r, LM * LOUT, 0, 1);
    float dx[LM * LIN], dw[LOUT * LIN], db[LOUT];
    /* Start dx from garbage (overwritten without accumulate_dx), dw and db
     * from 1 (always accumulated). */
    for (int i = 0; i < LM * LIN; i++) dx[i] = 7.0f;
    for (int i = 0; i < LOUT * LIN; i++) dw[i] = 1.0f;
    for (int i = 0; i < LOUT; i++) db[i] = 1.0f;
    linear_backward(MF_GEMM_FP32, dx, dw, db, c.r, c.x, c.w, LM, LIN, LOUT, 0);
    for (int i = 0; i < LOUT * LIN; i++) dw[i] -= 1.0f;
    for (int i = 0; i < LOUT; i++) db[i] -= 1.0f;
    op_check("linear", "x", linear_loss, &c, c.x, dx, LM * LIN);
    op_check("linear", "W", linear_loss, &c, c.w, dw, LOUT * LIN);
    op_check("linear", "b", linear_loss, &c, c.b, db, LOUT);
    /* accumulate_dx adds to what is there. */
    float dx2[LM * LIN];
    for (int i = 0; i < LM * LIN; i++) dx2[i] = 1.0f;
    linear_backward(MF_GEMM_FP32, dx2, NULL, NULL, c.r, c.x, c.w, LM, LIN, LOUT, 1);
    for (int i = 0; i < LM * LIN; i++)
        CHECK(check_close(dx2[i] - 1.0f, dx[i], 1e-5f, 1e-5f), "accumulated dx[%d] %g vs %g", i,
              (double)(dx2[i] - 1.0f), (double)dx[i]);
}

enum { NM = 3, NN = 7 };
typedef struct {
    float x[NM * NN], w[NN], b[NN], r[NM * NN], y[NM * NN], mean[NM], rstd[NM];
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    layernorm_forward(c->y, c->mean, c->rstd, c->x, c->w, c->b, NM, NN);
    return dot_f(c->y, c->r, NM * NN);
}

static void gradcheck_layernorm(void)
{
    ln_ctx c;
    fill_normal(c.x, NM * NN, 0.5f, 2.0f); /* off-centre, not unit scale */
    fill_normal(c.w, NN, 1.0f, 0.3f);
    fill_normal(c.b, NN, 0, 0.3f);
    fill_normal(c.r, NM * NN, 0, 1);
    float dx[NM * NN] = {0}, dw[NN] = {0}, db[NN] = {0};
    ln_loss(&c);
    layernorm_backward(dx, dw, db, c.r, c.x, c.mean, c.rstd, c.w, NM, NN);
    op_check("layernorm", "x", ln_loss, &c, c.x, dx, NM * NN);
    op_check("layernorm", "w", ln_loss, &c, c.w, dw, NN);
    op_check("layernorm", "b", ln_loss, &c, c.b, db, NN);
}

enum { GN = 24 };
typedef struct {
    float x[GN], r[GN], y[GN];
} gelu_ctx;

static double gelu_loss(void *p)
{
    gelu_ctx *c = p;
    bias_gelu_forward(c->y, NULL, c->x, NULL, 1, GN);
    return dot_f(c->y, c->r, GN);
}

static void gradcheck_gelu(void)
{
    gelu_ctx c;
    for (int i = 0; i < GN; i++) c.x[i] = -4.0f + 8.0f * (float)i / (GN - 1) + 0.05f;
    fill_normal(c.r, GN, 0, 1);
    float y[GN], dx[GN];
    memcpy(dx, c.r, sizeof dx);
    float slope[GN];
    bias_gelu_forward(y, slope, c.x, NULL, 1, GN);
    gelu_backward(dx, slope, GN);
    op_check("gelu", "x", gelu_loss, &c, c.x, dx, GN);
    /* Exact GELU, not the tanh approximation: GELU(1) = 0.8413447. */
    float one = 1.0f;
    bias_gelu_forward(y, NULL, &one, NULL, 1, 1);
    CHECK(fabsf(y[0] - 0.84134475f) < 1e-6f, "GELU(1) = %.8f, want 0.84134475", (double)y[0]);
}

/* GELU and its slope against double precision on a fine grid over [-10, 10],
 * with a bias, in place (slope overwriting x), and the same values whether
 * or not the slope is asked for. */
static void test_gelu_accuracy(void)
{
    enum { n = 2001 };
    static float x[n], y[n], y2[n], slope[n];
    float b[n];
    for (int i = 0; i < n; i++) x[i] = -10.0f + 0.01f * (float)i, b[i] = 0.0f;
    b[7] = 0.25f;
    x[7] -= 0.25f;
    bias_gelu_forward(y2, NULL, x, b, 1, n);
    memcpy(slope, x, sizeof x);
    bias_gelu_forward(y, slope, slope, b, 1, n);
    double worst_near = 0.0, worst_tail = 0.0, worst_slope = 0.0;
    int same = 1;
    for (int i = 0; i < n; i++) {
        double v = (double)x[i] + (double)b[i];
        double cdf = 0.5 * erfc(-v / sqrt(2.0));
        double want = v * cdf, dwant = cdf + v * exp(-0.5 * v * v) * 0.39894228040143267794;
        double rel = want != 0.0 ? fabs(y[i] - want) / fabs(want) : fabs(y[i]);
        if (v >= -3.0) worst_near = fmax(worst_near, rel);
        else worst_tail = fmax(worst_tail, rel);
        worst_slope = fmax(worst_slope, fabs(slope[i] - dwant));
        same &= memcmp(&y[i], &y2[i], sizeof(float)) == 0;
    }
    CHECK(worst_near < 2e-6, "GELU relative error %.3g for x >= -3", worst_near);
    CHECK(worst_tail < 1.5e-5, "GELU relative error %.3g for x in [-10, -3)", worst_tail);
    CHECK(worst_slope < 5e-7, "GELU' absolute error %.3g", worst_slope);
    CHECK(same, "GELU differs with and without its slope");
}

enum { SR = 3, SN = 6 };
typedef struct {
    float x[SR * SN], r[SR * SN], y[SR * SN];
} softmax_ctx;

static double softmax_loss(void *p)
{
    softmax_ctx *c = p;
    memcpy(c->y, c->x, sizeof c->y);
    softmax_rows_forward(c->y, SR, SN);
    return dot_f(c->y, c->r, SR * SN);
}

static void gradcheck_softmax_rows(void)
{
    softmax_ctx c;
    fill_normal(c.x, SR * SN, 0, 1.5f);
    fill_normal(c.r, SR * SN, 0, 1);
    softmax_loss(&c);
    float d[SR * SN];
    memcpy(d, c.r, sizeof d);
    softmax_rows_backward(d, c.y, SR, SN);
    op_check("softmax_rows", "x", softmax_loss, &c, c.x, d, SR * SN);
}

enum { CB = 3, CK = 5 };
typedef struct {
    float logits[CB * CK], probs[CB * CK];
    int labels[CB];
} ce_ctx;

static double ce_loss(void *p)
{
    ce_ctx *c = p;
    return cross_entropy_forward(c->probs, c->logits, c->labels, CB, CK);
}

static void gradcheck_cross_entropy(void)
{
    ce_ctx c;
    fill_normal(c.logits, CB * CK, 0, 2.0f);
    for (int b = 0; b < CB; b++) c.labels[b] = (int)mf_rng_below(&rng, CK);
    float d[CB * CK];
    ce_loss(&c);
    cross_entropy_backward(d, c.probs, c.labels, CB, CK);
    op_check("cross_entropy", "logits", ce_loss, &c, c.logits, d, CB * CK);
}

enum { DN = 64 };
typedef struct {
    float x[DN], r[DN], y[DN];
} dropout_ctx;

static double dropout_loss(void *p)
{
    dropout_ctx *c = p;
    memcpy(c->y, c->x, sizeof c->y);
    dropout_apply(c->y, DN, 0.3f, 12345);
    return dot_f(c->y, c->r, DN);
}

/* Dropout's backward is the same mask applied to dy. */
static void gradcheck_dropout(void)
{
    dropout_ctx c;
    fill_normal(c.x, DN, 0, 1);
    fill_normal(c.r, DN, 0, 1);
    float d[DN];
    memcpy(d, c.r, sizeof d);
    dropout_apply(d, DN, 0.3f, 12345);
    op_check("dropout", "x", dropout_loss, &c, c.x, d, DN);
    int dropped = 0;
    for (int i = 0; i < DN; i++) dropped += d[i] == 0.0f;
    CHECK(dropped > 0 && dropped < DN, "dropout p=0.3 dropped %d of %d", dropped, DN);
}

/* ---- whole model ----------------------------------------------------------- */

enum { GB = 3 }; /* images */

typedef struct {
    const char *name;
    mf_qk_kind qk;
    mf_vo_kind vo;
    int heads, ratio;
    mf_pool_kind pool;
    float dropout;
} model_case;

/* Mean cross-entropy in double from the float32 logits of the last forward. */
static double model_loss(mf_model *m, const float *images, const int *labels)
{
    mf_model_forward(m, images, labels, GB);
    const float *z = mf_model_logits(m);
    int K = m->cfg.classes;
    double loss = 0.0;
    for (int b = 0; b < GB; b++) {
        double mx = z[b * K];
        for (int k = 1; k < K; k++) mx = fmax(mx, z[b * K + k]);
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp(z[b * K + k] - mx);
        loss += mx + log(sum) - z[b * K + labels[b]];
    }
    return loss / GB;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Non-trivial parameters: the documented initialization, then biases,
 * LayerNorm parameters and embeddings moved off their initial values. */
static void perturb_params(mf_model *m)
{
    for (int i = 0; i < m->num_tensors; i++) {
        const mf_tensor_info *t = &m->tensors[i];
        float *x = m->params + t->offset;
        if (strstr(t->name, "norm") && ends_with(t->name, ".weight"))
            fill_normal(x, t->numel, 1.0f, 0.2f);
        else if (!strcmp(t->name, "cls_token") || !strcmp(t->name, "pos_embed"))
            fill_normal(x, t->numel, 0.0f, 0.5f);
        else if (strstr(t->name, "attn.shaped."))
            /* --vo shaped's gains near 1, where training keeps them: with all
             * three near 0 the loss is nearly flat in them, and its curvature,
             * not the slope, dominates their difference quotients. */
            fill_normal(x, t->numel, 1.0f, 0.3f);
        else if (t->ndim == 1 && !strstr(t->name, "qk_tril"))
            fill_normal(x, t->numel, 0.0f, 0.2f);
    }
}

static const model_case *current;
static double worst_model_err, worst_model_unsure;

/* Five-point stencil (8 (L(h) - L(-h)) - (L(2h) - L(-2h))) / 12h along v
 * from p0: no h^2 error, so h can be large enough to keep float32 rounding of
 * the loss well below the derivative. Restores p. */
static double directional_derivative(mf_model *m, const float *images, const int *labels,
                                     float *p, const float *p0, const double *v, size_t n,
                                     double h)
{
    static const double at[4] = {1.0, -1.0, 2.0, -2.0};
    double L[4];
    for (int k = 0; k < 4; k++) {
        for (size_t i = 0; i < n; i++) p[i] = (float)(p0[i] + at[k] * h * v[i]);
        L[k] = model_loss(m, images, labels);
    }
    memcpy(p, p0, n * sizeof(float));
    return (8.0 * (L[0] - L[1]) - (L[2] - L[3])) / (12.0 * h);
}

static void gradcheck_model_case(void)
{
    const model_case *mc = current;
    mf_config cfg;
    mf_config_default(&cfg, 4, 2, 3); /* 4x4 images, 2 channels, 3 classes */
    cfg.patch = 2;
    cfg.dim = 8;
    cfg.layers = 2;
    cfg.heads = mc->heads;
    cfg.mlp_ratio = mc->ratio;
    cfg.qk = mc->qk;
    cfg.vo = mc->vo;
    cfg.pool = mc->pool;
    cfg.dropout = mc->dropout;
    mf_model m;
    mf_error err = {0};
    worst_model_err = worst_model_unsure = 0.0;
    if (mf_model_create(&m, &cfg, &err) != MF_OK) {
        CHECK(0, "%s: mf_model_create: %s", mc->name, err.message);
        return;
    }
    if (mf_model_reserve(&m, GB, &err) != MF_OK) {
        CHECK(0, "%s: mf_model_reserve: %s", mc->name, err.message);
        mf_model_free(&m);
        return;
    }
    mf_model_init_weights(&m, 1234);
    perturb_params(&m);
    mf_model_set_mode(&m, mc->dropout > 0.0f ? MF_MODE_TRAIN : MF_MODE_EVAL);
    m.dropout_seed = 99; /* fixed masks: the loss is a smooth function of the parameters */
    float images[GB * 2 * 4 * 4];
    int labels[GB];
    fill_normal(images, sizeof images / sizeof *images, 0, 1);
    for (int b = 0; b < GB; b++) labels[b] = (int)mf_rng_below(&rng, 3);

    size_t P = m.num_params;
    float *g = malloc(P * sizeof(float)), *saved = malloc(P * sizeof(float));
    double *v = malloc(P * sizeof(double));
    if (!g || !saved || !v) {
        CHECK(0, "out of memory");
        goto done;
    }
    mf_model_zero_grad(&m);
    model_loss(&m, images, labels);
    mf_model_backward(&m);
    memcpy(g, m.grads, P * sizeof(float));
    memcpy(saved, m.params, P * sizeof(float));

    for (int ti = 0; ti < m.num_tensors; ti++) {
        const mf_tensor_info *t = &m.tensors[ti];
        float *p = m.params + t->offset;
        const float *gt = g + t->offset;
        double gmax = 0.0, gnorm = 0.0;
        for (size_t i = 0; i < t->numel; i++) {
            gmax = fmax(gmax, fabs(gt[i]));
            gnorm += (double)gt[i] * gt[i];
        }
        gnorm = sqrt(gnorm);
        int exact_zero = ends_with(t->name, "attn.k.bias");
        /* Per-entry step: the whole tensor moves by about MODEL_STEP, less
         * where the loss is steep (|g| > 1), so that higher-order terms stay
         * small while the change of the loss stays well above rounding. */
        double h = MODEL_STEP / (sqrt((double)t->numel) * fmax(1.0, gnorm));
        if (exact_zero)
            CHECK(gmax <= ZERO_GRAD_MAX, "%s: %s: max |g| %.3g, but its exact gradient is zero",
                  mc->name, t->name, gmax);
        else
            CHECK(gmax > NONZERO_MIN, "%s: %s: analytic gradient is all zero (max %.3g)", mc->name,
                  t->name, gmax);
        for (int dir = 0; dir < MODEL_DIRECTIONS; dir++) {
            for (size_t i = 0; i < t->numel; i++) v[i] = mf_rng_normal(&rng);
            /* The estimate at h/2 is the one compared; its distance from the
             * estimate at h bounds its own error (truncation and rounding),
             * and is allowed on top of the tolerance. */
            double coarse = directional_derivative(&m, images, labels, p, saved + t->offset, v,
                                                   t->numel, h);
            double num = directional_derivative(&m, images, labels, p, saved + t->offset, v,
                                                t->numel, h / 2);
            double unsure = fabs(coarse - num);
            double ana = 0.0;
            for (size_t i = 0; i < t->numel; i++) ana += (double)gt[i] * v[i];
            if (exact_zero) {
                CHECK(fabs(num) <= ZERO_GRAD_MAX && fabs(ana) <= ZERO_GRAD_MAX,
                      "%s: %s direction %d: numeric %.3g, analytic %.3g; both should vanish",
                      mc->name, t->name, dir, num, ana);
                continue;
            }
            double den = fmax(fmax(fabs(num), fabs(ana)), fmax(DIRECTION_FLOOR * gnorm, ABS_FLOOR));
            double e = fmax(0.0, fabs(num - ana) - unsure) / den;
            if (e > worst_model_err) worst_model_err = e;
            if (unsure / den > worst_model_unsure) worst_model_unsure = unsure / den;
            CHECK(e <= MODEL_TOL,
                  "%s: %s direction %d: numeric %.8g (+-%.2g), analytic %.8g, rel err %.3g",
                  mc->name, t->name, dir, num, unsure, ana, e);
            CHECK(unsure <= MAX_UNSURE * den,
                  "%s: %s direction %d: the difference quotient is unstable: %.8g at step h, "
                  "%.8g at h/2",
                  mc->name, t->name, dir, coarse, num);
        }
    }
done:
    free(g);
    free(saved);
    free(v);
    mf_model_free(&m);
}

/* RUN() from check.h, naming the case. */
static void run_model_case(const model_case *mc)
{
    current = mc;
    check_current_failures = 0;
    check_current_skipped = 0;
    gradcheck_model_case();
    if (check_current_failures) {
        check_failed++;
        fprintf(stderr, "not ok gradcheck_model %s\n", mc->name);
    } else {
        check_passed++;
        printf("ok gradcheck_model %s (worst rel err %.2g, quotient uncertainty %.2g)\n", mc->name,
               worst_model_err, worst_model_unsure);
    }
    fflush(stdout);
}

/* --vo shaped from mf_model_init_weights: every block's attention branch is
 * its input h = LN1(x), for every query/key kind (docs/model.md: He &
 * Hofmann's start, or beta = gamma = 0 for the quadratic forms). Without an
 * MLP the branch is x_{l+1} - x_l; with CLS pooling the last block has only
 * its CLS rows. */
static void test_shaped_starts_as_identity(void)
{
    for (int qk = MF_QK_SEPARATE; qk <= MF_QK_CHOLESKY; qk++)
        for (int pool = MF_POOL_CLS; pool <= MF_POOL_MEAN; pool++) {
            mf_config cfg;
            mf_config_default(&cfg, 4, 2, 3);
            cfg.patch = 2, cfg.dim = 8, cfg.layers = 3, cfg.mlp_ratio = 0;
            cfg.qk = (mf_qk_kind)qk, cfg.vo = MF_VO_SHAPED, cfg.pool = (mf_pool_kind)pool;
            mf_model m;
            mf_error err = {0};
            if (mf_model_create(&m, &cfg, &err) != MF_OK) {
                CHECK(0, "qk=%s: %s", mf_qk_name(cfg.qk), err.message);
                continue;
            }
            if (mf_model_reserve(&m, GB, &err) != MF_OK) {
                CHECK(0, "qk=%s: %s", mf_qk_name(cfg.qk), err.message);
                mf_model_free(&m);
                continue;
            }
            mf_model_init_weights(&m, 77);
            float images[GB * 2 * 4 * 4];
            fill_normal(images, sizeof images / sizeof *images, 0, 1);
            mf_model_forward(&m, images, NULL, GB);
            int T = mf_config_tokens(&cfg), N = cfg.dim;
            double worst = 0.0;
            for (int l = 0; l < cfg.layers; l++) {
                const mf_layer_acts *a = &m.acts->layers[l];
                const float *next = m.acts->layers[l + 1].x;
                int rows = pool == MF_POOL_CLS && l == cfg.layers - 1 ? 1 : T;
                for (int b = 0; b < GB; b++)
                    for (int t = 0; t < rows; t++)
                        for (int i = 0; i < N; i++) {
                            size_t at = ((size_t)b * T + t) * N + i;
                            worst = fmax(worst, fabs((double)next[at] - a->x[at] - a->ln1[at]));
                        }
            }
            CHECK(worst < 1e-5, "qk=%s pool=%s: the attention branch differs from LN1(x) by %.3g "
                  "at initialization", mf_qk_name(cfg.qk), mf_pool_name(cfg.pool), worst);
            mf_model_free(&m);
        }
}

int main(void)
{
    /* The tiny model gains nothing from threads, and on a busy machine
     * thousands of small parallel regions cost more than the arithmetic;
     * test_parity runs the same kernels with the default thread count. */
    mf_set_threads(1);
    mf_rng_seed(&rng, getenv("GC_SEED") ? strtoull(getenv("GC_SEED"), NULL, 10) : 20241017);
    RUN(gradcheck_linear);
    RUN(gradcheck_layernorm);
    RUN(gradcheck_gelu);
    RUN(test_gelu_accuracy);
    RUN(gradcheck_softmax_rows);
    RUN(gradcheck_cross_entropy);
    RUN(gradcheck_dropout);

    static char names[64][96];
    model_case cases[64];
    int n = 0;
    for (int qk = MF_QK_SEPARATE; qk <= MF_QK_CHOLESKY; qk++)
        for (int vo = MF_VO_SEPARATE; vo <= MF_VO_NONE; vo++)
            for (int heads = 1; heads <= 4; heads += 3)
                for (int ratio = 0; ratio <= 4; ratio += 4) {
                    int multi_ok = (qk == MF_QK_SEPARATE || qk == MF_QK_SHARED) && vo != MF_VO_COLLAPSED;
                    if (heads > 1 && !multi_ok) continue;
                    snprintf(names[n], sizeof names[n], "qk=%s vo=%s H=%d r=%d",
                             mf_qk_name((mf_qk_kind)qk), mf_vo_name((mf_vo_kind)vo), heads, ratio);
                    cases[n] = (model_case){names[n], (mf_qk_kind)qk, (mf_vo_kind)vo, heads, ratio,
                                            MF_POOL_CLS, 0.0f};
                    n++;
                }
    cases[n++] = (model_case){"pool=mean qk=separate vo=separate H=4 r=4", MF_QK_SEPARATE,
                              MF_VO_SEPARATE, 4, 4, MF_POOL_MEAN, 0.0f};
    cases[n++] = (model_case){"pool=mean qk=collapsed vo=collapsed H=1 r=4", MF_QK_COLLAPSED,
                              MF_VO_COLLAPSED, 1, 4, MF_POOL_MEAN, 0.0f};
    cases[n++] = (model_case){"pool=mean qk=cholesky vo=none H=1 r=0", MF_QK_CHOLESKY, MF_VO_NONE,
                              1, 0, MF_POOL_MEAN, 0.0f};
    cases[n++] = (model_case){"dropout=0.2 qk=separate vo=separate H=4 r=4", MF_QK_SEPARATE,
                              MF_VO_SEPARATE, 4, 4, MF_POOL_CLS, 0.2f};
    cases[n++] = (model_case){"dropout=0.2 qk=symmetric vo=none H=1 r=0", MF_QK_SYMMETRIC,
                              MF_VO_NONE, 1, 0, MF_POOL_CLS, 0.2f};
    /* --vo shaped with every query/key kind (one head), after the others so
     * that their random draws stay as they were. */
    for (int qk = MF_QK_SEPARATE; qk <= MF_QK_CHOLESKY; qk++)
        for (int ratio = 0; ratio <= 4; ratio += 4) {
            snprintf(names[n], sizeof names[n], "qk=%s vo=shaped H=1 r=%d",
                     mf_qk_name((mf_qk_kind)qk), ratio);
            cases[n] = (model_case){names[n], (mf_qk_kind)qk, MF_VO_SHAPED, 1, ratio, MF_POOL_CLS,
                                    0.0f};
            n++;
        }
    cases[n++] = (model_case){"pool=mean qk=shared vo=shaped H=1 r=4", MF_QK_SHARED, MF_VO_SHAPED,
                              1, 4, MF_POOL_MEAN, 0.0f};
    cases[n++] = (model_case){"dropout=0.2 qk=collapsed vo=shaped H=1 r=0", MF_QK_COLLAPSED,
                              MF_VO_SHAPED, 1, 0, MF_POOL_CLS, 0.2f};
    for (int i = 0; i < n; i++) run_model_case(&cases[i]);
    RUN(test_shaped_starts_as_identity);
    return check_report();
}
