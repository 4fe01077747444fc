/* Single-precision matrix multiply, row-major (internal to the library).
 *
 * C[M x N] = alpha * op(A) * op(B) + beta * C, where op(A) is M x K (A is
 * K x M when trans_a) and op(B) is K x N (B is N x K when trans_b).
 *
 * Determinism contract: each element of C is a sum over k whose order does
 * not depend on the number of threads, so results are bitwise identical for
 * any thread count. In fact an element depends only on its row of op(A), its
 * column of op(B), K, alpha, beta and its old value: not on M, N, the leading
 * dimensions or which of the two functions computed it. beta == 0 never
 * reads C (C may hold NaN garbage). */
#ifndef MF_GEMM_H
#define MF_GEMM_H

/* Splits the work across the OpenMP threads; call from serial code. */
void mf_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
/* Runs on the calling thread only; for use inside parallel regions. */
void mf_gemm_serial(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
