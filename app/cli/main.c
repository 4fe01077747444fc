/* minformer <command> [options]: dispatches to one function per command. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"info", cmd_info, "describe a dataset: counts, classes, normalization"},
    {"params", cmd_params, "count a model's parameters by component"},
    {"train", cmd_train, "train a model and evaluate it after every epoch"},
    {"eval", cmd_eval, "evaluate a checkpoint: loss, accuracy, per-class accuracy, confusion"},
    {"predict", cmd_predict, "classify PNG, PGM or PPM images with a checkpoint"},
    {"collapse", cmd_collapse, "rewrite a trained model with collapsed W_qk and W_vo, exactly"},
    {"experiment", cmd_experiment, "run a named grid of the paper's experiments, resumably"},
    {"plot", cmd_plot, "draw loss curves from training logs as a PNG"},
    {"attention", cmd_attention, "draw a test image's attention maps and rollout as a PNG"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "minformer %s: minimal vision transformers (Bermeitinger et al., arXiv 2410.13732)\n\n"
            "Usage: minformer <command> [options]\n\nCommands:\n",
            MF_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'minformer <command> --help' for a command's options.\n"
               "Exit status: 0 success, 1 runtime error, 2 usage error.\n");
}

/* libgomp reads OMP_WAIT_POLICY once, before main, and by default spins at
 * every barrier. On a 2-core machine that is also running anything else, the
 * spinning thread starves the one doing the work: measured 182 vs 5,069 img/s
 * under load, and passive was as fast or faster when idle (docs/PERFORMANCE.md).
 * So unless the user chose a policy, restart once with passive waiting. */
static void prefer_passive_waiting(char **argv)
{
#ifdef _OPENMP
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1)) return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with the default policy. */
#else
    (void)argv;
#endif
}

/* stdout's buffered bytes reach the reader only here, for most commands: a
 * full disk or a reader that went away (`minformer eval --json | head -c1`)
 * shows up now, and a command that reported success must not exit 0 with
 * its output lost. A command that failed has already said why. */
static int finish_output(int rc)
{
    int failed = 0, saved = 0;
    if (fflush(stdout)) failed = 1, saved = errno;
    else if (ferror(stdout)) failed = 1; /* an earlier write, its errno long gone */
    if (fclose(stdout) && !failed) failed = 1, saved = errno;
    if (!failed || rc) return rc;
    fprintf(stderr, "minformer: cannot write the output: %s\n",
            saved ? strerror(saved) : "an earlier write failed");
    return EXIT_RUNTIME;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        printf("minformer %s\n", MF_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "minformer: unknown command '%s' (see 'minformer --help')\n", name);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    /* A closed pipe is a write error that finish_output reports, not a
     * silent death by SIGPIPE. Ignoring is kept across the exec below. */
    signal(SIGPIPE, SIG_IGN);
    prefer_passive_waiting(argv);
    return finish_output(dispatch(argc, argv));
}
