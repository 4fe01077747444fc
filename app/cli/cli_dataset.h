/* The command line's side of datasets beyond the built-in three: the
 * options of folder datasets (--dataset folder:PATH) and loading any dataset
 * by its --dataset name. Implemented in options.c. */
#ifndef MF_CLI_DATASET_H
#define MF_CLI_DATASET_H

#include "cli.h"

/* Option values of their own range, clear of the commands' enums (which
 * start at OPT_CLI_LAST + 1). */
enum { OPT_IMAGE_SIZE = 2000, OPT_CENTER_CROP, OPT_SKIP_BAD, OPT_NO_CACHE };
#define CLI_FOLDER_LONGOPTS                                                                    \
    {"image-size", required_argument, 0, OPT_IMAGE_SIZE},                                      \
    {"center-crop", no_argument, 0, OPT_CENTER_CROP},                                          \
    {"skip-bad", no_argument, 0, OPT_SKIP_BAD}, {"no-cache", no_argument, 0, OPT_NO_CACHE}
#define CLI_FOLDER_HELP                                                                        \
    "Folder datasets (--dataset folder:PATH, PATH/{train,test}/<class>/*.png|jpg):\n"          \
    "  --image-size S     resize every image to SxS (area filter); default: keep the\n"        \
    "                     images' own size, which must then be one square size\n"             \
    "  --center-crop      crop the central square first (keeps the aspect ratio)\n"           \
    "  --skip-bad         leave out images that cannot be decoded (counted) instead\n"        \
    "                     of stopping at the first\n"                                         \
    "  --no-cache         neither read nor write PATH/.minformer-cache-*.bin\n"

/* Folder options as given; given counts the flags, so that a built-in
 * dataset can refuse them; geometry_given: --image-size or --center-crop. */
typedef struct {
    mf_folder_opts opts;
    int given;
    int geometry_given;
} cli_folder_opts;

void cli_folder_opts_init(cli_folder_opts *o);
/* A folder model's --image-size and --center-crop from its checkpoint
 * (info from mf_checkpoint_load), unless either option was given: a folder
 * is read as the model's training read it. */
void cli_folder_opts_from_checkpoint(cli_folder_opts *o, const mf_checkpoint_info *info);
/* One folder option: 1 if it was one, 0 if not, -EXIT_USAGE on a bad value. */
int cli_folder_option(cli_folder_opts *o, int opt, const char *arg, const char *cmd);

/* Loads the dataset named by --dataset (a built-in one from data_dir, or
 * folder:PATH with fo, which may be NULL for defaults). For a folder it
 * prints to stderr how many bad images were skipped and why its cache was
 * rebuilt or not written; *report (may be NULL) gets the folder's report.
 * 0 or an exit code after the message. */
int cli_load_dataset(const char *cmd, const char *dataset, const char *data_dir,
                     const cli_folder_opts *fo, mf_dataset *ds, mf_folder_report *report);

/* cli_model_config for a loaded dataset: the geometry and class count come
 * from ds (a folder's own). 0 or EXIT_USAGE. */
int cli_model_config_for(const cli_model_opts *o, const mf_dataset *ds, mf_config *cfg,
                         const char *cmd);

/* cli_load_eval_split with folder options: --dataset folder:PATH is loaded
 * with fo and must match the model's image shape and class count. */
int cli_load_eval_data(const char *cmd, const char *dataset, const char *data_dir,
                       const cli_folder_opts *fo, mf_dataset_kind trained_on,
                       const mf_config *cfg, int limit_test, mf_dataset *ds);

#endif
