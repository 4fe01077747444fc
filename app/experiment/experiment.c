/* The paper's experiment grids and a runner that trains, checkpoints,
 * resumes and skips each run in its own directory, then tabulates the grid. */
#define _POSIX_C_SOURCE 200809L /* lstat, nanosleep */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "train/run_json.h"
#include "minformer/checkpoint.h"
#include "experiment/experiment.h"
#include "figures/figures.h"

/* ---- the grids ------------------------------------------------------------ */

/* The built-in grids, parsed once from the files the build embeds
 * (grids/NAME.json). */
static mf_experiment_grid builtin[16];
static int builtin_count = -1;

const mf_experiment_grid *mf_experiment_grids(int *count)
{
    if (builtin_count < 0) {
        builtin_count = 0;
        for (int i = 0; i < mf_experiment_builtin_grid_count && i < (int)(sizeof builtin / sizeof builtin[0]); i++) {
            const mf_experiment_grid_text *t = &mf_experiment_builtin_grids[i];
            char path[96];
            mf_error err;
            snprintf(path, sizeof path, "grids/%s.json", t->name);
            if (mf_experiment_grid_parse(t->text, t->len, path, t->name, &builtin[builtin_count], &err))
                continue;
            builtin_count++;
        }
    }
    *count = builtin_count;
    return builtin;
}

const mf_experiment_grid *mf_experiment_grid_find(const char *name)
{
    int n;
    const mf_experiment_grid *g = mf_experiment_grids(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(g[i].name, name)) return &g[i];
    return NULL;
}

void mf_experiment_run_name(const mf_experiment_spec *s, char *out, size_t size)
{
    snprintf(out, size, "%s", s->name);
}

void mf_experiment_run_name_seed(const mf_experiment_spec *s, int seeded, uint64_t seed, char *out,
                                 size_t size)
{
    mf_experiment_run_name(s, out, size);
    size_t len = strlen(out);
    if (seeded && len < size) snprintf(out + len, size - len, "-s%llu", (unsigned long long)seed);
}

mf_status mf_experiment_config(const mf_experiment_spec *s, mf_config *cfg, mf_error *err)
{
    *cfg = s->cfg;
    return mf_config_validate(cfg, err);
}

void mf_experiment_opts_default(mf_experiment_opts *o)
{
    memset(o, 0, sizeof *o);
    o->out_dir = "runs";
    o->epochs = 1;
    o->seed = 1;
    o->batch = 128;
    o->tune_images = 10000;
    o->tune_val = 5000;
    o->augment = 1;
    mf_adamw a;
    mf_adamw_default(&a);
    o->wd = a.weight_decay;
    o->schedule = MF_SCHEDULE_COSINE;
    o->warmup = -1.0f;
    o->figure_format = MF_FIGURE_PNG;
}

void mf_experiment_row_opts(const mf_experiment_opts *o, const mf_experiment_spec *s,
                            mf_experiment_opts *out)
{
    *out = *o;
    unsigned use = s->set & ~o->given;
    if (use & MF_EXP_EPOCHS) out->epochs = s->epochs;
    if (use & MF_EXP_BATCH) out->batch = s->batch;
    if (use & MF_EXP_LR) out->lr = s->lr;
    if (use & MF_EXP_TUNE_LR) out->tune_lr = s->tune_lr;
    if (use & MF_EXP_WD) out->wd = s->wd;
    if (use & MF_EXP_WARMUP) out->warmup = s->warmup;
    if (use & MF_EXP_SEED) out->seed = s->seed;
    if (use & MF_EXP_AUGMENT) out->augment = s->augment;
    if (use & MF_EXP_LIMIT_TRAIN) out->limit_train = s->limit_train;
    if (use & MF_EXP_LIMIT_TEST) out->limit_test = s->limit_test;
    if (use & MF_EXP_TUNE_IMAGES) out->tune_images = s->tune_images;
    if (use & MF_EXP_TUNE_VAL) out->tune_val = s->tune_val;
    if (use & MF_EXP_SCHEDULE) out->schedule = s->schedule;
    if (use & MF_EXP_PRECISION) out->precision = s->precision;
}

/* ---- files ------------------------------------------------------------------ */

/* A run directory's JSON files are small (a result is about 1.5 KB, a
 * learning-rate sweep 0.5 KB): anything past 1 MiB is not one of them. A log
 * holds one line of about 250 bytes per epoch. */
#define SMALL_FILE_MAX (1u << 20)
#define LOG_FILE_MAX (256u << 20)

static mf_status make_dirs(const char *path, mf_error *err)
{
    char buf[1024];
    if (!path[0]) return mf_fail(err, MF_ERR_CONFIG, "the output directory is an empty string");
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return mf_fail(err, MF_ERR_IO, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) && errno != EEXIST)
                return mf_fail(err, MF_ERR_IO, "%s: cannot create the directory: %s", buf, strerror(errno));
            *p = saved;
            if (!saved) break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) || !S_ISDIR(sb.st_mode))
        return mf_fail(err, MF_ERR_IO, "%s: not a directory", path);
    return MF_OK;
}

/* Anything at path, even a dangling link or a FIFO: a run directory holding
 * such a thing is not empty. */
static int path_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static mf_status write_text(const char *path, const char *text, mf_error *err)
{
    return mf_file_replace(path, text, strlen(text), err);
}

static void run_path(char *out, size_t size, const char *dir, const char *run, const char *file)
{
    snprintf(out, size, "%s/%s/%s", dir, run, file);
}

static void message(const mf_experiment_hooks *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void message(const mf_experiment_hooks *h, const char *fmt, ...)
{
    if (!h || !h->on_message) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    h->on_message(h->ctx, buf);
}

/* Parses text[0..len) as a JSON object into *root, which borrows *copy (free
 * both). MF_ERR_FORMAT "WHAT: ..." otherwise. */
static mf_status parse_object(const char *text, size_t len, const char *what, char **copy,
                              mf_json *root, mf_error *err)
{
    memset(root, 0, sizeof *root);
    *copy = malloc(len + 1);
    if (!*copy) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", what);
    memcpy(*copy, text, len);
    (*copy)[len] = '\0';
    char msg[128];
    int rc = mf_json_parse(*copy, len, root, msg, sizeof msg);
    if (!rc && root->type == MF_JSON_OBJECT) return MF_OK;
    if (!rc) mf_json_free(root);
    memset(root, 0, sizeof *root);
    free(*copy);
    *copy = NULL;
    if (rc == -2) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", what);
    return mf_fail(err, MF_ERR_FORMAT, "%s: %s%s%s", what, rc ? "not JSON (" : "not a JSON object",
                   rc ? msg : "", rc ? ")" : "");
}

/* ---- what a run is asked to be ------------------------------------------------- */

/* The training options of a run of cfg under o, with the learning rate o
 * gives or the default rule's (a tuned rate replaces it later). */
static void run_train_opts(const mf_experiment_opts *o, const mf_config *cfg, mf_train_opts *to)
{
    mf_train_opts_default(to);
    to->epochs = o->epochs;
    to->batch = o->batch;
    to->seed = o->seed;
    to->augment = o->augment;
    to->adamw.weight_decay = o->wd;
    to->schedule = o->schedule;
    to->precision = o->precision;
    if (o->warmup >= 0) to->warmup_epochs = o->warmup;
    to->lr = o->lr > 0 ? o->lr : mf_default_lr(cfg); /* the rule `train` uses */
}

void mf_experiment_identity(const mf_experiment_opts *given, const mf_experiment_spec *spec,
                            uint64_t fingerprint, mf_run_identity *id)
{
    mf_config cfg;
    mf_experiment_opts row, *o = &row;
    mf_experiment_row_opts(given, spec, &row);
    memset(id, 0, sizeof *id);
    if (mf_experiment_config(spec, &cfg, NULL)) return;
    mf_train_opts to;
    run_train_opts(o, &cfg, &to);
    mf_run_identity_make(id, spec->dataset, &cfg, &to, o->limit_train, o->limit_test, fingerprint);
    char v[32];
    if (o->lr > 0) {
        mf_run_identity_set(id, "lr_choice", "given", NULL);
    } else if (o->tune_lr) {
        mf_run_identity_set(id, "lr", "tuned", NULL);
        mf_run_identity_set(id, "lr_choice", "tuned", NULL);
        snprintf(v, sizeof v, "%d", o->tune_images);
        mf_run_identity_set(id, "tune_images", v, NULL);
        snprintf(v, sizeof v, "%d", o->tune_val);
        mf_run_identity_set(id, "tune_val", v, NULL);
    } else {
        mf_run_identity_set(id, "lr_choice", "default", NULL);
    }
}

/* The stored identity under key "identity" of a parsed file, compared with
 * the requested one. With any_data, the data fingerprint is not compared
 * (the summary of a grid whose other dataset is not loaded). */
static mf_status check_embedded_identity(const mf_json *root, const mf_run_identity *requested,
                                         int any_data, const char *what, mf_error *err)
{
    mf_run_identity stored;
    mf_status st = mf_run_identity_from_object(mf_json_get(root, "identity"), &stored, what, err);
    if (st) return st;
    mf_run_identity want = *requested;
    const char *data = mf_run_identity_get(&stored, "data");
    if (any_data && data) mf_run_identity_set(&want, "data", data, NULL);
    return mf_run_identity_check(what, &stored, &want,
                                 "use another --out, or delete the run's directory to rerun it", err);
}

/* A number member within [lo, hi]: 1 and *out, else 0. */
static int number_in(const mf_json *o, const char *key, double lo, double hi, double *out)
{
    const mf_json *v = mf_json_get(o, key);
    if (!v || v->type != MF_JSON_NUMBER || !(v->u.number.value >= lo && v->u.number.value <= hi))
        return 0;
    *out = v->u.number.value;
    return 1;
}

/* An integer member within [lo, hi] (no fraction). */
static int int_in(const mf_json *o, const char *key, long lo, long hi, long *out)
{
    double d;
    if (!number_in(o, key, (double)lo, (double)hi, &d) || d != floor(d)) return 0;
    *out = (long)d;
    return 1;
}

static int is_candidate_lr(double lr)
{
    const float lrs[MF_EXPERIMENT_TUNE_COUNT] = MF_EXPERIMENT_TUNE_LRS;
    for (int i = 0; i < MF_EXPERIMENT_TUNE_COUNT; i++)
        if ((float)lr == lrs[i]) return 1;
    return 0;
}

/* ---- lr.json: a --tune-lr sweep ------------------------------------------------ */

mf_status mf_experiment_parse_lr(const char *text, size_t len, const mf_run_identity *requested,
                                 float *lr, const char *what, mf_error *err)
{
    *lr = 0.0f;
    char *copy;
    mf_json root;
    mf_status st = parse_object(text, len, what, &copy, &root, err);
    if (st) return st;
    const mf_json *sweep = mf_json_get(&root, "sweep");
    long train = 0, val = 0, epochs = 0;
    double best = 0;
    const char *bad = NULL;
    if (!int_in(&root, "train_images", 1, 1L << 30, &train)) bad = "train_images";
    else if (!int_in(&root, "val_images", 1, 1L << 30, &val)) bad = "val_images";
    else if (!int_in(&root, "epochs", 1, 1, &epochs)) bad = "epochs";
    else if (!number_in(&root, "lr", 1e-12, 1e6, &best) || !is_candidate_lr(best)) bad = "lr";
    else if (!sweep || sweep->type != MF_JSON_ARRAY || sweep->count != MF_EXPERIMENT_TUNE_COUNT)
        bad = "sweep";
    for (int i = 0; !bad && i < sweep->count; i++) {
        const mf_json *e = &sweep->u.items[i];
        double x;
        const float lrs[MF_EXPERIMENT_TUNE_COUNT] = MF_EXPERIMENT_TUNE_LRS;
        if (e->type != MF_JSON_OBJECT || !number_in(e, "lr", 0, 1e6, &x) || (float)x != lrs[i] ||
            !number_in(e, "val_acc", 0, 1, &x) || !number_in(e, "val_loss", -1, 1e30, &x))
            bad = "sweep";
    }
    if (bad) st = mf_fail(err, MF_ERR_FORMAT, "%s: not a learning-rate sweep of minformer: '%s' "
                          "is missing or invalid; delete the file to tune again", what, bad);
    else if (requested) st = check_embedded_identity(&root, requested, 0, what, err);
    if (!st) *lr = (float)best;
    mf_json_free(&root);
    free(copy);
    return st;
}

/* ---- result.json: a finished run ---------------------------------------------------- */

mf_status mf_experiment_parse_result(const char *text, size_t len, const mf_run_identity *requested,
                                     int any_data, mf_experiment_result *r, const char *what,
                                     mf_error *err)
{
    char *copy;
    mf_json root;
    mf_status st = parse_object(text, len, what, &copy, &root, err);
    if (st) return st;
    const mf_json *name = mf_json_get(&root, "name");
    long params = 0, train_images = 0, lr_tuned = 0, epochs = 0, best_epoch = 0;
    double lr = 0, tl = 0, ta = 0, vl = 0, va = 0, best = 0, seconds = 0, ips = 0;
    const char *bad = NULL;
    if (!name || name->type != MF_JSON_STRING || (r->name[0] && strcmp(name->u.string, r->name)))
        bad = "name";
    else if (!int_in(&root, "params", 1, 1L << 40, &params) || (r->params && (size_t)params != r->params))
        bad = "params";
    else if (!int_in(&root, "train_images", 1, 1L << 30, &train_images)) bad = "train_images";
    else if (!number_in(&root, "lr", 1e-12, 1e6, &lr)) bad = "lr";
    else if (!int_in(&root, "lr_tuned", 0, 1, &lr_tuned)) bad = "lr_tuned";
    else if (!int_in(&root, "epochs", 1, 100000, &epochs) || (r->epochs && epochs != r->epochs))
        bad = "epochs";
    else if (!number_in(&root, "train_loss", 0, 1e30, &tl)) bad = "train_loss";
    else if (!number_in(&root, "train_acc", 0, 1, &ta)) bad = "train_acc";
    else if (!number_in(&root, "test_loss", 0, 1e30, &vl)) bad = "test_loss";
    else if (!number_in(&root, "test_acc", 0, 1, &va)) bad = "test_acc";
    else if (!number_in(&root, "best_test_acc", va, 1, &best)) bad = "best_test_acc";
    else if (!int_in(&root, "best_epoch", 1, epochs, &best_epoch)) bad = "best_epoch";
    else if (!number_in(&root, "seconds", 0, 1e12, &seconds)) bad = "seconds";
    else if (!number_in(&root, "images_per_second", 0, 1e12, &ips)) bad = "images_per_second";
    /* best_test_loss came later: a result without it reads as -1 (unknown). */
    double best_loss = -1;
    if (!bad && mf_json_get(&root, "best_test_loss") &&
        !number_in(&root, "best_test_loss", 0, 1e30, &best_loss))
        bad = "best_test_loss";
    if (bad) {
        st = mf_fail(err, MF_ERR_FORMAT, "%s: not a result of minformer: '%s' is missing or "
                     "invalid; delete the file to rerun the run", what, bad);
        goto out;
    }
    if (requested) {
        if ((st = check_embedded_identity(&root, requested, any_data, what, err))) goto out;
        /* The rate the run used: the one requested, or one of the sweep's. */
        const char *want = mf_run_identity_get(requested, "lr");
        int tuned = want && !strcmp(want, "tuned");
        char got[32];
        mf_run_format_float((float)lr, got, sizeof got);
        if (tuned != (int)lr_tuned || (tuned ? !is_candidate_lr(lr) : !want || strcmp(want, got))) {
            st = mf_fail(err, MF_ERR_FORMAT, "%s: its learning rate %s%s contradicts its settings; "
                         "delete the file to rerun the run", what, got, lr_tuned ? " (tuned)" : "");
            goto out;
        }
    }
    snprintf(r->name, sizeof r->name, "%s", name->u.string);
    r->params = (size_t)params;
    r->train_images = (int)train_images;
    r->lr = (float)lr;
    r->lr_tuned = (int)lr_tuned;
    r->epochs = (int)epochs;
    r->train_loss = (float)tl;
    r->train_acc = (float)ta;
    r->test_loss = (float)vl;
    r->test_acc = (float)va;
    r->best_test_acc = (float)best;
    r->best_epoch = (int)best_epoch;
    r->best_test_loss = (float)best_loss;
    r->seconds = seconds;
    r->images_per_second = ips;
out:
    mf_json_free(&root);
    free(copy);
    return st;
}

static mf_status write_result(const char *path, const mf_experiment_result *r,
                              const mf_run_identity *id, mf_error *err)
{
    char *ids = mf_run_identity_to_json(id);
    mf_json_writer w = {0};
    mf_json_raw(&w, "{\"name\":");
    mf_json_string(&w, r->name);
    mf_json_printf(&w, ",\"identity\":%s", ids ? ids : "null");
    mf_json_printf(&w,
                   ",\"params\":%zu,\"train_images\":%d,\"lr\":%.9g,\"lr_tuned\":%d,\"epochs\":%d,"
                   "\"train_loss\":%.6f,\"train_acc\":%.6f,\"test_loss\":%.6f,\"test_acc\":%.6f,"
                   "\"best_test_acc\":%.6f,\"best_epoch\":%d,\"best_test_loss\":%.6f,"
                   "\"seconds\":%.3f,\"images_per_second\":%.1f}\n",
                   r->params, r->train_images, (double)r->lr, r->lr_tuned, r->epochs, r->train_loss,
                   r->train_acc, r->test_loss, r->test_acc, r->best_test_acc, r->best_epoch,
                   r->best_test_loss, r->seconds, r->images_per_second);
    mf_status st = !ids || w.failed ? mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path)
                                    : write_text(path, w.data, err);
    free(ids);
    mf_json_writer_free(&w);
    return st;
}

/* ---- run.json: what the run was started as ------------------------------------------- */

/* The first file of a run: written before any work, checked on every later
 * visit, so a rerun with other settings is refused before it trains, tunes
 * or skips anything. */
static mf_status check_run_json(const char *path, const char *dir, const char *name,
                                const mf_run_identity *req, int has_work, mf_error *err)
{
    if (!path_exists(path)) {
        if (has_work)
            return mf_fail(err, MF_ERR_CONFIG, "%s: holds a run's files but no run.json, so its "
                           "settings are unknown (made by an older minformer?); delete the "
                           "directory to rerun the run, or use another --out", dir);
        char *ids = mf_run_identity_to_json(req);
        mf_json_writer w = {0};
        mf_json_raw(&w, "{\"name\":");
        mf_json_string(&w, name);
        mf_json_printf(&w, ",\"identity\":%s}\n", ids ? ids : "null");
        mf_status st = !ids || w.failed ? mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path)
                                        : write_text(path, w.data, err);
        free(ids);
        mf_json_writer_free(&w);
        return st;
    }
    char *text, *copy;
    size_t len;
    mf_status st = mf_file_read(path, SMALL_FILE_MAX, &text, &len, err);
    if (st) return st;
    mf_json root;
    if (!(st = parse_object(text, len, path, &copy, &root, err))) {
        const mf_json *n = mf_json_get(&root, "name");
        if (!n || n->type != MF_JSON_STRING || strcmp(n->u.string, name))
            st = mf_fail(err, MF_ERR_FORMAT, "%s: not the run.json of run %s; delete the run's "
                         "directory to rerun it", path, name);
        else
            st = check_embedded_identity(&root, req, 0, path, err);
        mf_json_free(&root);
        free(copy);
    }
    free(text);
    return st;
}

/* ---- one run ------------------------------------------------------------------ */

typedef struct {
    mf_model *model;
    mf_checkpoint_info *info;
    const char *ckpt_path, *log_path;
    const mf_experiment_hooks *user;
    int epochs;
    /* for the learning-rate sweep, which keeps no files */
    int sweep;
    mf_epoch_stats last;
} run_ctx;

static void forward_batch(void *vctx, int epoch, int batch, int batches, float loss, float acc,
                          double ips)
{
    run_ctx *ctx = vctx;
    if (ctx->user && ctx->user->on_batch)
        ctx->user->on_batch(ctx->user->ctx, epoch, batch, batches, loss, acc, ips);
}

/* Appends one line to the log: all of it, or an error with the reason. */
static mf_status append_line(const char *path, const char *line, mf_error *err)
{
    FILE *f = fopen(path, "a");
    if (!f) return mf_fail(err, MF_ERR_IO, "%s: cannot open the log: %s", path, strerror(errno));
    size_t n = strlen(line);
    int e = 0;
    if (fwrite(line, 1, n, f) != n || fflush(f)) e = errno ? errno : EIO;
    if (fclose(f) && !e) e = errno ? errno : EIO;
    if (e) return mf_fail(err, MF_ERR_IO, "%s: cannot write the log: %s", path, strerror(e));
    return MF_OK;
}

static mf_status after_epoch(void *vctx, const mf_epoch_stats *s, const mf_train_state *st,
                             mf_error *err)
{
    run_ctx *ctx = vctx;
    ctx->last = *s;
    if (ctx->sweep) return MF_OK;
    /* The log line first, then the checkpoint: after a crash between the
     * two, the resumed run repeats the epoch and its line replaces this one.
     * A log that cannot be written still gets the epoch's checkpoint. */
    char line[1024];
    mf_status log_st = MF_OK;
    mf_error log_err;
    if (mf_run_log_line(s, line, sizeof line) < 0)
        log_st = mf_fail(&log_err, MF_ERR_IO, "%s: log line too long", ctx->log_path);
    else
        log_st = append_line(ctx->log_path, line, &log_err);
    ctx->info->state = *st;
    mf_status rc = mf_checkpoint_save(ctx->ckpt_path, ctx->model, ctx->info, 1, err);
    if (rc) return rc;
    if (log_st) {
        *err = log_err;
        return log_st;
    }
    if (ctx->user && ctx->user->on_epoch) ctx->user->on_epoch(ctx->user->ctx, s, ctx->epochs);
    return MF_OK;
}

/* Keeps the log's lines for epochs 1..epoch: a resumed run rewrites the rest. */
static mf_status trim_log(const char *path, int epoch, mf_error *err)
{
    if (!path_exists(path)) return MF_OK;
    size_t len;
    char *text;
    mf_status st = mf_file_read(path, LOG_FILE_MAX, &text, &len, err);
    if (st) return st;
    char *out = malloc(len + 1);
    if (!out) {
        free(text);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory");
    }
    size_t n = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line + 1) : strlen(line);
        int e = 0;
        if (sscanf(line, "{\"epoch\":%d", &e) == 1 && e >= 1 && e <= epoch && end) {
            memcpy(out + n, line, ll);
            n += ll;
        }
        line += ll;
    }
    out[n] = '\0';
    st = write_text(path, out, err);
    free(text);
    free(out);
    return st;
}

/* A training split whose last `val` images stand in as the test split: the
 * views borrow ds's memory (never free them). */
static void validation_view(const mf_dataset *ds, int train, int val, mf_dataset *view)
{
    *view = *ds;
    size_t img = (size_t)ds->channels * ds->size * ds->size;
    int start = ds->train.count - val;
    view->train.count = train;
    view->test = ds->train;
    view->test.count = val;
    view->test.images = ds->train.images + (size_t)start * img;
    view->test.labels = ds->train.labels + start;
}

static mf_status tune_lr(const mf_experiment_opts *o, const mf_config *cfg, const mf_dataset *ds,
                         const mf_experiment_hooks *hooks, volatile sig_atomic_t *stop,
                         const char *lr_path, const mf_run_identity *req, float *best_lr,
                         mf_error *err)
{
    const float lrs[MF_EXPERIMENT_TUNE_COUNT] = MF_EXPERIMENT_TUNE_LRS;
    int n = ds->train.count;
    int val = o->tune_val < n / 5 ? o->tune_val : n / 5;
    int train = n - val < o->tune_images ? n - val : o->tune_images;
    if (val < 1 || train < o->batch)
        return mf_fail(err, MF_ERR_CONFIG, "--tune-lr needs more training images than %d", n);
    mf_dataset view;
    validation_view(ds, train, val, &view);
    mf_train_opts to;
    run_train_opts(o, cfg, &to);
    to.epochs = 1;
    char *ids = mf_run_identity_to_json(req);
    mf_json_writer w = {0};
    mf_json_printf(&w, "{\"identity\":%s,\"train_images\":%d,\"val_images\":%d,\"epochs\":1,"
                   "\"sweep\":[", ids ? ids : "null", train, val);
    free(ids);
    float best_acc = -1.0f, best_loss = INFINITY;
    mf_status st = MF_OK;
    for (int i = 0; i < MF_EXPERIMENT_TUNE_COUNT; i++) {
        mf_model m;
        if ((st = mf_model_create(&m, cfg, err))) break;
        mf_model_init_weights(&m, o->seed);
        to.lr = lrs[i];
        mf_train_state ts;
        mf_train_state_init(&ts);
        run_ctx ctx = {.model = &m, .user = hooks, .epochs = 1, .sweep = 1};
        mf_train_hooks th = {&ctx, forward_batch, after_epoch};
        st = mf_train(&m, &view, &to, &ts, &th, stop, err);
        mf_model_free(&m);
        float acc = ctx.last.test_acc, loss = ctx.last.test_loss;
        if (st == MF_ERR_NUMERIC) { /* diverged: the worst possible score */
            acc = 0.0f;
            loss = INFINITY;
            st = MF_OK;
        } else if (st) {
            break;
        }
        message(hooks, "  lr %-6g validation acc %6.2f%% loss %.4f (%d train / %d held-out images)",
                (double)lrs[i], 100.0 * acc, (double)loss, train, val);
        if (acc > best_acc || (acc == best_acc && loss < best_loss)) {
            best_acc = acc;
            best_loss = loss;
            *best_lr = lrs[i];
        }
        mf_json_printf(&w, "%s{\"lr\":%.9g,\"val_acc\":%.6f,\"val_loss\":%.6f}", i ? "," : "",
                       (double)lrs[i], acc, isfinite(loss) ? loss : -1.0);
    }
    mf_json_printf(&w, "],\"lr\":%.9g}\n", (double)*best_lr);
    if (!st) st = w.failed ? mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", lr_path)
                           : write_text(lr_path, w.data, err);
    mf_json_writer_free(&w);
    return st;
}

/* Reads a small file and hands it to a parser of this file's formats. */
static mf_status read_small(const char *path, char **text, size_t *len, mf_error *err)
{
    return mf_file_read(path, SMALL_FILE_MAX, text, len, err);
}

/* Final and best metrics, total time and throughput, from the run's log. */
static mf_status summarize_log(const char *path, mf_experiment_result *r, mf_error *err)
{
    mf_training_log log;
    mf_status st = mf_training_log_read(path, &log, err);
    if (st) return st;
    if (log.count == 0) {
        mf_training_log_free(&log);
        return mf_fail(err, MF_ERR_FORMAT, "%s: no epochs logged", path);
    }
    const mf_log_epoch *last = &log.epochs[log.count - 1];
    r->train_loss = last->train_loss;
    r->train_acc = last->train_acc;
    r->test_loss = last->test_loss;
    r->test_acc = last->test_acc;
    r->best_test_acc = -1.0f;
    r->best_epoch = last->epoch;
    r->best_test_loss = INFINITY;
    double seconds = 0.0, images = 0.0, train_seconds = 0.0;
    for (int i = 0; i < log.count; i++) {
        const mf_log_epoch *e = &log.epochs[i];
        if (e->test_acc > r->best_test_acc) {
            r->best_test_acc = e->test_acc;
            r->best_epoch = e->epoch;
        }
        if (e->test_loss < r->best_test_loss) r->best_test_loss = e->test_loss;
        if (isfinite(e->seconds)) seconds += e->seconds;
        if (isfinite(e->train_seconds)) train_seconds += e->train_seconds;
        images += (double)e->images;
    }
    r->seconds = seconds;
    r->images_per_second = train_seconds > 0 ? images / train_seconds : 0.0;
    mf_training_log_free(&log);
    return MF_OK;
}

/* What mf_experiment_run fills before it looks at any file; o is the row's
 * options (mf_experiment_row_opts). The baseline is the unchanged model
 * (separate W_q, W_k, W_v, W_o, MLP 4, one head) of the row's geometry. */
static mf_status describe_run(const mf_experiment_opts *o, const mf_experiment_spec *spec,
                              mf_experiment_result *res, mf_config *cfg, mf_error *err)
{
    memset(res, 0, sizeof *res);
    res->spec = *spec;
    res->seed = o->seed;
    res->seeded = o->seed_count > 0;
    mf_experiment_run_name_seed(spec, res->seeded, o->seed, res->name, sizeof res->name);
    mf_status st = mf_experiment_config(spec, cfg, err);
    if (st) return st;
    mf_config base = *cfg;
    base.qk = MF_QK_SEPARATE;
    base.vo = MF_VO_SEPARATE;
    base.heads = 1;
    base.mlp_ratio = 4;
    if ((st = mf_config_validate(&base, err))) return st;
    res->params = mf_config_num_params(cfg);
    res->baseline_params = mf_config_num_params(&base);
    res->epochs = o->epochs;
    return MF_OK;
}

/* The run, with its lock held. */
static mf_status run_locked(const mf_experiment_opts *o, const mf_experiment_spec *spec,
                            const mf_config *cfg, const mf_dataset *ds,
                            const mf_experiment_hooks *hooks, volatile sig_atomic_t *stop,
                            mf_experiment_result *res, mf_error *err)
{
    char dir[1024], ckpt[1100], log[1100], lrp[1100], done[1100], runj[1100];
    snprintf(dir, sizeof dir, "%s/%s", o->out_dir, res->name);
    run_path(ckpt, sizeof ckpt, o->out_dir, res->name, "checkpoint.safetensors");
    run_path(log, sizeof log, o->out_dir, res->name, "log.jsonl");
    run_path(lrp, sizeof lrp, o->out_dir, res->name, "lr.json");
    run_path(done, sizeof done, o->out_dir, res->name, "result.json");
    run_path(runj, sizeof runj, o->out_dir, res->name, "run.json");

    mf_run_identity req;
    mf_experiment_identity(o, spec, ds->fingerprint, &req);
    int has_work = path_exists(ckpt) || path_exists(done) || path_exists(log) || path_exists(lrp);
    mf_status st = check_run_json(runj, dir, res->name, &req, has_work, err);
    if (st) return st;

    char *text = NULL;
    size_t len;
    if (path_exists(done)) {
        if ((st = read_small(done, &text, &len, err))) return st;
        mf_experiment_result saved = *res;
        st = mf_experiment_parse_result(text, len, &req, 0, &saved, done, err);
        free(text);
        if (st) return st;
        *res = saved;
        res->skipped = 1;
        return MF_OK;
    }

    /* The learning rate: given, the default rule's, or tuned (once: the
     * sweep's choice is kept in lr.json with the settings it was made for). */
    float lr = o->lr > 0 ? o->lr : mf_default_lr(cfg);
    if (o->lr <= 0 && o->tune_lr) {
        if (path_exists(lrp)) {
            if ((st = read_small(lrp, &text, &len, err))) return st;
            st = mf_experiment_parse_lr(text, len, &req, &lr, lrp, err);
            free(text);
            if (st) return st;
            message(hooks, "%s: learning rate %g, tuned before (%s)", res->name, (double)lr, lrp);
        } else if (path_exists(ckpt)) {
            return mf_fail(err, MF_ERR_FORMAT, "%s: a tuned run's checkpoint without its lr.json; "
                           "delete the run's directory to rerun it", ckpt);
        } else {
            message(hooks, "%s: tuning the learning rate on a held-out part of the training split",
                    res->name);
            if ((st = tune_lr(o, cfg, ds, hooks, stop, lrp, &req, &lr, err))) return st;
            message(hooks, "%s: learning rate %g", res->name, (double)lr);
        }
        res->lr_tuned = 1;
    }

    mf_model model;
    memset(&model, 0, sizeof model);
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    mf_train_state ts;
    mf_train_state_init(&ts);
    mf_train_opts to;
    run_train_opts(o, cfg, &to);
    to.lr = lr;
    if (path_exists(ckpt)) {
        /* The checkpoint must be of exactly this run: the same model, options,
         * learning rate, limits and data (mf_run_resume_load compares them). */
        mf_run_identity want;
        mf_run_identity_make(&want, spec->dataset, cfg, &to, o->limit_train, o->limit_test,
                             ds->fingerprint);
        if ((st = mf_run_resume_load(ckpt, &want, "use another --out, or delete the run's "
                                     "directory to rerun it", &model, &info, err)))
            return st;
        to = info.opts; /* equal to the request, as the identity proved */
        ts = info.state;
        res->resumed = 1;
        if ((st = trim_log(log, ts.epoch, err))) goto out;
        message(hooks, "%s: resuming at epoch %d, step %ld (lr %g)", res->name, ts.epoch + 1, ts.step,
                (double)to.lr);
    } else {
        if ((st = mf_model_create(&model, cfg, err))) return st;
        mf_model_init_weights(&model, to.seed);
        remove(log); /* a log without a checkpoint is from a run that never saved */
    }
    res->lr = to.lr;
    info.dataset = spec->dataset;
    memcpy(info.mean, ds->mean, sizeof info.mean);
    memcpy(info.std, ds->std, sizeof info.std);
    info.opts = to;
    info.limit_train = o->limit_train;
    info.limit_test = o->limit_test;
    info.data_fingerprint = ds->fingerprint;

    run_ctx ctx = {.model = &model, .info = &info, .ckpt_path = ckpt, .log_path = log,
                   .user = hooks, .epochs = to.epochs};
    mf_train_hooks th = {&ctx, forward_batch, after_epoch};
    st = mf_train(&model, ds, &to, &ts, &th, stop, err);
    if (st == MF_ERR_INTERRUPTED) {
        /* Stopped at a step boundary: save exactly there, keep the message. */
        mf_error save_err;
        info.state = ts;
        if (mf_checkpoint_save(ckpt, &model, &info, 1, &save_err)) *err = save_err;
        else res->saved = 1;
        goto out;
    }
    if (st) goto out;
    if ((st = summarize_log(log, res, err))) goto out;
    st = write_result(done, res, &req, err);
out:
    mf_model_free(&model);
    return st;
}

mf_status mf_experiment_run(const mf_experiment_opts *given, const mf_experiment_spec *spec,
                            const mf_dataset *ds, const mf_experiment_hooks *hooks,
                            volatile sig_atomic_t *stop, mf_experiment_result *res, mf_error *err)
{
    mf_experiment_opts row, *o = &row;
    mf_experiment_row_opts(given, spec, &row);
    mf_config cfg;
    mf_status st = describe_run(o, spec, res, &cfg, err);
    if (st) return st;
    if (ds->kind != spec->dataset || ds->channels != cfg.channels || ds->size != cfg.image_size ||
        ds->classes != cfg.classes)
        return mf_fail(err, MF_ERR_CONFIG, "%s: given the %s dataset", res->name, ds->name);
    res->train_images = ds->train.count;
    res->q = (double)ds->train.count * cfg.classes / (double)res->params;

    char dir[1024], lockp[1100];
    if (snprintf(dir, sizeof dir, "%s/%s", o->out_dir, res->name) >= (int)sizeof dir)
        return mf_fail(err, MF_ERR_IO, "%s: path too long", o->out_dir);
    run_path(lockp, sizeof lockp, o->out_dir, res->name, "lock");
    if ((st = make_dirs(dir, err))) return st;
    /* One owner per run: the lock is held while the run tunes and trains,
     * and the kernel drops it when its holder exits or dies. */
    int lock = mf_run_lock_try(lockp, err);
    if (lock == -1) return MF_ERR_IO;
    if (lock == -2) {
        res->in_progress = 1;
        return MF_OK;
    }
    st = run_locked(o, spec, &cfg, ds, hooks, stop, res, err);
    mf_run_lock_release(lock);
    return st;
}

/* ---- the grid's summary ---------------------------------------------------------------- */

mf_status mf_experiment_collect(const mf_experiment_opts *o, const mf_experiment_grid *grid,
                                const uint64_t fingerprints[3], mf_experiment_result *out, int *n,
                                int *other, mf_error *err)
{
    *n = 0;
    if (other) *other = 0;
    /* Row by row, and within a row seed by seed: a row's runs are adjacent. */
    int seeds = o->seed_count > 0 ? o->seed_count : 1;
    for (int i = 0; i < grid->count * seeds; i++) {
        const mf_experiment_spec *spec = &grid->specs[i / seeds];
        mf_experiment_opts so;
        mf_experiment_row_opts(o, spec, &so);
        if (o->seed_count > 0) so.seed = o->seeds[i % seeds];
        mf_experiment_result r;
        mf_config cfg;
        mf_status st = describe_run(&so, spec, &r, &cfg, err);
        if (st) return st;
        char done[1100];
        run_path(done, sizeof done, o->out_dir, r.name, "result.json");
        if (!path_exists(done)) continue;
        uint64_t fp = fingerprints ? fingerprints[(int)spec->dataset] : 0;
        mf_run_identity req;
        mf_experiment_identity(&so, spec, fp, &req);
        char *text;
        size_t len;
        if ((st = read_small(done, &text, &len, err))) return st;
        st = mf_experiment_parse_result(text, len, &req, fp == 0, &r, done, err);
        free(text);
        if (st == MF_ERR_CONFIG) { /* a run made with other settings: not this grid's */
            if (other) (*other)++;
            continue;
        }
        if (st) return st;
        if (r.best_test_loss < 0) { /* a result.json from before best_test_loss: its log has it */
            char log[1100];
            mf_experiment_result fromlog = r;
            run_path(log, sizeof log, o->out_dir, r.name, "log.jsonl");
            if ((st = summarize_log(log, &fromlog, err))) return st;
            r.best_test_loss = fromlog.best_test_loss;
        }
        r.q = (double)r.train_images * cfg.classes / (double)r.params;
        out[(*n)++] = r;
    }
    return MF_OK;
}

mf_status mf_experiment_write_summary(const mf_experiment_opts *o, const mf_experiment_grid *grid,
                                      const uint64_t fingerprints[3], mf_experiment_result *out,
                                      int *n, int *other, mf_error *err)
{
    /* Processes sharing the directory write the summary one at a time, each
     * from every run finished so far, so the last one written is complete. A
     * holder takes well under a second; past two minutes something is wrong. */
    char lockp[1100];
    snprintf(lockp, sizeof lockp, "%s/summary.lock", o->out_dir);
    int lock;
    double t0 = mf_now_seconds();
    while ((lock = mf_run_lock_try(lockp, err)) == -2) {
        if (mf_now_seconds() - t0 > 120.0)
            return mf_fail(err, MF_ERR_IO, "%s: held by another process for two minutes", lockp);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (lock < 0) return MF_ERR_IO;
    mf_status st = mf_experiment_collect(o, grid, fingerprints, out, n, other, err);
    if (!st) st = mf_experiment_write_results(o->out_dir, grid->name, out, *n, o->figure_format, err);
    mf_run_lock_release(lock);
    return st;
}

/* ---- the grid's tables and figures ---------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} text_buf;

static void tb_printf(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(text_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->data && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->len + (size_t)n + 1) ncap *= 2;
        char *nd = realloc(b->data, ncap);
        if (!nd) return;
        b->data = nd;
        b->cap = ncap;
    }
}

static const char *mlp_text(int r, char *buf, size_t size)
{
    if (r == 0) return "none";
    snprintf(buf, size, "r = %d", r);
    return buf;
}

/* The end of the group of runs of rs[i]'s row: rows are adjacent (collect's
 * order), and a row's runs share the row's name. */
static int row_end(const mf_experiment_result *rs, int n, int i)
{
    char a[96], b[96];
    mf_experiment_run_name(&rs[i].spec, a, sizeof a);
    int j = i + 1;
    for (; j < n; j++) {
        mf_experiment_run_name(&rs[j].spec, b, sizeof b);
        if (strcmp(a, b) || rs[j].spec.dataset != rs[i].spec.dataset) break;
    }
    return j;
}

/* The metrics averaged over a row's seeds, in results.csv's order. */
enum { M_TRAIN_LOSS, M_TRAIN_ACC, M_TEST_LOSS, M_TEST_ACC, M_BEST_ACC, M_BEST_EPOCH, M_SECONDS,
       M_IPS, M_BEST_LOSS, M_LR, M_COUNT };

static double metric(const mf_experiment_result *r, int m)
{
    switch (m) {
    case M_TRAIN_LOSS: return r->train_loss;
    case M_TRAIN_ACC: return r->train_acc;
    case M_TEST_LOSS: return r->test_loss;
    case M_TEST_ACC: return r->test_acc;
    case M_BEST_ACC: return r->best_test_acc;
    case M_BEST_EPOCH: return r->best_epoch;
    case M_SECONDS: return r->seconds;
    case M_IPS: return r->images_per_second;
    case M_BEST_LOSS: return r->best_test_loss;
    default: return r->lr;
    }
}

/* Mean and sample standard deviation (divisor n - 1; NAN below 2 runs) of
 * metric m over rs[0..n), in two passes. */
static void mean_std(const mf_experiment_result *rs, int n, int m, double *mean, double *std)
{
    double sum = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++) sum += metric(&rs[i], m);
    *mean = sum / n;
    for (int i = 0; i < n; i++) ss += (metric(&rs[i], m) - *mean) * (metric(&rs[i], m) - *mean);
    *std = n > 1 ? sqrt(ss / (n - 1)) : NAN;
}

/* Whether two rows share dataset, depth, heads, MLP and variant (a grid
 * file's rows may differ in width, learning rate, ...): the tables then
 * start with the row's name and the figures label rows by it. */
static int rows_ambiguous(const mf_experiment_result *rs, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) {
            const mf_experiment_spec *a = &rs[i].spec, *b = &rs[j].spec;
            if (a->dataset == b->dataset && a->cfg.layers == b->cfg.layers &&
                a->cfg.heads == b->cfg.heads && a->cfg.mlp_ratio == b->cfg.mlp_ratio &&
                !strcmp(a->variant, b->variant) && strcmp(a->name, b->name))
                return 1;
        }
    return 0;
}

static int any_seeded(const mf_experiment_result *rs, int n)
{
    for (int i = 0; i < n; i++)
        if (rs[i].seeded) return 1;
    return 0;
}

/* "97.12 ± 0.15" (scale 100, 2 decimals) or, for one seed, "97.12 ± –". */
static void pm(text_buf *b, double mean, double std, double scale, int decimals)
{
    if (isnan(std)) tb_printf(b, " %.*f ± – |", decimals, scale * mean);
    else tb_printf(b, " %.*f ± %.*f |", decimals, scale * mean, decimals, scale * std);
}

/* The table of a seeded grid's rows: mean ± sample std over each row's seeds. */
static void markdown_seeds(text_buf *b, const mf_experiment_result *rs, int n, int named)
{
    tb_printf(b, "\nMean ± sample standard deviation (n - 1) over each row's seeds:\n\n"
                 "%s| dataset | encoders | heads | MLP | variant | parameters | seeds | test acc %% | "
                 "best test acc %% | test loss | best test loss |\n"
                 "%s|---|--:|--:|---|---|--:|---|--:|--:|--:|--:|\n", named ? "| row " : "",
              named ? "|---" : "");
    for (int i = 0; i < n;) {
        int j = row_end(rs, n, i);
        const mf_experiment_result *r = &rs[i];
        char mlp[16];
        if (named) tb_printf(b, "| %s ", r->spec.name);
        tb_printf(b, "| %s | %d | %d | %s | %s | %zu | ", mf_dataset_name(r->spec.dataset),
                  r->spec.cfg.layers, r->spec.cfg.heads, mlp_text(r->spec.cfg.mlp_ratio, mlp, sizeof mlp),
                  r->spec.variant, r->params);
        for (int k = i; k < j; k++) tb_printf(b, "%s%llu", k > i ? "," : "", (unsigned long long)rs[k].seed);
        tb_printf(b, " |");
        static const int ms[4] = {M_TEST_ACC, M_BEST_ACC, M_TEST_LOSS, M_BEST_LOSS};
        for (int m = 0; m < 4; m++) {
            double mean, std;
            mean_std(r, j - i, ms[m], &mean, &std);
            pm(b, mean, std, m < 2 ? 100.0 : 1.0, m < 2 ? 2 : 4);
        }
        tb_printf(b, "\n");
        i = j;
    }
}

char *mf_experiment_markdown(const mf_experiment_result *rs, int n)
{
    text_buf b = {0};
    int seeded = any_seeded(rs, n); /* then a seed column last */
    int named = rows_ambiguous(rs, n); /* then a run column first */
    tb_printf(&b, "%s| dataset | encoders | heads | MLP | variant | parameters | %% of baseline | Q | lr | "
                  "epochs | train loss | train acc | test loss | test acc | best test acc (epoch) | "
                  "seconds | img/s |%s\n", named ? "| run " : "", seeded ? " seed |" : "");
    tb_printf(&b, "%s|---|--:|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|%s\n",
              named ? "|---" : "", seeded ? "--:|" : "");
    for (int i = 0; i < n; i++) {
        const mf_experiment_result *r = &rs[i];
        char mlp[16];
        if (named) tb_printf(&b, "| %s ", r->name);
        tb_printf(&b,
                  "| %s | %d | %d | %s | %s | %zu | %.1f%% | %.2f | %g%s | %d | %.4f | %.2f%% | %.4f | "
                  "%.2f%% | %.2f%% (%d) | %.0f | %.0f |",
                  mf_dataset_name(r->spec.dataset), r->spec.cfg.layers, r->spec.cfg.heads,
                  mlp_text(r->spec.cfg.mlp_ratio, mlp, sizeof mlp), r->spec.variant, r->params,
                  100.0 * (double)r->params / (double)r->baseline_params, r->q, (double)r->lr,
                  r->lr_tuned ? " (tuned)" : "", r->epochs, r->train_loss, 100.0 * r->train_acc,
                  r->test_loss, 100.0 * r->test_acc, 100.0 * r->best_test_acc, r->best_epoch,
                  r->seconds, r->images_per_second);
        if (seeded) tb_printf(&b, " %llu |", (unsigned long long)r->seed);
        tb_printf(&b, "\n");
    }
    if (seeded) markdown_seeds(&b, rs, n, named);
    return b.data;
}

static char *results_csv(const mf_experiment_result *rs, int n)
{
    text_buf b = {0};
    int seeded = any_seeded(rs, n);
    tb_printf(&b, "run,dataset,encoders,heads,mlp,variant,qk,vo,parameters,pct_of_baseline,q,lr,"
                  "lr_tuned,epochs,train_loss,train_acc,test_loss,test_acc,best_test_acc,best_epoch,"
                  "seconds,images_per_second%s\n", seeded ? ",best_test_loss,seed,stat,seeds" : "");
    for (int i = 0; i < n; i++) {
        const mf_experiment_result *r = &rs[i];
        tb_printf(&b, "%s,%s,%d,%d,%d,%s,%s,%s,%zu,%.2f,%.4f,%g,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f,%d,"
                      "%.1f,%.1f",
                  r->name, mf_dataset_name(r->spec.dataset), r->spec.cfg.layers, r->spec.cfg.heads,
                  r->spec.cfg.mlp_ratio, r->spec.variant, mf_qk_name(r->spec.cfg.qk), mf_vo_name(r->spec.cfg.vo),
                  r->params, 100.0 * (double)r->params / (double)r->baseline_params, r->q,
                  (double)r->lr, r->lr_tuned, r->epochs, r->train_loss, r->train_acc, r->test_loss,
                  r->test_acc, r->best_test_acc, r->best_epoch, r->seconds, r->images_per_second);
        if (seeded)
            tb_printf(&b, ",%.6f,%llu,run,1", r->best_test_loss, (unsigned long long)r->seed);
        tb_printf(&b, "\n");
    }
    /* A seeded grid: per row, a "mean" line and (2 seeds or more) a "std"
     * line (sample, n - 1) of the metrics, lr, best_epoch, seconds and img/s;
     * run is the row's name, seed empty, seeds the number of seeds. */
    for (int i = 0; seeded && i < n;) {
        int j = row_end(rs, n, i), k = j - i;
        const mf_experiment_result *r = &rs[i];
        char row[96];
        mf_experiment_run_name(&r->spec, row, sizeof row);
        for (int s = 0; s < 2 && (s == 0 || k > 1); s++) {
            double v[M_COUNT];
            for (int m = 0; m < M_COUNT; m++) {
                double mean, std;
                mean_std(r, k, m, &mean, &std);
                v[m] = s ? std : mean;
            }
            tb_printf(&b, "%s,%s,%d,%d,%d,%s,%s,%s,%zu,%.2f,%.4f,%.6g,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f,"
                          "%.2f,%.1f,%.1f,%.6f,,%s,%d\n",
                      row, mf_dataset_name(r->spec.dataset), r->spec.cfg.layers, r->spec.cfg.heads,
                      r->spec.cfg.mlp_ratio, r->spec.variant, mf_qk_name(r->spec.cfg.qk),
                      mf_vo_name(r->spec.cfg.vo), r->params,
                      100.0 * (double)r->params / (double)r->baseline_params, r->q, v[M_LR],
                      r->lr_tuned, r->epochs, v[M_TRAIN_LOSS], v[M_TRAIN_ACC], v[M_TEST_LOSS],
                      v[M_TEST_ACC], v[M_BEST_ACC], v[M_BEST_EPOCH], v[M_SECONDS], v[M_IPS],
                      v[M_BEST_LOSS], s ? "std" : "mean", k);
        }
        i = j;
    }
    return b.data;
}

/* "H1 MLP4 unchanged", or with the depth when the grid mixes depths; the
 * row's name when those do not tell the rows apart (with_layers < 0). */
static void short_label(const mf_experiment_result *r, int with_layers, char *out, size_t size)
{
    char mlp[16];
    if (with_layers < 0) {
        snprintf(out, size, "%s", r->spec.name);
        return;
    }
    if (r->spec.cfg.mlp_ratio) snprintf(mlp, sizeof mlp, "MLP%d", r->spec.cfg.mlp_ratio);
    else snprintf(mlp, sizeof mlp, "noMLP");
    if (with_layers)
        snprintf(out, size, "L%d H%d %s %s", r->spec.cfg.layers, r->spec.cfg.heads, mlp, r->spec.variant);
    else
        snprintf(out, size, "H%d %s %s", r->spec.cfg.heads, mlp, r->spec.variant);
}

static mf_status write_figures(const char *dir, const char *grid, const mf_experiment_result *rs,
                               int n, mf_figure_format format, mf_error *err)
{
    const char *ext = mf_figure_format_name(format);
    int mixed_layers = 0;
    for (int i = 1; i < n; i++) mixed_layers |= rs[i].spec.cfg.layers != rs[0].spec.cfg.layers;
    if (rows_ambiguous(rs, n)) mixed_layers = -1;
    mf_status st = MF_OK;
    char (*labels)[80] = calloc((size_t)n, sizeof *labels);
    const char **label_ptrs = calloc((size_t)n, sizeof *label_ptrs);
    mf_training_log *logs = calloc((size_t)n, sizeof *logs);
    double *params = calloc(2 * (size_t)n, sizeof *params);
    int *group = calloc((size_t)n, sizeof *group), *sizes = calloc((size_t)n, sizeof *sizes);
    if (!labels || !label_ptrs || !logs || !params || !group || !sizes) {
        st = mf_fail(err, MF_ERR_NOMEM, "out of memory for the figures");
        goto out;
    }
    double *acc = params + n;
    /* One loss figure per dataset, as the paper has one for MNIST and one
     * for CIFAR-10, with one curve per row: a row of several seeds draws
     * its mean per epoch with a band of one sample standard deviation
     * (mf_figure_curves_rows), a row of one run its curve as it is. */
    const char *group_names[3];
    int groups = 0;
    for (int k = 0; k < 3; k++) {
        int m = 0, rows = 0, banded = 0;
        for (int i = 0; i < n;) {
            int j = row_end(rs, n, i);
            if ((int)rs[i].spec.dataset != k) {
                i = j;
                continue;
            }
            short_label(&rs[i], mixed_layers, labels[rows], sizeof labels[rows]);
            size_t len = strlen(labels[rows]);
            if (j - i > 1)
                snprintf(labels[rows] + len, sizeof labels[rows] - len, " (%d seeds)", j - i);
            else if (rs[i].seeded)
                snprintf(labels[rows] + len, sizeof labels[rows] - len, " s%llu",
                         (unsigned long long)rs[i].seed);
            label_ptrs[rows] = labels[rows];
            sizes[rows++] = j - i;
            banded |= j - i > 1;
            for (; i < j; i++) {
                char path[1100];
                snprintf(path, sizeof path, "%s/%s/log.jsonl", dir, rs[i].name);
                if ((st = mf_training_log_read(path, &logs[m], err))) {
                    for (int q = 0; q < m; q++) mf_training_log_free(&logs[q]);
                    goto out;
                }
                group[i] = groups;
                m++;
            }
        }
        if (!m) continue;
        group_names[groups] = mf_dataset_name((mf_dataset_kind)k);
        groups++;
        char path[1100], title[160];
        snprintf(path, sizeof path, "%s/loss-%s.%s", dir, mf_dataset_name((mf_dataset_kind)k), ext);
        snprintf(title, sizeof title, "%s: loss per epoch%s (%s)", mf_dataset_name((mf_dataset_kind)k),
                 banded ? ", mean and std over seeds" : "", grid);
        st = mf_figure_curves_rows(path, format, 1200, 800, title, logs, sizes, label_ptrs, rows, 0,
                                   err);
        for (int i = 0; i < m; i++) mf_training_log_free(&logs[i]);
        if (st) goto out;
    }
    /* Accuracy against parameters: one point per row, at the mean over its
     * seeds with a bar of one sample standard deviation (none for one seed). */
    {
        double *err_bar = calloc((size_t)n, sizeof *err_bar);
        if (!err_bar) {
            st = mf_fail(err, MF_ERR_NOMEM, "out of memory for the figures");
            goto out;
        }
        int m = 0;
        for (int i = 0; i < n;) {
            int j = row_end(rs, n, i);
            double mean, std;
            mean_std(&rs[i], j - i, M_TEST_ACC, &mean, &std);
            short_label(&rs[i], mixed_layers, labels[m], sizeof labels[m]);
            label_ptrs[m] = labels[m];
            params[m] = (double)rs[i].params;
            acc[m] = 100.0 * mean;
            err_bar[m] = 100.0 * std;
            group[m] = group[i];
            m++;
            i = j;
        }
        char path[1100], title[160];
        snprintf(path, sizeof path, "%s/accuracy-params.%s", dir, ext);
        snprintf(title, sizeof title, "%s against parameters (%s)",
                 any_seeded(rs, n) ? "test accuracy, mean and std over seeds," : "test accuracy", grid);
        st = mf_figure_accuracy_params_err(path, format, 1200, 800, title, params, acc, err_bar,
                                           label_ptrs, group, group_names, groups, m, err);
        free(err_bar);
    }
out:
    free(labels);
    free(label_ptrs);
    free(logs);
    free(params);
    free(group);
    free(sizes);
    return st;
}

mf_status mf_experiment_write_results(const char *dir, const char *grid,
                                      const mf_experiment_result *rs, int n,
                                      mf_figure_format format, mf_error *err)
{
    if (n < 1) return MF_OK;
    char path[1100];
    char *md = mf_experiment_markdown(rs, n), *csv = results_csv(rs, n);
    mf_status st = MF_OK;
    if (!md || !csv) {
        st = mf_fail(err, MF_ERR_NOMEM, "out of memory for the results");
        goto out;
    }
    text_buf doc = {0};
    const char *ext = mf_figure_format_name(format);
    tb_printf(&doc, "# %s\n\n%s\nLoss curves: loss-<dataset>.%s%s; accuracy against parameters: "
                    "accuracy-params.%s%s.\n", grid, md, ext,
              any_seeded(rs, n) ? " (each row's mean over its seeds per epoch, with a band of one "
                                  "standard deviation)" : "",
              ext, any_seeded(rs, n) ? " (the mean, with a bar of one standard deviation)" : "");
    if (!doc.data) {
        st = mf_fail(err, MF_ERR_NOMEM, "out of memory for the results");
        goto out;
    }
    snprintf(path, sizeof path, "%s/results.md", dir);
    st = write_text(path, doc.data, err);
    free(doc.data);
    if (st) goto out;
    snprintf(path, sizeof path, "%s/results.csv", dir);
    if ((st = write_text(path, csv, err))) goto out;
    st = write_figures(dir, grid, rs, n, format, err);
out:
    free(md);
    free(csv);
    return st;
}
