/* minformer predict: classifies image files with a checkpoint and prints the
 * three most probable classes of each. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "minformer/checkpoint.h"

static const char *help =
    "Usage: minformer predict --checkpoint PATH [--json] FILE...\n\n"
    "Classifies PNG, PGM (P2/P5) or PPM (P3/P6) images of the model's size and channels\n"
    "(28x28 grey for MNIST and Fashion-MNIST, 32x32 RGB for CIFAR-10) and prints the\n"
    "three most probable classes with their probabilities.\n\n"
    "  --checkpoint PATH  a safetensors checkpoint written by minformer train\n"
    "  --json             one JSON object per file instead of text\n";

enum { OPT_CKPT = OPT_CLI_LAST + 1 };

int cmd_predict(int argc, char **argv)
{
    static const struct option longopts[] = {{"checkpoint", required_argument, 0, OPT_CKPT},
                                             CLI_OPT_JSON,
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *cmd = "predict", *ckpt = NULL;
    cli_common_opts co;
    cli_common_opts_init(&co);
    int opt, rc = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_common_option(&co, opt, optarg, cmd);
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_CKPT: rc = cli_path_arg(cmd, "--checkpoint", ckpt = optarg); break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (!ckpt) return cli_usage_error(cmd, "--checkpoint is required");
    if (optind >= argc) return cli_usage_error(cmd, "give at least one image file");
    for (int f = optind; f < argc; f++)
        if ((rc = cli_path_arg(cmd, "an image file", argv[f]))) return rc;
    mf_error err;
    mf_model m;
    mf_checkpoint_info info;
    if (mf_checkpoint_load(ckpt, &m, &info, &err)) return cli_report(&err);
    /* The classes are named by the dataset the model was trained on. */
    if ((rc = cli_check_classes(cmd, &m.cfg, info.dataset))) {
        mf_model_free(&m);
        return rc;
    }
    const mf_config *c = &m.cfg;
    int S = c->image_size, C = c->channels, K = c->classes;
    size_t npix = (size_t)S * S;
    float *x = mf_alloc((size_t)C * npix * sizeof(float));
    if (!x || mf_model_reserve(&m, 1, &err)) {
        if (!x) mf_fail(&err, MF_ERR_NOMEM, "out of memory");
        rc = cli_report(&err);
        goto out;
    }
    for (int f = optind; f < argc; f++) {
        const char *path = argv[f];
        mf_image img;
        if (mf_image_read(path, &img, &err)) {
            rc = cli_report(&err);
            continue;
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
        float mx = z[0], prob[10];
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
                cli_json_str(&w, "class", mf_dataset_class_name(info.dataset, top[r]));
                cli_json_int(&w, "label", top[r]);
                cli_json_real(&w, "probability", "%.6f", prob[top[r]]);
                mf_json_raw(&w, "}");
            }
            mf_json_raw(&w, "]}");
            if (cli_json_print(&w)) rc = EXIT_RUNTIME;
        } else {
            printf("%s:", path);
            for (int r = 0; r < 3 && r < K; r++)
                printf("%s %s %.1f%%", r ? "," : "", mf_dataset_class_name(info.dataset, top[r]),
                       100.0 * prob[top[r]]);
            printf("\n");
        }
    }
out:
    mf_free(x);
    mf_model_free(&m);
    return rc;
}
