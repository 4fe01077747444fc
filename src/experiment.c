/* The paper's experiment grids and a runner that trains, checkpoints,
 * resumes and skips each run in its own directory, then tabulates the grid. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "minformer/checkpoint.h"
#include "minformer/experiment.h"
#include "minformer/figures.h"

/* ---- the grids ------------------------------------------------------------ */

#define SEP MF_QK_SEPARATE
#define SHARED MF_QK_SHARED
#define QKC MF_QK_COLLAPSED
#define SYM MF_QK_SYMMETRIC
#define CHOL MF_QK_CHOLESKY
#define VOS MF_VO_SEPARATE
#define VOC MF_VO_COLLAPSED
#define VON MF_VO_NONE

/* Table 1: {6, 12} encoders x {1, 4} heads x {MLP 4, no MLP}, unchanged, on both datasets. */
static const mf_experiment_spec table1[] = {
    {MF_MNIST, 6, 1, 4, "unchanged", SEP, VOS},    {MF_MNIST, 6, 4, 4, "unchanged", SEP, VOS},
    {MF_MNIST, 6, 1, 0, "unchanged", SEP, VOS},    {MF_MNIST, 6, 4, 0, "unchanged", SEP, VOS},
    {MF_MNIST, 12, 1, 4, "unchanged", SEP, VOS},   {MF_MNIST, 12, 4, 4, "unchanged", SEP, VOS},
    {MF_MNIST, 12, 1, 0, "unchanged", SEP, VOS},   {MF_MNIST, 12, 4, 0, "unchanged", SEP, VOS},
    {MF_CIFAR10, 6, 1, 4, "unchanged", SEP, VOS},  {MF_CIFAR10, 6, 4, 4, "unchanged", SEP, VOS},
    {MF_CIFAR10, 6, 1, 0, "unchanged", SEP, VOS},  {MF_CIFAR10, 6, 4, 0, "unchanged", SEP, VOS},
    {MF_CIFAR10, 12, 1, 4, "unchanged", SEP, VOS}, {MF_CIFAR10, 12, 4, 4, "unchanged", SEP, VOS},
    {MF_CIFAR10, 12, 1, 0, "unchanged", SEP, VOS}, {MF_CIFAR10, 12, 4, 0, "unchanged", SEP, VOS},
};

/* Tables 2 and 3: the paper's ten rows, then the options it discussed but did
 * not run: mirrored symmetric W_qk, Cholesky W_qk = L L^T, collapsed W_vo, and
 * no W_v/W_o with 4 heads. */
#define REDUCTION_ROWS(D)                                                                       \
    {D, 6, 1, 4, "unchanged", SEP, VOS}, {D, 6, 4, 4, "unchanged", SEP, VOS},                   \
    {D, 6, 1, 4, "wqk", QKC, VOS},       {D, 6, 1, 4, "minimal", QKC, VON},                     \
    {D, 6, 1, 0, "unchanged", SEP, VOS}, {D, 6, 4, 0, "unchanged", SEP, VOS},                   \
    {D, 6, 1, 0, "symmetric", SHARED, VOS}, {D, 6, 4, 0, "symmetric", SHARED, VOS},             \
    {D, 6, 1, 0, "wqk", QKC, VOS},       {D, 6, 1, 0, "minimal", QKC, VON},                     \
    {D, 6, 1, 0, "mirrored", SYM, VOS},  {D, 6, 1, 0, "cholesky", CHOL, VOS},                   \
    {D, 6, 1, 0, "wvo", SEP, VOC},       {D, 6, 4, 0, "vo-none", SEP, VON}

static const mf_experiment_spec table2[] = {REDUCTION_ROWS(MF_MNIST)};
static const mf_experiment_spec table3[] = {REDUCTION_ROWS(MF_CIFAR10)};

/* The demo: the original model, the same without its MLP, and the minimal one. */
static const mf_experiment_spec quick[] = {
    {MF_MNIST, 6, 1, 4, "unchanged", SEP, VOS},
    {MF_MNIST, 6, 1, 0, "unchanged", SEP, VOS},
    {MF_MNIST, 6, 1, 0, "minimal", QKC, VON},
};

#define COUNT(a) (int)(sizeof a / sizeof a[0])
static const mf_experiment_grid grids[] = {
    {"quick", "MNIST demo: unchanged, unchanged without MLP, minimal without MLP", 2, 0,
     quick, COUNT(quick)},
    {"table1", "{6, 12} encoders x {1, 4} heads x {MLP 4, none}, MNIST and CIFAR-10", 10, 0,
     table1, COUNT(table1)},
    {"table2", "the reductions on MNIST, and the options the paper did not run", 10, 0, table2,
     COUNT(table2)},
    {"table3", "the reductions on CIFAR-10, and the options the paper did not run", 10, 0, table3,
     COUNT(table3)},
};

const mf_experiment_grid *mf_experiment_grids(int *count)
{
    *count = COUNT(grids);
    return grids;
}

const mf_experiment_grid *mf_experiment_grid_find(const char *name)
{
    for (int i = 0; i < COUNT(grids); i++)
        if (!strcmp(grids[i].name, name)) return &grids[i];
    return NULL;
}

void mf_experiment_run_name(const mf_experiment_spec *s, char *out, size_t size)
{
    snprintf(out, size, "%s-L%d-H%d-mlp%d-%s", mf_dataset_name(s->dataset), s->layers, s->heads,
             s->mlp_ratio, s->variant);
}

mf_status mf_experiment_config(const mf_experiment_spec *s, mf_config *cfg, mf_error *err)
{
    mf_config_default(cfg, mf_dataset_image_size(s->dataset), mf_dataset_channels(s->dataset), 10);
    cfg->layers = s->layers;
    cfg->heads = s->heads;
    cfg->mlp_ratio = s->mlp_ratio;
    cfg->qk = s->qk;
    cfg->vo = s->vo;
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
}

/* ---- files ------------------------------------------------------------------ */

static mf_status make_dirs(const char *path, mf_error *err)
{
    char buf[1024];
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

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Writes text to path through path.tmp and a rename: complete or absent. */
static mf_status write_atomic(const char *path, const char *text, mf_error *err)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return mf_fail(err, MF_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        remove(tmp);
        return mf_fail(err, MF_ERR_IO, "%s: cannot write", path);
    }
    return MF_OK;
}

/* The whole file as a NUL-terminated string, or NULL. */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap) break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
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

static mf_status after_epoch(void *vctx, const mf_epoch_stats *s, const mf_train_state *st,
                             mf_error *err)
{
    run_ctx *ctx = vctx;
    ctx->last = *s;
    if (ctx->sweep) return MF_OK;
    /* The log line first, then the checkpoint: after a crash between the
     * two, the resumed run repeats the epoch and its line replaces this one. */
    FILE *f = fopen(ctx->log_path, "a");
    if (!f) return mf_fail(err, MF_ERR_IO, "%s: cannot open the log: %s", ctx->log_path, strerror(errno));
    fprintf(f,
            "{\"epoch\":%d,\"lr\":%.6g,\"train_loss\":%.6f,\"train_acc\":%.6f,\"test_loss\":%.6f,"
            "\"test_acc\":%.6f,\"seconds\":%.3f,\"images_per_second\":%.1f,\"images\":%ld,"
            "\"train_seconds\":%.3f}\n",
            s->epoch, s->lr, s->train_loss, s->train_acc, s->test_loss, s->test_acc, s->seconds,
            s->images_per_second, s->images, s->train_seconds);
    if (fclose(f)) return mf_fail(err, MF_ERR_IO, "%s: cannot write the log", ctx->log_path);
    ctx->info->state = *st;
    mf_status rc = mf_checkpoint_save(ctx->ckpt_path, ctx->model, ctx->info, 1, err);
    if (rc) return rc;
    if (ctx->user && ctx->user->on_epoch) ctx->user->on_epoch(ctx->user->ctx, s, ctx->epochs);
    return MF_OK;
}

/* Keeps the log's lines for epochs 1..epoch: a resumed run rewrites the rest. */
static mf_status trim_log(const char *path, int epoch, mf_error *err)
{
    size_t len;
    char *text = read_text(path, &len);
    if (!text) return MF_OK;
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
    mf_status st = write_atomic(path, out, err);
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
                         const char *lr_path, float *best_lr, mf_error *err)
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
    mf_train_opts_default(&to);
    to.epochs = 1;
    to.batch = o->batch;
    to.seed = o->seed;
    to.augment = o->augment;
    char json[1024];
    int len = snprintf(json, sizeof json, "{\"train_images\":%d,\"val_images\":%d,\"epochs\":1,\"sweep\":[",
                       train, val);
    float best_acc = -1.0f, best_loss = INFINITY;
    for (int i = 0; i < MF_EXPERIMENT_TUNE_COUNT; i++) {
        mf_model m;
        mf_status st = mf_model_create(&m, cfg, err);
        if (st) return st;
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
        } else if (st) {
            return st;
        }
        message(hooks, "  lr %-6g validation acc %6.2f%% loss %.4f (%d train / %d held-out images)",
                (double)lrs[i], 100.0 * acc, (double)loss, train, val);
        if (acc > best_acc || (acc == best_acc && loss < best_loss)) {
            best_acc = acc;
            best_loss = loss;
            *best_lr = lrs[i];
        }
        len += snprintf(json + len, sizeof json - (size_t)len,
                        "%s{\"lr\":%g,\"val_acc\":%.6f,\"val_loss\":%.6f}", i ? "," : "",
                        (double)lrs[i], acc, isfinite(loss) ? loss : -1.0);
    }
    snprintf(json + len, sizeof json - (size_t)len, "],\"lr\":%g}\n", (double)*best_lr);
    return write_atomic(lr_path, json, err);
}

static int read_json_file(const char *path, char **text, mf_json *root)
{
    size_t len;
    *text = read_text(path, &len);
    if (!*text) return -1;
    char msg[128];
    if (mf_json_parse(*text, len, root, msg, sizeof msg) || root->type != MF_JSON_OBJECT) {
        if (root->type != MF_JSON_OBJECT) mf_json_free(root);
        free(*text);
        *text = NULL;
        return -1;
    }
    return 0;
}

/* A number member, NaN when missing. */
static double jnum(const mf_json *o, const char *key) { return mf_json_number(o, key, NAN); }

static mf_status read_result(const char *path, mf_experiment_result *r, mf_error *err)
{
    char *text;
    mf_json root;
    if (read_json_file(path, &text, &root))
        return mf_fail(err, MF_ERR_FORMAT, "%s: not a result file; delete it to rerun the run", path);
    r->lr = (float)jnum(&root, "lr");
    r->lr_tuned = jnum(&root, "lr_tuned") == 1.0;
    r->epochs = (int)jnum(&root, "epochs");
    r->train_images = (int)jnum(&root, "train_images");
    r->train_loss = (float)jnum(&root, "train_loss");
    r->train_acc = (float)jnum(&root, "train_acc");
    r->test_loss = (float)jnum(&root, "test_loss");
    r->test_acc = (float)jnum(&root, "test_acc");
    r->best_test_acc = (float)jnum(&root, "best_test_acc");
    r->best_epoch = (int)jnum(&root, "best_epoch");
    r->seconds = jnum(&root, "seconds");
    r->images_per_second = jnum(&root, "images_per_second");
    mf_json_free(&root);
    free(text);
    return MF_OK;
}

static mf_status write_result(const char *path, const mf_experiment_result *r, mf_error *err)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"name\":\"%s\",\"params\":%zu,\"train_images\":%d,\"lr\":%g,\"lr_tuned\":%d,"
             "\"epochs\":%d,\"train_loss\":%.6f,\"train_acc\":%.6f,\"test_loss\":%.6f,"
             "\"test_acc\":%.6f,\"best_test_acc\":%.6f,\"best_epoch\":%d,\"seconds\":%.3f,"
             "\"images_per_second\":%.1f}\n",
             r->name, r->params, r->train_images, (double)r->lr, r->lr_tuned, r->epochs,
             r->train_loss, r->train_acc, r->test_loss, r->test_acc, r->best_test_acc,
             r->best_epoch, r->seconds, r->images_per_second);
    return write_atomic(path, json, err);
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
    double seconds = 0.0, images = 0.0, train_seconds = 0.0;
    for (int i = 0; i < log.count; i++) {
        const mf_log_epoch *e = &log.epochs[i];
        if (e->test_acc > r->best_test_acc) {
            r->best_test_acc = e->test_acc;
            r->best_epoch = e->epoch;
        }
        if (isfinite(e->seconds)) seconds += e->seconds;
        if (isfinite(e->train_seconds)) train_seconds += e->train_seconds;
        images += (double)e->images;
    }
    r->seconds = seconds;
    r->images_per_second = train_seconds > 0 ? images / train_seconds : 0.0;
    mf_training_log_free(&log);
    return MF_OK;
}

static int same_config(const mf_config *a, const mf_config *b)
{
    return a->image_size == b->image_size && a->channels == b->channels && a->classes == b->classes &&
           a->patch == b->patch && a->dim == b->dim && a->layers == b->layers &&
           a->heads == b->heads && a->mlp_ratio == b->mlp_ratio && a->qk == b->qk &&
           a->vo == b->vo && a->pool == b->pool && a->dropout == b->dropout;
}

mf_status mf_experiment_run(const mf_experiment_opts *o, const mf_experiment_spec *spec,
                            const mf_dataset *ds, const mf_experiment_hooks *hooks,
                            volatile sig_atomic_t *stop, mf_experiment_result *res, mf_error *err)
{
    memset(res, 0, sizeof *res);
    res->spec = *spec;
    mf_experiment_run_name(spec, res->name, sizeof res->name);
    mf_config cfg, base;
    mf_status st = mf_experiment_config(spec, &cfg, err);
    if (st) return st;
    mf_experiment_spec bs = {spec->dataset, spec->layers, 1, 4, "unchanged", MF_QK_SEPARATE, MF_VO_SEPARATE};
    if ((st = mf_experiment_config(&bs, &base, err))) return st;
    if (ds->kind != spec->dataset || ds->channels != cfg.channels || ds->size != cfg.image_size)
        return mf_fail(err, MF_ERR_CONFIG, "%s: given the %s dataset", res->name, ds->name);
    res->params = mf_config_num_params(&cfg);
    res->baseline_params = mf_config_num_params(&base);
    res->train_images = ds->train.count;
    res->q = (double)ds->train.count * cfg.classes / (double)res->params;
    res->epochs = o->epochs;

    char dir[1024], ckpt[1100], log[1100], lrp[1100], done[1100];
    snprintf(dir, sizeof dir, "%s/%s", o->out_dir, res->name);
    run_path(ckpt, sizeof ckpt, o->out_dir, res->name, "checkpoint.safetensors");
    run_path(log, sizeof log, o->out_dir, res->name, "log.jsonl");
    run_path(lrp, sizeof lrp, o->out_dir, res->name, "lr.json");
    run_path(done, sizeof done, o->out_dir, res->name, "result.json");
    if ((st = make_dirs(dir, err))) return st;

    if (file_exists(done)) {
        mf_experiment_result saved = *res;
        if ((st = read_result(done, &saved, err))) return st;
        if (saved.epochs != o->epochs || saved.train_images != res->train_images)
            return mf_fail(err, MF_ERR_CONFIG,
                           "%s finished with %d epochs on %d images, not %d epochs on %d; use "
                           "another --out", dir, saved.epochs, saved.train_images, o->epochs,
                           res->train_images);
        *res = saved;
        res->skipped = 1;
        return MF_OK;
    }

    mf_model model;
    memset(&model, 0, sizeof model);
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    mf_train_state ts;
    mf_train_state_init(&ts);
    mf_train_opts to;
    mf_train_opts_default(&to);
    to.epochs = o->epochs;
    to.batch = o->batch;
    to.seed = o->seed;
    to.augment = o->augment;

    if (file_exists(ckpt)) {
        if ((st = mf_checkpoint_load(ckpt, &model, &info, err))) return st;
        if (!info.has_optimizer || !info.has_train_state || !same_config(&model.cfg, &cfg) ||
            info.dataset != spec->dataset || info.opts.epochs != o->epochs ||
            info.limit_train != o->limit_train || info.opts.seed != o->seed ||
            info.opts.batch != o->batch) {
            mf_model_free(&model);
            return mf_fail(err, MF_ERR_CONFIG,
                           "%s was started with other settings (epochs %d, limit-train %d, seed %llu); "
                           "use another --out or delete the directory", ckpt, info.opts.epochs,
                           info.limit_train, (unsigned long long)info.opts.seed);
        }
        to = info.opts; /* the learning rate, tuned or not, comes with it */
        ts = info.state;
        res->resumed = 1;
        res->lr_tuned = file_exists(lrp) && o->lr <= 0;
        if ((st = trim_log(log, ts.epoch, err))) goto out;
        message(hooks, "%s: resuming at epoch %d, step %ld (lr %g)", res->name, ts.epoch + 1, ts.step,
                (double)to.lr);
    } else {
        float lr = o->lr > 0 ? o->lr : mf_default_lr(&cfg); /* the rule `train` uses */
        if (o->lr <= 0 && o->tune_lr) {
            char *text;
            mf_json root;
            if (!read_json_file(lrp, &text, &root) && isfinite(jnum(&root, "lr"))) {
                lr = (float)jnum(&root, "lr");
                mf_json_free(&root);
                free(text);
                message(hooks, "%s: learning rate %g, tuned before (%s)", res->name, (double)lr, lrp);
            } else {
                message(hooks, "%s: tuning the learning rate on a held-out part of the training split",
                        res->name);
                if ((st = tune_lr(o, &cfg, ds, hooks, stop, lrp, &lr, err))) return st;
                message(hooks, "%s: learning rate %g", res->name, (double)lr);
            }
            res->lr_tuned = 1;
        }
        to.lr = lr;
        if ((st = mf_model_create(&model, &cfg, err))) return st;
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

    run_ctx ctx = {.model = &model, .info = &info, .ckpt_path = ckpt, .log_path = log,
                   .user = hooks, .epochs = to.epochs};
    mf_train_hooks th = {&ctx, forward_batch, after_epoch};
    st = mf_train(&model, ds, &to, &ts, &th, stop, err);
    if (st == MF_ERR_INTERRUPTED) {
        /* Stopped at a step boundary: save exactly there, keep the message. */
        mf_error save_err;
        info.state = ts;
        if (mf_checkpoint_save(ckpt, &model, &info, 1, &save_err)) *err = save_err;
        goto out;
    }
    if (st) goto out;
    if ((st = summarize_log(log, res, err))) goto out;
    st = write_result(done, res, err);
out:
    mf_model_free(&model);
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

char *mf_experiment_markdown(const mf_experiment_result *rs, int n)
{
    text_buf b = {0};
    tb_printf(&b, "| dataset | encoders | heads | MLP | variant | parameters | %% of baseline | Q | lr | "
                  "epochs | train loss | train acc | test loss | test acc | best test acc (epoch) | "
                  "seconds | img/s |\n");
    tb_printf(&b, "|---|--:|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (int i = 0; i < n; i++) {
        const mf_experiment_result *r = &rs[i];
        char mlp[16];
        tb_printf(&b,
                  "| %s | %d | %d | %s | %s | %zu | %.1f%% | %.2f | %g%s | %d | %.4f | %.2f%% | %.4f | "
                  "%.2f%% | %.2f%% (%d) | %.0f | %.0f |\n",
                  mf_dataset_name(r->spec.dataset), r->spec.layers, r->spec.heads,
                  mlp_text(r->spec.mlp_ratio, mlp, sizeof mlp), r->spec.variant, r->params,
                  100.0 * (double)r->params / (double)r->baseline_params, r->q, (double)r->lr,
                  r->lr_tuned ? " (tuned)" : "", r->epochs, r->train_loss, 100.0 * r->train_acc,
                  r->test_loss, 100.0 * r->test_acc, 100.0 * r->best_test_acc, r->best_epoch,
                  r->seconds, r->images_per_second);
    }
    return b.data;
}

static char *results_csv(const mf_experiment_result *rs, int n)
{
    text_buf b = {0};
    tb_printf(&b, "run,dataset,encoders,heads,mlp,variant,qk,vo,parameters,pct_of_baseline,q,lr,"
                  "lr_tuned,epochs,train_loss,train_acc,test_loss,test_acc,best_test_acc,best_epoch,"
                  "seconds,images_per_second\n");
    for (int i = 0; i < n; i++) {
        const mf_experiment_result *r = &rs[i];
        tb_printf(&b, "%s,%s,%d,%d,%d,%s,%s,%s,%zu,%.2f,%.4f,%g,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f,%d,"
                      "%.1f,%.1f\n",
                  r->name, mf_dataset_name(r->spec.dataset), r->spec.layers, r->spec.heads,
                  r->spec.mlp_ratio, r->spec.variant, mf_qk_name(r->spec.qk), mf_vo_name(r->spec.vo),
                  r->params, 100.0 * (double)r->params / (double)r->baseline_params, r->q,
                  (double)r->lr, r->lr_tuned, r->epochs, r->train_loss, r->train_acc, r->test_loss,
                  r->test_acc, r->best_test_acc, r->best_epoch, r->seconds, r->images_per_second);
    }
    return b.data;
}

/* "H1 MLP4 unchanged", or with the depth when the grid mixes depths. */
static void short_label(const mf_experiment_result *r, int with_layers, char *out, size_t size)
{
    char mlp[16];
    if (r->spec.mlp_ratio) snprintf(mlp, sizeof mlp, "MLP%d", r->spec.mlp_ratio);
    else snprintf(mlp, sizeof mlp, "noMLP");
    if (with_layers)
        snprintf(out, size, "L%d H%d %s %s", r->spec.layers, r->spec.heads, mlp, r->spec.variant);
    else
        snprintf(out, size, "H%d %s %s", r->spec.heads, mlp, r->spec.variant);
}

static mf_status write_figures(const char *dir, const char *grid, const mf_experiment_result *rs,
                               int n, mf_error *err)
{
    int mixed_layers = 0;
    for (int i = 1; i < n; i++) mixed_layers |= rs[i].spec.layers != rs[0].spec.layers;
    mf_status st = MF_OK;
    char (*labels)[48] = calloc((size_t)n, sizeof *labels);
    const char **label_ptrs = calloc((size_t)n, sizeof *label_ptrs);
    mf_training_log *logs = calloc((size_t)n, sizeof *logs);
    double *params = calloc(2 * (size_t)n, sizeof *params);
    int *group = calloc((size_t)n, sizeof *group);
    if (!labels || !label_ptrs || !logs || !params || !group) {
        st = mf_fail(err, MF_ERR_NOMEM, "out of memory for the figures");
        goto out;
    }
    double *acc = params + n;
    for (int i = 0; i < n; i++) {
        short_label(&rs[i], mixed_layers, labels[i], sizeof labels[i]);
        params[i] = (double)rs[i].params;
        acc[i] = 100.0 * rs[i].test_acc;
    }
    /* One loss figure per dataset, as the paper has one for MNIST and one for CIFAR-10. */
    const char *group_names[3];
    int groups = 0;
    for (int k = 0; k < 3; k++) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            if ((int)rs[i].spec.dataset != k) continue;
            char path[1100];
            snprintf(path, sizeof path, "%s/%s/log.jsonl", dir, rs[i].name);
            if ((st = mf_training_log_read(path, &logs[m], err))) goto out;
            label_ptrs[m] = labels[i];
            group[i] = groups;
            m++;
        }
        if (!m) continue;
        group_names[groups] = mf_dataset_name((mf_dataset_kind)k);
        groups++;
        char path[1100], title[160];
        snprintf(path, sizeof path, "%s/loss-%s.png", dir, mf_dataset_name((mf_dataset_kind)k));
        snprintf(title, sizeof title, "%s: loss per epoch (%s)", mf_dataset_name((mf_dataset_kind)k), grid);
        st = mf_figure_curves(path, 1200, 800, title, logs, label_ptrs, m, 0, err);
        for (int i = 0; i < m; i++) mf_training_log_free(&logs[i]);
        if (st) goto out;
    }
    for (int i = 0; i < n; i++) label_ptrs[i] = labels[i];
    {
        char path[1100], title[160];
        snprintf(path, sizeof path, "%s/accuracy-params.png", dir);
        snprintf(title, sizeof title, "test accuracy against parameters (%s)", grid);
        st = mf_figure_accuracy_params(path, 1200, 800, title, params, acc, label_ptrs,
                                       group, group_names, groups, n, err);
    }
out:
    free(labels);
    free(label_ptrs);
    free(logs);
    free(params);
    free(group);
    return st;
}

mf_status mf_experiment_write_results(const char *dir, const char *grid,
                                      const mf_experiment_result *rs, int n, mf_error *err)
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
    tb_printf(&doc, "# %s\n\n%s\nLoss curves: loss-<dataset>.png; accuracy against parameters: "
                    "accuracy-params.png.\n", grid, md);
    if (!doc.data) {
        st = mf_fail(err, MF_ERR_NOMEM, "out of memory for the results");
        goto out;
    }
    snprintf(path, sizeof path, "%s/results.md", dir);
    st = write_atomic(path, doc.data, err);
    free(doc.data);
    if (st) goto out;
    snprintf(path, sizeof path, "%s/results.csv", dir);
    if ((st = write_atomic(path, csv, err))) goto out;
    st = write_figures(dir, grid, rs, n, err);
out:
    free(md);
    free(csv);
    return st;
}
