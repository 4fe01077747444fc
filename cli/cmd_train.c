/* minformer train: trains a model, evaluating on the test split after every
 * epoch, with a live progress bar on a terminal and JSON lines on request. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "Usage: minformer train --dataset mnist|cifar10|fashion-mnist [options]\n\n"
    "Trains a vision transformer and evaluates it on the test split after each epoch.\n\n"
    "Data:\n"
    "  --dataset NAME     mnist, cifar10 or fashion-mnist (required)\n"
    "  --data DIR         data directory (default $MINFORMER_DATA, else ./data)\n"
    "  --limit-train N    train on the first N training images only\n"
    "  --limit-test N     evaluate on the first N test images only\n"
    "  --augment, --no-augment\n"
    "                     random shifts (MNIST-like) or crop+flip (CIFAR-10); default on\n\n"
    CLI_MODEL_HELP "\n"
    "Training:\n"
    "  --epochs E         epochs (default 10)\n"
    "  --batch B          batch size (default 128)\n"
    "  --lr X             peak learning rate (default 1e-3)\n"
    "  --wd X             AdamW weight decay on weight matrices (default 0.05)\n"
    "  --warmup E         linear warmup in epochs, then cosine decay to 0\n"
    "                     (default: 10% of the run, at most 1 epoch)\n"
    "  --seed S           seed for initialization, data order, augmentation (default 1)\n"
    "  --threads T        threads (default: all cores); results do not depend on it\n\n"
    "Output:\n"
    "  --log FILE         append one JSON object per epoch to FILE\n"
    "  --json             end with one JSON object summarizing the run\n";

enum {
    OPT_DATASET = OPT_CLI_LAST + 1, OPT_DATA, OPT_LIMIT_TRAIN, OPT_LIMIT_TEST, OPT_AUGMENT,
    OPT_NO_AUGMENT, OPT_EPOCHS, OPT_BATCH, OPT_LR, OPT_WD, OPT_WARMUP, OPT_SEED, OPT_THREADS,
    OPT_LOG, OPT_JSON
};

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

typedef struct {
    FILE *log;
    const char *log_path;
    int tty, epochs, batch;
    mf_epoch_stats last;
    double train_images, train_seconds;
} run_ctx;

static void show_progress(void *vctx, int epoch, int batch, int batches, float loss, float acc,
                          double ips)
{
    run_ctx *ctx = vctx;
    if (!ctx->tty) return;
    int width = 24, filled = (int)((double)batch / batches * width);
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    bar[width] = '\0';
    int eta = ips > 0 ? (int)((double)(batches - batch) * ctx->batch / ips) : 0;
    fprintf(stderr, "\repoch %d/%d [%s] %d/%d loss %.4f acc %5.1f%% %6.0f img/s ETA %d:%02d ", epoch,
            ctx->epochs, bar, batch, batches, loss, 100.0 * acc, ips, eta / 60, eta % 60);
    fflush(stderr);
}

static mf_status on_epoch(void *vctx, const mf_epoch_stats *s, const mf_train_state *st, mf_error *err)
{
    run_ctx *ctx = vctx;
    (void)st;
    if (ctx->tty) fprintf(stderr, "\r\033[K");
    printf("epoch %d/%d  lr %.3g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1fs  "
           "%.0f img/s\n",
           s->epoch, ctx->epochs, s->lr, s->train_loss, 100.0 * s->train_acc, s->test_loss,
           100.0 * s->test_acc, s->seconds, s->images_per_second);
    fflush(stdout);
    ctx->last = *s;
    if (ctx->log) {
        fprintf(ctx->log,
                "{\"epoch\":%d,\"lr\":%.6g,\"train_loss\":%.6f,\"train_acc\":%.6f,\"test_loss\":%.6f,"
                "\"test_acc\":%.6f,\"seconds\":%.3f,\"images_per_second\":%.1f}\n",
                s->epoch, s->lr, s->train_loss, s->train_acc, s->test_loss, s->test_acc, s->seconds,
                s->images_per_second);
        if (fflush(ctx->log) || ferror(ctx->log))
            return mf_fail(err, MF_ERR_IO, "%s: cannot write the log", ctx->log_path);
    }
    ctx->train_images += (double)s->images;
    ctx->train_seconds += s->train_seconds;
    return MF_OK;
}

int cmd_train(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_MODEL_LONGOPTS,
        {"dataset", required_argument, 0, OPT_DATASET},
        {"data", required_argument, 0, OPT_DATA},
        {"limit-train", required_argument, 0, OPT_LIMIT_TRAIN},
        {"limit-test", required_argument, 0, OPT_LIMIT_TEST},
        {"augment", no_argument, 0, OPT_AUGMENT},
        {"no-augment", no_argument, 0, OPT_NO_AUGMENT},
        {"epochs", required_argument, 0, OPT_EPOCHS},
        {"batch", required_argument, 0, OPT_BATCH},
        {"lr", required_argument, 0, OPT_LR},
        {"wd", required_argument, 0, OPT_WD},
        {"warmup", required_argument, 0, OPT_WARMUP},
        {"seed", required_argument, 0, OPT_SEED},
        {"threads", required_argument, 0, OPT_THREADS},
        {"log", required_argument, 0, OPT_LOG},
        {"json", no_argument, 0, OPT_JSON},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *cmd = "train";
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    mf_train_opts to;
    mf_train_opts_default(&to);
    const char *dataset = NULL, *data_dir = NULL, *log_path = NULL;
    int limit_train = 0, limit_test = 0, threads = 0, json = 0, opt, rc = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_model_option(&mo, opt, optarg, cmd);
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_DATASET: dataset = optarg; break;
        case OPT_DATA: data_dir = optarg; break;
        case OPT_LIMIT_TRAIN: rc = cli_parse_int(cmd, "limit-train", optarg, 1, 1 << 30, &limit_train); break;
        case OPT_LIMIT_TEST: rc = cli_parse_int(cmd, "limit-test", optarg, 1, 1 << 30, &limit_test); break;
        case OPT_AUGMENT: to.augment = 1; break;
        case OPT_NO_AUGMENT: to.augment = 0; break;
        case OPT_EPOCHS: rc = cli_parse_int(cmd, "epochs", optarg, 1, 100000, &to.epochs); break;
        case OPT_BATCH: rc = cli_parse_int(cmd, "batch", optarg, 1, 65536, &to.batch); break;
        case OPT_LR: rc = cli_parse_float(cmd, "lr", optarg, 0.0, 1e38, &to.lr); break;
        case OPT_WD: rc = cli_parse_float(cmd, "wd", optarg, 0.0, 1e6, &to.adamw.weight_decay); break;
        case OPT_WARMUP: rc = cli_parse_float(cmd, "warmup", optarg, 0.0, 1e6, &to.warmup_epochs); break;
        case OPT_SEED: rc = cli_parse_u64(cmd, "seed", optarg, &to.seed); break;
        case OPT_THREADS: rc = cli_parse_int(cmd, "threads", optarg, 1, 1024, &threads); break;
        case OPT_LOG: log_path = optarg; break;
        case OPT_JSON: json = 1; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!dataset) return cli_usage_error(cmd, "--dataset is required");
    mf_error err;
    mf_error_clear(&err);
    mf_dataset_kind kind;
    if (mf_dataset_parse(dataset, &kind, &err)) return cli_usage_error(cmd, "%s", err.message);
    mf_config cfg;
    if ((rc = cli_model_config(&mo, kind, &cfg, cmd))) return rc;
    mf_set_threads(threads);

    mf_dataset ds;
    if (mf_dataset_load(&ds, kind, mf_data_dir(data_dir), &err)) return cli_report(&err);
    mf_dataset_limit(&ds, limit_train, limit_test);
    if (ds.train.count < to.batch) {
        mf_dataset_free(&ds);
        return cli_usage_error(cmd, "--batch %d is larger than the %d training images", to.batch,
                               ds.train.count);
    }

    mf_model model;
    if (mf_model_create(&model, &cfg, &err)) {
        mf_dataset_free(&ds);
        return cli_report(&err);
    }
    mf_model_init_weights(&model, to.seed);
    mf_train_state st;
    mf_train_state_init(&st);

    run_ctx ctx = {0};
    ctx.tty = cli_isatty_stderr();
    ctx.epochs = to.epochs;
    ctx.batch = to.batch;
    ctx.log_path = log_path;
    if (log_path && !(ctx.log = fopen(log_path, "a"))) {
        mf_fail(&err, MF_ERR_IO, "%s: cannot open the log for appending", log_path);
        rc = cli_report(&err);
        goto out;
    }
    if (!json || ctx.tty)
        printf("training %s on %s: %zu parameters, %d training / %d test images, %d threads\n",
               mf_qk_name(cfg.qk), mf_dataset_name(kind), model.num_params, ds.train.count,
               ds.test.count, mf_get_threads());
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    mf_train_hooks hooks = {&ctx, show_progress, on_epoch};
    double t0 = mf_now_seconds();
    mf_status s = mf_train(&model, &ds, &to, &st, &hooks, &stop_signal, &err);
    double total = mf_now_seconds() - t0;
    if (ctx.tty) fprintf(stderr, "\r\033[K");
    if (s == MF_ERR_INTERRUPTED) {
        fprintf(stderr, "minformer: %s\n", err.message);
        rc = stop_signal == SIGINT ? 130 : 143;
        goto out;
    }
    if (s) {
        rc = cli_report(&err);
        goto out;
    }
    if (json)
        printf("{\"params\":%zu,\"epochs\":%d,\"train_loss\":%.6f,\"train_acc\":%.6f,\"test_loss\":%.6f,"
               "\"test_acc\":%.6f,\"seconds\":%.3f,\"images_per_second\":%.1f}\n",
               model.num_params, to.epochs, ctx.last.train_loss, ctx.last.train_acc,
               ctx.last.test_loss, ctx.last.test_acc, total,
               ctx.train_images / (ctx.train_seconds > 0 ? ctx.train_seconds : 1e-9));
out:
    if (ctx.log) fclose(ctx.log);
    mf_model_free(&model);
    mf_dataset_free(&ds);
    return rc;
}
