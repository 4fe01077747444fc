/* Fuzz entry points: one function per parser of outside bytes. The libFuzzer
 * targets (fuzz/fuzz_*.c, built by scripts/fuzz.sh) wrap them, and
 * tests/fuzz/test_fuzz_regressions.c replays every file of fuzz/corpus/ and
 * fuzz/regressions/ through the same functions under `make test` and
 * `make asan`.
 *
 * Each returns 0 when the library behaved: it accepted the input with a
 * consistent result, or refused it with a zeroed output and a message. It
 * returns 1 when a documented guarantee broke, after printing a line that
 * says which (also kept in fuzz_last_problem). A crash or a sanitizer report
 * is the other way to fail. Inputs are framed as described at each function;
 * fuzz/make_corpus.c writes the seeds. */
#ifndef MF_FUZZ_TARGETS_H
#define MF_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

#include "minformer/run.h"

/* IDX images and labels through mf_idx_load (10 classes). Input: one flag
 * byte (bit 0: gzip the images file, bit 1: gzip the labels file, done here
 * so the fuzzer mutates the IDX bytes, not the deflate stream), the labels
 * file's length (2 bytes, little-endian), the labels file, then the images
 * file. Either file may also carry gzip bytes of its own. */
int fuzz_one_idx(const uint8_t *data, size_t size);

/* CIFAR-10 binary batches through mf_cifar_load. Input: one byte whose value
 * mod 3, plus 1, is the number of files k, then k - 1 lengths (2 bytes each,
 * little-endian) of all files but the last, then the files' bytes. */
int fuzz_one_cifar(const uint8_t *data, size_t size);

/* A PNG, PGM or PPM through mf_image_decode (from memory) and mf_image_read
 * (from a file), which must agree; an accepted picture is then resampled as
 * `predict` would (1x28x28 and 3x32x32). Input: the file, unframed. */
int fuzz_one_image(const uint8_t *data, size_t size);

/* A safetensors checkpoint through mf_checkpoint_read_header (plus every F32
 * tensor through mf_checkpoint_read_f32) and mf_checkpoint_load. Input: the
 * file, unframed. */
int fuzz_one_checkpoint(const uint8_t *data, size_t size);

/* The command line: the input split at NUL bytes into arguments for
 * `minformer params ...` (which only parses and counts, no I/O), and each
 * argument through cli_parse_int, cli_parse_float and cli_parse_u64. These
 * print to stdout and stderr; the caller silences them. */
int fuzz_one_cli(const uint8_t *data, size_t size);

/* A run identity (an experiment run's run.json "identity", see
 * include/minformer/run.h) through mf_run_identity_parse; an accepted one
 * must survive a round trip through mf_run_identity_to_json. Input: the
 * JSON text, unframed. */
int fuzz_one_run_identity(const uint8_t *data, size_t size);

/* An experiment run's result.json through mf_experiment_parse_result,
 * checked against the identity of fuzz_requested_identity (the first run of
 * the quick grid, 1 epoch, fingerprint 0123456789abcdef). Input: one flag
 * byte (bit 0: any_data, bit 1: no expected name or params), then the file. */
int fuzz_one_result(const uint8_t *data, size_t size);

/* A --tune-lr sweep (lr.json) through mf_experiment_parse_lr against the
 * tuned form of that identity. Input: one flag byte (bit 0: no identity to
 * compare), then the file. */
int fuzz_one_lr(const uint8_t *data, size_t size);

/* A grid file (minformer experiment FILE.json) through
 * mf_experiment_grid_parse, named fuzz.json: refused with one line that
 * names the file, or 1 to MF_EXPERIMENT_MAX_ROWS valid rows with unique
 * names. Input: the file. */
int fuzz_one_grid(const uint8_t *data, size_t size);

/* The identities those two compare against: tuned selects the --tune-lr
 * form. fuzz/make_run_corpus.c writes their seeds from the same function. */
void fuzz_requested_identity(int tuned, mf_run_identity *id);

typedef struct {
    const char *name; /* the directory under fuzz/corpus and fuzz/regressions */
    int (*run)(const uint8_t *data, size_t size);
} fuzz_target;

extern const fuzz_target fuzz_targets[];
extern char fuzz_last_problem[600];
/* When set, each target prints what the library said (accepted, or the
 * error message) to stderr. */
extern int fuzz_verbose;
extern const int fuzz_target_count;

#endif
