#!/usr/bin/python3
"""PyTorch's throughput on the workloads of tools/bench.c, for the ratio that
scripts/bench.sh prints.

    /usr/bin/python3 tools/bench_torch.py [--workload mnist|mnist-minimal|cifar|all]
        [--steps N] [--warmup N] [--eval-images N] [--threads T] [--autocast]

The model is tools/torch_reference.py's MinFormer (the same nn.Module the
parity tests are generated from), in its default initialization; the
optimizer is torch.optim.AdamW with the C library's defaults (lr 4e-3,
betas (0.9, 0.999), eps 1e-8, weight decay 0.05 on weight matrices only);
the batch is the C benchmark's. Each training step is zero_grad, forward,
cross-entropy, backward, step, on one of a few batches of random normalized
pixels drawn up front (the C benchmark also decodes and augments each batch,
so the comparison slightly favours PyTorch). Evaluation is a no_grad forward
in batches of 500. With --autocast the forward passes (training and
evaluation) run under torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's
fastest mode on CPUs with bf16 products. Prints one JSON object per workload
on a line starting with "TORCH ".
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import MinFormer, config, decays  # noqa: E402

# name: (image size, channels, patch, qk, vo, mlp ratio, batch), N 64, L 6, H 1
WORKLOADS = {
    "mnist": (28, 1, 7, "separate", "separate", 4, 256),
    "mnist-minimal": (28, 1, 7, "collapsed", "none", 0, 256),
    "cifar": (32, 3, 4, "separate", "separate", 4, 128),
}


def sgemm_peak(n, seconds=1.0):
    """Best of repeated n x n x n float32 torch.mm: GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.mm(a, b)
    best, start = float("inf"), time.perf_counter()
    rounds = 0
    while rounds < 5 or (time.perf_counter() - start < seconds and rounds < 200):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
        rounds += 1
    return 2.0 * n ** 3 / best * 1e-9


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run(name, steps, warmup, eval_images, threads, autocast=False):
    s, c, p, qk, vo, r, batch = WORKLOADS[name]
    cfg = config(s, c, p, 64, 6, 1, r, qk, vo)
    torch.manual_seed(1)
    model = MinFormer(cfg)
    params = list(model.named_parameters())
    opt = torch.optim.AdamW(
        [{"params": [t for n_, t in params if decays(n_)], "weight_decay": 0.05},
         {"params": [t for n_, t in params if not decays(n_)], "weight_decay": 0.0}],
        lr=4e-3, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(2)
    batches = [(torch.randn(batch, c, s, s, generator=gen),
                torch.randint(0, 10, (batch,), generator=gen)) for _ in range(4)]

    model.train()
    step_times = []
    t_start = cpu_start = None
    for i in range(warmup + steps):
        x, y = batches[i % len(batches)]
        t0 = time.perf_counter()
        if i == warmup:
            t_start, cpu_start = t0, cpu_seconds()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        if i >= warmup:
            step_times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_start
    cpu = cpu_seconds() - cpu_start

    model.eval()
    xe = torch.randn(eval_images, c, s, s, generator=gen)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        model(xe[:min(500, eval_images)])  # warm up
        t0 = time.perf_counter()
        for k in range(0, eval_images, 500):
            model(xe[k:k + 500])
        eval_wall = time.perf_counter() - t0

    return {
        "workload": name, "mode": "autocast" if autocast else "fp32", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "batch": batch, "steps": steps,
        "parameters": sum(t.numel() for _, t in params),
        "train_ips": round(steps * batch / wall, 2),
        "train_best_ips": round(batch / min(step_times), 2),
        "eval_ips": round(eval_images / eval_wall, 2),
        "cpu_util": round(cpu / (wall * threads), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "final_loss": round(loss.item(), 4),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="all", choices=["all"] + list(WORKLOADS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--eval-images", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gemm-size", type=int, default=1024)
    ap.add_argument("--autocast", action="store_true", help="bf16 autocast forward passes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    for name in names:
        out = run(name, args.steps, args.warmup, args.eval_images, args.threads, args.autocast)
        out["sgemm_peak"] = round(sgemm_peak(args.gemm_size), 2)
        print("TORCH " + json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
