/* minformer plot: training curves from any training logs (the JSON lines of
 * `train --log` and `experiment`), as a PNG, SVG or PDF. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "figures/figures.h"

static const char *help =
    "Usage: minformer plot LOG.jsonl... --out FILE [options]\n\n"
    "Draws training loss (solid) and test loss (dashed) per epoch of each log, one\n"
    "color per log, named by the log's directory when the file is log.jsonl.\n\n"
    "  --out FILE         the picture to write (required): FILE.png, FILE.svg or\n"
    "                     FILE.pdf\n"
    "  --format F         png, svg or pdf, whatever FILE's extension\n"
    "  --width W          pixels, or points for SVG and PDF (default 1200)\n"
    "  --height H         pixels or points (default 800)\n"
    "  --title TEXT       title (default \"loss per epoch\", with --accuracy\n"
    "                     \"accuracy per epoch\")\n"
    "  --accuracy         accuracy in % instead of loss\n"
    "  --mean-seeds       logs of runs named <row>-s<seed> (experiment --seeds) as\n"
    "                     one curve per row: the mean over its seeds at each epoch\n"
    "                     that all of them reached, with a band of one sample\n"
    "                     standard deviation; a row of one seed as it is\n";

enum { OPT_OUT = OPT_CLI_LAST + 1, OPT_FORMAT, OPT_WIDTH, OPT_HEIGHT, OPT_TITLE, OPT_ACC,
       OPT_MEAN_SEEDS };

/* The length of label without a trailing "-s<digits>" (a seeded run's suffix). */
static size_t row_length(const char *label)
{
    size_t n = strlen(label), d = n;
    while (d > 0 && label[d - 1] >= '0' && label[d - 1] <= '9') d--;
    return d < n && d >= 3 && label[d - 1] == 's' && label[d - 2] == '-' ? d - 2 : n;
}

/* "runs/quick/mnist-L6-H1-mlp4-unchanged/log.jsonl" -> "mnist-L6-H1-mlp4-unchanged";
 * "a/b/run1.jsonl" -> "run1". */
static void log_label(const char *path, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!strcmp(base, "log.jsonl") && base > path + 1) {
        const char *end = base - 1, *start = end;
        while (start > path && start[-1] != '/') start--;
        snprintf(out, size, "%.*s", (int)(end - start), start);
        return;
    }
    const char *dot = strrchr(base, '.');
    snprintf(out, size, "%.*s", (int)(dot && dot > base ? dot - base : (long)strlen(base)), base);
}

int cmd_plot(int argc, char **argv)
{
    static const struct option longopts[] = {{"out", required_argument, 0, OPT_OUT},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             {"width", required_argument, 0, OPT_WIDTH},
                                             {"height", required_argument, 0, OPT_HEIGHT},
                                             {"title", required_argument, 0, OPT_TITLE},
                                             {"accuracy", no_argument, 0, OPT_ACC},
                                             {"mean-seeds", no_argument, 0, OPT_MEAN_SEEDS},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *cmd = "plot", *out = NULL, *title = NULL, *format_name = NULL;
    int width = 1200, height = 800, acc = 0, mean_seeds = 0, opt, rc = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_OUT: rc = cli_path_arg(cmd, "--out", out = optarg); break;
        case OPT_FORMAT: format_name = optarg; break;
        case OPT_WIDTH: rc = cli_parse_int(cmd, "width", optarg, 160, MF_FIGURE_MAX_SIDE, &width); break;
        case OPT_HEIGHT: rc = cli_parse_int(cmd, "height", optarg, 120, MF_FIGURE_MAX_SIDE, &height); break;
        case OPT_TITLE: title = optarg; break;
        case OPT_ACC: acc = 1; break;
        case OPT_MEAN_SEEDS: mean_seeds = 1; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (!out) return cli_usage_error(cmd, "--out FILE is required");
    int n = argc - optind;
    if (n < 1) return cli_usage_error(cmd, "give at least one log file");
    for (int i = optind; i < argc; i++)
        if ((rc = cli_path_arg(cmd, "a log file", argv[i]))) return rc;
    mf_error err;
    mf_error_clear(&err);
    mf_figure_format format;
    if ((rc = cli_check_output(out, "the picture"))) return rc;
    if (mf_figure_format_choose(format_name, out, &format, &err))
        return cli_usage_error(cmd, "%s", err.message);
    mf_training_log *logs = calloc((size_t)n, sizeof *logs);
    char (*names)[128] = calloc((size_t)n, sizeof *names);
    const char **labels = calloc((size_t)n, sizeof *labels);
    mf_training_log *rows = calloc((size_t)n, sizeof *rows);
    int *sizes = calloc((size_t)n, sizeof *sizes), *taken = calloc((size_t)n, sizeof *taken);
    if (!logs || !names || !labels || !rows || !sizes || !taken) {
        fprintf(stderr, "minformer: out of memory\n");
        rc = EXIT_RUNTIME;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (mf_training_log_read(argv[optind + i], &logs[i], &err)) {
            rc = cli_report(&err);
            goto done;
        }
        log_label(argv[optind + i], names[i], sizeof names[i]);
        labels[i] = names[i];
    }
    if (!title) title = acc ? "accuracy per epoch" : "loss per epoch";
    /* --mean-seeds: the logs regrouped by row, in the order rows first appear. */
    int row_count = 0, k = 0;
    for (int i = 0; i < n; i++) {
        if (taken[i]) continue;
        size_t len = mean_seeds ? row_length(names[i]) : strlen(names[i]);
        int first = k;
        for (int j = i; j < n; j++)
            if (!taken[j] && (j == i || (mean_seeds && row_length(names[j]) == len &&
                                         !strncmp(names[i], names[j], len)))) {
                taken[j] = 1;
                rows[k++] = logs[j];
            }
        sizes[row_count] = k - first;
        if (k - first > 1)
            snprintf(names[i] + len, sizeof names[i] - len, " (%d seeds)", k - first);
        labels[row_count++] = names[i];
    }
    if (mf_figure_curves_rows(out, format, width, height, title, rows, sizes, labels, row_count,
                              acc, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    printf("wrote %s (%s, %d x %d, %d log%s)\n", out, mf_figure_format_name(format), width,
           height, n, n == 1 ? "" : "s");
done:
    for (int i = 0; logs && i < n; i++) mf_training_log_free(&logs[i]);
    free(logs);
    free(names);
    free(labels);
    free(rows);
    free(sizes);
    free(taken);
    return rc;
}
