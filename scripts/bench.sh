#!/bin/sh
# `make bench`: trains each default workload for a fixed number of steps with
# build/tools/bench (img/s for training and evaluation, FLOPs per image,
# GFLOP/s, the share of a large-SGEMM peak measured in the same process,
# 1- vs N-thread scaling, peak RSS, a per-op profile), and, where Debian's
# python3-torch is installed, the same model, batch and optimizer in PyTorch
# (tools/bench_torch.py) right after each, then a table of the ratios.
# Nothing here is a test: timings depend on the machine and its load.
#
# Environment (defaults in brackets):
#   BUILD [build]  WORKLOADS [mnist mnist-minimal cifar]  THREADS [2]
#   STEPS [20] WARMUP [3] EVAL_IMAGES [2000]: the C runs
#   TORCH_STEPS [10]: the PyTorch runs (much slower per step)
#   PRECISIONS [fp32]: "fp32 bf16" also runs minformer --precision bf16 (needs AMX)
#   TORCH_MODES [fp32]: "fp32 autocast" also runs PyTorch under bf16 autocast
#   With more than one of either, a second table compares every pair by the
#   fastest training step of each run (robust to other load on the machine).
#   TORCH=0: skip PyTorch; PYTHON [/usr/bin/python3]
#   TORCH_LD_LIBRARY_PATH: prepended to LD_LIBRARY_PATH for PyTorch only, e.g. the
#     directory of an OpenBLAS libblas.so.3 when the system's BLAS is netlib's
#   MINFORMER_DATA: data directory (random pixels where the data is missing)
set -u
BUILD=${BUILD:-build}
WORKLOADS=${WORKLOADS:-"mnist mnist-minimal cifar"}
THREADS=${THREADS:-2}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
EVAL_IMAGES=${EVAL_IMAGES:-2000}
TORCH_STEPS=${TORCH_STEPS:-10}
PRECISIONS=${PRECISIONS:-fp32}
TORCH_MODES=${TORCH_MODES:-fp32}
PYTHON=${PYTHON:-/usr/bin/python3}
BENCH="$BUILD/tools/bench"

[ -x "$BENCH" ] || { echo "bench.sh: $BENCH is missing (make $BENCH)" >&2; exit 1; }
torch=0
if [ "${TORCH:-1}" != 0 ] && [ -x "$PYTHON" ] && "$PYTHON" -c 'import torch' 2>/dev/null; then
    torch=1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "minformer bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
    "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)}, $THREADS threads, $STEPS steps"
for w in $WORKLOADS; do
    for p in $PRECISIONS; do
        echo
        "$BENCH" --workload "$w" --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP" \
            --eval-images "$EVAL_IMAGES" --precision "$p" --json | tee -a "$log" | grep -v '^RESULT '
    done
    [ $torch = 1 ] || continue
    for m in $TORCH_MODES; do
        flag=
        [ "$m" = autocast ] && flag=--autocast
        LD_LIBRARY_PATH="${TORCH_LD_LIBRARY_PATH:+$TORCH_LD_LIBRARY_PATH:}${LD_LIBRARY_PATH:-}" \
            "$PYTHON" tools/bench_torch.py --workload "$w" --threads "$THREADS" \
            --steps "$TORCH_STEPS" --eval-images "$EVAL_IMAGES" $flag | tee -a "$log"
    done
done

# The table: one RESULT (C) and one TORCH line per workload, flat JSON.
echo
awk -v torch=$torch -v precisions="$PRECISIONS" -v modes="$TORCH_MODES" '
function get(line, key,    m) {
    if (match(line, "\"" key "\": ?\"?[-0-9.a-z]+")) {
        m = substr(line, RSTART, RLENGTH); sub(/^"[^"]*": ?"?/, "", m); return m
    }
    return ""
}
function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2fx", a / b) : "-" }
/^RESULT / { w = get($0, "workload"); p = get($0, "precision")
    mt[w, p] = get($0, "train_best_ips")
    if (p != "fp32") next
    order[++n] = w
    ct[w] = get($0, "train_ips"); ce[w] = get($0, "eval_ips"); c1[w] = get($0, "train_ips_1t")
    mfu[w] = get($0, "mfu"); gf[w] = get($0, "gflops"); pk[w] = get($0, "sgemm_peak")
    rss[w] = get($0, "peak_rss_mib") }
/^TORCH / { w = get($0, "workload"); m = get($0, "mode")
    pt[w, m] = get($0, "train_best_ips")
    if (m != "fp32") next
    tt[w] = get($0, "train_ips"); te[w] = get($0, "eval_ips")
    tpk[w] = get($0, "sgemm_peak") }
END {
    printf "%-14s %11s %10s %7s %10s %10s %7s %7s %6s %7s %8s\n", "workload", "train img/s",
        "torch", "ratio", "eval img/s", "torch", "ratio", "GFLOP/s", "MFU", "1->N", "RSS MiB"
    for (i = 1; i <= n; i++) { w = order[i]
        printf "%-14s %11.1f %10s %7s %10.1f %10s %7s %7.1f %5.1f%% %7s %8.1f\n", w, ct[w],
            tt[w] == "" ? "-" : tt[w], ratio(ct[w], tt[w]), ce[w], te[w] == "" ? "-" : te[w],
            ratio(ce[w], te[w]), gf[w], 100 * mfu[w], ratio(ct[w], c1[w]), rss[w] }
    printf "SGEMM 1024^3 peak, GFLOP/s, same runs: minformer"
    for (i = 1; i <= n; i++) printf " %s", pk[order[i]]
    if (torch) { printf "; PyTorch"; for (i = 1; i <= n; i++) printf " %s", tpk[order[i]] }
    printf "\n"
    if (torch) for (i = 1; i <= n; i++) if (tpk[order[i]] != "" && tpk[order[i]] + 0 < 20) {
        print "warning: PyTorch multiplies at under 20 GFLOP/s: its BLAS is probably netlib'"'"'s reference"
        print "         BLAS, not OpenBLAS (see TORCH_LD_LIBRARY_PATH above, or install libopenblas0-pthread)"
        break
    }
    np = split(precisions, P, " "); nm = torch ? split(modes, TM, " ") : 0
    if (np < 2 && nm < 2) exit
    # Training img/s of the fastest step (robust to a busy machine) of every
    # precision and mode, and each precision against minformer fp32 and
    # against every PyTorch mode, from the same runs.
    printf "\n%-14s", "best step img/s"
    for (j = 1; j <= np; j++) printf " %14s", "minformer " P[j]
    for (k = 1; k <= nm; k++) printf " %14s", "torch " TM[k]
    for (j = 1; j <= np; j++) if (P[j] != "fp32") printf " %14s", P[j] "/fp32"
    for (j = 1; j <= np; j++) for (k = 1; k <= nm; k++) printf " %14s", P[j] "/torch " TM[k]
    printf "\n"
    nw = split("'"$WORKLOADS"'", W, " ")
    for (i = 1; i <= nw; i++) { w = W[i]
        printf "%-14s", w
        for (j = 1; j <= np; j++) printf " %14s", mt[w, P[j]] == "" ? "-" : mt[w, P[j]]
        for (k = 1; k <= nm; k++) printf " %14s", pt[w, TM[k]] == "" ? "-" : pt[w, TM[k]]
        for (j = 1; j <= np; j++) if (P[j] != "fp32") printf " %14s", ratio(mt[w, P[j]], mt[w, "fp32"])
        for (j = 1; j <= np; j++) for (k = 1; k <= nm; k++) printf " %14s", ratio(mt[w, P[j]], pt[w, TM[k]])
        printf "\n" }
}' "$log"
