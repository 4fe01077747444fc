/* libFuzzer target for the command line (minformer params and app/cli/options.c).
 * The work is fuzz_one_cli in targets.c, which tests/fuzz/test_fuzz_regressions.c
 * replays; scripts/fuzz.sh builds and runs this. */
#include <stdio.h>
#include <stdlib.h>

#include "targets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Each rejected argument prints a usage line in several pieces; an
 * unbuffered stderr made a system call of each, half the time of a run.
 * (The sanitizers and libFuzzer write their reports without stdio.) */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setvbuf(stderr, NULL, _IOFBF, 1 << 16);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_one_cli(data, size)) abort(); /* a broken guarantee is a finding too */
    return 0;
}
