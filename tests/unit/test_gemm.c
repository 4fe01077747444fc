/* mf_gemm / mf_gemm_serial against a double-precision reference, and the
 * determinism contract: the same bits for any thread count and any call
 * shape that contains the element. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "check.h"
#include "gemm_check.h"
#include "kernels/gemm.h"
#include "minformer/core.h"

static const int transposes[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};

/* A matrix stored rows x cols with leading dimension ld (>= cols). */
static size_t stored(int rows, int cols, int ld)
{
    return rows ? (size_t)(rows - 1) * ld + cols : 0;
}

/* Every transpose, odd shapes and edges, padded leading dimensions,
 * unaligned pointers, several alpha/beta, and C = NaN when beta == 0. */
static void test_against_reference(void)
{
    static const int shapes[][3] = {
        {1, 1, 1},     {1, 7, 3},    {5, 1, 9},      {13, 33, 1},   {12, 32, 256},
        {13, 33, 257}, {17, 17, 64}, {17, 64, 17},   {65, 65, 64},  {65, 64, 65},
        {100, 47, 513}, {3, 1100, 40}, {37, 1030, 20}, {200, 31, 300}, {64, 64, 600},
    };
    static const float alphas[] = {1.0f, 1.0f, -0.5f, 0.75f};
    static const float betas[] = {0.0f, 1.0f, 2.0f, 0.0f};
    mf_rng rng;
    mf_rng_seed(&rng, 7);
    int cases = 0;
    double worst = 0.0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            int ta = transposes[t][0], tb = transposes[t][1];
            int pad = (int)(s % 3) * 5; /* 0, 5 or 10 spare floats per row */
            int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
            size_t na = ta ? stored(K, M, lda) : stored(M, K, lda);
            size_t nb = tb ? stored(N, K, ldb) : stored(K, N, ldb);
            size_t nc = (size_t)M * ldc;
            float *A = random_floats(&rng, na), *B = random_floats(&rng, nb);
            float *C0 = random_floats(&rng, nc), *C = mf_alloc((nc + 1) * sizeof(float));
            int shift = (int)(s & 1); /* odd cases start one float past alignment */
            for (int ab = 0; ab < 4; ab++) {
                float alpha = alphas[ab], beta = betas[ab];
                int use_serial = (ab + t) & 1;
                for (size_t i = 0; i < nc; i++) C[shift + i] = beta == 0.0f ? NAN : C0[i];
                void (*gemm)(int, int, int, int, int, float, const float *, int, const float *,
                             int, float, float *, int) = use_serial ? mf_gemm_serial : mf_gemm;
                gemm(ta, tb, M, N, K, alpha, A + shift, lda, B + shift, ldb, beta, C + shift, ldc);
                double err = 0.0;
                CHECK(matches_reference(NULL, ta, tb, M, N, K, alpha, A + shift, lda, B + shift, ldb,
                                        beta, C0, C + shift, ldc, &err),
                      "%dx%dx%d ta=%d tb=%d alpha=%g beta=%g %s: error %.3g x bound", M, N, K, ta,
                      tb, alpha, beta, use_serial ? "serial" : "parallel", err);
                if (!(err <= worst)) worst = err;
                /* The spare floats at the end of each row of C are not C. */
                int untouched = 1;
                for (int i = 0; i < M; i++)
                    for (int j = N; j < ldc; j++) {
                        float v = C[shift + (size_t)i * ldc + j], w = C0[(size_t)i * ldc + j];
                        if (beta == 0.0f ? !isnan(v) : v != w) untouched = 0;
                    }
                CHECK(untouched, "%dx%dx%d ta=%d tb=%d wrote past N", M, N, K, ta, tb);
                cases++;
            }
            mf_free(A), mf_free(B), mf_free(C0), mf_free(C);
        }
    CHECK(cases == 240, "ran %d cases", cases);
    printf("# reference: %d cases, worst error %.3g of the bound\n", cases, worst);
}

/* K == 0: C = beta * C, and beta == 0 overwrites NaN without reading it. */
static void test_empty_reduction(void)
{
    float C[6] = {NAN, NAN, NAN, 1.0f, NAN, NAN}, D[6] = {1, 2, 3, 4, 5, 6};
    float A[1] = {NAN}, B[1] = {NAN};
    mf_gemm(0, 0, 2, 2, 0, 1.0f, A, 1, B, 2, 0.0f, C, 3);
    CHECK(C[0] == 0.0f && C[1] == 0.0f && C[3] == 0.0f && C[4] == 0.0f, "beta 0 gave %g %g %g %g",
          C[0], C[1], C[3], C[4]);
    CHECK(isnan(C[2]) && isnan(C[5]), "wrote the padding column");
    mf_gemm_serial(1, 1, 2, 3, 0, 1.0f, A, 1, B, 1, 0.5f, D, 3);
    CHECK(D[0] == 0.5f && D[5] == 3.0f, "beta 0.5 gave %g %g", D[0], D[5]);
    /* M == 0 or N == 0: nothing to do, nothing touched. */
    mf_gemm(0, 0, 0, 3, 4, 1.0f, A, 4, B, 3, 0.0f, D, 3);
    mf_gemm(0, 0, 2, 0, 4, 1.0f, A, 4, B, 3, 0.0f, D, 3);
    CHECK(D[0] == 0.5f, "M or N zero touched C");
}

/* alpha * op(A) op(B) + beta * C for one problem with the given routine and
 * thread count (threads <= 0: mf_gemm_serial). Returns a fresh C. */
static float *run_gemm(int threads, int ta, int tb, int M, int N, int K, const float *A,
                       const float *B, const float *C0, float beta)
{
    return run_gemm_with(mf_gemm, mf_gemm_serial, threads, ta, tb, M, N, K, A, B, C0, beta);
}

/* The training shapes: the same bytes from 1, 2 and 3 threads and from
 * mf_gemm_serial, including a call made inside a parallel region. */
static void test_thread_count_invariance(void)
{
    static const int problems[][5] = {
        /* ta, tb, M, N, K */
        {0, 1, 4352, 64, 48},  {0, 1, 1100, 256, 256}, {0, 0, 1100, 48, 64},
        {0, 0, 400, 64, 300}, /* B packed with 1 thread, read in place with 2 */
        {1, 0, 64, 64, 4352}, {1, 0, 256, 96, 3000},  {1, 0, 64, 256, 1000},
        {0, 0, 5, 700, 300},  {1, 1, 13, 130, 1040}, /* these three split columns (3 threads) */
    };
    mf_rng rng;
    mf_rng_seed(&rng, 11);
#ifdef _OPENMP
    int saved = omp_get_max_threads();
#endif
    for (size_t p = 0; p < sizeof problems / sizeof problems[0]; p++) {
        int ta = problems[p][0], tb = problems[p][1];
        int M = problems[p][2], N = problems[p][3], K = problems[p][4];
        float *A = random_floats(&rng, (size_t)M * K), *B = random_floats(&rng, (size_t)K * N);
        float *C0 = random_floats(&rng, (size_t)M * N);
        size_t bytes = (size_t)M * N * sizeof(float);
        float beta = p & 1 ? 1.0f : 0.0f;
        float *one = run_gemm(1, ta, tb, M, N, K, A, B, C0, beta);
        float *two = run_gemm(2, ta, tb, M, N, K, A, B, C0, beta);
        float *three = run_gemm(3, ta, tb, M, N, K, A, B, C0, beta);
        float *serial = run_gemm(0, ta, tb, M, N, K, A, B, C0, beta);
        CHECK(memcmp(one, two, bytes) == 0, "%dx%dx%d: 1 and 2 threads differ", M, N, K);
        CHECK(memcmp(one, three, bytes) == 0, "%dx%dx%d: 1 and 3 threads differ", M, N, K);
        CHECK(memcmp(one, serial, bytes) == 0, "%dx%dx%d: serial differs", M, N, K);
        /* Inside a parallel region mf_gemm runs serially: same bytes again. */
        float *nested = mf_alloc(bytes);
        memcpy(nested, C0, bytes);
#ifdef _OPENMP
        omp_set_num_threads(2);
#pragma omp parallel num_threads(2)
        {
#pragma omp single
#endif
            mf_gemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, beta, nested, N);
#ifdef _OPENMP
        }
#endif
        CHECK(memcmp(one, nested, bytes) == 0, "%dx%dx%d: nested call differs", M, N, K);
        mf_free(A), mf_free(B), mf_free(C0), mf_free(one), mf_free(two), mf_free(three);
        mf_free(serial), mf_free(nested);
    }
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

/* Each element depends only on its row of op(A) and column of op(B): a
 * small call on a window gives the bytes of the big call (tiles and edges
 * fall elsewhere), e.g. an attention product next to a full GEMM. */
static void test_window_consistency(void)
{
    int M = 601, N = 203, K = 600; /* big enough that B gets packed */
    mf_rng rng;
    mf_rng_seed(&rng, 13);
    float *A = random_floats(&rng, (size_t)M * K), *B = random_floats(&rng, (size_t)K * N);
    for (int t = 0; t < 4; t++) {
        int ta = transposes[t][0], tb = transposes[t][1];
        int lda = ta ? M : K, ldb = tb ? K : N;
        float *big = mf_alloc((size_t)M * N * sizeof(float));
        float *small = mf_alloc((size_t)M * N * sizeof(float));
        mf_gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.0f, big, N);
        static const int windows[][4] = {{0, 0, 17, 17}, {5, 3, 65, 64}, {290, 190, 11, 13},
                                         {1, 33, 1, 1}, {100, 0, 150, 203},
                                         {590, 100, 11, 103}};
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            int i0 = windows[w][0], j0 = windows[w][1], m = windows[w][2], n = windows[w][3];
            const float *a = ta ? A + i0 : A + (size_t)i0 * lda;
            const float *b = tb ? B + (size_t)j0 * ldb : B + j0;
            mf_gemm_serial(ta, tb, m, n, K, 0.5f, a, lda, b, ldb, 0.0f, small, n);
            int same = 1;
            for (int i = 0; i < m; i++)
                same &= memcmp(small + (size_t)i * n, big + (size_t)(i0 + i) * N + j0,
                               (size_t)n * sizeof(float)) == 0;
            CHECK(same, "ta=%d tb=%d window %dx%d at (%d,%d) differs from the big call", ta, tb,
                  m, n, i0, j0);
        }
        mf_free(big), mf_free(small);
    }
    mf_free(A), mf_free(B);
}

int main(void)
{
    RUN(test_against_reference);
    RUN(test_empty_reduction);
    RUN(test_thread_count_invariance);
    RUN(test_window_consistency);
    return check_report();
}
