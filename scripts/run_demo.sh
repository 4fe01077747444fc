#!/bin/sh
# The main job (`make run`): fetch and verify the datasets if they are missing,
# then run the `quick` experiment on MNIST: the unchanged transformer, the same
# without its MLP, and the minimal one (collapsed W_qk, no W_v/W_o, no MLP),
# 2 epochs each. It prints the results table and where the pictures are.
# Runs already finished are skipped, so a second `make run` only reprints.
#
#   MINFORMER_DATA=DIR        data directory (default ./data)
#   MINFORMER_DEMO_OUT=DIR    output directory (default runs/quick)
#   MINFORMER_DEMO_ARGS=...   extra experiment options, e.g. "--epochs 1 --limit-train 5000"
#                             (with another budget, use another MINFORMER_DEMO_OUT)
# minformer sets OMP_WAIT_POLICY=passive for itself unless the variable is set.
set -eu
cd "$(dirname "$0")/.."
DATA=${MINFORMER_DATA:-./data}
OUT=${MINFORMER_DEMO_OUT:-runs/quick}
BIN=build/minformer

sh scripts/get_data.sh "$DATA"
echo
# shellcheck disable=SC2086 # MINFORMER_DEMO_ARGS is a list of options
"$BIN" experiment quick --data "$DATA" --out "$OUT" ${MINFORMER_DEMO_ARGS:-}
echo
for run in mnist-L6-H1-mlp4-unchanged mnist-L6-H1-mlp0-minimal; do
    "$BIN" attention --checkpoint "$OUT/$run/checkpoint.safetensors" --data "$DATA" --index 0 \
        --out "$OUT/attention-$run.png" | tail -n 1
done
echo
echo "Pictures (PNG):"
echo "  $OUT/loss-mnist.png          training and test loss per epoch of each run"
echo "  $OUT/accuracy-params.png     test accuracy against parameter count"
echo "  $OUT/attention-*.png         CLS attention per layer and rollout on test image 0"
echo "Tables: $OUT/results.md, $OUT/results.csv. Each run's log and checkpoint: $OUT/<run>/."
echo "The paper's grids: build/minformer experiment --help (table1, table2, table3)."
