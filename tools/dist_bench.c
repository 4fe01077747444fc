/* The cost of data-parallel training's communication per step, without the
 * compute: run under mpirun (an MPI=1 build: make MPI=1
 * build/mpi/tools/dist_bench), it sends what one training step of the
 * default model sends, in the same order, and reports the time per step.
 *
 * Usage: mpirun -np R dist_bench [--dataset mnist|cifar10] [--preset P]
 *                                [--batch B] [--steps N]
 *
 * One step of mf_train under R ranks (model/split.h): the logits gathered
 * (B x classes floats, MPI_Allgatherv), then per block, last first, the
 * running sums of the block's gradients passed from rank to rank (one
 * block's floats, plus dL/dW for the symmetric and Cholesky forms, once or,
 * where a boundary cuts a group of chunks, twice per link), once for the
 * tensors outside the blocks, the
 * whole gradient broadcast from the last rank, and one logical or (the stop
 * flag). The additions of the chain are left out (they are the fold one
 * process does too). Prints the mean and the best step time, as the slowest
 * rank saw it, and the bytes each link carries per step. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minformer.h"
#include "model/model_internal.h"
#include "model/param_table.h"
#include "model/split.h"
#include "train/dist.h"

#ifdef MF_MPI
#include <mpi.h>
#endif

int main(int argc, char **argv)
{
    const char *dataset = "mnist", *preset = "unchanged";
    int batch = 128, steps = 200;
    static const struct option longopts[] = {{"dataset", required_argument, 0, 'd'},
                                             {"preset", required_argument, 0, 'p'},
                                             {"batch", required_argument, 0, 'b'},
                                             {"steps", required_argument, 0, 's'},
                                             {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dataset = optarg; break;
        case 'p': preset = optarg; break;
        case 'b': batch = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        default: fprintf(stderr, "usage: dist_bench [--dataset D] [--preset P] [--batch B] [--steps N]\n"); return 2;
        }
    }
#ifndef MF_MPI
    (void)dataset, (void)preset, (void)batch, (void)steps;
    fprintf(stderr, "dist_bench: built without MPI (make MPI=1 build/mpi/tools/dist_bench)\n");
    return 1;
#else
    mf_error err;
    mf_error_clear(&err);
    if (!mf_dist_launched()) {
        fprintf(stderr, "dist_bench: run it under mpirun -np R (R >= 2)\n");
        return 2;
    }
    if (mf_dist_init(&argc, &argv, &err)) {
        fprintf(stderr, "dist_bench: %s\n", err.message);
        return 1;
    }
    int rank = mf_dist_rank(), ranks = mf_dist_size();
    int small = !strcmp(dataset, "mnist");
    mf_config cfg;
    mf_config_default(&cfg, small ? 28 : 32, small ? 1 : 3, 10);
    if (mf_config_apply_preset(&cfg, preset, &err) || mf_config_validate(&cfg, &err)) {
        fprintf(stderr, "dist_bench: %s\n", err.message);
        mf_dist_abort(2);
        return 2;
    }
    int count;
    size_t all = param_layout(&cfg, NULL, &count);
    size_t block = block_grad_floats(&cfg, param_block_floats(&cfg));
    size_t outer = all - (size_t)cfg.layers * param_block_floats(&cfg);
    size_t biggest = block > outer ? block : outer;
    float *grads = calloc(all, sizeof(float)), *sum = calloc(biggest, sizeof(float));
    float *logits = calloc((size_t)batch * cfg.classes, sizeof(float));
    int *counts = calloc((size_t)ranks, sizeof(int)), *displs = calloc((size_t)ranks, sizeof(int));
    if (!grads || !sum || !logits || !counts || !displs) {
        fprintf(stderr, "dist_bench: out of memory\n");
        mf_dist_abort(1);
        return 1;
    }
    for (int p = 0; p < ranks; p++) {
        int c0, c1, b0, b1;
        model_split_range(&cfg, batch, MF_PRECISION_FP32, p, ranks, &c0, &c1, &b0, &b1);
        counts[p] = (b1 - b0) * cfg.classes;
        displs[p] = b0 * cfg.classes;
    }
    int c0, c1, b0, b1, chunks = model_split_max_parts(&cfg, batch, MF_PRECISION_FP32);
    int first_group = MODEL_FOLD_GROUP < chunks ? MODEL_FOLD_GROUP : chunks;
    model_split_range(&cfg, batch, MF_PRECISION_FP32, rank, ranks, &c0, &c1, &b0, &b1);
    double total = 0.0, best = 1e30;
    for (int s = -10; s < steps; s++) { /* 10 untimed steps first */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        mf_dist_allgather(logits, counts, displs);
        for (int piece = 0; piece <= cfg.layers; piece++) {
            /* a block's sums: that of the groups before the boundary, and
             * that of a group the boundary cuts; the outer tensors' one sum */
            int in = piece < cfg.layers ? (c0 >= first_group) + (c0 % MODEL_FOLD_GROUP != 0) : 1;
            int out = piece < cfg.layers ? (c1 >= first_group) + (c1 % MODEL_FOLD_GROUP != 0) : 1;
            size_t n = piece < cfg.layers ? block : outer;
            for (int i = 0; rank > 0 && i < in; i++) mf_dist_recv_prev(sum, n);
            for (int i = 0; rank < ranks - 1 && i < out; i++) mf_dist_send_next(sum, n);
        }
        mf_dist_broadcast(grads, all, ranks - 1);
        mf_dist_any(0);
        double mine = MPI_Wtime() - t0, slowest;
        MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (s < 0) continue;
        total += slowest;
        if (slowest < best) best = slowest;
    }
    if (rank == 0)
        printf("dist_bench: %s %s batch %d, %d ranks: %zu gradient floats (%d blocks of %zu, "
               "%zu outside), per step mean %.3f ms, best %.3f ms; each chain link carries "
               "up to %.2f MB, the broadcast %.2f MB\n",
               dataset, preset, batch, ranks, all, cfg.layers, block, outer, 1e3 * total / steps,
               1e3 * best, 4e-6 * (double)(2 * cfg.layers * block + outer), 4e-6 * (double)all);
    free(grads);
    free(sum);
    free(logits);
    free(counts);
    free(displs);
    mf_dist_finalize();
    return 0;
#endif
}
