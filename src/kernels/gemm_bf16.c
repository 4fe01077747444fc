/* Mixed-precision matrix multiply on AMX tiles (or, on CPUs with
 * AVX512_BF16 but no AMX, on VDPBF16PS: block_compute_dp): bf16 operands,
 * fp32 sums.
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
 * in it may run before mf_bf16_available() (cpu.c) said yes, and the tiles
 * only where mf_bf16_uses_amx() does. */
#include "kernels/gemm.h"
#include "kernels/cpu.h"

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

/* 32 floats (lo: elements 0-15, hi: 16-31) as 32 bf16 in order, rounded to
 * nearest even by VCVTNE2PS2BF16: a NaN stays a quiet NaN, and a denormal
 * becomes zero (as TDPBF16PS would treat it). */
static inline __m512i bf16_pack(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

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

/* v[i] dword j <-> v[j] dword i: a 16 x 16 dword transpose in registers,
 * in four rounds of 16 shuffles (pairs, quads, then 128-bit lanes twice). */
static inline void transpose16(__m512i v[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) { /* u[4g + c], lane L: rows 4g..4g+3 of column 4L + c */
        u[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44);
        __m512i v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
        __m512i v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        v[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        v[4 + c] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        v[8 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        v[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

/* An operand seen as a matrix X (rows x cols) with X(r, c) at
 * p[r * rs + c * cs], or, for one held in bf16 already, h[r * rs + c * cs]
 * (h not NULL): op(A) is (M x K), op(B)^T is (N x K). */
typedef struct {
    const float *p;
    const uint16_t *h;
    ptrdiff_t rs, cs;
    int rows, cols;
} operand;

static inline __mmask32 lanes32(int n)
{
    return n >= 32 ? (__mmask32)0xFFFFFFFFu : n <= 0 ? (__mmask32)0 : (__mmask32)((1u << n) - 1u);
}

/* The rows or pairs of pack_tile for an operand held in bf16: the same
 * words the fp32 paths would make by converting, read instead of converted. */
static void gather_held(const operand *x, int r0, int k0, int nr, int nk, int by_rows, __m512i v[16])
{
    if (by_rows) {
        /* cs == 1 here: an operand of a GEMM has rs or cs 1, and by_rows
         * means cs == 1 or rs != 1 */
        for (int r = 0; r < TR; r++) {
            const uint16_t *row = x->h + (ptrdiff_t)(r0 + r) * x->rs + k0;
            v[r] = r < nr ? _mm512_maskz_loadu_epi16(lanes32(nk), row) : _mm512_setzero_si512();
        }
        return;
    }
    /* rows contiguous (rs == 1): words 0-15 of column k, 16-31 of column k + 1, interleaved */
    static const uint16_t order[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i interleave = _mm512_loadu_si512(order);
    __mmask32 m = lanes32(nr < 16 ? nr : 16);
    for (int q = 0; q < 16; q++) {
        int k = 2 * q;
        const uint16_t *col = x->h + (ptrdiff_t)r0 + (ptrdiff_t)(k0 + k) * x->cs;
        __m512i a = k < nk ? _mm512_maskz_loadu_epi16(m, col) : _mm512_setzero_si512();
        __m512i b = k + 1 < nk ? _mm512_maskz_loadu_epi16(m, col + x->cs) : _mm512_setzero_si512();
        v[q] = _mm512_permutexvar_epi16(interleave, _mm512_inserti64x4(a, _mm512_castsi512_si256(b), 1));
    }
}

/* One tile of X's rows r0..r0+15 and k0..k0+31, as 16 rows of 16 dwords,
 * dword (r, q) holding the pair (X(r, k0+2q), X(r, k0+2q+1)): the A tile
 * layout. With the rows as columns it is also the B tile's VNNI layout
 * transposed, so pack_tile(transposed = 1) writes dword (q, r). */
static void pack_tile(const operand *x, int r0, int k0, int transposed, uint32_t *dst)
{
    int nr = x->rows - r0, nk = x->cols - k0;
    __m512i v[16];
    int by_rows = x->cs == 1 || x->rs != 1;
    if (x->h) {
        gather_held(x, r0, k0, nr, nk, by_rows, v);
    } else if (by_rows) {
        /* rows are contiguous in k (or neither is): v[r] = row r's 16 pairs */
        for (int r = 0; r < TR; r++) {
            __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
            if (r < nr) {
                const float *row = x->p + (ptrdiff_t)(r0 + r) * x->rs + (ptrdiff_t)k0 * x->cs;
                lo = load_strided(row, x->cs, nk);
                hi = load_strided(row + 16 * x->cs, x->cs, nk - 16);
            }
            v[r] = bf16_pack(lo, hi); /* word e: element e, so pairs in dwords */
        }
    } else {
        /* columns are contiguous in r: v[q] = pair q of the 16 rows */
        static const uint16_t order[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                           8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
        const __m512i interleave = _mm512_loadu_si512(order);
        for (int q = 0; q < 16; q++) {
            int k = 2 * q;
            const float *col = x->p + (ptrdiff_t)r0 + (ptrdiff_t)(k0 + k) * x->cs;
            __m512 a = k < nk ? _mm512_maskz_loadu_ps(lanes(nr), col) : _mm512_setzero_ps();
            __m512 b = k + 1 < nk ? _mm512_maskz_loadu_ps(lanes(nr), col + x->cs) : _mm512_setzero_ps();
            v[q] = _mm512_permutexvar_epi16(interleave, bf16_pack(a, b)); /* dword r: (a_r, b_r) */
        }
    }
    /* v is indexed by row (A layout) when by_rows; the B layout wants it the other way */
    if (by_rows == transposed) transpose16(v);
    for (int i = 0; i < 16; i++) _mm512_storeu_si512(dst + i * 16, v[i]);
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
    int amx;             /* the blocks on AMX tiles, or on VDPBF16PS */
} bf16_args;

static inline uint32_t *tile_at(uint32_t *pack, int block, int kb, int kbs)
{
    return pack + ((size_t)block * kbs + kb) * (TILE_ELEMS / 2);
}

/* The 16 x 16 part of C that tile T covers (row tile a, column tile b of the
 * block at i0, j0): rows and columns inside C, and whether it is whole. */
static inline int part_rows(const bf16_args *g, int i) { return g->M - i < TR ? g->M - i : TR; }
static inline int part_cols(const bf16_args *g, int j) { return g->N - j < TR ? g->N - j : TR; }

/* Copies n x m floats between C (ldc apart) and a 16 x 16 buffer. */
static void edge_copy(float *dst, size_t ldd, const float *src, size_t lds, int n, int m)
{
    for (int r = 0; r < n; r++) memcpy(dst + r * ldd, src + r * lds, (size_t)m * sizeof(float));
}

/* Tile T loaded from C's part (whole: in place; at an edge: through a
 * zero-padded buffer), or stored to it (only the part inside C). Tile
 * numbers must be constants, hence macros. */
#define TILE_FROM_C(T, a, b)                                                                  \
    do {                                                                                      \
        int i_ = i0 + (a) * TR, j_ = j0 + (b) * TR;                                           \
        int n_ = i_ < g->M ? part_rows(g, i_) : 0, m_ = j_ < g->N ? part_cols(g, j_) : 0;     \
        float *c_ = g->C + (size_t)i_ * g->ldc + j_;                                          \
        if (n_ == TR && m_ == TR) {                                                           \
            _tile_loadd(T, c_, (size_t)g->ldc * sizeof(float));                               \
        } else {                                                                              \
            memset(edge, 0, sizeof edge);                                                     \
            if (n_ > 0 && m_ > 0) edge_copy(edge, 16, c_, (size_t)g->ldc, n_, m_);             \
            _tile_loadd(T, edge, 64);                                                         \
        }                                                                                     \
    } while (0)
#define TILE_TO_C(T, a, b)                                                                    \
    do {                                                                                      \
        int i_ = i0 + (a) * TR, j_ = j0 + (b) * TR;                                           \
        int n_ = part_rows(g, i_), m_ = part_cols(g, j_);                                     \
        float *c_ = g->C + (size_t)i_ * g->ldc + j_;                                          \
        if (n_ == TR && m_ == TR) {                                                           \
            _tile_stored(T, c_, (size_t)g->ldc * sizeof(float));                              \
        } else {                                                                              \
            _tile_stored(T, edge, 64);                                                        \
            edge_copy(c_, (size_t)g->ldc, edge, 16, n_, m_);                                  \
        }                                                                                     \
    } while (0)

/* C rows 16 ti .. (two tiles, or one at the last odd one), columns 16 tj ..
 * likewise. The tiles compute each element alike, and a missing second tile
 * only leaves out elements outside C, so the block's shape never changes an
 * element's bits. */
static void block_compute(const bf16_args *g, int ti, int tj)
{
    int two_r = ti + 1 < g->mt, two_c = tj + 1 < g->nt;
    int i0 = ti * TR, j0 = tj * TR;
    /* alpha 1, beta 0 or 1 (every call the model makes): the tiles start
     * from 0 or from C itself and are stored straight back; otherwise
     * C = alpha * acc + beta * C afterwards. */
    int direct = g->alpha == 1.0f && (g->beta == 0.0f || g->beta == 1.0f);
    _Alignas(64) float edge[TR * 16];
    if (direct && g->beta == 1.0f) {
        TILE_FROM_C(0, 0, 0);
        TILE_FROM_C(1, 0, 1);
        TILE_FROM_C(2, 1, 0);
        TILE_FROM_C(3, 1, 1);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
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
    if (direct) {
        TILE_TO_C(0, 0, 0);
        if (two_c) TILE_TO_C(1, 0, 1);
        if (two_r) TILE_TO_C(2, 1, 0);
        if (two_r && two_c) TILE_TO_C(3, 1, 1);
        return;
    }
    _Alignas(64) float acc[32 * 32];
    _tile_stored(0, acc, 128);
    _tile_stored(1, acc + 16, 128);
    _tile_stored(2, acc + 16 * 32, 128);
    _tile_stored(3, acc + 16 * 32 + 16, 128);
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

/* The same block on VDPBF16PS (CPUs with AVX512_BF16 but no AMX), from the
 * same packed tiles: 8 rows at a time, each row's pair (k, k + 1) of an A
 * tile broadcast against a B tile's row of 16 column pairs, into 8 x 2
 * vectors of sums. An element is its sum over k blocks and pairs in order,
 * starting from 0 or (alpha 1, beta 1) from C, whatever its block: the same
 * contract as the tiles, with VDPBF16PS's own rounding, so other bits. */
static void block_compute_dp(const bf16_args *g, int ti, int tj)
{
    int two_c = tj + 1 < g->nt; /* rows of a missing second A tile are never stored */
    int i0 = ti * TR, j0 = tj * TR, nrows = g->M - i0 < 32 ? g->M - i0 : 32;
    int direct = g->alpha == 1.0f && (g->beta == 0.0f || g->beta == 1.0f);
    __mmask16 m0 = lanes(g->N - j0), m1 = lanes(g->N - j0 - 16);
    __m512 alpha = _mm512_set1_ps(g->alpha), beta = _mm512_set1_ps(g->beta);
    _Alignas(64) uint32_t own[4][TILE_ELEMS / 2]; /* without packed buffers */
    for (int r0 = 0; r0 < nrows; r0 += 8) {
        int nr = nrows - r0 < 8 ? nrows - r0 : 8, tile_r = ti + r0 / TR, in_tile = r0 % TR;
        __m512 acc[8][2];
        for (int r = 0; r < 8; r++) {
            acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            if (direct && g->beta == 1.0f && r < nr) {
                const float *c = g->C + (size_t)(i0 + r0 + r) * g->ldc + j0;
                acc[r][0] = _mm512_maskz_loadu_ps(m0, c);
                acc[r][1] = _mm512_maskz_loadu_ps(m1, c + 16);
            }
        }
        for (int k = 0; k < g->kb; k++) {
            const uint32_t *at, *b0, *b1;
            if (g->apack) {
                at = tile_at(g->apack, tile_r, k, g->kb);
                b0 = tile_at(g->bpack, tj, k, g->kb);
                b1 = two_c ? tile_at(g->bpack, tj + 1, k, g->kb) : b0;
            } else {
                pack_tile(&g->a, tile_r * TR, k * TK, 0, own[0]);
                pack_tile(&g->bt, tj * TR, k * TK, 1, own[2]);
                if (two_c) pack_tile(&g->bt, (tj + 1) * TR, k * TK, 1, own[3]);
                at = own[0], b0 = own[2], b1 = two_c ? own[3] : own[2];
            }
            at += in_tile * 16;
            for (int q = 0; q < 16; q++) {
                __m512bh vb0 = (__m512bh)_mm512_load_si512(b0 + q * 16);
                __m512bh vb1 = (__m512bh)_mm512_load_si512(b1 + q * 16);
                for (int r = 0; r < 8; r++) {
                    __m512bh va = (__m512bh)_mm512_set1_epi32((int)at[r * 16 + q]);
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], va, vb0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], va, vb1);
                }
            }
        }
        for (int r = 0; r < nr; r++) {
            float *c = g->C + (size_t)(i0 + r0 + r) * g->ldc + j0;
            for (int h = 0; h < 2; h++) {
                __mmask16 m = h ? m1 : m0;
                if (!m) break;
                __m512 v = acc[r][h];
                if (!direct) {
                    v = _mm512_mul_ps(alpha, v);
                    if (g->beta != 0.0f)
                        v = _mm512_add_ps(v, _mm512_mul_ps(beta, _mm512_maskz_loadu_ps(m, c + 16 * h)));
                }
                _mm512_mask_storeu_ps(c + 16 * h, m, v);
            }
        }
    }
}

static inline long share(long n, int part, int parts) { return n * part / parts; }

/* Thread tid of nthreads: its share of the packing, then (after all have
 * packed) its share of the 32 x 32 blocks. nthreads > 1 only inside a
 * parallel region that every thread of it enters. */
static void bf16_part(const bf16_args *g, int tid, int nthreads)
{
    if (g->amx) tiles_configure();
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
        (g->amx ? block_compute : block_compute_dp)(g, (int)(t / bj) * 2, (int)(t % bj) * 2);
}

void mf_gemm_bf16_held(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                       const uint16_t *A16, int lda, const float *B, const uint16_t *B16, int ldb,
                       float beta, float *C, int ldc, int parallel)
{
    if (mf_gemm_trivial(M, N, K, beta, C, ldc)) return;
    bf16_args g;
    g.amx = mf_bf16_uses_amx();
    g.M = M;
    g.N = N;
    g.K = K;
    g.kb = (K + TK - 1) / TK;
    g.alpha = alpha;
    g.beta = beta;
    g.C = C;
    g.ldc = ldc;
    /* op(A)(i, k) = A[i * lda + k], or A[k * lda + i] when transposed */
    g.a = (operand){A, A16, trans_a ? 1 : lda, trans_a ? lda : 1, M, K};
    /* op(B)^T(j, k) = op(B)(k, j) = B[k * ldb + j], or B[j * ldb + k] when transposed */
    g.bt = (operand){B, B16, trans_b ? ldb : 1, trans_b ? 1 : ldb, N, K};
    g.mt = (M + TR - 1) / TR;
    g.nt = (N + TR - 1) / TR;
    size_t ma = (size_t)g.mt * g.kb, nb = (size_t)g.nt * g.kb;
    size_t bytes = (ma + nb) * TILE_ELEMS * 2;
    /* Out of heap, each block packs its own tiles as it goes: slower, the same bits. */
    uint32_t *buf = mf_scratch(MF_SCRATCH_BF16, bytes);
    g.apack = buf;
    g.bpack = buf ? buf + ma * (TILE_ELEMS / 2) : NULL;
#ifdef _OPENMP
    if (mf_gemm_forks(parallel, M, N, K)) {
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
    mf_gemm_bf16_held(trans_a, trans_b, M, N, K, alpha, A, NULL, lda, B, NULL, ldb, beta, C, ldc, 1);
}

void mf_gemm_bf16_serial(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    mf_gemm_bf16_held(trans_a, trans_b, M, N, K, alpha, A, NULL, lda, B, NULL, ldb, beta, C, ldc, 0);
}

void mf_bf16_round(uint16_t *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        _mm512_storeu_si512(dst + i, bf16_pack(_mm512_loadu_ps(src + i), _mm512_loadu_ps(src + i + 16)));
    if (i < n) {
        int left = (int)(n - i);
        __m512i v = bf16_pack(_mm512_maskz_loadu_ps(lanes(left), src + i),
                              _mm512_maskz_loadu_ps(lanes(left - 16), src + i + 16));
        _mm512_mask_storeu_epi16(dst + i, lanes32(left), v);
    }
}
