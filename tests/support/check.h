/* A tiny test harness. Each test is a void function run through RUN(); it
 * passes when none of its CHECKs failed. A test program ends with
 * `return check_report();`, which prints "TESTS passed failed skipped" for
 * scripts/run_tests.sh and returns non-zero on any failure. */
#ifndef MF_CHECK_H
#define MF_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_passed, check_failed, check_skipped, check_current_failures, check_current_skipped;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            check_current_failures++;                                           \
        }                                                                       \
    } while (0)

/* Marks the running test as skipped (say why) and leaves it. */
#define SKIP(...)                                                               \
    do {                                                                        \
        fprintf(stderr, "SKIP %s: ", __func__);                                 \
        fprintf(stderr, __VA_ARGS__);                                           \
        fputc('\n', stderr);                                                    \
        check_current_skipped = 1;                                              \
        return;                                                                 \
    } while (0)

#define RUN(test)                                                               \
    do {                                                                        \
        check_current_failures = 0;                                             \
        check_current_skipped = 0;                                              \
        test();                                                                 \
        if (check_current_failures) {                                           \
            check_failed++;                                                     \
            fprintf(stderr, "not ok %s\n", #test);                              \
        } else if (check_current_skipped) {                                     \
            check_skipped++;                                                    \
        } else {                                                                \
            check_passed++;                                                     \
            printf("ok %s\n", #test);                                           \
        }                                                                       \
        fflush(stdout);                                                         \
    } while (0)

static inline int check_report(void)
{
    printf("TESTS %d %d %d\n", check_passed, check_failed, check_skipped);
    return check_failed ? 1 : 0;
}

/* |a-b| <= atol + rtol*|b|, NaN never close. */
static inline int check_close(float a, float b, float atol, float rtol)
{
    if (isnan(a) || isnan(b)) return 0;
    return fabsf(a - b) <= atol + rtol * fabsf(b);
}

#endif
