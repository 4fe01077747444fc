/* minformer runs: what identifies a training run, the one writer of its
 * JSON-lines log, the one path that resumes it from a checkpoint, and the
 * lock that gives a run one owner.
 *
 * A run's identity is every setting that can change its result (dataset,
 * model configuration, training options, data limits) plus a fingerprint of
 * the data it trains on, as an ordered list of named text values. `train
 * --resume` and every skip or resume of an experiment run compare the stored
 * identity with the requested one and refuse any difference, naming each
 * setting with its stored and requested value. */
#ifndef MINFORMER_RUN_H
#define MINFORMER_RUN_H

#include "checkpoint.h"
#include "data.h"
#include "model.h"
#include "train.h"

MF_BEGIN_API

#define MF_RUN_MAX_SETTINGS 48
#define MF_RUN_NAME_MAX 24   /* bytes of a setting's name, NUL included */
#define MF_RUN_VALUE_MAX 48  /* bytes of a setting's value, NUL included */

typedef struct {
    char name[MF_RUN_NAME_MAX];   /* "seed", "dim", "data", ... */
    char value[MF_RUN_VALUE_MAX]; /* "1", "64", "9f3c..." */
} mf_run_setting;

typedef struct {
    int count;
    mf_run_setting items[MF_RUN_MAX_SETTINGS];
} mf_run_identity;

/* The identity of a run of cfg on dataset with opts and the given limits
 * (0 = whole split), trained on data whose mf_dataset.fingerprint is
 * fingerprint (0 = unknown, written "unknown"). A float is written as the
 * shortest text that reads back as the same float, so equal text means
 * equal bits. */
void mf_run_identity_make(mf_run_identity *id, mf_dataset_kind dataset, const mf_config *cfg,
                          const mf_train_opts *opts, int limit_train, int limit_test,
                          uint64_t fingerprint);
/* The identity of the run a checkpoint holds: its configuration, options,
 * limits and data fingerprint. */
void mf_run_identity_of_checkpoint(mf_run_identity *id, const mf_config *cfg,
                                   const mf_checkpoint_info *info);
/* The shortest decimal text (6 to 9 significant digits) that reads back as
 * the same float: 0.02 stays "0.02", and equal text means equal bits. */
void mf_run_format_float(float x, char *out, size_t size);

/* Sets setting name to value (adds it, or replaces its value). MF_ERR_CONFIG
 * when the name or value is too long or the identity is full. */
mf_status mf_run_identity_set(mf_run_identity *id, const char *name, const char *value,
                              mf_error *err);
/* The value of setting name, or NULL. */
const char *mf_run_identity_get(const mf_run_identity *id, const char *name);

/* Compares a stored identity with a requested one over the union of their
 * settings (a setting present in one only differs: "absent"). Returns the
 * number of differences and writes them to out as
 * "seed: stored 1, requested 2; lr: stored 0.004, requested 0.01" (cut with
 * "..." when out is too small). */
int mf_run_identity_diff(const mf_run_identity *stored, const mf_run_identity *requested,
                         char *out, size_t size);
/* MF_OK when equal; else MF_ERR_CONFIG with "WHERE: made with other settings
 * (DIFFERENCES); HINT". */
mf_status mf_run_identity_check(const char *where, const mf_run_identity *stored,
                                const mf_run_identity *requested, const char *hint,
                                mf_error *err);

/* The identity as a JSON object of strings, in order; malloc'd, NULL when
 * out of memory. */
char *mf_run_identity_to_json(const mf_run_identity *id);
/* Parses text[0..len) (a JSON object whose members are all strings, names
 * and values within the sizes above, no duplicates): the inverse of
 * mf_run_identity_to_json. MF_ERR_FORMAT "WHAT: problem" when invalid. A run
 * identity stored before a setting existed reads with the value every such
 * run had: "schedule" "cosine". */
mf_status mf_run_identity_parse(const char *text, size_t len, mf_run_identity *id,
                                const char *what, mf_error *err);

/* ---- the run log ---------------------------------------------------------- */

/* The run log is JSON lines, one object per finished epoch, written by
 * `train --log` and by every experiment run (DIR/<run>/log.jsonl):
 *   epoch              integer >= 1 (required)
 *   lr                 the learning rate at the epoch's last step
 *   train_loss, train_acc   running mean over the epoch's training batches
 *   test_loss, test_acc     evaluation on the test split after the epoch
 *   seconds            wall time of the epoch, evaluation included
 *   images_per_second  training images per second of training-step time
 *   images             training images of the epoch (since a mid-epoch resume)
 *   train_seconds      wall time in training steps
 * Every metric is a number, or null when it is not finite (JSON has no NaN).
 * mf_run_log_line is the one writer and mf_training_log_read the one reader.
 *
 * One line (newline included) for an epoch's statistics. Returns the length,
 * or -1 when it does not fit in size. */
int mf_run_log_line(const mf_epoch_stats *s, char *out, size_t size);

/* One epoch of a training log. */
typedef struct {
    int epoch;
    float lr, train_loss, train_acc, test_loss, test_acc;
    double seconds, images_per_second, train_seconds;
    long images;         /* 0 when the log does not say */
} mf_log_epoch;

typedef struct {
    int count;
    mf_log_epoch *epochs; /* sorted by epoch; a repeated epoch keeps its last line */
} mf_training_log;

/* Reads a JSON-lines log. Blank lines are skipped; a line that is not a JSON
 * object with a positive integer "epoch" is MF_ERR_FORMAT naming the file and
 * line. Missing metrics read as NaN. */
mf_status mf_training_log_read(const char *path, mf_training_log *log, mf_error *err);
void mf_training_log_free(mf_training_log *log);

/* ---- resuming --------------------------------------------------------------- */

/* The one path that resumes a run: loads the checkpoint at path into *m and
 * *info (as mf_checkpoint_load), requires its AdamW moments and training
 * state, and, when requested is not NULL, compares the checkpoint's identity
 * with it (mf_run_identity_check; hint is the advice on a mismatch). On
 * failure *m is freed and zeroed. */
mf_status mf_run_resume_load(const char *path, const mf_run_identity *requested, const char *hint,
                             mf_model *m, mf_checkpoint_info *info, mf_error *err);

/* ---- one owner per run -------------------------------------------------------- */

/* Takes an exclusive advisory lock (flock) on path, creating the file. The
 * lock lives as long as the returned descriptor (the kernel drops it when
 * the holder exits or dies). Returns the descriptor (>= 0); -2 when another
 * open file holds the lock (nothing waits); -1 with MF_ERR_IO on failure. */
int mf_run_lock_try(const char *path, mf_error *err);
void mf_run_lock_release(int fd);

MF_END_API

#endif
