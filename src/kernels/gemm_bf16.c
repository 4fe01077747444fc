/* Mixed-precision matrix multiply on AMX tiles: bf16 operands, fp32 sums.
 *
 * The same call as mf_gemm (gemm.h), but op(A) and op(B) are rounded to
 * bfloat16 (round to nearest even, NaN kept quiet) as they are packed, and
 * the products are summed in fp32 by TDPBF16PS. Every operand element is
 * converted exactly once per call: op(B) into VNNI panels (per 16 columns and
 * 32 k: 16 rows of 16 column pairs (k, k+1)), op(A) into row blocks (per 16
 * rows and 32 k). Rows, columns and k are padded to whole tiles with zeros.
 *
 * Why every thread count gives the same bits: an element of C is
 *   acc = the tile sum of its row and column over k blocks 0, 1, ... in order,
 *   C = alpha * acc                (beta == 0, C never read)
 *   C = alpha * acc + beta * C     (otherwise),
 * whatever task, tile position or thread computes it. Zero padding adds
 * exact zeros. Threads split the 32 x 32 output blocks, never k.
 *
 * This file is compiled with the AMX and AVX-512 flags (Makefile); nothing
 * in it may run before mf_bf16_available() (cpu.c) said yes. */
#include "kernels/gemm.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define TK 32    /* k per tile: 16 pairs */
#define TR 16    /* rows of a tile */
#define TILE_ELEMS (TR * TK) /* bf16 per packed A or B tile */

/* The tile shapes: C tiles 0-3 (16 x 16 fp32), A tiles 4-5 (16 x 32 bf16),
 * B tiles 6-7 (16 pair rows x 16 columns); all 16 rows of 64 bytes. */
typedef struct {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* The configuration stays loaded for the thread's life (nothing else here
 * uses tiles), so it is loaded once per thread. */
static _Thread_local int tiles_configured;

static void tiles_configure(void)
{
    if (tiles_configured) return;
    tiles_configured = 1;
    _Alignas(64) tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = TR;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

/* Round-to-nearest-even bf16 bits of 16 floats, in the low half of each
 * 32-bit lane; a NaN stays a (quiet) NaN rather than rounding to infinity. */
static inline __m512i bf16_bits(__m512 x)
{
    __m512i u = _mm512_castps_si512(x);
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
}

static inline __mmask16 lanes(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* 16 floats at p, stride s (in floats), the first n of them; zeros past n. */
static inline __m512 load_strided(const float *p, ptrdiff_t s, int n)
{
    if (s == 1) return _mm512_maskz_loadu_ps(lanes(n), p);
    __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                     _mm512_set1_epi32((int)s));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes(n), idx, p, 4);
}

/* Dword i of v to dst[16 i + col]: one column of a 16 x 16 dword tile. */
static inline void store_column(uint32_t *dst, int col, __m512i v)
{
    __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                                       13, 14, 15), 4),
                                   _mm512_set1_epi32(col));
    _mm512_i32scatter_epi32(dst, idx, v, 4);
}

/* An operand seen as a matrix X (rows x cols) with X(r, c) at
 * p[r * rs + c * cs]: op(A) is (M x K), op(B)^T is (N x K). */
typedef struct {
    const float *p;
    ptrdiff_t rs, cs;
    int rows, cols;
} operand;

/* One tile of X's rows r0..r0+15 and k0..k0+31, as 16 rows of 16 dwords,
 * dword (r, q) holding the pair (X(r, k0+2q), X(r, k0+2q+1)): the A tile
 * layout. With the rows as columns it is also the B tile's VNNI layout
 * transposed, so pack_tile(transposed = 1) writes dword (q, r). */
static void pack_tile(const operand *x, int r0, int k0, int transposed, uint32_t *dst)
{
    int nr = x->rows - r0, nk = x->cols - k0;
    if (x->cs == 1 || x->rs != 1) {
        /* rows are contiguous in k (or neither is): walk row by row */
        for (int r = 0; r < TR; r++) {
            __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
            if (r < nr) {
                const float *row = x->p + (ptrdiff_t)(r0 + r) * x->rs + (ptrdiff_t)k0 * x->cs;
                lo = bf16_bits(load_strided(row, x->cs, nk));
                hi = bf16_bits(load_strided(row + 16 * x->cs, x->cs, nk - 16));
            }
            /* element e of the 32 (k order) -> word e: pairs in dwords */
            __m512i even = _mm512_permutex2var_epi32(
                lo, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), hi);
            __m512i odd = _mm512_permutex2var_epi32(
                lo, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), hi);
            __m512i pairs = _mm512_or_si512(even, _mm512_slli_epi32(odd, 16));
            if (!transposed) _mm512_storeu_si512(dst + r * 16, pairs);
            else store_column(dst, r, pairs);
        }
    } else {
        /* columns are contiguous in r: walk k pair by k pair, 16 rows at once */
        for (int q = 0; q < 16; q++) {
            int k = 2 * q;
            const float *col = x->p + (ptrdiff_t)r0 + (ptrdiff_t)(k0 + k) * x->cs;
            __m512i a = k < nk ? bf16_bits(_mm512_maskz_loadu_ps(lanes(nr), col)) : _mm512_setzero_si512();
            __m512i b = k + 1 < nk ? bf16_bits(_mm512_maskz_loadu_ps(lanes(nr), col + x->cs))
                                   : _mm512_setzero_si512();
            __m512i pairs = _mm512_or_si512(a, _mm512_slli_epi32(b, 16)); /* dword r */
            if (transposed) _mm512_storeu_si512(dst + q * 16, pairs);
            else store_column(dst, q, pairs);
        }
    }
}

typedef struct {
    operand a, bt;       /* op(A) (M x K) and op(B)^T (N x K) */
    int M, N, K, kb;     /* kb: k blocks of TK */
    int mt, nt;          /* 16-row tiles of op(A), 16-column tiles of op(B) */
    float alpha, beta;
    float *C;
    int ldc;
    uint32_t *apack;     /* mt x kb packed tiles, or NULL: each block packs its own */
    uint32_t *bpack;     /* nt x kb */
} bf16_args;

static inline uint32_t *tile_at(uint32_t *pack, int block, int kb, int kbs)
{
    return pack + ((size_t)block * kbs + kb) * (TILE_ELEMS / 2);
}

/* C rows 16 ti .. (two tiles, or one at the last odd one), columns 16 tj ..
 * likewise. The tiles compute each element alike, and a missing second tile
 * only leaves out elements outside C, so the block's shape never changes an
 * element's bits. */
static void block_compute(const bf16_args *g, int ti, int tj)
{
    int two_r = ti + 1 < g->mt, two_c = tj + 1 < g->nt;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _Alignas(64) uint32_t own[4][TILE_ELEMS / 2]; /* without packed buffers */
    for (int k = 0; k < g->kb; k++) {
        if (g->apack) {
            _tile_loadd(4, tile_at(g->apack, ti, k, g->kb), 64);
            if (two_r) _tile_loadd(5, tile_at(g->apack, ti + 1, k, g->kb), 64);
            _tile_loadd(6, tile_at(g->bpack, tj, k, g->kb), 64);
            if (two_c) _tile_loadd(7, tile_at(g->bpack, tj + 1, k, g->kb), 64);
        } else {
            pack_tile(&g->a, ti * TR, k * TK, 0, own[0]);
            pack_tile(&g->bt, tj * TR, k * TK, 1, own[2]);
            _tile_loadd(4, own[0], 64);
            _tile_loadd(6, own[2], 64);
            if (two_r) {
                pack_tile(&g->a, (ti + 1) * TR, k * TK, 0, own[1]);
                _tile_loadd(5, own[1], 64);
            }
            if (two_c) {
                pack_tile(&g->bt, (tj + 1) * TR, k * TK, 1, own[3]);
                _tile_loadd(7, own[3], 64);
            }
        }
        _tile_dpbf16ps(0, 4, 6);
        if (two_c) _tile_dpbf16ps(1, 4, 7);
        if (two_r) _tile_dpbf16ps(2, 5, 6);
        if (two_r && two_c) _tile_dpbf16ps(3, 5, 7);
    }
    _Alignas(64) float acc[32 * 32];
    _tile_stored(0, acc, 128);
    _tile_stored(1, acc + 16, 128);
    _tile_stored(2, acc + 16 * 32, 128);
    _tile_stored(3, acc + 16 * 32 + 16, 128);
    int i0 = ti * TR, j0 = tj * TR;
    int nr = g->M - i0 < 32 ? g->M - i0 : 32;
    __m512 alpha = _mm512_set1_ps(g->alpha), beta = _mm512_set1_ps(g->beta);
    for (int r = 0; r < nr; r++) {
        float *c = g->C + (size_t)(i0 + r) * g->ldc + j0;
        for (int h = 0; h < 2; h++) {
            __mmask16 m = lanes(g->N - j0 - 16 * h);
            if (!m) break;
            __m512 v = _mm512_mul_ps(alpha, _mm512_load_ps(acc + r * 32 + 16 * h));
            if (g->beta != 0.0f)
                v = _mm512_add_ps(v, _mm512_mul_ps(beta, _mm512_maskz_loadu_ps(m, c + 16 * h)));
            _mm512_mask_storeu_ps(c + 16 * h, m, v);
        }
    }
}

static inline long share(long n, int part, int parts) { return n * part / parts; }

/* Thread tid of nthreads: its share of the packing, then (after all have
 * packed) its share of the 32 x 32 blocks. nthreads > 1 only inside a
 * parallel region that every thread of it enters. */
static void bf16_part(const bf16_args *g, int tid, int nthreads)
{
    tiles_configure();
    if (g->apack) {
        long na = (long)g->mt * g->kb, total = na + (long)g->nt * g->kb;
        for (long t = share(total, tid, nthreads); t < share(total, tid + 1, nthreads); t++) {
            if (t < na)
                pack_tile(&g->a, (int)(t / g->kb) * TR, (int)(t % g->kb) * TK, 0,
                          tile_at(g->apack, (int)(t / g->kb), (int)(t % g->kb), g->kb));
            else
                pack_tile(&g->bt, (int)((t - na) / g->kb) * TR, (int)((t - na) % g->kb) * TK, 1,
                          tile_at(g->bpack, (int)((t - na) / g->kb), (int)((t - na) % g->kb), g->kb));
        }
        if (nthreads > 1) {
#pragma omp barrier
        }
    }
    int bi = (g->mt + 1) / 2, bj = (g->nt + 1) / 2;
    long tasks = (long)bi * bj;
    for (long t = share(tasks, tid, nthreads); t < share(tasks, tid + 1, nthreads); t++)
        block_compute(g, (int)(t / bj) * 2, (int)(t % bj) * 2);
}

static void gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc, int parallel)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* C = beta * C, never reading C when beta == 0 */
        for (int i = 0; i < M; i++) {
            float *c = C + (size_t)i * ldc;
            if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
            else for (int j = 0; j < N; j++) c[j] *= beta;
        }
        return;
    }
    bf16_args g;
    g.M = M;
    g.N = N;
    g.K = K;
    g.kb = (K + TK - 1) / TK;
    g.alpha = alpha;
    g.beta = beta;
    g.C = C;
    g.ldc = ldc;
    /* op(A)(i, k) = A[i * lda + k], or A[k * lda + i] when transposed */
    g.a = (operand){A, trans_a ? 1 : lda, trans_a ? lda : 1, M, K};
    /* op(B)^T(j, k) = op(B)(k, j) = B[k * ldb + j], or B[j * ldb + k] when transposed */
    g.bt = (operand){B, trans_b ? ldb : 1, trans_b ? 1 : ldb, N, K};
    g.mt = (M + TR - 1) / TR;
    g.nt = (N + TR - 1) / TR;
    size_t ma = (size_t)g.mt * g.kb, nb = (size_t)g.nt * g.kb;
    size_t bytes = (ma + nb) * TILE_ELEMS * 2;
    /* Out of heap, each block packs its own tiles as it goes: slower, the same bits. */
    uint32_t *buf = mf_scratch(MF_SCRATCH_BF16, bytes);
    g.apack = buf;
    g.bpack = buf ? buf + ma * (TILE_ELEMS / 2) : NULL;
#ifdef _OPENMP
    /* Forking costs microseconds: below ~2 MFLOP one thread is faster. */
    double flops = 2.0 * M * N * K;
    if (parallel && flops >= 2e6 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel
        bf16_part(&g, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#else
    (void)parallel;
#endif
    bf16_part(&g, 0, 1);
}

void mf_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1);
}

void mf_gemm_bf16_serial(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 0);
}
