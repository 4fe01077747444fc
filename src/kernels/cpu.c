/* Run-time CPU feature checks (cpuid, xgetbv) for kernels built for an
 * instruction set the build machine may not have. This file itself is
 * compiled for the baseline, so it runs anywhere. */
#define _GNU_SOURCE /* syscall */
#include "kernels/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(MF_BF16_KERNEL)
#include <cpuid.h>
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* 0 when the bf16 kernel can run here, else why not; *amx: whether it can
 * use AMX tiles (else VDPBF16PS). */
static const char *probe(int *amx)
{
    unsigned a, b, c, d;
    *amx = 0;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27)))
        return "this CPU has no OSXSAVE";
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "this CPU does not report its features (cpuid 7)";
    int avx512 = (b & (1u << 16)) && (b & (1u << 30)); /* F, BW */
    int tiles = (d & (1u << 24)) && (d & (1u << 22));  /* AMX-TILE, AMX-BF16 */
    if (!avx512) return "this CPU has no AVX-512 (F, BW); bf16 needs AVX512_BF16 or AMX";
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5)))
        return "this CPU has no AVX512_BF16 (bf16 needs it: AMD Zen 4, Intel Cooper Lake, Sapphire Rapids "
               "or later)";
    unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0xE6) != 0xE6) return "the operating system does not enable AVX-512 state";
    /* AMX where the CPU has it and the system lets this process use the tiles */
    if (tiles && (xcr0 & (3ull << 17)) == (3ull << 17)) {
#ifdef __linux__
        *amx = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
        *amx = 1;
#endif
    }
    return 0;
}
#else
static const char *probe(int *amx)
{
    *amx = 0;
#if defined(MF_BF16_KERNEL)
    return "bf16 needs an x86-64 CPU with AVX512_BF16";
#else
    return "this build has no bf16 kernel (the compiler lacks -mamx-bf16)";
#endif
}
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *reason;
static int have_amx, prefer_dpbf16;

/* MINFORMER_NO_BF16=1 hides the kernel, as on a CPU without it: for tests
 * of the refusal, and to compare runs on one machine.
 * MINFORMER_BF16_KERNEL=dpbf16 makes it use VDPBF16PS where it could use AMX
 * tiles, as on a CPU without AMX (e.g. AMD Zen 4). */
static void ask(void)
{
    const char *off = getenv("MINFORMER_NO_BF16"), *kernel = getenv("MINFORMER_BF16_KERNEL");
    reason = off && *off && strcmp(off, "0") ? "MINFORMER_NO_BF16 is set" : probe(&have_amx);
    prefer_dpbf16 = kernel && !strcmp(kernel, "dpbf16");
}

int mf_bf16_uses_amx(void)
{
    pthread_once(&once, ask);
    return reason == 0 && have_amx && !prefer_dpbf16;
}

void mf_bf16_prefer_dpbf16(int on)
{
    pthread_once(&once, ask);
    prefer_dpbf16 = on;
}

int mf_bf16_available(void)
{
    pthread_once(&once, ask);
    return reason == 0;
}

const char *mf_bf16_unavailable_reason(void)
{
    pthread_once(&once, ask);
    return reason ? reason : "bf16 is available";
}
