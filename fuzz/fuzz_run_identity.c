/* libFuzzer target for a run's identity (run.json's settings). The work is fuzz_one_run_identity in
 * targets.c, which tests/fuzz/test_fuzz_regressions.c replays; scripts/fuzz.sh
 * builds and runs this. */
#include <stdlib.h>

#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_one_run_identity(data, size)) abort(); /* a broken guarantee is a finding too */
    return 0;
}
