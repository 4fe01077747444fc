/* What the GEMM tests share (tests/unit/test_gemm.c for mf_gemm,
 * tests/unit/test_bf16.c for mf_gemm_bf16): random operands, the
 * double-precision reference with its error bound, and one call at a given
 * thread count. */
#ifndef MF_TEST_GEMM_CHECK_H
#define MF_TEST_GEMM_CHECK_H

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "minformer/core.h"

/* The signature of mf_gemm, mf_gemm_serial and their bf16 forms. */
typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

/* n floats in [-1, 1), plus one: room for an unaligned start. */
static inline float *random_floats(mf_rng *rng, size_t n)
{
    float *x = mf_alloc((n + 1) * sizeof(float));
    for (size_t i = 0; i < n + 1; i++) x[i] = 2.0f * mf_rng_uniform(rng) - 1.0f;
    return x;
}

/* Checks C against alpha * r(op(A)) r(op(B)) + beta * C0 in double, r the
 * rounding the kernel applies to its operands (NULL: none). The bound is the
 * worst case of any fp32 summation order with fused or unfused steps:
 * |error| <= (K + 2) * 2^-24 * (|alpha| * sum_k |a_ik b_kj| + |beta c0_ij|).
 * *worst gets the largest error / bound seen (NaN if any element is NaN). */
static inline int matches_reference(float (*r)(float), int ta, int tb, int M, int N, int K,
                                    float alpha, const float *A, int lda, const float *B, int ldb,
                                    float beta, const float *C0, const float *C, int ldc,
                                    double *worst)
{
    int ok = 1;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                float fa = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float fb = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                double a = r ? r(fa) : fa, b = r ? r(fb) : fb;
                sum += a * b;
                mag += fabs(a * b);
            }
            double ref = alpha * sum, bound = fabs(alpha) * mag;
            if (beta != 0.0f) {
                ref += (double)beta * C0[(size_t)i * ldc + j];
                bound += fabs((double)beta * C0[(size_t)i * ldc + j]);
            }
            bound = (K + 2) * ldexp(bound, -24) + 1e-30;
            double diff = fabs(C[(size_t)i * ldc + j] - ref);
            if (!(diff <= bound)) ok = 0; /* NaN fails too */
            if (diff / bound > *worst || diff != diff) *worst = diff / bound;
        }
    return ok;
}

/* 1 * op(A) op(B) + beta * C0 for one dense problem with `threads` threads
 * through `gemm`, or (threads <= 0) through `serial`. Returns a fresh C. */
static inline float *run_gemm_with(gemm_fn gemm, gemm_fn serial, int threads, int ta, int tb, int M,
                                   int N, int K, const float *A, const float *B, const float *C0,
                                   float beta)
{
    float *C = mf_alloc((size_t)M * N * sizeof(float));
    memcpy(C, C0, (size_t)M * N * sizeof(float));
    int lda = ta ? M : K, ldb = tb ? K : N;
    if (threads <= 0) {
        serial(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, N);
        return C;
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, N);
    return C;
}

#endif
