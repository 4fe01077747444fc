/* minformer training: the epoch loop, learning-rate schedule and evaluation.
 * Everything random is derived from (seed, epoch, step), so a run resumed
 * from a saved mf_train_state continues exactly as if never stopped. */
#ifndef MINFORMER_TRAIN_H
#define MINFORMER_TRAIN_H

#include <signal.h>
#include "data.h"
#include "model.h"

MF_BEGIN_API

/* The learning rate over a run (mf_lr_at). Cosine is 0, so zeroed options
 * and checkpoints written before the schedule was stored mean cosine. */
typedef enum {
    MF_SCHEDULE_COSINE = 0, /* linear warmup, then cosine decay to 0 */
    MF_SCHEDULE_CONSTANT,   /* the peak rate at every step (after a warmup only if one is given) */
    MF_SCHEDULE_COUNT
} mf_lr_schedule;

/* "cosine", "constant"; "?" for a value out of range. */
const char *mf_schedule_name(mf_lr_schedule s);
/* MF_OK and *out, or MF_ERR_CONFIG naming the choices. */
mf_status mf_schedule_parse(const char *name, mf_lr_schedule *out, mf_error *err);

typedef struct {
    int epochs;
    int batch;
    float lr;            /* peak learning rate */
    float warmup_epochs; /* linear warmup length; < 0: automatic (cosine: 10% of the run, at
                            most 1 epoch; constant: none) */
    mf_adamw adamw;
    uint64_t seed;       /* data order, augmentation and dropout; init uses it too */
    int augment;         /* 1: the dataset's augmentation during training */
    int eval_batch;
    mf_lr_schedule schedule;
    mf_precision precision; /* of the matrix products (mf_model_set_precision); fp32 = 0 */
} mf_train_opts;

void mf_train_opts_default(mf_train_opts *o);

/* A named training regime: values for batch, augmentation, weight decay and
 * schedule. default: mf_train_opts_default's (128, on, 0.05, cosine). paper:
 * the paper's as far as it states them (docs/model.md): batch 256, no
 * augmentation, weight decay 0 (Adam), constant schedule. */
typedef enum { MF_PROTOCOL_DEFAULT = 0, MF_PROTOCOL_PAPER, MF_PROTOCOL_COUNT } mf_protocol;

/* "default", "paper"; "?" for a value out of range. */
const char *mf_protocol_name(mf_protocol p);
/* MF_OK and *out, or MF_ERR_CONFIG naming the choices. */
mf_status mf_protocol_parse(const char *name, mf_protocol *out, mf_error *err);
/* Sets o's batch, augment, adamw.weight_decay and schedule to p's; the
 * other fields stay as they are. */
void mf_protocol_apply(mf_protocol p, mf_train_opts *o);
/* The default peak learning rate for a model: 2e-2 without value/output
 * matrices (--vo none), 4e-3 otherwise; measured on MNIST (docs/model.md). */
float mf_default_lr(const mf_config *cfg);

/* What a resumed run needs besides parameters and AdamW moments. */
typedef struct {
    int epoch;           /* epochs completed */
    long step;           /* optimizer steps taken (AdamW's t) */
    int batch_in_epoch;  /* batches of epoch `epoch` already done (mid-epoch stop) */
    double loss_sum;     /* running sums of the current epoch's batches */
    long correct, seen;
    double train_seconds;/* wall time spent in training steps this epoch */
    float test_loss, test_acc; /* of the last evaluation, -1 if none */
} mf_train_state;

void mf_train_state_init(mf_train_state *st);

typedef struct {
    int epoch;           /* 1-based number of the epoch just finished */
    float lr;            /* at the epoch's last step */
    float train_loss, train_acc, test_loss, test_acc;
    double seconds;      /* wall time of the epoch, evaluation included */
    double images_per_second; /* training images per second of training-step time */
    long images;         /* training images this epoch (since resume, if resumed mid-epoch) */
    double train_seconds;/* wall time in training steps this epoch, evaluation excluded */
} mf_epoch_stats;

typedef struct {
    void *ctx;
    /* After each batch: progress display. May be NULL. */
    void (*on_batch)(void *ctx, int epoch, int batch, int batches, float running_loss,
                     float running_acc, double images_per_second);
    /* After each epoch's evaluation: logging and checkpoints. A non-OK return
     * stops training with that error. May be NULL. */
    mf_status (*on_epoch)(void *ctx, const mf_epoch_stats *stats, const mf_train_state *st,
                          mf_error *err);
} mf_train_hooks;

/* Trains from state st (fresh or loaded) to opts->epochs. When *stop becomes
 * non-zero (a signal), finishes the current step and returns
 * MF_ERR_INTERRUPTED with st describing the exact point to resume from.
 * Returns MF_ERR_NUMERIC at the first non-finite loss or gradient, with
 * parameters left as they were before that step. */
mf_status mf_train(mf_model *m, const mf_dataset *ds, const mf_train_opts *opts, mf_train_state *st,
                   const mf_train_hooks *hooks, volatile sig_atomic_t *stop, mf_error *err);

/* Learning rate at optimizer step t (1-based) of a run with steps_per_epoch:
 * a linear warmup from 0 over the warmup steps, then for cosine
 * lr * (1 + cos(pi * progress)) / 2 down to 0 at the run's last step, for
 * constant lr at every step. */
float mf_lr_at(const mf_train_opts *opts, long t, long steps_per_epoch);
long mf_steps_per_epoch(int train_count, int batch);

typedef struct {
    float loss, acc;
    int count;
    int classes;         /* the model's class count: a confusion matrix is classes x classes */
} mf_eval_result;

/* Mean loss and accuracy of split (no augmentation). */
mf_status mf_evaluate(mf_model *m, const mf_split *split, const float *mean, const float *std,
                      int batch, mf_eval_result *out, mf_error *err);
/* The same, and the confusion matrix: confusion holds the caller's
 * cfg.classes * cfg.classes ints, [true][predicted], zeroed and filled here
 * (NULL: none, as mf_evaluate). The caller sizes it, so any class count
 * works and nothing is allocated or freed per evaluation. */
mf_status mf_evaluate_confusion(mf_model *m, const mf_split *split, const float *mean,
                                const float *std, int batch, mf_eval_result *out, int *confusion,
                                mf_error *err);

MF_END_API

#endif
