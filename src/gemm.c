/* Reference row-major SGEMM: straightforward and deterministic. Rows of C are
 * split across threads; every element's sum over k runs in index order. */
#include "gemm.h"

#include <stddef.h>

static void gemm_rows(int trans_a, int trans_b, int row0, int row1, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc)
{
    for (int i = row0; i < row1; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++) {
            float sum = 0.0f;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                sum += a * b;
            }
            c[j] = beta == 0.0f ? alpha * sum : alpha * sum + beta * c[j];
        }
    }
}

void mf_gemm_serial(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_rows(trans_a, trans_b, 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void mf_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++)
        gemm_rows(trans_a, trans_b, i, i + 1, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
