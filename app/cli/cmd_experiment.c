#define _POSIX_C_SOURCE 200809L /* sigaction: also without -fopenmp */
/* minformer experiment: runs one of the paper's grids, each run in its own
 * directory, resumable, then writes the results table and the figures. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "experiment/experiment.h"

static const char *help_head =
    "Usage: minformer experiment NAME [options]\n\n"
    "Runs a named grid. Each run trains, evaluates on the test split after every\n"
    "epoch and saves its log and checkpoint under DIR/<run>/ after every epoch.\n"
    "Finished runs are skipped; an interrupted run resumes from its checkpoint, so\n"
    "rerunning the same command continues a grid. At the end (and after each run)\n"
    "DIR/results.md, DIR/results.csv, DIR/loss-<dataset>.EXT and\n"
    "DIR/accuracy-params.EXT are written (EXT: --format's, png by default).\n\nGrids:\n";

static const char *help_tail =
    "\nOptions:\n"
    "  --epochs E         epochs per run (default: the grid's, above)\n"
    "  --out DIR          output directory (default runs/NAME)\n"
    "  --data DIR         data directory (default $MINFORMER_DATA, else ./data)\n"
    "  --limit-train N    train on the first N training images (default: the grid's)\n"
    "  --limit-test N     evaluate on the first N test images\n"
    "  --only TEXT        run only the runs whose name contains TEXT\n"
    "  --seed S           seed (default 1)\n"
    "  --batch B          batch size (default 128)\n"
    "  --lr X             one learning rate for every run\n"
    "  --tune-lr          choose each run's learning rate from {1e-3, 3e-3, 1e-2} by\n"
    "                     accuracy on a validation split held out of the training\n"
    "                     split (never the test split); recorded in DIR/<run>/lr.json\n"
    "  --tune-images N    training images per sweep point (default 10000, 1 epoch)\n"
    "  --tune-val N       held-out validation images: the last N of the training\n"
    "                     split (default 5000)\n"
    "  --no-augment       no training augmentation\n"
    "  --format F         the figures' format: png (default), svg or pdf\n"
    "  --threads T        threads (default: all cores)\n\n"
    "Without --lr or --tune-lr a run uses 2e-2 when it has no W_v/W_o (--vo none)\n"
    "and 4e-3 otherwise, as train does. SIGINT or SIGTERM saves the current run and\n"
    "stops the grid with status 130 or 143 (SIGHUP: 129); rerun the command to resume.\n"
    "A run's directory holds run.json with every setting that affects its result and\n"
    "the data's fingerprint; a rerun with other settings (seed, batch, lr, --tune-lr,\n"
    "--no-augment, limits, epochs, other data) is refused with the list of what\n"
    "differs. Several processes may work on one directory at once: each run is\n"
    "locked by the process that trains it, others skip it for now, and the summary\n"
    "always covers every finished run of the grid.\n";

enum {
    OPT_EPOCHS = OPT_CLI_LAST + 1, OPT_OUT, OPT_SEED, OPT_BATCH, OPT_LR, OPT_TUNE,
    OPT_TUNE_IMAGES, OPT_TUNE_VAL, OPT_NO_AUGMENT, OPT_ONLY, OPT_FORMAT
};

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

typedef struct {
    int tty, batch;
} progress;

static void show_message(void *ctx, const char *text)
{
    (void)ctx;
    printf("%s\n", text);
    fflush(stdout);
}

static void show_batch(void *vctx, int epoch, int batch, int batches, float loss, float acc, double ips)
{
    progress *p = vctx;
    if (!p->tty) return;
    int eta = ips > 0 ? (int)((double)(batches - batch) * p->batch / ips) : 0;
    fprintf(stderr, "\r  epoch %d: %d/%d loss %.4f acc %5.1f%% %6.0f img/s ETA %d:%02d ", epoch,
            batch, batches, loss, 100.0 * acc, ips, eta / 60, eta % 60);
    fflush(stderr);
}

static void show_epoch(void *vctx, const mf_epoch_stats *s, int epochs)
{
    progress *p = vctx;
    if (p->tty) fprintf(stderr, "\r\033[K");
    printf("  epoch %d/%d  lr %.3g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1fs  "
           "%.0f img/s\n",
           s->epoch, epochs, s->lr, s->train_loss, 100.0 * s->train_acc, s->test_loss,
           100.0 * s->test_acc, s->seconds, s->images_per_second);
    fflush(stdout);
}

static void usage_grids(void)
{
    fputs(help_head, stdout);
    int n;
    const mf_experiment_grid *g = mf_experiment_grids(&n);
    for (int i = 0; i < n; i++) {
        printf("  %-8s %d runs, default %d epochs%s: %s\n", g[i].name, g[i].count,
               g[i].default_epochs, g[i].default_limit_train ? " on limited data" : "",
               g[i].description);
        if (g[i].default_limit_train)
            printf("  %-8s (first %d training images unless --limit-train)\n", "",
                   g[i].default_limit_train);
    }
    fputs(help_tail, stdout);
}

int cmd_experiment(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"epochs", required_argument, 0, OPT_EPOCHS},
        {"out", required_argument, 0, OPT_OUT},
        CLI_OPT_DATA,
        CLI_OPT_THREADS,
        CLI_OPT_LIMIT_TRAIN,
        CLI_OPT_LIMIT_TEST,
        {"seed", required_argument, 0, OPT_SEED},
        {"batch", required_argument, 0, OPT_BATCH},
        {"lr", required_argument, 0, OPT_LR},
        {"tune-lr", no_argument, 0, OPT_TUNE},
        {"tune-images", required_argument, 0, OPT_TUNE_IMAGES},
        {"tune-val", required_argument, 0, OPT_TUNE_VAL},
        {"no-augment", no_argument, 0, OPT_NO_AUGMENT},
        {"only", required_argument, 0, OPT_ONLY},
        {"format", required_argument, 0, OPT_FORMAT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *cmd = "experiment", *only = NULL, *format_name = NULL;
    cli_common_opts co;
    cli_common_opts_init(&co);
    mf_experiment_opts eo;
    mf_experiment_opts_default(&eo);
    eo.out_dir = NULL;
    int epochs = 0, opt, rc = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_common_option(&co, opt, optarg, cmd);
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_EPOCHS: rc = cli_parse_int(cmd, "epochs", optarg, 1, 100000, &epochs); break;
        case OPT_OUT: rc = cli_path_arg(cmd, "--out", optarg); eo.out_dir = optarg; break;
        case OPT_SEED: rc = cli_parse_u64(cmd, "seed", optarg, &eo.seed); break;
        case OPT_BATCH: rc = cli_parse_int(cmd, "batch", optarg, 1, 65536, &eo.batch); break;
        case OPT_LR: rc = cli_parse_float(cmd, "lr", optarg, 1e-12, 1e6, &eo.lr); break;
        case OPT_TUNE: eo.tune_lr = 1; break;
        case OPT_TUNE_IMAGES: rc = cli_parse_int(cmd, "tune-images", optarg, 1, 1 << 30, &eo.tune_images); break;
        case OPT_TUNE_VAL: rc = cli_parse_int(cmd, "tune-val", optarg, 1, 1 << 30, &eo.tune_val); break;
        case OPT_NO_AUGMENT: eo.augment = 0; break;
        case OPT_ONLY: only = optarg; break;
        case OPT_FORMAT: format_name = optarg; break;
        case 'h': usage_grids(); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (optind >= argc) return cli_usage_error(cmd, "name a grid: quick, table1, table2 or table3");
    if (optind + 1 < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    const char *name = argv[optind];
    const mf_experiment_grid *grid = mf_experiment_grid_find(name);
    if (!grid) return cli_usage_error(cmd, "unknown grid '%s' (choose quick, table1, table2, table3)", name);
    if (eo.lr > 0 && eo.tune_lr) return cli_usage_error(cmd, "give --lr or --tune-lr, not both");
    if (format_name) {
        mf_error ferr;
        if (mf_figure_format_parse(format_name, &eo.figure_format, &ferr))
            return cli_usage_error(cmd, "%s", ferr.message);
    }
    eo.epochs = epochs ? epochs : grid->default_epochs;
    /* 0: not given (a limit is at least 1), so the grid's. */
    eo.limit_train = co.limit_train ? co.limit_train : grid->default_limit_train;
    if (co.limit_test) eo.limit_test = co.limit_test;
    char out_dir[512];
    if (!eo.out_dir) {
        snprintf(out_dir, sizeof out_dir, "runs/%s", grid->name);
        eo.out_dir = out_dir;
    }
    mf_set_threads(co.threads);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* a closed terminal: save and stop, as for SIGTERM */

    progress pr = {cli_isatty_stderr(), eo.batch};
    mf_experiment_hooks hooks = {&pr, show_message, show_batch, show_epoch};
    mf_experiment_result *results = calloc((size_t)grid->count, sizeof *results);
    mf_experiment_result *summary = calloc((size_t)grid->count, sizeof *summary);
    mf_dataset data[3];
    int loaded[3] = {0, 0, 0};
    uint64_t fingerprints[3] = {0, 0, 0};
    memset(data, 0, sizeof data);
    mf_error err;
    mf_error_clear(&err);
    if (!results || !summary) {
        free(results);
        free(summary);
        mf_fail(&err, MF_ERR_NOMEM, "out of memory");
        return cli_report(&err);
    }
    int n = 0, failed = 0, selected = 0, busy = 0, in_summary = 0, other = 0;
    for (int i = 0; i < grid->count; i++) {
        char run[96];
        mf_experiment_run_name(&grid->specs[i], run, sizeof run);
        selected += !only || strstr(run, only);
    }
    printf("experiment %s: %d runs, %d epochs each, %s training images, %d threads, into %s/\n",
           grid->name, selected, eo.epochs, eo.limit_train ? "limited to the first" : "all",
           mf_get_threads(), eo.out_dir);
    if (eo.limit_train) printf("  (first %d training images)\n", eo.limit_train);
    int k = 0;
    for (int i = 0; i < grid->count && !stop_signal; i++) {
        const mf_experiment_spec *spec = &grid->specs[i];
        char run[96];
        mf_experiment_run_name(spec, run, sizeof run);
        if (only && !strstr(run, only)) continue;
        k++;
        int d = (int)spec->dataset;
        if (!loaded[d]) {
            if (mf_dataset_load(&data[d], spec->dataset, mf_data_dir(co.data_dir), &err)) {
                rc = cli_report(&err);
                goto out;
            }
            mf_dataset_limit(&data[d], eo.limit_train, eo.limit_test);
            loaded[d] = 1;
            fingerprints[d] = data[d].fingerprint;
        }
        printf("[%d/%d] %s\n", k, selected, run);
        fflush(stdout);
        mf_experiment_result *r = &results[n];
        mf_status s = mf_experiment_run(&eo, spec, &data[d], &hooks, &stop_signal, r, &err);
        if (pr.tty) fprintf(stderr, "\r\033[K");
        if (s == MF_ERR_INTERRUPTED) {
            if (r->saved)
                fprintf(stderr, "minformer: %s; saved %s/%s/checkpoint.safetensors\n", err.message,
                        eo.out_dir, run);
            else
                fprintf(stderr, "minformer: %s; %s had no checkpoint yet (stopped while tuning "
                        "its learning rate, or its save failed)\n", err.message, run);
            break;
        }
        if (s == MF_ERR_CONFIG || s == MF_ERR_IO || s == MF_ERR_NOMEM || s == MF_ERR_FORMAT) {
            /* Settings that differ, a bad file or a full disk concern every run: stop. */
            rc = cli_report(&err);
            goto out;
        }
        if (s) {
            /* One failed run (a diverged one, say) does not cost the rest of the grid. */
            fprintf(stderr, "minformer: %s: %s\n", run, err.message);
            failed++;
            continue;
        }
        if (r->in_progress) {
            printf("  in progress in another process; skipped for now\n");
            busy++;
            continue;
        }
        if (r->skipped)
            printf("  finished before: test acc %.2f%% after %d epochs (lr %g); skipped\n",
                   100.0 * r->test_acc, r->epochs, (double)r->lr);
        else
            printf("  done: %zu parameters, lr %g, test acc %.2f%% (best %.2f%% at epoch %d), %.0f s\n",
                   r->params, (double)r->lr, 100.0 * r->test_acc, 100.0 * r->best_test_acc,
                   r->best_epoch, r->seconds);
        n++;
        if (!r->skipped && mf_experiment_write_summary(&eo, grid, fingerprints, summary, &in_summary,
                                                       &other, &err)) {
            rc = cli_report(&err);
            goto out;
        }
    }
    /* The summary covers every finished run of the grid in the directory made
     * with these settings, whoever trained it, not only this call's runs. */
    if (mf_experiment_write_summary(&eo, grid, fingerprints, summary, &in_summary, &other, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    if (in_summary) {
        char *md = mf_experiment_markdown(summary, in_summary);
        printf("\n%s\n", md ? md : "");
        free(md);
        printf("Results: %s/results.md and %s/results.csv (%d finished run%s of %d)\n", eo.out_dir,
               eo.out_dir, in_summary, in_summary == 1 ? "" : "s", grid->count);
        const char *ext = mf_figure_format_name(eo.figure_format);
        printf("Figures: %s/accuracy-params.%s", eo.out_dir, ext);
        for (int d = 0; d < 3; d++) {
            int any = 0;
            for (int i = 0; i < in_summary; i++) any |= (int)summary[i].spec.dataset == d;
            if (any) printf(", %s/loss-%s.%s", eo.out_dir, mf_dataset_name((mf_dataset_kind)d), ext);
        }
        printf("\nRuns: %s/<run>/ (log.jsonl, checkpoint.safetensors; see minformer attention "
               "--checkpoint)\n", eo.out_dir);
    }
    if (other)
        printf("(%d finished run%s in %s made with other settings %s left out of the summary)\n",
               other, other == 1 ? "" : "s", eo.out_dir, other == 1 ? "is" : "are");
    if (busy)
        printf("%d run%s in progress in another process; rerun the command later to collect %s\n",
               busy, busy == 1 ? " is" : "s are", busy == 1 ? "it" : "them");
    if (stop_signal) {
        fprintf(stderr, "minformer: stopped; rerun the same command to resume\n");
        rc = 128 + stop_signal;
    } else if (failed) {
        fprintf(stderr, "minformer: %d run%s failed\n", failed, failed == 1 ? "" : "s");
        rc = EXIT_RUNTIME;
    }
out:
    for (int d = 0; d < 3; d++)
        if (loaded[d]) mf_dataset_free(&data[d]);
    free(results);
    free(summary);
    return rc;
}
