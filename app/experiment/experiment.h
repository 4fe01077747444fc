/* minformer experiments: the paper's grids as data tables, and a runner that
 * trains one run of a grid into its own directory so that a long grid
 * survives interruptions.
 *
 * Layout of a grid's output directory DIR:
 *   DIR/<run>/run.json               written first: the run's name and identity
 *                                    (every setting that affects its result and
 *                                    the data fingerprint, see run.h)
 *   DIR/<run>/lock                   flock'd by the process that owns the run
 *   DIR/<run>/log.jsonl              one JSON object per finished epoch
 *   DIR/<run>/checkpoint.safetensors model, AdamW moments and training state
 *   DIR/<run>/lr.json                the learning rate chosen by --tune-lr and its sweep
 *   DIR/<run>/result.json            written last: the run is finished
 *   DIR/summary.lock                 flock'd while the summary is written
 *   DIR/results.md, DIR/results.csv  one row per finished run of the grid
 *   DIR/loss-<dataset>.EXT, DIR/accuracy-params.EXT   EXT: png, svg or pdf
 * With several seeds (seed_count > 0) a row has one run per seed, named
 * <row>-s<seed>; results.md adds a seed column and a table of each row's mean
 * and sample standard deviation (n - 1) over its seeds; results.csv adds the
 * columns best_test_loss, seed, stat ("run") and seeds (1) to every run's
 * line, then per row a "mean" line and, from 2 seeds, a "std" line whose run
 * is the row's name, seed empty and seeds the seed count; accuracy-params
 * draws each row at its mean with a bar of one standard deviation.
 * A run with result.json is skipped; one with only a checkpoint resumes from
 * it exactly (same data order, augmentation and schedule). Either only after
 * run.json, lr.json, result.json and the checkpoint have shown the identity
 * that is asked for now: any difference is refused (MF_ERR_CONFIG) with a
 * list of the settings that differ. A run whose lock another process holds
 * is left to that process. */
#ifndef MINFORMER_EXPERIMENT_H
#define MINFORMER_EXPERIMENT_H

#include <signal.h>
#include "minformer/data.h"
#include "minformer/model.h"
#include "minformer/run.h"
#include "minformer/train.h"
#include "figures/figures.h"

/* The training settings a row of a grid may set (mf_experiment_spec.set)
 * and the command line may give (mf_experiment_opts.given): a setting the
 * command line gives wins over the row's. */
enum {
    MF_EXP_EPOCHS = 1 << 0, MF_EXP_BATCH = 1 << 1, MF_EXP_LR = 1 << 2, MF_EXP_TUNE_LR = 1 << 3,
    MF_EXP_WD = 1 << 4, MF_EXP_WARMUP = 1 << 5, MF_EXP_SEED = 1 << 6, MF_EXP_AUGMENT = 1 << 7,
    MF_EXP_LIMIT_TRAIN = 1 << 8, MF_EXP_LIMIT_TEST = 1 << 9, MF_EXP_TUNE_IMAGES = 1 << 10,
    MF_EXP_TUNE_VAL = 1 << 11, MF_EXP_SCHEDULE = 1 << 12, MF_EXP_PRECISION = 1 << 13
};

/* A run name's longest text: room for "-s<seed>" after it in 96 bytes. */
#define MF_EXPERIMENT_NAME_MAX 72

/* One row of a grid: a model configuration on a dataset, and the training
 * settings the row sets (the others come from the command line or the
 * defaults). */
typedef struct {
    char name[MF_EXPERIMENT_NAME_MAX + 1]; /* unique within the grid */
    char variant[32];         /* the label of tables and figures, e.g. "minimal" */
    mf_dataset_kind dataset;  /* mnist, cifar10 or fashion-mnist */
    mf_config cfg;            /* the model, valid */
    unsigned set;             /* MF_EXP_* of the fields below that the row sets */
    int epochs, batch, limit_train, limit_test, tune_lr, tune_images, tune_val, augment;
    float lr, wd, warmup;
    uint64_t seed;
    mf_lr_schedule schedule;
    mf_precision precision;
} mf_experiment_spec;

typedef struct {
    char *name;               /* "table2", or a grid file's name without ".json" */
    char *description;        /* the file's "title", or "" */
    mf_experiment_spec *specs;
    int count;
} mf_experiment_grid;

/* The most rows one grid holds. */
#define MF_EXPERIMENT_MAX_ROWS 4096
/* The largest grid file read. */
#define MF_EXPERIMENT_FILE_MAX (1u << 20)

/* The built-in grid called name, or NULL. */
const mf_experiment_grid *mf_experiment_grid_find(const char *name);
/* All built-in grids, for help texts: *count is set (0 if they could not be
 * read, which a test rules out). */
const mf_experiment_grid *mf_experiment_grids(int *count);

/* The built-in grids' files, grids/NAME.json, as the build embeds them. */
typedef struct {
    const char *name;
    const char *text;
    size_t len;
} mf_experiment_grid_text;
extern const mf_experiment_grid_text mf_experiment_builtin_grids[];
extern const int mf_experiment_builtin_grid_count;

/* A grid file's text[0..len) into *grid (free it with
 * mf_experiment_grid_free), named name, with path in messages. The format
 * is README's "Grid files". MF_ERR_CONFIG with one line "PATH: ..." naming
 * the key (and LINE:COLUMN for JSON syntax), MF_ERR_NOMEM. */
mf_status mf_experiment_grid_parse(const char *text, size_t len, const char *path, const char *name,
                                   mf_experiment_grid *grid, mf_error *err);
/* Reads and parses the grid file at path; its name is the file's without
 * the directories and ".json". MF_ERR_IO when it cannot be read. */
mf_status mf_experiment_grid_load(const char *path, mf_experiment_grid *grid, mf_error *err);
void mf_experiment_grid_free(mf_experiment_grid *grid);

/* The row's name: readable and unique within a grid ("mnist-L6-H1-mlp4-
 * unchanged" in the built-in ones); the name of a row's run, and of its
 * runs' group when the grid has several seeds. */
void mf_experiment_run_name(const mf_experiment_spec *s, char *out, size_t size);
/* The name of the row's run with seed: the row's name, and with seeded
 * "-s<seed>" after it ("mnist-L6-H1-mlp4-unchanged-s2"). */
void mf_experiment_run_name_seed(const mf_experiment_spec *s, int seeded, uint64_t seed, char *out,
                                 size_t size);
/* The most seeds one grid takes (--seeds). */
#define MF_EXPERIMENT_MAX_SEEDS 64
/* The spec's full model configuration. */
mf_status mf_experiment_config(const mf_experiment_spec *s, mf_config *cfg, mf_error *err);
/* The candidates --tune-lr tries. */
#define MF_EXPERIMENT_TUNE_LRS {1e-3f, 3e-3f, 1e-2f}
#define MF_EXPERIMENT_TUNE_COUNT 3

typedef struct {
    const char *out_dir;  /* the grid's directory; runs go to out_dir/<run> */
    int epochs;           /* > 0 */
    int limit_train, limit_test; /* 0 = whole split */
    uint64_t seed;        /* the seed of the run mf_experiment_run trains */
    /* seed_count 0: one run per row, with seed, named without a seed suffix
     * (the names of a grid before --seeds, so its directories resume). > 0:
     * the row's runs are one per seeds[i], named with "-s<seed>"; the
     * summary collects them all (mf_experiment_run trains the one of seed). */
    const uint64_t *seeds;
    int seed_count;
    int batch;
    float lr;             /* > 0: every run uses it; 0: default per variant or tuned */
    int tune_lr;          /* choose each run's learning rate by a validation sweep */
    int tune_images;      /* training images per sweep point (default 10000) */
    int tune_val;         /* held-out validation images at the end of the training split (5000) */
    int augment;
    float wd;             /* AdamW's weight decay (default 0.05); 0 is Adam */
    mf_lr_schedule schedule; /* default cosine */
    mf_precision precision;  /* every run's (default fp32) */
    float warmup;         /* warmup epochs; < 0: train's automatic default */
    mf_figure_format figure_format; /* the grid figures' format and extension (default PNG) */
    unsigned given;       /* MF_EXP_* the command line gave: they win over a row's */
} mf_experiment_opts;

void mf_experiment_opts_default(mf_experiment_opts *o);
/* The options of spec's run: o with the training settings the row sets in
 * place of those o did not get from the command line (o->given). */
void mf_experiment_row_opts(const mf_experiment_opts *o, const mf_experiment_spec *spec,
                            mf_experiment_opts *out);

/* What a run reports, and what its result.json and a results row hold. */
typedef struct {
    char name[96];
    mf_experiment_spec spec;
    size_t params, baseline_params; /* baseline: unchanged, MLP 4, 1 head, same depth and dataset */
    int train_images;               /* K of Q = K*M/P */
    double q;                       /* K * classes / params */
    float lr;
    int lr_tuned;
    int epochs;
    float train_loss, train_acc, test_loss, test_acc;
    float best_test_acc;
    int best_epoch;
    float best_test_loss;           /* the lowest test loss of any epoch */
    uint64_t seed;
    int seeded;                     /* named with its seed (a grid with --seeds) */
    double seconds;                 /* wall time of all epochs, evaluation included */
    double images_per_second;       /* training images per second of training-step time */
    int skipped, resumed;           /* this call: found finished / continued a checkpoint */
    int in_progress;                /* this call: another process holds the run's lock */
    int saved;                      /* this call: interrupted, and the checkpoint was saved */
} mf_experiment_result;

/* Progress callbacks for the command line; any may be NULL. */
typedef struct {
    void *ctx;
    void (*on_message)(void *ctx, const char *text);
    void (*on_batch)(void *ctx, int epoch, int batch, int batches, float running_loss,
                     float running_acc, double images_per_second);
    void (*on_epoch)(void *ctx, const mf_epoch_stats *stats, int epochs);
} mf_experiment_hooks;

/* The identity a run of spec under opts is asked for, as its run.json,
 * lr.json and result.json store it: mf_run_identity_make's settings plus
 * "lr_choice" (given, default or tuned); a tuned run has "lr" "tuned" and the
 * sweep's sizes. fingerprint is the data's (0: unknown). */
void mf_experiment_identity(const mf_experiment_opts *opts, const mf_experiment_spec *spec,
                            uint64_t fingerprint, mf_run_identity *id);

/* Trains (or resumes, or skips) one run on ds, which must be the spec's
 * dataset already limited by the caller. Writes the run's files; fills *res.
 * On *stop: saves the checkpoint at the step reached (res->saved) and returns
 * MF_ERR_INTERRUPTED; interrupted while tuning, nothing is saved. Files of
 * the run made with other settings are MF_ERR_CONFIG naming each difference;
 * invalid ones MF_ERR_FORMAT naming the file. When another process holds the
 * run's lock, returns MF_OK at once with res->in_progress set. */
mf_status mf_experiment_run(const mf_experiment_opts *opts, const mf_experiment_spec *spec,
                            const mf_dataset *ds, const mf_experiment_hooks *hooks,
                            volatile sig_atomic_t *stop, mf_experiment_result *res, mf_error *err);

/* Parse a run directory's files (text[0..len), named what in messages).
 * result.json: every member present and within range, the name equal to
 * r->name and params to r->params when those are set, the embedded identity
 * equal to requested (not NULL; with any_data the data fingerprint is not
 * compared), and a learning rate that agrees with it; fills *r. lr.json: a
 * sweep of the MF_EXPERIMENT_TUNE_LRS candidates whose identity equals
 * requested (NULL: not compared); sets *lr to its choice. MF_ERR_FORMAT for
 * an invalid file, MF_ERR_CONFIG for one made with other settings. */
mf_status mf_experiment_parse_result(const char *text, size_t len, const mf_run_identity *requested,
                                     int any_data, mf_experiment_result *r, const char *what,
                                     mf_error *err);
mf_status mf_experiment_parse_lr(const char *text, size_t len, const mf_run_identity *requested,
                                 float *lr, const char *what, mf_error *err);

/* Every finished run of grid in opts->out_dir made with opts' settings, in
 * the grid's order and each row's seeds in opts->seeds' order, into out
 * (room for grid->count times max(1, seed_count)) and *n. fingerprints[d]
 * is dataset d's data fingerprint, or 0 when that dataset is not loaded (its
 * runs' fingerprints are then not compared). *other (may be NULL) counts
 * finished runs made with other settings, left out. */
mf_status mf_experiment_collect(const mf_experiment_opts *opts, const mf_experiment_grid *grid,
                                const uint64_t fingerprints[3], mf_experiment_result *out, int *n,
                                int *other, mf_error *err);
/* mf_experiment_collect, then mf_experiment_write_results, under an flock
 * on out_dir/summary.lock so that concurrent processes write one at a time. */
mf_status mf_experiment_write_summary(const mf_experiment_opts *opts,
                                      const mf_experiment_grid *grid,
                                      const uint64_t fingerprints[3], mf_experiment_result *out,
                                      int *n, int *other, mf_error *err);

/* Writes out_dir/results.md and out_dir/results.csv from n results (a row's
 * seeds next to each other, as mf_experiment_collect orders them), and the
 * figures out_dir/loss-<dataset>.EXT (one per dataset present) and
 * out_dir/accuracy-params.EXT from the runs' logs, in format (EXT its
 * mf_figure_format_name). A row of several seeds is drawn once: its mean
 * loss per epoch with a band of one sample standard deviation
 * (mf_figure_curves_rows), its mean accuracy with a bar of one. */
mf_status mf_experiment_write_results(const char *out_dir, const char *grid_name,
                                      const mf_experiment_result *results, int n,
                                      mf_figure_format format, mf_error *err);

/* The markdown table alone, for printing. The caller frees the string. */
char *mf_experiment_markdown(const mf_experiment_result *results, int n);

#endif
