/* libFuzzer target for grid files (minformer experiment FILE.json). The
 * work is fuzz_one_grid in targets.c, which tests/fuzz/test_fuzz_regressions.c
 * replays; scripts/fuzz.sh builds and runs this. */
#include <stdlib.h>

#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_one_grid(data, size)) abort(); /* a broken guarantee is a finding too */
    return 0;
}
