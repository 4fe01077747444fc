/* minformer eval: a checkpoint's test loss, accuracy, per-class accuracy and
 * confusion matrix. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "minformer/checkpoint.h"

static const char *help =
    "Usage: minformer eval --checkpoint PATH [--dataset NAME] [--data DIR] [--json]\n\n"
    "Evaluates a saved model on a test split (the one it was trained on, unless\n"
    "--dataset names another of the same image shape), normalized as in training.\n\n"
    "  --checkpoint PATH  a safetensors checkpoint written by minformer train\n"
    "  --dataset NAME     mnist, cifar10 or fashion-mnist\n"
    "  --data DIR         data directory (default $MINFORMER_DATA if set and not\n"
    "                     empty, else ./data)\n"
    "  --limit-test N     evaluate the first N test images only\n"
    "  --batch B          evaluation batch (default 500)\n"
    "  --threads T        threads (default: all cores)\n"
    "  --json             end with one JSON object (test_loss, test_acc, per_class_acc, confusion)\n";

/* Long-only values above 255, so a missing value is reported by its long name. */
enum {
    OPT_CKPT = OPT_CLI_LAST + 1, OPT_DATASET, OPT_DATA, OPT_LIMIT, OPT_BATCH, OPT_THREADS, OPT_JSON
};

int cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {{"checkpoint", required_argument, 0, OPT_CKPT},
                                             {"dataset", required_argument, 0, OPT_DATASET},
                                             {"data", required_argument, 0, OPT_DATA},
                                             {"limit-test", required_argument, 0, OPT_LIMIT},
                                             {"batch", required_argument, 0, OPT_BATCH},
                                             {"threads", required_argument, 0, OPT_THREADS},
                                             {"json", no_argument, 0, OPT_JSON},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *cmd = "eval", *ckpt = NULL, *dataset = NULL, *data_dir = NULL;
    int limit = 0, batch = 500, threads = 0, json = 0, opt, rc = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_CKPT: rc = cli_path_arg(cmd, "--checkpoint", ckpt = optarg); break;
        case OPT_DATASET: dataset = optarg; break;
        case OPT_DATA: rc = cli_path_arg(cmd, "--data", data_dir = optarg); break;
        case OPT_LIMIT: rc = cli_parse_int(cmd, "limit-test", optarg, 1, 1 << 30, &limit); break;
        case OPT_BATCH: rc = cli_parse_int(cmd, "batch", optarg, 1, 65536, &batch); break;
        case OPT_THREADS: rc = cli_parse_int(cmd, "threads", optarg, 1, 1024, &threads); break;
        case OPT_JSON: json = 1; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!ckpt) return cli_usage_error(cmd, "--checkpoint is required");
    mf_set_threads(threads);
    mf_error err;
    mf_model m;
    mf_checkpoint_info info;
    if (mf_checkpoint_load(ckpt, &m, &info, &err)) return cli_report(&err);
    mf_dataset ds;
    memset(&ds, 0, sizeof ds);
    if ((rc = cli_load_eval_split(cmd, dataset, data_dir, info.dataset, &m.cfg, limit, &ds))) goto out;
    mf_eval_result r;
    /* The normalization the model was trained with, not the new dataset's. */
    if (mf_evaluate(&m, &ds.test, info.mean, info.std, batch, &r, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    int K = m.cfg.classes, totals[10] = {0};
    float per_class[10] = {0};
    for (int t = 0; t < K; t++) {
        for (int p = 0; p < K; p++) totals[t] += r.confusion[t * 10 + p];
        per_class[t] = totals[t] ? (float)r.confusion[t * 10 + t] / totals[t] : 0.0f;
    }
    printf("%s on %s test (%d images): loss %.4f, accuracy %.2f%%\n\n", ckpt, ds.name, r.count,
           r.loss, 100.0 * r.acc);
    printf("%-14s %8s %8s   confusion (rows: true class, columns: predicted)\n", "class", "images",
           "acc");
    for (int t = 0; t < K; t++) {
        printf("%-14s %8d %7.2f%%  ", mf_dataset_class_name(ds.kind, t), totals[t], 100.0 * per_class[t]);
        for (int p = 0; p < K; p++) printf(" %5d", r.confusion[t * 10 + p]);
        printf("\n");
    }
    if (json) {
        printf("{\"checkpoint\":");
        cli_print_json_string(ckpt);
        printf(",\"dataset\":\"%s\",\"count\":%d,\"test_loss\":%.6f,\"test_acc\":%.6f,\"per_class_acc\":[",
               ds.name, r.count, r.loss, r.acc);
        for (int t = 0; t < K; t++) printf("%s%.6f", t ? "," : "", per_class[t]);
        printf("],\"confusion\":[");
        for (int t = 0; t < K; t++) {
            printf("%s[", t ? "," : "");
            for (int p = 0; p < K; p++) printf("%s%d", p ? "," : "", r.confusion[t * 10 + p]);
            printf("]");
        }
        printf("]}\n");
    }
out:
    mf_dataset_free(&ds);
    mf_model_free(&m);
    return rc;
}
