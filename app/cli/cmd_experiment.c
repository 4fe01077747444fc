#define _POSIX_C_SOURCE 200809L /* sigaction: also without -fopenmp */
/* minformer experiment: runs one of the paper's grids, each run in its own
 * directory, resumable, then writes the results table and the figures;
 * with --jobs K, in K worker processes that share the directory. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli.h"
#include "experiment/experiment.h"

static const char *help_head =
    "Usage: minformer experiment NAME|FILE.json [options]\n\n"
    "Runs a built-in grid, or the grid of a JSON file (README: \"Grid files\"):\n"
    "an object with \"runs\", a list of settings, and/or \"axes\", lists of values\n"
    "whose product is taken (each run crossed with it); settings are train's long\n"
    "options with _ for - (dataset, preset, qk, vo, dim, layers, heads, mlp, patch,\n"
    "pool, dropout, epochs, batch, lr, tune_lr, wd, warmup, schedule, protocol,\n"
    "precision, seed, augment, limit_train, limit_test, tune_images, tune_val),\n"
    "\"name\" and \"variant\"; at the top level they apply to every run. The options\n"
    "below win over the file's settings.\n\n"
    "Each run trains, evaluates on the test split after every epoch and saves its\n"
    "log and checkpoint under DIR/<run>/ after every epoch. Finished runs are\n"
    "skipped; an interrupted run resumes from its checkpoint, so rerunning the same\n"
    "command continues a grid. At the end (and after each run) DIR/results.md,\n"
    "DIR/results.csv, DIR/loss-<dataset>.EXT and DIR/accuracy-params.EXT are written\n"
    "(EXT: --format's, png by default).\n\nGrids:\n";

static const char *help_tail =
    "\nOptions:\n"
    "  --epochs E         epochs per run (default: the grid's, above; else 10)\n"
    "  --out DIR          output directory (default runs/NAME, a file's NAME being\n"
    "                     its name without .json)\n"
    "  --data DIR         data directory (default $MINFORMER_DATA, else ./data)\n"
    "  --limit-train N    train on the first N training images (default: the grid's)\n"
    "  --limit-test N     evaluate on the first N test images\n"
    "  --only TEXT        run only the runs whose name contains TEXT\n"
    "  --seed S           seed (default 1)\n"
    "  --seeds K|LIST     train each row once per seed: K gives the seeds S..S+K-1\n"
    "                     of --seed S (default 1), LIST the seeds given (1,2,5); the\n"
    "                     runs are named <row>-s<seed>, and results.md and\n"
    "                     results.csv add each row's mean and sample standard\n"
    "                     deviation (n - 1) over its seeds, loss-<dataset> draws\n"
    "                     each row's mean curves with a band of one standard\n"
    "                     deviation, accuracy-params its mean with an error bar.\n"
    "                     Without --seeds a row has one run, named <row>, with --seed\n"
    "  --batch B          batch size (default 128)\n"
    "  --lr X             one learning rate for every run\n"
    "  --tune-lr          choose each run's learning rate from {1e-3, 3e-3, 1e-2} by\n"
    "                     accuracy on a validation split held out of the training\n"
    "                     split (never the test split); recorded in DIR/<run>/lr.json\n"
    "  --tune-images N    training images per sweep point (default 10000, 1 epoch)\n"
    "  --tune-val N       held-out validation images: the last N of the training\n"
    "                     split (default 5000)\n"
    "  --no-augment       no training augmentation\n"
    "  --augment          augmentation on (the default; wins over --protocol paper)\n"
    "  --wd X             AdamW weight decay (default 0.05; 0 makes it Adam)\n"
    CLI_REGIME_HELP
    CLI_PRECISION_HELP
    "  --format F         the figures' format: png (default), svg or pdf\n"
    "  --jobs K           train K runs at once, in K worker processes (default 1)\n"
    "  --threads T        threads in all (default: all cores); with --jobs K, job i\n"
    "                     of K gets T/K of them, one more for the first T mod K\n"
    "                     jobs, and at least 1\n\n"
    "Without --lr or --tune-lr a run uses 2e-2 when it has no W_v/W_o (--vo none)\n"
    "and 4e-3 otherwise, as train does. SIGINT or SIGTERM saves the current run and\n"
    "stops the grid with status 130 or 143 (SIGHUP: 129); rerun the command to resume.\n"
    "A run's directory holds run.json with every setting that affects its result and\n"
    "the data's fingerprint; a rerun with other settings (seed, batch, lr,\n"
    "--tune-lr, --wd, --schedule, --precision, --augment/--no-augment, a --protocol\n"
    "that changes any of these, limits, epochs, a grid file's model settings or\n"
    "warmup, other data) is refused with the list of what differs. Several processes\n"
    "may work on one directory at once, on one machine or on several that share the\n"
    "filesystem: each run is locked by the process that trains it and the others\n"
    "take the runs nobody holds. A held run is tried again after the others (and\n"
    "resumed if its holder stopped or died); one still held then is left to its\n"
    "holder, which writes the summary when it finishes, so the summary written last\n"
    "lists every finished run.\n";

enum {
    OPT_EPOCHS = OPT_CLI_LAST + 1, OPT_OUT, OPT_SEED, OPT_BATCH, OPT_LR, OPT_TUNE,
    OPT_TUNE_IMAGES, OPT_TUNE_VAL, OPT_NO_AUGMENT, OPT_ONLY, OPT_FORMAT, OPT_JOBS, OPT_WORKER,
    OPT_SEEDS, OPT_AUGMENT, OPT_WD
};

/* --seeds TEXT: a count K (no comma) or a comma-separated list of distinct
 * seeds. A count is resolved against --seed later: *count is K and *is_list
 * 0. Returns 0, or the usage error's status. */
static int parse_seeds(const char *cmd, const char *text, uint64_t *seeds, int *count, int *is_list)
{
    *count = 0;
    *is_list = strchr(text, ',') != NULL;
    if (!*is_list) return cli_parse_int(cmd, "seeds", text, 1, MF_EXPERIMENT_MAX_SEEDS, count);
    const char *p = text;
    for (;;) {
        char item[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item || *count == MF_EXPERIMENT_MAX_SEEDS)
            return cli_usage_error(cmd, "--seeds '%s': a count, or a list of at most %d seeds "
                                   "such as 1,2,5", text, MF_EXPERIMENT_MAX_SEEDS);
        memcpy(item, p, len);
        item[len] = '\0';
        uint64_t v;
        int rc = cli_parse_u64(cmd, "seeds", item, &v);
        if (rc) return rc;
        for (int i = 0; i < *count; i++)
            if (seeds[i] == v) return cli_usage_error(cmd, "--seeds '%s': seed %s is given twice", text, item);
        seeds[(*count)++] = v;
        if (!p[len]) return 0;
        p += len + 1;
    }
}

/* --jobs K at most (the largest grid has 16 runs): bounds job_pids. */
enum { MAX_JOBS = 256 };

static volatile sig_atomic_t stop_signal;
/* The --jobs workers, so that a signal to this process reaches them too (a
 * terminal's Ctrl-C reaches the whole process group anyway; kill PID or a
 * batch system's SIGTERM may not). kill is async-signal-safe. */
static volatile pid_t job_pids[MAX_JOBS];
static volatile sig_atomic_t job_count;
static void on_signal(int sig)
{
    stop_signal = sig;
    for (int i = 0; i < job_count; i++)
        if (job_pids[i] > 0) kill(job_pids[i], sig);
}

/* Every line this command prints: "[job I/K] " first in a --jobs worker,
 * whose lines interleave with its siblings'. Flushed per line, so that a
 * line is one write and lines of several processes do not mix. */
static char line_prefix[32];
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    printf("%s%s\n", line_prefix, line);
    fflush(stdout);
}

typedef struct {
    int tty, batch;
    /* "[k/N] run", printed before the run's first message: a run another
     * process holds is tried again after the others, and says nothing more
     * until it is this process's. */
    const char *header;
} progress;

static void flush_header(progress *p)
{
    if (p->header) say("%s", p->header);
    p->header = NULL;
}

static void show_message(void *ctx, const char *text)
{
    flush_header(ctx);
    say("%s", text);
}

static void show_batch(void *vctx, int epoch, int batch, int batches, float loss, float acc, double ips)
{
    progress *p = vctx;
    flush_header(p); /* the run is this process's: its first batch is done */
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
    flush_header(p);
    say("  epoch %d/%d  lr %.3g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1fs  "
        "%.0f img/s",
        s->epoch, epochs, s->lr, s->train_loss, 100.0 * s->train_acc, s->test_loss,
        100.0 * s->test_acc, s->seconds, s->images_per_second);
}

/* The epochs, or the range of them, that the grid's rows run under o. */
static void epochs_text(const mf_experiment_grid *g, const mf_experiment_opts *o, const char *only,
                        char *out, size_t size)
{
    int lo = 0, hi = 0;
    for (int i = 0; i < g->count; i++) {
        if (only && !strstr(g->specs[i].name, only)) continue;
        mf_experiment_opts r;
        mf_experiment_row_opts(o, &g->specs[i], &r);
        if (!lo || r.epochs < lo) lo = r.epochs;
        if (r.epochs > hi) hi = r.epochs;
    }
    if (lo == hi) snprintf(out, size, "%d epoch%s", lo, lo == 1 ? "" : "s");
    else snprintf(out, size, "%d-%d epochs", lo, hi);
}

/* The name of run i of the grid: row i / seeds, seed i % seeds (seeds > 0). */
static void item_name(const mf_experiment_grid *g, const uint64_t *seeds, int seed_count, int i,
                      char *out, size_t size)
{
    int per_row = seed_count ? seed_count : 1;
    mf_experiment_run_name_seed(&g->specs[i / per_row], seed_count > 0,
                                seed_count ? seeds[i % per_row] : 0, out, size);
}

static void usage_grids(void)
{
    fputs(help_head, stdout);
    int n;
    const mf_experiment_grid *g = mf_experiment_grids(&n);
    mf_experiment_opts o;
    mf_experiment_opts_default(&o);
    o.epochs = 10;
    for (int i = 0; i < n; i++) {
        char epochs[32];
        epochs_text(&g[i], &o, NULL, epochs, sizeof epochs);
        printf("  %-8s %d runs, default %s: %s\n", g[i].name, g[i].count, epochs, g[i].description);
    }
    printf("  (grids/NAME.json in the sources holds each, as an example of the format)\n");
    fputs(help_tail, stdout);
}

/* The share of T threads that job i (0-based) of K gets: T/K, one more for
 * the first T mod K jobs, at least 1. Every run's result is independent of
 * the thread count (a GEMM element depends only on its row, column and K;
 * backward sums fixed chunks in chunk order), so any share gives the bits
 * of a serial grid. */
static int job_threads(int threads, int jobs, int i)
{
    int t = threads / jobs + (i < threads % jobs);
    return t > 0 ? t : 1;
}

/* --jobs K: K workers on the grid's directory, each a fresh exec of this
 * binary with the same options and the hidden --worker I/K/T, cooperating
 * through the run locks exactly as separate experiment processes do; then
 * 0 when every worker exited 0, else the first non-zero status (a signal as
 * 128 + its number). A fresh exec rather than a bare fork: libgomp's thread
 * pool does not survive fork (a child that enters a parallel region after
 * its parent did can hang), and an exec starts each worker with no state of
 * this process at all (OpenMP, Cairo, open files; the run locks are
 * O_CLOEXEC). /proc/self/exe is the running binary even when the file was
 * rebuilt meanwhile, as main's exec for OMP_WAIT_POLICY relies on too. */
static int run_jobs(int argc, char **argv, int jobs, int threads)
{
    char spec[48];
    char **args = calloc((size_t)argc + 4, sizeof *args);
    if (!args) {
        fprintf(stderr, "minformer: out of memory\n");
        return EXIT_RUNTIME;
    }
    /* "minformer experiment --worker I/K/T" and then the user's arguments:
     * --worker first, so that it is an option even under POSIXLY_CORRECT. */
    args[0] = "minformer";
    args[1] = "experiment";
    args[2] = "--worker";
    args[3] = spec;
    for (int i = 1; i < argc; i++) args[3 + i] = argv[i];
    fflush(stdout);
    fflush(stderr);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pid_t self = getpid();
    int rc = 0;
    for (int i = 0; i < jobs && !stop_signal; i++) {
        snprintf(spec, sizeof spec, "%d/%d/%d", i + 1, jobs, job_threads(threads, jobs, i));
        /* Signals wait until the child's pid is recorded for forwarding. */
        sigprocmask(SIG_BLOCK, &block, &old);
        pid_t pid = fork();
        if (pid == 0) {
            struct sigaction dfl;
            memset(&dfl, 0, sizeof dfl);
            dfl.sa_handler = SIG_DFL;
            sigaction(SIGINT, &dfl, NULL);
            sigaction(SIGTERM, &dfl, NULL);
            sigaction(SIGHUP, &dfl, NULL);
            sigprocmask(SIG_SETMASK, &old, NULL);
#ifdef __linux__
            /* The parent killed outright: the worker saves its run and stops. */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != self) _exit(128 + SIGTERM);
#endif
            execv("/proc/self/exe", args);
            static const char msg[] = "minformer experiment: cannot start a --jobs worker: "
                                      "exec of /proc/self/exe failed\n";
            if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) _exit(EXIT_RUNTIME);
            _exit(EXIT_RUNTIME);
        }
        int e = errno;
        if (pid > 0) job_pids[job_count++] = pid;
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (pid < 0) {
            fprintf(stderr, "minformer: cannot start job %d of %d: %s\n", i + 1, jobs, strerror(e));
            rc = EXIT_RUNTIME;
            break;
        }
    }
    /* A failed fork or a signal before every job started: stop those that did. */
    if (rc || stop_signal)
        for (int i = 0; i < job_count; i++) kill(job_pids[i], stop_signal ? stop_signal : SIGTERM);
    for (int i = 0; i < job_count; i++) {
        int status;
        pid_t r;
        while ((r = waitpid(job_pids[i], &status, 0)) < 0 && errno == EINTR) {}
        int code = r < 0 ? EXIT_RUNTIME
                   : WIFEXITED(status) ? WEXITSTATUS(status)
                   : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : EXIT_RUNTIME;
        job_pids[i] = 0;
        if (code && !stop_signal)
            fprintf(stderr, "minformer: job %d of %d exited with status %d\n", i + 1, job_count, code);
        if (code && !rc) rc = code;
    }
    job_count = 0;
    free(args);
    return rc;
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
        CLI_OPT_PRECISION,
        {"seed", required_argument, 0, OPT_SEED},
        {"seeds", required_argument, 0, OPT_SEEDS},
        {"batch", required_argument, 0, OPT_BATCH},
        {"lr", required_argument, 0, OPT_LR},
        {"tune-lr", no_argument, 0, OPT_TUNE},
        {"tune-images", required_argument, 0, OPT_TUNE_IMAGES},
        {"tune-val", required_argument, 0, OPT_TUNE_VAL},
        {"no-augment", no_argument, 0, OPT_NO_AUGMENT},
        {"augment", no_argument, 0, OPT_AUGMENT},
        {"wd", required_argument, 0, OPT_WD},
        CLI_OPT_SCHEDULE,
        CLI_OPT_PROTOCOL,
        {"only", required_argument, 0, OPT_ONLY},
        {"format", required_argument, 0, OPT_FORMAT},
        {"jobs", required_argument, 0, OPT_JOBS},
        {"worker", required_argument, 0, OPT_WORKER}, /* internal: job I of K with T threads */
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *cmd = "experiment", *only = NULL, *format_name = NULL;
    cli_common_opts co;
    cli_common_opts_init(&co);
    mf_experiment_opts eo;
    mf_experiment_opts_default(&eo);
    eo.out_dir = NULL;
    int epochs = 0, opt, rc = 0, jobs = 1, worker = 0, worker_jobs = 0, worker_threads = 0;
    uint64_t seeds[MF_EXPERIMENT_MAX_SEEDS];
    int seed_count = 0, seeds_listed = 0;
    /* --protocol first, wherever it stands: the options below override it,
     * and what it sets wins over a grid file's rows as they do. */
    mf_protocol protocol;
    int protocol_given;
    if ((rc = cli_protocol_scan(argc, argv, "h", longopts, cmd, &protocol, &protocol_given))) return rc;
    mf_train_opts regime;
    mf_train_opts_default(&regime);
    mf_protocol_apply(protocol, &regime);
    eo.batch = regime.batch;
    eo.augment = regime.augment;
    eo.wd = regime.adamw.weight_decay;
    eo.schedule = regime.schedule;
    if (protocol_given) eo.given |= MF_EXP_BATCH | MF_EXP_AUGMENT | MF_EXP_WD | MF_EXP_SCHEDULE;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_common_option(&co, opt, optarg, cmd);
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_EPOCHS:
            rc = cli_parse_int(cmd, "epochs", optarg, 1, 100000, &epochs);
            eo.given |= MF_EXP_EPOCHS;
            break;
        case OPT_OUT: rc = cli_path_arg(cmd, "--out", optarg); eo.out_dir = optarg; break;
        case OPT_SEED:
            rc = cli_parse_u64(cmd, "seed", optarg, &eo.seed);
            eo.given |= MF_EXP_SEED;
            break;
        case OPT_SEEDS:
            rc = parse_seeds(cmd, optarg, seeds, &seed_count, &seeds_listed);
            eo.given |= MF_EXP_SEED;
            break;
        case OPT_BATCH:
            rc = cli_parse_int(cmd, "batch", optarg, 1, 65536, &eo.batch);
            eo.given |= MF_EXP_BATCH;
            break;
        case OPT_LR:
            rc = cli_parse_float(cmd, "lr", optarg, 1e-12, 1e6, &eo.lr);
            eo.given |= MF_EXP_LR | MF_EXP_TUNE_LR;
            break;
        case OPT_TUNE: eo.tune_lr = 1; eo.given |= MF_EXP_LR | MF_EXP_TUNE_LR; break;
        case OPT_TUNE_IMAGES:
            rc = cli_parse_int(cmd, "tune-images", optarg, 1, 1 << 30, &eo.tune_images);
            eo.given |= MF_EXP_TUNE_IMAGES;
            break;
        case OPT_TUNE_VAL:
            rc = cli_parse_int(cmd, "tune-val", optarg, 1, 1 << 30, &eo.tune_val);
            eo.given |= MF_EXP_TUNE_VAL;
            break;
        case OPT_NO_AUGMENT: eo.augment = 0; eo.given |= MF_EXP_AUGMENT; break;
        case OPT_AUGMENT: eo.augment = 1; eo.given |= MF_EXP_AUGMENT; break;
        case OPT_WD:
            rc = cli_parse_float(cmd, "wd", optarg, 0.0, 1e6, &eo.wd);
            eo.given |= MF_EXP_WD;
            break;
        case OPT_SCHEDULE:
            rc = cli_parse_schedule(cmd, optarg, &eo.schedule);
            eo.given |= MF_EXP_SCHEDULE;
            break;
        case OPT_PROTOCOL: break; /* read by cli_protocol_scan */
        case OPT_ONLY: only = optarg; break;
        case OPT_FORMAT: format_name = optarg; break;
        case OPT_JOBS: rc = cli_parse_int(cmd, "jobs", optarg, 1, MAX_JOBS, &jobs); break;
        case OPT_WORKER: {
            char end;
            if (sscanf(optarg, "%d/%d/%d%c", &worker, &worker_jobs, &worker_threads, &end) != 3 ||
                worker < 1 || worker > worker_jobs || worker_jobs > MAX_JOBS ||
                worker_threads < 1 || worker_threads > 1024)
                rc = cli_usage_error(cmd, "--worker '%s': internal to --jobs (I/K/THREADS)", optarg);
            break;
        }
        case 'h': usage_grids(); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (optind >= argc)
        return cli_usage_error(cmd, "name a grid: quick, table1, table2, table3 or a FILE.json");
    if (optind + 1 < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    if (eo.lr > 0 && eo.tune_lr) return cli_usage_error(cmd, "give --lr or --tune-lr, not both");
    if (co.limit_train) eo.given |= MF_EXP_LIMIT_TRAIN;
    if (co.limit_test) eo.given |= MF_EXP_LIMIT_TEST;
    /* A built-in grid's name, else a grid file: a path (with a '/' or
     * ending in .json) is always a file. */
    const char *name = argv[optind];
    size_t name_len = strlen(name);
    int is_file = strchr(name, '/') || (name_len >= 5 && !strcmp(name + name_len - 5, ".json"));
    const mf_experiment_grid *grid = is_file ? NULL : mf_experiment_grid_find(name);
    /* Static: still reachable at exit, whichever way the command returns. */
    static mf_experiment_grid file_grid;
    if (!grid && !is_file && access(name, F_OK))
        return cli_usage_error(cmd, "unknown grid '%s' (choose quick, table1, table2, table3, or "
                               "give a grid file, FILE.json)", name);
    if (!grid) {
        mf_error gerr;
        if (mf_experiment_grid_load(name, &file_grid, &gerr)) return cli_report(&gerr);
        grid = &file_grid;
    }
    if (format_name) {
        mf_error ferr;
        if (mf_figure_format_parse(format_name, &eo.figure_format, &ferr))
            return cli_usage_error(cmd, "%s", ferr.message);
    }
    if (seed_count && !seeds_listed) {
        for (int i = 0; i < seed_count; i++) seeds[i] = eo.seed + (uint64_t)i;
        if (seeds[seed_count - 1] < eo.seed)
            return cli_usage_error(cmd, "--seeds %d: --seed %llu + %d passes 2^64", seed_count,
                                   (unsigned long long)eo.seed, seed_count - 1);
    }
    eo.seeds = seeds;
    eo.seed_count = seed_count;
    /* The grid's runs: row i / per_row with seed i % per_row. */
    const int per_row = seed_count ? seed_count : 1, items = grid->count * per_row;
    /* Not given: train's default, unless the grid's rows set them. */
    eo.epochs = epochs ? epochs : 10;
    eo.limit_train = co.limit_train;
    eo.limit_test = co.limit_test;
    eo.precision = co.precision;
    if (co.precision_given) eo.given |= MF_EXP_PRECISION;
    char out_dir[512];
    if (!eo.out_dir) {
        snprintf(out_dir, sizeof out_dir, "runs/%s", grid->name);
        eo.out_dir = out_dir;
    }
    if (worker) {
        snprintf(line_prefix, sizeof line_prefix, "[job %d/%d] ", worker, worker_jobs);
        jobs = 1;
        co.threads = worker_threads;
    }
    mf_set_threads(co.threads);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* a closed terminal: save and stop, as for SIGTERM */

    int selected = 0;
    for (int i = 0; i < items; i++) {
        char run[96];
        item_name(grid, seeds, seed_count, i, run, sizeof run);
        selected += !only || strstr(run, only);
    }
    if (!selected) return cli_usage_error(cmd, "--only '%s' matches no run of %s", only, grid->name);
    if (jobs > selected) jobs = selected; /* one run per job at most */
    int threads = mf_get_threads();
    char how[96];
    int fewest = job_threads(threads, jobs, jobs - 1), most = job_threads(threads, jobs, 0);
    if (jobs > 1 && fewest != most)
        snprintf(how, sizeof how, "%d jobs of %d-%d threads", jobs, fewest, most);
    else if (jobs > 1)
        snprintf(how, sizeof how, "%d jobs of %d thread%s", jobs, most, most > 1 ? "s" : "");
    else
        snprintf(how, sizeof how, "%d thread%s", threads, threads > 1 ? "s" : "");
    /* The rows' epochs and training images under these options. */
    char epochs_said[32];
    epochs_text(grid, &eo, only, epochs_said, sizeof epochs_said);
    int limit_lo = -1, limit_hi = 0;
    for (int i = 0; i < grid->count; i++) {
        if (only && !strstr(grid->specs[i].name, only)) continue;
        mf_experiment_opts ro;
        mf_experiment_row_opts(&eo, &grid->specs[i], &ro);
        int l = ro.limit_train ? ro.limit_train : 1 << 30;
        if (limit_lo < 0 || l < limit_lo) limit_lo = l;
        if (l > limit_hi) limit_hi = l;
    }
    int limited = limit_lo > 0 && limit_lo < (1 << 30);
    say("experiment %s: %d runs, %s each, %s training images, %s, into %s/", grid->name, selected,
        epochs_said, limited ? "limited to the first" : "all", how, eo.out_dir);
    if (grid == &file_grid && grid->description[0]) say("  %s", grid->description);
    if (limited && limit_lo == limit_hi) say("  (first %d training images)", limit_lo);
    else if (limited) say("  (first %d training images, or more in some runs)", limit_lo);
    /* After the workers, this process goes over the grid once more: every run
     * is finished then, so it only loads the data (for its fingerprints),
     * checks each run's files against the settings and writes the summary. */
    int after_jobs = 0;
    if (jobs > 1) {
        if ((rc = run_jobs(argc, argv, jobs, threads))) {
            if (stop_signal) {
                fprintf(stderr, "minformer: stopped; rerun the same command to resume\n");
                rc = 128 + stop_signal;
            }
            return rc;
        }
        after_jobs = 1;
    }

    progress pr = {worker || jobs > 1 ? 0 : cli_isatty_stderr(), eo.batch, NULL};
    mf_experiment_hooks hooks = {&pr, show_message, show_batch, show_epoch};
    mf_experiment_result *results = calloc((size_t)items, sizeof *results);
    mf_experiment_result *summary = calloc((size_t)items, sizeof *summary);
    /* Per run of the grid: 0 to do, 1 done with (finished, failed, not
     * selected); waited: found held by another process at least once. */
    char *done = calloc((size_t)items, 1), *waited = calloc((size_t)items, 1);
    mf_dataset data[3];
    int loaded[3] = {0, 0, 0};
    uint64_t fingerprints[3] = {0, 0, 0};
    memset(data, 0, sizeof data);
    mf_error err;
    mf_error_clear(&err);
    if (!results || !summary || !done || !waited) {
        mf_fail(&err, MF_ERR_NOMEM, "out of memory");
        rc = cli_report(&err);
        goto out;
    }
    int n = 0, failed = 0, in_summary = 0, other = 0, held = 0;
    for (int i = 0; i < items; i++) {
        char run[96];
        item_name(grid, seeds, seed_count, i, run, sizeof run);
        done[i] = only && !strstr(run, only);
    }
    /* Passes over the runs still to do. A run another process holds is left
     * to it for now and tried again after the others: its holder may have
     * finished it meanwhile (then it is skipped here), or stopped or died
     * (the kernel drops a dead process's lock), and then this process
     * resumes it from its checkpoint. A pass that finds only held runs ends
     * the loop: they are their holders' to finish, and each holder writes
     * the summary after each run it finishes, so the summary written last
     * lists every finished run. So no process waits on another, and a batch
     * job whose runs are all taken ends instead of idling. */
    for (int interrupted = 0, progressed = 1; progressed && !interrupted && !stop_signal;) {
        held = 0;
        progressed = 0;
        for (int i = 0, k = 0; i < items && !stop_signal; i++) {
            const mf_experiment_spec *spec = &grid->specs[i / per_row];
            char run[96], header[160];
            item_name(grid, seeds, seed_count, i, run, sizeof run);
            if (seed_count) eo.seed = seeds[i % per_row];
            if (only && !strstr(run, only)) continue;
            k++;
            if (done[i]) continue;
            int d = (int)spec->dataset;
            if (!loaded[d]) {
                if (mf_dataset_load(&data[d], spec->dataset, mf_data_dir(co.data_dir), &err)) {
                    rc = cli_report(&err);
                    goto out;
                }
                loaded[d] = 1;
                fingerprints[d] = data[d].fingerprint;
            }
            /* The run's share of the data: a view with its row's limits. */
            mf_experiment_opts ro;
            mf_experiment_row_opts(&eo, spec, &ro);
            mf_dataset view = data[d];
            mf_dataset_limit(&view, ro.limit_train, ro.limit_test);
            snprintf(header, sizeof header, "[%d/%d] %s", k, selected, run);
            pr.header = header;
            mf_experiment_result *r = &results[n];
            mf_status s = mf_experiment_run(&eo, spec, &view, &hooks, &stop_signal, r, &err);
            if (pr.tty) fprintf(stderr, "\r\033[K");
            if (r->in_progress && !s) {
                if (!waited[i]) {
                    say("%s", header);
                    say("  in progress in another process; left to it for now");
                }
                waited[i] = 1;
                pr.header = NULL;
                held++;
                continue;
            }
            done[i] = 1;
            progressed++;
            if (s == MF_ERR_INTERRUPTED) {
                flush_header(&pr);
                if (r->saved)
                    fprintf(stderr, "minformer: %s%s; saved %s/%s/checkpoint.safetensors\n",
                            line_prefix, err.message, eo.out_dir, run);
                else
                    fprintf(stderr, "minformer: %s%s; %s had no checkpoint yet (stopped while "
                            "tuning its learning rate, or its save failed)\n", line_prefix,
                            err.message, run);
                interrupted = 1;
                break;
            }
            if (s == MF_ERR_CONFIG || s == MF_ERR_IO || s == MF_ERR_NOMEM || s == MF_ERR_FORMAT) {
                /* Settings that differ, a bad file or a full disk concern every run: stop. */
                flush_header(&pr);
                rc = cli_report(&err);
                goto out;
            }
            if (s) {
                /* One failed run (a diverged one, say) does not cost the rest of the grid. */
                flush_header(&pr);
                fprintf(stderr, "minformer: %s%s: %s\n", line_prefix, run, err.message);
                failed++;
                continue;
            }
            if (r->skipped && after_jobs) {
                pr.header = NULL; /* the workers reported it */
            } else if (r->skipped) {
                flush_header(&pr);
                say("  %s: test acc %.2f%% after %d epochs (lr %g); skipped",
                    waited[i] ? "finished in another process" : "finished before",
                    100.0 * r->test_acc, r->epochs, (double)r->lr);
            } else {
                flush_header(&pr);
                say("  done: %zu parameters, lr %g, test acc %.2f%% (best %.2f%% at epoch %d), %.0f s",
                    r->params, (double)r->lr, 100.0 * r->test_acc, 100.0 * r->best_test_acc,
                    r->best_epoch, r->seconds);
            }
            n++;
            if (!r->skipped && mf_experiment_write_summary(&eo, grid, fingerprints, summary,
                                                           &in_summary, &other, &err)) {
                rc = cli_report(&err);
                goto out;
            }
        }
        if (!held) break;
    }
    /* The summary covers every finished run of the grid in the directory made
     * with these settings, whoever trained it, not only this call's runs. */
    if (mf_experiment_write_summary(&eo, grid, fingerprints, summary, &in_summary, &other, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    if (in_summary && !worker) {
        char *md = mf_experiment_markdown(summary, in_summary);
        printf("\n%s\n", md ? md : "");
        free(md);
        printf("Results: %s/results.md and %s/results.csv (%d finished run%s of %d)\n", eo.out_dir,
               eo.out_dir, in_summary, in_summary == 1 ? "" : "s", items);
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
        say("(%d finished run%s in %s made with other settings %s left out of the summary)",
            other, other == 1 ? "" : "s", eo.out_dir, other == 1 ? "is" : "are");
    if (held && !stop_signal)
        say("%d run%s in progress in another process, which writes the summary when it "
            "finishes; rerun the command later to see it, or to resume a run whose process "
            "stopped", held, held == 1 ? " is" : "s are");
    if (stop_signal) {
        fprintf(stderr, "minformer: %sstopped; rerun the same command to resume\n", line_prefix);
        rc = 128 + stop_signal;
    } else if (failed) {
        fprintf(stderr, "minformer: %s%d run%s failed\n", line_prefix, failed, failed == 1 ? "" : "s");
        rc = EXIT_RUNTIME;
    }
out:
    for (int d = 0; d < 3; d++)
        if (loaded[d]) mf_dataset_free(&data[d]);
    free(results);
    free(summary);
    free(done);
    free(waited);
    return rc;
}
