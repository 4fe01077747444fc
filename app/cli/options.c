/* Option parsing and error reporting shared by every command. */
#define _POSIX_C_SOURCE 200809L /* lstat */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_dataset.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "minformer %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'minformer %s --help')\n", cmd);
    return EXIT_USAGE;
}

int cli_report(const mf_error *err)
{
    fprintf(stderr, "minformer: %s\n", err->message[0] ? err->message : "unknown error");
    return err->status == MF_ERR_CONFIG ? EXIT_USAGE : EXIT_RUNTIME;
}

int cli_bad_option(const char *cmd, char *const argv[])
{
    const char *arg = (optind > 0 && argv[optind - 1]) ? argv[optind - 1] : "?";
    if (optopt && optopt < 256)
        return cli_usage_error(cmd, "unknown option or missing value: -%c", optopt);
    return cli_usage_error(cmd, "unknown option or missing value: %s", arg);
}

/* strtol and strtoull skip leading white space and strtoull takes a sign:
 * " -1" would become 2^64 - 1. A number here starts with a digit (or a
 * minus sign where negatives make sense). */
static int starts_like_number(const char *arg, int sign_ok)
{
    if (sign_ok && (*arg == '-' || *arg == '+')) arg++;
    return *arg >= '0' && *arg <= '9';
}

int cli_path_arg(const char *cmd, const char *opt, const char *arg)
{
    if (arg && arg[0]) return 0;
    return cli_usage_error(cmd, "%s needs a file or directory name, got an empty string", opt);
}

int cli_check_output(const char *path, const char *what)
{
    struct stat sb;
    if (!stat(path, &sb) && S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "minformer: %s: cannot write %s there: it is a directory\n", path, what);
        return EXIT_RUNTIME;
    }
    if (!lstat(path, &sb) && !S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode)) {
        fprintf(stderr, "minformer: %s: cannot write %s there: not a regular file (writing would "
                        "replace it)\n", path, what);
        return EXIT_RUNTIME;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int len = !slash ? 0 : slash == path ? 1 : (int)(slash - path);
    snprintf(dir, sizeof dir, "%.*s", len ? len : 1, len ? path : ".");
    errno = 0;
    if (stat(dir, &sb) || !S_ISDIR(sb.st_mode) || access(dir, W_OK | X_OK)) {
        fprintf(stderr, "minformer: %s: cannot write %s there: %s: %s\n", path, what, dir,
                errno ? strerror(errno) : "not a directory");
        return EXIT_RUNTIME;
    }
    return 0;
}

int cli_same_file(const char *a, const char *b)
{
    if (!strcmp(a, b)) return 1;
    struct stat sa, sb;
    return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_check_classes(const char *cmd, const mf_config *cfg, mf_dataset_kind kind)
{
    /* A folder's class count is its own; checked once it is loaded. */
    if (kind == MF_FOLDER || cfg->classes == CLI_DATASET_CLASSES) return 0;
    return cli_usage_error(cmd, "the model has %d classes; %s has %d", cfg->classes,
                           mf_dataset_name(kind), CLI_DATASET_CLASSES);
}

int cli_parse_int(const char *cmd, const char *opt, const char *arg, long min, long max, int *out)
{
    char *end;
    errno = 0;
    if (!starts_like_number(arg, 1))
        return cli_usage_error(cmd, "--%s needs an integer in [%ld, %ld], got '%s'", opt, min, max,
                               arg);
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max || v < INT_MIN || v > INT_MAX)
        return cli_usage_error(cmd, "--%s needs an integer in [%ld, %ld], got '%s'", opt, min, max,
                               arg);
    *out = (int)v;
    return 0;
}

int cli_parse_float(const char *cmd, const char *opt, const char *arg, double min, double max,
                    float *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (!(starts_like_number(arg, 1) || (arg[0] == '.' && starts_like_number(arg + 1, 0))) || errno || end == arg || *end || !(v >= min && v <= max))
        return cli_usage_error(cmd, "--%s needs a number in [%g, %g], got '%s'", opt, min, max,
                               arg);
    *out = (float)v;
    return 0;
}

int cli_parse_u64(const char *cmd, const char *opt, const char *arg, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!starts_like_number(arg, 0))
        return cli_usage_error(cmd, "--%s needs a non-negative integer, got '%s'", opt, arg);
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || end == arg || *end)
        return cli_usage_error(cmd, "--%s needs a non-negative integer, got '%s'", opt, arg);
    *out = (uint64_t)v;
    return 0;
}

void cli_model_opts_init(cli_model_opts *o)
{
    memset(o, 0, sizeof *o);
    o->dim = o->layers = o->heads = o->mlp = o->patch = -1;
    o->dropout = -1.0f;
}

int cli_model_option(cli_model_opts *o, int opt, const char *arg, const char *cmd)
{
    int rc = 0;
    switch (opt) {
    case OPT_PRESET: o->preset = arg; break;
    case OPT_QK: o->qk = arg; break;
    case OPT_VO: o->vo = arg; break;
    case OPT_POOL: o->pool = arg; break;
    case OPT_DIM: rc = cli_parse_int(cmd, "dim", arg, 1, 4096, &o->dim); break;
    case OPT_LAYERS: rc = cli_parse_int(cmd, "layers", arg, 1, 256, &o->layers); break;
    case OPT_HEADS: rc = cli_parse_int(cmd, "heads", arg, 1, 256, &o->heads); break;
    case OPT_MLP: rc = cli_parse_int(cmd, "mlp", arg, 0, 64, &o->mlp); break;
    case OPT_PATCH: rc = cli_parse_int(cmd, "patch", arg, 1, 64, &o->patch); break;
    case OPT_DROPOUT: rc = cli_parse_float(cmd, "dropout", arg, 0.0, 0.99, &o->dropout); break;
    default: return 0;
    }
    return rc ? -EXIT_USAGE : 1;
}

static int model_config(const cli_model_opts *o, int size, int channels, int classes,
                        mf_config *cfg, const char *cmd)
{
    mf_error err;
    mf_error_clear(&err);
    mf_config_default(cfg, size, channels, classes);
    if (o->preset && mf_config_apply_preset(cfg, o->preset, &err))
        return cli_usage_error(cmd, "%s", err.message);
    if (o->qk && mf_qk_parse(o->qk, &cfg->qk, &err)) return cli_usage_error(cmd, "%s", err.message);
    if (o->vo && mf_vo_parse(o->vo, &cfg->vo, &err)) return cli_usage_error(cmd, "%s", err.message);
    if (o->pool && mf_pool_parse(o->pool, &cfg->pool, &err))
        return cli_usage_error(cmd, "%s", err.message);
    if (o->dim >= 0) cfg->dim = o->dim;
    if (o->layers >= 0) cfg->layers = o->layers;
    if (o->heads >= 0) cfg->heads = o->heads;
    if (o->mlp >= 0) cfg->mlp_ratio = o->mlp;
    if (o->patch >= 0) cfg->patch = o->patch;
    if (o->dropout >= 0) cfg->dropout = o->dropout;
    if (mf_config_validate(cfg, &err)) return cli_usage_error(cmd, "%s", err.message);
    return 0;
}

int cli_model_config(const cli_model_opts *o, mf_dataset_kind kind, mf_config *cfg, const char *cmd)
{
    if (kind == MF_FOLDER)
        return cli_usage_error(cmd, "a folder dataset's model is configured once it is loaded");
    return model_config(o, mf_dataset_image_size(kind), mf_dataset_channels(kind), 10, cfg, cmd);
}

int cli_model_config_for(const cli_model_opts *o, const mf_dataset *ds, mf_config *cfg,
                         const char *cmd)
{
    return model_config(o, ds->size, ds->channels, ds->classes, cfg, cmd);
}

void cli_folder_opts_init(cli_folder_opts *o)
{
    memset(o, 0, sizeof *o);
    mf_folder_opts_default(&o->opts);
}

int cli_folder_option(cli_folder_opts *o, int opt, const char *arg, const char *cmd)
{
    int rc = 0;
    switch (opt) {
    case OPT_IMAGE_SIZE:
        rc = cli_parse_int(cmd, "image-size", arg, 1, MF_IMAGE_MAX_SIDE, &o->opts.image_size);
        o->geometry_given = 1;
        break;
    case OPT_CENTER_CROP: o->opts.center_crop = 1, o->geometry_given = 1; break;
    case OPT_SKIP_BAD: o->opts.skip_bad = 1; break;
    case OPT_NO_CACHE: o->opts.use_cache = 0; break;
    default: return 0;
    }
    o->given++;
    return rc ? -EXIT_USAGE : 1;
}

void cli_folder_opts_from_checkpoint(cli_folder_opts *o, const mf_checkpoint_info *info)
{
    if (o->geometry_given || info->dataset != MF_FOLDER || !info->has_class_names) return;
    o->opts.image_size = info->folder_image_size;
    o->opts.center_crop = info->folder_center_crop;
}

int cli_load_dataset(const char *cmd, const char *dataset, const char *data_dir,
                     const cli_folder_opts *fo, mf_dataset *ds, mf_folder_report *report)
{
    mf_error err;
    mf_error_clear(&err);
    memset(ds, 0, sizeof *ds);
    mf_dataset_kind kind;
    if (mf_dataset_parse(dataset, &kind, &err)) return cli_usage_error(cmd, "%s", err.message);
    const char *folder = mf_dataset_folder_path(dataset);
    if (kind == MF_FOLDER && !folder)
        return cli_usage_error(cmd, "--dataset folder needs the folder's path: folder:PATH");
    if (kind != MF_FOLDER) {
        if (fo && fo->given)
            return cli_usage_error(cmd, "--image-size, --center-crop, --skip-bad and --no-cache "
                                   "apply to folder datasets (folder:PATH) only");
        if (mf_dataset_load(ds, kind, mf_data_dir(data_dir), &err)) return cli_report(&err);
        return 0;
    }
    if (fo && fo->opts.center_crop && !fo->opts.image_size)
        return cli_usage_error(cmd, "--center-crop needs --image-size S");
    mf_folder_report rep;
    if (mf_dataset_load_folder(ds, folder, fo ? &fo->opts : NULL, &rep, &err)) return cli_report(&err);
    if (rep.skipped)
        fprintf(stderr, "minformer: %s: skipped %d bad image%s of %d (--skip-bad)\n", folder,
                rep.skipped, rep.skipped == 1 ? "" : "s", rep.files);
    if (rep.note[0]) fprintf(stderr, "minformer: %s\n", rep.note);
    if (report) *report = rep;
    return 0;
}

void cli_common_opts_init(cli_common_opts *o) { memset(o, 0, sizeof *o); }

int cli_common_option(cli_common_opts *o, int opt, const char *arg, const char *cmd)
{
    int rc = 0;
    switch (opt) {
    case OPT_DATA: rc = cli_path_arg(cmd, "--data", o->data_dir = arg); break;
    case OPT_THREADS: rc = cli_parse_int(cmd, "threads", arg, 1, 1024, &o->threads); break;
    case OPT_JSON: o->json = 1; break;
    case OPT_LIMIT_TRAIN: rc = cli_parse_int(cmd, "limit-train", arg, 1, 1 << 30, &o->limit_train); break;
    case OPT_LIMIT_TEST: rc = cli_parse_int(cmd, "limit-test", arg, 1, 1 << 30, &o->limit_test); break;
    case OPT_PRECISION: {
        mf_error err;
        o->precision_given = 1;
        if (mf_precision_parse(arg, &o->precision))
            rc = cli_usage_error(cmd, "unknown --precision '%s' (choose fp32, bf16)", arg);
        else if (mf_precision_check(o->precision, &err))
            rc = cli_usage_error(cmd, "--precision %s: %s", arg, err.message);
        break;
    }
    default: return 0;
    }
    return rc ? -EXIT_USAGE : 1;
}

int cli_protocol_scan(int argc, char **argv, const char *shortopts,
                      const struct option *longopts, const char *cmd, mf_protocol *p, int *given)
{
    /* On a copy: getopt_long moves the operands of the array it scans to
     * its end, and a missing option value at the end would then take one
     * ("quick --epochs" would become "--epochs quick"). */
    char **copy = malloc(((size_t)argc + 1) * sizeof *copy);
    if (!copy) {
        fprintf(stderr, "minformer: out of memory\n");
        return EXIT_RUNTIME;
    }
    memcpy(copy, argv, (size_t)argc * sizeof *copy);
    copy[argc] = NULL;
    const char *name = NULL;
    optind = 0; /* a fresh scan (glibc and musl) */
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, copy, shortopts, longopts, NULL)) != -1;)
        if (opt == OPT_PROTOCOL) name = optarg;
    free(copy); /* name points into an argument, not into copy */
    *given = name != NULL;
    *p = MF_PROTOCOL_DEFAULT;
    if (name && mf_protocol_parse(name, p, NULL))
        return cli_usage_error(cmd, "unknown --protocol '%s' (choose default, paper)", name);
    return 0;
}

int cli_parse_schedule(const char *cmd, const char *arg, mf_lr_schedule *out)
{
    if (mf_schedule_parse(arg, out, NULL))
        return cli_usage_error(cmd, "unknown --schedule '%s' (choose cosine, constant)", arg);
    return 0;
}

void cli_json_key(mf_json_writer *w, const char *key)
{
    char last = w->len ? w->data[w->len - 1] : '{';
    if (last != '{' && last != '[') mf_json_raw(w, ",");
    if (key) {
        mf_json_string(w, key);
        mf_json_raw(w, ":");
    }
}

void cli_json_str(mf_json_writer *w, const char *key, const char *s)
{
    cli_json_key(w, key);
    mf_json_string(w, s);
}

void cli_json_int(mf_json_writer *w, const char *key, long long v)
{
    cli_json_key(w, key);
    mf_json_printf(w, "%lld", v);
}

void cli_json_size(mf_json_writer *w, const char *key, size_t v)
{
    cli_json_key(w, key);
    mf_json_printf(w, "%zu", v);
}

void cli_json_real(mf_json_writer *w, const char *key, const char *fmt, double v)
{
    cli_json_key(w, key);
    if (isfinite(v)) mf_json_printf(w, fmt, v);
    else mf_json_raw(w, "null");
}

void cli_json_ints(mf_json_writer *w, const char *key, const int *v, int n)
{
    cli_json_key(w, key);
    mf_json_raw(w, "[");
    for (int i = 0; i < n; i++) cli_json_int(w, NULL, v[i]);
    mf_json_raw(w, "]");
}

void cli_json_reals(mf_json_writer *w, const char *key, const char *fmt, const float *v, int n)
{
    cli_json_key(w, key);
    mf_json_raw(w, "[");
    for (int i = 0; i < n; i++) cli_json_real(w, NULL, fmt, (double)v[i]);
    mf_json_raw(w, "]");
}

int cli_json_print(mf_json_writer *w)
{
    int rc = 0;
    if (w->failed) {
        fprintf(stderr, "minformer: out of memory writing the JSON output\n");
        rc = EXIT_RUNTIME;
    } else {
        /* Write errors show up in main's final flush of stdout. */
        fwrite(w->data, 1, w->len, stdout);
        putchar('\n');
    }
    mf_json_writer_free(w);
    return rc;
}

int cli_isatty_stderr(void) { return isatty(STDERR_FILENO); }

int cli_load_eval_split(const char *cmd, const char *dataset, const char *data_dir,
                        mf_dataset_kind trained_on, const mf_config *cfg, int limit_test,
                        mf_dataset *ds)
{
    return cli_load_eval_data(cmd, dataset, data_dir, NULL, trained_on, cfg, limit_test, ds);
}

int cli_load_eval_data(const char *cmd, const char *dataset, const char *data_dir,
                       const cli_folder_opts *fo, mf_dataset_kind trained_on,
                       const mf_config *cfg, int limit_test, mf_dataset *ds)
{
    mf_error err;
    mf_error_clear(&err);
    mf_dataset_kind kind = trained_on;
    memset(ds, 0, sizeof *ds);
    if (dataset && mf_dataset_parse(dataset, &kind, &err)) return cli_usage_error(cmd, "%s", err.message);
    if (kind == MF_FOLDER && !mf_dataset_folder_path(dataset))
        return cli_usage_error(cmd, "the model was trained on a folder dataset; give --dataset "
                               "folder:PATH with images of its kind");
    if (kind == MF_FOLDER) {
        int rc = cli_load_dataset(cmd, dataset, data_dir, fo, ds, NULL);
        if (rc) return rc;
        if (ds->channels != cfg->channels || ds->size != cfg->image_size) {
            rc = cli_usage_error(cmd, "the model takes %dx%dx%d images; %s has %dx%dx%d%s",
                                 cfg->channels, cfg->image_size, cfg->image_size, ds->folder,
                                 ds->channels, ds->size, ds->size,
                                 ds->size != cfg->image_size ? " (--image-size resizes them)" : "");
        } else if (ds->classes != cfg->classes) {
            rc = cli_usage_error(cmd, "the model has %d classes; %s has %d", cfg->classes,
                                 ds->folder, ds->classes);
        }
        if (rc) {
            mf_dataset_free(ds);
            return rc;
        }
        mf_dataset_limit(ds, 0, limit_test);
        return 0;
    }
    if (fo && fo->given)
        return cli_usage_error(cmd, "--image-size, --center-crop, --skip-bad and --no-cache "
                               "apply to folder datasets (folder:PATH) only");
    if (mf_dataset_channels(kind) != cfg->channels || mf_dataset_image_size(kind) != cfg->image_size)
        return cli_usage_error(cmd, "the model takes %dx%dx%d images; %s has %dx%dx%d", cfg->channels,
                               cfg->image_size, cfg->image_size, mf_dataset_name(kind),
                               mf_dataset_channels(kind), mf_dataset_image_size(kind),
                               mf_dataset_image_size(kind));
    int rc = cli_check_classes(cmd, cfg, kind);
    if (rc) return rc;
    if (mf_dataset_load(ds, kind, mf_data_dir(data_dir), &err)) return cli_report(&err);
    if (ds->classes != cfg->classes) {
        rc = cli_usage_error(cmd, "the model has %d classes; %s has %d", cfg->classes, ds->name,
                             ds->classes);
        mf_dataset_free(ds);
        return rc;
    }
    mf_dataset_limit(ds, 0, limit_test);
    return 0;
}
