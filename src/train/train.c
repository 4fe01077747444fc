/* The training loop and evaluation. Data order comes from (seed, epoch),
 * augmentation from (seed, step) and dropout from (seed, step), so a run
 * stopped after any step and resumed from its mf_train_state repeats the
 * uninterrupted run bit for bit. Under mpirun every rank runs this loop on
 * the same batches and computes its part of each (model/split.h), with the
 * same parameters after every step as one process. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "minformer/train.h"
#include "base/profile.h"
#include "model/split.h"
#include "train/dist.h"

void mf_train_opts_default(mf_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 10;
    o->batch = 128;
    o->lr = 4e-3f; /* the CLI picks mf_default_lr(cfg) */
    o->warmup_epochs = -1.0f; /* auto: 10% of the run, at most one epoch */
    mf_adamw_default(&o->adamw);
    o->seed = 1;
    o->augment = 1;
    o->eval_batch = 500;
}

/* The index of name among names[0..n), or -1 (name may be NULL). */
static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

static const char *const protocol_names[MF_PROTOCOL_COUNT] = {"default", "paper"};
static const char *const schedule_names[MF_SCHEDULE_COUNT] = {"cosine", "constant"};

const char *mf_protocol_name(mf_protocol p)
{
    return (unsigned)p < MF_PROTOCOL_COUNT ? protocol_names[p] : "?";
}

const char *mf_schedule_name(mf_lr_schedule s)
{
    return (unsigned)s < MF_SCHEDULE_COUNT ? schedule_names[s] : "?";
}

mf_status mf_protocol_parse(const char *name, mf_protocol *out, mf_error *err)
{
    int i = name_index(protocol_names, MF_PROTOCOL_COUNT, name);
    if (i < 0)
        return mf_fail(err, MF_ERR_CONFIG, "unknown protocol '%s' (choose default, paper)",
                       name ? name : "");
    *out = (mf_protocol)i;
    return MF_OK;
}

mf_status mf_schedule_parse(const char *name, mf_lr_schedule *out, mf_error *err)
{
    int i = name_index(schedule_names, MF_SCHEDULE_COUNT, name);
    if (i < 0)
        return mf_fail(err, MF_ERR_CONFIG, "unknown schedule '%s' (choose cosine, constant)",
                       name ? name : "");
    *out = (mf_lr_schedule)i;
    return MF_OK;
}

void mf_protocol_apply(mf_protocol p, mf_train_opts *o)
{
    mf_train_opts d;
    mf_train_opts_default(&d);
    int paper = p == MF_PROTOCOL_PAPER;
    /* The paper states none of these (docs/model.md): batch 256 is its
     * authors' earlier paper's, and Adam with no weight decay, no
     * augmentation and one rate are what it names or leaves unmentioned. */
    o->batch = paper ? 256 : d.batch;
    o->augment = paper ? 0 : d.augment;
    o->adamw.weight_decay = paper ? 0.0f : d.adamw.weight_decay;
    o->schedule = paper ? MF_SCHEDULE_CONSTANT : d.schedule;
}

float mf_default_lr(const mf_config *cfg) { return cfg->vo == MF_VO_NONE ? 2e-2f : 4e-3f; }

void mf_train_state_init(mf_train_state *st)
{
    memset(st, 0, sizeof *st);
    st->test_loss = -1.0f;
    st->test_acc = -1.0f;
}

long mf_steps_per_epoch(int train_count, int batch)
{
    /* The last partial batch is dropped: every step sees `batch` images. */
    long s = train_count / batch;
    return s > 0 ? s : 1;
}

float mf_lr_at(const mf_train_opts *o, long t, long steps_per_epoch)
{
    double total = (double)o->epochs * (double)steps_per_epoch;
    double warm_epochs = o->warmup_epochs;
    /* Automatic warmup: cosine warms up for 10% of the run (at most one
     * epoch); constant has none: one rate from the first step, as a Keras
     * optimizer runs without a schedule (the paper used Keras and states no
     * schedule or warmup). An explicit warmup applies to both. */
    if (warm_epochs < 0)
        warm_epochs = o->schedule == MF_SCHEDULE_CONSTANT ? 0.0
                      : 0.1 * o->epochs < 1.0             ? 0.1 * o->epochs
                                                          : 1.0;
    double warm = warm_epochs * (double)steps_per_epoch;
    if (warm > total) warm = total;
    if (t <= warm && warm > 0) return (float)(o->lr * (double)t / warm);
    if (o->schedule == MF_SCHEDULE_CONSTANT) return o->lr;
    double progress = total > warm ? ((double)t - warm) / (total - warm) : 1.0;
    if (progress > 1.0) progress = 1.0;
    return (float)(o->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
}

/* Seeds of the streams; constants keep them apart. */
static uint64_t order_seed(uint64_t seed, int epoch) { return mf_hash2(mf_hash2(seed, 0x0d), (uint64_t)epoch); }
static uint64_t augment_seed(uint64_t seed, long step) { return mf_hash2(mf_hash2(seed, 0xa6), (uint64_t)step); }
static uint64_t dropout_seed(uint64_t seed, long step) { return mf_hash2(mf_hash2(seed, 0xd5), (uint64_t)step); }

static int all_finite(const float *x, size_t n)
{
    int ok = 1;
#pragma omp parallel for schedule(static) reduction(&& : ok)
    for (size_t i = 0; i < n; i++) ok = ok && isfinite(x[i]);
    return ok;
}

/* The gradients of the last rank, which ends the chunk-order sums, to all. */
static void broadcast_from_last(float *buf, size_t n) { mf_dist_broadcast(buf, n, mf_dist_size() - 1); }

/* Whether any rank was asked to stop (stop may be NULL): every rank decides
 * at the same step, so none waits for a rank that left. */
static int stop_requested(volatile sig_atomic_t *stop, int ranks)
{
    int mine = stop && *stop;
    return ranks > 1 ? mf_dist_any(mine) : mine;
}

int mf_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Whether split fits the model: the same image geometry (a batch is filled
 * with the split's geometry into buffers sized for the model's), the same
 * class count, and every label one of the model's classes (the loss reads
 * the logit of each label). what names the data in the message. */
static mf_status check_split(const mf_config *c, const mf_split *split, const char *what,
                             mf_error *err)
{
    if (split->channels != c->channels || split->size != c->image_size)
        return mf_fail(err, MF_ERR_CONFIG, "the model expects %dx%dx%d images; the %s has %dx%dx%d",
                       c->channels, c->image_size, c->image_size, what, split->channels,
                       split->size, split->size);
    if (split->classes > 0 && split->classes != c->classes)
        return mf_fail(err, MF_ERR_CONFIG, "the model has %d classes; the %s has %d", c->classes,
                       what, split->classes);
    for (int i = 0; i < split->count; i++)
        if (split->labels[i] >= c->classes)
            return mf_fail(err, MF_ERR_CONFIG, "the model has %d classes; the %s has label %d "
                           "(image %d)", c->classes, what, split->labels[i], i);
    return MF_OK;
}

mf_status mf_evaluate(mf_model *m, const mf_split *split, const float *mean, const float *std,
                      int batch, mf_eval_result *out, mf_error *err)
{
    return mf_evaluate_confusion(m, split, mean, std, batch, out, NULL, err);
}

mf_status mf_evaluate_confusion(mf_model *m, const mf_split *split, const float *mean,
                                const float *std, int batch, mf_eval_result *out, int *confusion,
                                mf_error *err)
{
    const mf_config *c = &m->cfg;
    memset(out, 0, sizeof *out);
    out->classes = c->classes;
    if (confusion) memset(confusion, 0, (size_t)c->classes * c->classes * sizeof *confusion);
    if (split->count == 0) return MF_OK;
    mf_status cst = check_split(c, split, "data", err);
    if (cst) return cst;
    if (batch > split->count) batch = split->count;
    /* A model that already holds activations (during training: for its
     * training batch) evaluates in batches of at most that size instead of
     * growing them: activations kept for backward are most of the memory
     * (CIFAR-10: about 2 MiB per image), and the predictions do not depend
     * on the batch. */
    if (m->acts && m->batch_capacity > 0 && batch > m->batch_capacity) batch = m->batch_capacity;
    mf_status st = mf_model_reserve(m, batch, err);
    if (st) return st;
    size_t img = (size_t)c->channels * c->image_size * c->image_size;
    float *x = mf_alloc((size_t)batch * img * sizeof(float));
    int *y = mf_alloc((size_t)batch * sizeof(int));
    int *idx = mf_alloc((size_t)batch * sizeof(int));
    if (!x || !y || !idx) {
        mf_free(x);
        mf_free(y);
        mf_free(idx);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for evaluation batches");
    }
    unsigned mode = mf_model_mode(m);
    mf_model_set_mode(m, MF_MODE_FORWARD_ONLY);
    double loss_sum = 0.0;
    long correct = 0;
    for (int start = 0; start < split->count; start += batch) {
        int B = split->count - start < batch ? split->count - start : batch;
        for (int i = 0; i < B; i++) idx[i] = start + i;
        mf_batch_fill(split, idx, B, mean, std, MF_AUGMENT_NONE, 0, x, y);
        loss_sum += (double)mf_model_forward(m, x, y, B) * B;
        const float *logits = mf_model_logits(m);
        for (int i = 0; i < B; i++) {
            int pred = mf_argmax(logits + (size_t)i * c->classes, c->classes);
            correct += pred == y[i];
            /* check_split keeps labels below classes, and so is pred. */
            if (confusion) confusion[(size_t)y[i] * c->classes + pred]++;
        }
    }
    mf_model_set_mode(m, mode);
    out->count = split->count;
    out->loss = (float)(loss_sum / split->count);
    out->acc = (float)((double)correct / split->count);
    mf_free(x);
    mf_free(y);
    mf_free(idx);
    return MF_OK;
}

mf_status mf_train(mf_model *m, const mf_dataset *ds, const mf_train_opts *o, mf_train_state *st,
                   const mf_train_hooks *hooks, volatile sig_atomic_t *stop, mf_error *err)
{
    const mf_config *c = &m->cfg;
    const mf_split *train = &ds->train;
    int B = o->batch;
    if (B <= 0) return mf_fail(err, MF_ERR_CONFIG, "batch size must be positive");
    mf_status pst = mf_model_set_precision(m, o->precision, err);
    if (pst != MF_OK) return pst;
    if (train->count < B)
        return mf_fail(err, MF_ERR_CONFIG, "the training split has %d images, fewer than one batch of %d",
                       train->count, B);
    char what[80];
    snprintf(what, sizeof what, "%s data", ds->name ? ds->name : "training");
    if (ds->classes > 0 && ds->classes != c->classes)
        return mf_fail(err, MF_ERR_CONFIG, "the model has %d classes; the %s has %d", c->classes,
                       what, ds->classes);
    mf_status cst = check_split(c, train, what, err);
    if (!cst && ds->test.count > 0) cst = check_split(c, &ds->test, what, err);
    if (cst) return cst;
    int ranks = mf_dist_size();
    int parts = model_split_max_parts(c, B, o->precision);
    if (ranks > parts)
        return mf_fail(err, MF_ERR_CONFIG, "a batch of %d images splits into %d chunks at %s: train it on "
                       "at most %d ranks, not %d", B, parts, mf_precision_name(o->precision), parts, ranks);
    unsigned mode = mf_model_mode(m); /* the caller's, restored on return */
    long spe = mf_steps_per_epoch(train->count, B);
    size_t img = (size_t)c->channels * c->image_size * c->image_size;
    float *x = NULL;
    int *y = NULL, *perm = NULL, *split_counts = NULL;
    mf_status status = mf_model_reserve(m, B, err);
    if (!status) {
        x = mf_alloc((size_t)B * img * sizeof(float));
        y = mf_alloc((size_t)B * sizeof(int));
        perm = mf_alloc((size_t)train->count * sizeof(int));
        split_counts = mf_alloc(2 * (size_t)ranks * sizeof(int));
        if (!x || !y || !perm || !split_counts)
            status = mf_fail(err, MF_ERR_NOMEM, "out of memory for training batches");
    }
    /* Every rank fills the whole batch (the same order and augmentation)
     * and computes its part of it; evaluation is split the same way. */
    mf_model_split split = {mf_dist_rank(), ranks, split_counts, split_counts + ranks,
                            mf_dist_allgather, mf_dist_recv_prev, mf_dist_send_next,
                            broadcast_from_last};
    if (ranks > 1) {
        /* Every rank is ready, or none trains. */
        if (mf_dist_any(status != MF_OK) && !status)
            status = mf_fail(err, MF_ERR_NOMEM, "another rank could not set up training (it says why)");
        if (!status) model_set_split(m, &split);
    }
    if (status) goto done;
    mf_augment aug = o->augment ? mf_dataset_augment(ds->kind) : MF_AUGMENT_NONE;

    while (st->epoch < o->epochs) {
        double epoch_start = mf_now_seconds();
        mf_shuffle(perm, train->count, order_seed(o->seed, st->epoch));
        float lr = 0.0f;
        for (int bi = st->batch_in_epoch; bi < spe; bi++) {
            double t0 = mf_now_seconds();
            long t = st->step + 1;
            lr = mf_lr_at(o, t, spe);
            double t_fill = mf_prof_begin();
            mf_batch_fill(train, perm + (size_t)bi * B, B, ds->mean, ds->std, aug,
                          augment_seed(o->seed, t), x, y);
            mf_prof_end(MF_PROF_BATCH_FILL, MF_PROF_OTHER, t_fill);
            mf_model_set_mode(m, MF_MODE_TRAIN); /* evaluation between steps sets its own */
            m->dropout_seed = dropout_seed(o->seed, t);
            mf_model_zero_grad(m);
            float loss = mf_model_forward(m, x, y, B);
            if (!isfinite(loss)) {
                status = mf_fail(err, MF_ERR_NUMERIC,
                                 "non-finite loss (%s) at epoch %d, step %ld; parameters are those "
                                 "before this step",
                                 isnan(loss) ? "NaN" : "infinite", st->epoch + 1, t);
                goto done;
            }
            mf_model_backward(m);
            double t_check = mf_prof_begin();
            int finite = all_finite(m->grads, m->num_params);
            mf_prof_end(MF_PROF_FINITE_CHECK, MF_PROF_OTHER, t_check);
            if (!finite) {
                status = mf_fail(err, MF_ERR_NUMERIC,
                                 "non-finite gradient at epoch %d, step %ld; parameters are those "
                                 "before this step",
                                 st->epoch + 1, t);
                goto done;
            }
            mf_adamw_step(m, &o->adamw, lr, t);
            const float *logits = mf_model_logits(m);
            long correct = 0;
            for (int i = 0; i < B; i++) correct += mf_argmax(logits + (size_t)i * c->classes, c->classes) == y[i];
            st->step = t;
            st->batch_in_epoch = bi + 1;
            st->loss_sum += (double)loss * B;
            st->correct += correct;
            st->seen += B;
            st->train_seconds += mf_now_seconds() - t0;
            if (hooks && hooks->on_batch)
                hooks->on_batch(hooks->ctx, st->epoch + 1, bi + 1, (int)spe,
                                (float)(st->loss_sum / st->seen), (float)st->correct / st->seen,
                                st->seen / (st->train_seconds > 0 ? st->train_seconds : 1e-9));
            if (bi + 1 < spe && stop_requested(stop, ranks)) {
                status = mf_fail(err, MF_ERR_INTERRUPTED, "interrupted at epoch %d, step %ld",
                                 st->epoch + 1, st->step);
                goto done;
            }
        }
        mf_eval_result ev;
        status = mf_evaluate(m, &ds->test, ds->mean, ds->std, o->eval_batch, &ev, err);
        if (status) goto done;
        mf_epoch_stats es;
        es.epoch = st->epoch + 1;
        es.lr = lr;
        es.train_loss = (float)(st->loss_sum / st->seen);
        es.train_acc = (float)st->correct / st->seen;
        es.test_loss = ev.loss;
        es.test_acc = ev.acc;
        es.seconds = mf_now_seconds() - epoch_start;
        es.images_per_second = st->seen / (st->train_seconds > 0 ? st->train_seconds : 1e-9);
        es.images = st->seen;
        es.train_seconds = st->train_seconds;
        st->epoch++;
        st->batch_in_epoch = 0;
        st->loss_sum = 0.0;
        st->correct = st->seen = 0;
        st->train_seconds = 0.0;
        st->test_loss = ev.loss;
        st->test_acc = ev.acc;
        if (hooks && hooks->on_epoch) status = hooks->on_epoch(hooks->ctx, &es, st, err);
        /* rank 0 alone writes (the CLI's hook); a failure there stops all */
        if (ranks > 1 && mf_dist_any(status != MF_OK) && !status)
            status = mf_fail(err, MF_ERR_IO, "rank 0 stopped the run after epoch %d (it says why)",
                             st->epoch);
        if (status) goto done;
        if (st->epoch < o->epochs && stop_requested(stop, ranks)) {
            status = mf_fail(err, MF_ERR_INTERRUPTED, "interrupted after epoch %d", st->epoch);
            goto done;
        }
    }
done:
    model_set_split(m, NULL); /* split lives on this stack */
    mf_model_set_mode(m, mode);
    mf_free(x);
    mf_free(y);
    mf_free(perm);
    mf_free(split_counts);
    return status;
}
