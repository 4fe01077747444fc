/* minformer train: trains a model, evaluating on the test split after every
 * epoch, with a live progress bar on a terminal and JSON lines on request. */
#define _POSIX_C_SOURCE 200809L /* sigaction: also without -fopenmp */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_dataset.h"
#include "minformer/checkpoint.h"
#include "train/dist.h"

static const char *help =
    "Usage: minformer train --dataset mnist|cifar10|fashion-mnist|folder:PATH [options]\n\n"
    "Trains a vision transformer and evaluates it on the test split after each epoch.\n\n"
    "Data:\n"
    "  --dataset NAME     mnist, cifar10, fashion-mnist or folder:PATH (required)\n"
    "  --data DIR         data directory (default $MINFORMER_DATA, else ./data)\n"
    "  --limit-train N    train on the first N training images only\n"
    "  --limit-test N     evaluate on the first N test images only\n"
    "  --augment, --no-augment\n"
    "                     random shifts (MNIST-like) or crop+flip (CIFAR-10); default on\n\n"
    CLI_FOLDER_HELP "\n"
    CLI_MODEL_HELP "\n"
    "Training:\n"
    "  --epochs E         epochs (default 10)\n"
    "  --batch B          batch size (default 128)\n"
    "  --lr X             peak learning rate (default 2e-2 with --vo none, else 4e-3)\n"
    "  --wd X             AdamW weight decay on weight matrices (default 0.05)\n"
    "  --warmup E         linear warmup in epochs (default: 10% of the run, at most\n"
    "                     1 epoch, with --schedule cosine; none with constant)\n"
    CLI_REGIME_HELP
    CLI_PRECISION_HELP
    "  --seed S           seed for initialization, data order, augmentation (default 1)\n"
    "  --threads T        threads (default: all cores); results do not depend on it\n\n"
    "Data-parallel: mpirun -np R minformer train ... (a build with make MPI=1)\n"
    "trains each batch across R ranks with the same results as one process;\n"
    "rank 0 alone prints, logs and saves. Threads default to the cores per rank.\n\n"
    "Checkpoints:\n"
    "  --save PATH        save a safetensors checkpoint (with optimizer state) after\n"
    "                     every epoch and at the end; atomic: a crash leaves the old\n"
    "                     file or the new one, never a torn one\n"
    "  --save-every K     save every K epochs instead (and at the end)\n"
    "  --resume PATH      continue the run saved in PATH exactly; model, data and\n"
    "                     training options come from the checkpoint (--epochs may\n"
    "                     extend the run); saves back to PATH unless --save is given\n"
    "SIGINT, SIGTERM or SIGHUP finishes the current step, saves, prints how to\n"
    "resume and exits with 130, 143 or 129. A log or output that cannot be\n"
    "written (a full disk, a closed pipe) stops the run after saving the epoch.\n\n"
    "Output:\n"
    "  --log FILE         append one JSON object per epoch to FILE\n"
    "  --json             end with one JSON object summarizing the run\n";

enum {
    OPT_DATASET = OPT_CLI_LAST + 1, OPT_AUGMENT, OPT_NO_AUGMENT, OPT_EPOCHS, OPT_BATCH, OPT_LR,
    OPT_WD, OPT_WARMUP, OPT_SEED, OPT_LOG, OPT_SAVE, OPT_SAVE_EVERY, OPT_RESUME
};

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

typedef struct {
    mf_model *model;
    mf_checkpoint_info *info; /* what the checkpoint stores besides tensors */
    const char *save_path;
    int save_every;
    FILE *log;
    const char *log_path;
    int tty, epochs, batch;
    int lead; /* rank 0 of a data-parallel job, or the only process: prints, logs, saves */
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

/* After each epoch: the line on stdout, the log line, the checkpoint. A log
 * or an output that cannot be written (a full disk, a closed pipe) stops the
 * run, but only after the epoch's checkpoint is saved, so no work is lost. */
static mf_status on_epoch(void *vctx, const mf_epoch_stats *s, const mf_train_state *st, mf_error *err)
{
    run_ctx *ctx = vctx;
    if (!ctx->lead) return MF_OK;
    if (ctx->tty) fprintf(stderr, "\r\033[K");
    printf("epoch %d/%d  lr %.3g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1fs  "
           "%.0f img/s\n",
           s->epoch, ctx->epochs, s->lr, s->train_loss, 100.0 * s->train_acc, s->test_loss,
           100.0 * s->test_acc, s->seconds, s->images_per_second);
    errno = 0;
    int out_errno = fflush(stdout) || ferror(stdout) ? (errno ? errno : EIO) : 0;
    ctx->last = *s;
    int log_errno = 0;
    if (ctx->log) {
        char line[1024];
        errno = 0;
        if (mf_run_log_line(s, line, sizeof line) < 0 || fputs(line, ctx->log) == EOF ||
            fflush(ctx->log) || ferror(ctx->log))
            log_errno = errno ? errno : EIO;
    }
    ctx->train_images += (double)s->images;
    ctx->train_seconds += s->train_seconds;
    int save = ctx->save_path && (s->epoch % ctx->save_every == 0 || s->epoch == ctx->epochs);
    if (ctx->save_path && (log_errno || out_errno)) save = 1;
    if (save) {
        ctx->info->state = *st;
        mf_status rc = mf_checkpoint_save(ctx->save_path, ctx->model, ctx->info, 1, err);
        if (rc) return rc;
    }
    if (log_errno || out_errno) {
        char saved[1200];
        if (save)
            snprintf(saved, sizeof saved, "; epoch %d is saved in %s (resume with minformer train "
                     "--resume %s)", s->epoch, ctx->save_path, ctx->save_path);
        else
            snprintf(saved, sizeof saved, "; nothing was saved (no --save)");
        if (log_errno)
            return mf_fail(err, MF_ERR_IO, "%s: cannot write the log: %s%s", ctx->log_path,
                           strerror(log_errno), saved);
        return mf_fail(err, MF_ERR_IO, "cannot write the output: %s%s", strerror(out_errno), saved);
    }
    return MF_OK;
}

int cmd_train(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_MODEL_LONGOPTS,
        {"dataset", required_argument, 0, OPT_DATASET},
        CLI_OPT_DATA,
        CLI_OPT_LIMIT_TRAIN,
        CLI_OPT_LIMIT_TEST,
        CLI_FOLDER_LONGOPTS,
        {"augment", no_argument, 0, OPT_AUGMENT},
        {"no-augment", no_argument, 0, OPT_NO_AUGMENT},
        {"epochs", required_argument, 0, OPT_EPOCHS},
        {"batch", required_argument, 0, OPT_BATCH},
        {"lr", required_argument, 0, OPT_LR},
        {"wd", required_argument, 0, OPT_WD},
        {"warmup", required_argument, 0, OPT_WARMUP},
        CLI_OPT_SCHEDULE,
        CLI_OPT_PROTOCOL,
        CLI_OPT_PRECISION,
        {"seed", required_argument, 0, OPT_SEED},
        CLI_OPT_THREADS,
        {"log", required_argument, 0, OPT_LOG},
        CLI_OPT_JSON,
        {"save", required_argument, 0, OPT_SAVE},
        {"save-every", required_argument, 0, OPT_SAVE_EVERY},
        {"resume", required_argument, 0, OPT_RESUME},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *cmd = "train";
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    mf_train_opts to;
    mf_train_opts_default(&to);
    cli_common_opts co;
    cli_common_opts_init(&co);
    cli_folder_opts fo;
    cli_folder_opts_init(&fo);
    const char *dataset = NULL, *log_path = NULL, *save_path = NULL, *resume_path = NULL;
    int opt, rc = 0, save_every = 1;
    int epochs_given = 0, lr_given = 0, run_options = 0; /* options a resumed run takes from its checkpoint */
    /* --protocol first, wherever it stands: the options of the pass below
     * override its values. */
    mf_protocol protocol;
    int protocol_given = 0, schedule_given = 0;
    if ((rc = cli_protocol_scan(argc, argv, "h", longopts, cmd, &protocol, &protocol_given))) return rc;
    mf_protocol_apply(protocol, &to);
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_model_option(&mo, opt, optarg, cmd);
        if (r < 0) return -r;
        if (r || opt == OPT_LIMIT_TRAIN || opt == OPT_LIMIT_TEST) run_options++;
        if (!r) r = cli_common_option(&co, opt, optarg, cmd);
        if (!r) r = cli_folder_option(&fo, opt, optarg, cmd);
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_AUGMENT: case OPT_NO_AUGMENT: case OPT_BATCH: case OPT_LR: case OPT_WD: case OPT_WARMUP: case OPT_SEED:
            run_options++;
            break;
        }
        switch (opt) {
        case OPT_DATASET: dataset = optarg; break;
        case OPT_AUGMENT: to.augment = 1; break;
        case OPT_NO_AUGMENT: to.augment = 0; break;
        case OPT_EPOCHS:
            epochs_given = 1;
            rc = cli_parse_int(cmd, "epochs", optarg, 1, 100000, &to.epochs);
            break;
        case OPT_SAVE: rc = cli_path_arg(cmd, "--save", optarg); save_path = optarg; break;
        case OPT_SAVE_EVERY: rc = cli_parse_int(cmd, "save-every", optarg, 1, 100000, &save_every); break;
        case OPT_RESUME: rc = cli_path_arg(cmd, "--resume", optarg); resume_path = optarg; break;
        case OPT_BATCH: rc = cli_parse_int(cmd, "batch", optarg, 1, 65536, &to.batch); break;
        case OPT_LR:
            lr_given = 1;
            rc = cli_parse_float(cmd, "lr", optarg, 0.0, 1e30, &to.lr);
            break;
        case OPT_WD: rc = cli_parse_float(cmd, "wd", optarg, 0.0, 1e6, &to.adamw.weight_decay); break;
        case OPT_WARMUP: rc = cli_parse_float(cmd, "warmup", optarg, 0.0, 1e6, &to.warmup_epochs); break;
        case OPT_SCHEDULE:
            schedule_given = 1;
            rc = cli_parse_schedule(cmd, optarg, &to.schedule);
            break;
        case OPT_PROTOCOL: break; /* read by cli_protocol_scan */
        case OPT_SEED: rc = cli_parse_u64(cmd, "seed", optarg, &to.seed); break;
        case OPT_LOG: rc = cli_path_arg(cmd, "--log", optarg); log_path = optarg; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (resume_path && run_options)
        return cli_usage_error(cmd, "with --resume the model, data and training options come from "
                                    "the checkpoint; give only --data, --epochs, --threads, --save, "
                                    "--save-every, --log, --json, and --schedule, --protocol "
                                    "or --precision where they are the run's");
    if (!dataset && !resume_path) return cli_usage_error(cmd, "--dataset is required");
    if (log_path && ((save_path && cli_same_file(log_path, save_path)) ||
                     (resume_path && !save_path && cli_same_file(log_path, resume_path))))
        return cli_usage_error(cmd, "--log %s is the checkpoint's file: each would overwrite the "
                               "other", log_path);
    mf_error err;
    mf_error_clear(&err);
    mf_dataset_kind kind = MF_MNIST;
    if (dataset && mf_dataset_parse(dataset, &kind, &err)) return cli_usage_error(cmd, "%s", err.message);
    mf_set_threads(co.threads);

    run_ctx ctx = {0};
    /* A fresh run builds its model from the flags; a resumed one from the file. */
    mf_model model;
    memset(&model, 0, sizeof model);
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    mf_train_state st;
    mf_train_state_init(&st);
    mf_dataset ds;
    memset(&ds, 0, sizeof ds);
    mf_run_identity stored_id;
    memset(&stored_id, 0, sizeof stored_id);
    if (resume_path) {
        /* The data is compared once it is loaded, below. */
        if (mf_run_resume_load(resume_path, NULL, NULL, &model, &info, &err)) return cli_report(&err);
        mf_run_identity_of_checkpoint(&stored_id, &model.cfg, &info);
        if (dataset && kind != info.dataset) {
            mf_model_free(&model);
            return cli_usage_error(cmd, "--dataset %s differs from the checkpoint's %s", dataset,
                                   mf_dataset_name(info.dataset));
        }
        kind = info.dataset;
        /* The checkpoint names a folder dataset but not its path. */
        if (kind == MF_FOLDER && !mf_dataset_folder_path(dataset)) {
            mf_model_free(&model);
            return cli_usage_error(cmd, "the run trained on a folder dataset; resume it with "
                                   "--dataset folder:PATH (and its --image-size/--center-crop)");
        }
        if (protocol_given || schedule_given || co.precision_given) {
            /* What they ask for must be what the run was started with. */
            mf_train_opts asked = info.opts;
            if (protocol_given) {
                asked.batch = to.batch;
                asked.augment = to.augment;
                asked.adamw.weight_decay = to.adamw.weight_decay;
            }
            if (protocol_given || schedule_given) asked.schedule = to.schedule;
            if (co.precision_given) asked.precision = co.precision;
            mf_run_identity want;
            mf_run_identity_make(&want, info.dataset, &model.cfg, &asked, info.limit_train,
                                 info.limit_test, info.data_fingerprint);
            if (mf_run_identity_check(resume_path, &stored_id, &want, "a resumed run keeps the "
                                      "settings it was started with", &err)) {
                mf_model_free(&model);
                return cli_report(&err);
            }
        }
        cli_folder_opts_from_checkpoint(&fo, &info);
        int epochs = epochs_given ? to.epochs : info.opts.epochs;
        to = info.opts;
        to.epochs = epochs;
        st = info.state;
        co.limit_train = info.limit_train;
        co.limit_test = info.limit_test;
        if (!save_path) save_path = resume_path;
    } else {
        mf_config cfg;
        /* A folder's geometry and classes are known once it is loaded. */
        if (kind == MF_FOLDER) {
            if ((rc = cli_load_dataset(cmd, dataset, co.data_dir, &fo, &ds, NULL))) return rc;
            rc = cli_model_config_for(&mo, &ds, &cfg, cmd);
        } else {
            rc = cli_model_config(&mo, kind, &cfg, cmd);
        }
        if (rc || mf_model_create(&model, &cfg, &err)) {
            mf_dataset_free(&ds);
            return rc ? rc : cli_report(&err);
        }
        if (!lr_given) to.lr = mf_default_lr(&cfg);
        to.precision = co.precision;
        mf_model_init_weights(&model, to.seed);
    }
    const mf_config cfg = model.cfg;

    /* Started by mpirun as one of several ranks: join the job. Every rank
     * trains its share of each batch (mf_train) and ends with the same
     * parameters; rank 0 alone prints, logs and saves. From here on a rank
     * leaves only through `out`, where the ranks agree on failure before
     * MPI_Finalize, so none is left waiting for one that gave up. */
    int joined = 0, agreed = 0, lead = 1, ranks = 1;
    if (mf_dist_init(NULL, NULL, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    ranks = mf_dist_size();
    joined = ranks > 1;
    lead = mf_dist_rank() == 0;
    if (joined && co.threads == 0) {
        /* All cores would be shared by every rank on this machine. */
        int t = mf_get_threads() / mf_dist_local_size();
        mf_set_threads(t > 0 ? t : 1);
    }
    if (!lead && !freopen("/dev/null", "w", stdout)) {
        mf_fail(&err, MF_ERR_IO, "rank %d: cannot quiet stdout: %s", mf_dist_rank(), strerror(errno));
        rc = cli_report(&err);
        goto out;
    }
    /* What a save would trip over, checked before training rather than after
     * the first epoch. */
    if (lead && save_path && (rc = cli_check_output(save_path, "a checkpoint"))) goto out;
    if (!ds.train.images &&
        (rc = cli_load_dataset(cmd, dataset ? dataset : mf_dataset_name(kind), co.data_dir, &fo,
                               &ds, NULL)))
        goto out;
    mf_dataset_limit(&ds, co.limit_train, co.limit_test);
    if (ds.train.count < to.batch) {
        rc = cli_usage_error(cmd, "--batch %d is larger than the %d training images", to.batch,
                             ds.train.count);
        goto out;
    }
    if (resume_path) {
        /* Everything but the data comes from the checkpoint; --epochs may
         * change the length on purpose. The data must be the run's own. */
        mf_run_identity want = stored_id;
        char fp[32];
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)ds.fingerprint);
        mf_run_identity_set(&want, "data", fp, NULL);
        if (mf_run_identity_check(resume_path, &stored_id, &want,
                                  "resuming on other data would not continue the same run; give "
                                  "--data with the run's data", &err)) {
            rc = cli_report(&err);
            goto out;
        }
    }
    info.data_fingerprint = ds.fingerprint;
    info.dataset = kind;
    if (kind == MF_FOLDER) {
        info.class_names = ds.class_names;
        info.folder_image_size = fo.opts.image_size;
        info.folder_center_crop = fo.opts.center_crop;
    }
    memcpy(info.mean, ds.mean, sizeof info.mean);
    memcpy(info.std, ds.std, sizeof info.std);
    info.opts = to;
    info.limit_train = co.limit_train;
    info.limit_test = co.limit_test;
    if (resume_path) {
        if (st.epoch >= to.epochs) {
            printf("%s already finished its %d epochs; nothing to do (give --epochs to extend it)\n",
                   resume_path, to.epochs);
            goto out;
        }
        printf("resuming %s at epoch %d, step %ld\n", resume_path, st.epoch + 1, st.step);
    }

    ctx.tty = lead && cli_isatty_stderr();
    ctx.lead = lead;
    ctx.epochs = to.epochs;
    ctx.batch = to.batch;
    ctx.log_path = log_path;
    ctx.model = &model;
    ctx.info = &info;
    ctx.save_path = lead ? save_path : NULL;
    ctx.save_every = save_every;
    if (lead && log_path && !(ctx.log = fopen(log_path, "a"))) {
        mf_fail(&err, MF_ERR_IO, "%s: cannot open the log for appending: %s", log_path,
                strerror(errno));
        rc = cli_report(&err);
        goto out;
    }
    if (!co.json || ctx.tty) {
        printf("training %s on %s: %zu parameters, %d training / %d test images, %d threads",
               mf_qk_name(cfg.qk), mf_dataset_name(kind), model.num_params, ds.train.count,
               ds.test.count, mf_get_threads());
        if (joined) printf(" x %d ranks", ranks);
        printf("\n");
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* a closed terminal: save and stop, as for SIGTERM */
    mf_train_hooks hooks = {&ctx, show_progress, on_epoch};
    /* Every rank got here, or none trains. */
    agreed = 1;
    if (mf_dist_any(0)) {
        rc = EXIT_RUNTIME; /* the rank that failed said why */
        goto out;
    }
    double t0 = mf_now_seconds();
    mf_status s = mf_train(&model, &ds, &to, &st, &hooks, &stop_signal, &err);
    double total = mf_now_seconds() - t0;
    if (ctx.tty) fprintf(stderr, "\r\033[K");
    /* mf_train ends on every rank at the same step with the same status. */
    if (s == MF_ERR_INTERRUPTED && !lead) {
        rc = 128 + (stop_signal ? stop_signal : SIGTERM); /* the signal reached another rank */
        goto out;
    }
    if (s && !lead) {
        rc = err.status == MF_ERR_CONFIG ? EXIT_USAGE : EXIT_RUNTIME; /* rank 0 reports it */
        goto out;
    }
    if (s == MF_ERR_INTERRUPTED) {
        /* Stopped at a step boundary: save exactly there. */
        const char *path = save_path ? save_path : "minformer-interrupted.safetensors";
        fprintf(stderr, "minformer: %s\n", err.message);
        info.state = st;
        if (mf_checkpoint_save(path, &model, &info, 1, &err)) {
            rc = cli_report(&err);
            goto out;
        }
        /* The data directory is not in the checkpoint: a resume needs it again. */
        fprintf(stderr, "minformer: saved %s; resume with: minformer train --resume %s%s%s\n", path,
                path, co.data_dir ? " --data " : "", co.data_dir ? co.data_dir : "");
        rc = 128 + stop_signal;
        goto out;
    }
    if (s) {
        rc = cli_report(&err);
        goto out;
    }
    if (co.json) {
        mf_json_writer w = {0};
        mf_json_raw(&w, "{");
        cli_json_size(&w, "params", model.num_params);
        cli_json_int(&w, "epochs", to.epochs);
        cli_json_real(&w, "train_loss", "%.6f", ctx.last.train_loss);
        cli_json_real(&w, "train_acc", "%.6f", ctx.last.train_acc);
        cli_json_real(&w, "test_loss", "%.6f", ctx.last.test_loss);
        cli_json_real(&w, "test_acc", "%.6f", ctx.last.test_acc);
        cli_json_real(&w, "seconds", "%.3f", total);
        cli_json_real(&w, "images_per_second", "%.1f",
                      ctx.train_images / (ctx.train_seconds > 0 ? ctx.train_seconds : 1e-9));
        mf_json_raw(&w, "}");
        rc = cli_json_print(&w);
    }
out:
    if (joined && !agreed && mf_dist_any(rc != 0) && !rc) rc = EXIT_RUNTIME;
    if (ctx.log) fclose(ctx.log);
    mf_model_free(&model);
    mf_dataset_free(&ds);
    if (joined) mf_dist_finalize();
    return rc;
}
