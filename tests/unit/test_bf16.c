/* The bf16 matrix multiply (mf_gemm_bf16), on AMX tiles and on VDPBF16PS,
 * and the model's precision switch.
 *
 * Where the CPU cannot run it (no AVX512_BF16), only the refusal is tested: asking a
 * model for bf16 is MF_ERR_CONFIG with the reason, and the model stays fp32.
 * Where it can: results against a double-precision product of the
 * bf16-rounded operands, round-to-nearest-even, and the determinism
 * contract (any thread count, any call shape containing the element). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "check.h"
#include "gemm_check.h"
#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "minformer.h"

/* Round to nearest even onto bfloat16, denormals to zero: the reference for
 * the kernel's packing. */
static float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return x; /* NaN */
    if ((u & 0x7F800000u) == 0) return (u >> 31) ? -0.0f : 0.0f; /* denormals become zero */
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

static void test_precision_switch(void)
{
    mf_config c;
    mf_config_default(&c, 28, 1, 10);
    c.dim = 16;
    c.layers = 1;
    mf_model m;
    mf_error err;
    CHECK(mf_model_create(&m, &c, &err) == MF_OK, "create: %s", err.message);
    CHECK(m.precision == MF_PRECISION_FP32, "a new model is fp32");
    mf_status s = mf_model_set_precision(&m, MF_PRECISION_BF16, &err);
    if (mf_bf16_available()) {
        CHECK(s == MF_OK && m.precision == MF_PRECISION_BF16, "bf16 refused: %s", err.message);
    } else {
        CHECK(s == MF_ERR_CONFIG, "bf16 without AMX gives %d", (int)s);
        CHECK(strstr(err.message, "bf16") && strstr(err.message, mf_bf16_unavailable_reason()),
              "the message says why: %s", err.message);
        CHECK(m.precision == MF_PRECISION_FP32, "a refused switch leaves the model fp32");
    }
    CHECK(mf_model_set_precision(&m, (mf_precision)7, &err) == MF_ERR_CONFIG, "precision 7 taken");
    CHECK(mf_model_set_precision(&m, MF_PRECISION_FP32, &err) == MF_OK, "back to fp32");
    mf_precision p;
    CHECK(mf_precision_parse("bf16", &p) == 0 && p == MF_PRECISION_BF16, "parse bf16");
    CHECK(mf_precision_parse("fp32", &p) == 0 && p == MF_PRECISION_FP32, "parse fp32");
    CHECK(mf_precision_parse("fp16", &p) != 0 && mf_precision_parse("", &p) != 0, "parse junk");
    CHECK(!strcmp(mf_precision_name(MF_PRECISION_BF16), "bf16"), "name");
    mf_model_free(&m);
}

static void test_against_reference(void)
{
    if (!mf_bf16_available()) SKIP("%s", mf_bf16_unavailable_reason());
    static const int shapes[][3] = {{1, 1, 1},   {37, 19, 70},  {64, 64, 64}, {68, 64, 256},
                                    {4, 10, 64}, {100, 200, 33}, {33, 17, 5}, {64, 49, 2176}};
    static const float alphas[] = {1.0f, 1.0f, -0.5f, 0.75f};
    static const float betas[] = {0.0f, 1.0f, 2.0f, 0.0f};
    mf_rng rng;
    mf_rng_seed(&rng, 21);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            int ta = t >> 1, tb = t & 1, M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            /* leading dimensions wider than the matrices: the gaps must stay untouched */
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
            float *A = random_floats(&rng, (size_t)lda * (ta ? K : M));
            float *B = random_floats(&rng, (size_t)ldb * (tb ? N : K));
            float *C0 = random_floats(&rng, (size_t)ldc * M), *C = mf_alloc((size_t)ldc * M * sizeof(float));
            memcpy(C, C0, (size_t)ldc * M * sizeof(float));
            float alpha = alphas[(s + t) % 4], beta = betas[(s + t) % 4];
            mf_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            double worst = 0.0;
            CHECK(matches_reference(bf16_round, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, C, ldc, &worst),
                  "ta=%d tb=%d %dx%dx%d: error %.2f of the bound", ta, tb, M, N, K, worst);
            int gaps = 1;
            for (int i = 0; i < M; i++)
                gaps &= memcmp(C + (size_t)i * ldc + N, C0 + (size_t)i * ldc + N, 5 * sizeof(float)) == 0;
            CHECK(gaps, "ta=%d tb=%d %dx%dx%d wrote past N", ta, tb, M, N, K);
            mf_free(A), mf_free(B), mf_free(C0), mf_free(C);
        }
}

/* Operands round to nearest, ties to even; NaN and infinities survive. */
static void test_rounding(void)
{
    if (!mf_bf16_available()) SKIP("%s", mf_bf16_unavailable_reason());
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: even is 1. 1 + 3 * 2^-8 is
     * halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6. Just above a
     * tie rounds up. */
    const float in[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, -1.0f - 0x1p-8f};
    const float want[] = {1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f, -1.0f};
    for (int i = 0; i < 4; i++) {
        float one = 1.0f, c = 0.0f;
        mf_gemm_bf16(0, 0, 1, 1, 1, 1.0f, &in[i], 1, &one, 1, 0.0f, &c, 1);
        CHECK(c == want[i], "%.9g rounds to %.9g, not %.9g", in[i], c, want[i]);
    }
    float specials[2] = {NAN, INFINITY}, one = 1.0f, c[2];
    mf_gemm_bf16(0, 0, 2, 1, 1, 1.0f, specials, 1, &one, 1, 0.0f, c, 1);
    CHECK(isnan(c[0]) && isinf(c[1]) && c[1] > 0, "NaN -> %g, inf -> %g", c[0], c[1]);
}

static float *run_bf16(int threads, int ta, int tb, int M, int N, int K, const float *A,
                       const float *B, const float *C0, float beta)
{
    return run_gemm_with(mf_gemm_bf16, mf_gemm_bf16_serial, threads, ta, tb, M, N, K, A, B, C0, beta);
}

/* The training shapes: the same bytes from 1, 2 and 3 threads and serially. */
static void test_thread_count_invariance(void)
{
    if (!mf_bf16_available()) SKIP("%s", mf_bf16_unavailable_reason());
    static const int problems[][5] = {
        {0, 1, 4352, 64, 48}, {0, 1, 1100, 256, 256}, {0, 0, 1100, 48, 64}, {1, 0, 64, 64, 4352},
        {1, 0, 256, 96, 3000}, {0, 0, 5, 700, 300}, {1, 1, 13, 130, 1040}, {0, 0, 68, 64, 64},
    };
    mf_rng rng;
    mf_rng_seed(&rng, 23);
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
        float *r[4];
        for (int t = 0; t < 4; t++) r[t] = run_bf16(t == 3 ? 0 : t + 1, ta, tb, M, N, K, A, B, C0, beta);
        for (int t = 1; t < 4; t++)
            CHECK(memcmp(r[0], r[t], bytes) == 0, "%dx%dx%d: 1 thread and %s differ", M, N, K,
                  t == 1 ? "2 threads" : t == 2 ? "3 threads" : "the serial call");
        for (int t = 0; t < 4; t++) mf_free(r[t]);
        mf_free(A), mf_free(B), mf_free(C0);
    }
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

/* An element depends only on its row of op(A) and column of op(B): a
 * window's call gives the bytes of the big call, wherever its tiles fall. */
static void test_window_consistency(void)
{
    if (!mf_bf16_available()) SKIP("%s", mf_bf16_unavailable_reason());
    int M = 301, N = 203, K = 100;
    mf_rng rng;
    mf_rng_seed(&rng, 29);
    float *A = random_floats(&rng, (size_t)M * K), *B = random_floats(&rng, (size_t)K * N);
    static const int windows[][4] = {{0, 0, 17, 17}, {5, 3, 65, 64}, {290, 190, 11, 13},
                                     {1, 33, 1, 1},  {100, 0, 150, 203}};
    for (int t = 0; t < 4; t++) {
        int ta = t >> 1, tb = t & 1, lda = ta ? M : K, ldb = tb ? K : N;
        float *big = mf_alloc((size_t)M * N * sizeof(float)), *small = mf_alloc((size_t)M * N * sizeof(float));
        mf_gemm_bf16(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.0f, big, N);
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            int i0 = windows[w][0], j0 = windows[w][1], m = windows[w][2], n = windows[w][3];
            const float *a = ta ? A + i0 : A + (size_t)i0 * lda;
            const float *b = tb ? B + (size_t)j0 * ldb : B + j0;
            mf_gemm_bf16_serial(ta, tb, m, n, K, 0.5f, a, lda, b, ldb, 0.0f, small, n);
            int same = 1;
            for (int i = 0; i < m; i++)
                same &= memcmp(small + (size_t)i * n, big + (size_t)(i0 + i) * N + j0, (size_t)n * sizeof(float)) == 0;
            CHECK(same, "ta=%d tb=%d window %dx%d at (%d,%d) differs from the big call", ta, tb, m, n, i0, j0);
        }
        mf_free(big), mf_free(small);
    }
    mf_free(A), mf_free(B);
}

/* mf_bf16_round writes the reference rounding's bits (specials and
 * denormals too), and an operand held in bf16 (mf_gemm_bf16_held) gives the
 * bytes of the fp32 operand it was rounded from, in every layout, at edges
 * of tiles and k blocks: the model holds the MLP's GELU so. */
static void test_held_operands(void)
{
    if (!mf_bf16_available()) SKIP("%s", mf_bf16_unavailable_reason());
    float special[] = {0x1p-130f, -0x1p-140f, NAN, -INFINITY, 0x1p-126f, 65504.0f, -0.0f};
    uint16_t h[7];
    mf_bf16_round(h, special, 7);
    for (int i = 0; i < 7; i++) {
        float want = bf16_round(special[i]), got;
        uint32_t u = (uint32_t)h[i] << 16;
        memcpy(&got, &u, 4);
        CHECK(isnan(want) ? isnan(got) : memcmp(&got, &want, 4) == 0, "%g rounds to %g, not %g", special[i], got,
              want);
    }
    static const int shapes[][3] = {{68, 64, 256}, {17, 33, 65}, {1, 16, 31}, {100, 256, 272}, {5, 3, 1}};
    mf_rng rng;
    mf_rng_seed(&rng, 31);
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
        for (int t = 0; t < 4; t++) {
            int M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2], ta = t >> 1, tb = t & 1;
            int lda = ta ? M : K, ldb = tb ? K : N;
            size_t na = (size_t)M * K, nb = (size_t)K * N, bytes = (size_t)M * N * sizeof(float);
            float *A = random_floats(&rng, na), *B = random_floats(&rng, nb), *C0 = random_floats(&rng, (size_t)M * N);
            uint16_t *A16 = mf_alloc(na * sizeof *A16), *B16 = mf_alloc(nb * sizeof *B16);
            mf_bf16_round(A16, A, na);
            mf_bf16_round(B16, B, nb);
            float *want = mf_alloc(bytes), *got = mf_alloc(bytes);
            float beta = sh & 1 ? 1.0f : 0.0f;
            memcpy(want, C0, bytes);
            mf_gemm_bf16(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, want, N);
            for (int held = 1; held < 4; held++) {
                memcpy(got, C0, bytes);
                mf_gemm_bf16_held(ta, tb, M, N, K, 1.0f, held & 1 ? NULL : A, held & 1 ? A16 : NULL, lda,
                                  held & 2 ? NULL : B, held & 2 ? B16 : NULL, ldb, beta, got, N, held == 3);
                CHECK(memcmp(want, got, bytes) == 0, "%dx%dx%d ta=%d tb=%d: held %s differs from fp32 operands",
                      M, N, K, ta, tb, held == 1 ? "A" : held == 2 ? "B" : "A and B");
            }
            mf_free(A), mf_free(B), mf_free(C0), mf_free(A16), mf_free(B16), mf_free(want), mf_free(got);
        }
}

/* The GELU the model keeps for bf16 products (bias_gelu_forward_bf16, with
 * its own rounding in ops.c) is mf_bf16_round of the fp32 GELU, bit for bit:
 * random pre-activations, tails whose GELU is denormal, NaN and infinities. */
static void test_held_gelu(void)
{
    if (!mf_bf16_available()) SKIP("%s", mf_bf16_unavailable_reason());
    enum { M = 7, F = 200 };
    mf_rng rng;
    mf_rng_seed(&rng, 37);
    float *x = mf_alloc(M * F * sizeof(float)), *b = mf_alloc(F * sizeof(float));
    float *y = mf_alloc(M * F * sizeof(float)), *slope = mf_alloc(M * F * sizeof(float));
    float *slope16 = mf_alloc(M * F * sizeof(float));
    uint16_t *want = mf_alloc(M * F * sizeof(uint16_t)), *got = mf_alloc(M * F * sizeof(uint16_t));
    for (int i = 0; i < M * F; i++) x[i] = 8.0f * (2.0f * mf_rng_uniform(&rng) - 1.0f);
    for (int j = 0; j < F; j++) b[j] = j < 100 ? 0.1f * (mf_rng_uniform(&rng) - 0.5f) : 0.0f;
    for (int i = 0; i < 60; i++) x[i] = -12.5f - 0.05f * (float)i; /* GELU near and below 2^-126 */
    x[61] = NAN, x[62] = INFINITY, x[63] = -INFINITY, x[64] = 3e38f, x[65] = -0.0f, x[66] = 1e-40f;
    bias_gelu_forward(y, slope, x, b, M, F);
    mf_bf16_round(want, y, (size_t)M * F);
    bias_gelu_forward_bf16(got, slope16, x, b, M, F);
    int denormal = 0;
    for (int i = 0; i < 60; i++) denormal += y[i] != 0.0f && fabsf(y[i]) < 0x1p-126f;
    CHECK(denormal > 0, "no denormal GELU among the tail inputs");
    CHECK(memcmp(want, got, M * F * sizeof(uint16_t)) == 0, "the held GELU differs from mf_bf16_round of the fp32 one");
    CHECK(memcmp(slope, slope16, M * F * sizeof(float)) == 0, "the slopes differ");
    mf_free(x), mf_free(b), mf_free(y), mf_free(slope), mf_free(slope16), mf_free(want), mf_free(got);
}

int main(void)
{
    RUN(test_precision_switch);
    /* The kernel on AMX tiles where they are, then on VDPBF16PS (the kernel
     * of CPUs without AMX), which every CPU with AMX also has. */
    for (int dp = 0; dp < 2; dp++) {
        if (dp) {
            if (!mf_bf16_available() || !mf_bf16_uses_amx()) break;
            mf_bf16_prefer_dpbf16(1);
            fprintf(stderr, "the same on VDPBF16PS:\n");
        }
        RUN(test_against_reference);
        RUN(test_rounding);
        RUN(test_thread_count_invariance);
        RUN(test_window_consistency);
        RUN(test_held_operands);
    }
    RUN(test_held_gelu);
    mf_bf16_prefer_dpbf16(0);
    return check_report();
}
