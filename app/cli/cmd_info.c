/* minformer info: loads a dataset (validating every file) and describes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_dataset.h"

static const char info_help[] =
    "Usage: minformer info --dataset NAME [--data DIR] [--json]\n\n"
    "Loads a dataset, validating every file, and prints each split's size, image shape and\n"
    "per-class counts, and the per-channel normalization (mean and std of the training\n"
    "pixels scaled to [0, 1]).\n\n"
    "  --dataset NAME   mnist, cifar10, fashion-mnist or folder:PATH\n"
    "  --data DIR       data directory (default: $MINFORMER_DATA if set and not empty,\n"
    "                   else ./data)\n"
    "  --json           print one JSON object instead of the table\n"
    "  -h, --help       this help\n\n"
    "A folder dataset also shows where its images came from: decoded this time\n"
    "(with the count) or read from its cache, and the load's wall time.\n\n"
    CLI_FOLDER_HELP;

/* counts[0..classes) of each label of s. */
static void class_counts(const mf_split *s, int classes, int *counts)
{
    memset(counts, 0, (size_t)classes * sizeof *counts);
    for (int i = 0; i < s->count; i++)
        if (s->labels[i] < classes) counts[s->labels[i]]++;
}

static void print_text(const mf_dataset *ds, const char *dir, int *const counts[2],
                       const mf_folder_report *rep)
{
    const mf_split *splits[2] = {&ds->train, &ds->test};
    printf("dataset  %s (%s)\n", ds->name, dir);
    for (int i = 0; i < 2; i++)
        printf("%-8s %d images, %d x %d x %d\n", i ? "test" : "train", splits[i]->count,
               splits[i]->channels, splits[i]->size, splits[i]->size);
    printf("\n%-3s %-14s %8s %8s\n", "", "class", "train", "test");
    for (int k = 0; k < ds->classes; k++)
        printf("%-3d %-14s %8d %8d\n", k, mf_dataset_label_name(ds, k), counts[0][k],
               counts[1][k]);
    printf("\nnormalization (training pixels in [0, 1])\n");
    static const char *const rgb[3] = {"red", "green", "blue"};
    for (int c = 0; c < ds->channels; c++)
        printf("  %-6s mean %.6f  std %.6f\n", ds->channels == 3 ? rgb[c] : "grey", ds->mean[c],
               ds->std[c]);
    if (rep) {
        printf("\nloaded in %.3f s: ", rep->seconds);
        if (rep->cache_used) printf("from the cache %s (nothing decoded)\n", rep->cache_path);
        else printf("decoded %d images%s%s\n", rep->decoded, rep->cache_written ? "; cache written to " : "",
                    rep->cache_written ? rep->cache_path : "");
        if (rep->skipped) printf("skipped %d bad images\n", rep->skipped);
    }
}

static int print_json(const mf_dataset *ds, const char *dir, int *const counts[2],
                      const mf_folder_report *rep)
{
    mf_json_writer w = {0};
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)ds->fingerprint);
    mf_json_raw(&w, "{");
    cli_json_str(&w, "dataset", ds->name);
    cli_json_str(&w, "data_dir", dir);
    cli_json_int(&w, "train", ds->train.count);
    cli_json_int(&w, "test", ds->test.count);
    cli_json_int(&w, "classes", ds->classes);
    cli_json_int(&w, "channels", ds->channels);
    cli_json_int(&w, "image_size", ds->size);
    cli_json_key(&w, "class_names");
    mf_json_raw(&w, "[");
    for (int k = 0; k < ds->classes; k++) cli_json_str(&w, NULL, mf_dataset_label_name(ds, k));
    mf_json_raw(&w, "]");
    cli_json_ints(&w, "train_class_counts", counts[0], ds->classes);
    cli_json_ints(&w, "test_class_counts", counts[1], ds->classes);
    cli_json_reals(&w, "mean", "%.9g", ds->mean, ds->channels);
    cli_json_reals(&w, "std", "%.9g", ds->std, ds->channels);
    cli_json_str(&w, "fingerprint", fp);
    if (rep) {
        cli_json_int(&w, "files", rep->files);
        cli_json_int(&w, "decoded", rep->decoded);
        cli_json_int(&w, "skipped", rep->skipped);
        cli_json_int(&w, "cache_used", rep->cache_used);
        cli_json_str(&w, "cache_path", rep->cache_path);
        cli_json_real(&w, "load_seconds", "%.3f", rep->seconds);
    }
    mf_json_raw(&w, "}");
    return cli_json_print(&w);
}

int cmd_info(int argc, char **argv)
{
    enum { OPT_DATASET = OPT_CLI_LAST + 1 };
    static const struct option longopts[] = {{"dataset", required_argument, 0, OPT_DATASET},
                                             CLI_OPT_DATA, CLI_OPT_JSON, CLI_OPT_THREADS,
                                             CLI_FOLDER_LONGOPTS,
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dataset = NULL;
    cli_common_opts co;
    cli_common_opts_init(&co);
    cli_folder_opts fo;
    cli_folder_opts_init(&fo);
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_common_option(&co, opt, optarg, "info");
        if (!r) r = cli_folder_option(&fo, opt, optarg, "info");
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_DATASET: dataset = optarg; break;
        case 'h': fputs(info_help, stdout); return 0;
        default: return cli_bad_option("info", argv);
        }
    }
    if (optind < argc) return cli_usage_error("info", "unexpected argument '%s'", argv[optind]);
    if (!dataset) return cli_usage_error("info", "--dataset is required");

    mf_set_threads(co.threads);
    mf_dataset ds;
    mf_folder_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = cli_load_dataset("info", dataset, co.data_dir, &fo, &ds, &rep);
    if (rc) return rc;
    const char *dir = ds.folder ? ds.folder : mf_data_dir(co.data_dir);
    const mf_folder_report *folder = ds.kind == MF_FOLDER ? &rep : NULL;

    int *counts[2] = {calloc((size_t)ds.classes, sizeof(int)), calloc((size_t)ds.classes, sizeof(int))};
    if (!counts[0] || !counts[1]) {
        fprintf(stderr, "minformer: out of memory\n");
        rc = EXIT_RUNTIME;
    } else {
        class_counts(&ds.train, ds.classes, counts[0]);
        class_counts(&ds.test, ds.classes, counts[1]);
        if (co.json)
            rc = print_json(&ds, dir, counts, folder);
        else
            print_text(&ds, dir, counts, folder);
    }
    free(counts[0]);
    free(counts[1]);
    mf_dataset_free(&ds);
    return rc;
}
