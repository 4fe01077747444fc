/* Register-blocked SGEMM in the Goto/BLIS style, small enough to read.
 *
 * K is cut into fixed chunks of KC. For each chunk, op(B), the operand that
 * every row tile reuses, is packed into panels of NR columns (kc rows of NR
 * floats, zero past N) when it is transposed, reused by many rows or at the
 * N edge; otherwise it is read in place. op(A) is always read in place, one
 * broadcast per row and k.
 * The micro-kernel keeps an MR x NR tile of C in registers over the chunk:
 * AVX-512 8 x 32 (16 zmm accumulators), AVX2+FMA 6 x 16, or a portable
 * 4 x 8 in plain C. Edge tiles use fewer rows or vectors and masked C access.
 *
 * Why every thread count gives the same bits: for each element,
 *   chunk 0:  C = beta * C + alpha * acc_0   (alpha * acc_0 when beta == 0)
 *   chunk c:  C = C + alpha * acc_c          (one fused multiply-add where the target has FMA)
 * where acc_c = fma(a_k, b_k, acc) for k in increasing order from 0.0f,
 * whatever tile, edge case, block or thread the element falls in. Threads
 * split the rows (or, for short wide C, the columns) of C, never k, and
 * share nothing: each packs its own B, so no barriers. */
#include "kernels/gemm.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __AVX__
#include <immintrin.h>
#endif

/* Vectors of VW floats; a tile is MR rows by NV vectors (NR = NV * VW).
 * v_load_n / v_store_n touch only the first n lanes (n may be <= 0). */
#if defined(__AVX512F__)
#define VW 16
#define NV 2
#define MR 8 /* 16 accumulators + 2 B vectors + 1 broadcast of the 32 zmm */
typedef __m512 vf;
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, x) _mm512_store_ps(p, x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c) /* a * b + c, one rounding */
#define V_MUL(a, b) _mm512_mul_ps(a, b)
static inline __mmask16 lanes_mask(int n)
{
    return n >= VW ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u);
}
static inline vf v_load_n(const float *p, int n) { return _mm512_maskz_loadu_ps(lanes_mask(n), p); }
static inline void v_store_n(float *p, vf x, int n) { _mm512_mask_storeu_ps(p, lanes_mask(n), x); }
#elif defined(__AVX2__) && defined(__FMA__)
#define VW 8
#define NV 2
#define MR 6 /* 12 accumulators + 2 B vectors + 1 broadcast of the 16 ymm */
typedef __m256 vf;
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, x) _mm256_store_ps(p, x)
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
#else /* portable: scalar "vectors" */
#define VW 1
#define NV 8
#define MR 4
typedef float vf;
#define V_ZERO() 0.0f
#define V_SET1(x) (x)
#define V_LOAD(p) (*(p))
#define V_STORE(p, x) (*(p) = (x))
#ifdef __FMA__ /* fused everywhere, never left to -ffp-contract */
#define V_FMA(a, b, c) fmaf(a, b, c)
#else
#define V_FMA(a, b, c) ((a) * (b) + (c))
#endif
#define V_MUL(a, b) ((a) * (b))
static inline vf v_load_n(const float *p, int n) { return n > 0 ? *p : 0.0f; }
static inline void v_store_n(float *p, vf x, int n)
{
    if (n > 0) *p = x;
}
#endif

#define NR (NV * VW)
/* KC fixes the summation order, so it is a constant (never tuned per call or
 * per thread count). MC and NC only block for the caches. */
#define KC 256
#define MC (MR * 16)
#define NC 1024
/* A row-major B is read in place unless more than PACK_B_ROWS rows of C
 * reuse each panel: for the weight gradient (M = 64..256, K in thousands),
 * copying B costs more than its strided reads. */
#define PACK_B_ROWS 256

static inline int imin(int a, int b) { return a < b ? a : b; }

#ifdef __AVX__
/* dst[t * NR + s] = src[s * ld + t] for s, t < 8. */
static inline void transpose8x8(const float *src, size_t ld, float *dst)
{
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ld);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]); /* a0 b0 a1 b1 | a4 b4 a5 b5 */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* a2 b2 a3 b3 | a6 b6 a7 b7 */
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44); /* a0 b0 c0 d0 | a4 b4 c4 d4 */
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE); /* column 1 | 5 */
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44); /* column 2 | 6 */
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE); /* column 3 | 7 */
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * NR, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * NR, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}
#endif

/* op(B)[p0 : p0+kc, j0 : j0+nr] -> one panel of kc rows of NR floats, the
 * columns past nr zero. B is the operand every row tile reuses, so it is
 * worth copying into the order the kernel reads it. */
static void pack_b_panel(int trans_b, const float *B, int ldb, int p0, int kc, int j0, int nr,
                         float *dst)
{
    if (!trans_b) { /* B is K x N: each k gives nr consecutive floats */
        for (int k = 0; k < kc; k++) {
            const float *src = B + (size_t)(p0 + k) * ldb + j0;
            for (int v = 0; v < NV; v++)
                V_STORE(dst + (size_t)k * NR + v * VW, v_load_n(src + v * VW, nr - v * VW));
        }
    } else { /* B is N x K: row j of B is column j of op(B), a transpose */
        if (nr < NR)
            for (int k = 0; k < kc; k++)
                for (int v = 0; v < NV; v++) V_STORE(dst + (size_t)k * NR + v * VW, V_ZERO());
        int j = 0;
#ifdef __AVX__
        for (; j + 8 <= nr; j += 8) {
            const float *src = B + (size_t)(j0 + j) * ldb + p0;
            int k = 0;
            for (; k + 8 <= kc; k += 8) transpose8x8(src + k, ldb, dst + (size_t)k * NR + j);
            for (; k < kc; k++)
                for (int t = 0; t < 8; t++) dst[(size_t)k * NR + j + t] = src[(size_t)t * ldb + k];
        }
#endif
        for (; j < nr; j++) {
            const float *src = B + (size_t)(j0 + j) * ldb + p0;
            for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = src[k];
        }
    }
}

/* C[mr x nr] (+)= alpha * op(A)[mr x kc] * op(B)[kc x nr], for mr <= ROWS
 * <= MR and nr <= NVEC * VW. Row r of op(A) is element a[r][k * ks] (ks = 1
 * when A is row-major, lda when transposed); rows past mr repeat row mr-1
 * and are not stored. Row k of op(B) starts at b_k + k * bs (bs = NR when
 * packed, ldb in place). first marks K chunk 0, where beta applies. ROWS
 * and NVEC are constants after inlining, so acc lives in registers. */
static inline __attribute__((always_inline)) void
tile(const int ROWS, const int NVEC, int kc, const float *const *a, ptrdiff_t ks,
     const float *restrict b_k, ptrdiff_t bs, float *c, int ldc, int mr, int nr, float alpha,
     float beta, int first)
{
    vf acc[MR][NV];
    for (int r = 0; r < ROWS; r++)
        for (int v = 0; v < NVEC; v++) acc[r][v] = V_ZERO();
    for (ptrdiff_t k = 0, off = 0; k < kc; k++, off += ks, b_k += bs) {
        vf b[NV];
        for (int v = 0; v < NVEC; v++) b[v] = V_LOAD(b_k + v * VW);
        for (int r = 0; r < ROWS; r++) {
            vf x = V_SET1(a[r][off]);
            for (int v = 0; v < NVEC; v++) acc[r][v] = V_FMA(x, b[v], acc[r][v]);
        }
    }
    vf va = V_SET1(alpha), vb = V_SET1(beta);
    for (int r = 0; r < ROWS && r < mr; r++, c += ldc)
        for (int v = 0; v < NVEC; v++) {
            int n = nr - v * VW;
            vf out;
            if (!first) out = V_FMA(va, acc[r][v], v_load_n(c + v * VW, n));
            else if (beta == 0.0f) out = V_MUL(va, acc[r][v]);
            else out = V_FMA(vb, v_load_n(c + v * VW, n), V_MUL(va, acc[r][v]));
            v_store_n(c + v * VW, out, n);
        }
}

/* Picks a tile shape that does little work past the edges of C: MR, MR/2,
 * 2 or 1 rows, and half the vectors when nr fits in them. */
static void micro_kernel(int kc, const float *const *a, ptrdiff_t ks, const float *b, ptrdiff_t bs,
                         float *c, int ldc, int mr, int nr, float alpha, float beta, int first)
{
#define TILE(R, V) tile(R, V, kc, a, ks, b, bs, c, ldc, mr, nr, alpha, beta, first)
#define TILE_ROWS(R) (nr <= NR / 2 ? TILE(R, NV / 2) : TILE(R, NV))
    if (mr > MR / 2) TILE_ROWS(MR);
    else if (mr > 2) TILE_ROWS(MR / 2);
    else if (mr == 2) TILE_ROWS(2);
    else TILE_ROWS(1);
#undef TILE_ROWS
#undef TILE
}

typedef struct {
    int trans_a, trans_b, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} gemm_args;

/* C[row0:row1, col0:col1] on the calling thread, which packs its own B
 * panels: threads share nothing and never wait for each other. bp holds
 * KC x nc_max floats; each mc_max x kc block of A (128 KB) is reused from L2
 * across the column panels. */
static void gemm_block(const gemm_args *g, int row0, int row1, int col0, int col1, int mc_max,
                       float *bp, int nc_max)
{
    int pack_b = g->trans_b || row1 - row0 > PACK_B_ROWS;
    for (int jc = col0; jc < col1; jc += nc_max) {
        int nc = imin(nc_max, col1 - jc);
        for (int pc = 0; pc < g->K; pc += KC) {
            int kc = imin(KC, g->K - pc);
            for (int jr = 0; jr < nc; jr += NR)
                if (pack_b || nc - jr < NR)
                    pack_b_panel(g->trans_b, g->B, g->ldb, pc, kc, jc + jr, imin(NR, nc - jr),
                                 bp + (size_t)jr * kc);
            for (int ic = row0; ic < row1; ic += mc_max) {
                int mc = imin(mc_max, row1 - ic);
                for (int jr = 0; jr < nc; jr += NR)
                    for (int ir = 0; ir < mc; ir += MR) {
                        int i = ic + ir, mr = imin(MR, mc - ir);
                        const float *a[MR];
                        for (int r = 0; r < MR; r++) {
                            int row = i + imin(r, mr - 1);
                            a[r] = g->trans_a ? g->A + (size_t)pc * g->lda + row
                                              : g->A + (size_t)row * g->lda + pc;
                        }
                        int packed = pack_b || nc - jr < NR;
                        const float *b = packed ? bp + (size_t)jr * kc
                                                : g->B + (size_t)pc * g->ldb + jc + jr;
                        micro_kernel(kc, a, g->trans_a ? g->lda : 1, b, packed ? NR : g->ldb,
                                     g->C + (size_t)i * g->ldc + jc + jr, g->ldc, mr,
                                     imin(NR, nc - jr), g->alpha, g->beta, pc == 0);
                    }
            }
        }
    }
}

/* Per-thread packing buffers, one per MF_SCRATCH_* slot, grown on demand and
 * kept for the thread's life; the key's destructor frees them when the
 * thread ends (OpenMP pools shrink). */
static _Thread_local void *tls_buf[MF_SCRATCH_SLOTS];
static _Thread_local size_t tls_cap[MF_SCRATCH_SLOTS];
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *p)
{
    void **bufs = p;
    for (int i = 0; i < MF_SCRATCH_SLOTS; i++) free(bufs[i]);
}

static void scratch_key_create(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

void *mf_scratch(int slot, size_t bytes)
{
    if (bytes > tls_cap[slot]) {
        pthread_once(&scratch_once, scratch_key_create);
        void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!p) return NULL;
        free(tls_buf[slot]);
        tls_buf[slot] = p;
        tls_cap[slot] = bytes;
        if (scratch_key_ok) pthread_setspecific(scratch_key, tls_buf);
    }
    return tls_buf[slot];
}

/* Block sizes MC and NC change speed, never bits: out of heap, a one-panel
 * B block on the stack gives the same result. */
static void gemm_part(const gemm_args *g, int row0, int row1, int col0, int col1)
{
    if (row0 >= row1 || col0 >= col1) return;
    int nc_max = imin(NC, (col1 - col0 + NR - 1) / NR * NR);
    float *bp = mf_scratch(MF_SCRATCH_FP32, (size_t)KC * nc_max * sizeof(float));
    if (bp) {
        gemm_block(g, row0, row1, col0, col1, MC, bp, nc_max);
    } else {
        _Alignas(64) float bp_panel[KC * NR];
        gemm_block(g, row0, row1, col0, col1, MC, bp_panel, NR);
    }
}

#ifdef _OPENMP
/* Splits C among nthreads by MR-row tiles or by NR-column panels: the way
 * that gives the busiest thread clearly fewer tiles, else the longer side of
 * C. Splitting rows makes every thread pack all of B (K x N), splitting
 * columns makes every thread read all of A (M x K), so halve the bigger. */
static void gemm_split(const gemm_args *g, int tid, int nthreads)
{
    long mt = (g->M + MR - 1) / MR, nt = (g->N + NR - 1) / NR;
    long by_rows = (mt + nthreads - 1) / nthreads * nt;
    long by_cols = (nt + nthreads - 1) / nthreads * mt;
    int split_cols = 10 * by_cols < 9 * by_rows || (10 * by_rows >= 9 * by_cols && g->N > g->M);
    if (split_cols) {
        gemm_part(g, 0, g->M, imin(g->N, (int)(nt * tid / nthreads) * NR),
                  imin(g->N, (int)(nt * (tid + 1) / nthreads) * NR));
    } else {
        gemm_part(g, imin(g->M, (int)(mt * tid / nthreads) * MR),
                  imin(g->M, (int)(mt * (tid + 1) / nthreads) * MR), 0, g->N);
    }
}
#endif

int mf_gemm_trivial(int M, int N, int K, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return 1;
    if (K > 0) return 0;
    for (int i = 0; i < M; i++) { /* C = beta * C, never reading C when beta == 0 */
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
        else for (int j = 0; j < N; j++) c[j] *= beta;
    }
    return 1;
}

int mf_gemm_forks(int parallel, int M, int N, int K)
{
#ifdef _OPENMP
    /* Forking costs microseconds: below ~2 MFLOP one thread is faster. */
    return parallel && 2.0 * M * N * K >= 2e6 && omp_get_max_threads() > 1 && !omp_in_parallel();
#else
    (void)parallel, (void)M, (void)N, (void)K;
    return 0;
#endif
}

static void gemm_run(const gemm_args *g, int parallel)
{
    if (mf_gemm_trivial(g->M, g->N, g->K, g->beta, g->C, g->ldc)) return;
#ifdef _OPENMP
    if (mf_gemm_forks(parallel, g->M, g->N, g->K)) {
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

/* Without the bf16 kernel in the build, mf_bf16_available() says no and no
 * model ever asks for MF_GEMM_BF16. */
static void gemm_kind(mf_gemm_kind kind, int parallel, int trans_a, int trans_b, int M, int N, int K,
                      float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                      float *C, int ldc)
{
#ifdef MF_BF16_KERNEL
    if (kind == MF_GEMM_BF16) {
        (parallel ? mf_gemm_bf16 : mf_gemm_bf16_serial)(trans_a, trans_b, M, N, K, alpha, A, lda, B,
                                                        ldb, beta, C, ldc);
        return;
    }
#endif
    (void)kind;
    gemm_args g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc};
    gemm_run(&g, parallel);
}

void mf_gemm_as(mf_gemm_kind kind, int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_kind(kind, 1, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void mf_gemm_serial_as(mf_gemm_kind kind, int trans_a, int trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_kind(kind, 0, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
