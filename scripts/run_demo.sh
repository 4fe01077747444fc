#!/bin/sh
# The main job (`make run`): fetch and verify the datasets if needed, describe
# them, then train the paper's minimal transformer on MNIST for one epoch next
# to the unchanged one, so a newcomer sees the whole pipeline in a few minutes.
set -eu
cd "$(dirname "$0")/.."
DATA=${MINFORMER_DATA:-./data}
BIN=build/minformer

sh scripts/get_data.sh "$DATA"
for d in mnist fashion-mnist cifar10; do
    echo
    "$BIN" info --dataset "$d" --data "$DATA"
done
echo
echo "== minimal (collapsed W_qk, no W_v/W_o, no MLP), 1 epoch on MNIST"
"$BIN" params --dataset mnist --preset minimal --mlp 0 | sed -n '1p;/total/p;/unchanged model/p'
"$BIN" train --dataset mnist --data "$DATA" --preset minimal --mlp 0 --epochs 1 --lr 1e-2
echo
echo "== unchanged (separate Q/K/V/O, MLP ratio 4), 1 epoch on MNIST"
"$BIN" params --dataset mnist --preset unchanged | sed -n '1p;/total/p'
"$BIN" train --dataset mnist --data "$DATA" --preset unchanged --epochs 1 --lr 1e-3
