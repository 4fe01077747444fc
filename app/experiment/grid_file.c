/* Grid files: a JSON object whose "runs" (a list of settings) and "axes"
 * (lists of values whose product is taken) give a grid's rows; the format is
 * README's "Grid files". Every problem is one line naming the file and the
 * key, or the line and column of a JSON syntax error. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "experiment/experiment.h"

/* ---- the keys --------------------------------------------------------------- */

typedef enum { T_STRING, T_INT, T_NUMBER, T_U64, T_BOOL } key_type;

/* Every setting of a row, in the order derived run names use. */
enum {
    K_DATASET, K_VARIANT, K_PRESET, K_QK, K_VO, K_POOL, K_DIM, K_LAYERS, K_HEADS, K_MLP, K_PATCH,
    K_DROPOUT, K_EPOCHS, K_BATCH, K_LR, K_TUNE_LR, K_WD, K_WARMUP, K_SCHEDULE, K_PROTOCOL, K_PRECISION, K_SEED, K_AUGMENT,
    K_LIMIT_TRAIN, K_LIMIT_TEST, K_TUNE_IMAGES, K_TUNE_VAL, K_NAME, K_COUNT
};

typedef struct {
    const char *key;
    key_type type;
    double lo, hi;  /* T_INT, T_NUMBER */
    unsigned bit;   /* the training setting's MF_EXP_*; 0 for the model's and the labels */
} key_spec;

/* The ranges of train's options. */
static const key_spec keys[K_COUNT] = {
    [K_DATASET] = {"dataset", T_STRING, 0, 0, 0},
    [K_VARIANT] = {"variant", T_STRING, 0, 0, 0},
    [K_PRESET] = {"preset", T_STRING, 0, 0, 0},
    [K_QK] = {"qk", T_STRING, 0, 0, 0},
    [K_VO] = {"vo", T_STRING, 0, 0, 0},
    [K_POOL] = {"pool", T_STRING, 0, 0, 0},
    [K_DIM] = {"dim", T_INT, 1, 4096, 0},
    [K_LAYERS] = {"layers", T_INT, 1, 256, 0},
    [K_HEADS] = {"heads", T_INT, 1, 256, 0},
    [K_MLP] = {"mlp", T_INT, 0, 64, 0},
    [K_PATCH] = {"patch", T_INT, 1, 64, 0},
    [K_DROPOUT] = {"dropout", T_NUMBER, 0, 0.99, 0},
    [K_EPOCHS] = {"epochs", T_INT, 1, 100000, MF_EXP_EPOCHS},
    [K_BATCH] = {"batch", T_INT, 1, 65536, MF_EXP_BATCH},
    [K_LR] = {"lr", T_NUMBER, 1e-12, 1e6, MF_EXP_LR},
    [K_TUNE_LR] = {"tune_lr", T_BOOL, 0, 0, MF_EXP_TUNE_LR},
    [K_WD] = {"wd", T_NUMBER, 0, 1e6, MF_EXP_WD},
    [K_WARMUP] = {"warmup", T_NUMBER, 0, 1e6, MF_EXP_WARMUP},
    [K_SCHEDULE] = {"schedule", T_STRING, 0, 0, MF_EXP_SCHEDULE},
    [K_PROTOCOL] = {"protocol", T_STRING, 0, 0, 0},
    [K_PRECISION] = {"precision", T_STRING, 0, 0, MF_EXP_PRECISION},
    [K_SEED] = {"seed", T_U64, 0, 0, MF_EXP_SEED},
    [K_AUGMENT] = {"augment", T_BOOL, 0, 0, MF_EXP_AUGMENT},
    [K_LIMIT_TRAIN] = {"limit_train", T_INT, 1, 1 << 30, MF_EXP_LIMIT_TRAIN},
    [K_LIMIT_TEST] = {"limit_test", T_INT, 1, 1 << 30, MF_EXP_LIMIT_TEST},
    [K_TUNE_IMAGES] = {"tune_images", T_INT, 1, 1 << 30, MF_EXP_TUNE_IMAGES},
    [K_TUNE_VAL] = {"tune_val", T_INT, 1, 1 << 30, MF_EXP_TUNE_VAL},
    [K_NAME] = {"name", T_STRING, 0, 0, 0},
};

static int key_index(const char *key)
{
    for (int k = 0; k < K_COUNT; k++)
        if (!strcmp(keys[k].key, key)) return k;
    return -1;
}

/* ---- messages ----------------------------------------------------------------- */

typedef struct {
    const char *path;  /* the file, in every message */
    mf_error *err;
} ctx;

/* A message is one line: the file's keys and strings may hold escaped
 * control characters, shown as '?'. */
static mf_status one_line(const ctx *c, mf_status st)
{
    if (c->err)
        for (char *p = c->err->message; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return st;
}

static mf_status bad(const ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static mf_status bad(const ctx *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return one_line(c, mf_fail(c->err, MF_ERR_CONFIG, "%s: %s", c->path, msg));
}

static const char *type_name(key_type t)
{
    switch (t) {
    case T_STRING: return "a string";
    case T_INT: return "an integer";
    case T_NUMBER: return "a number";
    case T_U64: return "a non-negative integer";
    default: return "true or false";
    }
}

static const char *json_type_name(const mf_json *v)
{
    switch (v->type) {
    case MF_JSON_NULL: return "null";
    case MF_JSON_FALSE: case MF_JSON_TRUE: return "a boolean";
    case MF_JSON_NUMBER: return "a number";
    case MF_JSON_STRING: return "a string";
    case MF_JSON_ARRAY: return "a list";
    default: return "an object";
    }
}

/* ---- one row's settings ---------------------------------------------------------- */

/* Where each setting of a row comes from: its JSON value and the key's
 * path for messages ("runs[2].heads", "axes.lr[1]", "epochs"). */
typedef struct {
    const mf_json *v[K_COUNT];
    char where[K_COUNT][48];
    char label[96]; /* the row, for messages: "runs[2]", "runs[2], axes lr[1] dim[0]" */
} row_values;

/* A value's text in names: strings as they are, numbers as %g (integers as
 * %d), booleans "true"/"false". */
static void value_text(const mf_json *v, key_type t, char *out, size_t size)
{
    if (v->type == MF_JSON_STRING) snprintf(out, size, "%s", v->u.string);
    else if (v->type == MF_JSON_TRUE) snprintf(out, size, "true");
    else if (v->type == MF_JSON_FALSE) snprintf(out, size, "false");
    else if (t == T_U64) snprintf(out, size, "%.*s", v->count, v->u.number.text);
    else snprintf(out, size, "%.10g", v->u.number.value);
}

/* Checks one value against its key's type and range. */
static mf_status check_value(const ctx *c, int k, const mf_json *v, const char *where)
{
    const key_spec *ks = &keys[k];
    int ok = 0;
    switch (ks->type) {
    case T_STRING: ok = v->type == MF_JSON_STRING; break;
    case T_BOOL: ok = v->type == MF_JSON_TRUE || v->type == MF_JSON_FALSE; break;
    case T_U64: {
        uint64_t x;
        ok = v->type == MF_JSON_NUMBER;
        if (ok && !mf_json_u64(v, &x))
            return bad(c, "'%s': needs a non-negative integer below 2^64 written in digits, got %.*s",
                       where, v->count, v->u.number.text);
        break;
    }
    default: ok = v->type == MF_JSON_NUMBER; break;
    }
    if (!ok) return bad(c, "'%s': needs %s, got %s", where, type_name(ks->type), json_type_name(v));
    if (ks->type == T_INT || ks->type == T_NUMBER) {
        double x = v->u.number.value;
        int integral = ks->type != T_INT || x == floor(x);
        if (!(x >= ks->lo && x <= ks->hi) || !integral)
            return bad(c, "'%s': needs %s in [%g, %g], got %.*s", where, type_name(ks->type), ks->lo,
                       ks->hi, v->count, v->u.number.text);
    }
    if (ks->type == T_STRING && v->count == 0) return bad(c, "'%s': an empty string", where);
    return MF_OK;
}

/* Takes the settings of obj (top-level defaults, a run) into rv. */
static mf_status take_object(const ctx *c, const mf_json *obj, const char *prefix, int top,
                             row_values *rv)
{
    for (int i = 0; i < obj->count; i++) {
        const mf_json *m = &obj->u.items[i];
        if (top && (!strcmp(m->key, "runs") || !strcmp(m->key, "axes") || !strcmp(m->key, "title")))
            continue;
        int k = key_index(m->key);
        char where[48];
        snprintf(where, sizeof where, "%s%s", prefix, m->key);
        if (k < 0)
            return bad(c, "unknown key '%s' (settings: dataset, variant, name, preset, qk, vo, pool, "
                       "dim, layers, heads, mlp, patch, dropout, epochs, batch, lr, tune_lr, wd, "
                       "warmup, schedule, protocol, precision, seed, augment, limit_train, limit_test, tune_images, tune_val%s)",
                       where, top ? "; and title, runs, axes" : "");
        mf_status st = check_value(c, k, m, where);
        if (st) return st;
        rv->v[k] = m;
        snprintf(rv->where[k], sizeof rv->where[k], "%s", where);
    }
    return MF_OK;
}

static int valid_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '+' || ch == '-';
}

/* A run name or variant label: a directory name and a CSV field. */
static mf_status check_name(const ctx *c, const char *name, const char *what, size_t max)
{
    size_t n = strlen(name);
    if (n == 0 || n > max)
        return bad(c, "%s '%.80s': needs 1 to %zu characters", what, name, max);
    if (name[0] == '.' || name[0] == '-')
        return bad(c, "%s '%s': must not start with '%c'", what, name, name[0]);
    for (size_t i = 0; i < n; i++)
        if (!valid_name_char(name[i]))
            return bad(c, "%s '%s': only letters, digits and . _ + - may appear in it", what, name);
    return MF_OK;
}

/* The row's model, dataset, label and training settings. */
static mf_status build_row(const ctx *c, const row_values *rv, mf_experiment_spec *s)
{
    memset(s, 0, sizeof *s);
    mf_error e;
    if (!rv->v[K_DATASET])
        return bad(c, "%s: no 'dataset' (give it in the run, in axes or at the top level)", rv->label);
    const char *ds = rv->v[K_DATASET]->u.string;
    if (!strcmp(ds, "mnist")) s->dataset = MF_MNIST;
    else if (!strcmp(ds, "cifar10")) s->dataset = MF_CIFAR10;
    else if (!strcmp(ds, "fashion-mnist")) s->dataset = MF_FASHION_MNIST;
    else return bad(c, "'%s': '%s' is not a dataset a grid trains on (mnist, cifar10, fashion-mnist)",
                    rv->where[K_DATASET], ds);
    mf_config *cfg = &s->cfg;
    mf_config_default(cfg, mf_dataset_image_size(s->dataset), mf_dataset_channels(s->dataset), 10);
    if (rv->v[K_PRESET] && mf_config_apply_preset(cfg, rv->v[K_PRESET]->u.string, &e))
        return bad(c, "'%s': %s", rv->where[K_PRESET], e.message);
    if (rv->v[K_QK] && mf_qk_parse(rv->v[K_QK]->u.string, &cfg->qk, &e))
        return bad(c, "'%s': %s", rv->where[K_QK], e.message);
    if (rv->v[K_VO] && mf_vo_parse(rv->v[K_VO]->u.string, &cfg->vo, &e))
        return bad(c, "'%s': %s", rv->where[K_VO], e.message);
    if (rv->v[K_POOL] && mf_pool_parse(rv->v[K_POOL]->u.string, &cfg->pool, &e))
        return bad(c, "'%s': %s", rv->where[K_POOL], e.message);
#define NUM(k) (rv->v[k]->u.number.value)
    if (rv->v[K_DIM]) cfg->dim = (int)NUM(K_DIM);
    if (rv->v[K_LAYERS]) cfg->layers = (int)NUM(K_LAYERS);
    if (rv->v[K_HEADS]) cfg->heads = (int)NUM(K_HEADS);
    if (rv->v[K_MLP]) cfg->mlp_ratio = (int)NUM(K_MLP);
    if (rv->v[K_PATCH]) cfg->patch = (int)NUM(K_PATCH);
    if (rv->v[K_DROPOUT]) cfg->dropout = (float)NUM(K_DROPOUT);
    if (mf_config_validate(cfg, &e)) return bad(c, "%s: %s", rv->label, e.message);

    for (int k = 0; k < K_COUNT; k++) {
        const mf_json *v = rv->v[k];
        if (!v || !keys[k].bit) continue;
        s->set |= keys[k].bit;
        int truth = v->type == MF_JSON_TRUE;
        switch (k) {
        case K_EPOCHS: s->epochs = (int)NUM(k); break;
        case K_BATCH: s->batch = (int)NUM(k); break;
        case K_LR: s->lr = (float)NUM(k); break;
        case K_TUNE_LR: s->tune_lr = truth; break;
        case K_WD: s->wd = (float)NUM(k); break;
        case K_WARMUP: s->warmup = (float)NUM(k); break;
        case K_PRECISION:
            if (mf_precision_parse(v->u.string, &s->precision))
                return bad(c, "'%s': unknown precision '%s' (choose fp32, bf16)", rv->where[k],
                           v->u.string);
            break;
        case K_SCHEDULE:
            if (mf_schedule_parse(v->u.string, &s->schedule, &e))
                return bad(c, "'%s': %s", rv->where[k], e.message);
            break;
        case K_SEED: mf_json_u64(v, &s->seed); break;
        case K_AUGMENT: s->augment = truth; break;
        case K_LIMIT_TRAIN: s->limit_train = (int)NUM(k); break;
        case K_LIMIT_TEST: s->limit_test = (int)NUM(k); break;
        case K_TUNE_IMAGES: s->tune_images = (int)NUM(k); break;
        default: s->tune_val = (int)NUM(k); break;
        }
    }
#undef NUM
    /* protocol: the regime train's --protocol names (mf_protocol_apply); the
     * row's own batch, augment, wd and schedule win over it. */
    if (rv->v[K_PROTOCOL]) {
        mf_protocol p;
        if (mf_protocol_parse(rv->v[K_PROTOCOL]->u.string, &p, &e))
            return bad(c, "'%s': %s", rv->where[K_PROTOCOL], e.message);
        mf_train_opts d;
        mf_train_opts_default(&d);
        mf_protocol_apply(p, &d);
        if (!(s->set & MF_EXP_BATCH)) s->batch = d.batch;
        if (!(s->set & MF_EXP_AUGMENT)) s->augment = d.augment;
        if (!(s->set & MF_EXP_WD)) s->wd = d.adamw.weight_decay;
        if (!(s->set & MF_EXP_SCHEDULE)) s->schedule = d.schedule;
        s->set |= MF_EXP_BATCH | MF_EXP_AUGMENT | MF_EXP_WD | MF_EXP_SCHEDULE;
    }
    if (s->lr > 0 && s->tune_lr)
        return bad(c, "%s: give 'lr' or 'tune_lr' true, not both ('%s', '%s')", rv->label,
                   rv->where[K_LR], rv->where[K_TUNE_LR]);

    /* The label: given, else the preset's name, else "unchanged" or the kinds. */
    if (rv->v[K_VARIANT]) {
        snprintf(s->variant, sizeof s->variant, "%.31s", rv->v[K_VARIANT]->u.string);
        char what[64];
        snprintf(what, sizeof what, "'%s'", rv->where[K_VARIANT]);
        mf_status st = check_name(c, rv->v[K_VARIANT]->u.string, what, sizeof s->variant - 1);
        if (st) return st;
    } else if (rv->v[K_PRESET] && !rv->v[K_QK] && !rv->v[K_VO]) {
        snprintf(s->variant, sizeof s->variant, "%s", rv->v[K_PRESET]->u.string);
    } else if (cfg->qk == MF_QK_SEPARATE && cfg->vo == MF_VO_SEPARATE) {
        snprintf(s->variant, sizeof s->variant, "unchanged");
    } else {
        snprintf(s->variant, sizeof s->variant, "qk-%s-vo-%s", mf_qk_name(cfg->qk), mf_vo_name(cfg->vo));
    }
    return MF_OK;
}

/* ---- names ----------------------------------------------------------------------- */

/* Appends text to out (size bytes); 0, or -1 when it does not fit. */
static int append(char *out, size_t size, const char *text)
{
    size_t n = strlen(out), t = strlen(text);
    if (n + t + 1 > size) return -1;
    memcpy(out + n, text, t + 1);
    return 0;
}

/* The value a name template's {key} stands for in a row: what the file
 * gives, or for the model's settings and the dataset the row's value. */
static int template_value(const row_values *rv, const mf_experiment_spec *s, int k, char *out,
                          size_t size)
{
    if (rv->v[k]) {
        value_text(rv->v[k], keys[k].type, out, size);
        return 0;
    }
    const mf_config *cfg = &s->cfg;
    switch (k) {
    case K_VARIANT: snprintf(out, size, "%s", s->variant); return 0;
    case K_QK: snprintf(out, size, "%s", mf_qk_name(cfg->qk)); return 0;
    case K_VO: snprintf(out, size, "%s", mf_vo_name(cfg->vo)); return 0;
    case K_POOL: snprintf(out, size, "%s", mf_pool_name(cfg->pool)); return 0;
    case K_DIM: snprintf(out, size, "%d", cfg->dim); return 0;
    case K_LAYERS: snprintf(out, size, "%d", cfg->layers); return 0;
    case K_HEADS: snprintf(out, size, "%d", cfg->heads); return 0;
    case K_MLP: snprintf(out, size, "%d", cfg->mlp_ratio); return 0;
    case K_PATCH: snprintf(out, size, "%d", cfg->patch); return 0;
    case K_DROPOUT: snprintf(out, size, "%g", (double)cfg->dropout); return 0;
    default: return -1;
    }
}

/* "{dataset}-L{layers}-{variant}": each {key} replaced by the row's value. */
static mf_status expand_template(const ctx *c, const row_values *rv, const mf_experiment_spec *s,
                                 char *out, size_t size)
{
    const char *t = rv->v[K_NAME]->u.string, *where = rv->where[K_NAME];
    out[0] = '\0';
    for (const char *p = t; *p;) {
        if (*p == '}') return bad(c, "'%s': '}' without '{' in '%s'", where, t);
        if (*p != '{') {
            char one[2] = {*p++, '\0'};
            if (append(out, size, one)) goto long_name;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end) return bad(c, "'%s': '{' without '}' in '%s'", where, t);
        char key[32], val[64];
        size_t n = (size_t)(end - p - 1);
        snprintf(key, sizeof key, "%.*s", n < sizeof key ? (int)n : (int)sizeof key - 1, p + 1);
        int k = n < sizeof key ? key_index(key) : -1;
        if (k < 0 || k == K_NAME)
            return bad(c, "'%s': '{%.*s}' in '%s' is not a setting", where, (int)n, p + 1, t);
        if (template_value(rv, s, k, val, sizeof val))
            return bad(c, "'%s': %s sets no '%s' for '{%s}'", where, rv->label, key, key);
        for (char *q = val; *q; q++)
            if (!valid_name_char(*q)) *q = '_';
        if (append(out, size, val)) goto long_name;
        p = end + 1;
    }
    return MF_OK;
long_name:
    return bad(c, "'%s': the name of %s is longer than %d characters", where, rv->label,
               MF_EXPERIMENT_NAME_MAX);
}

/* The name of a row without a "name": the settings that differ between the
 * grid's rows, in the key order above, "-" between them: a string of the
 * dataset, variant or preset as it is ("cifar10"), of another key as
 * key-value ("qk-collapsed"), a number as key and value ("lr0.001",
 * "dim32"), a boolean as the key or no_key. */
/* varies[k]: whether key k's value (or its absence) differs between rows. */
static void find_varying(const row_values *rows, int n, int varies[K_COUNT])
{
    for (int k = 0; k < K_COUNT; k++) {
        char first[64] = "", other[64];
        if (rows[0].v[k]) value_text(rows[0].v[k], keys[k].type, first, sizeof first);
        varies[k] = 0;
        for (int j = 1; j < n && !varies[k]; j++) {
            other[0] = '\0';
            if (rows[j].v[k]) value_text(rows[j].v[k], keys[k].type, other, sizeof other);
            varies[k] = (rows[j].v[k] != NULL) != (rows[0].v[k] != NULL) || strcmp(first, other);
        }
    }
}

static mf_status derive_name(const ctx *c, const row_values *row, const int varies[K_COUNT],
                             const char *grid, char *out, size_t size)
{
    out[0] = '\0';
    for (int k = 0; k < K_COUNT; k++) {
        if (k == K_NAME || !varies[k] || !row->v[k]) continue;
        char mine[64];
        value_text(row->v[k], keys[k].type, mine, sizeof mine);
        char part[100];
        const mf_json *v = row->v[k];
        if (keys[k].type == T_BOOL) snprintf(part, sizeof part, "%s%s", v->type == MF_JSON_TRUE ? "" : "no_", keys[k].key);
        else if (k == K_DATASET || k == K_VARIANT || k == K_PRESET) snprintf(part, sizeof part, "%s", mine);
        else if (keys[k].type == T_STRING) snprintf(part, sizeof part, "%s-%s", keys[k].key, mine);
        else snprintf(part, sizeof part, "%s%s", keys[k].key, mine);
        for (char *q = part; *q; q++)
            if (!valid_name_char(*q)) *q = '_';
        if ((out[0] && append(out, size, "-")) || append(out, size, part))
            return bad(c, "%s: its name from the settings that vary is longer than %d characters; "
                       "give it a 'name'", row->label, MF_EXPERIMENT_NAME_MAX);
    }
    if (!out[0]) snprintf(out, size, "%s", grid); /* one row, or rows that differ in nothing */
    return MF_OK;
}

/* ---- the file ---------------------------------------------------------------------- */

/* "at byte N" of the JSON reader's message as LINE:COLUMN of text. */
static mf_status syntax_error(const ctx *c, const char *text, size_t len, const char *msg)
{
    const char *at = strstr(msg, ", at byte ");
    if (!at) return bad(c, "not JSON: %s", msg);
    size_t pos = (size_t)strtoull(at + 10, NULL, 10);
    if (pos > len) pos = len;
    long line = 1, col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') line++, col = 1;
        else col++;
    }
    return one_line(c, mf_fail(c->err, MF_ERR_CONFIG, "%s:%ld:%ld: not JSON: %.*s%s", c->path, line,
                               col, (int)(at - msg), msg, pos == len ? " (the file ends there)" : ""));
}

void mf_experiment_grid_free(mf_experiment_grid *g)
{
    if (!g) return;
    free(g->name);
    free(g->description);
    free(g->specs);
    memset(g, 0, sizeof *g);
}

static char *dup_text(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* The rows of the parsed document root into g. */
static mf_status parse_rows(const ctx *c, const mf_json *root, const char *name,
                            mf_experiment_grid *g)
{
    if (root->type != MF_JSON_OBJECT)
        return bad(c, "a grid file is a JSON object, not %s", json_type_name(root));
    const mf_json *runs = mf_json_get(root, "runs"), *axes = mf_json_get(root, "axes"),
                  *title = mf_json_get(root, "title");
    if (!runs && !axes) return bad(c, "needs 'runs' (a list of settings) or 'axes' (lists of values)");
    if (title && (title->type != MF_JSON_STRING || title->count > 200))
        return bad(c, "'title': needs a string of at most 200 bytes, got %s", json_type_name(title));
    if (runs && (runs->type != MF_JSON_ARRAY || runs->count == 0))
        return bad(c, "'runs': needs a non-empty list of objects, got %s%s", json_type_name(runs),
                   runs->type == MF_JSON_ARRAY ? " that is empty" : "");
    if (axes && (axes->type != MF_JSON_OBJECT || axes->count == 0))
        return bad(c, "'axes': needs an object of lists of values, got %s%s", json_type_name(axes),
                   axes->type == MF_JSON_OBJECT ? " that is empty" : "");
    row_values top;
    memset(&top, 0, sizeof top);
    mf_status st = take_object(c, root, "", 1, &top);
    if (st) return st;

    /* The axes: known keys (not "name"), each a non-empty list. */
    int naxes = axes ? axes->count : 0, axis_key[64];
    long combos = 1;
    if (naxes > 64) return bad(c, "'axes': at most 64 axes, got %d", naxes);
    for (int a = 0; a < naxes; a++) {
        const mf_json *ax = &axes->u.items[a];
        int k = key_index(ax->key);
        if (k < 0 || k == K_NAME)
            return bad(c, "'axes.%s': %s", ax->key,
                       k < 0 ? "unknown key (an axis is a setting: dataset, lr, dim, ...)"
                             : "names cannot be an axis; give a 'name' template instead");
        if (ax->type != MF_JSON_ARRAY || ax->count == 0)
            return bad(c, "'axes.%s': needs a non-empty list of values, got %s%s", ax->key,
                       json_type_name(ax), ax->type == MF_JSON_ARRAY ? " that is empty" : "");
        axis_key[a] = k;
        combos *= ax->count;
        if (combos > MF_EXPERIMENT_MAX_ROWS) break;
    }
    long nruns = runs ? runs->count : 1, total = nruns * combos;
    if (combos > MF_EXPERIMENT_MAX_ROWS || total > MF_EXPERIMENT_MAX_ROWS)
        return bad(c, "more than %d runs (runs x the product of the axes)", MF_EXPERIMENT_MAX_ROWS);

    row_values *rows = calloc((size_t)total, sizeof *rows);
    g->specs = calloc((size_t)total, sizeof *g->specs);
    if (!rows || !g->specs) {
        free(rows);
        return mf_fail(c->err, MF_ERR_NOMEM, "%s: out of memory", c->path);
    }
    int n = 0;
    for (long r = 0; r < nruns; r++) {
        const mf_json *run = runs ? &runs->u.items[r] : NULL;
        if (run && run->type != MF_JSON_OBJECT) {
            st = bad(c, "'runs[%ld]': needs an object of settings, got %s", r, json_type_name(run));
            goto out;
        }
        row_values base = top;
        if (run) {
            char prefix[32]; /* "runs[" + a long + "]." */
            snprintf(prefix, sizeof prefix, "runs[%ld].", r);
            if ((st = take_object(c, run, prefix, 0, &base))) goto out;
            for (int a = 0; a < naxes; a++)
                if (mf_json_get(run, axes->u.items[a].key)) {
                    st = bad(c, "'runs[%ld].%s': also an axis ('axes.%s'); give it in one place",
                             r, axes->u.items[a].key, axes->u.items[a].key);
                    goto out;
                }
        }
        /* The axes' product, the last axis varying fastest. */
        for (long i = 0; i < combos; i++, n++) {
            row_values *rv = &rows[n];
            *rv = base;
            if (run) snprintf(rv->label, sizeof rv->label, "runs[%ld]", r);
            else rv->label[0] = '\0';
            long rest = i;
            for (int a = naxes - 1; a >= 0; a--) {
                const mf_json *ax = &axes->u.items[a];
                int idx = (int)(rest % ax->count), k = axis_key[a];
                rest /= ax->count;
                char where[48];
                snprintf(where, sizeof where, "axes.%s[%d]", ax->key, idx);
                if ((st = check_value(c, k, &ax->u.items[idx], where))) goto out;
                rv->v[k] = &ax->u.items[idx];
                snprintf(rv->where[k], sizeof rv->where[k], "%s", where);
            }
            if (naxes) {
                size_t len = strlen(rv->label);
                snprintf(rv->label + len, sizeof rv->label - len, "%saxes", run ? ", " : "");
                for (int a = 0; a < naxes; a++) {
                    len = strlen(rv->label);
                    const char *w = rv->where[axis_key[a]] + 5; /* past "axes." */
                    snprintf(rv->label + len, sizeof rv->label - len, " %s", w);
                }
            }
            if ((st = build_row(c, rv, &g->specs[n]))) goto out;
        }
    }
    /* Names, then their uniqueness. */
    int varies[K_COUNT];
    find_varying(rows, n, varies);
    for (int i = 0; i < n; i++) {
        mf_experiment_spec *s = &g->specs[i];
        char nm[MF_EXPERIMENT_NAME_MAX + 1];
        if (rows[i].v[K_NAME]) st = expand_template(c, &rows[i], s, nm, sizeof nm);
        else st = derive_name(c, &rows[i], varies, name, nm, sizeof nm);
        if (st) goto out;
        char what[160];
        snprintf(what, sizeof what, "the run name of %s", rows[i].label);
        if ((st = check_name(c, nm, what, MF_EXPERIMENT_NAME_MAX))) goto out;
        snprintf(s->name, sizeof s->name, "%s", nm);
        for (int j = 0; j < i; j++)
            if (!strcmp(g->specs[j].name, s->name)) {
                st = bad(c, "%s and %s are both named '%s'; run names must be unique (give "
                         "'name', or let the settings differ)", rows[j].label, rows[i].label,
                         s->name);
                goto out;
            }
    }
    g->count = n;
    g->name = dup_text(name);
    g->description = dup_text(title ? title->u.string : "");
    if (!g->name || !g->description) st = mf_fail(c->err, MF_ERR_NOMEM, "%s: out of memory", c->path);
out:
    free(rows);
    return st;
}

mf_status mf_experiment_grid_parse(const char *text, size_t len, const char *path, const char *name,
                                   mf_experiment_grid *g, mf_error *err)
{
    ctx c = {path, err};
    memset(g, 0, sizeof *g);
    if (len > MF_EXPERIMENT_FILE_MAX)
        return bad(&c, "%zu bytes, more than a grid file's %u", len, MF_EXPERIMENT_FILE_MAX);
    if (len == 0) return bad(&c, "empty; a grid file is a JSON object");
    char *copy = malloc(len + 1);
    if (!copy) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    memcpy(copy, text, len);
    copy[len] = '\0';
    mf_json root;
    char msg[160];
    int rc = mf_json_parse(copy, len, &root, msg, sizeof msg);
    mf_status st;
    if (rc == -2) st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    else if (rc) st = syntax_error(&c, text, len, msg);
    else {
        st = parse_rows(&c, &root, name, g);
        mf_json_free(&root);
    }
    free(copy);
    if (st) mf_experiment_grid_free(g);
    return st;
}

mf_status mf_experiment_grid_load(const char *path, mf_experiment_grid *g, mf_error *err)
{
    memset(g, 0, sizeof *g);
    char *text;
    size_t len;
    mf_status st = mf_file_read(path, MF_EXPERIMENT_FILE_MAX, &text, &len, err);
    if (st) return st;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[MF_EXPERIMENT_NAME_MAX + 1];
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".json")) n -= 5;
    if (n > MF_EXPERIMENT_NAME_MAX) n = MF_EXPERIMENT_NAME_MAX;
    snprintf(name, sizeof name, "%.*s", (int)n, base);
    for (char *q = name; *q; q++)
        if (!valid_name_char(*q)) *q = '_';
    if (!name[0] || name[0] == '.') snprintf(name, sizeof name, "grid");
    st = mf_experiment_grid_parse(text, len, path, name, g, err);
    free(text);
    return st;
}
