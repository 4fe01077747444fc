/* minformer attention: a test image next to the CLS token's attention over
 * the patches in every layer and the attention rollout, as a PNG, SVG or PDF. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_dataset.h"
#include "minformer/checkpoint.h"
#include "figures/figures.h"

static const char *help =
    "Usage: minformer attention --checkpoint PATH [--index I] [--out FILE] [options]\n\n"
    "Draws test image I, then for every layer the CLS token's attention over the\n"
    "patches (averaged over heads) as a heat map at the image's resolution over the\n"
    "faded image, then the attention rollout across layers (Abnar & Zuidema 2020):\n"
    "the product of 0.5 A + 0.5 I over the layers, rows renormalized.\n\n"
    "  --checkpoint PATH  a checkpoint written by train or experiment\n"
    "  --index I          test image (0-based, default 0)\n"
    "  --out FILE         the picture: FILE.png, FILE.svg or FILE.pdf (default\n"
    "                     attention.png)\n"
    "  --format F         png, svg or pdf, whatever FILE's extension\n"
    "  --data DIR         data directory (default $MINFORMER_DATA if set and not\n"
    "                     empty, else ./data)\n"
    "  --dataset NAME     another dataset with the same image shape; a folder model\n"
    "                     needs folder:PATH, read with the --image-size and\n"
    "                     --center-crop its checkpoint stores, its classes named\n"
    "                     by the checkpoint (else by the folder)\n"
    "  --threads T        threads (default: all cores)\n";

enum { OPT_CKPT = OPT_CLI_LAST + 1, OPT_INDEX, OPT_OUT, OPT_FORMAT, OPT_DATASET };

int cmd_attention(int argc, char **argv)
{
    static const struct option longopts[] = {{"checkpoint", required_argument, 0, OPT_CKPT},
                                             {"index", required_argument, 0, OPT_INDEX},
                                             {"out", required_argument, 0, OPT_OUT},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             CLI_OPT_DATA,
                                             {"dataset", required_argument, 0, OPT_DATASET},
                                             CLI_OPT_THREADS,
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *cmd = "attention", *ckpt = NULL, *out = "attention.png", *dataset = NULL,
               *format_name = NULL;
    cli_common_opts co;
    cli_common_opts_init(&co);
    int index = 0, opt, rc = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_common_option(&co, opt, optarg, cmd);
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_CKPT: rc = cli_path_arg(cmd, "--checkpoint", ckpt = optarg); break;
        case OPT_INDEX: rc = cli_parse_int(cmd, "index", optarg, 0, 1 << 30, &index); break;
        case OPT_OUT: rc = cli_path_arg(cmd, "--out", out = optarg); break;
        case OPT_FORMAT: format_name = optarg; break;
        case OPT_DATASET: dataset = optarg; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!ckpt) return cli_usage_error(cmd, "--checkpoint is required");
    mf_error err;
    mf_error_clear(&err);
    mf_figure_format format;
    if ((rc = cli_check_output(out, "the picture"))) return rc;
    if (mf_figure_format_choose(format_name, out, &format, &err))
        return cli_usage_error(cmd, "%s", err.message);
    mf_set_threads(co.threads);
    mf_model m;
    mf_checkpoint_info info;
    if (mf_checkpoint_load(ckpt, &m, &info, &err)) return cli_report(&err);
    mf_dataset ds;
    memset(&ds, 0, sizeof ds);
    float *x = NULL, *maps = NULL, *layers = NULL, *roll = NULL;
    int y = 0, nstored = 0;
    char **stored = NULL;
    /* A folder is read as the model's training read it (its checkpoint says how). */
    cli_folder_opts fo;
    cli_folder_opts_init(&fo);
    cli_folder_opts_from_checkpoint(&fo, &info);
    if (info.has_class_names && mf_checkpoint_read_classes(ckpt, &stored, &nstored, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    if ((rc = cli_load_eval_data(cmd, dataset, co.data_dir, &fo, info.dataset, &m.cfg, 0, &ds)))
        goto out;
    if (index >= ds.test.count) {
        rc = cli_usage_error(cmd, "--index %d: the %s test split has %d images", index, ds.name,
                             ds.test.count);
        goto out;
    }
    const mf_config *c = &m.cfg;
    int T = mf_config_tokens(c), G = c->image_size / c->patch;
    size_t img = (size_t)c->channels * c->image_size * c->image_size;
    x = malloc(img * sizeof *x);
    maps = malloc((size_t)c->layers * T * T * sizeof *maps);
    layers = malloc((size_t)c->layers * G * G * sizeof *layers);
    roll = malloc((size_t)G * G * sizeof *roll);
    if (!x || !maps || !layers || !roll) {
        fprintf(stderr, "minformer: out of memory\n");
        rc = EXIT_RUNTIME;
        goto out;
    }
    if (mf_model_reserve(&m, 1, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    /* Normalized as the model was trained, not by this dataset's statistics. */
    mf_batch_fill(&ds.test, &index, 1, info.mean, info.std, MF_AUGMENT_NONE, 0, x, &y);
    /* Every row of every map: the rollout multiplies whole maps. */
    mf_model_set_mode(&m, MF_MODE_FORWARD_ONLY | MF_MODE_FULL_ATTENTION);
    mf_model_forward(&m, x, NULL, 1);
    int pred = mf_argmax(mf_model_logits(&m), c->classes);
    mf_model_attention_maps(&m, 0, maps);
    mf_attention_cls_maps(c, maps, layers, roll);
    char header[256];
    snprintf(header, sizeof header, "%s test image %d: label %.80s, predicted %.80s", ds.name,
             index, stored ? stored[y] : mf_dataset_label_name(&ds, y),
             stored ? stored[pred] : mf_dataset_label_name(&ds, pred));
    if (mf_figure_attention(out, format, c, ds.test.images + (size_t)index * img, layers, roll, header, &err)) {
        rc = cli_report(&err);
        goto out;
    }
    printf("%s\nwrote %s\n", header, out);
out:
    mf_checkpoint_class_names_free(stored, nstored);
    free(x);
    free(maps);
    free(layers);
    free(roll);
    mf_dataset_free(&ds);
    mf_model_free(&m);
    return rc;
}
