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

#include <stddef.h>
#include <stdint.h>

/* The precision of a matrix product: fp32 (mf_gemm), or bf16 operands with
 * fp32 sums (mf_gemm_bf16). */
typedef enum { MF_GEMM_FP32 = 0, MF_GEMM_BF16 = 1 } mf_gemm_kind;

/* Splits the work across the OpenMP threads; call from serial code. */
void mf_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
/* Runs on the calling thread only; for use inside parallel regions. */
void mf_gemm_serial(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Mixed precision (gemm_bf16.c, AMX): the same call, with op(A) and op(B)
 * rounded to bfloat16 (nearest even) and the products summed in fp32. The
 * same contract: an element depends only on its row of op(A), its column of
 * op(B), K, alpha, beta and its old value, so any thread count gives the same
 * bits. Call only where mf_bf16_available() (cpu.h) returned 1. */
void mf_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);
void mf_gemm_bf16_serial(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* mf_gemm_bf16 (parallel) or its _serial form (not), where an operand may be
 * held in bf16 already: when A16 (B16) is not NULL it is the operand's
 * storage, bf16 bit patterns as mf_bf16_round writes them, laid out as A (B)
 * would be, and A (B) is not read. The same bits as converting the fp32
 * values they were rounded from. */
void mf_gemm_bf16_held(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                       const uint16_t *A16, int lda, const float *B, const uint16_t *B16, int ldb,
                       float beta, float *C, int ldc, int parallel);
/* dst[i] = src[i] rounded to bf16 as the kernel rounds its operands
 * (nearest even, NaN kept quiet, a denormal to zero). */
void mf_bf16_round(uint16_t *dst, const float *src, size_t n);

/* A buffer of at least `bytes` (64-byte aligned) for the calling thread,
 * one per slot, kept until the thread ends; NULL when out of memory. */
enum { MF_SCRATCH_FP32, MF_SCRATCH_BF16, MF_SCRATCH_SLOTS };
void *mf_scratch(int slot, size_t bytes);

/* Both kernels' shared steps: mf_gemm_trivial does a call with M or N <= 0
 * (nothing) or K <= 0 (C = beta C, never reading C when beta == 0) and
 * returns 1, else returns 0; mf_gemm_forks says whether a call made with
 * `parallel` should fork its own threads (enough work, not already inside a
 * parallel region). */
int mf_gemm_trivial(int M, int N, int K, float beta, float *C, int ldc);
int mf_gemm_forks(int parallel, int M, int N, int K);

/* mf_gemm or mf_gemm_bf16, and their _serial forms, by kind. */
void mf_gemm_as(mf_gemm_kind kind, int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
void mf_gemm_serial_as(mf_gemm_kind kind, int trans_a, int trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
