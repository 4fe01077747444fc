/* A run's identity, its log line, the resume path and the per-run lock. */
#define _DEFAULT_SOURCE /* flock */
#include "minformer/run.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "train/run_json.h"

/* ---- identity --------------------------------------------------------------- */

mf_status mf_run_identity_set(mf_run_identity *id, const char *name, const char *value,
                              mf_error *err)
{
    if (strlen(name) >= MF_RUN_NAME_MAX || strlen(value) >= MF_RUN_VALUE_MAX)
        return mf_fail(err, MF_ERR_CONFIG, "run setting '%.40s' or its value is too long", name);
    for (int i = 0; i < id->count; i++)
        if (!strcmp(id->items[i].name, name)) {
            snprintf(id->items[i].value, MF_RUN_VALUE_MAX, "%s", value);
            return MF_OK;
        }
    if (id->count >= MF_RUN_MAX_SETTINGS)
        return mf_fail(err, MF_ERR_CONFIG, "more than %d run settings", MF_RUN_MAX_SETTINGS);
    mf_run_setting *s = &id->items[id->count++];
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->value, sizeof s->value, "%s", value);
    return MF_OK;
}

const char *mf_run_identity_get(const mf_run_identity *id, const char *name)
{
    for (int i = 0; i < id->count; i++)
        if (!strcmp(id->items[i].name, name)) return id->items[i].value;
    return NULL;
}

static void set_fmt(mf_run_identity *id, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_fmt(mf_run_identity *id, const char *name, const char *fmt, ...)
{
    char value[MF_RUN_VALUE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    mf_run_identity_set(id, name, value, NULL); /* the names below are short and few */
}

void mf_run_format_float(float x, char *out, size_t size)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(out, size, "%.*g", digits, (double)x);
        if (strtof(out, NULL) == x || x != x) break;
    }
}

static void set_float(mf_run_identity *id, const char *name, float x)
{
    char v[MF_RUN_VALUE_MAX];
    mf_run_format_float(x, v, sizeof v);
    mf_run_identity_set(id, name, v, NULL);
}

void mf_run_identity_make(mf_run_identity *id, mf_dataset_kind dataset, const mf_config *cfg,
                          const mf_train_opts *o, int limit_train, int limit_test,
                          uint64_t fingerprint)
{
    memset(id, 0, sizeof *id);
    set_fmt(id, "dataset", "%s", mf_dataset_name(dataset));
    set_fmt(id, "image_size", "%d", cfg->image_size);
    set_fmt(id, "channels", "%d", cfg->channels);
    set_fmt(id, "classes", "%d", cfg->classes);
    set_fmt(id, "patch", "%d", cfg->patch);
    set_fmt(id, "dim", "%d", cfg->dim);
    set_fmt(id, "layers", "%d", cfg->layers);
    set_fmt(id, "heads", "%d", cfg->heads);
    set_fmt(id, "mlp", "%d", cfg->mlp_ratio);
    set_fmt(id, "qk", "%s", mf_qk_name(cfg->qk));
    set_fmt(id, "vo", "%s", mf_vo_name(cfg->vo));
    set_fmt(id, "pool", "%s", mf_pool_name(cfg->pool));
    set_float(id, "dropout", cfg->dropout);
    set_fmt(id, "epochs", "%d", o->epochs);
    set_fmt(id, "batch", "%d", o->batch);
    set_float(id, "lr", o->lr);
    set_float(id, "warmup", o->warmup_epochs);
    set_fmt(id, "schedule", "%s", mf_schedule_name(o->schedule));
    set_fmt(id, "precision", "%s", mf_precision_name(o->precision));
    set_float(id, "wd", o->adamw.weight_decay);
    set_float(id, "beta1", o->adamw.beta1);
    set_float(id, "beta2", o->adamw.beta2);
    set_float(id, "eps", o->adamw.eps);
    set_fmt(id, "seed", "%llu", (unsigned long long)o->seed);
    set_fmt(id, "augment", "%s", o->augment ? "on" : "off");
    set_fmt(id, "eval_batch", "%d", o->eval_batch);
    set_fmt(id, "limit_train", "%d", limit_train);
    set_fmt(id, "limit_test", "%d", limit_test);
    if (fingerprint) set_fmt(id, "data", "%016llx", (unsigned long long)fingerprint);
    else set_fmt(id, "data", "unknown");
}

void mf_run_identity_of_checkpoint(mf_run_identity *id, const mf_config *cfg,
                                   const mf_checkpoint_info *info)
{
    mf_run_identity_make(id, info->dataset, cfg, &info->opts, info->limit_train, info->limit_test,
                         info->data_fingerprint);
}

/* Appends "name: stored A, requested B" to out (with "; " between items),
 * "..." once it is full. */
static void note_difference(char *out, size_t size, size_t *len, int *n, const char *name,
                            const char *stored, const char *requested)
{
    if (!out || !size) return;
    char item[200];
    snprintf(item, sizeof item, "%s%s: stored %s, requested %s", *n ? "; " : "", name,
             stored ? stored : "absent", requested ? requested : "absent");
    size_t il = strlen(item);
    if (*len + il + 4 < size) {
        memcpy(out + *len, item, il + 1);
        *len += il;
    } else if (*len + 4 < size && (*len < 3 || strcmp(out + *len - 3, "..."))) {
        memcpy(out + *len, "...", 4);
        *len += 3;
    }
    (*n)++;
}

int mf_run_identity_diff(const mf_run_identity *stored, const mf_run_identity *requested,
                         char *out, size_t size)
{
    int n = 0;
    size_t len = 0;
    if (out && size) out[0] = '\0';
    for (int i = 0; i < requested->count; i++) {
        const mf_run_setting *r = &requested->items[i];
        const char *s = mf_run_identity_get(stored, r->name);
        if (!s || strcmp(s, r->value)) note_difference(out, size, &len, &n, r->name, s, r->value);
    }
    for (int i = 0; i < stored->count; i++)
        if (!mf_run_identity_get(requested, stored->items[i].name))
            note_difference(out, size, &len, &n, stored->items[i].name, stored->items[i].value, NULL);
    return n;
}

mf_status mf_run_identity_check(const char *where, const mf_run_identity *stored,
                                const mf_run_identity *requested, const char *hint,
                                mf_error *err)
{
    char diff[400];
    if (!mf_run_identity_diff(stored, requested, diff, sizeof diff)) return MF_OK;
    return mf_fail(err, MF_ERR_CONFIG, "%s: made with other settings (%s)%s%s", where, diff,
                   hint ? "; " : "", hint ? hint : "");
}

char *mf_run_identity_to_json(const mf_run_identity *id)
{
    mf_json_writer w = {0};
    mf_json_raw(&w, "{");
    for (int i = 0; i < id->count; i++) {
        if (i) mf_json_raw(&w, ",");
        mf_json_string(&w, id->items[i].name);
        mf_json_raw(&w, ":");
        mf_json_string(&w, id->items[i].value);
    }
    mf_json_raw(&w, "}");
    if (w.failed) {
        mf_json_writer_free(&w);
        return NULL;
    }
    return w.data;
}

/* Settings that mf_run_identity_make gained after run.json files were
 * written, with the value every run made before had: a stored run identity
 * (one that has "epochs") without such a setting reads as that value, so
 * those runs still skip and resume, and a request for another value is
 * refused naming it. */
static const mf_run_setting added_settings[] = {
    {"schedule", "cosine"},
    {"precision", "fp32"},
};

static void add_missing_settings(mf_run_identity *id)
{
    if (!mf_run_identity_get(id, "epochs")) return;
    for (size_t i = 0; i < sizeof added_settings / sizeof added_settings[0]; i++)
        if (!mf_run_identity_get(id, added_settings[i].name))
            mf_run_identity_set(id, added_settings[i].name, added_settings[i].value, NULL);
}

mf_status mf_run_identity_from_object(const mf_json *obj, mf_run_identity *id, const char *what,
                                      mf_error *err)
{
    memset(id, 0, sizeof *id);
    if (!obj || obj->type != MF_JSON_OBJECT)
        return mf_fail(err, MF_ERR_FORMAT, "%s: the run's settings are not a JSON object", what);
    if (obj->count > MF_RUN_MAX_SETTINGS)
        return mf_fail(err, MF_ERR_FORMAT, "%s: more than %d run settings", what,
                       MF_RUN_MAX_SETTINGS);
    for (int i = 0; i < obj->count; i++) {
        const mf_json *v = &obj->u.items[i];
        if (v->type != MF_JSON_STRING)
            return mf_fail(err, MF_ERR_FORMAT, "%s: run setting '%.40s' is not a string", what, v->key);
        if (!v->key[0] || strlen(v->key) >= MF_RUN_NAME_MAX || (size_t)v->count >= MF_RUN_VALUE_MAX ||
            strlen(v->u.string) != (size_t)v->count)
            return mf_fail(err, MF_ERR_FORMAT, "%s: run setting '%.40s' has an empty or too long "
                           "name or value", what, v->key);
        if (mf_run_identity_set(id, v->key, v->u.string, NULL))
            return mf_fail(err, MF_ERR_FORMAT, "%s: run setting '%.40s' is invalid", what, v->key);
    }
    /* mf_json_parse already refuses duplicate names, so the count is exact. */
    add_missing_settings(id);
    return MF_OK;
}

mf_status mf_run_identity_parse(const char *text, size_t len, mf_run_identity *id,
                                const char *what, mf_error *err)
{
    memset(id, 0, sizeof *id);
    char *buf = malloc(len + 1);
    if (!buf) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", what);
    memcpy(buf, text, len);
    buf[len] = '\0';
    mf_json root;
    char msg[128];
    mf_status st;
    if (mf_json_parse(buf, len, &root, msg, sizeof msg)) {
        st = mf_fail(err, MF_ERR_FORMAT, "%s: not JSON (%s)", what, msg);
    } else {
        st = mf_run_identity_from_object(&root, id, what, err);
        mf_json_free(&root);
    }
    free(buf);
    if (st) memset(id, 0, sizeof *id);
    return st;
}

/* ---- the run log ------------------------------------------------------------- */

/* A JSON number, or null when x is not finite. */
static const char *num(char *buf, size_t size, const char *fmt, double x)
{
    if (!isfinite(x)) return "null";
    snprintf(buf, size, fmt, x);
    return buf;
}

int mf_run_log_line(const mf_epoch_stats *s, char *out, size_t size)
{
    char b[8][48];
    int n = snprintf(out, size,
                     "{\"epoch\":%d,\"lr\":%s,\"train_loss\":%s,\"train_acc\":%s,\"test_loss\":%s,"
                     "\"test_acc\":%s,\"seconds\":%s,\"images_per_second\":%s,\"images\":%ld,"
                     "\"train_seconds\":%s}\n",
                     s->epoch, num(b[0], 48, "%.6g", s->lr), num(b[1], 48, "%.6f", s->train_loss),
                     num(b[2], 48, "%.6f", s->train_acc), num(b[3], 48, "%.6f", s->test_loss),
                     num(b[4], 48, "%.6f", s->test_acc), num(b[5], 48, "%.3f", s->seconds),
                     num(b[6], 48, "%.1f", s->images_per_second), s->images,
                     num(b[7], 48, "%.3f", s->train_seconds));
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/* ---- resuming ------------------------------------------------------------------ */

mf_status mf_run_resume_load(const char *path, const mf_run_identity *requested, const char *hint,
                             mf_model *m, mf_checkpoint_info *info, mf_error *err)
{
    mf_status st = mf_checkpoint_load(path, m, info, err);
    if (st) return st;
    if (!info->has_optimizer || !info->has_train_state) {
        st = mf_fail(err, MF_ERR_FORMAT,
                     "%s: holds no optimizer state or training state to resume from", path);
    } else if (requested) {
        mf_run_identity stored;
        mf_run_identity_of_checkpoint(&stored, &m->cfg, info);
        st = mf_run_identity_check(path, &stored, requested, hint, err);
    }
    if (st) {
        mf_model_free(m);
        memset(m, 0, sizeof *m);
    }
    return st;
}

/* ---- locks ------------------------------------------------------------------------ */

int mf_run_lock_try(const char *path, mf_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
        mf_fail(err, MF_ERR_IO, "%s: cannot open the lock file: %s", path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB)) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) return -2;
        mf_fail(err, MF_ERR_IO, "%s: cannot lock: %s", path, strerror(e));
        return -1;
    }
    return fd;
}

void mf_run_lock_release(int fd)
{
    if (fd >= 0) close(fd); /* closing the only descriptor drops the flock */
}
