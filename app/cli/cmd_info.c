/* minformer info: loads a dataset (validating every file) and describes it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char info_help[] =
    "Usage: minformer info --dataset NAME [--data DIR] [--json]\n\n"
    "Loads a dataset, validating every file, and prints each split's size, image shape and\n"
    "per-class counts, and the per-channel normalization (mean and std of the training\n"
    "pixels scaled to [0, 1]).\n\n"
    "  --dataset NAME   mnist, cifar10 or fashion-mnist\n"
    "  --data DIR       data directory (default: $MINFORMER_DATA if set and not empty,\n"
    "                   else ./data)\n"
    "  --json           print one JSON object instead of the table\n"
    "  -h, --help       this help\n";

static void class_counts(const mf_split *s, int *counts)
{
    memset(counts, 0, 10 * sizeof *counts);
    for (int i = 0; i < s->count; i++)
        if (s->labels[i] < 10) counts[s->labels[i]]++;
}

static void print_text(const mf_dataset *ds, const char *dir, int counts[2][10])
{
    const mf_split *splits[2] = {&ds->train, &ds->test};
    printf("dataset  %s (%s)\n", ds->name, dir);
    for (int i = 0; i < 2; i++)
        printf("%-8s %d images, %d x %d x %d\n", i ? "test" : "train", splits[i]->count,
               splits[i]->channels, splits[i]->size, splits[i]->size);
    printf("\n%-3s %-14s %8s %8s\n", "", "class", "train", "test");
    for (int k = 0; k < ds->classes; k++)
        printf("%-3d %-14s %8d %8d\n", k, mf_dataset_class_name(ds->kind, k), counts[0][k],
               counts[1][k]);
    printf("\nnormalization (training pixels in [0, 1])\n");
    static const char *const rgb[3] = {"red", "green", "blue"};
    for (int c = 0; c < ds->channels; c++)
        printf("  %-6s mean %.6f  std %.6f\n", ds->channels == 3 ? rgb[c] : "grey", ds->mean[c],
               ds->std[c]);
}

static void print_json_ints(const char *key, const int *v, int n)
{
    printf("\"%s\":[", key);
    for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", v[i]);
    printf("]");
}

static void print_json_floats(const char *key, const float *v, int n)
{
    printf("\"%s\":[", key);
    for (int i = 0; i < n; i++) printf("%s%.9g", i ? "," : "", (double)v[i]);
    printf("]");
}


static void print_json(const mf_dataset *ds, const char *dir, int counts[2][10])
{
    printf("{\"dataset\":");
    cli_print_json_string(ds->name);
    printf(",\"data_dir\":");
    cli_print_json_string(dir);
    printf(",\"train\":%d,\"test\":%d,\"classes\":%d,\"channels\":%d,\"image_size\":%d,",
           ds->train.count, ds->test.count, ds->classes, ds->channels, ds->size);
    printf("\"class_names\":[");
    for (int k = 0; k < ds->classes; k++) {
        if (k) putchar(',');
        cli_print_json_string(mf_dataset_class_name(ds->kind, k));
    }
    printf("],");
    print_json_ints("train_class_counts", counts[0], ds->classes);
    putchar(',');
    print_json_ints("test_class_counts", counts[1], ds->classes);
    putchar(',');
    print_json_floats("mean", ds->mean, ds->channels);
    putchar(',');
    print_json_floats("std", ds->std, ds->channels);
    printf("}\n");
}

int cmd_info(int argc, char **argv)
{
    /* Long-only values above 255, so a missing value is reported by its long name. */
    enum { OPT_DATASET = OPT_CLI_LAST + 1, OPT_DATA, OPT_JSON };
    static const struct option longopts[] = {{"dataset", required_argument, 0, OPT_DATASET},
                                             {"data", required_argument, 0, OPT_DATA},
                                             {"json", no_argument, 0, OPT_JSON},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dataset = NULL, *data = NULL;
    int json = 0, opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_DATASET: dataset = optarg; break;
        case OPT_DATA: data = optarg; break;
        case OPT_JSON: json = 1; break;
        case 'h': fputs(info_help, stdout); return 0;
        default: return cli_bad_option("info", argv);
        }
    }
    if (optind < argc) return cli_usage_error("info", "unexpected argument '%s'", argv[optind]);
    if (!dataset) return cli_usage_error("info", "--dataset is required");
    if (data && cli_path_arg("info", "--data", data)) return EXIT_USAGE;

    mf_error err;
    mf_error_clear(&err);
    mf_dataset_kind kind;
    if (mf_dataset_parse(dataset, &kind, &err)) return cli_usage_error("info", "%s", err.message);
    const char *dir = mf_data_dir(data);
    mf_dataset ds;
    if (mf_dataset_load(&ds, kind, dir, &err)) return cli_report(&err);

    int counts[2][10];
    class_counts(&ds.train, counts[0]);
    class_counts(&ds.test, counts[1]);
    if (json)
        print_json(&ds, dir, counts);
    else
        print_text(&ds, dir, counts);
    mf_dataset_free(&ds);
    return 0;
}
