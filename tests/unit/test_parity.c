/* Parity with an independent PyTorch implementation of the model.
 *
 * tools/torch_reference.py (run with /usr/bin/python3) writes one reference
 * file per case into tests/data/parity/ and lists the cases in index.txt.
 * For each case this test builds the model from the recorded configuration,
 * requires its tensor table to equal PyTorch's parameters exactly (same names
 * in the same order, same shapes: this also checks the naming spec), copies
 * the parameters, and compares the logits and loss of a forward pass, every
 * parameter gradient, the losses of 3 AdamW steps on the same batch and every
 * parameter after those steps. Run from the repository root (`make test`);
 * MF_PARITY_DIR overrides the folder.
 *
 * Reference file format (see tools/torch_reference.py; integers are uint32
 * little-endian, data little-endian):
 *   "MFPARITY", version u32 (1), record count u32, then per record:
 *   name_len u32, name bytes, dtype u32 (0 float32, 1 int32, 2 uint8 text),
 *   ndim u32 (0..4, 0 = one scalar), dims u32 x ndim, prod(dims) elements.
 * Records: config.<field> (int32 scalars; qk/vo/pool as the C enums),
 * config.preset (text, preset cases only), train.* (AdamW settings), input
 * (B,C,S,S), labels (B), logits (B,K), loss, param.<name>, grad.<name>,
 * steps.loss (3), step3.<name>. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "minformer/model.h"
#include "kernels/cpu.h"

/* Tolerances. Both sides compute in float32 but sum in different orders, so
 * results agree to a few float32 ulps per operation, compounding through the
 * layers.
 * - logits and losses: |c - t| <= 1e-5 + 1e-4 |t|.
 * - gradients: max |c - t| <= 1e-3 max|t| + 1e-6 over each tensor (relative
 *   to the tensor's largest gradient: small entries are differences of large
 *   terms). The 1e-6 floor admits tensors whose exact gradient is zero, which
 *   both sides then hold as rounding noise: attn.k.bias, since softmax ignores
 *   the constant q.b_k that b_k adds to a query's row of scores.
 * - parameters after 3 AdamW steps: |c - t| <= 1e-4 (they are of order 1 and
 *   move by about 3 lr = 3e-2). Adam divides by the gradient's magnitude, so
 *   it turns a gradient that is only rounding noise into steps of up to lr in
 *   a direction set by that noise: tensors whose reference gradient is
 *   numerically zero (max|t| <= 1e-6) are allowed to differ by 2 * 3 lr and
 *   must have stayed within 3 lr of where they started. */
/* The bf16 tolerances are about twice the worst differences measured over
 * the six cases (logits 0.017, gradients 0.033 of the scale). */
#define BF16_LOGIT_ATOL 3e-2f
#define BF16_LOGIT_RTOL 3e-2f
#define BF16_GRAD_REL 6e-2f
#define BF16_GRAD_GLOBAL 5e-2f

/* A set of reference files and how close minformer must come to them. */
typedef struct {
    const char *dir, *env; /* the files' folder, and the variable that overrides it */
    mf_precision precision;
    float logit_atol, logit_rtol, grad_rel, grad_floor;
    /* A tensor's gradient tolerance is grad_rel times the larger of its own
     * largest |gradient| and grad_global times the model's largest. */
    float grad_global;
    /* Parameters after the AdamW steps, or 0: only the losses on the way. */
    float step_atol;
} parity_mode;

/* fp32 against PyTorch in fp32. */
static const parity_mode fp32_mode = {"tests/data/parity", "MF_PARITY_DIR", MF_PRECISION_FP32,
                                      1e-5f, 1e-4f, 1e-3f, 1e-6f, 0.0f, 1e-4f};
/* bf16 against PyTorch under torch.autocast("cpu", bfloat16). Both round the
 * linear layers' operands to bf16 and sum in fp32, but autocast also rounds
 * each product's output to bf16 and runs the attention products in bf16,
 * where minformer keeps fp32: differences of a few bf16 ulps (2^-8
 * relative) per layer. Gradients that are zero in exact arithmetic (the key
 * bias: softmax ignores a score shift) are rounding noise on both sides, of
 * a size set by the model's large gradients, hence grad_global. Parameters
 * after AdamW steps are not compared: Adam moves a parameter by about lr
 * whatever its gradient's size, so where bf16 rounding flips the sign of a
 * tiny gradient the two sides part by 2 lr per step; the losses of the steps
 * are compared instead. */
static const parity_mode bf16_mode = {"tests/data/parity_bf16", "MF_PARITY_BF16_DIR",
                                      MF_PRECISION_BF16, BF16_LOGIT_ATOL, BF16_LOGIT_RTOL,
                                      BF16_GRAD_REL, 1e-6f, BF16_GRAD_GLOBAL, 0.0f};
static const parity_mode *mode = &fp32_mode;
#define LOGIT_ATOL mode->logit_atol
#define LOGIT_RTOL mode->logit_rtol
#define GRAD_REL mode->grad_rel
#define GRAD_FLOOR mode->grad_floor
#define STEP_ATOL mode->step_atol
#define PARITY_STEPS 3
/* The index must list at least this many cases, so lost files are noticed. */
#define MIN_CASES 58

/* ---- the reference file -------------------------------------------------- */

enum { DT_F32 = 0, DT_I32 = 1, DT_U8 = 2 };

typedef struct {
    char name[128];
    int dtype, ndim;
    int dims[4];
    size_t numel;
    void *data; /* float, int32_t or char (NUL-terminated) */
} ref_tensor;

typedef struct {
    int count;
    ref_tensor *t;
} ref_file;

static void ref_free(ref_file *f)
{
    for (int i = 0; i < f->count; i++) free(f->t[i].data);
    free(f->t);
    memset(f, 0, sizeof *f);
}

typedef struct {
    const unsigned char *p;
    size_t left;
} cursor;

static int take_bytes(cursor *c, void *dst, size_t n)
{
    if (c->left < n) return 0;
    if (dst) memcpy(dst, c->p, n);
    c->p += n;
    c->left -= n;
    return 1;
}

static int take_u32(cursor *c, uint32_t *v)
{
    unsigned char b[4];
    if (!take_bytes(c, b, 4)) return 0;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

/* Loads path into f; on failure writes the reason into why and returns 0. */
static int ref_load(ref_file *f, const char *path, char *why, size_t whylen)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(why, whylen, "cannot open %s (run /usr/bin/python3 tools/torch_reference.py)", path);
        return 0;
    }
    size_t cap = 1 << 20, len = 0;
    unsigned char *blob = malloc(cap);
    for (;;) {
        if (!blob) break;
        len += fread(blob + len, 1, cap - len, fp);
        if (len < cap) break;
        unsigned char *bigger = realloc(blob, cap * 2);
        if (!bigger) {
            free(blob);
            blob = NULL;
            break;
        }
        blob = bigger;
        cap *= 2;
    }
    int read_error = ferror(fp);
    fclose(fp);
    if (!blob || read_error) {
        free(blob);
        snprintf(why, whylen, "cannot read %s", path);
        return 0;
    }
    cursor c = {blob, len};
    char magic[8];
    uint32_t version = 0, count = 0;
    int ok = take_bytes(&c, magic, 8) && !memcmp(magic, "MFPARITY", 8) && take_u32(&c, &version) &&
             version == 1 && take_u32(&c, &count) && count < 100000;
    if (!ok) {
        free(blob);
        snprintf(why, whylen, "%s: bad header (magic MFPARITY, version 1)", path);
        return 0;
    }
    f->t = calloc(count ? count : 1, sizeof *f->t);
    for (uint32_t r = 0; f->t && r < count; r++) {
        ref_tensor *t = &f->t[r];
        uint32_t name_len = 0, dtype = 0, ndim = 0, dim = 0;
        if (!take_u32(&c, &name_len) || name_len == 0 || name_len >= sizeof t->name ||
            !take_bytes(&c, t->name, name_len) || !take_u32(&c, &dtype) || dtype > DT_U8 ||
            !take_u32(&c, &ndim) || ndim > 4) {
            snprintf(why, whylen, "%s: record %u: bad or truncated header", path, (unsigned)r);
            ok = 0;
            break;
        }
        t->dtype = (int)dtype;
        t->ndim = (int)ndim;
        t->numel = 1;
        for (uint32_t d = 0; d < ndim && ok; d++) {
            ok = take_u32(&c, &dim) && dim <= (1u << 24);
            t->dims[d] = (int)dim;
            t->numel *= dim;
        }
        size_t elem = dtype == DT_U8 ? 1 : 4;
        if (!ok || t->numel > c.left / elem) {
            snprintf(why, whylen, "%s: record %s: truncated data", path, t->name);
            ok = 0;
            break;
        }
        t->data = calloc(t->numel * elem + 1, 1);
        if (!t->data) {
            ok = 0;
            snprintf(why, whylen, "out of memory");
            break;
        }
        if (dtype == DT_U8) {
            take_bytes(&c, t->data, t->numel);
        } else {
            for (size_t i = 0; i < t->numel; i++) {
                uint32_t u = 0;
                take_u32(&c, &u);
                memcpy((char *)t->data + 4 * i, &u, 4);
            }
        }
        f->count = (int)r + 1;
    }
    if (ok && !f->t) snprintf(why, whylen, "out of memory");
    if (ok && f->t && c.left) {
        snprintf(why, whylen, "%s: %zu bytes after the last record", path, c.left);
        ok = 0;
    }
    free(blob);
    if (!ok || !f->t) {
        ref_free(f);
        return 0;
    }
    return 1;
}

static const ref_tensor *ref_find(const ref_file *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

/* ---- comparisons ---------------------------------------------------------- */

static const char *current_case;

static float max_abs(const float *x, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* Checks |got - want| <= atol + rtol |want| elementwise; on failure names the
 * case, the tensor, the largest difference and where. Returns the max diff. */
static float compare(const char *what, const char *name, const float *got, const float *want,
                     size_t n, float atol, float rtol)
{
    float worst = -1.0f;
    size_t worst_i = 0, bad = 0, first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(got[i] - want[i]);
        if (isnan(got[i]) || isnan(want[i])) d = INFINITY;
        if (d > worst) {
            worst = d;
            worst_i = i;
        }
        if (!check_close(got[i], want[i], atol, rtol) && bad++ == 0) first_bad = i;
    }
    CHECK(bad == 0,
          "%s: %s%s%s: %zu of %zu differ; max |diff| %.3g at [%zu] (C %.8g, torch %.8g); first at "
          "[%zu] (C %.8g, torch %.8g); tolerance %.3g + %.3g |torch|",
          current_case, what, name[0] ? " " : "", name, bad, n, (double)worst, worst_i, (double)got[worst_i],
          (double)want[worst_i], first_bad, (double)got[first_bad], (double)want[first_bad],
          (double)atol, (double)rtol);
    return worst;
}

/* Largest differences of the current case, for the closing summary line. */
static float worst_logit, worst_grad_rel, worst_step;

/* ---- one case -------------------------------------------------------------- */

static int ref_int(const ref_file *f, const char *name, int *out)
{
    const ref_tensor *t = ref_find(f, name);
    CHECK(t && t->dtype == DT_I32 && t->numel == 1, "%s: missing int32 record %s", current_case, name);
    if (!t || t->dtype != DT_I32 || t->numel != 1) return 0;
    *out = *(const int32_t *)t->data;
    return 1;
}

static const float *ref_floats(const ref_file *f, const char *name, size_t numel)
{
    const ref_tensor *t = ref_find(f, name);
    int ok = t && t->dtype == DT_F32 && t->numel == numel;
    CHECK(ok, "%s: record %s missing or not %zu float32 values", current_case, name, numel);
    return ok ? t->data : NULL;
}

static int read_config(const ref_file *f, mf_config *cfg, int *B)
{
    int qk = 0, vo = 0, pool = 0;
    memset(cfg, 0, sizeof *cfg);
    int ok = ref_int(f, "config.image_size", &cfg->image_size) &&
             ref_int(f, "config.channels", &cfg->channels) &&
             ref_int(f, "config.classes", &cfg->classes) && ref_int(f, "config.patch", &cfg->patch) &&
             ref_int(f, "config.dim", &cfg->dim) && ref_int(f, "config.layers", &cfg->layers) &&
             ref_int(f, "config.heads", &cfg->heads) &&
             ref_int(f, "config.mlp_ratio", &cfg->mlp_ratio) && ref_int(f, "config.qk", &qk) &&
             ref_int(f, "config.vo", &vo) && ref_int(f, "config.pool", &pool) &&
             ref_int(f, "config.batch", B);
    cfg->qk = (mf_qk_kind)qk;
    cfg->vo = (mf_vo_kind)vo;
    cfg->pool = (mf_pool_kind)pool;
    cfg->dropout = 0.0f;
    return ok;
}

/* A preset case records the preset: applying it to the geometry's defaults
 * (with heads 4, layers and width as recorded) must give the same config. */
static void check_preset(const ref_file *f, const mf_config *cfg)
{
    const ref_tensor *t = ref_find(f, "config.preset");
    if (!t) return;
    mf_config want;
    mf_error err = {0};
    mf_config_default(&want, cfg->image_size, cfg->channels, cfg->classes);
    want.layers = cfg->layers;
    want.dim = cfg->dim;
    want.heads = 4;
    mf_status st = mf_config_apply_preset(&want, (const char *)t->data, &err);
    CHECK(st == MF_OK, "%s: preset %s: %s", current_case, (const char *)t->data, err.message);
    CHECK(want.patch == cfg->patch && want.heads == cfg->heads &&
              want.mlp_ratio == cfg->mlp_ratio && want.qk == cfg->qk && want.vo == cfg->vo &&
              want.pool == cfg->pool,
          "%s: preset %s gives patch %d heads %d r %d qk %s vo %s pool %s; the reference has "
          "patch %d heads %d r %d qk %s vo %s pool %s",
          current_case, (const char *)t->data, want.patch, want.heads, want.mlp_ratio,
          mf_qk_name(want.qk), mf_vo_name(want.vo), mf_pool_name(want.pool), cfg->patch,
          cfg->heads, cfg->mlp_ratio, mf_qk_name(cfg->qk), mf_vo_name(cfg->vo),
          mf_pool_name(cfg->pool));
}

/* The PyTorch side's weight-decay rule: weight matrices and qk_tril. */
static int torch_decays(const char *name)
{
    size_t n = strlen(name);
    if (n >= 7 && !strcmp(name + n - 7, "qk_tril")) return 1;
    return n >= 7 && !strcmp(name + n - 7, ".weight") && !strstr(name, "norm");
}

/* The tensor tables must be equal: same names, order and shapes. Copies the
 * parameters. Returns 0 when they differ. */
static int load_params(const ref_file *f, mf_model *m)
{
    int refs = 0, ok = 1;
    for (int i = 0; i < f->count; i++) {
        const ref_tensor *r = &f->t[i];
        if (strncmp(r->name, "param.", 6)) continue;
        const char *name = r->name + 6;
        const mf_tensor_info *t = mf_model_find_tensor(m, name);
        CHECK(t != NULL, "%s: torch parameter %s is missing from the C tensor table", current_case,
              name);
        if (!t) {
            ok = 0;
            continue;
        }
        int same_shape = t->ndim == r->ndim && t->numel == r->numel;
        for (int d = 0; same_shape && d < t->ndim; d++) same_shape = t->shape[d] == r->dims[d];
        CHECK(same_shape, "%s: %s has shape (%d,%d,%d,%d)[%d dims] in C, (%d,%d,%d,%d)[%d dims] in torch",
              current_case, name, t->shape[0], t->shape[1], t->shape[2], t->shape[3], t->ndim,
              r->dims[0], r->dims[1], r->dims[2], r->dims[3], r->ndim);
        CHECK(refs >= m->num_tensors || !strcmp(m->tensors[refs].name, name),
              "%s: tensor %d is %s in C but %s in torch (order differs)", current_case, refs,
              refs < m->num_tensors ? m->tensors[refs].name : "-", name);
        CHECK(t->decay == torch_decays(name), "%s: %s has decay %d in C, %d in torch", current_case,
              name, t->decay, torch_decays(name));
        if (!same_shape || r->dtype != DT_F32) {
            ok = 0;
            continue;
        }
        memcpy(m->params + t->offset, r->data, t->numel * sizeof(float));
        refs++;
    }
    for (int i = 0; i < m->num_tensors; i++) {
        char key[160];
        snprintf(key, sizeof key, "param.%s", m->tensors[i].name);
        int found = ref_find(f, key) != NULL;
        CHECK(found, "%s: C tensor %s has no torch parameter", current_case, m->tensors[i].name);
        ok &= found;
    }
    return ok && refs == m->num_tensors;
}

static void parity_case(const char *name)
{
    char path[512], why[1024];
    const char *dir = getenv(mode->env) ? getenv(mode->env) : mode->dir;
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    ref_file f;
    worst_logit = worst_grad_rel = worst_step = 0.0f;
    if (!ref_load(&f, path, why, sizeof why)) {
        CHECK(0, "%s", why);
        return;
    }
    mf_config cfg;
    int B = 0;
    mf_model m;
    mf_error err = {0};
    memset(&m, 0, sizeof m);
    if (!read_config(&f, &cfg, &B)) goto done;
    check_preset(&f, &cfg);
    if (mf_model_create(&m, &cfg, &err) != MF_OK) {
        CHECK(0, "%s: mf_model_create: %s", current_case, err.message);
        goto done;
    }
    if (mf_model_set_precision(&m, mode->precision, &err) != MF_OK) {
        CHECK(0, "%s: %s", current_case, err.message);
        goto done;
    }
    if (!load_params(&f, &m)) goto done;
    if (mf_model_reserve(&m, B, &err) != MF_OK) {
        CHECK(0, "%s: mf_model_reserve: %s", current_case, err.message);
        goto done;
    }
    size_t image = (size_t)cfg.channels * cfg.image_size * cfg.image_size;
    const float *images = ref_floats(&f, "input", (size_t)B * image);
    const ref_tensor *lt = ref_find(&f, "labels");
    const float *logits = ref_floats(&f, "logits", (size_t)B * cfg.classes);
    const float *loss = ref_floats(&f, "loss", 1);
    const float *step_losses = ref_floats(&f, "steps.loss", PARITY_STEPS);
    const float *lr = ref_floats(&f, "train.lr", 1), *wd = ref_floats(&f, "train.weight_decay", 1);
    const float *b1 = ref_floats(&f, "train.beta1", 1), *b2 = ref_floats(&f, "train.beta2", 1);
    const float *eps = ref_floats(&f, "train.eps", 1);
    CHECK(lt && lt->dtype == DT_I32 && lt->numel == (size_t)B, "%s: labels missing", current_case);
    if (!images || !lt || lt->dtype != DT_I32 || lt->numel != (size_t)B || !logits || !loss ||
        !step_losses || !lr || !wd || !b1 || !b2 || !eps)
        goto done;
    const int *labels = lt->data;

    /* Forward and backward at the reference parameters. */
    float got_loss = mf_model_forward(&m, images, labels, B);
    worst_logit = compare("logits", "", mf_model_logits(&m), logits, (size_t)B * cfg.classes,
                          LOGIT_ATOL, LOGIT_RTOL);
    compare("loss", "", &got_loss, loss, 1, LOGIT_ATOL, LOGIT_RTOL);
    mf_model_zero_grad(&m);
    mf_model_backward(&m);
    float global = 0.0f;
    for (int i = 0; i < m.num_tensors; i++) {
        char key[160];
        snprintf(key, sizeof key, "grad.%s", m.tensors[i].name);
        const float *want = ref_floats(&f, key, m.tensors[i].numel);
        if (want && max_abs(want, m.tensors[i].numel) > global) global = max_abs(want, m.tensors[i].numel);
    }
    for (int i = 0; i < m.num_tensors; i++) {
        const mf_tensor_info *t = &m.tensors[i];
        char key[160];
        snprintf(key, sizeof key, "grad.%s", t->name);
        const float *want = ref_floats(&f, key, t->numel);
        if (!want) continue;
        float scale = max_abs(want, t->numel);
        if (scale < mode->grad_global * global) scale = mode->grad_global * global;
        float d = compare("gradient", t->name, m.grads + t->offset, want, t->numel,
                          GRAD_REL * scale + GRAD_FLOOR, 0.0f);
        if (scale > GRAD_FLOOR && d / scale > worst_grad_rel) worst_grad_rel = d / scale;
    }

    /* AdamW from fresh moments, PARITY_STEPS times on the same batch. */
    float *start = malloc(m.num_params * sizeof(float));
    if (!start) goto done;
    memcpy(start, m.params, m.num_params * sizeof(float));
    memset(m.adam_m, 0, m.num_params * sizeof(float));
    memset(m.adam_v, 0, m.num_params * sizeof(float));
    mf_adamw opt = {*b1, *b2, *eps, *wd};
    for (int s = 1; s <= PARITY_STEPS; s++) {
        mf_model_zero_grad(&m);
        float l = mf_model_forward(&m, images, labels, B);
        char label[32];
        snprintf(label, sizeof label, "step %d", s);
        compare("loss at", label, &l, &step_losses[s - 1], 1, LOGIT_ATOL, LOGIT_RTOL);
        mf_model_backward(&m);
        mf_adamw_step(&m, &opt, *lr, s);
    }
    for (int i = 0; i < m.num_tensors && mode->step_atol > 0.0f; i++) {
        const mf_tensor_info *t = &m.tensors[i];
        char key[160];
        snprintf(key, sizeof key, "step3.%s", t->name);
        const float *want = ref_floats(&f, key, t->numel);
        snprintf(key, sizeof key, "grad.%s", t->name);
        const float *g0 = ref_floats(&f, key, t->numel);
        if (!want || !g0) continue;
        float *got = m.params + t->offset;
        if (max_abs(g0, t->numel) <= GRAD_FLOOR) {
            /* Numerically zero gradient: Adam steps follow the rounding noise. */
            float bound = PARITY_STEPS * *lr * 1.01f;
            compare("parameter after 3 steps (zero-gradient tensor)", t->name, got, want, t->numel,
                    2.0f * bound, 0.0f);
            compare("parameter movement over 3 steps (zero-gradient tensor)", t->name, got,
                    start + t->offset, t->numel, bound, 0.0f);
            continue;
        }
        float d = compare("parameter after 3 steps", t->name, got, want, t->numel, STEP_ATOL, 0.0f);
        if (d > worst_step) worst_step = d;
    }
    free(start);
done:
    mf_model_free(&m);
    ref_free(&f);
}

/* RUN() from check.h, with the case's name and thread count in the line. */
static void run_case(const char *name, int threads)
{
    char label[320];
    snprintf(label, sizeof label, "%s%s%s", name, mode->precision == MF_PRECISION_BF16 ? " bf16" : "",
             threads == 1 ? "" : " (all threads)");
    mf_set_threads(threads);
    current_case = label;
    check_current_failures = 0;
    check_current_skipped = 0;
    parity_case(name);
    if (check_current_failures) {
        check_failed++;
        fprintf(stderr, "not ok parity %s\n", label);
    } else {
        check_passed++;
        printf("ok parity %s (max |diff|: logits %.2g, gradients %.2g of max, params after steps "
               "%.2g)\n",
               label, (double)worst_logit, (double)worst_grad_rel, (double)worst_step);
    }
    fflush(stdout);
}

/* Cases run a second time with every core: the kernels' results must not
 * depend on the thread count, and races would show up here. Only a few,
 * because on a loaded machine each OpenMP barrier can wait for a time slice. */
static const char *const threaded_cases[] = {
    "grid_h4_separate_separate_r2",
    "pool_mean_h4_separate_separate_r2",
    "mnist_preset_unchanged",
    "mnist_preset_minimal",
    "cifar_h1_symmetric_collapsed_r2",
    "mnist_h1_collapsed_shaped_r0",
};

/* Runs every case the mode's index.txt lists, one thread each; returns
 * how many it listed. */
static int run_index(void)
{
    char path[512], line[256];
    const char *dir = getenv(mode->env) ? getenv(mode->env) : mode->dir;
    snprintf(path, sizeof path, "%s/index.txt", dir);
    FILE *fp = fopen(path, "r");
    int cases = 0;
    if (!fp) return 0;
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        char *name = malloc(strlen(line) + 1);
        if (!name) break;
        strcpy(name, line);
        run_case(name, 1);
        free(name);
        cases++;
    }
    fclose(fp);
    return cases;
}

int main(void)
{
    char path[512];
    const char *dir = getenv(mode->env) ? getenv(mode->env) : mode->dir;
    snprintf(path, sizeof path, "%s/index.txt", dir);
    int cases = run_index();
    for (size_t i = 0; i < sizeof threaded_cases / sizeof *threaded_cases; i++)
        run_case(threaded_cases[i], 0);
    /* bf16 where the CPU runs it (AMX): its own references and tolerances,
     * with one case again on every core. */
    mode = &bf16_mode;
    if (mf_bf16_available()) {
        int bf16_cases = run_index();
        run_case("mnist_preset_unchanged", 0);
        current_case = "bf16 index";
        check_current_failures = 0;
        CHECK(bf16_cases >= 6, "%s/index.txt lists %d bf16 cases, expected 6 (regenerate with "
              "/usr/bin/python3 tools/torch_reference.py --autocast)", bf16_mode.dir, bf16_cases);
        if (check_current_failures) check_failed++;
    } else {
        printf("SKIP bf16 parity: %s\n", mf_bf16_unavailable_reason());
        check_skipped++;
    }
    mode = &fp32_mode;
    mf_set_threads(0);
    current_case = "index";
    check_current_failures = 0;
    CHECK(cases >= MIN_CASES, "%s lists %d cases, expected at least %d (missing? run from the "
          "repository root; regenerate with /usr/bin/python3 tools/torch_reference.py)",
          path, cases, MIN_CASES);
    if (check_current_failures) {
        check_failed++;
        fprintf(stderr, "not ok parity_index\n");
    } else {
        check_passed++;
        printf("ok parity_index (%d cases)\n", cases);
    }
    return check_report();
}
