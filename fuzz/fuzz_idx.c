/* libFuzzer target for the IDX loader (mf_idx_load), raw and gzip.
 * The work is fuzz_one_idx in targets.c, which tests/fuzz/test_fuzz_regressions.c
 * replays; scripts/fuzz.sh builds and runs this. */
#include <stdlib.h>

#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_one_idx(data, size)) abort(); /* a broken guarantee is a finding too */
    return 0;
}
