/* minformer predict: classifies image files with a checkpoint and prints the
 * three most probable classes of each. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_dataset.h"
#include "minformer/checkpoint.h"

static const char *help =
    "Usage: minformer predict --checkpoint PATH [--json] FILE...\n\n"
    "Classifies PNG, JPEG, PGM (P2/P5) or PPM (P3/P6) images of the model's size and\n"
    "channels (28x28 grey for MNIST and Fashion-MNIST, 32x32 RGB for CIFAR-10, a\n"
    "folder model's own) and prints the three most probable classes with their\n"
    "probabilities. A folder model's classes are named by its checkpoint; one\n"
    "written before checkpoints held the names needs --dataset folder:PATH for\n"
    "them, else its classes are shown by their labels.\n\n"
    "  --checkpoint PATH  a safetensors checkpoint written by minformer train\n"
    "  --dataset folder:PATH\n"
    "                     name the classes by PATH/train's class folders (no image is\n"
    "                     read); they must agree with the checkpoint's names if any\n"
    "  --resize           resize each image to the model's size (area filter) and\n"
    "                     convert its channels (Rec. 601 grey, or grey copied to RGB)\n"
    "  --center-crop      with --resize: crop the central square first (the default\n"
    "                     for a folder model trained with --center-crop)\n"
    "  --json             one JSON object per file instead of text\n"
    CLI_PRECISION_HELP;

enum { OPT_CKPT = OPT_CLI_LAST + 1, OPT_DATASET, OPT_RESIZE };

/* A label's name: the checkpoint's, the folder's, a built-in dataset's, else
 * the label itself. */
static const char *class_name(const mf_checkpoint_info *info, char **stored, char **names,
                              const char (*label_names)[16], int label)
{
    if (info->dataset != MF_FOLDER) return mf_dataset_class_name(info->dataset, label);
    return stored ? stored[label] : names ? names[label] : label_names[label];
}

int cmd_predict(int argc, char **argv)
{
    static const struct option longopts[] = {{"checkpoint", required_argument, 0, OPT_CKPT},
                                             {"dataset", required_argument, 0, OPT_DATASET},
                                             {"resize", no_argument, 0, OPT_RESIZE},
                                             {"center-crop", no_argument, 0, OPT_CENTER_CROP},
                                             CLI_OPT_JSON, CLI_OPT_PRECISION,
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *cmd = "predict", *ckpt = NULL, *dataset = NULL;
    cli_common_opts co;
    cli_common_opts_init(&co);
    int opt, rc = 0, resize = 0, center_crop = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_common_option(&co, opt, optarg, cmd);
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_CKPT: rc = cli_path_arg(cmd, "--checkpoint", ckpt = optarg); break;
        case OPT_DATASET: dataset = optarg; break;
        case OPT_RESIZE: resize = 1; break;
        case OPT_CENTER_CROP: center_crop = 1; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (!ckpt) return cli_usage_error(cmd, "--checkpoint is required");
    if (center_crop && !resize) return cli_usage_error(cmd, "--center-crop needs --resize");
    const char *folder = mf_dataset_folder_path(dataset);
    if (dataset && !folder)
        return cli_usage_error(cmd, "--dataset takes folder:PATH (a built-in dataset's classes "
                               "are known from the checkpoint)");
    if (optind >= argc) return cli_usage_error(cmd, "give at least one image file");
    for (int f = optind; f < argc; f++)
        if ((rc = cli_path_arg(cmd, "an image file", argv[f]))) return rc;
    mf_error err;
    mf_model m;
    mf_checkpoint_info info;
    if (mf_checkpoint_load(ckpt, &m, &info, &err)) return cli_report(&err);
    if (mf_model_set_precision(&m, co.precision, &err)) {
        mf_model_free(&m);
        return cli_report(&err);
    }
    /* The classes are named by the dataset the model was trained on: a
     * built-in one's names, a folder's class folders, else the labels. */
    if ((rc = cli_check_classes(cmd, &m.cfg, info.dataset))) {
        mf_model_free(&m);
        return rc;
    }
    const mf_config *c = &m.cfg;
    int S = c->image_size, C = c->channels, K = c->classes;
    char **names = NULL, **stored = NULL, (*label_names)[16] = NULL;
    int nnames = 0, nstored = 0;
    size_t npix = (size_t)S * S;
    float *x = NULL, *prob = NULL;
    if (folder) {
        if (info.dataset != MF_FOLDER) {
            rc = cli_usage_error(cmd, "the model was trained on %s, not on a folder dataset",
                                 mf_dataset_name(info.dataset));
            goto out;
        }
        if (mf_folder_class_names(folder, &names, &nnames, &err)) {
            rc = cli_report(&err);
            goto out;
        }
        if (nnames != K) {
            rc = cli_usage_error(cmd, "the model has %d classes; %s has %d", K, folder, nnames);
            goto out;
        }
    }
    if (info.has_class_names) {
        if (mf_checkpoint_read_classes(ckpt, &stored, &nstored, &err)) {
            rc = cli_report(&err);
            goto out;
        }
        for (int k = 0; names && k < K; k++)
            if (strcmp(stored[k], names[k])) {
                rc = cli_usage_error(cmd, "the model's class %d is '%.80s', %s's is '%.80s'", k,
                                     stored[k], folder, names[k]);
                goto out;
            }
        if (resize && info.folder_center_crop) center_crop = 1;
    }
    x = mf_alloc((size_t)C * npix * sizeof(float));
    prob = malloc((size_t)K * sizeof *prob);
    label_names = malloc((size_t)K * sizeof *label_names);
    if (!x || !prob || !label_names || mf_model_reserve(&m, 1, &err)) {
        if (!x || !prob || !label_names) mf_fail(&err, MF_ERR_NOMEM, "out of memory");
        rc = cli_report(&err);
        goto out;
    }
    for (int k = 0; k < K; k++) snprintf(label_names[k], sizeof label_names[k], "%d", k);
    for (int f = optind; f < argc; f++) {
        const char *path = argv[f];
        mf_image img;
        if (mf_image_read(path, &img, &err)) {
            rc = cli_report(&err);
            continue;
        }
        if (resize) {
            mf_image crop = {0}, scaled;
            if ((center_crop && mf_image_crop_center(&img, &crop, &err)) ||
                mf_image_convert(crop.pixels ? &crop : &img, C, S, S, &scaled, &err)) {
                mf_image_free(&crop);
                mf_image_free(&img);
                rc = cli_report(&err);
                continue;
            }
            mf_image_free(&crop);
            mf_image_free(&img);
            img = scaled;
        }
        if (img.width != S || img.height != S || img.channels != C) {
            fprintf(stderr, "minformer: %s: a %dx%d %s image; the model takes %dx%d %s images\n", path,
                    img.width, img.height, img.channels == 1 ? "grey" : "RGB", S, S,
                    C == 1 ? "grey" : "RGB");
            mf_image_free(&img);
            rc = EXIT_RUNTIME;
            continue;
        }
        for (int ch = 0; ch < C; ch++)
            for (size_t i = 0; i < npix; i++)
                x[ch * npix + i] = ((float)img.pixels[ch * npix + i] / 255.0f - info.mean[ch]) / info.std[ch];
        mf_image_free(&img);
        mf_model_forward(&m, x, NULL, 1);
        const float *z = mf_model_logits(&m);
        float mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp((double)(z[k] - mx));
        for (int k = 0; k < K; k++) prob[k] = (float)(exp((double)(z[k] - mx)) / sum);
        int top[3] = {-1, -1, -1};
        for (int r = 0; r < 3 && r < K; r++)
            for (int k = 0; k < K; k++) {
                if (k == top[0] || k == top[1]) continue;
                if (top[r] < 0 || prob[k] > prob[top[r]]) top[r] = k;
            }
        if (co.json) {
            mf_json_writer w = {0};
            mf_json_raw(&w, "{");
            cli_json_str(&w, "file", path);
            cli_json_key(&w, "top");
            mf_json_raw(&w, "[");
            for (int r = 0; r < 3 && r < K; r++) {
                cli_json_key(&w, NULL);
                mf_json_raw(&w, "{");
                cli_json_str(&w, "class", class_name(&info, stored, names, label_names, top[r]));
                cli_json_int(&w, "label", top[r]);
                cli_json_real(&w, "probability", "%.6f", prob[top[r]]);
                mf_json_raw(&w, "}");
            }
            mf_json_raw(&w, "]}");
            if (cli_json_print(&w)) rc = EXIT_RUNTIME;
        } else {
            printf("%s:", path);
            for (int r = 0; r < 3 && r < K; r++)
                printf("%s %s %.1f%%", r ? "," : "",
                       class_name(&info, stored, names, label_names, top[r]), 100.0 * prob[top[r]]);
            printf("\n");
        }
    }
out:
    mf_folder_class_names_free(names, nnames);
    mf_checkpoint_class_names_free(stored, nstored);
    free(label_names);
    free(prob);
    mf_free(x);
    mf_model_free(&m);
    return rc;
}
