/* minformer params: the parameter count of a configuration by component, its
 * share of the unchanged model, and the paper's overdetermination ratio Q. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "Usage: minformer params --dataset mnist|cifar10|fashion-mnist [model options] [--json]\n\n"
    "Counts the parameters of a model by component, the total as a percentage of\n"
    "the unchanged model (MLP ratio 4, separate Q/K/V/O) at the same width, depth\n"
    "and patch size, and the overdetermination ratio Q = K*M/P of the paper\n"
    "(K training examples, M = 10 outputs each, P parameters).\n\n" CLI_MODEL_HELP
    "Output:\n"
    "  --json             end with one JSON object (params, baseline_params, q_ratio, ...)\n";

static int train_count(mf_dataset_kind kind) { return kind == MF_CIFAR10 ? 50000 : 60000; }

int cmd_params(int argc, char **argv)
{
    enum { OPT_DATASET = OPT_CLI_LAST + 1 };
    static const struct option longopts[] = {CLI_MODEL_LONGOPTS,
                                             {"dataset", required_argument, 0, OPT_DATASET},
                                             CLI_OPT_JSON,
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    cli_common_opts co;
    cli_common_opts_init(&co);
    const char *dataset = NULL;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = cli_model_option(&mo, opt, optarg, "params");
        if (!r) r = cli_common_option(&co, opt, optarg, "params");
        if (r < 0) return -r;
        if (r) continue;
        switch (opt) {
        case OPT_DATASET: dataset = optarg; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option("params", argv);
        }
    }
    if (optind < argc) return cli_usage_error("params", "unexpected argument '%s'", argv[optind]);
    if (!dataset) return cli_usage_error("params", "--dataset is required");
    mf_dataset_kind kind;
    mf_error err;
    if (mf_dataset_parse(dataset, &kind, &err)) return cli_usage_error("params", "%s", err.message);
    mf_config cfg;
    int rc = cli_model_config(&mo, kind, &cfg, "params");
    if (rc) return rc;

    mf_param_breakdown b, base;
    mf_config_param_breakdown(&cfg, &b);
    mf_config baseline = cfg;
    baseline.qk = MF_QK_SEPARATE;
    baseline.vo = MF_VO_SEPARATE;
    baseline.mlp_ratio = 4;
    mf_config_param_breakdown(&baseline, &base);
    double pct = 100.0 * (double)b.total / (double)base.total;
    double q = (double)train_count(kind) * 10.0 / (double)b.total;
    size_t L = (size_t)cfg.layers;

    printf("model: %s, %dx%dx%d images, patch %d, width %d, %d layers, %d heads, MLP ratio %d, "
           "qk %s, vo %s, pool %s\n",
           mf_dataset_name(kind), cfg.channels, cfg.image_size, cfg.image_size, cfg.patch, cfg.dim,
           cfg.layers, cfg.heads, cfg.mlp_ratio, mf_qk_name(cfg.qk), mf_vo_name(cfg.vo),
           mf_pool_name(cfg.pool));
    printf("  %-28s %10zu\n", "patch embedding", b.patch_embed);
    printf("  %-28s %10zu\n", "cls token", b.cls_token);
    printf("  %-28s %10zu\n", "position embedding", b.pos_embed);
    printf("  %-28s %10zu  (x%zu = %zu)\n", "attention, per block", b.attention / L, L, b.attention);
    printf("  %-28s %10zu  (x%zu = %zu)\n", "block norms, per block", b.norms / L, L, b.norms);
    printf("  %-28s %10zu  (x%zu = %zu)\n", "MLP, per block", b.mlp / L, L, b.mlp);
    printf("  %-28s %10zu\n", "final norm", b.final_norm);
    printf("  %-28s %10zu\n", "head", b.head);
    printf("  %-28s %10zu\n", "total", b.total);
    printf("  %-28s %9.1f%%  (unchanged: %zu)\n", "of the unchanged model", pct, base.total);
    printf("  %-28s %10.2f  (K = %d, M = 10)\n", "Q = K*M/P", q, train_count(kind));
    if (!co.json) return 0;
    mf_json_writer w = {0};
    mf_json_raw(&w, "{");
    cli_json_str(&w, "dataset", mf_dataset_name(kind));
    cli_json_size(&w, "params", b.total);
    cli_json_size(&w, "baseline_params", base.total);
    cli_json_real(&w, "percent_of_baseline", "%.4f", pct);
    cli_json_real(&w, "q_ratio", "%.6g", q);
    cli_json_size(&w, "patch_embed", b.patch_embed);
    cli_json_size(&w, "cls_token", b.cls_token);
    cli_json_size(&w, "pos_embed", b.pos_embed);
    cli_json_size(&w, "attention", b.attention);
    cli_json_size(&w, "norms", b.norms);
    cli_json_size(&w, "mlp", b.mlp);
    cli_json_size(&w, "final_norm", b.final_norm);
    cli_json_size(&w, "head", b.head);
    cli_json_int(&w, "dim", cfg.dim);
    cli_json_int(&w, "layers", cfg.layers);
    cli_json_int(&w, "heads", cfg.heads);
    cli_json_int(&w, "mlp_ratio", cfg.mlp_ratio);
    cli_json_int(&w, "patch", cfg.patch);
    cli_json_str(&w, "qk", mf_qk_name(cfg.qk));
    cli_json_str(&w, "vo", mf_vo_name(cfg.vo));
    cli_json_str(&w, "pool", mf_pool_name(cfg.pool));
    mf_json_raw(&w, "}");
    return cli_json_print(&w);
}
