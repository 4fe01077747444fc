#!/bin/sh
# A short real training run, a resume, an evaluation and an attention map
# under valgrind memcheck.
# valgrind 3.19 does not decode AVX-512, so this builds an AVX2 binary of its
# own in build/valgrind. Exits non-zero on any memcheck error or leak.
set -eu
cd "$(dirname "$0")/.."
make -s BUILD=build/valgrind MARCH=-march=x86-64-v3 OPT="-O2 -g" build/valgrind/minformer
BIN=build/valgrind/minformer
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# minformer restarts itself to set OMP_WAIT_POLICY unless it is set; under
# valgrind that restart would exec the tool's own loader.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
VG="valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect"
set -x
$VG $BIN train --dataset mnist --heads 2 --mlp 2 --dim 32 --layers 2 --epochs 1 \
    --limit-train 256 --limit-test 100 --batch 64 --threads 1 --save "$TMP/a.safetensors"
$VG $BIN train --resume "$TMP/a.safetensors" --epochs 2 --threads 1
$VG $BIN train --dataset mnist --preset minimal --mlp 0 --qk cholesky --epochs 1 \
    --limit-train 256 --limit-test 100 --batch 64 --threads 1
$VG $BIN eval --checkpoint "$TMP/a.safetensors" --limit-test 200 --threads 1
$VG $BIN attention --checkpoint "$TMP/a.safetensors" --index 3 --out "$TMP/att.png" --threads 1
set +x
echo "valgrind: clean"
