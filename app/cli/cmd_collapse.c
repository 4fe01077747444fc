/* minformer collapse: rewrites a trained single-head model with W_qk = W_k^T W_q
 * and W_vo = W_o W_v, then shows on the test set that nothing changed. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "minformer/checkpoint.h"

static const char *help =
    "Usage: minformer collapse --checkpoint IN --out OUT [--data DIR] [--json]\n\n"
    "Rewrites a trained single-head model into collapsed form where the algebra is\n"
    "exact: separate query/key matrices become W_qk = W_k^T W_q, b_qk = W_k^T b_q;\n"
    "separate value/output matrices become W_vo = W_o W_v, b_vo = W_o b_v + b_o.\n"
    "Reports the parameter saving, compares both models' logits on the test set\n"
    "(max absolute difference) and checks that every prediction is the same.\n\n"
    "  --checkpoint IN    a checkpoint written by minformer train\n"
    "  --out OUT          where to write the collapsed model\n"
    "  --data DIR         data directory (default $MINFORMER_DATA if set and not\n"
    "                     empty, else ./data)\n"
    "  --limit-test N     compare on the first N test images only\n"
    "  --threads T        threads (default: all cores)\n"
    "  --json             end with one JSON object\n";

enum { OPT_CKPT = OPT_CLI_LAST + 1, OPT_OUT };

int cmd_collapse(int argc, char **argv)
{
    static const struct option longopts[] = {{"checkpoint", required_argument, 0, OPT_CKPT},
                                             {"out", required_argument, 0, OPT_OUT},
                                             CLI_OPT_DATA, CLI_OPT_LIMIT_TEST, CLI_OPT_THREADS,
                                             CLI_OPT_JSON,
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *cmd = "collapse", *in_path = NULL, *out_path = NULL;
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
        case OPT_CKPT: rc = cli_path_arg(cmd, "--checkpoint", in_path = optarg); break;
        case OPT_OUT: rc = cli_path_arg(cmd, "--out", out_path = optarg); break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option(cmd, argv);
        }
        if (rc) return rc;
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!in_path || !out_path) return cli_usage_error(cmd, "--checkpoint and --out are required");
    /* The save renames a new file over OUT: over the input it would replace a
     * resumable checkpoint (with its optimizer state) by the collapsed model. */
    if (cli_same_file(in_path, out_path))
        return cli_usage_error(cmd, "--out %s is the same file as --checkpoint %s; collapse "
                               "writes a new file and leaves the trained model as it is",
                               out_path, in_path);
    if ((rc = cli_check_output(out_path, "the collapsed model"))) return rc;
    mf_set_threads(co.threads);
    mf_error err;
    mf_error_clear(&err);
    mf_model in, out;
    memset(&out, 0, sizeof out);
    mf_checkpoint_info info;
    if (mf_checkpoint_load(in_path, &in, &info, &err)) return cli_report(&err);
    if ((rc = cli_check_classes(cmd, &in.cfg, info.dataset))) {
        mf_model_free(&in);
        return rc;
    }
    mf_dataset ds;
    memset(&ds, 0, sizeof ds);
    float *x = NULL, *logits = NULL;
    int *y = NULL, *idx = NULL;
    if (mf_model_collapse(&in, &out, &err)) {
        rc = cli_usage_error(cmd, "%s", err.message);
        goto done;
    }
    size_t before = in.num_params, after = out.num_params;
    printf("collapsed %s: qk %s -> %s, vo %s -> %s; %zu -> %zu parameters (%zu fewer, %.1f%%)\n",
           in_path, mf_qk_name(in.cfg.qk), mf_qk_name(out.cfg.qk), mf_vo_name(in.cfg.vo),
           mf_vo_name(out.cfg.vo), before, after, before - after,
           100.0 * (double)(before - after) / (double)before);

    if ((rc = cli_load_eval_split(cmd, NULL, co.data_dir, info.dataset, &in.cfg, co.limit_test, &ds))) goto done;
    const mf_config *c = &in.cfg;
    int B = 500, K = c->classes;
    size_t img = (size_t)c->channels * c->image_size * c->image_size;
    x = mf_alloc((size_t)B * img * sizeof(float));
    logits = mf_alloc((size_t)B * K * sizeof(float));
    y = mf_alloc((size_t)B * sizeof(int));
    idx = mf_alloc((size_t)B * sizeof(int));
    if (!x || !logits || !y || !idx || mf_model_reserve(&in, B, &err) || mf_model_reserve(&out, B, &err)) {
        if (!err.message[0]) mf_fail(&err, MF_ERR_NOMEM, "out of memory");
        rc = cli_report(&err);
        goto done;
    }
    double max_diff = 0.0;
    long same = 0, correct_in = 0, correct_out = 0;
    for (int start = 0; start < ds.test.count; start += B) {
        int n = ds.test.count - start < B ? ds.test.count - start : B;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        mf_batch_fill(&ds.test, idx, n, info.mean, info.std, MF_AUGMENT_NONE, 0, x, y);
        mf_model_forward(&in, x, NULL, n);
        memcpy(logits, mf_model_logits(&in), (size_t)n * K * sizeof(float));
        mf_model_forward(&out, x, NULL, n);
        const float *z = mf_model_logits(&out);
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < K; k++) {
                double d = fabs((double)logits[(size_t)i * K + k] - z[(size_t)i * K + k]);
                if (d > max_diff || isnan(d)) max_diff = d;
            }
            int pa = mf_argmax(logits + (size_t)i * K, K), pb = mf_argmax(z + (size_t)i * K, K);
            same += pa == pb;
            correct_in += pa == y[i];
            correct_out += pb == y[i];
        }
    }
    int count = ds.test.count;
    printf("on %d %s test images: max |logit difference| %.3g; identical predictions %ld/%d; "
           "accuracy %.2f%% -> %.2f%%\n",
           count, ds.name, max_diff, same, count, 100.0 * correct_in / count, 100.0 * correct_out / count);
    mf_checkpoint_info oinfo = info;
    if (mf_checkpoint_save(out_path, &out, &oinfo, 0, &err)) {
        rc = cli_report(&err);
        goto done;
    }
    printf("wrote %s\n", out_path);
    if (co.json) {
        mf_json_writer w = {0};
        mf_json_raw(&w, "{");
        cli_json_size(&w, "params_before", before);
        cli_json_size(&w, "params_after", after);
        cli_json_size(&w, "params_saved", before - after);
        cli_json_int(&w, "images", count);
        cli_json_real(&w, "max_abs_logit_diff", "%.6g", max_diff);
        cli_json_int(&w, "identical_predictions", same);
        cli_json_real(&w, "test_acc_before", "%.6f", (double)correct_in / count);
        cli_json_real(&w, "test_acc_after", "%.6f", (double)correct_out / count);
        mf_json_raw(&w, "}");
        if ((rc = cli_json_print(&w))) goto done;
    }
    if (same != count) {
        fprintf(stderr, "minformer: %ld of %d predictions changed\n", count - same, count);
        rc = EXIT_RUNTIME;
    }
done:
    mf_free(x);
    mf_free(logits);
    mf_free(y);
    mf_free(idx);
    mf_dataset_free(&ds);
    mf_model_free(&in);
    mf_model_free(&out);
    return rc;
}
