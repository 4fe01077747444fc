/* GFLOP/s of mf_gemm on the training shapes and on a 1024^3 SGEMM, with 1
 * and 2 threads: wall clock, best of short rounds over a few seconds.
 * Where OpenBLAS can be loaded at run time (libopenblas.so.0 on the library
 * path, e.g. Debian's libopenblas0-pthread, installed or unpacked and named
 * in LD_LIBRARY_PATH), its cblas_sgemm runs on the same shapes beside it:
 * the measurement behind using minformer's own kernel (docs/PERFORMANCE.md).
 * Nothing is linked against it. Where the CPU has AMX, mf_gemm_bf16 (bf16
 * operands, fp32 sums) runs on one thread beside them, with its ratio to
 * mf_gemm on one thread. The last rows write C to memory that no cache holds.
 * Usage: bench_gemm [seconds per shape and thread count, default 1] */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "minformer/core.h"

typedef struct {
    const char *what;
    int trans_a, trans_b, M, N, K;
    float beta;
} shape;

/* The products one training step of the default models makes. The forward
 * pass and the input gradients run on each thread's chunk of about 768 token
 * rows (MNIST: 45 images x 17 tokens, CIFAR-10: 11 x 65), the weight
 * gradients on each thread's share of the columns over the whole batch
 * (rows 4352 and 8320), attention per image and head; so in the model all
 * but the last (square) shape run on one thread each. */
static const shape shapes[] = {
    {"mnist fwd x W^T (d=64)", 0, 1, 765, 64, 64, 0.0f},
    {"mnist fwd MLP up", 0, 1, 765, 256, 64, 0.0f},
    {"mnist fwd MLP down", 0, 1, 765, 64, 256, 0.0f},
    {"mnist bwd dx = dy W (64)", 0, 0, 765, 64, 64, 0.0f},
    {"mnist bwd dx MLP up", 0, 0, 765, 64, 256, 0.0f},
    {"mnist bwd dx MLP down", 0, 0, 765, 256, 64, 0.0f},
    {"mnist bwd dW (64x32)", 1, 0, 64, 32, 4352, 1.0f},
    {"mnist bwd dW up (256x32)", 1, 0, 256, 32, 4352, 1.0f},
    {"mnist bwd dW down (64x128)", 1, 0, 64, 128, 4352, 1.0f},
    {"mnist chunk dx (4 images)", 0, 0, 68, 64, 64, 0.0f},
    {"mnist chunk dx MLP", 0, 0, 68, 64, 256, 0.0f},
    {"mnist chunk dW (64x64)", 1, 0, 64, 64, 68, 1.0f},
    {"mnist chunk dW MLP (256x64)", 1, 0, 256, 64, 68, 1.0f},
    {"mnist bf16 chunk dx (16 im.)", 0, 0, 272, 64, 64, 0.0f},
    {"mnist bf16 chunk dx MLP", 0, 0, 272, 64, 256, 0.0f},
    {"mnist bf16 chunk dW (64x64)", 1, 0, 64, 64, 272, 1.0f},
    {"mnist bf16 chunk dW MLP", 1, 0, 256, 64, 272, 1.0f},
    {"cifar fwd x W^T (d=64)", 0, 1, 715, 64, 64, 0.0f},
    {"cifar fwd MLP up", 0, 1, 715, 256, 64, 0.0f},
    {"cifar fwd MLP down", 0, 1, 715, 64, 256, 0.0f},
    {"cifar bwd dx = dy W (64)", 0, 0, 715, 64, 64, 0.0f},
    {"cifar bwd dx MLP up", 0, 0, 715, 64, 256, 0.0f},
    {"cifar bwd dx MLP down", 0, 0, 715, 256, 64, 0.0f},
    {"cifar bwd dW (64x32)", 1, 0, 64, 32, 8320, 1.0f},
    {"cifar bwd dW up (256x32)", 1, 0, 256, 32, 8320, 1.0f},
    {"cifar bwd dW down (64x128)", 1, 0, 64, 128, 8320, 1.0f},
    {"attn q k^T 17x17x64", 0, 1, 17, 17, 64, 0.0f},
    {"attn p v 17x64x17", 0, 0, 17, 64, 17, 0.0f},
    {"attn dq 17x64x17", 0, 0, 17, 64, 17, 0.0f},
    {"attn dk dp^T q 17x64x17", 1, 0, 17, 64, 17, 0.0f},
    {"attn q k^T 33x33x64", 0, 1, 33, 33, 64, 0.0f},
    {"attn p v 33x64x33", 0, 0, 33, 64, 33, 0.0f},
    {"attn dk dp^T q 33x64x33", 1, 0, 33, 64, 33, 0.0f},
    {"attn q k^T 49x49x64", 0, 1, 49, 49, 64, 0.0f},
    {"attn p v 49x64x49", 0, 0, 49, 64, 49, 0.0f},
    {"attn dk dp^T q 49x64x49", 1, 0, 49, 64, 49, 0.0f},
    {"attn q k^T 65x65x64", 0, 1, 65, 65, 64, 0.0f},
    {"attn p v 65x64x65", 0, 0, 65, 64, 65, 0.0f},
    {"attn dp = dy v^T 65x65x64", 0, 1, 65, 65, 64, 0.0f},
    {"attn dk dp^T q 65x64x65", 1, 0, 65, 64, 65, 0.0f},
    {"square 1024^3", 0, 0, 1024, 1024, 1024, 0.0f},
};

/* The same products writing C to memory no cache holds, as the model's
 * forward pass writes the activations it keeps for backward: each call's C
 * is the next of COLD_BYTES / |C| copies. */
static const shape cold_shapes[] = {
    {"mnist fwd MLP up, cold C", 0, 1, 765, 256, 64, 0.0f},
    {"mnist fwd x W^T, cold C", 0, 1, 765, 64, 64, 0.0f},
};
#define COLD_BYTES ((size_t)512 << 20)
static size_t cold_copies, cold_next; /* 0: C stays where it is */

/* cblas_sgemm and openblas_set_num_threads, when OpenBLAS was found. */
typedef void (*cblas_sgemm_fn)(int order, int trans_a, int trans_b, int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta,
                               float *C, int ldc);
static cblas_sgemm_fn openblas_sgemm;
static void (*openblas_threads)(int);
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

static void load_openblas(void)
{
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    *(void **)&openblas_sgemm = dlsym(h, "cblas_sgemm");
    *(void **)&openblas_threads = dlsym(h, "openblas_set_num_threads");
    if (!openblas_sgemm || !openblas_threads) openblas_sgemm = NULL;
}

static int use_openblas, use_bf16;

static void call(const shape *s, const float *A, const float *B, float *C)
{
    if (cold_copies) {
        C += (size_t)s->M * s->N * cold_next;
        cold_next = (cold_next + 1) % cold_copies;
    }
    int lda = s->trans_a ? s->M : s->K, ldb = s->trans_b ? s->K : s->N;
    if (use_openblas)
        openblas_sgemm(CBLAS_ROW_MAJOR, s->trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS,
                       s->trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, s->M, s->N, s->K, 1.0f, A, lda,
                       B, ldb, s->beta, C, s->N);
    else if (use_bf16)
        mf_gemm_bf16(s->trans_a, s->trans_b, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, s->beta, C, s->N);
    else
        mf_gemm(s->trans_a, s->trans_b, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, s->beta, C, s->N);
}

/* Best round of many short ones: robust to other processes on the cores. */
static double gflops(const shape *s, const float *A, const float *B, float *C, double seconds)
{
    int reps = 1;
    for (;;) { /* reps per round: about 2 ms */
        double t0 = mf_now_seconds();
        for (int r = 0; r < reps; r++) call(s, A, B, C);
        if (mf_now_seconds() - t0 >= 0.002 || reps >= (1 << 24)) break;
        reps *= 2;
    }
    double best = 1e30, start = mf_now_seconds();
    for (int round = 0; round < 10 || mf_now_seconds() - start < seconds; round++) {
        double t0 = mf_now_seconds();
        for (int r = 0; r < reps; r++) call(s, A, B, C);
        double dt = (mf_now_seconds() - t0) / reps;
        if (dt < best) best = dt;
    }
    return 2.0 * s->M * s->N * s->K / best * 1e-9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (!(seconds > 0.0)) {
        fprintf(stderr, "usage: bench_gemm [seconds per measurement > 0]\n");
        return 2;
    }
    mf_rng rng;
    mf_rng_seed(&rng, 1);
    load_openblas();
    printf("%-26s %2s %2s %5s %5s %5s %9s %9s", "shape", "tA", "tB", "M", "N", "K", "1 thread",
           "2 threads");
    if (openblas_sgemm) printf(" %9s %9s", "OpenBLAS 1", "OpenBLAS 2");
    int bf16 = mf_bf16_available();
    if (bf16) printf(" %9s %6s", "bf16 1", "ratio");
    printf("   (GFLOP/s)\n");
    size_t plain = sizeof shapes / sizeof shapes[0], cold = sizeof cold_shapes / sizeof cold_shapes[0];
    for (size_t i = 0; i < plain + cold; i++) {
        const shape *s = i < plain ? &shapes[i] : &cold_shapes[i - plain];
        size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
        cold_copies = i < plain ? 0 : COLD_BYTES / (nc * sizeof(float));
        cold_next = 0;
        float *A = mf_alloc(na * sizeof(float)), *B = mf_alloc(nb * sizeof(float));
        float *C = mf_alloc((cold_copies ? cold_copies : 1) * nc * sizeof(float));
        if (!A || !B || !C) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            return 1;
        }
        for (size_t j = 0; j < na; j++) A[j] = mf_rng_uniform(&rng) - 0.5f;
        for (size_t j = 0; j < nb; j++) B[j] = mf_rng_uniform(&rng) - 0.5f;
        if (cold_copies) memset(C, 0, cold_copies * nc * sizeof(float)); /* pages mapped before timing */
        double g[5];
        use_bf16 = 0;
        for (int t = 0; t < 4; t++) {
            use_openblas = t >= 2;
            if (use_openblas && !openblas_sgemm) break;
            if (use_openblas) openblas_threads(t - 1);
            else mf_set_threads(t + 1);
            g[t] = gflops(s, A, B, C, seconds);
        }
        printf("%-26s %2d %2d %5d %5d %5d %9.1f %9.1f", s->what, s->trans_a, s->trans_b, s->M,
               s->N, s->K, g[0], g[1]);
        if (openblas_sgemm) printf(" %10.1f %10.1f", g[2], g[3]);
        if (bf16) {
            use_openblas = 0;
            use_bf16 = 1;
            mf_set_threads(1);
            g[4] = gflops(s, A, B, C, seconds);
            printf(" %9.1f %5.2fx", g[4], g[4] / g[0]);
        }
        printf("\n");
        fflush(stdout);
        mf_free(A), mf_free(B), mf_free(C);
    }
    return 0;
}
