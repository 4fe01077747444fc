/* Shared pieces of the minformer command-line tool. Exit codes: 0 success,
 * 1 runtime error (I/O, bad data), 2 usage error. */
#ifndef MF_CLI_H
#define MF_CLI_H

#include <getopt.h>
#include "minformer.h"
/* The library's JSON writer: internal to it (hidden in libminformer.so), and
 * linked from the static archive, which the tool is built with. */
#include "base/json.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* "minformer CMD: message" and a hint to --help on stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "minformer: message" on stderr; returns EXIT_RUNTIME (or EXIT_USAGE for MF_ERR_CONFIG). */
int cli_report(const mf_error *err);
/* An option getopt rejected (unknown, or missing its value); returns EXIT_USAGE. */
int cli_bad_option(const char *cmd, char *const argv[]);

/* 0 when arg is a non-empty path; else a usage error naming opt ("--out",
 * "a checkpoint"): an empty path would mean the root or the working directory. */
int cli_path_arg(const char *cmd, const char *opt, const char *arg);

/* What writing the file path (atomically: a temporary file renamed over it)
 * would trip over, checked before the work: path is a directory or a device,
 * FIFO or socket (the rename would replace it), or its directory is missing
 * or not writable. 0, or EXIT_RUNTIME after one line naming path and the
 * reason. what: "the collapsed model", "the picture". */
int cli_check_output(const char *path, const char *what);

/* 1 when a and b name the same file: the same string, or the same device and
 * inode (symbolic and hard links); 0 otherwise, or when either is missing. */
int cli_same_file(const char *a, const char *b);

/* Every dataset minformer reads has 10 classes (mf_dataset.classes). */
enum { CLI_DATASET_CLASSES = 10 };

/* 0 when a model with cfg's head can be used with the classes of kind; else a
 * usage error naming both counts (a 2-class head on MNIST would index
 * logits with labels up to 9). */
int cli_check_classes(const char *cmd, const mf_config *cfg, mf_dataset_kind kind);

/* Strict number parsing: the whole string, within [min, max]. 0 or EXIT_USAGE. */
int cli_parse_int(const char *cmd, const char *opt, const char *arg, long min, long max, int *out);
int cli_parse_float(const char *cmd, const char *opt, const char *arg, double min, double max,
                    float *out);
int cli_parse_u64(const char *cmd, const char *opt, const char *arg, uint64_t *out);

/* Model flags shared by train and params. Unset fields are -1 / NULL. */
typedef struct {
    const char *preset, *qk, *vo, *pool;
    int dim, layers, heads, mlp, patch;
    float dropout;
} cli_model_opts;

/* Long-only option values above 255, so a missing value is reported by its
 * long name; a command's own options start at OPT_CLI_LAST + 1. */
enum {
    OPT_PRESET = 1000, OPT_DIM, OPT_LAYERS, OPT_HEADS, OPT_MLP, OPT_PATCH, OPT_QK, OPT_VO,
    OPT_POOL, OPT_DROPOUT,
    OPT_DATA, OPT_THREADS, OPT_JSON, OPT_LIMIT_TRAIN, OPT_LIMIT_TEST,
    OPT_SCHEDULE, OPT_PROTOCOL, OPT_PRECISION, OPT_CLI_LAST
};
#define CLI_MODEL_LONGOPTS                                                                   \
    {"preset", required_argument, 0, OPT_PRESET}, {"dim", required_argument, 0, OPT_DIM},     \
    {"layers", required_argument, 0, OPT_LAYERS}, {"heads", required_argument, 0, OPT_HEADS}, \
    {"mlp", required_argument, 0, OPT_MLP}, {"patch", required_argument, 0, OPT_PATCH},       \
    {"qk", required_argument, 0, OPT_QK}, {"vo", required_argument, 0, OPT_VO},               \
    {"pool", required_argument, 0, OPT_POOL}, {"dropout", required_argument, 0, OPT_DROPOUT}
#define CLI_MODEL_HELP                                                                       \
    "Model:\n"                                                                               \
    "  --preset NAME      unchanged (default), wqk, minimal, symmetric\n"                    \
    "  --dim N            width (default 64)\n"                                              \
    "  --layers L         encoder blocks (default 6)\n"                                      \
    "  --heads H          attention heads (default 1)\n"                                     \
    "  --mlp R            MLP ratio, hidden width R*N; 0 removes the MLP (default 4)\n"      \
    "  --patch P          patch size (default 7 for 28x28 images, 4 for 32x32)\n"           \
    "  --qk KIND          separate, shared, collapsed, symmetric, cholesky\n"                \
    "  --vo KIND          separate, collapsed, none, shaped (alpha I + beta A - gamma U)\n"   \
    "  --pool KIND        cls (default) or mean\n"                                           \
    "  --dropout P        dropout on residual branches and embeddings (default 0)\n"

void cli_model_opts_init(cli_model_opts *o);
/* Handles one model option: 1 if it was one, 0 if not, EXIT_USAGE on a bad value
 * (negated: returns -EXIT_USAGE). */
int cli_model_option(cli_model_opts *o, int opt, const char *arg, const char *cmd);
/* Builds and validates the configuration: 0 or EXIT_USAGE (with the rule broken). */
int cli_model_config(const cli_model_opts *o, mf_dataset_kind kind, mf_config *cfg,
                     const char *cmd);

/* The options several commands share, parsed by cli_common_option alone. A
 * command lists in its getopt table the ones it takes (CLI_OPT_*). */
typedef struct {
    const char *data_dir;        /* --data DIR; NULL: mf_data_dir's default */
    int threads;                 /* --threads T; 0: all cores */
    int json;                    /* --json */
    int limit_train, limit_test; /* --limit-train N, --limit-test N; 0: all */
    mf_precision precision;      /* --precision fp32|bf16 (checked: this CPU runs it) */
    int precision_given;
} cli_common_opts;

#define CLI_OPT_DATA {"data", required_argument, 0, OPT_DATA}
#define CLI_OPT_THREADS {"threads", required_argument, 0, OPT_THREADS}
#define CLI_OPT_JSON {"json", no_argument, 0, OPT_JSON}
#define CLI_OPT_LIMIT_TRAIN {"limit-train", required_argument, 0, OPT_LIMIT_TRAIN}
#define CLI_OPT_LIMIT_TEST {"limit-test", required_argument, 0, OPT_LIMIT_TEST}
#define CLI_OPT_PRECISION {"precision", required_argument, 0, OPT_PRECISION}
#define CLI_PRECISION_HELP                                                                   \
    "  --precision P      fp32 (default) or bf16: the linear layers' matrix products\n"     \
    "                     with bf16 operands and fp32 sums (needs AVX512_BF16, on AMX\n"   \
    "                     where present; parameters, gradients and optimizer: fp32)\n"

void cli_common_opts_init(cli_common_opts *o);
/* Handles one shared option, as cli_model_option: 1 if it was one, 0 if not,
 * -EXIT_USAGE on a bad value (an empty --data, a limit or thread count out of
 * range) after the usage line. */
int cli_common_option(cli_common_opts *o, int opt, const char *arg, const char *cmd);

/* The training regime that --protocol names (mf_protocol_apply) and explicit
 * options override: train and experiment list CLI_OPT_SCHEDULE and
 * CLI_OPT_PROTOCOL in their tables and take --batch, --augment/--no-augment
 * and --wd themselves. */
#define CLI_OPT_SCHEDULE {"schedule", required_argument, 0, OPT_SCHEDULE}
#define CLI_OPT_PROTOCOL {"protocol", required_argument, 0, OPT_PROTOCOL}
#define CLI_REGIME_HELP                                                                      \
    "  --schedule S       cosine (default: linear warmup for 10% of the run, at most\n"      \
    "                     1 epoch, then cosine decay to 0) or constant (the peak\n"         \
    "                     rate at every step, no warmup unless --warmup is given)\n"        \
    "  --protocol P       default, or paper: constant schedule, no augmentation,\n"        \
    "                     batch 256, weight decay 0 (Adam); any of --schedule,\n"         \
    "                     --batch, --augment/--no-augment, --wd given as well wins,\n"   \
    "                     before or after --protocol\n"

/* The --protocol given in argv (the last one; argv is scanned with the
 * command's own table, so another option's value is never taken for it), in
 * *p (MF_PROTOCOL_DEFAULT when none), before the command's own pass reads the
 * options that override it. *given says whether there was one. argv is left
 * as it is.
 * 0, EXIT_USAGE for an unknown protocol, or EXIT_RUNTIME when out of memory.
 * Leaves optind for the command's pass to set. */
int cli_protocol_scan(int argc, char **argv, const char *shortopts,
                      const struct option *longopts, const char *cmd, mf_protocol *p, int *given);
/* --schedule NAME: 0 and *out, or EXIT_USAGE. */
int cli_parse_schedule(const char *cmd, const char *arg, mf_lr_schedule *out);

/* JSON documents on stdout, each one object on one line, built with the
 * library's mf_json_writer. The members' helpers put the comma themselves. */
void cli_json_key(mf_json_writer *w, const char *key);
void cli_json_str(mf_json_writer *w, const char *key, const char *s);
void cli_json_int(mf_json_writer *w, const char *key, long long v);
void cli_json_size(mf_json_writer *w, const char *key, size_t v);
/* v with printf format fmt ("%.6f"), or null where v is not finite: JSON has
 * no NaN (a diverged model's logits). */
void cli_json_real(mf_json_writer *w, const char *key, const char *fmt, double v);
void cli_json_ints(mf_json_writer *w, const char *key, const int *v, int n);
void cli_json_reals(mf_json_writer *w, const char *key, const char *fmt, const float *v, int n);
/* Prints w's document and a newline to stdout and frees w: 0, or
 * EXIT_RUNTIME with one line when building it ran out of memory. */
int cli_json_print(mf_json_writer *w);

/* True when stdout/stderr is a terminal (progress bars only then). */
int cli_isatty_stderr(void);

/* Loads the test split a checkpointed model is evaluated on: --dataset if
 * given (its images must have the model's shape), else the checkpoint's
 * dataset; keeps the first limit_test images (0 = all). 0 or an exit code. */
int cli_load_eval_split(const char *cmd, const char *dataset, const char *data_dir,
                        mf_dataset_kind trained_on, const mf_config *cfg, int limit_test,
                        mf_dataset *ds);

/* The commands. */
int cmd_info(int argc, char **argv);
int cmd_params(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_collapse(int argc, char **argv);
int cmd_experiment(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_attention(int argc, char **argv);

#endif
