/* Packed, register-blocked SGEMM (the Goto/BLIS scheme, small enough to read).
 *
 * K is cut into fixed chunks of KC; for each chunk, an NC-column block of
 * op(B) is packed once into NR-wide panels (shared by all threads), each
 * thread packs MC-row blocks of its own rows of op(A) into MR-high panels,
 * and a micro-kernel keeps an MR x NR tile of C in registers while it runs
 * over the chunk. Panels are zero-padded at the M and N edges, so every tile
 * does the same work and the edges only mask their loads and stores of C.
 *
 * Why the result does not depend on the thread count: for every element,
 *   chunk 0:  C = alpha * acc0 + beta * C   (alpha * acc0 when beta == 0)
 *   chunk c:  C = alpha * acc_c + C
 * where acc_c = fma(a_k, b_k, ...) over k in increasing order from 0.0f,
 * whichever tile, block or thread the element falls in. Threads split only
 * the rows (or, for short M, the columns) of C, never k. */
#include "gemm.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

/* Vectors of VW floats; a tile is MR rows by NV vectors (NR = NV * VW). */
#if defined(__AVX512F__)
#define VW 16
#define NV 2
#define MR 12 /* 24 accumulators + 2 B vectors + 1 broadcast of the 32 zmm */
typedef __m512 vf;
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOAD(p) _mm512_load_ps(p)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c) /* a * b + c, one rounding */
#define V_MUL(a, b) _mm512_mul_ps(a, b)
static inline __mmask16 lanes_mask(int n) { return n >= VW ? 0xFFFF : (__mmask16)((1u << n) - 1u); }
static inline vf v_load_n(const float *p, int n) { return _mm512_maskz_loadu_ps(lanes_mask(n), p); }
static inline void v_store_n(float *p, vf x, int n) { _mm512_mask_storeu_ps(p, lanes_mask(n), x); }
#elif defined(__AVX2__) && defined(__FMA__)
#define VW 8
#define NV 2
#define MR 6 /* 12 accumulators + 2 B vectors + 1 broadcast of the 16 ymm */
typedef __m256 vf;
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOAD(p) _mm256_load_ps(p)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
static inline __m256i lanes_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline vf v_load_n(const float *p, int n)
{
    return n >= VW ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes_mask(n));
}
static inline void v_store_n(float *p, vf x, int n)
{
    if (n >= VW) _mm256_storeu_ps(p, x);
    else _mm256_maskstore_ps(p, lanes_mask(n), x);
}
#else /* portable: scalar "vectors", one rounding per multiply and per add */
#define VW 1
#define NV 8
#define MR 4
typedef float vf;
#define V_ZERO() 0.0f
#define V_SET1(x) (x)
#define V_LOAD(p) (*(p))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_MUL(a, b) ((a) * (b))
static inline vf v_load_n(const float *p, int n) { return n > 0 ? *p : 0.0f; }
static inline void v_store_n(float *p, vf x, int n)
{
    if (n > 0) *p = x;
}
#endif

#define NR (NV * VW)
/* KC fixes the summation order, so it is a constant (never tuned per call or
 * per thread count). MC x KC of A stays in L2, KC x NR of B in L1. */
#define KC 256
#define MC (MR * 8)
#define NC 1024

static inline int imin(int a, int b) { return a < b ? a : b; }

/* op(A)[i0 : i0+mc, p0 : p0+kc] -> MR-row panels, each kc x MR (k-major). */
static void pack_a(int trans_a, const float *A, int lda, int i0, int mc, int p0, int kc,
                   float *dst)
{
    for (int ir = 0; ir < mc; ir += MR, dst += (size_t)kc * MR) {
        int mr = imin(MR, mc - ir);
        if (trans_a) { /* A is K x M: each k gives mr consecutive floats */
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)(p0 + k) * lda + i0 + ir;
                float *d = dst + (size_t)k * MR;
                for (int r = 0; r < mr; r++) d[r] = src[r];
                for (int r = mr; r < MR; r++) d[r] = 0.0f;
            }
        } else {
            const float *src[MR];
            for (int r = 0; r < MR; r++)
                src[r] = A + (size_t)(i0 + ir + imin(r, mr - 1)) * lda + p0;
            for (int k = 0; k < kc; k++) {
                float *d = dst + (size_t)k * MR;
                for (int r = 0; r < MR; r++) d[r] = r < mr ? src[r][k] : 0.0f;
            }
        }
    }
}

/* op(B)[p0 : p0+kc, j0 : j0+nc] -> NR-column panels, each kc x NR. */
static void pack_b_panel(int trans_b, const float *B, int ldb, int p0, int kc, int j0, int nr,
                         float *dst)
{
    if (!trans_b) { /* B is K x N: each k gives nr consecutive floats */
        for (int k = 0; k < kc; k++) {
            const float *src = B + (size_t)(p0 + k) * ldb + j0;
            float *d = dst + (size_t)k * NR;
            for (int j = 0; j < nr; j++) d[j] = src[j];
            for (int j = nr; j < NR; j++) d[j] = 0.0f;
        }
    } else { /* B is N x K: row j of B is column j of op(B) */
        for (int j = 0; j < NR; j++) {
            const float *src = B + (size_t)(j0 + j) * ldb + p0;
            if (j < nr)
                for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = src[k];
            else
                for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = 0.0f;
        }
    }
}

/* C[mr x nr] (+)= alpha * Ap[kc x MR]^T * Bp[kc x NR]; first says this is
 * K chunk 0, where beta applies. */
static void micro_kernel(int kc, const float *restrict ap, const float *restrict bp, float *c,
                         int ldc, int mr, int nr, float alpha, float beta, int first)
{
    vf acc[MR][NV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[r][v] = V_ZERO();

    for (int k = 0; k < kc; k++, ap += MR, bp += NR) {
        vf b[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) b[v] = V_LOAD(bp + v * VW);
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            vf a = V_SET1(ap[r]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[r][v] = V_FMA(a, b[v], acc[r][v]);
        }
    }

    vf va = V_SET1(alpha), vb = V_SET1(beta);
    for (int r = 0; r < mr; r++, c += ldc) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            int n = nr - v * VW;
            if (n <= 0) break;
            vf out;
            if (!first) out = V_FMA(va, acc[r][v], v_load_n(c + v * VW, n));
            else if (beta == 0.0f) out = V_MUL(va, acc[r][v]);
            else out = V_FMA(vb, v_load_n(c + v * VW, n), V_MUL(va, acc[r][v]));
            v_store_n(c + v * VW, out, n);
        }
    }
}

typedef struct {
    int trans_a, trans_b, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} gemm_args;

/* C[row0:row1, col0:col1] on the calling thread, which packs both operands
 * itself: threads share nothing and never wait for each other. ap holds
 * mc_max x KC floats, bp KC x nc_max (multiples of MR and NR). */
static void gemm_block(const gemm_args *g, int row0, int row1, int col0, int col1, float *ap,
                       int mc_max, float *bp, int nc_max)
{
    for (int jc = col0; jc < col1; jc += nc_max) {
        int nc = imin(nc_max, col1 - jc);
        for (int pc = 0; pc < g->K; pc += KC) {
            int kc = imin(KC, g->K - pc);
            for (int jr = 0; jr < nc; jr += NR)
                pack_b_panel(g->trans_b, g->B, g->ldb, pc, kc, jc + jr, imin(NR, nc - jr),
                             bp + (size_t)jr * kc);
            for (int ic = row0; ic < row1; ic += mc_max) {
                int mc = imin(mc_max, row1 - ic);
                pack_a(g->trans_a, g->A, g->lda, ic, mc, pc, kc, ap);
                for (int jr = 0; jr < nc; jr += NR)
                    for (int ir = 0; ir < mc; ir += MR)
                        micro_kernel(kc, ap + (size_t)ir * kc, bp + (size_t)jr * kc,
                                     g->C + (size_t)(ic + ir) * g->ldc + jc + jr, g->ldc,
                                     imin(MR, mc - ir), imin(NR, nc - jr), g->alpha, g->beta,
                                     pc == 0);
            }
        }
    }
}

/* Per-thread packing buffers, grown on demand and kept for the thread's life. */
static _Thread_local float *tls_buf;
static _Thread_local size_t tls_cap;

static float *scratch(size_t floats)
{
    if (floats > tls_cap) {
        float *p = aligned_alloc(64, floats * sizeof(float)); /* multiple of 64 bytes */
        if (!p) return NULL;
        free(tls_buf);
        tls_buf = p;
        tls_cap = floats;
    }
    return tls_buf;
}

/* Block sizes MC and NC change speed, never bits: out of heap, one-panel
 * blocks on the stack give the same result. */
static void gemm_part(const gemm_args *g, int row0, int row1, int col0, int col1)
{
    if (row0 >= row1 || col0 >= col1) return;
    int mc_max = imin(MC, (row1 - row0 + MR - 1) / MR * MR);
    int nc_max = imin(NC, (col1 - col0 + NR - 1) / NR * NR);
    float *buf = scratch((size_t)KC * (mc_max + nc_max));
    if (buf) {
        gemm_block(g, row0, row1, col0, col1, buf, mc_max, buf + (size_t)KC * mc_max, nc_max);
    } else {
        _Alignas(64) float ap[KC * MR], bp[KC * NR];
        gemm_block(g, row0, row1, col0, col1, ap, MR, bp, NR);
    }
}

/* Splits C among nthreads: by MR-row tiles, or by NR-column panels when
 * that gives a thread clearly fewer tiles (short, wide C). */
static void gemm_split(const gemm_args *g, int tid, int nthreads)
{
    long mt = (g->M + MR - 1) / MR, nt = (g->N + NR - 1) / NR;
    long by_rows = (mt + nthreads - 1) / nthreads * nt, by_cols = (nt + nthreads - 1) / nthreads * mt;
    if (10 * by_cols < 9 * by_rows) {
        gemm_part(g, 0, g->M, imin(g->N, (int)(nt * tid / nthreads) * NR),
                  imin(g->N, (int)(nt * (tid + 1) / nthreads) * NR));
    } else {
        gemm_part(g, imin(g->M, (int)(mt * tid / nthreads) * MR),
                  imin(g->M, (int)(mt * (tid + 1) / nthreads) * MR), 0, g->N);
    }
}

static void gemm_run(const gemm_args *g, int parallel)
{
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0) { /* C = beta * C, never reading C when beta == 0 */
        for (int i = 0; i < g->M; i++) {
            float *c = g->C + (size_t)i * g->ldc;
            if (g->beta == 0.0f) memset(c, 0, (size_t)g->N * sizeof(float));
            else for (int j = 0; j < g->N; j++) c[j] *= g->beta;
        }
        return;
    }
#ifdef _OPENMP
    /* Forking costs microseconds: below ~2 MFLOP one thread is faster. */
    double flops = 2.0 * g->M * g->N * g->K;
    if (parallel && flops >= 2e6 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel
        gemm_split(g, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#else
    (void)parallel;
#endif
    gemm_part(g, 0, g->M, 0, g->N);
}

void mf_gemm_serial(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_args g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc};
    gemm_run(&g, 0);
}

void mf_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_args g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc};
    gemm_run(&g, 1);
}
