/* Writes the seeds of the run-directory fuzz targets (run_identity, result,
 * lr) into fuzz/corpus/TARGET/: a valid file of each kind, built from the
 * same identity the targets compare against, and near-valid ones that each
 * break one rule. Build and run from the repository root:
 *   make && cc -std=c11 -Iinclude -Isrc -Iapp -Ifuzz fuzz/make_run_corpus.c fuzz/targets.c \
 *      app/cli/options.c app/cli/cmd_params.c build/libminformer-app.a build/libminformer.a -fopenmp -lpng -lz -lm -o /tmp/mrc
 *   /tmp/mrc */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minformer.h"
#include "targets.h"

static void put(const char *target, const char *name, int flag, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "fuzz/corpus/%s/%s", target, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    if (flag >= 0) fputc(flag, f);
    fputs(text, f);
    if (fclose(f)) exit(1);
}

/* text with the first occurrence of from replaced by to (static buffer). */
static const char *edit(const char *text, const char *from, const char *to)
{
    static char out[8192];
    const char *at = strstr(text, from);
    if (!at) {
        fprintf(stderr, "make_run_corpus: '%s' not found\n", from);
        exit(1);
    }
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

int main(void)
{
    mf_run_identity plain, tuned;
    fuzz_requested_identity(0, &plain);
    fuzz_requested_identity(1, &tuned);
    char *p = mf_run_identity_to_json(&plain), *t = mf_run_identity_to_json(&tuned);
    if (!p || !t) return 1;

    put("run_identity", "valid", -1, p);
    put("run_identity", "tuned", -1, t);
    put("run_identity", "number_value", -1, edit(p, "\"28\"", "28"));
    put("run_identity", "duplicate", -1, edit(p, "\"dataset\"", "\"dim\""));
    put("run_identity", "empty_object", -1, "{}");

    char result[8192];
    snprintf(result, sizeof result,
             "{\"name\":\"mnist-L6-H1-mlp4-unchanged\",\"identity\":%s,\"params\":305034,"
             "\"train_images\":60000,\"lr\":0.004,\"lr_tuned\":0,\"epochs\":1,\"train_loss\":0.5,"
             "\"train_acc\":0.8,\"test_loss\":0.4,\"test_acc\":0.85,\"best_test_acc\":0.85,"
             "\"best_epoch\":1,\"seconds\":12.5,\"images_per_second\":5000.0}\n", p);
    put("result", "valid", 0, result);
    put("result", "valid_any_data", 1, result);
    put("result", "no_name_expected", 2, edit(result, "mnist-L6-H1-mlp4-unchanged", "other"));
    put("result", "other_name", 0, edit(result, "mnist-L6-H1-mlp4-unchanged", "other"));
    put("result", "other_seed", 0, edit(result, "\"seed\":\"1\"", "\"seed\":\"2\""));
    put("result", "other_data", 0, edit(result, "0123456789abcdef", "0123456789abcdee"));
    put("result", "accuracy_above_1", 0, edit(result, "\"test_acc\":0.85", "\"test_acc\":1.85"));
    put("result", "best_epoch_0", 0, edit(result, "\"best_epoch\":1", "\"best_epoch\":0"));
    put("result", "lr_contradicts", 0, edit(result, "\"lr\":0.004", "\"lr\":0.01"));
    put("result", "empty_object", 0, "{}");

    char sweep[8192];
    snprintf(sweep, sizeof sweep,
             "{\"identity\":%s,\"train_images\":10000,\"val_images\":5000,\"epochs\":1,\"sweep\":["
             "{\"lr\":0.001,\"val_acc\":0.9,\"val_loss\":0.3},{\"lr\":0.003,\"val_acc\":0.92,"
             "\"val_loss\":0.25},{\"lr\":0.01,\"val_acc\":0.1,\"val_loss\":-1}],\"lr\":0.003}\n", t);
    put("lr", "valid", 0, sweep);
    put("lr", "valid_no_identity", 1, sweep);
    put("lr", "not_a_candidate", 0, edit(sweep, "\"lr\":0.003}\n", "\"lr\":0.004}\n"));
    put("lr", "short_sweep", 0, edit(sweep, ",{\"lr\":0.01,\"val_acc\":0.1,\"val_loss\":-1}", ""));
    put("lr", "untuned_identity", 0, edit(sweep, "\"lr\":\"tuned\"", "\"lr\":\"0.004\""));
    free(p);
    free(t);
    return 0;
}
