/* Training and evaluation throughput of the default models, with the model
 * FLOPs per image, the achieved GFLOP/s, the share of a large-SGEMM peak
 * measured in the same process (model FLOP utilisation), 1- vs N-thread
 * scaling, peak resident memory and a per-op wall-time profile.
 *
 * Usage: bench [--workload mnist|mnist-minimal|cifar|all] [--steps N]
 *              [--warmup N] [--eval-images N] [--threads T] [--no-scaling]
 *              [--no-profile] [--synthetic] [--data DIR] [--gemm-size S] [--json]
 *
 * Training runs the library's own loop (mf_train: batch filling with
 * augmentation, forward, backward, the non-finite check, AdamW), on the real
 * data when it is present (else random pixels in the same shapes), for
 * warmup + steps steps; the first warmup steps are not timed. Evaluation is
 * mf_evaluate on eval-images test images as mf_train runs it after each
 * epoch: asked for batches of 500, it keeps to the training batch, whose
 * activations the model already holds.
 *
 * FLOPs count multiply-adds of the matrix products only (2 per
 * multiply-add); LayerNorm, GELU, softmax, residual adds and AdamW are
 * O(T N) per image and left out, as is usual for model FLOP utilisation.
 * Per image, with T1 tokens (T patches + CLS), width N, H heads, MLP width
 * F = rN, C*P*P pixels per patch, K classes, per block unless noted:
 *   patch embed      2 T C P^2 N                       (once)
 *   attn linears     2 T1 N^2 per N x N matrix: q, k, v, proj (separate),
 *                    qk or W (collapsed, symmetric, cholesky), vo
 *   attn scores      2 T1^2 N   (H heads of width N/H: S_h = q_h k_h^T)
 *   attn mixing      2 T1^2 N   (A_h v_h); vo none: 2 T1^2 N per head
 *   MLP              2 * 2 T1 N F (fc1, fc2)
 *   head             2 N K                             (once)
 * Training counts forward x 3 (backward = two products per forward product:
 * the input and the weight gradients). That overstates the patch
 * embedding's backward, which needs no input gradient, by 2 T C P^2 N.
 * These are the model's FLOPs, which PyTorch executes. With CLS pooling
 * the head reads only the CLS row of the last block, which minformer
 * computes alone: of that block it skips, per image, 2 (T1 - 1) N^2 per
 * query-side matrix (q; qk or W) and output matrix (proj, vo), 2 (T1 - 1)
 * T1 N of the scores and as much of the mixing (per head for vo none), and
 * 2 * 2 (T1 - 1) N F of the MLP. GFLOP/s and the FLOP utilisation count
 * only the executed FLOPs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "kernels/gemm.h"
#include "minformer.h"
#include "base/profile.h"

typedef struct {
    const char *name;
    mf_dataset_kind dataset;
    const char *preset;
    int mlp_ratio;
    int batch;
} workload;

static const workload workloads[] = {
    {"mnist", MF_MNIST, "unchanged", 4, 256},
    {"mnist-minimal", MF_MNIST, "minimal", 0, 256},
    {"cifar", MF_CIFAR10, "unchanged", 4, 128},
};
#define NUM_WORKLOADS (int)(sizeof workloads / sizeof workloads[0])

typedef struct {
    int steps, warmup, eval_images, threads, scaling, profile, synthetic, gemm_size, json;
    const char *data_dir;
    mf_precision precision;
} bench_opts;

/* ---- FLOPs ----------------------------------------------------------------- */

enum { FL_PATCH, FL_ATTN_LINEAR, FL_SCORES, FL_MIX, FL_MLP, FL_HEAD, FL_COUNT };
static const char *const flop_names[FL_COUNT] = {"patch embed", "attn linears", "attn scores",
                                                 "attn mixing", "mlp", "head"};

/* Forward FLOPs per image, per op (see the formulas at the top). */
static double forward_flops(const mf_config *c, double out[FL_COUNT])
{
    double T = mf_config_patches(c), T1 = mf_config_tokens(c), N = c->dim, H = c->heads;
    double F = (double)c->mlp_ratio * c->dim, K = c->classes, L = c->layers;
    double cpp = (double)c->channels * c->patch * c->patch;
    int qk_mats = c->qk == MF_QK_SEPARATE ? 2 : 1;
    int vo_mats = c->vo == MF_VO_SEPARATE ? 2 : c->vo == MF_VO_COLLAPSED ? 1 : 0;
    out[FL_PATCH] = 2 * T * cpp * N;
    out[FL_ATTN_LINEAR] = L * (qk_mats + vo_mats) * 2 * T1 * N * N;
    out[FL_SCORES] = L * 2 * T1 * T1 * N;
    out[FL_MIX] = L * 2 * T1 * T1 * N * (c->vo == MF_VO_NONE ? H : 1);
    out[FL_MLP] = L * 2 * 2 * T1 * N * F;
    out[FL_HEAD] = 2 * N * K;
    double sum = 0;
    for (int i = 0; i < FL_COUNT; i++) sum += out[i];
    return sum;
}

/* Of those, the ones minformer skips: the last block's rows other than the
 * CLS row, where they are not keys or values (see the top). */
static double skipped_forward_flops(const mf_config *c)
{
    if (c->pool != MF_POOL_CLS) return 0.0;
    double T1 = mf_config_tokens(c), N = c->dim, F = (double)c->mlp_ratio * c->dim, H = c->heads;
    int query_mats = c->qk == MF_QK_SHARED ? 0 : 1, out_mats = c->vo == MF_VO_NONE ? 0 : 1;
    double rows = T1 - 1;
    return (query_mats + out_mats) * 2 * rows * N * N + 2 * rows * T1 * N +
           2 * rows * T1 * N * (c->vo == MF_VO_NONE ? H : 1) + 2 * 2 * rows * N * F;
}

/* ---- synthetic data --------------------------------------------------------- */

/* Random pixels in the dataset's shape; labels random. Timing only. */
static void synthetic_dataset(mf_dataset *ds, mf_dataset_kind kind, int train, int test)
{
    memset(ds, 0, sizeof *ds);
    ds->kind = kind;
    ds->name = mf_dataset_name(kind);
    ds->classes = 10;
    ds->channels = mf_dataset_channels(kind);
    ds->size = mf_dataset_image_size(kind);
    mf_split *splits[2] = {&ds->train, &ds->test};
    int counts[2] = {train, test};
    mf_rng rng;
    mf_rng_seed(&rng, 1234);
    size_t img = (size_t)ds->channels * ds->size * ds->size;
    for (int s = 0; s < 2; s++) {
        mf_split *sp = splits[s];
        sp->count = counts[s];
        sp->channels = ds->channels;
        sp->size = ds->size;
        sp->images = mf_alloc((size_t)counts[s] * img);
        sp->labels = mf_alloc((size_t)counts[s] * sizeof *sp->labels);
        for (size_t i = 0; i < (size_t)counts[s] * img; i++) sp->images[i] = (uint8_t)mf_rng_below(&rng, 256);
        for (int i = 0; i < counts[s]; i++) sp->labels[i] = (uint16_t)mf_rng_below(&rng, 10);
    }
    for (int ch = 0; ch < 3; ch++) ds->mean[ch] = 0.5f, ds->std[ch] = 0.29f;
}

/* ---- timing ------------------------------------------------------------------ */

typedef struct {
    int warmup;
    double t_start;     /* when step `warmup` ended */
    double t_end;       /* the last step */
    double best_step;   /* shortest timed step */
    double last;
    double cpu_start;
    double cpu_end;
} step_clock;

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * ru.ru_stime.tv_usec;
}

static void on_batch(void *ctx, int epoch, int batch, int batches, float loss, float acc, double ips)
{
    (void)epoch, (void)batches, (void)loss, (void)acc, (void)ips;
    step_clock *c = ctx;
    double now = mf_now_seconds();
    if (batch == c->warmup) {
        c->t_start = now;
        c->cpu_start = cpu_seconds();
        if (mf_profile_enabled()) mf_profile_reset();
    } else if (batch > c->warmup) {
        double dt = now - c->last;
        if (dt < c->best_step) c->best_step = dt;
        c->t_end = now;
        c->cpu_end = cpu_seconds();
        if (batch == batches) mf_profile_enable(0); /* not the evaluation */
    }
    c->last = now;
}

typedef struct {
    double train_ips, train_best_ips, cpu_util; /* cpu_util: CPU seconds / (wall * threads) */
    double eval_ips;
    double loss;
} run_result;

/* Trains a freshly initialized model for warmup + steps steps with `threads`
 * threads (the dataset already limited to that many batches). */
static int train_run(mf_model *m, const mf_dataset *ds, const workload *w, const bench_opts *o,
                     int threads, int profile, run_result *r)
{
    mf_error err;
    mf_set_threads(threads);
    mf_model_init_weights(m, 1);
    memset(m->adam_m, 0, 2 * m->num_params * sizeof(float));
    mf_train_opts to;
    mf_train_opts_default(&to);
    to.epochs = 1;
    to.batch = w->batch;
    to.precision = o->precision;
    step_clock clk = {o->warmup, 0, 0, 1e30, mf_now_seconds(), 0, 0};
    mf_train_hooks hooks = {&clk, on_batch, NULL};
    mf_train_state st;
    mf_train_state_init(&st);
    if (profile) mf_profile_enable(profile);
    mf_status s = mf_train(m, ds, &to, &st, &hooks, NULL, &err);
    mf_profile_enable(0);
    if (s) {
        fprintf(stderr, "bench: %s: training failed: %s\n", w->name, err.message);
        return 1;
    }
    double wall = clk.t_end - clk.t_start;
    r->train_ips = (double)o->steps * w->batch / wall;
    r->train_best_ips = w->batch / clk.best_step;
    r->cpu_util = (clk.cpu_end - clk.cpu_start) / (wall * threads);
    r->loss = st.test_loss;
    return 0;
}

static int eval_run(mf_model *m, const mf_dataset *ds, int threads, run_result *r)
{
    mf_error err;
    mf_eval_result ev;
    mf_set_threads(threads);
    double t0 = mf_now_seconds();
    if (mf_evaluate(m, &ds->test, ds->mean, ds->std, 500, &ev, &err)) {
        fprintf(stderr, "bench: evaluation failed: %s\n", err.message);
        return 1;
    }
    r->eval_ips = ds->test.count / (mf_now_seconds() - t0);
    return 0;
}

/* Best of short rounds of a square SGEMM through mf_gemm: GFLOP/s. */
static double sgemm_peak(int n, int threads)
{
    float *A = mf_alloc((size_t)n * n * sizeof(float)), *B = mf_alloc((size_t)n * n * sizeof(float));
    float *C = mf_alloc((size_t)n * n * sizeof(float));
    if (!A || !B || !C) {
        mf_free(A), mf_free(B), mf_free(C);
        return 0.0;
    }
    mf_rng rng;
    mf_rng_seed(&rng, 5);
    for (size_t i = 0; i < (size_t)n * n; i++) A[i] = mf_rng_uniform(&rng) - 0.5f, B[i] = mf_rng_uniform(&rng) - 0.5f;
    mf_set_threads(threads);
    double best = 1e30, start = mf_now_seconds();
    for (int round = 0; round < 5 || (round < 200 && mf_now_seconds() - start < 1.5); round++) {
        double t0 = mf_now_seconds();
        mf_gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double dt = mf_now_seconds() - t0;
        if (dt < best) best = dt;
    }
    mf_free(A), mf_free(B), mf_free(C);
    return 2.0 * n * n * (double)n / best * 1e-9;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

static void print_profile(int steps, int batch, int cpu)
{
    double total = 0;
    for (int op = 0; op < MF_PROF_OP_COUNT; op++)
        for (int d = 0; d < 3; d++) total += mf_profile_seconds(op, d);
    if (total <= 0) return;
    printf("  per-op %s time, ms per step (%d steps of %d images):\n", cpu ? "CPU" : "wall", steps,
           batch);
    printf("    %-24s %9s %9s %9s %6s\n", "op", "forward", "backward", "total", "share");
    for (int op = 0; op < MF_PROF_OP_COUNT; op++) {
        double f = mf_profile_seconds(op, MF_PROF_FORWARD), b = mf_profile_seconds(op, MF_PROF_BACKWARD);
        double o = mf_profile_seconds(op, MF_PROF_OTHER), t = f + b + o;
        if (t <= 0) continue;
        if (f + b > 0)
            printf("    %-24s %9.2f %9.2f %9.2f %5.1f%%\n", mf_profile_op_name(op), 1e3 * (f + o) / steps,
                   1e3 * b / steps, 1e3 * t / steps, 100.0 * t / total);
        else /* the training loop's own steps and the threads' overhead */
            printf("    %-24s %9s %9s %9.2f %5.1f%%\n", mf_profile_op_name(op), "", "", 1e3 * t / steps,
                   100.0 * t / total);
    }
    printf("    %-24s %29.2f\n", "sum", 1e3 * total / steps);
}

static int run_workload(const workload *w, const bench_opts *o)
{
    mf_error err;
    mf_dataset ds;
    int real = 0;
    if (!o->synthetic) {
        if (mf_dataset_load(&ds, w->dataset, mf_data_dir(o->data_dir), &err) == MF_OK) real = 1;
        else fprintf(stderr, "bench: %s: no real data (%s); using random pixels\n", w->name, err.message);
    }
    int train_images = (o->warmup + o->steps) * w->batch;
    if (!real) synthetic_dataset(&ds, w->dataset, train_images, o->eval_images);
    if (ds.train.count < train_images) {
        fprintf(stderr, "bench: %s: %d training images, %d needed\n", w->name, ds.train.count, train_images);
        mf_dataset_free(&ds);
        return 1;
    }
    mf_dataset_limit(&ds, train_images, o->eval_images);

    mf_config cfg;
    mf_config_default(&cfg, ds.size, ds.channels, ds.classes);
    if (mf_config_apply_preset(&cfg, w->preset, &err)) {
        fprintf(stderr, "bench: %s\n", err.message);
        return 1;
    }
    cfg.mlp_ratio = w->mlp_ratio;
    mf_model m;
    if (mf_model_create(&m, &cfg, &err) || mf_model_set_precision(&m, o->precision, &err)) {
        fprintf(stderr, "bench: %s\n", err.message);
        return 1;
    }
    int threads = o->threads > 0 ? o->threads : (mf_set_threads(0), mf_get_threads());
    double fl[FL_COUNT];
    double fwd = forward_flops(&cfg, fl), train_flops = 3 * fwd;
    double fwd_exec = fwd - skipped_forward_flops(&cfg), train_exec = 3 * fwd_exec;

    run_result r2 = {0}, r1 = {0};
    int rc = train_run(&m, &ds, w, o, threads, o->profile, &r2);
    if (!rc) rc = eval_run(&m, &ds, threads, &r2);
    double rss_after_main = peak_rss_mib();
    if (!rc && o->scaling && threads > 1) {
        rc = train_run(&m, &ds, w, o, 1, 0, &r1);
        if (!rc) rc = eval_run(&m, &ds, 1, &r1);
    }
    if (rc) {
        mf_model_free(&m);
        mf_dataset_free(&ds);
        return rc;
    }
    double rss = peak_rss_mib();
    double peak = sgemm_peak(o->gemm_size, threads);
    double peak1 = o->scaling && threads > 1 ? sgemm_peak(o->gemm_size, 1) : 0.0;
    double gflops = r2.train_ips * train_exec * 1e-9;
    const char *wait = getenv("OMP_WAIT_POLICY");

    printf("%s: %s, preset %s, mlp ratio %d, N %d, L %d, H %d, P %d, batch %d, %zu parameters, %s data\n",
           w->name, mf_dataset_name(w->dataset), w->preset, cfg.mlp_ratio, cfg.dim, cfg.layers,
           cfg.heads, cfg.patch, w->batch, m.num_params, real ? "real" : "random");
    printf("  forward MFLOP per image: %.3f =", fwd * 1e-6);
    for (int i = 0; i < FL_COUNT; i++) printf("%s %s %.3f", i ? " +" : "", flop_names[i], fl[i] * 1e-6);
    printf("\n  training MFLOP per image (forward x 3): %.3f\n", train_flops * 1e-6);
    if (fwd_exec < fwd)
        printf("  executed (the last block on the CLS rows only): forward %.3f, training %.3f\n",
               fwd_exec * 1e-6, train_exec * 1e-6);
    const char *ts = threads == 1 ? "" : "s";
    printf("  train %d thread%s: %.1f img/s (best step %.1f), %.1f GFLOP/s, CPU busy %.0f%% (%.1f CPU ms/step)\n",
           threads, ts, r2.train_ips, r2.train_best_ips, gflops, 100 * r2.cpu_util,
           1e3 * r2.cpu_util * threads * w->batch / r2.train_ips);
    printf("  eval  %d thread%s: %.1f img/s (%.1f GFLOP/s)\n", threads, ts, r2.eval_ips,
           r2.eval_ips * fwd_exec * 1e-9);
    if (r1.train_ips > 0) {
        printf("  train 1 thread:  %.1f img/s (best step %.1f, %.1f CPU ms/step); scaling %.2fx (best steps %.2fx)\n",
               r1.train_ips, r1.train_best_ips, 1e3 * r1.cpu_util * w->batch / r1.train_ips,
               r2.train_ips / r1.train_ips, r2.train_best_ips / r1.train_best_ips);
        printf("  eval  1 thread:  %.1f img/s; scaling %.2fx\n", r1.eval_ips, r2.eval_ips / r1.eval_ips);
    }
    printf("  SGEMM %d^3 peak: %.1f GFLOP/s with %d thread%s", o->gemm_size, peak, threads, ts);
    if (peak1 > 0) printf(", %.1f with 1", peak1);
    printf("\n  model FLOP utilisation: %.1f%% of that peak\n", 100.0 * gflops / peak);
    printf("  peak RSS: %.1f MiB (after the %d-thread run: %.1f MiB), dataset included\n", rss,
           threads, rss_after_main);
    if (o->profile) print_profile(o->steps, w->batch, o->profile == 2);
    if (o->json)
        printf("RESULT {\"workload\":\"%s\",\"precision\":\"%s\",\"batch\":%d,\"threads\":%d,\"steps\":%d,\"data\":\"%s\","
               "\"wait_policy\":\"%s\",\"train_ips\":%.2f,\"train_best_ips\":%.2f,\"eval_ips\":%.2f,"
               "\"train_ips_1t\":%.2f,\"eval_ips_1t\":%.2f,\"fwd_mflop\":%.4f,\"train_mflop\":%.4f,"
               "\"train_mflop_executed\":%.4f,"
               "\"gflops\":%.2f,\"sgemm_peak\":%.2f,\"sgemm_peak_1t\":%.2f,\"mfu\":%.4f,"
               "\"peak_rss_mib\":%.1f,\"cpu_util\":%.3f,\"cpu_util_1t\":%.3f}\n",
               w->name, mf_precision_name(o->precision), w->batch, threads, o->steps, real ? "real" : "random", wait ? wait : "",
               r2.train_ips, r2.train_best_ips, r2.eval_ips, r1.train_ips, r1.eval_ips, fwd * 1e-6,
               train_flops * 1e-6, train_exec * 1e-6, gflops, peak, peak1, gflops / peak, rss,
               r2.cpu_util, r1.cpu_util);
    fflush(stdout);
    mf_model_free(&m);
    mf_dataset_free(&ds);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench [options]\n"
            "  --workload W      mnist, mnist-minimal, cifar or all (default all)\n"
            "  --steps N         timed training steps (default 20)\n"
            "  --warmup N        untimed steps first (default 3)\n"
            "  --eval-images N   test images to evaluate (default 2000)\n"
            "  --threads T       threads (default: all cores)\n"
            "  --no-scaling      skip the 1-thread runs\n"
            "  --no-profile      skip the per-op profile\n"
            "  --cpu-profile     profile CPU time instead of wall time (use with --threads 1\n"
            "                    on a busy machine)\n"
            "  --synthetic       random pixels even where the real data is present\n"
            "  --data DIR        data directory (default $MINFORMER_DATA, else ./data)\n"
            "  --gemm-size S     square SGEMM size for the peak (default 1024)\n"
            "  --json            also print one RESULT line of JSON per workload\n"
            "  --precision P     fp32 (default) or bf16 matrix products in the linear layers\n");
}

int main(int argc, char **argv)
{
    bench_opts o = {20, 3, 2000, 0, 1, 1, 0, 1024, 0, NULL, MF_PRECISION_FP32};
    const char *which = "all";
    enum { O_WORKLOAD = 1, O_STEPS, O_WARMUP, O_EVAL, O_THREADS, O_NOSCALE, O_NOPROF, O_SYNTH,
           O_DATA, O_GEMM, O_JSON, O_HELP, O_CPUPROF, O_PREC };
    static const struct option longopts[] = {
        {"workload", required_argument, 0, O_WORKLOAD}, {"steps", required_argument, 0, O_STEPS},
        {"warmup", required_argument, 0, O_WARMUP},     {"eval-images", required_argument, 0, O_EVAL},
        {"threads", required_argument, 0, O_THREADS},   {"no-scaling", no_argument, 0, O_NOSCALE},
        {"no-profile", no_argument, 0, O_NOPROF},       {"synthetic", no_argument, 0, O_SYNTH},
        {"cpu-profile", no_argument, 0, O_CPUPROF},     {"precision", required_argument, 0, O_PREC},
        {"data", required_argument, 0, O_DATA},         {"gemm-size", required_argument, 0, O_GEMM},
        {"json", no_argument, 0, O_JSON},               {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_WORKLOAD: which = optarg; break;
        case O_STEPS: o.steps = atoi(optarg); break;
        case O_WARMUP: o.warmup = atoi(optarg); break;
        case O_EVAL: o.eval_images = atoi(optarg); break;
        case O_THREADS: o.threads = atoi(optarg); break;
        case O_NOSCALE: o.scaling = 0; break;
        case O_NOPROF: o.profile = 0; break;
        case O_CPUPROF: o.profile = 2; break;
        case O_SYNTH: o.synthetic = 1; break;
        case O_DATA: o.data_dir = optarg; break;
        case O_GEMM: o.gemm_size = atoi(optarg); break;
        case O_JSON: o.json = 1; break;
        case O_PREC:
            if (mf_precision_parse(optarg, &o.precision)) {
                fprintf(stderr, "bench: --precision '%s': fp32 or bf16\n", optarg);
                return 2;
            }
            break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || o.steps < 1 || o.warmup < 1 || o.eval_images < 1 || o.threads < 0 ||
        o.gemm_size < 64) {
        usage(stderr);
        return 2;
    }
    int ran = 0, rc = 0;
    for (int i = 0; i < NUM_WORKLOADS; i++) {
        if (strcmp(which, "all") && strcmp(which, workloads[i].name)) continue;
        rc |= run_workload(&workloads[i], &o);
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "bench: unknown workload '%s'\n", which);
        return 2;
    }
    return rc;
}
