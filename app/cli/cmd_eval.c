/* minformer eval: a checkpoint's test loss, accuracy, per-class accuracy and
 * confusion matrix (printed whole up to FULL_MATRIX_CLASSES classes; beyond
 * that the per-class table and the TOP_CONFUSIONS largest off-diagonal
 * cells, the whole matrix staying in --json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_dataset.h"
#include "minformer/checkpoint.h"

static const char *help =
    "Usage: minformer eval --checkpoint PATH [--dataset NAME] [--data DIR] [--json]\n\n"
    "Evaluates a saved model on a test split (the one it was trained on, unless\n"
    "--dataset names another of the same image shape), normalized as in training.\n"
    "A model trained on a folder dataset needs --dataset folder:PATH (read with the\n"
    "--image-size and --center-crop it was trained with unless they are given); its\n"
    "classes are named by the checkpoint, else by the folder, and a folder whose\n"
    "class names differ from the checkpoint's is refused. Up to 20 classes the whole\n"
    "confusion matrix is printed; beyond, the per-class table and the 20 most\n"
    "frequent confusions (--json always holds the whole matrix).\n\n"
    "  --checkpoint PATH  a safetensors checkpoint written by minformer train\n"
    "  --dataset NAME     mnist, cifar10, fashion-mnist or folder:PATH\n"
    "  --data DIR         data directory (default $MINFORMER_DATA if set and not\n"
    "                     empty, else ./data)\n"
    "  --limit-test N     evaluate the first N test images only\n"
    "  --batch B          evaluation batch (default 500)\n"
"  --threads T        threads (default: all cores)\n"
    CLI_PRECISION_HELP
    "                     (a checkpoint evaluates in either, whichever it trained in)\n"
    "  --json             end with one JSON object (test_loss, test_acc, per_class_acc, confusion)\n\n"
    CLI_FOLDER_HELP;

enum { OPT_CKPT = OPT_CLI_LAST + 1, OPT_DATASET, OPT_BATCH };
enum { FULL_MATRIX_CLASSES = 20, TOP_CONFUSIONS = 20, NAME_WIDTH_MAX = 40 };

/* The per-class table: with the matrix's rows when K is small, else alone,
 * followed by the most frequent confusions (count descending, then true and
 * predicted class ascending). */
static void print_classes(const char *const *names, int K, const int *confusion,
                          const int *totals, const float *per_class)
{
    int width = 14;
    for (int t = 0; t < K; t++) {
        int len = (int)strlen(names[t]);
        if (len > width) width = len < NAME_WIDTH_MAX ? len : NAME_WIDTH_MAX;
    }
    int full = K <= FULL_MATRIX_CLASSES;
    printf("%-*s %8s %8s%s\n", width, "class", "images", "acc",
           full ? "   confusion (rows: true class, columns: predicted)" : "");
    for (int t = 0; t < K; t++) {
        printf("%-*.*s %8d %7.2f%%", width, NAME_WIDTH_MAX, names[t], totals[t],
               100.0 * per_class[t]);
        if (full) {
            printf("  ");
            for (int p = 0; p < K; p++) printf(" %5d", confusion[t * K + p]);
        }
        printf("\n");
    }
    if (full) return;
    /* The TOP_CONFUSIONS largest cells off the diagonal, by insertion. */
    int top[TOP_CONFUSIONS], n = 0;
    for (int i = 0; i < K * K; i++) {
        if (i / K == i % K || !confusion[i]) continue;
        int at = n;
        while (at > 0 && confusion[top[at - 1]] < confusion[i]) at--;
        if (at >= TOP_CONFUSIONS) continue;
        if (n < TOP_CONFUSIONS) n++;
        memmove(top + at + 1, top + at, (size_t)(n - 1 - at) * sizeof *top);
        top[at] = i;
    }
    if (n == 0) {
        printf("\n%d classes: the confusion matrix is in --json; no image was confused\n", K);
        return;
    }
    printf("\n%d classes: the confusion matrix is in --json; the %d most frequent confusions:\n",
           K, n);
    printf("%-*s %-*s %8s\n", width, "true class", width, "predicted", "images");
    for (int j = 0; j < n; j++)
        printf("%-*.*s %-*.*s %8d\n", width, NAME_WIDTH_MAX, names[top[j] / K], width,
               NAME_WIDTH_MAX, names[top[j] % K], confusion[top[j]]);
}

int cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {{"checkpoint", required_argument, 0, OPT_CKPT},
                                             {"dataset", required_argument, 0, OPT_DATASET},
                                             {"batch", required_argument, 0, OPT_BATCH},
                                             CLI_OPT_DATA, CLI_OPT_LIMIT_TEST, CLI_OPT_THREADS,
                                             CLI_OPT_PRECISION, CLI_OPT_JSON, CLI_FOLDER_LONGOPTS,
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *cmd = "eval", *ckpt = NULL, *dataset = NULL;
    cli_common_opts co;
    cli_common_opts_init(&co);
    cli_folder_opts fo;
    cli_folder_opts_init(&fo);
    int batch = 500, opt, rc = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_common_option(&co, opt, optarg, cmd);
        if (!r) r = cli_folder_option(&fo, opt, optarg, cmd);
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_CKPT: rc = cli_path_arg(cmd, "--checkpoint", ckpt = optarg); break;
        case OPT_DATASET: dataset = optarg; break;
        case OPT_BATCH: rc = cli_parse_int(cmd, "batch", optarg, 1, 65536, &batch); break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!ckpt) return cli_usage_error(cmd, "--checkpoint is required");
    mf_set_threads(co.threads);
    mf_error err;
    mf_model m;
    mf_checkpoint_info info;
    if (mf_checkpoint_load(ckpt, &m, &info, &err)) return cli_report(&err);
    if (mf_model_set_precision(&m, co.precision, &err)) {
        mf_model_free(&m);
        return cli_report(&err);
    }
    mf_dataset ds;
    memset(&ds, 0, sizeof ds);
    int K = m.cfg.classes, *confusion = NULL, *totals = NULL, nstored = 0;
    float *per_class = NULL;
    char **stored = NULL;
    const char **names = NULL;
    cli_folder_opts_from_checkpoint(&fo, &info);
    if (info.has_class_names && mf_checkpoint_read_classes(ckpt, &stored, &nstored, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    if ((rc = cli_load_eval_data(cmd, dataset, co.data_dir, &fo, info.dataset, &m.cfg,
                                 co.limit_test, &ds)))
        goto out;
    for (int t = 0; stored && ds.class_names && t < K; t++)
        if (strcmp(stored[t], ds.class_names[t])) {
            rc = cli_usage_error(cmd, "the model's class %d is '%.80s', %s's is '%.80s'; a "
                                 "folder must hold the model's classes", t, stored[t], ds.folder,
                                 ds.class_names[t]);
            goto out;
        }
    confusion = calloc((size_t)K * K, sizeof *confusion);
    totals = calloc((size_t)K, sizeof *totals);
    per_class = calloc((size_t)K, sizeof *per_class);
    names = malloc((size_t)K * sizeof *names);
    if (!confusion || !totals || !per_class || !names) {
        mf_fail(&err, MF_ERR_NOMEM, "out of memory");
        rc = cli_report(&err);
        goto out;
    }
    mf_eval_result r;
    /* The normalization the model was trained with, not the new dataset's. */
    if (mf_evaluate_confusion(&m, &ds.test, info.mean, info.std, batch, &r, confusion, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    for (int t = 0; t < K; t++) {
        for (int p = 0; p < K; p++) totals[t] += confusion[t * K + p];
        per_class[t] = totals[t] ? (float)confusion[t * K + t] / totals[t] : 0.0f;
    }
    for (int t = 0; t < K; t++) names[t] = stored ? stored[t] : mf_dataset_label_name(&ds, t);
    printf("%s on %s test (%d images): loss %.4f, accuracy %.2f%%\n\n", ckpt, ds.name, r.count,
           r.loss, 100.0 * r.acc);
    print_classes(names, K, confusion, totals, per_class);
    if (co.json) {
        mf_json_writer w = {0};
        mf_json_raw(&w, "{");
        cli_json_str(&w, "checkpoint", ckpt);
        cli_json_str(&w, "dataset", ds.name);
        cli_json_int(&w, "count", r.count);
        cli_json_real(&w, "test_loss", "%.6f", r.loss);
        cli_json_real(&w, "test_acc", "%.6f", r.acc);
        cli_json_key(&w, "class_names");
        mf_json_raw(&w, "[");
        for (int t = 0; t < K; t++) cli_json_str(&w, NULL, names[t]);
        mf_json_raw(&w, "]");
        cli_json_reals(&w, "per_class_acc", "%.6f", per_class, K);
        cli_json_key(&w, "confusion");
        mf_json_raw(&w, "[");
        for (int t = 0; t < K; t++) cli_json_ints(&w, NULL, confusion + (size_t)t * K, K);
        mf_json_raw(&w, "]}");
        rc = cli_json_print(&w);
    }
out:
    mf_checkpoint_class_names_free(stored, nstored);
    free(names);
    free(confusion);
    free(totals);
    free(per_class);
    mf_dataset_free(&ds);
    mf_model_free(&m);
    return rc;
}
