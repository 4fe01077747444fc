/* The learning-rate schedule: mf_lr_at for cosine (the same bits as the
 * formula it has always had) and constant (the peak rate at every step, a
 * warmup only when one is given); the schedules' and protocols' names and the
 * protocols' values; the schedule in a run's identity (a stored identity
 * without it reads as cosine) and in checkpoint metadata (saved and loaded, a
 * file without the key loads as cosine, an unknown value is refused). */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "minformer.h"
#include "minformer/checkpoint.h"
#include "minformer/run.h"

static char tmpdir[64];

/* mf_lr_at's cosine branch as it was before the schedule became an option,
 * copied verbatim: the default path must keep these bits. */
static float cosine_reference(const mf_train_opts *o, long t, long steps_per_epoch)
{
    double total = (double)o->epochs * (double)steps_per_epoch;
    double warm_epochs = o->warmup_epochs;
    if (warm_epochs < 0) warm_epochs = 0.1 * o->epochs < 1.0 ? 0.1 * o->epochs : 1.0;
    double warm = warm_epochs * (double)steps_per_epoch;
    if (warm > total) warm = total;
    if (t <= warm && warm > 0) return (float)(o->lr * (double)t / warm);
    double progress = total > warm ? ((double)t - warm) / (total - warm) : 1.0;
    if (progress > 1.0) progress = 1.0;
    return (float)(o->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
}

static void test_default_is_cosine(void)
{
    mf_train_opts o;
    mf_train_opts_default(&o);
    CHECK(o.schedule == MF_SCHEDULE_COSINE, "default schedule %d", (int)o.schedule);
    mf_train_opts z;
    memset(&z, 0, sizeof z);
    CHECK(z.schedule == MF_SCHEDULE_COSINE, "zeroed options are not cosine");
}

static void test_cosine_keeps_its_bits(void)
{
    const int epochs[] = {1, 3, 10, 500};
    const float warmups[] = {-1.0f, 0.0f, 0.5f, 2.0f};
    const long spe[] = {1, 7, 390};
    long compared = 0, mismatches = 0;
    for (size_t e = 0; e < sizeof epochs / sizeof epochs[0]; e++)
        for (size_t w = 0; w < sizeof warmups / sizeof warmups[0]; w++)
            for (size_t s = 0; s < sizeof spe / sizeof spe[0]; s++) {
                mf_train_opts o;
                mf_train_opts_default(&o);
                o.epochs = epochs[e];
                o.warmup_epochs = warmups[w];
                o.lr = 4e-3f;
                long total = (long)o.epochs * spe[s];
                for (long t = 1; t <= total + 2; t += 1 + total / 2000) {
                    float a = mf_lr_at(&o, t, spe[s]), b = cosine_reference(&o, t, spe[s]);
                    compared++;
                    if (memcmp(&a, &b, sizeof a)) {
                        if (!mismatches)
                            CHECK(0, "epochs %d warmup %g spe %ld step %ld: %.9g, formerly %.9g",
                                  o.epochs, (double)o.warmup_epochs, spe[s], t, (double)a, (double)b);
                        mismatches++;
                    }
                }
            }
    CHECK(mismatches == 0, "%ld of %ld cosine rates changed", mismatches, compared);
    CHECK(compared > 1000, "only %ld steps compared", compared);
    /* The shape itself: warmup to the peak, then down to 0 at the last step. */
    mf_train_opts o;
    mf_train_opts_default(&o);
    o.epochs = 10;
    o.lr = 0.01f;
    CHECK(mf_lr_at(&o, 1, 100) < 0.01f * 0.02f, "step 1: %g", (double)mf_lr_at(&o, 1, 100));
    CHECK(mf_lr_at(&o, 100, 100) == 0.01f, "end of the warmup: %g", (double)mf_lr_at(&o, 100, 100));
    CHECK(mf_lr_at(&o, 1000, 100) == 0.0f, "last step: %g", (double)mf_lr_at(&o, 1000, 100));
}

static void test_constant_is_the_peak_rate(void)
{
    const int epochs[] = {1, 3, 500};
    const long spe[] = {1, 7, 196};
    for (size_t e = 0; e < sizeof epochs / sizeof epochs[0]; e++)
        for (size_t s = 0; s < sizeof spe / sizeof spe[0]; s++) {
            mf_train_opts o;
            mf_train_opts_default(&o);
            o.schedule = MF_SCHEDULE_CONSTANT;
            o.epochs = epochs[e];
            o.lr = 2e-2f;
            long total = (long)o.epochs * spe[s], bad = 0, first_bad = 0;
            for (long t = 1; t <= total + 3; t++)
                if (mf_lr_at(&o, t, spe[s]) != o.lr && !bad++) first_bad = t;
            CHECK(bad == 0, "epochs %d spe %ld: %ld steps not at the peak rate, the first %ld (%g)",
                  o.epochs, spe[s], bad, first_bad, (double)mf_lr_at(&o, first_bad, spe[s]));
            /* An explicit warmup of 0 is the same. */
            o.warmup_epochs = 0.0f;
            CHECK(mf_lr_at(&o, 1, spe[s]) == o.lr && mf_lr_at(&o, total, spe[s]) == o.lr,
                  "warmup 0: %g, %g", (double)mf_lr_at(&o, 1, spe[s]),
                  (double)mf_lr_at(&o, total, spe[s]));
        }
    /* An explicit warmup ramps linearly as for cosine, then holds. */
    mf_train_opts o;
    mf_train_opts_default(&o);
    o.schedule = MF_SCHEDULE_CONSTANT;
    o.epochs = 4;
    o.lr = 1e-3f;
    o.warmup_epochs = 1.0f;
    mf_train_opts c = o;
    c.schedule = MF_SCHEDULE_COSINE;
    for (long t = 1; t <= 10; t++)
        CHECK(mf_lr_at(&o, t, 10) == mf_lr_at(&c, t, 10), "warmup step %ld: %g, cosine's %g", t,
              (double)mf_lr_at(&o, t, 10), (double)mf_lr_at(&c, t, 10));
    CHECK(mf_lr_at(&o, 5, 10) == 5e-4f, "halfway through the warmup: %g", (double)mf_lr_at(&o, 5, 10));
    for (long t = 10; t <= 40; t++)
        CHECK(mf_lr_at(&o, t, 10) == 1e-3f, "after the warmup, step %ld: %g", t,
              (double)mf_lr_at(&o, t, 10));
    CHECK(mf_lr_at(&c, 40, 10) == 0.0f, "cosine ends at 0, not at %g", (double)mf_lr_at(&c, 40, 10));
}

static void test_names(void)
{
    mf_lr_schedule s;
    mf_error err;
    CHECK(!strcmp(mf_schedule_name(MF_SCHEDULE_COSINE), "cosine"), "%s",
          mf_schedule_name(MF_SCHEDULE_COSINE));
    CHECK(!strcmp(mf_schedule_name(MF_SCHEDULE_CONSTANT), "constant"), "%s",
          mf_schedule_name(MF_SCHEDULE_CONSTANT));
    CHECK(!strcmp(mf_schedule_name((mf_lr_schedule)7), "?"), "out of range: %s",
          mf_schedule_name((mf_lr_schedule)7));
    for (int i = 0; i < MF_SCHEDULE_COUNT; i++)
        CHECK(mf_schedule_parse(mf_schedule_name((mf_lr_schedule)i), &s, &err) == MF_OK &&
                  s == (mf_lr_schedule)i, "round trip of %d", i);
    const char *bad[] = {"", "Cosine", "linear", "constant ", NULL};
    for (int i = 0; i < 5; i++)
        CHECK(mf_schedule_parse(bad[i], &s, &err) == MF_ERR_CONFIG &&
                  strstr(err.message, "cosine, constant"),
              "accepted '%s' or no choices named: %s", bad[i] ? bad[i] : "(null)", err.message);
}

static void test_protocols(void)
{
    mf_train_opts d, o;
    mf_train_opts_default(&d);
    o = d;
    o.lr = 0.125f;
    o.epochs = 500;
    o.warmup_epochs = 2.0f;
    o.seed = 9;
    mf_protocol_apply(MF_PROTOCOL_PAPER, &o);
    CHECK(o.batch == 256 && o.augment == 0 && o.adamw.weight_decay == 0.0f &&
              o.schedule == MF_SCHEDULE_CONSTANT,
          "paper: batch %d, augment %d, wd %g, schedule %s", o.batch, o.augment,
          (double)o.adamw.weight_decay, mf_schedule_name(o.schedule));
    CHECK(o.lr == 0.125f && o.epochs == 500 && o.warmup_epochs == 2.0f && o.seed == 9 &&
              o.adamw.beta1 == d.adamw.beta1 && o.adamw.beta2 == d.adamw.beta2 &&
              o.adamw.eps == d.adamw.eps && o.eval_batch == d.eval_batch,
          "paper changed another setting");
    mf_protocol_apply(MF_PROTOCOL_DEFAULT, &o);
    CHECK(o.batch == d.batch && o.augment == d.augment &&
              o.adamw.weight_decay == d.adamw.weight_decay && o.schedule == d.schedule,
          "default: batch %d, augment %d, wd %g, schedule %s", o.batch, o.augment,
          (double)o.adamw.weight_decay, mf_schedule_name(o.schedule));
    mf_protocol p;
    mf_error err;
    for (int i = 0; i < MF_PROTOCOL_COUNT; i++)
        CHECK(mf_protocol_parse(mf_protocol_name((mf_protocol)i), &p, &err) == MF_OK &&
                  p == (mf_protocol)i, "round trip of %d", i);
    CHECK(!strcmp(mf_protocol_name(MF_PROTOCOL_PAPER), "paper") &&
              !strcmp(mf_protocol_name((mf_protocol)5), "?"), "names");
    CHECK(mf_protocol_parse("Paper", &p, &err) == MF_ERR_CONFIG &&
              strstr(err.message, "choose default, paper"), "%s", err.message);
}

static void test_identity_names_the_schedule(void)
{
    mf_config cfg;
    mf_config_default(&cfg, 28, 1, 10);
    mf_train_opts o;
    mf_train_opts_default(&o);
    mf_run_identity cos, con;
    mf_run_identity_make(&cos, MF_MNIST, &cfg, &o, 0, 0, 0x99);
    o.schedule = MF_SCHEDULE_CONSTANT;
    mf_run_identity_make(&con, MF_MNIST, &cfg, &o, 0, 0, 0x99);
    const char *v = mf_run_identity_get(&cos, "schedule");
    CHECK(v && !strcmp(v, "cosine"), "cosine identity: %s", v ? v : "absent");
    char diff[400];
    CHECK(mf_run_identity_diff(&cos, &con, diff, sizeof diff) == 1 &&
              strstr(diff, "schedule: stored cosine, requested constant"),
          "%s", diff);
    /* A run.json written before the schedule existed has no such setting:
     * it reads as cosine, so a cosine rerun matches and a constant one is
     * refused naming the schedule. */
    char *json = mf_run_identity_to_json(&cos);
    CHECK(json != NULL, "to_json");
    if (!json) return;
    const char *member = ",\"schedule\":\"cosine\"";
    char *key = strstr(json, member);
    CHECK(key != NULL, "no schedule in %s", json);
    if (key) memmove(key, key + strlen(member), strlen(key + strlen(member)) + 1);
    CHECK(!strstr(json, "schedule"), "not removed: %s", json);
    mf_run_identity old;
    mf_error err;
    CHECK(mf_run_identity_parse(json, strlen(json), &old, "old run.json", &err) == MF_OK, "%s",
          err.message);
    v = mf_run_identity_get(&old, "schedule");
    CHECK(v && !strcmp(v, "cosine"), "an old identity reads as schedule %s", v ? v : "absent");
    CHECK(mf_run_identity_diff(&old, &cos, diff, sizeof diff) == 0, "%s", diff);
    CHECK(mf_run_identity_check("old run.json", &old, &con, NULL, &err) == MF_ERR_CONFIG &&
              strstr(err.message, "schedule: stored cosine, requested constant"),
          "%s", err.message);
    free(json);
    /* Only run identities gain it: another object of strings stays as it is. */
    const char *other = "{\"a\":\"1\"}";
    CHECK(mf_run_identity_parse(other, strlen(other), &old, "other", &err) == MF_OK &&
              old.count == 1 && !mf_run_identity_get(&old, "schedule"),
          "%d settings", old.count);
}

/* ---- checkpoints ------------------------------------------------------------ */

/* Replaces find in the file's header by with, padded with spaces to the same
 * length (JSON allows white space between members), so the header length and
 * the data offsets stay as they are. 1 when found. */
static int edit_header(const char *path, const char *find, const char *with)
{
    char *buf;
    size_t len;
    mf_error err;
    if (mf_file_read(path, 1u << 30, &buf, &len, &err) || len < 8) return 0;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)(unsigned char)buf[i] << (8 * i);
    size_t fl = strlen(find), wl = strlen(with);
    char *hit = n <= len - 8 ? memmem(buf + 8, n, find, fl) : NULL;
    int ok = hit && wl <= fl;
    if (ok) {
        memcpy(hit, with, wl);
        memset(hit + wl, ' ', fl - wl);
        ok = mf_file_replace(path, buf, len, &err) == MF_OK;
    }
    free(buf);
    return ok;
}

static void small_model(mf_model *m)
{
    mf_config c;
    mf_config_default(&c, 28, 1, 10);
    c.dim = 8;
    c.layers = 1;
    c.mlp_ratio = 0;
    mf_error err;
    CHECK(mf_model_create(m, &c, &err) == MF_OK, "%s", err.message);
    mf_model_init_weights(m, 3);
}

static void test_checkpoint_keeps_the_schedule(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/constant.safetensors", tmpdir);
    mf_model m, back;
    small_model(&m);
    mf_checkpoint_info info, got;
    mf_checkpoint_info_init(&info);
    info.opts.schedule = MF_SCHEDULE_CONSTANT;
    info.state.epoch = 1;
    info.state.step = 5;
    mf_error err;
    CHECK(mf_checkpoint_save(path, &m, &info, 1, &err) == MF_OK, "%s", err.message);
    mf_checkpoint_header h;
    CHECK(mf_checkpoint_read_header(path, &h, &err) == MF_OK, "%s", err.message);
    const char *v = mf_checkpoint_metadata(&h, "schedule");
    CHECK(v && !strcmp(v, "constant"), "metadata schedule %s", v ? v : "absent");
    mf_checkpoint_header_free(&h);
    CHECK(mf_checkpoint_load(path, &back, &got, &err) == MF_OK, "%s", err.message);
    CHECK(got.opts.schedule == MF_SCHEDULE_CONSTANT, "loaded schedule %d", (int)got.opts.schedule);
    mf_model_free(&back);

    /* An unknown schedule is refused, naming the key and the choices. */
    CHECK(edit_header(path, "\"schedule\":\"constant\"", "\"schedule\":\"linear\""), "edit");
    CHECK(mf_checkpoint_load(path, &back, &got, &err) == MF_ERR_FORMAT &&
              strstr(err.message, "metadata 'schedule' = 'linear'") &&
              strstr(err.message, "cosine or constant"),
          "%s", err.message);

    /* A file written before the key existed loads as cosine; a constant
     * run's file had it. */
    info.opts.schedule = MF_SCHEDULE_CONSTANT;
    CHECK(mf_checkpoint_save(path, &m, &info, 1, &err) == MF_OK, "%s", err.message);
    CHECK(edit_header(path, "\"schedule\":\"constant\",", ""), "strip");
    CHECK(mf_checkpoint_read_header(path, &h, &err) == MF_OK, "%s", err.message);
    CHECK(!mf_checkpoint_metadata(&h, "schedule"), "the key is still there");
    mf_checkpoint_header_free(&h);
    CHECK(mf_checkpoint_load(path, &back, &got, &err) == MF_OK, "%s", err.message);
    CHECK(got.has_train_state && got.opts.schedule == MF_SCHEDULE_COSINE,
          "a file without the key: train state %d, schedule %d", got.has_train_state,
          (int)got.opts.schedule);
    CHECK(got.state.step == 5, "step %ld", got.state.step);
    mf_model_free(&back);
    mf_model_free(&m);
    unlink(path);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mf_test_schedule_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_default_is_cosine);
    RUN(test_cosine_keeps_its_bits);
    RUN(test_constant_is_the_peak_rate);
    RUN(test_names);
    RUN(test_protocols);
    RUN(test_identity_names_the_schedule);
    RUN(test_checkpoint_keeps_the_schedule);
    rmdir(tmpdir);
    return check_report();
}
